//! SlidingWindow triggers: one run per window of time, none skipped.
//!
//! ```json
//! "triggers": {"Every_hour": {
//!   "type": "SlidingWindow",
//!   "recurrence": {"frequency": "Hour", "interval": 1, "startTime": "2026-01-01T00:00:00Z"},
//!   "inputs": {"delay": "PT5M"}
//! }}
//! ```
//!
//! The windows are the spans between consecutive occurrences of the recurrence, from
//! `startTime` (from when cordon first served the trigger, without one). A window's run
//! starts once the window has ended and `delay` has passed; its trigger outputs carry
//! `windowStartTime` and `windowEndTime` (also in the body, for `triggerBody()`). Where a
//! Recurrence trigger folds missed occurrences into one run, a sliding window runs every
//! window it missed, one run each, oldest first: while the server was down, while the
//! workflow was disabled, and back to a `startTime` in the past (Logic Apps' documented
//! behaviour; the trigger is for work that must cover time without gaps).
//!
//! Decisions where Logic Apps says nothing: a window starts its run exactly once (the
//! window's start is the trigger state's cursor, advanced in the transaction that records the
//! run); an edited recurrence goes on from the end of the last window run, so the windows
//! stay contiguous; catching up starts no new window while the engine has
//! [`CATCH_UP_IN_FLIGHT`] runs in flight (or the workflow's concurrency limit is full), so a
//! year-old `startTime` does not put thousands of runs in memory at once.

use serde_json::{Value, json};

use crate::db::TriggerState;

use super::Engine;
use super::recurrence::Recurrence;
use super::scheduler::{Step, fingerprint, iso, to_datetime};

/// While catching up, no new window starts while this many runs execute in the engine.
pub const CATCH_UP_IN_FLIGHT: usize = 100;

/// How soon to look again when catching up had to wait for room.
const ROOM_CHECK_MS: i64 = 1_000;

/// One step of a SlidingWindow trigger as of `now`: start the run of the oldest window
/// that is due, if any.
pub(super) fn step(
    engine: &Engine,
    recurrence: &Recurrence,
    mut state: TriggerState,
    delay_ms: i64,
    now: i64,
) -> anyhow::Result<Step> {
    let cursor = state.cursor.clone().unwrap_or(Value::Null);
    let fingerprint = fingerprint(recurrence);
    let recorded_start = cursor.get("windowStart").and_then(Value::as_i64);
    let window_start = match (recorded_start, recurrence.start) {
        (Some(start), _) => start,
        (None, Some(start)) => start.timestamp_millis(),
        (None, None) => {
            // First sight as a sliding window: the windows start now, and their grid with
            // them (a state left by another trigger type of the same name has an older
            // anchor, which would otherwise be backfilled from).
            state.anchor = now;
            now
        }
    };
    let window_end = recurrence
        .next_after(to_datetime(window_start), to_datetime(state.anchor))
        .map(|t| t.timestamp_millis());
    let due_at = window_end.map(|end| end.saturating_add(delay_ms));
    let schedule_changed = cursor.get("recurrence").and_then(Value::as_str) != Some(fingerprint.as_str());
    if recorded_start.is_none() || state.next_at != due_at || schedule_changed {
        // First sight or an edited recurrence: record where the windows go on from.
        state.next_at = due_at;
        state.cursor = Some(json!({"recurrence": fingerprint, "windowStart": window_start}));
        if engine.fire_trigger(&state, Vec::new())?.is_none() {
            // Another server wrote first; look again at once.
            return Ok(Step {
                runs: Vec::new(),
                next_at: Some(now),
            });
        }
        state.version += 1;
    }
    let (Some(window_end), Some(due_at)) = (window_end, due_at) else {
        return Ok(Step::default());
    };
    if due_at > now {
        return Ok(Step {
            runs: Vec::new(),
            next_at: Some(due_at),
        });
    }
    if !engine.is_enabled(&state.workflow)? {
        // The window waits to be run on enabling.
        return Ok(Step {
            runs: Vec::new(),
            next_at: Some(now + ROOM_CHECK_MS),
        });
    }
    if let Some(wait) = engine.run_quota_wait() {
        return Ok(Step {
            runs: Vec::new(),
            next_at: Some(now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2)),
        });
    }
    // When the window after this one is due: already, while catching up.
    let next_due = recurrence
        .next_after(to_datetime(window_end), to_datetime(state.anchor))
        .map(|t| t.timestamp_millis().saturating_add(delay_ms));
    let catching_up = next_due.is_some_and(|due| due <= now);
    if engine.is_full(&state.workflow) || (catching_up && engine.in_flight() >= CATCH_UP_IN_FLIGHT) {
        return Ok(Step {
            runs: Vec::new(),
            next_at: Some(now + ROOM_CHECK_MS),
        });
    }
    let window = json!({"windowStartTime": iso(window_start), "windowEndTime": iso(window_end)});
    let outputs = json!({
        "headers": {},
        "body": window,
        "windowStartTime": window["windowStartTime"],
        "windowEndTime": window["windowEndTime"],
    });
    state.next_at = next_due;
    state.cursor = Some(json!({"recurrence": fingerprint, "windowStart": window_end}));
    let runs = engine.fire_trigger(&state, vec![outputs])?.unwrap_or_default();
    Ok(Step {
        runs,
        next_at: next_due,
    })
}
