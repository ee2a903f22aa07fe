//! The workflow engine: Logic Apps-shaped definitions run against sandboxed connectors, with
//! durable run history.
//!
//! - [`project`] reads a project directory; [`definition`] reads `workflow.json`;
//! - [`validate`] finds every problem before a run, each with workflow, action and JSON path;
//! - [`executor`] runs the action graph, writing every step to the [`crate::db`] history;
//! - [`retry`] holds `retryPolicy` and the clock; [`connections`] binds `connections.json` to
//!   live connections;
//! - [`webhooks`] runs HttpWebhook actions (subscribe, wait for the callback, unsubscribe);
//!   [`webhook_triggers`] keeps HttpWebhook triggers subscribed while their workflow is enabled.
//!
//! [`Engine`] is the entry point:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use cordon_host::workflow::{Engine, EngineOptions, project::Project};
//! use cordon_host::{Runtime, RuntimeConfig, db::SqliteDb};
//!
//! let project = Project::open("examples/quickstart".as_ref())?;
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let db = Arc::new(SqliteDb::open("examples/quickstart/.cordon/history.db".as_ref())?);
//! let engine = Engine::open(&project, &runtime, EngineOptions::new(db)).await?;
//! let run = engine.run("orders", serde_json::json!({"orders": []})).await?;
//! println!("{} {}", run.id, run.status);
//! # Ok(()) }
//! ```

pub mod admission;
pub mod builtin_inputs;
pub mod clock;
pub mod connections;
pub mod executor;
mod http_trigger;
pub mod project;
pub mod relative_path;
pub mod retention;
pub mod run_now;
pub mod run_quota;
pub mod scheduler;
pub mod sliding_window;
pub mod upgrades;
pub mod validate;
pub mod webhook_triggers;
pub mod webhooks;

// The definition grammar and its value types are pure parsing, kept in cordon-core (no IO,
// no wasmtime) so that the fuzzers and table tests build without the runtime.
pub use cordon_core::workflow::{definition, duration, recurrence, retry, table};

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::db::{CallbackOutcome, CancelOutcome, Db, DbError, RunRecord, Status, TriggerState};
use crate::ids::ConnectionName;
use crate::secrets::NoSecrets;
use crate::secrets::store::SecretStore;
use crate::{Connection, ConnectionConfig, Runtime, builtin};

use clock::{Clock, SystemClock};
use executor::{EngineShared, Observer};
use project::Project;

pub use cordon_core::problem::Problem;

/// The live connections of a project.
#[derive(Debug)]
pub struct Connections {
    pub by_name: HashMap<String, Connection>,
    pub secret_settings: BTreeSet<String>,
    /// The built-in `http` connector bound to the project's `http` grant.
    pub http: Connection,
}

