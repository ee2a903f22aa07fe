//! Runs workflows durably.
//!
//! A run executes its actions as a graph: an action starts when every action it names in
//! `runAfter` has finished, runs if each finished with one of the listed statuses and is
//! `Skipped` otherwise; independent branches run at the same time. Every start, attempt and
//! finish is written to the [`Db`] before the run moves on, so a run whose process dies is
//! resumed by the next engine that starts on the same database: actions with a recorded final
//! status are replayed from the record (never run again), and an action that was in flight
//! runs again with the same idempotency key and the next attempt number (or, if it was waiting
//! out a retry delay, waits for the rest of it and makes that retry). Every write goes under
//! the run's lease ([`RunLease`]), so a worker that lost the run stops at its next write.
//!
//! One exception keeps short runs cheap: an *instant* action ([`Action::is_instant`]: Compose,
//! variables, Response and the like, which only compute in memory) has no `Running` record, and
//! its final record is written with the run's next write: the start of an action that reaches
//! outside the run, the end of the run, or the record that brings what is held back to a few
//! MiB (so a long loop over large values does not hold them all). Nothing outside the run can
//! have seen its result before then, so a crash that loses the record only means it is
//! computed again on resume.
//!
//! Status rules (as in Logic Apps): a container, and the run, fails when one of its actions
//! failed or timed out and no sibling that runs after that status ran to handle it; a handled
//! failure (the try/catch pattern with `runAfter: {"X": ["Failed"]}`) leaves it succeeded.
//! `Terminate` ends the run with the status it names.

pub(in crate::workflow) mod actions;
mod async_http;
mod scope;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};

use crate::Connection;
use crate::db::{
    ActionRecord, AttemptInFlight, AttemptRecord, Db, DbError, FinishedAction, RunLease, RunRecord, Status,
};

use super::clock::Clock;
use super::definition::{Action, ActionKind, Workflow, all_actions};
use super::project::{Project, Settings};

pub use actions::condition;
pub use scope::{Frame, expression_record};

/// What the engine tells an observer (the CLI's live view) as a run moves.
#[derive(Debug, Clone)]
pub enum RunEvent {
    RunStarted {
        run_id: String,
        workflow: String,
        resumed: bool,
    },
    ActionStarted {
        run_id: String,
        path: String,
        kind: String,
    },
    ActionFinished {
        run_id: String,
        path: String,
        status: Status,
        attempts: u32,
        duration: Duration,
        error: Option<String>,
        replayed: bool,
    },
    RunFinished {
        run_id: String,
        status: Status,
    },
    /// An HttpWebhook action subscribed and waits for a call of `callback_url`.
    CallbackAwaited {
        run_id: String,
        path: String,
        callback_url: String,
    },
    /// An Http action's request was accepted (202 + Location) and is polled at `location`
    /// (its query left out: it may carry a token).
    OperationPolled {
        run_id: String,
        path: String,
        location: String,
    },
}

pub type Observer = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// How long a worker's claim on a run lasts without renewal. A process that dies loses its
/// runs after this at the latest; on the same machine a dead owner is noticed at once.
pub const LEASE: Duration = Duration::from_secs(30);

/// How many runs deep Workflow actions may nest: a top-level run is depth 0 and its children
/// depth 1. A workflow that calls itself (or a ring of workflows calling each other) with no
/// condition that ends it would otherwise start children until the process ran out of stack;
/// past this depth the Workflow action fails with `WorkflowNestingTooDeep` instead. Real
/// nesting is a few levels; 16 leaves room for a recursion over a shallow tree.
pub const MAX_RUN_DEPTH: u32 = 16;

/// A workflow with the lookups execution needs.
#[derive(Debug)]
pub struct Plan {
    pub workflow: Workflow,
    /// For each action name, the loops that enclose it, outermost first.
    loops_of: HashMap<String, Vec<String>>,
    /// Whether an HttpWebhook action is anywhere in it: its runs' subscriptions are ended when
    /// they end (only those runs pay for looking).
    pub has_webhooks: bool,
}

impl Plan {
    pub fn new(workflow: Workflow) -> Plan {
        let mut loops_of = HashMap::new();
        fn walk(actions: &[Action], loops: &mut Vec<String>, out: &mut HashMap<String, Vec<String>>) {
            for action in actions {
                out.insert(action.name.clone(), loops.clone());
                if action.is_loop() {
                    loops.push(action.name.clone());
                }
                for branch in action.branches() {
                    walk(branch, loops, out);
                }
                if action.is_loop() {
                    loops.pop();
                }
            }
        }
        walk(&workflow.actions, &mut Vec::new(), &mut loops_of);
        let has_webhooks = all_actions(&workflow.actions)
            .iter()
            .any(|a| matches!(a.kind, ActionKind::HttpWebhook));
        Plan {
            workflow,
            loops_of,
            has_webhooks,
        }
    }

