//! The workflow engine: Logic Apps-shaped definitions run against sandboxed connectors, with
//! durable run history.
//!
//! - [`project`] reads a project directory; [`definition`] reads `workflow.json`;
//! - [`validate`] finds every problem before a run, each with workflow, action and JSON path;
//! - [`executor`] runs the action graph, writing every step to the [`crate::db`] history;
//! - [`retry`] holds `retryPolicy` and the clock; [`connections`] binds `connections.json` to
//!   live connections.
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

pub mod connections;
pub mod definition;
pub mod duration;
pub mod executor;
pub mod project;
pub mod retry;
pub mod validate;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;

use crate::db::{Db, RunRecord};
use crate::ids::ConnectionName;
use crate::secrets::NoSecrets;
use crate::{Connection, ConnectionConfig, Runtime, builtin};

use executor::{EngineShared, Observer};
use project::Project;
use retry::{Clock, SystemClock};

/// One problem in a project, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The workflow's name, or the file (`connections.json`) for project-level problems.
    pub workflow: String,
    pub action: Option<String>,
    /// A JSON path into the file, such as `$.definition.actions.Send.inputs.body`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.action {
            Some(action) => write!(
                f,
                "{}: action {action:?} at {}: {}",
                self.workflow, self.path, self.message
            ),
            None => write!(f, "{}: at {}: {}", self.workflow, self.path, self.message),
        }
    }
}

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
    pub async fn load(project: &Project, runtime: &Runtime) -> anyhow::Result<(Connections, Vec<Problem>)> {
        let mut by_name = HashMap::new();
        let mut secret_settings = BTreeSet::new();
        let mut problems = Vec::new();
        for (name, spec) in &project.connections {
            let loaded = async {
                let connector = connections::load_connector(runtime, project, spec).await?;
                connections::connect(&connector, project, spec)
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
            .load_bytes(
                builtin::find("http")
                    .map(|b| b.component)
                    .context("the http connector is not built in")?,
                "built-in connector \"http\"",
            )
            .await?;
        let http = http_connector.connect(ConnectionConfig {
            name: ConnectionName::new("http")?,
            parameters: Default::default(),
            grant: project.http_grant.clone(),
            secrets: Arc::new(NoSecrets),
        })?;
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
        }
    }
}

/// Runs a project's workflows.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<EngineShared>,
}

impl Engine {
    /// Loads the project's connectors and prepares its workflows. Fails if the project has
    /// problems; `cordon validate` lists them.
    pub async fn open(
        project: &Project,
        runtime: &Runtime,
        options: EngineOptions,
    ) -> anyhow::Result<Engine> {
        let (connections, mut problems) = Connections::load(project, runtime).await?;
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
        Engine {
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

    /// Starts a run of `workflow` with `trigger_body` and runs it to its end.
    pub async fn run(&self, workflow: &str, trigger_body: Value) -> anyhow::Result<RunRecord> {
        let run = self.accept(workflow, serde_json::json!({"headers": {}, "body": trigger_body}))?;
        self.execute(run).await
    }

    /// Records a new run of `workflow` whose trigger produced `trigger_outputs`
    /// (`{"headers": ..., "body": ...}`), without running it yet. Once this returns, the run
    /// is durable: if the process dies, the next engine resumes it.
    pub fn accept(&self, workflow: &str, trigger_outputs: Value) -> anyhow::Result<RunRecord> {
        if !self.shared.plans.contains_key(workflow) {
            let known: Vec<&str> = self.shared.plans.keys().map(String::as_str).collect();
            anyhow::bail!(
                "there is no workflow {workflow:?}; the project has: {}",
                known.join(", ")
            );
        }
        Ok(executor::create_run(
            &self.shared,
            workflow,
            trigger_outputs,
            None,
            None,
            None,
        )?)
    }

    /// Runs an accepted run to its end.
    pub async fn execute(&self, run: RunRecord) -> anyhow::Result<RunRecord> {
        Ok(executor::execute_run(self.shared.clone(), run).await?)
    }

    /// Records a new run with the trigger outputs of an earlier one, without running it yet.
    pub fn accept_resubmission(&self, run_id: &str) -> anyhow::Result<RunRecord> {
        let original = self.shared.db.run(run_id)?;
        let outputs = original.trigger.get("outputs").cloned().unwrap_or(Value::Null);
        Ok(executor::create_run(
            &self.shared,
            &original.workflow,
            outputs,
            Some(original.id.clone()),
            None,
            None,
        )?)
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
        let now = self.shared.clock.now_ms();
        let claimed = self.shared.db.claim_orphaned_runs(
            &self.shared.lease_owner,
            executor::LEASE.as_millis() as i64,
            now,
            &executor::lease_owner_is_dead,
        )?;
        let mut finished = Vec::new();
        for run in claimed.into_iter().filter(|r| r.parent.is_none()) {
            finished.push(executor::execute_run(self.shared.clone(), run).await?);
        }
        Ok(finished)
    }
}