impl Connections {
    /// Loads every connector the project names and binds it to its connection. Connections that
    /// fail are reported as problems (for `cordon validate`) instead of stopping the others.
    /// `store` serves `@secret('NAME')` references; without it they are problems.
    /// `approvals` is the history that keeps approved connector versions
    /// ([`upgrades`]); without it every connection runs its current file with its own grant
    /// (what `cordon validate` checks).
    pub async fn load(
        project: &Project,
        runtime: &Runtime,
        store: Option<&SecretStore>,
        approvals: Option<&dyn Db>,
    ) -> anyhow::Result<(Connections, Vec<Problem>)> {
        let mut by_name = HashMap::new();
        let mut secret_settings = BTreeSet::new();
        let mut problems = Vec::new();
        for (name, spec) in &project.connections {
            let loaded = async {
                let loaded = connections::load_connector(runtime, project, spec, approvals).await?;
                let (connection, settings) =
                    connections::connect(&loaded.connector, project, spec, &loaded.grant, store)?;
                anyhow::Ok((connection, settings))
            }
            .await;
            match loaded {
                Ok((connection, settings)) => {
                    by_name.insert(name.clone(), connection);
                    secret_settings.extend(settings);
                }
                Err(e) => problems.push(Problem {
                    workflow: "connections.json".to_owned(),
                    action: None,
                    path: format!("$.serviceProviderConnections.{name}"),
                    message: format!("{e:#}"),
                }),
            }
        }
        let http_connector = runtime
            .load_builtin(builtin::find("http").context("the http connector is not built in")?)
            .await?;
        let http_spec = project::ConnectionSpec {
            name: "http".to_owned(),
            connector: project::ConnectorSource::Builtin("http".to_owned()),
            parameter_values: project.http_parameter_values.clone(),
            grant: project.http_grant.clone(),
        };
        let http =
            match connections::connect(&http_connector, project, &http_spec, &project.http_grant, store) {
                Ok((connection, settings)) => {
                    secret_settings.extend(settings);
                    connection
                }
                Err(e) => {
                    // Reported like any connection's; the Http action runs without the secrets.
                    problems.push(Problem {
                        workflow: "connections.json".to_owned(),
                        action: None,
                        path: "$.http.parameterValues".to_owned(),
                        message: format!("{e:#}"),
                    });
                    http_connector.connect(ConnectionConfig {
                        name: ConnectionName::new("http")?,
                        parameters: Default::default(),
                        grant: project.http_grant.clone(),
                        secrets: Arc::new(NoSecrets),
                    })?
                }
            };
        Ok((
            Connections {
                by_name,
                secret_settings,
                http,
            },
            problems,
        ))
    }
}

/// How an [`Engine`] records and observes runs.
pub struct EngineOptions {
    pub db: Arc<dyn Db>,
    pub clock: Arc<dyn Clock>,
    pub observer: Option<Observer>,
    /// Who holds the leases on this engine's runs; defaults to `host:pid`.
    pub lease_owner: String,
    /// The encrypted secret store that `@secret('NAME')` references read, if a master key
    /// was given.
    pub secret_store: Option<SecretStore>,
    /// A tenant's runs per minute ([`run_quota`]); `None` for no limit.
    pub runs_per_minute: Option<u32>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("db", &self.db)
            .field("clock", &self.clock)
            .field("lease_owner", &self.lease_owner)
            .finish_non_exhaustive()
    }
}

impl EngineOptions {
    pub fn new(db: Arc<dyn Db>) -> EngineOptions {
        EngineOptions {
            db,
            clock: Arc::new(SystemClock),
            observer: None,
            lease_owner: executor::process_lease_owner(),
            secret_store: None,
            runs_per_minute: None,
        }
    }
}

/// A run asked for of a workflow the project does not have (or no longer has: a resubmission
/// of a run whose workflow was removed since).
#[derive(Debug, Clone, thiserror::Error)]
#[error("there is no workflow {workflow:?} in the project; it has: {}", known.join(", "))]
pub struct NoSuchWorkflow {
    pub workflow: String,
    pub known: Vec<String>,
}

/// Runs a project's workflows.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<EngineShared>,
    control: Arc<Control>,
}

/// What the engine tracks about runs executing in this process.
#[derive(Debug, Default)]
struct Control {
    admission: admission::Admission,
    /// Runs executing (or waiting for a slot) here, with the token that cancels each.
    live: Mutex<HashMap<String, CancellationToken>>,
    /// Woken whenever a live run ends, for shutdown to wait on.
    ended: tokio::sync::Notify,
    /// Whether each workflow is enabled, as last read, and when. Every trigger request asks,
    /// so the answer is reused for [`ENABLED_CACHE_TTL`]; another process sharing the history
    /// that flips it is seen within that time, this engine's own changes at once.
    enabled: Mutex<HashMap<String, (bool, std::time::Instant)>>,
    run_quota: Option<run_quota::RunQuota>,
}

/// How long [`Engine::is_enabled`] reuses an answer read from the history.
pub const ENABLED_CACHE_TTL: Duration = Duration::from_secs(1);