    /// The path of action `name` as seen from `frame`: its enclosing loops take the indexes of
    /// the frame's current iterations. `None` if the action is inside a loop the frame is not in.
    pub fn path_in_frame(&self, name: &str, frame: &Frame) -> Option<String> {
        let loops = self.loops_of.get(name)?;
        let mut path = String::new();
        for loop_name in loops {
            let position = frame.loops.iter().find(|l| &l.name == loop_name)?;
            path.push_str(&format!("{loop_name}[{}]/", position.index));
        }
        path.push_str(name);
        Some(path)
    }
}

/// Everything runs share: connections, parameters, the history, the clock.
pub struct EngineShared {
    pub plans: BTreeMap<String, Arc<Plan>>,
    pub parameters: serde_json::Map<String, Value>,
    pub settings: Settings,
    /// Settings that connections use as secrets; `appsetting()` will not read them.
    pub secret_settings: BTreeSet<String>,
    pub connections: HashMap<String, Connection>,
    /// The built-in `http` connector bound to the project's `http` grant, for `Http` actions.
    pub http: Connection,
    pub db: Arc<dyn Db>,
    pub clock: Arc<dyn Clock>,
    pub lease_owner: String,
    pub observer: Option<Observer>,
    /// The runtime's metrics (the connections all share one runtime).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The task that renews this engine's run leases, started by the first run.
    heartbeat: std::sync::OnceLock<AbortOnDrop<()>>,
    /// Where HttpWebhook callbacks reach this engine, once a server listens for them.
    pub callbacks: std::sync::OnceLock<super::webhooks::CallbackUrls>,
    /// The HttpWebhook actions waiting here, woken one by one as their callbacks are stored.
    pub callback_waiters: super::webhooks::CallbackWaiters,
}

impl EngineShared {
    /// The lease this engine executes `run_id` under.
    pub(crate) fn lease<'a>(&'a self, run_id: &'a str) -> RunLease<'a> {
        RunLease {
            run_id,
            owner: &self.lease_owner,
        }
    }

    /// Starts the lease heartbeat if it is not running: one task per engine, renewing the
    /// leases of all its runs in flight with one statement every `LEASE / 3`. It holds the
    /// engine weakly and ends with it.
    fn ensure_heartbeat(self: &Arc<Self>) {
        self.heartbeat.get_or_init(|| {
            let engine = Arc::downgrade(self);
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let Some(engine) = engine.upgrade() else { return };
                    let now = chrono::Utc::now().timestamp_millis();
                    if let Err(e) = engine
                        .db
                        .renew_leases(&engine.lease_owner, LEASE.as_millis() as i64, now)
                    {
                        tracing::warn!(error = %e, "cannot renew run leases");
                    }
                }
            }))
        });
    }

    /// Gives up this engine's lease on a run whose execution stopped because the history could
    /// not be written, so that a sweep for orphaned runs takes it up again. The history may
    /// still be failing, so a task retries until the release is written (or the engine ends);
    /// meanwhile the heartbeat keeps the lease, and no one else starts the run.
    pub(crate) fn give_up_lease(self: &Arc<Self>, run_id: String) {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                let Some(engine) = engine.upgrade() else { return };
                match engine.db.release_lease(engine.lease(&run_id)) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(run_id, error = %e, "cannot give up the lease of a stopped run yet")
                    }
                }
                drop(engine);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LEASE / 3);
            }
        });
    }
}

impl std::fmt::Debug for EngineShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineShared")
            .field("workflows", &self.plans.keys().collect::<Vec<_>>())
            .field("connections", &self.connections.keys().collect::<Vec<_>>())
            .field("lease_owner", &self.lease_owner)
            .finish_non_exhaustive()
    }
}

impl EngineShared {
    pub(crate) fn emit(&self, event: RunEvent) {
        if let Some(observer) = &self.observer {
            observer(&event);
        }
    }
}

/// The mutable state of one run.
#[derive(Debug, Default)]
pub struct RunState {
    /// Every action record of this run so far, by path.
    pub records: HashMap<String, ActionRecord>,
    pub variables: BTreeMap<String, Value>,
    /// Set by a Response action.
    pub response: Option<Value>,
    /// Set by Terminate: the run's final status and error.
    pub terminated: Option<(Status, Option<Value>)>,
}

