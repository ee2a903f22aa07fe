//! The embedded run history: one SQLite file.
//!
//! WAL mode with `synchronous=NORMAL`: a committed transaction survives the process being
//! killed (what `cordon run` needs; the resume test kills it with SIGKILL), though the last
//! transactions may be lost if the whole machine loses power. One connection behind a mutex:
//! the writes are small and SQLite serialises writers anyway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::json_text::json_text;

use super::{
    ActionRecord, ApprovedConnector, AttemptInFlight, AttemptRecord, CallbackOutcome, CancelOutcome, Db,
    DbError, FinishedAction, RunFilter, RunLease, RunRecord, SealedSecret, Status, TriggerState,
    WebhookRecord, WebhookState,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    response TEXT,
    error TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    resubmitted_from TEXT,
    parent TEXT,
    lease_owner TEXT,
    lease_expires INTEGER
);
-- Listing runs newest first (`list_runs`, and `/readyz` with a limit of 1), of all workflows or
-- of one, walks one of these in order instead of sorting the whole table (on a million runs,
-- 0.6 s). They replaced `runs_by_workflow`, which lacked the `id` that breaks ties. A full
-- index on the status as well cost about 6 % of durable runs/s (serve_bench), so a listing
-- by a finished status walks `runs_by_start` and filters (0.25 s on a million runs, on the
-- reader connection, where it holds up no run).
DROP INDEX IF EXISTS runs_by_workflow;
DROP INDEX IF EXISTS runs_by_status;
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at, id);
CREATE INDEX IF NOT EXISTS runs_by_workflow_start ON runs (workflow, started_at, id);
-- Unfinished runs, for leases, resume and listing them. It replaced `runs_unfinished`, which
-- left out Waiting runs and so made every lease renewal scan the whole table.
DROP INDEX IF EXISTS runs_unfinished;
CREATE INDEX IF NOT EXISTS runs_in_flight ON runs (status) WHERE status IN ('Running', 'Waiting');
CREATE TABLE IF NOT EXISTS actions (
    run_id TEXT NOT NULL REFERENCES runs (id),
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    parent TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    inputs TEXT,
    outputs TEXT,
    error TEXT,
    idempotency_key TEXT NOT NULL,
    secure_inputs INTEGER NOT NULL,
    secure_outputs INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    path TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, path, attempt)
);
-- The retry an unfinished action is on: due when its delay ends, `started_at` once it began.
-- A resumed run reads it to tell a process that stopped during the delay (the retry never
-- ran: wait out the rest) from one that stopped during the retry (recorded as Interrupted).
-- Rows go when their run finishes.
CREATE TABLE IF NOT EXISTS attempts_in_flight (
    run_id TEXT NOT NULL,
    path TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    started_at INTEGER,
    PRIMARY KEY (run_id, path)
);
-- Inputs and outputs of secureData actions, only while their run is unfinished.
CREATE TABLE IF NOT EXISTS secure_state (
    run_id TEXT NOT NULL,
    path TEXT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);
-- Scheduled and polling triggers: cursor, next due time, and a version compared on write.
CREATE TABLE IF NOT EXISTS triggers (
    workflow TEXT NOT NULL,
    trigger TEXT NOT NULL,
    version INTEGER NOT NULL,
    cursor TEXT,
    next_at INTEGER,
    anchor INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    last_error TEXT,
    PRIMARY KEY (workflow, trigger)
);
-- Workflows an operator disabled (or enabled again); absent means enabled.
CREATE TABLE IF NOT EXISTS workflow_settings (
    workflow TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL
);
-- The encrypted secret store (secrets/store.rs): sealed values only, never plaintext.
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- The approved version of each connection's file connector (workflow/upgrades.rs).
CREATE TABLE IF NOT EXISTS connector_approvals (
    connection TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    component BLOB NOT NULL,
    manifest TEXT NOT NULL,
    grant_extension TEXT NOT NULL,
    approved_at INTEGER NOT NULL
);
-- HttpWebhook actions' subscriptions (workflow/webhooks.rs), written before the subscribe
-- request; the callback waits here, stored before the service is answered, until the action
-- takes it.
CREATE TABLE IF NOT EXISTS webhooks (
    run_id TEXT NOT NULL,
    callback_id TEXT NOT NULL,
    path TEXT NOT NULL,
    state TEXT NOT NULL,
    subscribe TEXT,
    unsubscribe TEXT,
    callback TEXT,
    received_at INTEGER,
    PRIMARY KEY (run_id, callback_id)
);
-- Http actions polling an accepted request (a 202 with a Location, Logic Apps' asynchronous
-- pattern; executor/async_http.rs): where they poll, so a resumed run does not send the
-- request again. Rows go when the polling ends and when their run finishes.
CREATE TABLE IF NOT EXISTS http_polls (
    run_id TEXT NOT NULL,
    path TEXT NOT NULL,
    location TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);
PRAGMA user_version = 8;
";

/// The schema this build writes. Older files are upgraded in place: version 1 (before
/// triggers and workflow settings), 2 (before the secret store), 3 (before connector
/// approvals), 4 (before retries in flight), 5 (before webhooks) and 7 (before Http polling)
/// only lack tables, which are created; 6 lacks the column `webhooks.subscribe`, which is
/// added (and the polling table). Nothing else changes.
const SCHEMA_VERSION: i64 = 8;

/// What a fenced write does to its run ([`RunLease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    /// Starts something (an action, an attempt, a waiting run): only under a held lease.
    Starting,
    /// Records what finished: also to a run cancelled meanwhile (which no one holds), since
    /// what finished did happen.
    Finishing,
}

