//! Durable run history behind one interface.
//!
//! The executor only talks to [`Db`]; [`SqliteDb`] is the embedded default (a file in the
//! project, nothing to install). The trait is written for a server database to follow: every
//! write is one statement or one transaction keyed by `(run_id, path)`, runs carry a lease
//! (owner and expiry) so several workers can share one database, and nothing relies on
//! SQLite-only behaviour.
//!
//! What is stored: a row per run; a row per action execution (its `path` names loop
//! iterations, such as `For_each[3]/Compose`) with status, attempt count, timings, inputs,
//! outputs and error; and a row per attempt. Inputs and outputs of actions marked
//! `secureData` never go into those rows: they sit in a separate table only while the run is
//! unfinished (resuming needs them) and are deleted when it finishes.

mod sqlite;

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

pub use sqlite::SqliteDb;

pub use cordon_core::status::Status;

/// One run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub workflow: String,
    pub status: Status,
    /// The trigger's record (`name`, `outputs` with `headers` and `body`).
    pub trigger: Value,
    /// What the run produced: the body of its Response action, if it had one.
    pub response: Option<Value>,
    pub error: Option<Value>,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// The run this one was resubmitted from, if any.
    pub resubmitted_from: Option<String>,
    /// The run that called this one as a child workflow, if any.
    pub parent: Option<String>,
}

impl RunRecord {
    /// The message of the run's error, if it ended with one.
    pub fn error_message(&self) -> Option<&str> {
        self.error.as_ref()?.get("message")?.as_str()
    }
}

/// One execution of an action within a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    pub run_id: String,
    /// The action's name, prefixed by every enclosing loop iteration: `Loop[2]/Inner`.
    pub path: String,
    pub name: String,
    /// The path of the enclosing container action (`Scope`, `If`, loop iteration), or "".
    pub parent: String,
    /// The action type, such as `Compose` or `ServiceProvider`.
    pub kind: String,
    pub status: Status,
    pub attempts: u32,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// `None` when the action has not evaluated its inputs yet, or they are secure.
    pub inputs: Option<Value>,
    pub outputs: Option<Value>,
    pub error: Option<Value>,
    /// The stable key every attempt of this execution forwards to connectors.
    pub idempotency_key: String,
    pub secure_inputs: bool,
    pub secure_outputs: bool,
    /// Order of first start within the run, for display.
    pub sequence: i64,
}

impl ActionRecord {
    /// The record as people see it (`cordon runs show`, the management API): secure inputs and
    /// outputs say that they are hidden instead of being empty.
    pub fn for_display(&self) -> ActionRecord {
        const HIDDEN: &str = "<secure: hidden by runtimeConfiguration.secureData>";
        let mut shown = self.clone();
        if self.secure_inputs {
            shown.inputs = Some(Value::String(HIDDEN.to_owned()));
        }
        if self.secure_outputs {
            shown.outputs = Some(Value::String(HIDDEN.to_owned()));
        }
        shown
    }
}

/// One attempt of an action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub status: Status,
    pub started_at: i64,
    pub ended_at: i64,
    pub error: Option<Value>,
}

/// The attempt an unfinished action was on when its process stopped, when that attempt is a
/// retry (the first attempt starts with the action itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptInFlight {
    pub attempt: u32,
    /// When the retry delay before it ends.
    pub due_at: i64,
    /// When it began; `None` while its retry delay has not ended, so it never ran.
    pub started_at: Option<i64>,
}

/// What the history keeps about one scheduled or polling trigger.
///
/// Every change goes through [`Db::fire_trigger`], which compares `version` and writes the
/// runs a firing creates in the same transaction as the new state: a crash between the two
/// cannot lose an item or start it twice, and two servers on one database cannot both fire
/// one occurrence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerState {
    pub workflow: String,
    pub trigger: String,
    /// 0 before the first write; every write adds one.
    pub version: i64,
    /// The connector's cursor (what its last poll returned), for polling triggers.
    pub cursor: Option<Value>,
    /// When the trigger is next due, in milliseconds since the Unix epoch.
    pub next_at: Option<i64>,
    /// When cordon first saw the trigger: the start of a recurrence without a `startTime`.
    pub anchor: i64,
    /// Polls that failed in a row, for back-off.
    pub failures: u32,
    pub last_error: Option<String>,
}