/// One run in flight.
pub struct RunContext {
    pub engine: Arc<EngineShared>,
    pub plan: Arc<Plan>,
    pub run_id: String,
    pub trigger: Value,
    /// How many Workflow actions deep this run is (0 for a run its trigger started).
    pub depth: u32,
    state: Mutex<RunState>,
    /// Records found in the history when the run was resumed.
    replay: HashMap<String, ActionRecord>,
    /// Retries in flight when the run was resumed, by action path.
    retries_in_flight: HashMap<String, AttemptInFlight>,
    sequence: AtomicI64,
    /// Final records of instant actions not written yet; see the module documentation.
    unwritten: Mutex<HeldBack>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    pub fn state(&self) -> MutexGuard<'_, RunState> {
        // Holders never panic while mutating, so a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_terminated(&self) -> bool {
        self.state().terminated.is_some()
    }

    fn now(&self) -> i64 {
        self.engine.clock.now_ms()
    }

    pub(crate) fn lease(&self) -> RunLease<'_> {
        self.engine.lease(&self.run_id)
    }

    fn take_unwritten(&self) -> Vec<FinishedAction> {
        let mut held = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *held).records
    }

    /// Writes the final records held back so far.
    fn write_unwritten(&self) -> Result<(), DbError> {
        self.engine
            .db
            .actions_finished(self.lease(), &self.take_unwritten())
    }

    /// Records an action as `Running`, after the records held back so far: an action that
    /// starts may reach outside the run.
    pub fn record_started(&self, record: &ActionRecord) -> Result<(), DbError> {
        self.write_unwritten()?;
        self.engine.db.action_started(self.lease(), record)
    }

    /// Records an action's end: held back for an instant action, written at once (with what
    /// was held back) for any other.
    fn record_finished(&self, finished: FinishedAction, instant: bool) -> Result<(), DbError> {
        let mut held = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
        held.push(finished);
        if instant && held.bytes < HeldBack::MAX_BYTES {
            return Ok(());
        }
        let all = std::mem::take(&mut *held).records;
        drop(held);
        self.engine.db.actions_finished(self.lease(), &all)
    }
}

impl Drop for RunContext {
    /// A run that is dropped before its end (cancelled, or its engine shutting down) still
    /// records what it finished.
    fn drop(&mut self) {
        if let Err(e) = self.write_unwritten() {
            tracing::warn!(run_id = %self.run_id, error = %e, "cannot record finished actions");
        }
    }
}

/// Final records of instant actions held back from the history until the run's next write.
#[derive(Default)]
struct HeldBack {
    records: Vec<FinishedAction>,
    /// About how many bytes of JSON their inputs and outputs take.
    bytes: usize,
}

impl HeldBack {
    /// Held-back records are written once they hold this much: a loop of instant actions
    /// over large values (say 5,000 iterations composing 1 MiB each) would otherwise keep
    /// every iteration's values in memory until the run ended.
    const MAX_BYTES: usize = 4 << 20;

    fn push(&mut self, finished: FinishedAction) {
        let record = &finished.record;
        let values = [&record.inputs, &record.outputs].into_iter().flatten().chain(
            finished
                .secure_state
                .iter()
                .flat_map(|(inputs, outputs)| [inputs, outputs]),
        );
        self.bytes = values
            .map(crate::expr::json_size_hint)
            .fold(self.bytes, usize::saturating_add);
        self.records.push(finished);
    }
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A boxed future; the executor recurses through containers.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A fresh run id: time-ordered, so ids sort by start.
pub fn new_run_id(now_ms: i64) -> String {
    let mut random = [0u8; 6];
    let _ = getrandom::fill(&mut random);
    format!("{now_ms:013}-{}", hex::encode(random))
}

/// This process's lease owner name: `host:pid`.
pub fn process_lease_owner() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Whether the process that owns a lease is gone. Only owners on this machine can be checked
/// (through /proc); others wait for their lease to expire.
pub fn lease_owner_is_dead(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return false;
    };
    if host != hostname() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => false,
        Ok(pid) => {
            std::path::Path::new("/proc").is_dir() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        Err(_) => false,
    }
}

/// Creates the run record; [`execute_run`] then runs it.
pub fn create_run(
    engine: &EngineShared,
    workflow: &str,
    trigger_outputs: Value,
    resubmitted_from: Option<String>,
    parent: Option<String>,
    run_id: Option<String>,
) -> Result<RunRecord, DbError> {
    let mut run = new_run(engine, workflow, None, trigger_outputs);
    run.resubmitted_from = resubmitted_from;
    run.parent = parent;
    if let Some(id) = run_id {
        run.id = id;
    }
    engine
        .db
        .create_run(&run, &engine.lease_owner, LEASE.as_millis() as i64)?;
    Ok(run)
}