impl Control {
    fn enabled(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, std::time::Instant)>> {
        // Plain values only; a panic elsewhere cannot leave the map half-written.
        self.enabled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        // Only tokens live here; a panic elsewhere cannot leave the map half-written.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a run from the live map when its execution ends, however it ends.
struct LiveRun<'a> {
    control: &'a Control,
    run_id: String,
}

impl Drop for LiveRun<'_> {
    fn drop(&mut self) {
        self.control.live().remove(&self.run_id);
        self.control.ended.notify_waiters();
    }
}

impl Engine {
    /// Loads the project's connectors and prepares its workflows. Fails if the project has
    /// problems; `cordon validate` lists them.
    pub async fn open(
        project: &Project,
        runtime: &Runtime,
        options: EngineOptions,
    ) -> anyhow::Result<Engine> {
        let (connections, mut problems) = Connections::load(
            project,
            runtime,
            options.secret_store.as_ref(),
            Some(&*options.db),
        )
        .await?;
        problems.extend(project.problems.iter().cloned());
        problems.extend(validate::validate(project, &connections));
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            anyhow::bail!(
                "the project {:?} has {} problem{}:\n{}",
                project.root,
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                list.join("\n")
            );
        }
        Ok(Self::from_parts(project, connections, options))
    }

    /// An engine over connections the caller already loaded and checked.
    pub fn from_parts(project: &Project, connections: Connections, options: EngineOptions) -> Engine {
        let control = Control {
            admission: admission::Admission::new(project.workflows.values()),
            run_quota: options.runs_per_minute.map(run_quota::RunQuota::per_minute),
            ..Control::default()
        };
        Engine {
            control: Arc::new(control),
            shared: Arc::new(executor::shared(
                project,
                connections.by_name,
                connections.secret_settings,
                connections.http,
                options.db,
                options.clock,
                options.lease_owner,
                options.observer,
            )),
        }
    }

    pub fn db(&self) -> &Arc<dyn Db> {
        &self.shared.db
    }

    /// The metrics this engine (and its runtime) records.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.shared.metrics
    }

    /// Starts a run of `workflow` with `trigger_body` and runs it to its end.
    pub async fn run(&self, workflow: &str, trigger_body: Value) -> anyhow::Result<RunRecord> {
        let run = self.accept(workflow, serde_json::json!({"headers": {}, "body": trigger_body}))?;
        self.execute(run).await
    }

    /// Records a new run of `workflow` whose trigger produced `trigger_outputs`
    /// (`{"headers": ..., "body": ...}`), without running it yet. Once this returns, the run
    /// is durable: if the process dies, the next engine resumes it. Fails with
    /// [`admission::Busy`] when the workflow's concurrency limit has no room for another
    /// waiting run.
    pub fn accept(&self, workflow: &str, trigger_outputs: Value) -> anyhow::Result<RunRecord> {
        self.accept_from(workflow, None, trigger_outputs)
    }

    /// [`Engine::accept`] for a named trigger.
    pub fn accept_from(
        &self,
        workflow: &str,
        trigger: Option<&str>,
        trigger_outputs: Value,
    ) -> anyhow::Result<RunRecord> {
        self.check_workflow(workflow)?;
        let mut run = executor::new_run(&self.shared, workflow, trigger, trigger_outputs);
        run.status = self.control.admission.reserve(workflow, &run.id, true)?;
        self.take_run_quota(workflow, &run.id)?;
        if let Err(e) =
            self.shared
                .db
                .create_run(&run, &self.shared.lease_owner, executor::LEASE.as_millis() as i64)
        {
            self.control.admission.cancel_reservation(workflow, &run.id);
            return Err(e.into());
        }
        Ok(run)
    }

    fn check_workflow(&self, workflow: &str) -> Result<(), NoSuchWorkflow> {
        if !self.shared.plans.contains_key(workflow) {
            return Err(NoSuchWorkflow {
                workflow: workflow.to_owned(),
                known: self.shared.plans.keys().cloned().collect(),
            });
        }
        Ok(())
    }

    /// Records the runs a scheduled or polling trigger produced (one per entry of
    /// `trigger_outputs`) together with the trigger's new state, in one transaction. `None`
    /// when another writer changed the trigger's state since `state` was read: nothing was
    /// written, and the caller should read the state again.
    pub fn fire_trigger(
        &self,
        state: &TriggerState,
        trigger_outputs: Vec<Value>,
    ) -> anyhow::Result<Option<Vec<RunRecord>>> {
        self.check_workflow(&state.workflow)?;
        let mut runs: Vec<RunRecord> = trigger_outputs
            .into_iter()
            .map(|outputs| executor::new_run(&self.shared, &state.workflow, Some(&state.trigger), outputs))
            .collect();
        for run in &mut runs {
            // Scheduled runs are never refused: the scheduler checks for room before it polls.
            run.status = self
                .control
                .admission
                .reserve(&state.workflow, &run.id, false)
                .unwrap_or(Status::Waiting);
        }
        let stored = self.shared.db.fire_trigger(
            state,
            &runs,
            &self.shared.lease_owner,
            executor::LEASE.as_millis() as i64,
        );
        if !matches!(stored, Ok(true)) {
            for run in &runs {
                self.control
                    .admission
                    .cancel_reservation(&state.workflow, &run.id);
            }
        } else if let Some(quota) = &self.control.run_quota {
            quota.charge(runs.len());
        }
        Ok(stored?.then_some(runs))
    }

    /// Whether the workflow's concurrency limit would refuse another run now.
    pub fn is_full(&self, workflow: &str) -> bool {
        self.control.admission.is_full(workflow)
    }

    /// Whether the workflow's triggers start runs. Disabled workflows keep their history, and
    /// their unfinished runs go on.
    pub fn is_enabled(&self, workflow: &str) -> anyhow::Result<bool> {
        self.check_workflow(workflow)?;
        if let Some((enabled, read_at)) = self.control.enabled().get(workflow)
            && read_at.elapsed() < ENABLED_CACHE_TTL
        {
            return Ok(*enabled);
        }
        let enabled = self.shared.db.workflow_enabled(workflow)?;
        self.control
            .enabled()
            .insert(workflow.to_owned(), (enabled, std::time::Instant::now()));
        Ok(enabled)
    }

    pub fn set_enabled(&self, workflow: &str, enabled: bool) -> anyhow::Result<()> {
        self.check_workflow(workflow)?;
        self.shared.db.set_workflow_enabled(workflow, enabled)?;
        self.control
            .enabled()
            .insert(workflow.to_owned(), (enabled, std::time::Instant::now()));
        Ok(())
    }

    /// Cancels a run: stops it if it executes here, and records it, its unfinished actions
    /// and its child runs as `Cancelled`.
    pub fn cancel(&self, run_id: &str) -> anyhow::Result<CancelOutcome> {
        if let Some(token) = self.control.live().get(run_id) {
            token.cancel();
        }
        let outcome = self.shared.db.cancel_run(run_id, self.shared.clock.now_ms())?;
        // Only a project with HttpWebhook actions has subscriptions for a cancel to end.
        if outcome == CancelOutcome::Cancelled
            && self.has_webhooks()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The run's HttpWebhook subscriptions end with it. Their unsubscribe requests go
            // out in the background: the caller of a cancel does not wait for other services.
            let shared = self.shared.clone();
            let run_id = run_id.to_owned();
            runtime.spawn(async move {
                if let Err(e) = webhooks::end_all(&shared, &run_id).await {
                    tracing::warn!(run_id, error = %e, "could not end the cancelled run's webhook subscriptions");
                }
            });
        }
        Ok(outcome)
    }

    /// Where the caller of a request trigger polls for `run_id`'s Response, once the engine
    /// knows its public base ([`Engine::serve_callbacks`]).
    pub fn response_url(&self, run_id: &str) -> Option<String> {
        self.shared.callbacks.get().map(|urls| urls.response_url(run_id))
    }

    /// Makes `listCallbackUrl()` give URLs under `urls`, where a server now receives
    /// HttpWebhook callbacks for this engine. The first call counts (one engine, one server).
    pub fn serve_callbacks(&self, urls: webhooks::CallbackUrls) {
        let _ = self.shared.callbacks.set(urls);
    }

    /// Whether any workflow has an HttpWebhook action (`cordon run` then listens for callbacks).
    pub fn has_webhooks(&self) -> bool {
        self.shared.plans.values().any(|plan| plan.has_webhooks)
    }

    /// Stores a callback for the HttpWebhook action at `callback_id` of `run_id` (the caller
    /// checked the URL's signature) and wakes the action waiting for it here.
    pub fn receive_callback(
        &self,
        run_id: &str,
        callback_id: &str,
        callback: &Value,
    ) -> anyhow::Result<CallbackOutcome> {
        let outcome =
            self.shared
                .db
                .receive_callback(run_id, callback_id, callback, self.shared.clock.now_ms())?;
        if outcome == CallbackOutcome::Accepted {
            self.shared.callback_waiters.wake(run_id, callback_id);
        }
        Ok(outcome)
    }

    /// How many runs execute (or wait for a slot) in this process.
    pub fn in_flight(&self) -> usize {
        self.control.live().len()
    }

    /// Waits until no run executes here, or `grace` passes. Returns how many are left.
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let ended = self.control.ended.notified();
            let left = self.in_flight();
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.in_flight();
            }
        }
    }

    /// The shared state, for the scheduler.
    fn shared(&self) -> &Arc<EngineShared> {
        &self.shared
    }

    /// Runs an accepted run to its end.
    ///
    /// The run first waits for a slot under its workflow's concurrency limit. Cancelling it
    /// ([`Engine::cancel`]) drops the execution at its next await point; what it had finished
    /// stays recorded. When the history cannot be written the execution stops with an error
    /// and the run stays unfinished with no lease, for [`Engine::claim_orphaned_runs`] (by
    /// this process's sweep, another server, or the next start) to resume. When the run is
    /// no longer this worker's ([`crate::db::RunLease`]: another worker claimed it after this
    /// one's lease lapsed, or it was cancelled elsewhere) the execution stops at its next
    /// write; the answer is then the run as it ended, or the error if it has not ended.
    pub async fn execute(&self, run: RunRecord) -> anyhow::Result<RunRecord> {
        let run_id = run.id.clone();
        let outcome = self.execute_leased(run).await;
        let Err(error) = &outcome else { return outcome };
        // Giving up the lease changes nothing if another worker holds it by now.
        self.shared.give_up_lease(run_id.clone());
        if let Some(DbError::LeaseLost { holder, .. }) = error.downcast_ref::<DbError>() {
            tracing::warn!(run_id, error = %error, "stopped executing a run this worker no longer holds");
            // Ended elsewhere (cancelled by another server on this history, or finished by a
            // worker that took it over): that is how it ended.
            if holder.is_none()
                && let Ok(ended) = self.shared.db.run(&run_id)
                && ended.status.is_terminal()
            {
                return Ok(ended);
            }
            return outcome;
        }
        tracing::warn!(
            run_id,
            error = %error,
            "run stopped unfinished: its history could not be written; it resumes from what was recorded"
        );
        outcome.with_context(|| {
            format!(
                "run {run_id} stopped unfinished; it resumes from what its history recorded \
                 (`cordon serve` takes it up again within a minute, `cordon run` on its next start)"
            )
        })
    }

    async fn execute_leased(&self, run: RunRecord) -> anyhow::Result<RunRecord> {
        let token = CancellationToken::new();
        self.control.live().insert(run.id.clone(), token.clone());
        let _live = LiveRun {
            control: &self.control,
            run_id: run.id.clone(),
        };
        let run_id = run.id.clone();
        let execution = async {
            let _slot = self.control.admission.enter(&run.workflow, &run.id).await;
            if run.status == Status::Waiting {
                self.shared.db.start_waiting_run(self.shared.lease(&run.id))?;
            }
            executor::execute_run(self.shared.clone(), run, 0).await
        };
        tokio::select! {
            biased;
            () = token.cancelled() => {
                // Record again after the drop: an action may have been marked Running
                // between the cancel and the drop.
                self.shared.db.cancel_run(&run_id, self.shared.clock.now_ms())?;
                Ok(self.shared.db.run(&run_id)?)
            }
            finished = execution => Ok(finished?),
        }
    }

    /// Takes a run from the tenant's quota for a run that `reserve` just counted, giving the
    /// reservation back if the quota refuses.
    fn take_run_quota(&self, workflow: &str, run_id: &str) -> Result<(), run_quota::RunQuotaExceeded> {
        let Some(quota) = &self.control.run_quota else {
            return Ok(());
        };
        quota
            .take()
            .inspect_err(|_| self.control.admission.cancel_reservation(workflow, run_id))
    }

    /// How long until the tenant's run quota has room; `None` when it has room now (or
    /// there is no quota). The scheduler waits this long before firing.
    pub fn run_quota_wait(&self) -> Option<Duration> {
        self.control.run_quota.as_ref()?.wait()
    }

    /// Records a new run with the trigger outputs of an earlier one, without running it yet.
    pub fn accept_resubmission(&self, run_id: &str) -> anyhow::Result<RunRecord> {
        let original = self.shared.db.run(run_id)?;
        // Refused before anything is recorded: a new run of a workflow the project no longer
        // has could only fail at once, and would sit in the history as if it had been tried.
        self.check_workflow(&original.workflow)
            .map_err(|e| anyhow::Error::new(e).context(format!("cannot resubmit run {run_id}")))?;
        let outputs = original.trigger.get("outputs").cloned().unwrap_or(Value::Null);
        let trigger = original.trigger.get("name").and_then(Value::as_str);
        let mut run = executor::new_run(&self.shared, &original.workflow, trigger, outputs);
        run.resubmitted_from = Some(original.id.clone());
        run.status = self.control.admission.reserve(&run.workflow, &run.id, true)?;
        self.take_run_quota(&run.workflow, &run.id)?;
        if let Err(e) =
            self.shared
                .db
                .create_run(&run, &self.shared.lease_owner, executor::LEASE.as_millis() as i64)
        {
            self.control.admission.cancel_reservation(&run.workflow, &run.id);
            return Err(e.into());
        }
        Ok(run)
    }

    /// Starts a new run with the trigger outputs of an earlier one and runs it to its end.
    pub async fn resubmit(&self, run_id: &str) -> anyhow::Result<RunRecord> {
        let run = self.accept_resubmission(run_id)?;
        self.execute(run).await
    }

    /// The project's workflows.
    pub fn workflows(&self) -> impl Iterator<Item = &definition::Workflow> {
        self.shared.plans.values().map(|p| &p.workflow)
    }

    /// Claims runs whose process died (or whose lease ran out) and runs them to their end.
    /// Child runs are resumed by their parents.
    pub async fn resume_interrupted(&self) -> anyhow::Result<Vec<RunRecord>> {
        let claimed = self.claim_orphaned_runs()?;
        // Concurrently, each through its workflow's concurrency limit, in start order.
        let executions = claimed.into_iter().map(|run| self.execute(run));
        futures_util::future::join_all(executions)
            .await
            .into_iter()
            .collect()
    }

    /// Takes over the unfinished top-level runs nobody is running: their process died, their
    /// lease ran out, or an execution gave them up when the history could not be written.
    /// The caller executes them ([`Engine::execute`]); child runs are resumed by their
    /// parents. `cordon serve` calls this at start and then every [`executor::LEASE`].
    pub fn claim_orphaned_runs(&self) -> anyhow::Result<Vec<RunRecord>> {
        let claimed = self.shared.db.claim_orphaned_runs(
            &self.shared.lease_owner,
            executor::LEASE.as_millis() as i64,
            self.shared.clock.now_ms(),
            &executor::lease_owner_is_dead,
        )?;
        Ok(claimed.into_iter().filter(|r| r.parent.is_none()).collect())
    }
}
