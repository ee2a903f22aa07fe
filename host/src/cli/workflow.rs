//! `cordon validate`, `cordon run` and `cordon runs`: the workflow commands.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::db::{ActionRecord, Db, RunFilter, RunRecord, SqliteDb, Status};
use crate::workflow::executor::RunEvent;
use crate::workflow::project::Project;
use crate::workflow::{Connections, Engine, EngineOptions, validate};

use super::secrets::store_if_keyed;
use super::{CacheArgs, read_json, runtime};

/// Where the run history is.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The project directory.
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    /// The run history database [default: PROJECT/.cordon/history.db].
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        #[command(flatten)]
        history: HistoryArgs,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs with this status (Waiting, Running, Succeeded, Failed, Cancelled, TimedOut).
        #[arg(long)]
        status: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
        /// Only runs older than this one (the last run of the previous page).
        #[arg(long, value_name = "RUN_ID")]
        before: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run as a tree of actions with status, attempts and duration.
    Show {
        run_id: String,
        #[command(flatten)]
        history: HistoryArgs,
        /// Also print inputs and outputs (secure ones stay redacted).
        #[arg(long)]
        verbose: bool,
        /// Print JSON, with every attempt.
        #[arg(long)]
        json: bool,
    },
    /// Delete finished runs that ended more than DAYS days ago.
    ///
    /// Their actions and attempts go with them; unfinished runs stay, however old. `cordon
    /// serve` does this itself, hourly (--retention-days).
    Prune {
        /// Delete finished runs that ended more than this many days ago.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        older_than_days: u32,
        #[command(flatten)]
        history: HistoryArgs,
    },
    /// Run a workflow again with the trigger outputs of an earlier run.
    Resubmit {
        run_id: String,
        #[command(flatten)]
        history: HistoryArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

pub fn default_db_path(project: &Path) -> PathBuf {
    project.join(".cordon").join("history.db")
}

/// Where the history is: `--db` if given, else PROJECT/.cordon/history.db. A mistyped
/// `--project` must not leave a new directory and an empty history behind, so for the default
/// the project directory has to exist; an explicit `--db` is created where it says.
fn history_path(project: &Path, db: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = db {
        return Ok(path.to_owned());
    }
    if !project.is_dir() {
        anyhow::bail!(
            "project directory {project:?} does not exist; pass --project DIR, the folder with \
             connections.json and the workflow folders (the history is DIR/.cordon/history.db), or --db FILE"
        );
    }
    Ok(default_db_path(project))
}

/// Opens the history, creating it if need be.
pub(super) fn open_db(project: &Path, db: Option<&Path>) -> anyhow::Result<Arc<SqliteDb>> {
    Ok(Arc::new(SqliteDb::open(&history_path(project, db)?)?))
}

/// Opens the history for a command that only reads it: `Err(path)` if there is none yet, so
/// that reading never creates a history file.
pub(super) fn open_existing_db(
    project: &Path,
    db: Option<&Path>,
) -> anyhow::Result<Result<Arc<SqliteDb>, PathBuf>> {
    let path = history_path(project, db)?;
    if !path.exists() {
        return Ok(Err(path));
    }
    Ok(Ok(Arc::new(SqliteDb::open(&path)?)))
}

/// The error for a run id when there is no history to look it up in.
fn no_history(run_id: &str, path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no run with id {run_id:?}: there is no run history at {path:?} yet (`cordon run` writes it; \
         --project or --db says where to look)"
    )
}