/// The record of a new run of `workflow`, not yet stored. `trigger` names the trigger that
/// fired (the workflow's first trigger when `None`).
pub fn new_run(
    engine: &EngineShared,
    workflow: &str,
    trigger: Option<&str>,
    trigger_outputs: Value,
) -> RunRecord {
    let now = engine.clock.now_ms();
    let trigger_name = trigger.map(str::to_owned).unwrap_or_else(|| {
        engine
            .plans
            .get(workflow)
            .and_then(|p| p.workflow.triggers.first())
            .map_or_else(|| "manual".to_owned(), |t| t.name.clone())
    });
    let started = scope_time(now);
    RunRecord {
        id: new_run_id(now),
        workflow: workflow.to_owned(),
        status: Status::Running,
        trigger: json!({
            "name": trigger_name,
            "status": "Succeeded",
            "startTime": started,
            "endTime": started,
            "outputs": trigger_outputs,
        }),
        response: None,
        error: None,
        started_at: now,
        ended_at: None,
        resubmitted_from: None,
        parent: None,
    }
}

fn scope_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Executes (or resumes) `run`, whose lease this engine holds, to its end. `depth` is how many
/// Workflow actions deep it is (0 unless a Workflow action started it); see [`MAX_RUN_DEPTH`].
pub async fn execute_run(
    engine: Arc<EngineShared>,
    run: RunRecord,
    depth: u32,
) -> Result<RunRecord, DbError> {
    let Some(plan) = engine.plans.get(&run.workflow).cloned() else {
        let error = json!({"code": "WorkflowNotFound", "message": format!("the project no longer has workflow {:?}", run.workflow)});
        engine.db.finish_run(
            engine.lease(&run.id),
            Status::Failed,
            None,
            Some(&error),
            engine.clock.now_ms(),
            &[],
        )?;
        return engine.db.run(&run.id);
    };
    let previous = engine.db.actions(&run.id, true)?;
    let resumed = !previous.is_empty();
    let retries_in_flight = if resumed {
        engine.db.attempts_in_flight(&run.id)?
    } else {
        HashMap::new()
    };
    let next_sequence = previous.iter().map(|r| r.sequence).max().unwrap_or(0) + 1;
    // Replay what finished before: variables, the response, a Terminate.
    let mut state = RunState::default();
    let mut finished: Vec<&ActionRecord> = previous.iter().filter(|r| r.status.is_terminal()).collect();
    finished.sort_by_key(|r| (r.ended_at, r.sequence));
    for record in finished {
        if record.status == Status::Succeeded {
            actions::apply_recorded_effects(&mut state, &record.kind, record.outputs.as_ref());
        }
        state.records.insert(record.path.clone(), record.clone());
    }
    let context = Arc::new(RunContext {
        engine: engine.clone(),
        plan: plan.clone(),
        run_id: run.id.clone(),
        trigger: run.trigger.clone(),
        depth,
        state: Mutex::new(state),
        replay: previous.into_iter().map(|r| (r.path.clone(), r)).collect(),
        retries_in_flight,
        sequence: AtomicI64::new(next_sequence),
        unwritten: Mutex::new(HeldBack::default()),
    });
    engine.emit(RunEvent::RunStarted {
        run_id: run.id.clone(),
        workflow: run.workflow.clone(),
        resumed,
    });

    // Keep the lease while the run is in flight.
    engine.ensure_heartbeat();
    // A history that could not be written is not the workflow's failure: the run stops here,
    // unfinished, and is resumed from what was recorded (the caller gives up its lease so that
    // the next sweep for orphaned runs takes it up), instead of ending Failed for good over a
    // locked or briefly full disk.
    let SetOutcome { status, failed } = run_set(&context, &plan.workflow.actions, &Frame::default()).await?;

    let (status, error) = match context.state().terminated.clone() {
        Some((status, error)) => (status, error),
        None => {
            let error = (status != Status::Succeeded).then(|| {
                json!({"code": "ActionFailed", "message": format!("an action failed: {}", failed.join(", "))})
            });
            (status, error)
        }
    };
    let response = context.state().response.clone();
    let ended_at = engine.clock.now_ms();
    let ended = engine.db.finish_run(
        engine.lease(&run.id),
        status,
        response.as_ref(),
        error.as_ref(),
        ended_at,
        &context.take_unwritten(),
    )?;
    if plan.has_webhooks {
        // A subscription still open here outlived its action (a Terminate in another branch
        // ended the run around it); the run's end ends it.
        if let Err(e) = super::webhooks::end_all(&engine, &run.id).await {
            tracing::warn!(run_id = %run.id, error = %e, "could not end the run's webhook subscriptions");
        }
    }
    engine.metrics.run_finished(&run.workflow, status.as_str());
    engine.emit(RunEvent::RunFinished {
        run_id: run.id.clone(),
        status,
    });
    if !ended {
        // Someone else ended it first (a cancel): the history has the truth.
        return engine.db.run(&run.id);
    }
    Ok(RunRecord {
        status,
        response,
        error,
        ended_at: Some(ended_at),
        ..run
    })
}