/// Why `lease` does not allow a `fence` write now, or `None` if it does.
fn lease_refusal(c: &Connection, lease: RunLease<'_>, fence: Fence) -> rusqlite::Result<Option<DbError>> {
    let found: Option<(Option<String>, String)> = query_row_cached(
        c,
        "SELECT lease_owner, status FROM runs WHERE id = ?1",
        params![lease.run_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()?;
    let Some((holder, status)) = found else {
        return Ok(Some(DbError::NoSuchRun(lease.run_id.to_owned())));
    };
    let allowed = match &holder {
        Some(holder) => holder == lease.owner,
        None => fence == Fence::Finishing && status == Status::Cancelled.as_str(),
    };
    Ok((!allowed).then(|| DbError::LeaseLost {
        run_id: lease.run_id.to_owned(),
        holder,
    }))
}

/// Why a write guarded by `lease` in its own statement wrote nothing. (Only a refusal can make
/// it write nothing; should the lease allow the write by the time this looks, the execution
/// stops all the same and resumes from the history.)
fn refusal_of_unwritten(c: &Connection, lease: RunLease<'_>, fence: Fence) -> rusqlite::Result<DbError> {
    Ok(lease_refusal(c, lease, fence)?.unwrap_or_else(|| {
        DbError::Query(format!(
            "the lease of run {} changed while the write was made; the run resumes from its history",
            lease.run_id
        ))
    }))
}

/// The run history in a SQLite file.
#[derive(Debug)]
pub struct SqliteDb {
    /// Every write, and the reads that belong with writes.
    connection: Mutex<Connection>,
    /// Listings (see [`SqliteDb::reading`]); `None` for a history in memory.
    reader: Option<Mutex<Connection>>,
    location: String,
}

fn query_error(e: rusqlite::Error) -> DbError {
    DbError::Query(e.to_string())
}

fn optional_json_text(value: Option<&Value>) -> Option<String> {
    value.map(json_text)
}

/// A JSON column, read back exactly as the engine wrote it.
///
/// Without serde_json's recursion limit of 128: the records wrap values a few levels deep (a
/// trigger body that came in 127 deep is 129 deep inside its trigger record), and a history
/// that cannot read what it wrote loses it (a resubmitted run used to get a null trigger
/// body). The recursion stays bounded because what is written is: every value comes from a
/// JSON parser with that limit, or from an expression, whose results are held to
/// `expr::MAX_VALUE_DEPTH`.
///
/// A column that does not parse is an error naming it, never a silent `None` that a resumed
/// run would replay as "no outputs".
fn json_column(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<Value>> {
    let Some(text): Option<String> = row.get(column)? else {
        return Ok(None);
    };
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    deserializer.disable_recursion_limit();
    let parsed = Value::deserialize(&mut deserializer).and_then(|value| deserializer.end().map(|()| value));
    parsed.map(Some).map_err(|e| {
        let index = row.as_ref().column_index(column).unwrap_or_default();
        let reason = format!("the history's {column} column holds JSON that does not parse: {e}");
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, reason.into())
    })
}

fn status_column(row: &Row<'_>, index: &str) -> rusqlite::Result<Status> {
    let text: String = row.get(index)?;
    Status::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown status {text:?}").into(),
        )
    })
}

