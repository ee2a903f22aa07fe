//! Recurrence and polling triggers: when each is due, what a firing records, and the loop
//! `cordon serve` runs them in.
//!
//! Every trigger keeps a [`TriggerState`] in the history: when it is next due, the
//! connector's cursor, and a version. A firing writes its runs and the trigger's new state
//! in one transaction that first checks the version ([`Engine::fire_trigger`]), so an
//! occurrence fires once even with a crash between steps or two servers on one database, and
//! a polling trigger's items are neither lost nor started twice.
//!
//! Policies (each tested in `tests/tests/integration/triggers.rs`):
//! - **Missed occurrences.** When the server was down (or busy) past one or more occurrences
//!   of a recurrence, the next step fires *one* run for them, the latest; its trigger body
//!   says `scheduledTime` and how many occurrences were folded in (`missedOccurrences`). The
//!   next occurrence is then computed from the present. Catching up one by one after a long
//!   outage would start a burst of runs nobody asked for.
//! - **A new trigger** without `startTime` fires at once (as Logic Apps does when a workflow
//!   is saved); with a `startTime` in the past it waits for the next occurrence.
//! - **A changed recurrence** (the definition was edited between starts) is rescheduled from
//!   the present, without catching up.
//! - **Disabled workflows** do not fire; occurrences while disabled are skipped, not caught
//!   up on enabling. Polling resumes from the stored cursor.
//! - **Polls.** Items become runs: without `splitOn`, one run whose trigger body is the list
//!   of items (none when the list is empty); with `splitOn`, one run per element of the array
//!   it evaluates to, at most [`MAX_SPLIT_ON_ITEMS`] (100 with a concurrency limit; more fail
//!   the poll). Every `conditions` expression must be true for an item to start a run.
//!   A failed poll keeps the cursor, waits `Retry-After` when the connector was rate limited,
//!   and otherwise backs off exponentially (5 s doubling to 15 min, never sooner than the
//!   next occurrence); other triggers are not affected. A workflow whose concurrency limit
//!   has no room is not polled, so items wait in the source rather than in memory.
//! - **SlidingWindow triggers** run every window, missed ones too, one run each; their
//!   policy is in [`super::sliding_window`].
//! - **Http triggers** call their endpoint on the recurrence; what its answer starts and
//!   when the next call goes is in [`super::http_trigger`]. A failed call is a failed poll.
//! - **A tenant's run quota** (`runsPerMinute`, [`super::run_quota`]) with no room defers
//!   firing until it has: the occurrence counts as missed, a poll's items stay in the source.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::connector::CallInfo;
use crate::db::{RunRecord, TriggerState};
use crate::error::{ConnectorError, InvokeError};
use crate::expr::{Scope, Template, describe_value, evaluate_value};

use super::Engine;
use super::definition::{Trigger, TriggerKind};
use super::executor::EngineShared;
use super::recurrence::Recurrence;

/// The first back-off after a failed poll; it doubles with each failure in a row.
pub const BACKOFF_START: Duration = Duration::from_secs(5);
/// The longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// The most items one poll's `splitOn` may turn into runs, Logic Apps' limit: past it the
/// poll fails, its items stay in the source and the cursor where it was, instead of one
/// transaction recording runs by the million (an 8 MiB poll of small items splits into
/// millions, and `splitOn` is an expression that can make more).
pub const MAX_SPLIT_ON_ITEMS: usize = 100_000;
/// The same limit for a trigger with `runtimeConfiguration.concurrency`, whose runs beyond
/// the limit wait in memory (Logic Apps' limit too).
pub const MAX_SPLIT_ON_ITEMS_WITH_CONCURRENCY: usize = 100;

/// How often a trigger loop looks again when nothing is due sooner, so enabling a workflow
/// or a changed clock is noticed.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The recurrence and polling triggers of an engine's workflows.
#[derive(Debug, Clone)]
pub struct Scheduler {
    engine: Engine,
    triggers: Arc<Vec<Scheduled>>,
}

#[derive(Debug, Clone)]
struct Scheduled {
    workflow: String,
    trigger: Trigger,
    recurrence: Recurrence,
}

