//! The Http trigger: an endpoint called on the trigger's recurrence, whose answer decides
//! whether a run starts, as Logic Apps documents it.
//!
//! ```json
//! "When_new_orders_are_ready": {
//!   "type": "Http",
//!   "inputs": {"method": "GET", "uri": "https://orders.example/ready"},
//!   "recurrence": {"frequency": "Minute", "interval": 5}
//! }
//! ```
//!
//! - **200** starts a run whose trigger outputs are the answer's `statusCode`, `headers` and
//!   `body` (`splitOn` and `conditions` apply as for a polling trigger). With `Retry-After`
//!   the endpoint is called again after that many seconds (at least one), else at the next
//!   occurrence.
//! - **Any other answer below 400** (such as 202: nothing yet) starts nothing; the next call
//!   is at the next occurrence, or after `Retry-After` if that is later.
//! - **A `Location` header** in an answer is where the next call goes (with the same method,
//!   headers and body); an answer without one sends the next call to the trigger's `uri`.
//!   It is kept in the trigger's state, so a restart calls where the last answer said.
//! - **400 or more, or no answer**, starts nothing and counts as a failed check, as a failed
//!   poll does (the management API shows it): the next call after `Retry-After`, else after
//!   the back-off (5 s doubling to 15 min), never sooner than the next occurrence. Logic Apps
//!   instead retries on the trigger's retry policy and then waits for the next occurrence;
//!   the back-off does both without holding the trigger in a retry loop.
//!
//! The request goes through the project's `http` connection, under its grant, like the Http
//! action's.

use std::time::Duration;

use serde_json::{Value, json};

use crate::connector::CallInfo;
use crate::db::TriggerState;
use crate::expr::evaluate_value;

use super::Engine;
use super::builtin_inputs::{self, http_request};
use super::definition::Trigger;
use super::scheduler::{Step, TriggerScope, failed_check, run_outputs};

/// The soonest a 200's `Retry-After` brings the next call (Logic Apps' shortest recurrence):
/// an endpoint answering `Retry-After: 0` would otherwise be called in a loop.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Calls the endpoint of `trigger` (due now, its workflow with room for a run) and records
/// what its answer says.
pub(super) async fn check(
    engine: &Engine,
    workflow: &str,
    trigger: &Trigger,
    mut state: TriggerState,
    now: i64,
    regular_next: Option<i64>,
) -> anyhow::Result<Step> {
    let shared = engine.shared();
    let scope = TriggerScope::new(shared, workflow);
    let inputs = match evaluate_value(&trigger.inputs, &scope) {
        Ok(inputs) => inputs,
        Err(e) => {
            let message = format!("the trigger's inputs: {}", e.message);
            return failed_check(engine, state, message, None, now, regular_next);
        }
    };
    let mut request = http_request(&inputs);
    let next_location = state
        .cursor
        .as_ref()
        .and_then(|c| c.get("location"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (Some(location), Some(fields)) = (next_location, request.as_object_mut()) {
        // The Location is a whole URL: the trigger's queries were for its own uri.
        fields.insert("uri".to_owned(), json!(location));
        fields.shift_remove("queries");
    }
    let call = CallInfo {
        idempotency_key: format!("{workflow}/{}/{}", trigger.name, state.version),
        attempt: state.failures + 1,
    };
    let response = match shared.http.invoke("request", &request, &call).await.result {
        Ok(response) => response,
        Err(error) => return failed_check(engine, state, error.to_string(), None, now, regular_next),
    };
    let status = response.get("statusCode").and_then(Value::as_u64).unwrap_or(0);
    let retry_after = builtin_inputs::retry_after(&response, now);
    if status >= 400 {
        let message = format!("the endpoint answered {status}");
        return failed_check(engine, state, message, retry_after, now, regular_next);
    }
    let after = |wait: Duration| now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2));
    let outputs = if status == 200 {
        let outputs = json!({
            "statusCode": status,
            "headers": response.get("headers").cloned().unwrap_or_else(|| json!({})),
            "body": response.get("body").cloned().unwrap_or(Value::Null),
        });
        match run_outputs(&scope, trigger, outputs) {
            Ok(outputs) => outputs,
            Err(message) => return failed_check(engine, state, message, None, now, regular_next),
        }
    } else {
        Vec::new()
    };
    state.next_at = match (status, retry_after) {
        // Sooner than the recurrence if the endpoint asks, but not in a loop of calls.
        (200, Some(wait)) => Some(after(wait.max(MIN_INTERVAL))),
        (_, Some(wait)) => regular_next.map(|regular| regular.max(after(wait))),
        (_, None) => regular_next,
    };
    let uri = request.get("uri").and_then(Value::as_str).unwrap_or_default();
    state.cursor = builtin_inputs::location(uri, &response).map(|location| json!({"location": location}));
    state.failures = 0;
    state.last_error = None;
    let runs = engine.fire_trigger(&state, outputs)?;
    Ok(Step {
        // Lost the race: another server checked; the next step reads its state.
        next_at: if runs.is_some() { state.next_at } else { Some(now) },
        runs: runs.unwrap_or_default(),
    })
}