/// `cordon validate PROJECT`.
pub async fn validate_project(
    project: &Path,
    json_output: bool,
    cache: &CacheArgs,
    tenants: bool,
) -> anyhow::Result<ExitCode> {
    let runtime = runtime(cache)?;
    if tenants {
        return validate_tenants(project, json_output, &runtime).await;
    }
    let project = Project::open(project)?;
    let problems = project_problems(&project, &runtime).await?;
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"problems": problems}))?
        );
    } else if problems.is_empty() {
        println!("ok: {}", project_summary(&project));
    } else {
        for problem in &problems {
            println!("{problem}");
        }
        eprintln!("{} problem{} found", problems.len(), plural(problems.len()));
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `cordon validate DIR --tenants`: every tenant as `cordon serve DIR --tenants` would open
/// it (its `tenant.json` too), so an operator finds the tenant that would answer 503 before
/// restarting the server.
async fn validate_tenants(
    dir: &Path,
    json_output: bool,
    runtime: &crate::Runtime,
) -> anyhow::Result<ExitCode> {
    let mut report = serde_json::Map::new();
    let mut total = 0;
    for (id, path) in crate::tenants::tenant_dirs(dir)? {
        let problems = match Project::open(&path) {
            Ok(project) => {
                // A tenant whose connections cannot even be loaded is one more problem to
                // report, not a reason to stop checking the others.
                let mut problems = match project_problems(&project, runtime).await {
                    Ok(problems) => problems,
                    Err(e) => vec![file_problem("connections.json", format!("{e:#}"))],
                };
                if let Err(e) = crate::tenants::read_settings(&project) {
                    let message = format!("{e:#}");
                    let message = message.strip_prefix("tenant.json: ").unwrap_or(&message);
                    problems.insert(0, file_problem("tenant.json", message.to_owned()));
                }
                if !json_output && problems.is_empty() {
                    println!("{id}: ok: {}", project_summary(&project));
                }
                problems
            }
            Err(e) => vec![file_problem(".", format!("{e:#}"))],
        };
        if !json_output {
            for problem in &problems {
                println!("{id}: {problem}");
            }
        }
        total += problems.len();
        report.insert(id.to_string(), json!({"problems": problems}));
    }
    if json_output {
        println!("{}", serde_json::to_string_pretty(&json!({"tenants": report}))?);
    } else if total > 0 {
        eprintln!("{total} problem{} found", plural(total));
    }
    Ok(if total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every problem of an opened project: its files, its connections (connectors loaded and
/// checked), and its workflows against them.
async fn project_problems(
    project: &Project,
    runtime: &crate::Runtime,
) -> anyhow::Result<Vec<crate::workflow::Problem>> {
    // The secret store is opened only when a master key is set, so that validating a project
    // that uses none does not create its history file.
    let store = if std::env::var_os(crate::secrets::store::MASTER_KEY_ENV).is_some()
        || std::env::var_os(crate::secrets::store::MASTER_KEY_FILE_ENV).is_some()
    {
        store_if_keyed(open_db(&project.root, None)?)?
    } else {
        None
    };
    let (connections, mut problems) = Connections::load(project, runtime, store.as_ref(), None).await?;
    problems.splice(0..0, project.problems.iter().cloned());
    problems.extend(validate::validate(project, &connections));
    Ok(problems)
}

/// A problem of a whole file rather than of a workflow.
fn file_problem(file: &str, message: String) -> crate::workflow::Problem {
    crate::workflow::Problem {
        workflow: file.to_owned(),
        action: None,
        path: "$".to_owned(),
        message,
    }
}

fn project_summary(project: &Project) -> String {
    format!(
        "{} workflow{}, {} connection{}",
        project.workflows.len(),
        plural(project.workflows.len()),
        project.connections.len(),
        plural(project.connections.len())
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A `--trigger-body` with a `--content-type`: its bytes (of @FILE, or the argument) shaped as
/// the server shapes a request body of that type.
async fn typed_body(text: &str, content_type: &str) -> anyhow::Result<Value> {
    let bytes = match text.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("--trigger-body: cannot read {path:?}"))?,
        None => text.as_bytes().to_vec(),
    };
    crate::server::request_body::trigger_body(Some(content_type), bytes.into())
        .await
        .with_context(|| format!("--trigger-body is not what --content-type {content_type:?} says"))
}

/// `cordon run PROJECT WORKFLOW`.
pub async fn run_workflow(
    project_path: &Path,
    workflow: &str,
    trigger_body: Option<&str>,
    content_type: Option<&str>,
    db: Option<&Path>,
    (callback_listen, public_url): (std::net::SocketAddr, Option<&str>),
    cache: &CacheArgs,
) -> anyhow::Result<ExitCode> {
    let project = Project::open(project_path)?;
    project.workflow(workflow)?;
    let trigger_body = match (trigger_body, content_type) {
        (None, _) => Value::Null,
        (Some(text), None) => read_json("--trigger-body", text)?,
        (Some(text), Some(content_type)) => typed_body(text, content_type).await?,
    };
    let db = open_db(project_path, db)?;
    let view = LiveView::new();
    let mut options = EngineOptions::new(db.clone());
    options.secret_store = store_if_keyed(db.clone())?;
    let observer_view = view.clone();
    options.observer = Some(Arc::new(move |event| observer_view.show(event)));
    let engine = Engine::open(&project, &runtime(cache)?, options).await?;
    if engine.has_webhooks() {
        listen_for_callbacks(&engine, &project, callback_listen, public_url).await?;
    }

    // Runs a killed process left behind are finished first, so their results are never lost.
    for resumed in engine.resume_interrupted().await? {
        println!(
            "resumed interrupted run {} of {}: {}",
            resumed.id, resumed.workflow, resumed.status
        );
    }
    let run = engine.run(workflow, trigger_body).await?;
    view.finish();
    print_run_summary(&run);
    println!(
        "history: {}  (cordon runs show {} --project {})",
        db.location(),
        run.id,
        project_path.display()
    );
    Ok(if run.status == Status::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Serves HttpWebhook callbacks for the length of `cordon run`, so that a workflow that waits
/// for one runs locally as it would under `cordon serve`. The service must reach `listen`
/// (loopback by default: a service on this machine, or a tunnel the user sets up).
async fn listen_for_callbacks(
    engine: &Engine,
    project: &Project,
    listen: std::net::SocketAddr,
    public_url: Option<&str>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen for HttpWebhook callbacks on {listen}; pick another address with --callback-listen"
        )
    })?;
    let base = match public_url {
        Some(url) => url.to_owned(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let keys = crate::server::Keys::for_project(project)?;
    engine.serve_callbacks(crate::workflow::webhooks::CallbackUrls::new(
        &base,
        keys.trigger.clone(),
    ));
    let router =
        crate::server::callbacks_router(engine.clone(), keys, crate::server::ServerConfig::default());
    println!("HttpWebhook callbacks: {base}/api/callbacks/...");
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(())
}

fn print_run_summary(run: &RunRecord) {
    let duration = run
        .ended_at
        .map(|e| format_duration(e - run.started_at))
        .unwrap_or_default();
    println!("run {} of {}: {} in {duration}", run.id, run.workflow, run.status);
    if let Some(error) = &run.error {
        println!(
            "  error: {}",
            error.get("message").and_then(Value::as_str).unwrap_or_default()
        );
    }
    if let Some(response) = &run.response {
        println!("  response: {}", response.get("body").unwrap_or(&Value::Null));
    }
}

fn format_duration(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1_000.0)
    }
}

/// Shows actions starting and finishing: a status line redrawn in place on a terminal, plain
/// lines otherwise (logs, CI).
#[derive(Clone)]
struct LiveView {
    terminal: bool,
    running: Arc<Mutex<BTreeMap<String, ()>>>,
}

impl LiveView {
    fn new() -> LiveView {
        LiveView {
            terminal: std::io::stdout().is_terminal(),
            running: Arc::default(),
        }
    }

    fn show(&self, event: &RunEvent) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::io::stdout().lock();
        if self.terminal {
            let _ = write!(out, "\r\x1b[K");
        }
        match event {
            RunEvent::RunStarted {
                run_id,
                workflow,
                resumed,
            } => {
                let verb = if *resumed { "resuming" } else { "starting" };
                let _ = writeln!(out, "{verb} run {run_id} of {workflow}");
            }
            RunEvent::ActionStarted { path, kind, .. } => {
                running.insert(path.clone(), ());
                if !self.terminal {
                    let _ = writeln!(out, "  started  {path} ({kind})");
                }
            }
            RunEvent::ActionFinished {
                path,
                status,
                attempts,
                duration,
                error,
                replayed,
                ..
            } => {
                running.remove(path);
                let mark = match status {
                    Status::Succeeded => "ok",
                    Status::Skipped => "--",
                    _ => "!!",
                };
                let attempts = if *attempts > 1 {
                    format!(", {attempts} attempts")
                } else {
                    String::new()
                };
                let replayed = if *replayed { ", from history" } else { "" };
                let _ = writeln!(
                    out,
                    "  {mark} {status:<9} {path} ({}{attempts}{replayed})",
                    format_duration(duration.as_millis() as i64)
                );
                if let Some(error) = error {
                    let _ = writeln!(out, "       {error}");
                }
            }
            RunEvent::RunFinished { .. } => {}
            RunEvent::CallbackAwaited {
                path, callback_url, ..
            } => {
                // Whoever tries a webhook locally may be the service: the URL to call is here.
                let _ = writeln!(out, "  ..  waiting  {path} for a call of {callback_url}");
            }
            RunEvent::OperationPolled { path, location, .. } => {
                let _ = writeln!(
                    out,
                    "  ..  polling  {path}: the request was accepted; polling {location}"
                );
            }
        }
        if self.terminal && !running.is_empty() {
            let names: Vec<&str> = running.keys().map(String::as_str).take(4).collect();
            let more = running.len().saturating_sub(4);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            let _ = write!(out, "  running: {}{more}", names.join(", "));
        }
        let _ = out.flush();
    }

    fn finish(&self) {
        if self.terminal {
            print!("\r\x1b[K");
        }
    }
}

pub async fn runs(command: RunsCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunsCommand::List {
            history,
            workflow,
            status,
            limit,
            before,
            json,
        } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let status = status
                .map(|s| {
                    Status::parse(&s).with_context(|| {
                        format!(
                            "--status {s:?} is not one of Waiting, Running, Succeeded, Failed, Cancelled, TimedOut"
                        )
                    })
                })
                .transpose()?;
            let db = match open_existing_db(&history.project, history.db.as_deref())? {
                Ok(db) => db,
                Err(path) => {
                    if json {
                        println!("[]");
                    } else {
                        println!("no runs: there is no run history at {} yet", path.display());
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let runs = db
                .list_runs(&RunFilter {
                    workflow,
                    status,
                    limit: Some(limit),
                    before,
                })
                .map_err(|e| match e {
                    crate::db::DbError::NoSuchRun(before) => {
                        anyhow::anyhow!("--before {before:?}: no such run; `cordon runs list` shows the runs")
                    }
                    other => other.into(),
                })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                println!("no runs");
            } else {
                println!(
                    "{:<28} {:<20} {:<10} {:<24} duration",
                    "run", "workflow", "status", "started"
                );
                let more = (runs.len() == limit)
                    .then(|| runs.last().map(|r| r.id.clone()))
                    .flatten();
                for run in runs {
                    let duration = run
                        .ended_at
                        .map(|e| format_duration(e - run.started_at))
                        .unwrap_or_else(|| "-".to_owned());
                    println!(
                        "{:<28} {:<20} {:<10} {:<24} {duration}",
                        run.id,
                        run.workflow,
                        run.status.as_str(),
                        timestamp(run.started_at)
                    );
                }
                if let Some(last) = more {
                    println!("older runs: the same command with --before {last}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show {
            run_id,
            history,
            verbose,
            json,
        } => {
            let db = open_existing_db(&history.project, history.db.as_deref())?
                .map_err(|path| no_history(&run_id, &path))?;
            let run = db.run(&run_id)?;
            let actions = db.actions(&run_id, false)?;
            if json {
                let mut listed = Vec::new();
                for action in &actions {
                    let mut value = serde_json::to_value(action.for_display())?;
                    value["attempt_history"] = serde_json::to_value(db.attempts(&run_id, &action.path)?)?;
                    listed.push(value);
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"run": run, "actions": listed}))?
                );
            } else {
                print_run_summary(&run);
                print!("{}", action_tree(&actions, verbose));
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Prune {
            older_than_days,
            history,
        } => {
            let db = match open_existing_db(&history.project, history.db.as_deref())? {
                Ok(db) => db,
                Err(path) => {
                    println!("no runs: there is no run history at {} yet", path.display());
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let period = crate::workflow::retention::period(older_than_days).unwrap_or_default();
            let cutoff = chrono::Utc::now().timestamp_millis()
                - i64::try_from(period.as_millis()).unwrap_or(i64::MAX / 2);
            let deleted = crate::workflow::retention::delete_ended_before(db.as_ref(), cutoff)?;
            println!("deleted {deleted} finished run(s) that ended more than {older_than_days} day(s) ago");
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Resubmit {
            run_id,
            history,
            cache,
        } => {
            let db = open_existing_db(&history.project, history.db.as_deref())?
                .map_err(|path| no_history(&run_id, &path))?;
            let original = db.run(&run_id)?;
            let project = Project::open(&history.project)?;
            let view = LiveView::new();
            let mut options = EngineOptions::new(db.clone());
            options.secret_store = store_if_keyed(db.clone())?;
            let observer_view = view.clone();
            options.observer = Some(Arc::new(move |event| observer_view.show(event)));
            let engine = Engine::open(&project, &runtime(&cache)?, options).await?;
            let run = engine.resubmit(&original.id).await?;
            view.finish();
            print_run_summary(&run);
            Ok(if run.status == Status::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

pub(super) fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The actions of a run as an indented tree: containers hold their children, loop iterations
/// are grouped under `[i]`.
fn action_tree(actions: &[ActionRecord], verbose: bool) -> String {
    let mut out = String::new();
    write_children(actions, "", 1, verbose, &mut out);
    out
}

fn write_children(actions: &[ActionRecord], parent: &str, depth: usize, verbose: bool, out: &mut String) {
    let indent = "  ".repeat(depth);
    for action in actions.iter().filter(|a| a.parent == parent) {
        let duration = action
            .ended_at
            .map(|e| format_duration(e - action.started_at))
            .unwrap_or_else(|| "running".to_owned());
        let attempts = match action.attempts {
            0 => String::new(),
            1 => ", 1 attempt".to_owned(),
            n => format!(", {n} attempts"),
        };
        out.push_str(&format!(
            "{indent}{} [{}] {} ({duration}{attempts})\n",
            action.name, action.kind, action.status
        ));
        if let Some(message) = action
            .error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
        {
            out.push_str(&format!("{indent}  error: {message}\n"));
        }
        if verbose {
            let shown = action.for_display();
            for (label, value) in [("inputs", &shown.inputs), ("outputs", &shown.outputs)] {
                if let Some(value) = value.as_ref().filter(|v| !v.is_null()) {
                    out.push_str(&format!("{indent}  {label}: {value}\n"));
                }
            }
        }
        // Children: directly inside (Scope, If, Switch) or per loop iteration.
        write_children(actions, &action.path, depth + 1, verbose, out);
        let mut iterations: Vec<&str> = actions
            .iter()
            .filter_map(|a| {
                let rest = a.parent.strip_prefix(action.path.as_str())?;
                (rest.starts_with('[') && rest.ends_with(']') && !rest.contains('/'))
                    .then_some(a.parent.as_str())
            })
            .collect();
        iterations.sort_by_key(|p| iteration_index(p));
        iterations.dedup();
        for iteration in iterations {
            out.push_str(&format!("{indent}  [{}]\n", iteration_index(iteration)));
            write_children(actions, iteration, depth + 2, verbose, out);
        }
    }
}

fn iteration_index(parent: &str) -> usize {
    parent
        .rsplit('[')
        .next()
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `cordon workflows callback-url PROJECT WORKFLOW`.
pub fn callback_url(project_path: &Path, workflow: &str, base: &str) -> anyhow::Result<ExitCode> {
    let project = Project::open(project_path)?;
    let definition = project.workflow(workflow)?;
    let triggers: Vec<_> = definition
        .triggers
        .iter()
        .filter(|t| t.kind.is_called_over_http())
        .collect();
    if triggers.is_empty() {
        anyhow::bail!("workflow {workflow:?} has no Request trigger, so it has no callback URL");
    }
    let key = crate::server::TriggerKey::for_project(&project)?;
    for trigger in triggers {
        println!(
            "{}",
            crate::server::trigger_callback_url(base, &key, workflow, trigger)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `cordon serve` serves: one project, or one per tenant.
struct Served {
    /// `None` for a single project.
    tenant: Option<crate::ids::TenantId>,
    engine: Engine,
    keys: crate::server::Keys,
    history: String,
    /// How long finished runs stay in this history (`None`: every run stays).
    retention: Option<Duration>,
}

fn log_run_event(event: &RunEvent) {
    match event {
        RunEvent::RunStarted {
            run_id,
            workflow,
            resumed,
        } => tracing::info!(run_id, workflow, resumed, "run started"),
        RunEvent::RunFinished { run_id, status } => {
            tracing::info!(run_id, status = status.as_str(), "run finished")
        }
        RunEvent::ActionFinished {
            run_id,
            path,
            status,
            attempts,
            duration,
            ..
        } => tracing::debug!(
            run_id,
            path,
            status = status.as_str(),
            attempts,
            duration_ms = duration.as_millis() as u64,
            "action finished"
        ),
        RunEvent::CallbackAwaited { run_id, path, .. } => {
            // The URL carries its signature, so it stays out of the log.
            tracing::info!(run_id, path, "waiting for the HttpWebhook callback")
        }
        RunEvent::OperationPolled {
            run_id,
            path,
            location,
        } => {
            tracing::info!(run_id, path, location, "polling the accepted Http request")
        }
        RunEvent::ActionStarted { .. } => {}
    }
}

/// Where `cordon serve` listens, and the URL callers reach it at if that is not
/// `http://LISTEN`.
pub struct Addresses<'a> {
    pub listen: std::net::SocketAddr,
    pub public_url: Option<&'a str>,
}

/// `cordon serve PROJECT`, or `cordon serve DIR --tenants`.
pub async fn serve(
    project_path: &Path,
    Addresses { listen, public_url }: Addresses<'_>,
    db: Option<&Path>,
    config: crate::server::ServerConfig,
    cache: &CacheArgs,
    tenants: bool,
    retention: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let mut unavailable = Vec::new();
    let served = if tenants {
        if db.is_some() {
            anyhow::bail!(
                "--db does not apply with --tenants: each tenant's history is its own TENANT/.cordon/history.db"
            );
        }
        let opened = crate::tenants::open_all(project_path, |_, db| {
            let mut options = EngineOptions::new(db.clone());
            options.secret_store = store_if_keyed(db)?;
            options.observer = Some(Arc::new(log_run_event));
            Ok(options)
        })
        .await?;
        for tenant in &opened.unavailable {
            tracing::error!(
                tenant = %tenant.id,
                reason = tenant.reason,
                "tenant did not open; its routes answer 503 until it is fixed and the server restarts"
            );
        }
        tracing::info!(
            tenants = opened.tenants.len(),
            unavailable = opened.unavailable.len(),
            operator_key = %project_path.join(crate::server::OPERATOR_KEY_FILE).display(),
            "multi-tenant server"
        );
        unavailable = opened.unavailable;
        opened
            .tenants
            .into_iter()
            .map(|t| Served {
                history: t.db.location().to_owned(),
                retention: t
                    .retention_days
                    .map_or(retention, crate::workflow::retention::period),
                tenant: Some(t.id),
                engine: t.engine,
                keys: t.keys,
            })
            .collect::<Vec<_>>()
    } else {
        let project = Project::open(project_path)?;
        let db = open_db(project_path, db)?;
        let mut options = EngineOptions::new(db.clone());
        options.secret_store = store_if_keyed(db.clone())?;
        options.observer = Some(Arc::new(log_run_event));
        let engine = Engine::open(&project, &runtime(cache)?, options).await?;
        tracing::info!(
            management_key = %project.root.join(crate::server::MANAGEMENT_KEY_FILE).display(),
            "single project"
        );
        vec![Served {
            tenant: None,
            engine,
            keys: crate::server::Keys::for_project(&project)?,
            history: db.location().to_owned(),
            retention,
        }]
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; pick another address with --listen"))?;
    let root = match public_url {
        Some(url) => url.to_owned(),
        None => format!("http://{}", listener.local_addr()?),
    };
    for s in &served {
        let base = match &s.tenant {
            Some(tenant) => format!("{root}/tenants/{tenant}"),
            None => root.clone(),
        };
        s.engine
            .serve_callbacks(crate::workflow::webhooks::CallbackUrls::new(
                &base,
                s.keys.trigger.clone(),
            ));
        for workflow in s.engine.workflows() {
            for trigger in workflow.triggers.iter().filter(|t| t.kind.is_called_over_http()) {
                println!(
                    "{} {}: {}",
                    workflow.name,
                    trigger.name,
                    crate::server::trigger_callback_url(&base, &s.keys.trigger, &workflow.name, trigger)
                );
            }
        }
        tracing::info!(%base, history = s.history, tenant = s.tenant.as_ref().map(|t| t.as_str()), "serving");
    }

    let stop = tokio_util::sync::CancellationToken::new();
    // HttpWebhook triggers stay subscribed while their workflows are enabled.
    for s in &served {
        tokio::spawn(crate::workflow::webhook_triggers::keep_subscribed(
            s.engine.clone(),
            stop.clone(),
        ));
    }
    // Runs nobody is running go on in the background: at start, those a previous process
    // left; then every lease period, those of another server on this history that died and
    // those this one gave up when its history could not be written.
    let sweepers: Vec<_> = served
        .iter()
        .map(|s| {
            tokio::spawn(sweep_orphaned_runs(
                s.engine.clone(),
                s.tenant.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Finished runs past the retention period go, per history.
    let retention_sweeps: Vec<_> = served
        .iter()
        .filter_map(|s| {
            Some(tokio::spawn(crate::workflow::retention::keep(
                s.engine.clone(),
                s.retention?,
                s.tenant.as_ref().map(|t| t.as_str().to_owned()),
                stop.clone(),
            )))
        })
        .collect();
    let mut schedulers = Vec::new();
    for s in &served {
        let scheduler = crate::workflow::scheduler::Scheduler::new(s.engine.clone());
        for (workflow, trigger) in scheduler.triggers() {
            tracing::info!(
                workflow,
                trigger,
                tenant = s.tenant.as_ref().map(|t| t.as_str()),
                "scheduled"
            );
        }
        schedulers.push(scheduler.spawn(stop.clone()));
    }

    let grace = config.grace_period;
    let ready = config.ready.clone();
    let app = if tenants {
        crate::server::tenants_router(
            served
                .iter()
                .filter_map(|s| Some((s.tenant.clone()?, s.engine.clone(), s.keys.clone())))
                .collect(),
            unavailable,
            config.clone(),
        )
    } else {
        crate::server::router(served[0].engine.clone(), served[0].keys.clone(), config.clone())
    };
    let http = tokio::spawn({
        let stop = stop.clone();
        async move { crate::server::serve(listener, app, &config, stop.cancelled_owned()).await }
    });
    shutdown_signal().await;
    // Stop taking work: no new connections, no more trigger firings. Then give the runs in
    // flight the grace period. Whatever is unfinished after it stays recorded as it stands
    // (each finished action is already in the history) and resumes on the next start.
    let in_flight: usize = served.iter().map(|s| s.engine.in_flight()).sum();
    tracing::info!(in_flight, grace_s = grace.as_secs(), "stopping");
    ready.store(false, std::sync::atomic::Ordering::SeqCst);
    stop.cancel();
    for scheduled in schedulers {
        let _ = scheduled.await;
    }
    for sweeper in sweepers.into_iter().chain(retention_sweeps) {
        let _ = sweeper.await;
    }
    // Every engine drains at once, within the one grace period.
    let drains = served.iter().map(|s| s.engine.drain(grace));
    let left: usize = futures_util::future::join_all(drains).await.into_iter().sum();
    // Requests still waiting for a Response get no answer now; their runs are recorded.
    let _ = tokio::time::timeout(Duration::from_secs(1), http).await;
    if left > 0 {
        tracing::warn!(
            unfinished = left,
            "grace period over; unfinished runs resume on the next start"
        );
    } else {
        tracing::info!("stopped; every run in flight finished");
    }
    Ok(ExitCode::SUCCESS)
}

/// Claims and executes orphaned runs now and then every [`LEASE`](crate::workflow::executor::LEASE)
/// until `stop`; each claimed run executes in its own task.
async fn sweep_orphaned_runs(
    engine: Engine,
    tenant: Option<crate::ids::TenantId>,
    stop: tokio_util::sync::CancellationToken,
) {
    let tenant = tenant.as_ref().map(|t| t.as_str().to_owned());
    loop {
        match engine.claim_orphaned_runs() {
            Ok(runs) if !runs.is_empty() => {
                tracing::info!(count = runs.len(), tenant, "resuming unfinished runs");
                for run in runs {
                    let engine = engine.clone();
                    tokio::spawn(async move { engine.execute(run).await });
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, tenant, "cannot claim unfinished runs"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(crate::workflow::executor::LEASE) => {}
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