/// What one step of a trigger did.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Runs recorded by this step, not yet executed.
    pub runs: Vec<RunRecord>,
    /// When the trigger is next due (milliseconds since the Unix epoch).
    pub next_at: Option<i64>,
}

impl Scheduler {
    pub fn new(engine: Engine) -> Scheduler {
        let mut triggers = Vec::new();
        for workflow in engine.workflows() {
            for trigger in &workflow.triggers {
                if let Some(recurrence) = &trigger.recurrence {
                    triggers.push(Scheduled {
                        workflow: workflow.name.clone(),
                        trigger: trigger.clone(),
                        recurrence: recurrence.clone(),
                    });
                }
            }
        }
        Scheduler {
            engine,
            triggers: Arc::new(triggers),
        }
    }

    /// `(workflow, trigger)` of every scheduled trigger.
    pub fn triggers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.triggers
            .iter()
            .map(|s| (s.workflow.as_str(), s.trigger.name.as_str()))
    }

    /// Steps every trigger once as of `now` (milliseconds since the Unix epoch), concurrently,
    /// and returns the runs they recorded, without executing them. Tests drive time with it.
    pub async fn tick(&self, now: i64) -> anyhow::Result<Vec<RunRecord>> {
        let steps = self.triggers.iter().map(|s| step(&self.engine, s, now));
        let mut runs = Vec::new();
        for step in futures_util::future::join_all(steps).await {
            runs.extend(step?.runs);
        }
        Ok(runs)
    }

    /// Runs every trigger in a task of its own until `stop` is cancelled, executing the runs
    /// they record. A failing trigger logs and retries; it never stops the others.
    pub fn spawn(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let tasks: Vec<_> = (0..self.triggers.len())
            .map(|index| {
                let scheduler = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move { scheduler.trigger_loop(index, stop).await })
            })
            .collect();
        tokio::spawn(async move {
            futures_util::future::join_all(tasks).await;
        })
    }

    async fn trigger_loop(&self, index: usize, stop: CancellationToken) {
        let scheduled = &self.triggers[index];
        let clock = self.engine.shared().clock.clone();
        while !stop.is_cancelled() {
            let now = clock.now_ms();
            let wait = match step(&self.engine, scheduled, now).await {
                Ok(step) => {
                    for run in step.runs {
                        let engine = self.engine.clone();
                        tokio::spawn(async move {
                            if let Err(e) = engine.execute(run).await {
                                tracing::error!(error = %format!("{e:#}"), "a triggered run stopped");
                            }
                        });
                    }
                    let until_due = step.next_at.map_or(IDLE_CHECK, |at| {
                        Duration::from_millis(at.saturating_sub(clock.now_ms()).max(0) as u64)
                    });
                    until_due.min(IDLE_CHECK)
                }
                Err(e) => {
                    tracing::error!(
                        workflow = scheduled.workflow,
                        trigger = scheduled.trigger.name,
                        error = %format!("{e:#}"),
                        "cannot step the trigger"
                    );
                    IDLE_CHECK
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = clock.sleep(wait) => {}
            }
        }
    }
}