impl TriggerState {
    pub fn new(workflow: &str, trigger: &str, anchor: i64) -> TriggerState {
        TriggerState {
            workflow: workflow.to_owned(),
            trigger: trigger.to_owned(),
            version: 0,
            cursor: None,
            next_at: None,
            anchor,
            failures: 0,
            last_error: None,
        }
    }
}

/// Filters for [`Db::list_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<Status>,
    pub limit: Option<usize>,
    /// Only runs that come after this run in the listing's order (newest first): the last
    /// run of one page gives the next page. A run the history does not have is
    /// [`DbError::NoSuchRun`].
    pub before: Option<String>,
}

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("run history database {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("run history: {0}")]
    Query(String),
    #[error("no run with id {0:?}; `cordon runs list` shows the runs")]
    NoSuchRun(String),
    /// A write of a run's execution made under a lease this worker no longer holds.
    #[error(
        "run {run_id} is no longer this worker's to execute: {}; this worker stops executing it",
        match holder {
            Some(holder) => format!("worker {holder} holds its lease now (this worker's lapsed)"),
            None => "it was cancelled or stopped elsewhere".to_owned(),
        }
    )]
    LeaseLost { run_id: String, holder: Option<String> },
}

/// What a run's execution writes under: the run, and the worker that holds its lease.
///
/// Fencing: only the lease's holder may write a run's execution. A worker whose lease lapsed
/// (its heartbeat could not write for a whole lease, or its process was paused) while another
/// claimed the run would otherwise go on executing it beside the other; its next write is
/// refused with [`DbError::LeaseLost`] instead, and it stops. The same stops a worker
/// executing a run that was cancelled elsewhere (another server on the same history), though
/// the records of what it finished are still written to that run.
#[derive(Debug, Clone, Copy)]
pub struct RunLease<'a> {
    pub run_id: &'a str,
    pub owner: &'a str,
}

/// An action's final record, as [`Db::actions_finished`] and [`Db::finish_run`] write it.
#[derive(Debug, Clone)]
pub struct FinishedAction {
    pub record: ActionRecord,
    /// The attempt that ended the action; `None` for a skipped action.
    pub last_attempt: Option<AttemptRecord>,
    /// For an action with secure inputs or outputs: the real values (`inputs`, `outputs`),
    /// kept out of `record` and stored only until the run ends.
    pub secure_state: Option<(Value, Value)>,
}

/// What [`Db::cancel_run`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    /// The run had already ended with this status; nothing changed.
    AlreadyEnded(Status),
}

/// Where an HttpWebhook action's subscription stands. Its row is written before the subscribe
/// request goes out, so a service that calls back at once (before the request even returns)
/// finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub run_id: String,
    /// The id in the callback URL, derived from the action's path (`workflow::webhooks`).
    pub callback_id: String,
    pub path: String,
    pub state: WebhookState,
    /// The subscribe request the service got, to tell whether the action (resumed under
    /// another callback URL, say) would now subscribe differently.
    pub subscribe: Option<Value>,
    /// The unsubscribe request as evaluated when the subscription was made, so that whoever
    /// ends the subscription (the action, a timeout, a cancel) can send it.
    pub unsubscribe: Option<Value>,
    /// The callback request (`{"headers", "body"}`) once it came, until the action ends.
    pub callback: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    /// The subscribe request may be on its way; a callback is already taken.
    Subscribing,
    Subscribed,
    /// The action ended (or timed out, or its run was cancelled); callbacks are refused.
    Ended,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookState::Subscribing => "Subscribing",
            WebhookState::Subscribed => "Subscribed",
            WebhookState::Ended => "Ended",
        }
    }

    pub fn parse(text: &str) -> Option<WebhookState> {
        [
            WebhookState::Subscribing,
            WebhookState::Subscribed,
            WebhookState::Ended,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// What [`Db::receive_callback`] did with a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Stored; the waiting action takes it.
    Accepted,
    /// No HttpWebhook action of that run subscribed with that id.
    Unknown,
    /// A callback came before; the action takes only the first.
    AlreadyReceived,
    /// The action ended without one (timed out, its run cancelled).
    Ended,
}

/// A secret as the database keeps it: sealed by `secrets::store`, never plaintext. The
/// database holds no key; `key_id` only names the master key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// Milliseconds since the Unix epoch. [`Db::put_secret`] keeps the first one.
    pub created_at: i64,
    pub updated_at: i64,
}