impl SqliteDb {
    /// Opens (creating if needed) the history at `path`.
    pub fn open(path: &Path) -> Result<SqliteDb, DbError> {
        let location = path.display().to_string();
        let open_error = |reason: String| DbError::Open {
            location: location.clone(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_error(format!("cannot create its directory: {e}")))?;
        }
        let connection = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let mut db = Self::prepare(connection, location.clone())?;
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|reader| {
            reader.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok(reader)
        })
        .map_err(|e| open_error(format!("cannot open a reader: {e}")))?;
        db.reader = Some(Mutex::new(reader));
        Ok(db)
    }

    /// A history that lives only in memory, for tests and benchmarks beside the file-backed one.
    pub fn in_memory() -> Result<SqliteDb, DbError> {
        let connection = Connection::open_in_memory().map_err(query_error)?;
        Self::prepare(connection, ":memory:".to_owned())
    }

    fn prepare(connection: Connection, location: String) -> Result<SqliteDb, DbError> {
        let setup = || -> rusqlite::Result<i64> {
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            connection.busy_timeout(std::time::Duration::from_secs(5))?;
            // Room for every statement this file prepares, so none is parsed twice.
            connection.set_prepared_statement_cache_capacity(64);
            connection.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        };
        let open_error = |reason: String| DbError::Open {
            location: location.clone(),
            reason,
        };
        let version = setup().map_err(|e| open_error(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(open_error(format!(
                "the file was written by a newer cordon (schema version {version}); upgrade cordon"
            )));
        }
        let upgrade = if version == 6 {
            "ALTER TABLE webhooks ADD COLUMN subscribe TEXT;"
        } else {
            ""
        };
        connection
            .execute_batch(&format!("{upgrade}{SCHEMA}"))
            .map_err(|e| open_error(e.to_string()))?;
        Ok(SqliteDb {
            connection: Mutex::new(connection),
            reader: None,
            location,
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` on the reader connection (the writer's, for a history in memory): listings
    /// that scan many rows run there, so the runs' writes do not wait for them. In WAL mode a
    /// reader sees the last committed state and blocks no writer.
    fn reading<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, DbError> {
        let Some(reader) = &self.reader else {
            return self.with(f);
        };
        let mut connection = reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut connection).map_err(query_error)
    }

    /// Runs `write` in a transaction if `lease` still allows it ([`RunLease`]); the check and
    /// the write are one transaction, which takes the write lock first, so no claim by another
    /// worker falls between them.
    fn fenced<T>(
        &self,
        lease: RunLease<'_>,
        fence: Fence,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, DbError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let Some(refused) = lease_refusal(&tx, lease, fence)? {
                return Ok(Err(refused));
            }
            let written = write(&tx)?;
            tx.commit()?;
            Ok(Ok(written))
        })?
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, DbError> {
        // A panic while holding the lock cannot leave SQLite inconsistent (each statement is
        // atomic), so a poisoned lock is still usable.
        let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut connection).map_err(query_error)
    }
}

/// `execute` through the connection's statement cache: every statement here runs many times per
/// second under load, and parsing SQL anew each time cost about a tenth of a run.
fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache, for the same reason as [`exec`].
fn query_row_cached<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// Upserts an action's final record, its last attempt and its secure state.
/// Returns false, having written nothing, when `lease` does not allow recording what finished
/// ([`Fence::Finishing`]); the check is part of the first statement, so the common case costs
/// no statement more than before fencing (see `action_started`).
fn write_finished_action(
    tx: &rusqlite::Transaction<'_>,
    finished: &FinishedAction,
    lease: RunLease<'_>,
) -> rusqlite::Result<bool> {
    let r = &finished.record;
    let written = exec(tx,
                "INSERT INTO actions (run_id, path, name, parent, kind, status, attempts, started_at, ended_at,
                                      inputs, outputs, error, idempotency_key, secure_inputs, secure_outputs, sequence)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16
                 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1
                               AND (lease_owner = ?17 OR (lease_owner IS NULL AND status = 'Cancelled')))
                 ON CONFLICT (run_id, path) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
                     ended_at = excluded.ended_at, inputs = excluded.inputs, outputs = excluded.outputs,
                     error = excluded.error",
                params![
                    r.run_id,
                    r.path,
                    r.name,
                    r.parent,
                    r.kind,
                    r.status.as_str(),
                    r.attempts,
                    r.started_at,
                    r.ended_at,
                    optional_json_text(r.inputs.as_ref()),
                    optional_json_text(r.outputs.as_ref()),
                    optional_json_text(r.error.as_ref()),
                    r.idempotency_key,
                    r.secure_inputs,
                    r.secure_outputs,
                    r.sequence,
                    lease.owner,
                ],
            )?;
    if written == 0 {
        return Ok(false);
    }
    if let Some(a) = &finished.last_attempt {
        insert_attempt(tx, &r.run_id, &r.path, a)?;
    }
    if let Some((inputs, outputs)) = &finished.secure_state {
        exec(
            tx,
            "INSERT OR REPLACE INTO secure_state (run_id, path, inputs, outputs) VALUES (?1, ?2, ?3, ?4)",
            params![r.run_id, r.path, json_text(inputs), json_text(outputs)],
        )?;
    }
    Ok(true)
}

const RUN_COLUMNS: &str =
    "id, workflow, status, trigger, response, error, started_at, ended_at, resubmitted_from, parent";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: row.get("id")?,
        workflow: row.get("workflow")?,
        status: status_column(row, "status")?,
        trigger: json_column(row, "trigger")?.unwrap_or(Value::Null),
        response: json_column(row, "response")?,
        error: json_column(row, "error")?,
        started_at: row.get("started_at")?,
        ended_at: row.get("ended_at")?,
        resubmitted_from: row.get("resubmitted_from")?,
        parent: row.get("parent")?,
    })
}

fn action_from_row(row: &Row<'_>) -> rusqlite::Result<ActionRecord> {
    Ok(ActionRecord {
        run_id: row.get("run_id")?,
        path: row.get("path")?,
        name: row.get("name")?,
        parent: row.get("parent")?,
        kind: row.get("kind")?,
        status: status_column(row, "status")?,
        attempts: row.get("attempts")?,
        started_at: row.get("started_at")?,
        ended_at: row.get("ended_at")?,
        inputs: json_column(row, "inputs")?,
        outputs: json_column(row, "outputs")?,
        error: json_column(row, "error")?,
        idempotency_key: row.get("idempotency_key")?,
        secure_inputs: row.get("secure_inputs")?,
        secure_outputs: row.get("secure_outputs")?,
        sequence: row.get("sequence")?,
    })
}

fn insert_run(c: &Connection, run: &RunRecord, lease_owner: &str, lease_ms: i64) -> rusqlite::Result<()> {
    exec(
        c,
        "INSERT INTO runs (id, workflow, status, trigger, response, error, started_at, ended_at,
                           resubmitted_from, parent, lease_owner, lease_expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            run.id,
            run.workflow,
            run.status.as_str(),
            run.trigger.to_string(),
            optional_json_text(run.response.as_ref()),
            optional_json_text(run.error.as_ref()),
            run.started_at,
            run.ended_at,
            run.resubmitted_from,
            run.parent,
            lease_owner,
            run.started_at + lease_ms,
        ],
    )
    .map(drop)
}

fn trigger_from_row(row: &Row<'_>) -> rusqlite::Result<TriggerState> {
    Ok(TriggerState {
        workflow: row.get("workflow")?,
        trigger: row.get("trigger")?,
        version: row.get("version")?,
        cursor: json_column(row, "cursor")?,
        next_at: row.get("next_at")?,
        anchor: row.get("anchor")?,
        failures: row.get("failures")?,
        last_error: row.get("last_error")?,
    })
}

fn insert_attempt(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    path: &str,
    a: &AttemptRecord,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT OR REPLACE INTO attempts (run_id, path, attempt, status, started_at, ended_at, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run_id,
            path,
            a.attempt,
            a.status.as_str(),
            a.started_at,
            a.ended_at,
            optional_json_text(a.error.as_ref())
        ],
    )
    .map(drop)
}

impl Db for SqliteDb {
    fn create_run(&self, run: &RunRecord, lease_owner: &str, lease_ms: i64) -> Result<(), DbError> {
        self.with(|c| insert_run(c, run, lease_owner, lease_ms))
    }

    fn start_waiting_run(&self, lease: RunLease<'_>) -> Result<(), DbError> {
        self.fenced(lease, Fence::Starting, |tx| {
            exec(
                tx,
                "UPDATE runs SET status = 'Running' WHERE id = ?1 AND status = 'Waiting'",
                params![lease.run_id],
            )
            .map(drop)
        })
    }

    fn cancel_run(&self, run_id: &str, now: i64) -> Result<CancelOutcome, DbError> {
        let outcome = self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let status: Option<String> = query_row_cached(
                &tx,
                "SELECT status FROM runs WHERE id = ?1",
                params![run_id],
                |r| r.get(0),
            )
            .optional()?;
            let Some(status) = status
                .as_deref()
                .map(|s| Status::parse(s).unwrap_or(Status::Failed))
            else {
                return Ok(None);
            };
            if status.is_terminal() {
                return Ok(Some(CancelOutcome::AlreadyEnded(status)));
            }
            let error = json!({"code": "Cancelled", "message": "the run was cancelled"}).to_string();
            // The run, and the child runs it started (a child workflow's own children too).
            let mut ids = vec![run_id.to_owned()];
            let mut index = 0;
            while index < ids.len() {
                let mut statement = tx.prepare_cached(
                    "SELECT id FROM runs WHERE parent = ?1 AND status IN ('Running', 'Waiting')",
                )?;
                let children: Vec<String> = statement
                    .query_map(params![ids[index]], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                ids.extend(children);
                index += 1;
            }
            for id in &ids {
                exec(
                    &tx,
                    "UPDATE runs SET status = 'Cancelled', error = ?2, ended_at = ?3,
                                     lease_owner = NULL, lease_expires = NULL
                     WHERE id = ?1",
                    params![id, error, now],
                )?;
                exec(
                    &tx,
                    "UPDATE actions SET status = 'Cancelled', ended_at = ?2
                     WHERE run_id = ?1 AND status = 'Running'",
                    params![id, now],
                )?;
                exec(&tx, "DELETE FROM secure_state WHERE run_id = ?1", params![id])?;
                exec(
                    &tx,
                    "DELETE FROM attempts_in_flight WHERE run_id = ?1",
                    params![id],
                )?;
                exec(&tx, "DELETE FROM http_polls WHERE run_id = ?1", params![id])?;
            }
            tx.commit()?;
            Ok(Some(CancelOutcome::Cancelled))
        })?;
        outcome.ok_or_else(|| DbError::NoSuchRun(run_id.to_owned()))
    }

    fn finish_run(
        &self,
        lease: RunLease<'_>,
        status: Status,
        response: Option<&Value>,
        error: Option<&Value>,
        ended_at: i64,
        last_actions: &[FinishedAction],
    ) -> Result<bool, DbError> {
        let run_id = lease.run_id;
        self.fenced(lease, Fence::Finishing, |tx| {
            for finished in last_actions {
                write_finished_action(tx, finished, lease)?;
            }
            let ended = exec(
                tx,
                "UPDATE runs SET status = ?2, response = ?3, error = ?4, ended_at = ?5,
                                 lease_owner = NULL, lease_expires = NULL
                 WHERE id = ?1 AND status IN ('Running', 'Waiting')",
                params![
                    run_id,
                    status.as_str(),
                    optional_json_text(response),
                    optional_json_text(error),
                    ended_at
                ],
            )? > 0;
            exec(tx, "DELETE FROM secure_state WHERE run_id = ?1", params![run_id])?;
            exec(
                tx,
                "DELETE FROM attempts_in_flight WHERE run_id = ?1",
                params![run_id],
            )?;
            exec(tx, "DELETE FROM http_polls WHERE run_id = ?1", params![run_id])?;
            Ok(ended)
        })
    }

    fn run(&self, run_id: &str) -> Result<RunRecord, DbError> {
        self.with(|c| {
            query_row_cached(
                c,
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                params![run_id],
                run_from_row,
            )
            .optional()
        })?
        .ok_or_else(|| DbError::NoSuchRun(run_id.to_owned()))
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, DbError> {
        // Only the filters given are in the statement, so the planner can use an index for
        // each: `(?1 IS NULL OR workflow = ?1)` would keep it from using any. The status is a
        // literal (one of the enum's own names), and Running or Waiting also states the
        // partial index's own condition, which SQLite needs to see to use it. Each variant is
        // prepared once and cached.
        let mut conditions = vec!["?1 IS NOT NULL"];
        if filter.workflow.is_some() {
            conditions.push("workflow = ?2");
        }
        let status;
        if let Some(wanted) = filter.status {
            status = match wanted {
                Status::Running | Status::Waiting => {
                    format!(
                        "status IN ('Running', 'Waiting') AND status = '{}'",
                        wanted.as_str()
                    )
                }
                _ => format!("status = '{}'", wanted.as_str()),
            };
            conditions.push(&status);
        }
        if filter.before.is_some() {
            conditions.push("(started_at, id) < (SELECT started_at, id FROM runs WHERE id = ?3)");
        }
        let listed = self.reading(|c| {
            if let Some(before) = &filter.before
                && query_row_cached(c, "SELECT 1 FROM runs WHERE id = ?1", params![before], |_| Ok(()))
                    .optional()?
                    .is_none()
            {
                return Ok(None);
            }
            let mut statement = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE {}
                 ORDER BY started_at DESC, id DESC LIMIT ?1",
                conditions.join(" AND ")
            ))?;
            let limit = filter.limit.map_or(-1, |l| l as i64);
            let mut parameters: Vec<&dyn rusqlite::ToSql> = vec![&limit];
            if let Some(workflow) = &filter.workflow {
                parameters.push(workflow);
            }
            if let Some(before) = &filter.before {
                // Numbered parameters must all be bound up to the highest one used.
                if filter.workflow.is_none() {
                    parameters.push(&rusqlite::types::Null);
                }
                parameters.push(before);
            }
            let rows = statement.query_map(parameters.as_slice(), run_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
        })?;
        listed.ok_or_else(|| DbError::NoSuchRun(filter.before.clone().unwrap_or_default()))
    }

    fn claim_orphaned_runs(
        &self,
        lease_owner: &str,
        lease_ms: i64,
        now: i64,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<RunRecord>, DbError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let candidates: Vec<(String, Option<String>, Option<i64>)> = {
                let mut statement = tx.prepare_cached(
                    "SELECT id, lease_owner, lease_expires FROM runs
                     WHERE status IN ('Running', 'Waiting') ORDER BY started_at, id",
                )?;
                statement
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut claimed = Vec::new();
            for (id, owner, expires) in candidates {
                let orphaned = match (&owner, expires) {
                    (Some(owner), _) if owner == lease_owner => false,
                    (Some(owner), Some(expires)) => expires < now || is_dead(owner),
                    _ => true,
                };
                if orphaned {
                    exec(
                        &tx,
                        "UPDATE runs SET lease_owner = ?2, lease_expires = ?3 WHERE id = ?1",
                        params![id, lease_owner, now + lease_ms],
                    )?;
                    claimed.push(query_row_cached(
                        &tx,
                        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                        params![id],
                        run_from_row,
                    )?);
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
    }

    fn renew_leases(&self, lease_owner: &str, lease_ms: i64, now: i64) -> Result<(), DbError> {
        self.with(|c| {
            exec(
                c,
                "UPDATE runs SET lease_expires = ?2
                 WHERE lease_owner = ?1 AND status IN ('Running', 'Waiting')",
                params![lease_owner, now + lease_ms],
            )
            .map(drop)
        })
    }

    fn take_over_run(&self, lease: RunLease<'_>, lease_ms: i64, now: i64) -> Result<(), DbError> {
        self.with(|c| {
            exec(
                c,
                "UPDATE runs SET lease_owner = ?2, lease_expires = ?3
                 WHERE id = ?1 AND status IN ('Running', 'Waiting')",
                params![lease.run_id, lease.owner, now + lease_ms],
            )
            .map(drop)
        })
    }

    fn release_lease(&self, lease: RunLease<'_>) -> Result<(), DbError> {
        self.with(|c| {
            exec(
                c,
                "UPDATE runs SET lease_owner = NULL, lease_expires = NULL
                 WHERE id = ?1 AND lease_owner = ?2 AND status IN ('Running', 'Waiting')",
                params![lease.run_id, lease.owner],
            )
            .map(drop)
        })
    }

    fn action_started(&self, lease: RunLease<'_>, r: &ActionRecord) -> Result<(), DbError> {
        // The most frequent fenced write, so the lease is checked in the statement itself:
        // one autocommit statement, as before fencing, instead of a transaction around a
        // check and the insert. Every write holds the one connection, which runs in flight
        // queue for.
        self.with(|c| {
            let written = exec(c,
                "INSERT INTO actions (run_id, path, name, parent, kind, status, attempts, started_at, ended_at,
                                      inputs, outputs, error, idempotency_key, secure_inputs, secure_outputs, sequence)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, NULL, NULL, ?10, ?11, ?12, ?13
                 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND lease_owner = ?14)
                 ON CONFLICT (run_id, path) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
                     inputs = COALESCE(excluded.inputs, actions.inputs)",
                params![
                    r.run_id,
                    r.path,
                    r.name,
                    r.parent,
                    r.kind,
                    r.status.as_str(),
                    r.attempts,
                    r.started_at,
                    optional_json_text(r.inputs.as_ref()),
                    r.idempotency_key,
                    r.secure_inputs,
                    r.secure_outputs,
                    r.sequence,
                    lease.owner,
                ],
            )?;
            Ok(if written > 0 {
                Ok(())
            } else {
                Err(refusal_of_unwritten(c, lease, Fence::Starting)?)
            })
        })?
    }

    fn attempt_finished(
        &self,
        lease: RunLease<'_>,
        path: &str,
        a: &AttemptRecord,
        retry_due_at: Option<i64>,
    ) -> Result<(), DbError> {
        let run_id = lease.run_id;
        self.fenced(lease, Fence::Finishing, |tx| {
            insert_attempt(tx, run_id, path, a)?;
            // The next attempt is the one in flight from now on, so a crash during the wait
            // before it does not reuse this attempt's number.
            exec(tx,
                "UPDATE actions SET attempts = MAX(attempts, ?3 + 1) WHERE run_id = ?1 AND path = ?2 AND status = 'Running'",
                params![run_id, path, a.attempt],
            )?;
            if let Some(due_at) = retry_due_at {
                exec(tx,
                    "INSERT INTO attempts_in_flight (run_id, path, attempt, due_at, started_at)
                     VALUES (?1, ?2, ?3 + 1, ?4, NULL)
                     ON CONFLICT (run_id, path) DO UPDATE SET attempt = excluded.attempt,
                         due_at = excluded.due_at, started_at = NULL",
                    params![run_id, path, a.attempt, due_at],
                )?;
            }
            Ok(())
        })
    }

    fn attempt_started(&self, lease: RunLease<'_>, path: &str, attempt: u32, at: i64) -> Result<(), DbError> {
        self.fenced(lease, Fence::Starting, |tx| {
            exec(
                tx,
                "INSERT INTO attempts_in_flight (run_id, path, attempt, due_at, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (run_id, path) DO UPDATE SET attempt = excluded.attempt,
                     started_at = excluded.started_at",
                params![lease.run_id, path, attempt, at],
            )
            .map(drop)
        })
    }

    fn attempts_in_flight(&self, run_id: &str) -> Result<HashMap<String, AttemptInFlight>, DbError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(
                "SELECT path, attempt, due_at, started_at FROM attempts_in_flight WHERE run_id = ?1",
            )?;
            let rows = statement.query_map(params![run_id], |row| {
                Ok((
                    row.get::<_, String>("path")?,
                    AttemptInFlight {
                        attempt: row.get("attempt")?,
                        due_at: row.get("due_at")?,
                        started_at: row.get("started_at")?,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    fn actions_finished(&self, lease: RunLease<'_>, finished: &[FinishedAction]) -> Result<(), DbError> {
        if finished.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            for action in finished {
                if !write_finished_action(&tx, action, lease)? {
                    // Dropping the transaction undoes what it wrote.
                    return Ok(Err(refusal_of_unwritten(&tx, lease, Fence::Finishing)?));
                }
            }
            tx.commit()?;
            Ok(Ok(()))
        })?
    }

    fn actions(&self, run_id: &str, with_secure_state: bool) -> Result<Vec<ActionRecord>, DbError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(
                "SELECT a.*, s.inputs AS secure_inputs_value, s.outputs AS secure_outputs_value
                 FROM actions a LEFT JOIN secure_state s ON s.run_id = a.run_id AND s.path = a.path
                 WHERE a.run_id = ?1 ORDER BY a.sequence, a.path",
            )?;
            let rows = statement.query_map(params![run_id], |row| {
                let mut record = action_from_row(row)?;
                if with_secure_state {
                    if record.secure_inputs && record.inputs.is_none() {
                        record.inputs = json_column(row, "secure_inputs_value")?;
                    }
                    if record.secure_outputs && record.outputs.is_none() {
                        record.outputs = json_column(row, "secure_outputs_value")?;
                    }
                }
                Ok(record)
            })?;
            rows.collect()
        })
    }

    fn attempts(&self, run_id: &str, path: &str) -> Result<Vec<AttemptRecord>, DbError> {
        self.with(|c| {
            let mut statement = c.prepare_cached(
                "SELECT attempt, status, started_at, ended_at, error FROM attempts
                 WHERE run_id = ?1 AND path = ?2 ORDER BY attempt",
            )?;
            let rows = statement.query_map(params![run_id, path], |row| {
                Ok(AttemptRecord {
                    attempt: row.get("attempt")?,
                    status: status_column(row, "status")?,
                    started_at: row.get("started_at")?,
                    ended_at: row.get("ended_at")?,
                    error: json_column(row, "error")?,
                })
            })?;
            rows.collect()
        })
    }

    fn trigger_state(&self, workflow: &str, trigger: &str) -> Result<Option<TriggerState>, DbError> {
        self.with(|c| {
            query_row_cached(
                c,
                "SELECT * FROM triggers WHERE workflow = ?1 AND trigger = ?2",
                params![workflow, trigger],
                trigger_from_row,
            )
            .optional()
        })
    }

    fn fire_trigger(
        &self,
        state: &TriggerState,
        runs: &[RunRecord],
        lease_owner: &str,
        lease_ms: i64,
    ) -> Result<bool, DbError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stored: i64 = query_row_cached(&tx,
                    "SELECT version FROM triggers WHERE workflow = ?1 AND trigger = ?2",
                    params![state.workflow, state.trigger],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            if stored != state.version {
                return Ok(false);
            }
            for run in runs {
                insert_run(&tx, run, lease_owner, lease_ms)?;
            }
            exec(&tx,
                "INSERT INTO triggers (workflow, trigger, version, cursor, next_at, anchor, failures, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (workflow, trigger) DO UPDATE SET version = excluded.version,
                     cursor = excluded.cursor, next_at = excluded.next_at, anchor = excluded.anchor,
                     failures = excluded.failures, last_error = excluded.last_error",
                params![
                    state.workflow,
                    state.trigger,
                    state.version + 1,
                    optional_json_text(state.cursor.as_ref()),
                    state.next_at,
                    state.anchor,
                    state.failures,
                    state.last_error,
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn workflow_enabled(&self, workflow: &str) -> Result<bool, DbError> {
        self.with(|c| {
            query_row_cached(
                c,
                "SELECT enabled FROM workflow_settings WHERE workflow = ?1",
                params![workflow],
                |r| r.get::<_, bool>(0),
            )
            .optional()
        })
        .map(|enabled| enabled.unwrap_or(true))
    }

    fn set_workflow_enabled(&self, workflow: &str, enabled: bool) -> Result<(), DbError> {
        self.with(|c| {
            exec(
                c,
                "INSERT INTO workflow_settings (workflow, enabled) VALUES (?1, ?2)
                 ON CONFLICT (workflow) DO UPDATE SET enabled = excluded.enabled",
                params![workflow, enabled],
            )
            .map(drop)
        })
    }

    fn put_secret(&self, secret: &SealedSecret) -> Result<(), DbError> {
        self.with(|c| {
            exec(
                c,
                "INSERT INTO secrets (name, key_id, nonce, ciphertext, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
                     ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                params![
                    secret.name,
                    secret.key_id,
                    secret.nonce,
                    secret.ciphertext,
                    secret.created_at,
                    secret.updated_at
                ],
            )
            .map(drop)
        })
    }

    fn sealed_secret(&self, name: &str) -> Result<Option<SealedSecret>, DbError> {
        self.with(|c| {
            c.prepare_cached(&format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE name = ?1"))?
                .query_row(params![name], sealed_secret_row)
                .optional()
        })
    }

    fn list_secrets(&self) -> Result<Vec<SealedSecret>, DbError> {
        self.with(|c| {
            c.prepare_cached(&format!("SELECT {SECRET_COLUMNS} FROM secrets ORDER BY name"))?
                .query_map([], sealed_secret_row)?
                .collect()
        })
    }

    fn delete_runs_ended_before(&self, ended_before: i64, limit: usize) -> Result<usize, DbError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Walks `runs_by_start` from the oldest: a run that ended before the cutoff also
            // started before it, so the walk stops at the cutoff instead of reading the table.
            // The few old runs still unfinished (a webhook waiting for months) are stepped over.
            exec(
                &tx,
                "CREATE TEMP TABLE IF NOT EXISTS expired_runs (id TEXT PRIMARY KEY)",
                [],
            )?;
            exec(&tx, "DELETE FROM expired_runs", [])?;
            let found = exec(
                &tx,
                "INSERT INTO expired_runs (id)
                 SELECT id FROM runs INDEXED BY runs_by_start
                 WHERE started_at < ?1 AND ended_at IS NOT NULL AND ended_at < ?1
                   AND status NOT IN ('Running', 'Waiting')
                 ORDER BY started_at, id LIMIT ?2",
                params![ended_before, limit as i64],
            )?;
            if found > 0 {
                for table in [
                    "actions",
                    "attempts",
                    "attempts_in_flight",
                    "secure_state",
                    "webhooks",
                    "http_polls",
                ] {
                    exec(
                        &tx,
                        &format!("DELETE FROM {table} WHERE run_id IN (SELECT id FROM expired_runs)"),
                        [],
                    )?;
                }
                exec(
                    &tx,
                    "DELETE FROM runs WHERE id IN (SELECT id FROM expired_runs)",
                    [],
                )?;
            }
            tx.commit()?;
            Ok(found)
        })
    }

    fn delete_secret(&self, name: &str) -> Result<bool, DbError> {
        self.with(|c| exec(c, "DELETE FROM secrets WHERE name = ?1", params![name]).map(|n| n > 0))
    }

    fn approved_connector(&self, connection: &str) -> Result<Option<ApprovedConnector>, DbError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT connection, sha256, component, manifest, grant_extension, approved_at
                 FROM connector_approvals WHERE connection = ?1",
            )?
            .query_row(params![connection], |row| {
                Ok(ApprovedConnector {
                    connection: row.get("connection")?,
                    sha256: row.get("sha256")?,
                    component: row.get("component")?,
                    manifest: json_column(row, "manifest")?.unwrap_or(Value::Null),
                    grant_extension: json_column(row, "grant_extension")?.unwrap_or(Value::Null),
                    approved_at: row.get("approved_at")?,
                })
            })
            .optional()
        })
    }

    fn approve_connector(&self, approved: &ApprovedConnector) -> Result<(), DbError> {
        self.with(|c| {
            exec(
                c,
                "INSERT INTO connector_approvals
                     (connection, sha256, component, manifest, grant_extension, approved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (connection) DO UPDATE SET sha256 = excluded.sha256,
                     component = excluded.component, manifest = excluded.manifest,
                     grant_extension = excluded.grant_extension, approved_at = excluded.approved_at",
                params![
                    approved.connection,
                    approved.sha256,
                    approved.component,
                    approved.manifest.to_string(),
                    approved.grant_extension.to_string(),
                    approved.approved_at
                ],
            )
            .map(drop)
        })
    }

    fn webhook_prepare(
        &self,
        lease: RunLease<'_>,
        callback_id: &str,
        path: &str,
        unsubscribe: Option<&Value>,
    ) -> Result<WebhookRecord, DbError> {
        self.fenced(lease, Fence::Starting, |tx| {
            exec(
                tx,
                "INSERT INTO webhooks (run_id, callback_id, path, state, unsubscribe)
                 VALUES (?1, ?2, ?3, 'Subscribing', ?4)
                 ON CONFLICT (run_id, callback_id) DO NOTHING",
                params![lease.run_id, callback_id, path, unsubscribe.map(Value::to_string)],
            )?;
            query_row_cached(
                tx,
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE run_id = ?1 AND callback_id = ?2"),
                params![lease.run_id, callback_id],
                webhook_row,
            )
        })
    }

    fn webhook_subscribed(
        &self,
        lease: RunLease<'_>,
        callback_id: &str,
        subscribe: &Value,
        unsubscribe: Option<&Value>,
    ) -> Result<(), DbError> {
        self.fenced(lease, Fence::Starting, |tx| {
            exec(
                tx,
                "UPDATE webhooks SET state = 'Subscribed', subscribe = ?3, unsubscribe = ?4
                 WHERE run_id = ?1 AND callback_id = ?2 AND state != 'Ended'",
                params![
                    lease.run_id,
                    callback_id,
                    subscribe.to_string(),
                    unsubscribe.map(Value::to_string)
                ],
            )
            .map(drop)
        })
    }

    fn http_poll(&self, run_id: &str, path: &str) -> Result<Option<String>, DbError> {
        self.with(|c| {
            query_row_cached(
                c,
                "SELECT location FROM http_polls WHERE run_id = ?1 AND path = ?2",
                params![run_id, path],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn http_poll_started(&self, lease: RunLease<'_>, path: &str, location: &str) -> Result<(), DbError> {
        self.fenced(lease, Fence::Starting, |tx| {
            exec(
                tx,
                "INSERT INTO http_polls (run_id, path, location) VALUES (?1, ?2, ?3)
                 ON CONFLICT (run_id, path) DO UPDATE SET location = excluded.location",
                params![lease.run_id, path, location],
            )
            .map(drop)
        })
    }

    fn http_poll_ended(&self, lease: RunLease<'_>, path: &str) -> Result<(), DbError> {
        self.fenced(lease, Fence::Finishing, |tx| {
            exec(
                tx,
                "DELETE FROM http_polls WHERE run_id = ?1 AND path = ?2",
                params![lease.run_id, path],
            )
            .map(drop)
        })
    }

    fn webhook(&self, run_id: &str, callback_id: &str) -> Result<Option<WebhookRecord>, DbError> {
        // On the reader: every waiting action looks each time any callback arrives (and every
        // few seconds), which must not queue behind the runs' writes. A callback is committed
        // before anyone is woken, so the reader sees it.
        self.reading(|c| {
            query_row_cached(
                c,
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE run_id = ?1 AND callback_id = ?2"),
                params![run_id, callback_id],
                webhook_row,
            )
            .optional()
        })
    }

    fn receive_callback(
        &self,
        run_id: &str,
        callback_id: &str,
        callback: &Value,
        now: i64,
    ) -> Result<CallbackOutcome, DbError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found: Option<(String, Option<i64>)> = query_row_cached(
                &tx,
                "SELECT state, received_at FROM webhooks WHERE run_id = ?1 AND callback_id = ?2",
                params![run_id, callback_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
            let outcome = match found {
                None => CallbackOutcome::Unknown,
                Some((_, Some(_))) => CallbackOutcome::AlreadyReceived,
                Some((state, None)) if state == WebhookState::Ended.as_str() => CallbackOutcome::Ended,
                Some(_) => {
                    exec(
                        &tx,
                        "UPDATE webhooks SET callback = ?3, received_at = ?4 WHERE run_id = ?1 AND callback_id = ?2",
                        params![run_id, callback_id, callback.to_string(), now],
                    )?;
                    CallbackOutcome::Accepted
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
    }

    fn end_webhooks(&self, run_id: &str, callback_id: Option<&str>) -> Result<Vec<WebhookRecord>, DbError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let open: Vec<WebhookRecord> = match callback_id {
                Some(id) => tx
                    .prepare_cached(&format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                         WHERE run_id = ?1 AND callback_id = ?2 AND state != 'Ended'"
                    ))?
                    .query_map(params![run_id, id], webhook_row)?
                    .collect::<rusqlite::Result<_>>()?,
                // The run and the child runs it started, as a cancel ends them.
                None => tx
                    .prepare_cached(&format!(
                        "WITH RECURSIVE tree (id) AS (
                             SELECT ?1 UNION SELECT runs.id FROM runs JOIN tree ON runs.parent = tree.id
                         )
                         SELECT {WEBHOOK_COLUMNS} FROM webhooks
                         WHERE run_id IN (SELECT id FROM tree) AND state != 'Ended'"
                    ))?
                    .query_map(params![run_id], webhook_row)?
                    .collect::<rusqlite::Result<_>>()?,
            };
            for webhook in &open {
                exec(
                    &tx,
                    "UPDATE webhooks SET state = 'Ended', unsubscribe = NULL
                     WHERE run_id = ?1 AND callback_id = ?2",
                    params![webhook.run_id, webhook.callback_id],
                )?;
            }
            if callback_id.is_none() {
                // The run is over: its callbacks are in its actions' outputs (or gone with its
                // secure state) and need not be kept twice.
                exec(
                    &tx,
                    "WITH RECURSIVE tree (id) AS (
                         SELECT ?1 UNION SELECT runs.id FROM runs JOIN tree ON runs.parent = tree.id
                     )
                     UPDATE webhooks SET callback = NULL
                     WHERE run_id IN (SELECT id FROM tree) AND callback IS NOT NULL",
                    params![run_id],
                )?;
            }
            tx.commit()?;
            Ok(open)
        })
    }
}

const WEBHOOK_COLUMNS: &str = "run_id, callback_id, path, state, subscribe, unsubscribe, callback";

fn webhook_row(row: &Row<'_>) -> rusqlite::Result<WebhookRecord> {
    let json = |index: usize| -> rusqlite::Result<Option<Value>> {
        Ok(row
            .get::<_, Option<String>>(index)?
            .and_then(|text| serde_json::from_str(&text).ok()))
    };
    let state: String = row.get(3)?;
    Ok(WebhookRecord {
        run_id: row.get(0)?,
        callback_id: row.get(1)?,
        path: row.get(2)?,
        state: WebhookState::parse(&state).unwrap_or(WebhookState::Ended),
        subscribe: json(4)?,
        unsubscribe: json(5)?,
        callback: json(6)?,
    })
}

const SECRET_COLUMNS: &str = "name, key_id, nonce, ciphertext, created_at, updated_at";

fn sealed_secret_row(row: &Row<'_>) -> rusqlite::Result<SealedSecret> {
    Ok(SealedSecret {
        name: row.get("name")?,
        key_id: row.get("key_id")?,
        nonce: row.get("nonce")?,
        ciphertext: row.get("ciphertext")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_of_schema_6_gains_the_webhooks_subscribe_column() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.db");
        {
            // The webhooks table as schema 6 made it, with a subscription waiting.
            let old = Connection::open(&path).expect("open");
            old.execute_batch(
                "CREATE TABLE webhooks (run_id TEXT NOT NULL, callback_id TEXT NOT NULL, path TEXT NOT NULL,
                     state TEXT NOT NULL, unsubscribe TEXT, callback TEXT, received_at INTEGER,
                     PRIMARY KEY (run_id, callback_id));
                 INSERT INTO webhooks (run_id, callback_id, path, state) VALUES ('r1', 'c1', 'Wait', 'Subscribed');
                 PRAGMA user_version = 6;",
            )
            .expect("schema 6");
        }
        let db = SqliteDb::open(&path).expect("a schema 6 history opens");
        let webhook = db.webhook("r1", "c1").expect("read").expect("the row is kept");
        assert_eq!(webhook.state, WebhookState::Subscribed);
        assert_eq!(webhook.subscribe, None);
        drop(db);
        let version: i64 = Connection::open(&path)
            .expect("open")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        // Opening it again (now at the current version) changes nothing.
        SqliteDb::open(&path).expect("opens again");
    }
}