pub(super) fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn iso(ms: i64) -> String {
    to_datetime(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What identifies a recurrence definition in the stored state, to notice edits.
pub(super) fn fingerprint(recurrence: &Recurrence) -> String {
    format!("{recurrence:?}")
}

/// One step of one trigger as of `now`: fire it if it is due.
async fn step(engine: &Engine, scheduled: &Scheduled, now: i64) -> anyhow::Result<Step> {
    let db = engine.db();
    let recurrence = &scheduled.recurrence;
    let next_after = |state: &TriggerState, after: i64| {
        recurrence
            .next_after(to_datetime(after), to_datetime(state.anchor))
            .map(|t| t.timestamp_millis())
    };
    let mut state = db
        .trigger_state(&scheduled.workflow, &scheduled.trigger.name)?
        .unwrap_or_else(|| TriggerState::new(&scheduled.workflow, &scheduled.trigger.name, now));
    if let TriggerKind::SlidingWindow { delay } = scheduled.trigger.kind {
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        return super::sliding_window::step(engine, recurrence, state, delay_ms, now);
    }
    let is_recurrence = scheduled.trigger.kind == TriggerKind::Recurrence;
    let schedule_changed = is_recurrence
        && state
            .cursor
            .as_ref()
            .and_then(|c| c.get("recurrence"))
            .and_then(Value::as_str)
            != Some(fingerprint(recurrence).as_str());
    if state.next_at.is_none() || schedule_changed {
        // First sight (or an edited schedule): a recurrence without startTime starts now.
        let first = if state.version == 0 { now - 1 } else { now };
        state.next_at = next_after(&state, first);
        if is_recurrence {
            state.cursor = Some(json!({"recurrence": fingerprint(recurrence)}));
        }
        if engine.fire_trigger(&state, Vec::new())?.is_none() {
            return Ok(Step {
                runs: Vec::new(),
                next_at: Some(now),
            });
        }
        state.version += 1;
    }
    let Some(due) = state.next_at.filter(|at| *at <= now) else {
        return Ok(Step {
            runs: Vec::new(),
            next_at: state.next_at,
        });
    };
    if !engine.is_enabled(&scheduled.workflow)? {
        // Skip what falls due while disabled.
        state.next_at = next_after(&state, now);
        engine.fire_trigger(&state, Vec::new())?;
        return Ok(Step {
            runs: Vec::new(),
            next_at: state.next_at,
        });
    }
    if let Some(wait) = engine.run_quota_wait() {
        // The tenant started its runs for this minute: the state stays due, so the
        // occurrence folds into the next firing and a poll's items wait in their source.
        return Ok(Step {
            runs: Vec::new(),
            next_at: Some(now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2)),
        });
    }
    let polls = matches!(
        scheduled.trigger.kind,
        TriggerKind::ServiceProvider { .. } | TriggerKind::Http
    );
    if polls && engine.is_full(&scheduled.workflow) {
        // No room: leave the items in the source and look again at the next occurrence.
        return Ok(Step {
            runs: Vec::new(),
            next_at: next_after(&state, now),
        });
    }
    match &scheduled.trigger.kind {
        TriggerKind::Recurrence => {
            // Fold every occurrence up to now into one run for the latest.
            let mut latest = due;
            let mut missed = 0u64;
            while let Some(next) = next_after(&state, latest).filter(|n| *n <= now) {
                latest = next;
                missed += 1;
                if missed > 100_000 {
                    break;
                }
            }
            state.next_at = next_after(&state, now);
            let outputs = json!({
                "headers": {},
                "body": {"scheduledTime": iso(latest), "missedOccurrences": missed},
            });
            let runs = engine.fire_trigger(&state, vec![outputs])?.unwrap_or_default();
            if missed > 0 {
                tracing::info!(
                    workflow = scheduled.workflow,
                    trigger = scheduled.trigger.name,
                    missed,
                    "occurrences missed while the server was down ran once"
                );
            }
            Ok(Step {
                runs,
                next_at: state.next_at,
            })
        }
        TriggerKind::ServiceProvider {
            connection,
            operation,
        } => poll(engine, scheduled, state, connection, operation, now, next_after).await,
        TriggerKind::Http => {
            let regular_next = next_after(&state, now);
            let (workflow, trigger) = (&scheduled.workflow, &scheduled.trigger);
            super::http_trigger::check(engine, workflow, trigger, state, now, regular_next).await
        }
        TriggerKind::Request | TriggerKind::HttpWebhook | TriggerKind::SlidingWindow { .. } => {
            Ok(Step::default())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn poll(
    engine: &Engine,
    scheduled: &Scheduled,
    mut state: TriggerState,
    connection: &str,
    operation: &str,
    now: i64,
    next_after: impl Fn(&TriggerState, i64) -> Option<i64>,
) -> anyhow::Result<Step> {
    let regular_next = next_after(&state, now);
    let shared = engine.shared();
    let scope = TriggerScope::new(shared, &scheduled.workflow);
    let outcome = async {
        let connection = shared
            .connections
            .get(connection)
            .ok_or_else(|| PollFailure::Other(format!("connection {connection:?} is not loaded")))?;
        let input = scheduled
            .trigger
            .inputs
            .get("parameters")
            .map(|p| evaluate_value(p, &scope))
            .transpose()
            .map_err(|e| PollFailure::Other(format!("the trigger's inputs: {}", e.message)))?
            .unwrap_or_else(|| json!({}));
        let call = CallInfo {
            idempotency_key: format!(
                "{}/{}/{}",
                scheduled.workflow, scheduled.trigger.name, state.version
            ),
            attempt: state.failures + 1,
        };
        let polled = connection
            .poll(operation, &input, state.cursor.as_ref(), &call)
            .await
            .result
            .map_err(|e| match e {
                InvokeError::Connector(ConnectorError::RateLimited { message, retry_after }) => {
                    PollFailure::RateLimited { message, retry_after }
                }
                other => PollFailure::Other(other.to_string()),
            })?;
        // No items and no splitOn: nothing to start (with splitOn, the array gives none).
        let outputs = if polled.items.is_empty() && scheduled.trigger.split_on.is_none() {
            Vec::new()
        } else {
            let polled_outputs = json!({"headers": {}, "body": polled.items});
            run_outputs(&scope, &scheduled.trigger, polled_outputs).map_err(PollFailure::Other)?
        };
        Ok::<_, PollFailure>((outputs, polled.state))
    }
    .await;
    match outcome {
        Ok((outputs, cursor)) => {
            state.cursor = Some(cursor);
            state.failures = 0;
            state.last_error = None;
            state.next_at = regular_next;
            let runs = engine.fire_trigger(&state, outputs)?;
            Ok(Step {
                // Lost the race: another writer polled; the next step reads its state.
                next_at: if runs.is_some() { state.next_at } else { Some(now) },
                runs: runs.unwrap_or_default(),
            })
        }
        Err(failure) => {
            let retry_after = match &failure {
                PollFailure::RateLimited { retry_after, .. } => *retry_after,
                PollFailure::Other(_) => None,
            };
            failed_check(engine, state, failure.to_string(), retry_after, now, regular_next)
        }
    }
}

/// Records a failed poll or check: the failure counted and its reason kept (the management
/// API shows both), and the next try after `Retry-After` if the source gave one, else after
/// the back-off, never sooner than the next occurrence. The cursor stays.
pub(super) fn failed_check(
    engine: &Engine,
    mut state: TriggerState,
    message: String,
    retry_after: Option<Duration>,
    now: i64,
    regular_next: Option<i64>,
) -> anyhow::Result<Step> {
    state.failures += 1;
    let delay = retry_after.unwrap_or_else(|| {
        BACKOFF_START
            .saturating_mul(1u32 << (state.failures - 1).min(16))
            .min(BACKOFF_MAX)
    });
    tracing::warn!(
        workflow = state.workflow,
        trigger = state.trigger,
        failures = state.failures,
        retry_in_ms = delay.as_millis() as u64,
        error = %message,
        "poll failed"
    );
    state.last_error = Some(message);
    state.next_at = regular_next.map(|regular| regular.max(now + delay.as_millis() as i64));
    engine.fire_trigger(&state, Vec::new())?;
    Ok(Step {
        runs: Vec::new(),
        next_at: state.next_at,
    })
}

#[derive(Debug, thiserror::Error)]
enum PollFailure {
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{0}")]
    Other(String),
}

/// The trigger outputs (`{"headers", "body", …}`) of the runs one firing starts from
/// `outputs`: without `splitOn` the outputs themselves, with it one run per element of the
/// array it gives (each the body of outputs with the same headers); then `conditions`.
pub(super) fn run_outputs(
    scope: &TriggerScope<'_>,
    trigger: &Trigger,
    outputs: Value,
) -> Result<Vec<Value>, String> {
    let candidates = match &trigger.split_on {
        None => vec![outputs],
        Some(split_on) => {
            let template = Template::parse(split_on).map_err(|e| format!("splitOn: {}", e.message))?;
            let split = template
                .evaluate(&scope.with_trigger(outputs.clone()))
                .map_err(|e| format!("splitOn: {}", e.message))?;
            let headers = outputs.get("headers").cloned().unwrap_or_else(|| json!({}));
            match split {
                Value::Array(list) => {
                    let (limit, whose) = match trigger.concurrency {
                        Some(_) => (
                            MAX_SPLIT_ON_ITEMS_WITH_CONCURRENCY,
                            "Logic Apps' limit for a trigger with runtimeConfiguration.concurrency",
                        ),
                        None => (MAX_SPLIT_ON_ITEMS, "Logic Apps' limit"),
                    };
                    if list.len() > limit {
                        return Err(format!(
                            "splitOn gave {} items, and one poll may start at most {limit} runs ({whose}); \
                             have the connector return fewer items per poll",
                            list.len()
                        ));
                    }
                    list.into_iter()
                        .map(|body| json!({"headers": headers, "body": body}))
                        .collect()
                }
                Value::Null => Vec::new(),
                other => {
                    return Err(format!(
                        "splitOn must give an array, and gave {}",
                        describe_value(&other)
                    ));
                }
            }
        }
    };
    let mut kept = Vec::with_capacity(candidates.len());
    'candidates: for candidate in candidates {
        let trigger_scope = scope.with_trigger(candidate.clone());
        for condition in &trigger.conditions {
            let template = Template::parse(condition).map_err(|e| format!("condition: {}", e.message))?;
            match template.evaluate(&trigger_scope) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => continue 'candidates,
                Ok(other) => return Err(format!("condition {condition:?} gave {other}, not true or false")),
                Err(e) => return Err(format!("condition {condition:?}: {}", e.message)),
            }
        }
        kept.push(candidate);
    }
    Ok(kept)
}

/// What a trigger's expressions see: parameters, app settings, the workflow, the trigger's
/// own outputs (for `splitOn` and `conditions`), and for an HttpWebhook trigger its URL.
pub(super) struct TriggerScope<'a> {
    pub(super) engine: &'a EngineShared,
    pub(super) workflow: &'a str,
    pub(super) trigger: Option<Value>,
    /// `listCallbackUrl()` in an HttpWebhook trigger's inputs.
    pub(super) callback_url: Option<String>,
}

impl<'a> TriggerScope<'a> {
    /// What a trigger's inputs see: no trigger outputs yet, no callback URL.
    pub(super) fn new(engine: &'a EngineShared, workflow: &'a str) -> TriggerScope<'a> {
        TriggerScope {
            engine,
            workflow,
            trigger: None,
            callback_url: None,
        }
    }

    fn with_trigger(&self, outputs: Value) -> TriggerScope<'_> {
        TriggerScope {
            engine: self.engine,
            workflow: self.workflow,
            trigger: Some(json!({"outputs": outputs})),
            callback_url: None,
        }
    }
}

impl Scope for TriggerScope<'_> {
    fn parameter(&self, name: &str) -> Option<Value> {
        self.engine.parameters.get(name).cloned().or_else(|| {
            self.engine
                .plans
                .get(self.workflow)
                .and_then(|p| p.workflow.parameters.get(name))
                .cloned()
        })
    }
    fn variable(&self, _: &str) -> Option<Value> {
        None
    }
    fn action(&self, _: &str) -> Option<Value> {
        None
    }
    fn trigger(&self) -> Option<Value> {
        self.trigger.clone()
    }
    fn item(&self) -> Option<Value> {
        None
    }
    fn items(&self, _: &str) -> Option<Value> {
        None
    }
    fn iteration_index(&self, _: &str) -> Option<Value> {
        None
    }
    fn result(&self, _: &str) -> Option<Value> {
        None
    }
    fn workflow(&self) -> Value {
        json!({"name": self.workflow})
    }
    fn callback_url(&self) -> Option<String> {
        self.callback_url.clone()
    }
    fn appsetting(&self, name: &str) -> Option<String> {
        if self.engine.secret_settings.contains(name) {
            return None;
        }
        self.engine.settings.get(name)
    }
}
