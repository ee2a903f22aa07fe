//! Running a scheduled trigger now, as Logic Apps' "Run trigger" does: `POST
//! /management/workflows/{workflow}/triggers/{trigger}/run` on `cordon serve`.
//!
//! The trigger is made due at once in its stored state, and the server's own loop for it
//! fires it at its next look (within a second), as it fires any occurrence: a Recurrence
//! starts one run whose `scheduledTime` is now; a ServiceProvider or Http trigger polls (or
//! calls its endpoint) and starts runs only for what it finds. The schedule does not move:
//! the occurrence after this one is the one it would have been.
//!
//! Why the due time and not a run started here: the trigger's loop is then the one place
//! that fires, and the state's compare-and-set keeps a manual run and a regular occurrence
//! from both writing (a poll's cursor advanced twice, items started twice). It also works
//! from any process sharing the history, since each look reads the state afresh.
//!
//! Refused, each with its reason: Request and HttpWebhook triggers (their runs start from a
//! request to their URL), SlidingWindow triggers (one run per window of the schedule; a run
//! now would be a window out of order), a disabled workflow, and a polling trigger whose
//! workflow's concurrency limit has no room (its loop would skip the poll to the next
//! occurrence, and the request would be lost).

use super::Engine;
use super::definition::TriggerKind;
use crate::db::DbError;

/// How often the compare-and-set is tried when the trigger's loop writes in between.
const ATTEMPTS: usize = 5;

/// Why a trigger was not made due.
#[derive(Debug, thiserror::Error)]
pub enum RunNowError {
    #[error(transparent)]
    NoSuchWorkflow(#[from] super::NoSuchWorkflow),
    #[error("workflow {workflow:?} has no trigger {trigger:?}; its triggers: {}", known.join(", "))]
    NoSuchTrigger {
        workflow: String,
        trigger: String,
        known: Vec<String>,
    },
    /// The trigger is not run by a schedule; the message says how its runs start.
    #[error("trigger {trigger:?} cannot be run now: {reason}")]
    NotScheduled { trigger: String, reason: &'static str },
    #[error("workflow {0:?} is disabled; enable it first (POST /management/workflows/{0}/enable)")]
    Disabled(String),
    #[error(
        "workflow {0:?} has as many runs in flight as its concurrency limit allows; the poll would be skipped, so try again when one ends"
    )]
    Busy(String),
    /// The server has not looked at the trigger yet (it just started).
    #[error("trigger {0:?} is not scheduled yet; try again in a second")]
    NotYetScheduled(String),
    /// Other writers changed the trigger's state at every attempt (its loop firing it).
    #[error("trigger {0:?} was being fired as this was asked; try again in a second")]
    Contended(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Makes `trigger` of `workflow` due now, and returns when (milliseconds since the Unix
/// epoch). A trigger already due is left as it is.
pub fn run_now(engine: &Engine, workflow: &str, trigger: &str) -> Result<i64, RunNowError> {
    engine.check_workflow(workflow)?;
    let found = engine
        .workflows()
        .find(|w| w.name == workflow)
        .and_then(|w| w.triggers.iter().find(|t| t.name == trigger));
    let Some(found) = found else {
        let known = engine
            .workflows()
            .filter(|w| w.name == workflow)
            .flat_map(|w| w.triggers.iter().map(|t| t.name.clone()))
            .collect();
        return Err(RunNowError::NoSuchTrigger {
            workflow: workflow.to_owned(),
            trigger: trigger.to_owned(),
            known,
        });
    };
    let not_scheduled = |reason| RunNowError::NotScheduled {
        trigger: trigger.to_owned(),
        reason,
    };
    match found.kind {
        TriggerKind::Recurrence | TriggerKind::ServiceProvider { .. } | TriggerKind::Http => {}
        TriggerKind::Request => {
            return Err(not_scheduled(
                "a Request trigger starts a run when its URL is called; send the request (cordon workflows callback-url prints the URL)",
            ));
        }
        TriggerKind::HttpWebhook => {
            return Err(not_scheduled(
                "an HttpWebhook trigger starts a run when the subscribed service calls back",
            ));
        }
        TriggerKind::SlidingWindow { .. } => {
            return Err(not_scheduled(
                "a SlidingWindow trigger runs once per window of its schedule, in order; a run now would be a window out of order",
            ));
        }
    }
    if !engine.is_enabled(workflow)? {
        return Err(RunNowError::Disabled(workflow.to_owned()));
    }
    let polls = !matches!(found.kind, TriggerKind::Recurrence);
    if polls && engine.is_full(workflow) {
        return Err(RunNowError::Busy(workflow.to_owned()));
    }
    let now = engine.shared().clock.now_ms();
    for _ in 0..ATTEMPTS {
        let Some(mut state) = engine.db().trigger_state(workflow, trigger)? else {
            return Err(RunNowError::NotYetScheduled(trigger.to_owned()));
        };
        if let Some(due) = state.next_at.filter(|at| *at <= now) {
            return Ok(due);
        }
        if state.next_at.is_none() {
            // Not yet through its first look, which sets the schedule from `startTime`.
            return Err(RunNowError::NotYetScheduled(trigger.to_owned()));
        }
        state.next_at = Some(now);
        if engine.fire_trigger(&state, Vec::new())?.is_some() {
            tracing::info!(workflow, trigger, "trigger made due now by request");
            return Ok(now);
        }
    }
    Err(RunNowError::Contended(trigger.to_owned()))
}