/// The result of one set of sibling actions.
#[derive(Debug)]
pub struct SetOutcome {
    pub status: Status,
    /// Names of the actions that failed (for the run's error message).
    pub failed: Vec<String>,
}

/// Runs a set of sibling actions as a graph and returns its status.
pub fn run_set<'a>(
    run: &'a Arc<RunContext>,
    actions: &'a [Action],
    frame: &'a Frame,
) -> BoxFuture<'a, Result<SetOutcome, DbError>> {
    Box::pin(async move {
        let mut statuses: HashMap<&str, Status> = HashMap::new();
        let mut started: HashSet<&str> = HashSet::new();
        let mut running = FuturesUnordered::new();
        loop {
            // Start or skip everything whose predecessors are done, until nothing changes.
            loop {
                if run.is_terminated() {
                    break;
                }
                let mut progressed = false;
                for action in actions {
                    if started.contains(action.name.as_str()) {
                        continue;
                    }
                    let ready = action.run_after.keys().all(|p| statuses.contains_key(p.as_str()));
                    if !ready {
                        continue;
                    }
                    started.insert(&action.name);
                    let allowed = action
                        .run_after
                        .iter()
                        .all(|(p, wanted)| wanted.contains(&statuses[p.as_str()]));
                    if allowed {
                        let name = action.name.as_str();
                        running.push(async move { (name, run_action(run, action, frame).await) });
                    } else {
                        record_skipped(run, action, frame)?;
                        statuses.insert(&action.name, Status::Skipped);
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
            match running.next().await {
                Some((name, status)) => {
                    statuses.insert(name, status?);
                }
                None => break,
            }
        }
        // Whatever never became ready (a cycle or a missing predecessor, which validation
        // reports) is skipped, unless the run was terminated.
        if !run.is_terminated() {
            for action in actions {
                if !started.contains(action.name.as_str()) {
                    record_skipped(run, action, frame)?;
                    statuses.insert(&action.name, Status::Skipped);
                }
            }
        }
        Ok(set_outcome(actions, &statuses))
    })
}

/// The status of a set: it fails when an action in it failed or timed out and no sibling that
/// runs after that status (a handler) ran. See the module docs.
fn set_outcome(actions: &[Action], statuses: &HashMap<&str, Status>) -> SetOutcome {
    let mut failed = Vec::new();
    for action in actions {
        let Some(status @ (Status::Failed | Status::TimedOut | Status::Cancelled)) =
            statuses.get(action.name.as_str()).copied()
        else {
            continue;
        };
        let handled = actions.iter().any(|other| {
            other
                .run_after
                .get(&action.name)
                .is_some_and(|wanted| wanted.contains(&status))
                && statuses
                    .get(other.name.as_str())
                    .is_some_and(|s| *s != Status::Skipped)
        });
        if !handled {
            failed.push(action.name.clone());
        }
    }
    SetOutcome {
        status: if failed.is_empty() {
            Status::Succeeded
        } else {
            Status::Failed
        },
        failed,
    }
}

fn record_skipped(run: &RunContext, action: &Action, frame: &Frame) -> Result<(), DbError> {
    let path = frame.path(&action.name);
    if let Some(previous) = run.replay.get(&path)
        && previous.status.is_terminal()
    {
        run.state().records.insert(path, previous.clone());
        return Ok(());
    }
    let now = run.now();
    let record = ActionRecord {
        run_id: run.run_id.clone(),
        path: path.clone(),
        name: action.name.clone(),
        parent: frame.parent.clone(),
        kind: action.type_name.clone(),
        status: Status::Skipped,
        attempts: 0,
        started_at: now,
        ended_at: Some(now),
        inputs: None,
        outputs: None,
        error: None,
        idempotency_key: idempotency_key(&run.run_id, &path),
        secure_inputs: action.secure_inputs,
        secure_outputs: action.secure_outputs,
        sequence: run.sequence.fetch_add(1, Ordering::Relaxed),
    };
    run.record_finished(
        FinishedAction {
            record: record.clone(),
            last_attempt: None,
            secure_state: None,
        },
        true,
    )?;
    run.state().records.insert(path.clone(), record);
    run.engine.emit(RunEvent::ActionFinished {
        run_id: run.run_id.clone(),
        path,
        status: Status::Skipped,
        attempts: 0,
        duration: Duration::ZERO,
        error: None,
        replayed: false,
    });
    Ok(())
}

/// The key every attempt of one action execution forwards to connectors.
pub fn idempotency_key(run_id: &str, path: &str) -> String {
    format!("{run_id}/{path}")
}

/// What executing an action produced.
#[derive(Debug, Clone)]
pub struct ActionResult {
    pub status: Status,
    pub inputs: Option<Value>,
    pub outputs: Option<Value>,
    pub error: Option<Value>,
}

impl ActionResult {
    pub fn succeeded(inputs: Option<Value>, outputs: Option<Value>) -> ActionResult {
        ActionResult {
            status: Status::Succeeded,
            inputs,
            outputs,
            error: None,
        }
    }

    pub fn failed(inputs: Option<Value>, code: &str, message: impl Into<String>) -> ActionResult {
        ActionResult {
            status: Status::Failed,
            inputs,
            outputs: None,
            error: Some(json!({"code": code, "message": message.into()})),
        }
    }
}

/// Everything an action's execution needs to know about itself.
pub struct ActionCall<'a> {
    pub run: &'a Arc<RunContext>,
    pub action: &'a Action,
    pub frame: &'a Frame,
    pub path: String,
    /// Attempts made before this process took over (after a resume).
    pub previous_attempts: u32,
    /// Inputs recorded before a crash, reused by loops so a resumed Foreach sees the same items.
    pub recorded_inputs: Option<Value>,
    /// When this process started the action.
    pub started_at: i64,
    /// When the action first started, before any resume: a Wait's interval and an Until's
    /// `limit.timeout` count from here, so a restart does not begin them again.
    pub first_started_at: i64,
    /// Set when the process that ran this action before stopped during a retry delay: the
    /// retry (attempt `previous_attempts + 1`) is due then and has not run.
    pub retry_due_at: Option<i64>,
    pub sequence: i64,
    attempts: Mutex<Vec<AttemptRecord>>,
    /// When the attempt in flight began, once a retry has begun (see `attempt_started`).
    attempt_started_at: Mutex<Option<i64>>,
}

impl std::fmt::Debug for ActionCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionCall")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ActionCall<'_> {
    /// Records a finished attempt that will be retried (the last one is written with the
    /// action's final state). Its retry is due at `retry_due_at`.
    pub fn record_retried_attempt(&self, attempt: AttemptRecord, retry_due_at: i64) -> Result<(), DbError> {
        self.run.write_unwritten()?;
        self.run
            .engine
            .db
            .attempt_finished(self.run.lease(), &self.path, &attempt, Some(retry_due_at))?;
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(attempt);
        Ok(())
    }

    /// Records that attempt `number` (a retry, or the first attempt after a resume) begins
    /// now, before anything of it reaches a connector: from here on, a process that stops
    /// leaves an attempt that may have had effects, which a resume records as Interrupted.
    pub fn attempt_started(&self, number: u32, at: i64) -> Result<(), DbError> {
        self.run.write_unwritten()?;
        self.run
            .engine
            .db
            .attempt_started(self.run.lease(), &self.path, number, at)?;
        *self.attempt_started_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
        Ok(())
    }

    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.run.run_id, &self.path)
    }
}