/// The version of a file connector the operator last approved for a connection (see
/// `workflow::upgrades`): its bytes, so that it keeps running while a newer file waits for
/// approval, what it requested, and the grant entries approvals added to `connections.json`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedConnector {
    pub connection: String,
    /// Lowercase hex SHA-256 of `component`.
    pub sha256: String,
    pub component: Vec<u8>,
    /// The approved version's manifest (`{"hosts": [...], "secrets": [...]}` and the rest).
    pub manifest: Value,
    /// A `Grant` in JSON: what approvals added on top of the connection's own grant.
    pub grant_extension: Value,
    /// Milliseconds since the Unix epoch.
    pub approved_at: i64,
}

/// The run history and its leases. Implementations must be safe to share between threads.
pub trait Db: Send + Sync + std::fmt::Debug {
    fn create_run(&self, run: &RunRecord, lease_owner: &str, lease_ms: i64) -> Result<(), DbError>;
    /// Moves a `Waiting` run to `Running` once it has a slot.
    fn start_waiting_run(&self, lease: RunLease<'_>) -> Result<(), DbError>;
    /// Ends an unfinished run as `Cancelled`, with its unfinished actions and child runs.
    fn cancel_run(&self, run_id: &str, now: i64) -> Result<CancelOutcome, DbError>;
    /// Ends the run, together with the final records of its actions that were not written yet
    /// (see [`FinishedAction`]), in one transaction. Only an unfinished run changes: a run
    /// cancelled meanwhile stays cancelled, and the answer is then `false`.
    fn finish_run(
        &self,
        lease: RunLease<'_>,
        status: Status,
        response: Option<&Value>,
        error: Option<&Value>,
        ended_at: i64,
        last_actions: &[FinishedAction],
    ) -> Result<bool, DbError>;
    fn run(&self, run_id: &str) -> Result<RunRecord, DbError>;
    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, DbError>;

    /// Takes over unfinished runs whose lease has expired or whose owner `is_dead` says is
    /// gone, and returns them. Claiming is atomic: two workers never both get a run.
    fn claim_orphaned_runs(
        &self,
        lease_owner: &str,
        lease_ms: i64,
        now: i64,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<RunRecord>, DbError>;
    /// Gives the lease on an unfinished run to `lease.owner`, whoever held it: for a child run
    /// that its parent's execution resumes, since whoever holds a parent's lease executes its
    /// children. A worker still executing the child under the old lease is stopped by its next
    /// write ([`RunLease`]).
    fn take_over_run(&self, lease: RunLease<'_>, lease_ms: i64, now: i64) -> Result<(), DbError>;
    /// Extends the lease on the runs this owner holds.
    fn renew_leases(&self, lease_owner: &str, lease_ms: i64, now: i64) -> Result<(), DbError>;
    /// Gives up the lease on an unfinished run whose execution stopped in this process (its
    /// history could not be written), so that the next claim of orphaned runs, by any
    /// worker, takes it up again. Nothing changes if another worker holds the lease by now.
    fn release_lease(&self, lease: RunLease<'_>) -> Result<(), DbError>;

    /// Records that an action started (or started again after a resume): status `Running`.
    /// This and the other writes of an execution are fenced by `lease` ([`RunLease`]).
    fn action_started(&self, lease: RunLease<'_>, record: &ActionRecord) -> Result<(), DbError>;
    /// Records one finished attempt; the action's attempt count moves to the next attempt.
    /// With `retry_due_at`, that next attempt is a retry due then ([`AttemptInFlight`]).
    fn attempt_finished(
        &self,
        lease: RunLease<'_>,
        path: &str,
        attempt: &AttemptRecord,
        retry_due_at: Option<i64>,
    ) -> Result<(), DbError>;
    /// Records that a retry (an attempt after the first) began at `at`.
    fn attempt_started(&self, lease: RunLease<'_>, path: &str, attempt: u32, at: i64) -> Result<(), DbError>;
    /// The retries in flight in an unfinished run, by action path.
    fn attempts_in_flight(&self, run_id: &str) -> Result<HashMap<String, AttemptInFlight>, DbError>;
    /// Records the final state of each action and its last attempt, all in one transaction.
    /// For secure actions, inputs and outputs are kept only until the run finishes.
    fn actions_finished(&self, lease: RunLease<'_>, finished: &[FinishedAction]) -> Result<(), DbError>;
    /// Every action record of a run in start order, with secure state filled in while the run
    /// is unfinished when `with_secure_state` is set (for resuming; never for display).
    fn actions(&self, run_id: &str, with_secure_state: bool) -> Result<Vec<ActionRecord>, DbError>;
    fn attempts(&self, run_id: &str, path: &str) -> Result<Vec<AttemptRecord>, DbError>;

    /// The stored state of a trigger, if it was ever written.
    fn trigger_state(&self, workflow: &str, trigger: &str) -> Result<Option<TriggerState>, DbError>;
    /// In one transaction: checks that the stored version is still `state.version`, creates
    /// `runs`, and stores `state` with the version one higher. Returns false (and writes
    /// nothing) when another writer got there first.
    fn fire_trigger(
        &self,
        state: &TriggerState,
        runs: &[RunRecord],
        lease_owner: &str,
        lease_ms: i64,
    ) -> Result<bool, DbError>;

    /// Whether a workflow is enabled; workflows are enabled until disabled.
    fn workflow_enabled(&self, workflow: &str) -> Result<bool, DbError>;
    fn set_workflow_enabled(&self, workflow: &str, enabled: bool) -> Result<(), DbError>;

    /// Deletes up to `limit` finished runs that ended before `ended_before` (milliseconds
    /// since the Unix epoch), oldest first, with their actions, attempts and webhook rows;
    /// returns how many. Unfinished runs stay, however old (retention, `workflow::retention`).
    fn delete_runs_ended_before(&self, ended_before: i64, limit: usize) -> Result<usize, DbError>;

    /// Stores a sealed secret, replacing one of the same name (whose `created_at` is kept).
    fn put_secret(&self, secret: &SealedSecret) -> Result<(), DbError>;
    fn sealed_secret(&self, name: &str) -> Result<Option<SealedSecret>, DbError>;
    /// Every sealed secret, by name.
    fn list_secrets(&self) -> Result<Vec<SealedSecret>, DbError>;
    /// Whether a secret of that name was there to delete.
    fn delete_secret(&self, name: &str) -> Result<bool, DbError>;
    /// The approved version of a connection's file connector, if one was recorded.
    fn approved_connector(&self, connection: &str) -> Result<Option<ApprovedConnector>, DbError>;
    /// Records `approved` as the connection's approved version, replacing the previous one.
    fn approve_connector(&self, approved: &ApprovedConnector) -> Result<(), DbError>;

    /// Records that an HttpWebhook action is about to subscribe (state `Subscribing`) with the
    /// unsubscribe request that ends it, unless it did before this process took over, and
    /// returns the subscription as it stands.
    fn webhook_prepare(
        &self,
        lease: RunLease<'_>,
        callback_id: &str,
        path: &str,
        unsubscribe: Option<&Value>,
    ) -> Result<WebhookRecord, DbError>;
    /// Records that `subscribe` succeeded, with the `unsubscribe` request that ends it.
    fn webhook_subscribed(
        &self,
        lease: RunLease<'_>,
        callback_id: &str,
        subscribe: &Value,
        unsubscribe: Option<&Value>,
    ) -> Result<(), DbError>;
    fn webhook(&self, run_id: &str, callback_id: &str) -> Result<Option<WebhookRecord>, DbError>;
    /// Stores the first callback of a subscription that has not ended.
    fn receive_callback(
        &self,
        run_id: &str,
        callback_id: &str,
        callback: &Value,
        now: i64,
    ) -> Result<CallbackOutcome, DbError>;
    /// Ends the subscription `callback_id` of a run, or with `None` every subscription of the
    /// run and of its child runs, and returns those that had not ended, as they were: whoever
    /// gets one back sends its unsubscribe request, so it is sent once. A callback stays until
    /// the run ends (`None`), so an action that stops after ending its subscription but
    /// before its outputs are recorded still finds it when the run resumes.
    fn end_webhooks(&self, run_id: &str, callback_id: Option<&str>) -> Result<Vec<WebhookRecord>, DbError>;

    /// Where the Http action at `path` polls its accepted request (the 202's Location), if it
    /// does: a resumed run goes on polling there instead of sending the request again.
    fn http_poll(&self, run_id: &str, path: &str) -> Result<Option<String>, DbError>;
    /// Records (or moves, when a 202 names a new Location) where the action at `path` polls.
    fn http_poll_started(&self, lease: RunLease<'_>, path: &str, location: &str) -> Result<(), DbError>;
    /// The polling at `path` got its answer. Rows also go when their run finishes.
    fn http_poll_ended(&self, lease: RunLease<'_>, path: &str) -> Result<(), DbError>;
}