/// Runs an action's execution so that a panic in cordon's own code fails that action instead
/// of the process. Uncaught, the panic would take `cordon run` (or the run's task in the
/// server) down with the action still Running in the history, and every resume would run it
/// into the same panic again. Shared run state is behind mutexes that every user recovers
/// from poisoning, so carrying on after the unwind is sound.
async fn guard_against_panics(
    execution: impl Future<Output = Result<ActionResult, DbError>>,
) -> Result<ActionResult, DbError> {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(execution).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(panic = %what, "an action panicked; it is recorded as failed");
            Ok(ActionResult::failed(
                None,
                "InternalError",
                format!(
                    "cordon failed while running this action ({what}); this is a bug in cordon, not in \
                     the workflow. The action is recorded as failed so the run can go on; please report it"
                ),
            ))
        }
    }
}

fn run_action<'a>(
    run: &'a Arc<RunContext>,
    action: &'a Action,
    frame: &'a Frame,
) -> BoxFuture<'a, Result<Status, DbError>> {
    Box::pin(async move {
        let path = frame.path(&action.name);
        let previous = run.replay.get(&path);
        if let Some(record) = previous
            && record.status.is_terminal()
        {
            run.state().records.insert(path.clone(), record.clone());
            run.engine.emit(RunEvent::ActionFinished {
                run_id: run.run_id.clone(),
                path,
                status: record.status,
                attempts: record.attempts,
                duration: Duration::from_millis(
                    record
                        .ended_at
                        .unwrap_or(record.started_at)
                        .saturating_sub(record.started_at) as u64,
                ),
                error: None,
                replayed: true,
            });
            return Ok(record.status);
        }

        let started_at = run.now();
        let sequence = previous.map_or_else(|| run.sequence.fetch_add(1, Ordering::Relaxed), |r| r.sequence);
        // What the attempt recorded as in flight had come to. If its retry delay had not
        // ended, the retry never ran: it is made when the rest of the delay has passed.
        // Otherwise it was interrupted mid-attempt: that attempt counts, and the history says
        // what happened to it. Only a call (Http, ServiceProvider) is made again as a new
        // attempt; a container, a Wait and a Workflow action (whose child run resumes) go on
        // with the attempt they were on.
        let retry_in_flight = previous.and_then(|r| {
            run.retries_in_flight
                .get(&path)
                .filter(|retry| retry.attempt == r.attempts)
        });
        let retry_due_at = retry_in_flight
            .filter(|retry| retry.started_at.is_none())
            .map(|retry| retry.due_at);
        let makes_new_attempts = matches!(
            action.kind,
            ActionKind::Http { .. } | ActionKind::ServiceProvider { .. }
        );
        let continues_attempt =
            previous.is_some_and(|r| r.attempts > 0) && (retry_due_at.is_some() || !makes_new_attempts);
        let previous_attempts = match previous {
            Some(r) if continues_attempt => r.attempts - 1,
            Some(r) => r.attempts,
            None => 0,
        };
        if let Some(interrupted) = previous
            && interrupted.attempts > 0
            && !continues_attempt
        {
            run.engine.db.attempt_finished(
                run.lease(),
                &path,
                &AttemptRecord {
                    attempt: interrupted.attempts,
                    status: Status::Failed,
                    started_at: retry_in_flight
                        .and_then(|retry| retry.started_at)
                        .unwrap_or(interrupted.started_at),
                    ended_at: started_at,
                    error: Some(json!({"code": "Interrupted", "message": "the process running this attempt stopped; the run was resumed"})),
                },
                None,
            )?;
        }
        let mut record = ActionRecord {
            run_id: run.run_id.clone(),
            path: path.clone(),
            name: action.name.clone(),
            parent: frame.parent.clone(),
            kind: action.type_name.clone(),
            status: Status::Running,
            // The attempt now in flight.
            attempts: previous_attempts + 1,
            started_at: previous.map_or(started_at, |r| r.started_at),
            ended_at: None,
            inputs: None,
            outputs: None,
            error: None,
            idempotency_key: idempotency_key(&run.run_id, &path),
            secure_inputs: action.secure_inputs,
            secure_outputs: action.secure_outputs,
            sequence,
        };
        if !action.is_instant() {
            run.record_started(&record)?;
        }
        // Containers are visible to `result()` and to their children while they run.
        run.state().records.insert(path.clone(), record.clone());
        run.engine.emit(RunEvent::ActionStarted {
            run_id: run.run_id.clone(),
            path: path.clone(),
            kind: action.type_name.clone(),
        });

        let call = ActionCall {
            run,
            action,
            frame,
            path: path.clone(),
            previous_attempts,
            recorded_inputs: previous.and_then(|r| r.inputs.clone()),
            started_at,
            first_started_at: record.started_at,
            retry_due_at,
            sequence,
            attempts: Mutex::new(Vec::new()),
            // An attempt that goes on began with the action (a retry's start is set when made).
            attempt_started_at: Mutex::new(
                (continues_attempt && retry_due_at.is_none()).then_some(record.started_at),
            ),
        };
        let execution = guard_against_panics(actions::execute(&call));
        let result = match action.timeout {
            // The limit counts from the action's first start: after a resume, only what is
            // left of it. With nothing left the action is not executed again at all.
            Some(limit) => {
                let spent = Duration::from_millis(started_at.saturating_sub(record.started_at).max(0) as u64);
                let left = limit.saturating_sub(spent);
                let timed_out = || ActionResult {
                    status: Status::TimedOut,
                    inputs: None,
                    outputs: None,
                    error: Some(
                        json!({"code": "ActionTimedOut", "message": format!("the action did not finish within its limit.timeout of {limit:?}")}),
                    ),
                };
                if left.is_zero() {
                    actions::cancel_child_of_timed_out(&call)?;
                    async_http::end_timed_out(&call)?;
                    super::webhooks::end_timed_out(&call).await?;
                    timed_out()
                } else {
                    match tokio::time::timeout(left, execution).await {
                        Ok(result) => result?,
                        Err(_) => {
                            actions::cancel_child_of_timed_out(&call)?;
                            async_http::end_timed_out(&call)?;
                            super::webhooks::end_timed_out(&call).await?;
                            timed_out()
                        }
                    }
                }
            }
            None => execution.await?,
        };

        let ended_at = run.now();
        let retried = call.attempts.lock().unwrap_or_else(|p| p.into_inner()).len() as u32;
        let attempts = previous_attempts + retried + 1;
        let last_attempt = AttemptRecord {
            attempt: attempts,
            status: result.status,
            started_at: call
                .attempt_started_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or(started_at),
            ended_at,
            error: result.error.clone(),
        };
        record.status = result.status;
        record.attempts = attempts;
        record.ended_at = Some(ended_at);
        record.error = result.error.clone();
        let inputs = result.inputs.unwrap_or(Value::Null);
        let outputs = result.outputs.unwrap_or(Value::Null);
        let secure = action.secure_inputs || action.secure_outputs;
        record.inputs = (!action.secure_inputs).then(|| match action.kind {
            ActionKind::Http { .. } | ActionKind::HttpWebhook => {
                super::builtin_inputs::recorded_http_inputs(&inputs)
            }
            _ => inputs.clone(),
        });
        record.outputs = (!action.secure_outputs).then(|| outputs.clone());
        // In memory (for expressions) the record keeps secure values: later actions may use
        // them, they only stay out of the history.
        let mut live = record.clone();
        live.inputs = Some(inputs);
        live.outputs = Some(outputs);
        run.record_finished(
            FinishedAction {
                record,
                last_attempt: Some(last_attempt),
                secure_state: secure.then(|| {
                    (
                        live.inputs.clone().unwrap_or(Value::Null),
                        live.outputs.clone().unwrap_or(Value::Null),
                    )
                }),
            },
            action.is_instant(),
        )?;
        let status = live.status;
        let error = live
            .error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let duration = Duration::from_millis(ended_at.saturating_sub(started_at) as u64);
        run.engine.metrics.action_finished(
            &run.plan.workflow.name,
            &live.kind,
            status.as_str(),
            duration.as_secs_f64(),
        );
        run.state().records.insert(path.clone(), live);
        run.engine.emit(RunEvent::ActionFinished {
            run_id: run.run_id.clone(),
            path,
            status,
            attempts,
            duration,
            error,
            replayed: false,
        });
        Ok(status)
    })
}

/// Every action name in a workflow, for validation and display.
pub fn action_names(workflow: &Workflow) -> Vec<&str> {
    all_actions(&workflow.actions)
        .into_iter()
        .map(|a| a.name.as_str())
        .collect()
}

/// Builds the shared engine state from a project whose connectors are already connected.
#[allow(clippy::too_many_arguments)]
pub fn shared(
    project: &Project,
    connections: HashMap<String, Connection>,
    secret_settings: BTreeSet<String>,
    http: Connection,
    db: Arc<dyn Db>,
    clock: Arc<dyn Clock>,
    lease_owner: String,
    observer: Option<Observer>,
) -> EngineShared {
    EngineShared {
        metrics: http.connector().runtime().metrics().clone(),
        plans: project
            .workflows
            .iter()
            .map(|(name, w)| (name.clone(), Arc::new(Plan::new(w.clone()))))
            .collect(),
        parameters: project.parameters.clone(),
        settings: project.settings.clone(),
        secret_settings,
        connections,
        http,
        db,
        clock,
        lease_owner,
        observer,
        heartbeat: std::sync::OnceLock::new(),
        callbacks: std::sync::OnceLock::new(),
        callback_waiters: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_action_is_a_failed_action_not_a_dead_process() {
        let cases: [(&str, Box<dyn std::any::Any + Send>); 3] = [
            ("a str", Box::new("a str")),
            ("a String", Box::new(String::from("a String"))),
            ("a panic without a message", Box::new(42_u8)),
        ];
        for (expected, payload) in cases {
            let result = guard_against_panics(async move {
                if true {
                    std::panic::resume_unwind(payload);
                }
                Ok(ActionResult::succeeded(None, None))
            })
            .await
            .expect("no database error");
            assert_eq!(result.status, Status::Failed);
            let error = result.error.expect("an error");
            assert_eq!(error["code"], "InternalError");
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains(expected), "{message}");
        }
        let fine = guard_against_panics(async { Ok(ActionResult::succeeded(None, None)) })
            .await
            .expect("no database error");
        assert_eq!(fine.status, Status::Succeeded);
    }
}
