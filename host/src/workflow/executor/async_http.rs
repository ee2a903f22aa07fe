//! The Http action's asynchronous pattern, as Logic Apps runs it by default: a service that
//! answers `202 Accepted` with a `Location` header has accepted a long-running operation, and
//! the action polls that location with GET, every `Retry-After` seconds (20 without one, at
//! least 1), for as long as the answer is another 202 (which may name a new Location; one
//! without goes on polling the same one). The
//! first other answer is the action's outputs: a status of 400 or more fails the action, as a
//! direct answer would. `"operationOptions": "DisableAsyncPattern"` turns this off, and the 202 is
//! the outputs.
//!
//! Durability: the location is recorded (`http_polls`) before the first poll, so a process
//! that stops while the action polls resumes polling there, without sending the request
//! again. A poll that fails in a way worth retrying (a connection error, 408, 429, 5xx) is
//! tried again on the action's retry policy, counted apart from the request's own attempts;
//! when the policy gives up, the action fails with that answer. `limit.timeout` bounds the
//! whole action, polling included; without it, the action polls as long as it is answered
//! 202.
//!
//! A poll sends the request's headers (its content headers aside) and `authentication` only
//! when the location has the request's own scheme, host and port: a Location elsewhere gets
//! a bare GET, so credentials meant for one service do not follow a redirect to another.
//! Either way the poll goes through the `http` connection, under its grant.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::CallInfo;
use crate::db::DbError;
use crate::workflow::builtin_inputs::{self, retry_after};
use crate::workflow::definition::ActionKind;

use super::actions::{invoke_failure_result, status_failure};
use super::{ActionCall, ActionResult, RunEvent};

/// How long to wait between polls when the service gives no `Retry-After` (Logic Apps' 20 s).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(20);

/// The shortest wait between polls, whatever `Retry-After` says: a service answering
/// `Retry-After: 0` would otherwise be polled in a loop.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long to wait before the next poll after an answer that says to go on polling.
pub(super) fn poll_interval(response: &Value, now_ms: i64) -> Duration {
    retry_after(response, now_ms)
        .unwrap_or(DEFAULT_INTERVAL)
        .max(MIN_INTERVAL)
}

/// Where an answer asks to be polled: a 202 with a Location, resolved against `uri`.
pub(super) fn accepted_location(uri: &str, response: &Value) -> Option<String> {
    if response.get("statusCode").and_then(Value::as_u64) != Some(202) {
        return None;
    }
    builtin_inputs::location(uri, response)
}

/// `url` without its query and fragment, for showing where a request goes.
fn without_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.into()
        }
        Err(_) => String::new(),
    }
}

/// The GET that polls `location` for the request `request` (the Http action's, as sent).
fn poll_request(request: &Value, location: &str) -> Value {
    let mut poll = Map::new();
    poll.insert("method".to_owned(), json!("GET"));
    poll.insert("uri".to_owned(), json!(location));
    poll.insert("fail_on_error_status".to_owned(), json!(false));
    let origin = |uri: &str| url::Url::parse(uri).ok().map(|u| u.origin());
    let same_origin = request
        .get("uri")
        .and_then(Value::as_str)
        .and_then(origin)
        .is_some_and(|o| Some(o) == origin(location));
    if same_origin {
        if let Some(Value::Object(headers)) = request.get("headers") {
            let kept: Map<String, Value> = headers
                .iter()
                .filter(|(name, _)| !name.to_ascii_lowercase().starts_with("content-"))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            poll.insert("headers".to_owned(), Value::Object(kept));
        }
        if let Some(authentication) = request.get("authentication") {
            poll.insert("authentication".to_owned(), authentication.clone());
        }
    }
    Value::Object(poll)
}

/// Polls `location` until the operation ends; `wait` is the first interval. The location is
/// recorded first, so a resumed run polls on from there.
pub(super) async fn poll(
    call: &ActionCall<'_>,
    inputs: &Value,
    request: &Value,
    mut location: String,
    mut wait: Duration,
) -> Result<ActionResult, DbError> {
    let engine = &call.run.engine;
    let lease = call.run.lease();
    engine.db.http_poll_started(lease, &call.path, &location)?;
    engine.emit(RunEvent::OperationPolled {
        run_id: call.run.run_id.clone(),
        path: call.path.clone(),
        location: without_query(&location),
    });
    let policy = call.action.retry.clone().unwrap_or_default();
    let mut failures = 0u32;
    loop {
        engine.clock.sleep(wait).await;
        let info = CallInfo {
            idempotency_key: call.idempotency_key(),
            attempt: call.previous_attempts + 1,
        };
        let polled = engine
            .http
            .invoke("request", &poll_request(request, &location), &info)
            .await
            .result;
        let (result, retryable, service_wait) = match polled {
            Ok(response) => {
                let status = response.get("statusCode").and_then(Value::as_u64).unwrap_or(0);
                if status == 202 {
                    // Still running; a 202 without a Location means: poll here again.
                    let next = accepted_location(&location, &response).unwrap_or_else(|| location.clone());
                    failures = 0;
                    wait = poll_interval(&response, engine.clock.now_ms());
                    if next != location {
                        engine.db.http_poll_started(lease, &call.path, &next)?;
                        location = next;
                    }
                    continue;
                }
                if status < 400 {
                    engine.db.http_poll_ended(lease, &call.path)?;
                    return Ok(ActionResult::succeeded(Some(inputs.clone()), Some(response)));
                }
                let retryable = status == 408 || status == 429 || status >= 500;
                let service_wait = retry_after(&response, engine.clock.now_ms());
                (status_failure(inputs, response, status), retryable, service_wait)
            }
            Err(error) => (invoke_failure_result(inputs, &error), error.is_retryable(), None),
        };
        failures += 1;
        match policy.delay(failures, service_wait).filter(|_| retryable) {
            Some(delay) => {
                tracing::debug!(
                    run_id = call.run.run_id,
                    action = call.path,
                    failures,
                    "polling an accepted Http request failed; polling again"
                );
                wait = delay;
            }
            None => {
                engine.db.http_poll_ended(lease, &call.path)?;
                return Ok(result);
            }
        }
    }
}

/// After an Http action ran out of its `limit.timeout`: its polling (if it polled) is over,
/// so a later execution of the same action (an Until's next iteration) sends its request
/// instead of polling the old location.
pub(super) fn end_timed_out(call: &ActionCall<'_>) -> Result<(), DbError> {
    if !matches!(call.action.kind, ActionKind::Http { async_pattern: true }) {
        return Ok(());
    }
    call.run.engine.db.http_poll_ended(call.run.lease(), &call.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_an_answer_asks_to_be_polled() {
        let accepted = |location: &str| json!({"statusCode": 202, "headers": {"location": location}});
        let base = "https://api.example/jobs?x=1";
        let cases = [
            (
                accepted("https://api.example/jobs/7"),
                Some("https://api.example/jobs/7"),
            ),
            (accepted("/status/7"), Some("https://api.example/status/7")),
            (accepted("7/status"), Some("https://api.example/7/status")),
            (json!({"statusCode": 202, "headers": {}}), None),
            (json!({"statusCode": 200, "headers": {"location": "/x"}}), None),
        ];
        for (response, expected) in cases {
            assert_eq!(
                accepted_location(base, &response).as_deref(),
                expected,
                "{response}"
            );
        }
    }

    #[test]
    fn polls_wait_what_the_service_asks_but_at_least_a_second() {
        let accepted = |retry_after: Option<&str>| match retry_after {
            Some(seconds) => json!({"statusCode": 202, "headers": {"retry-after": seconds}}),
            None => json!({"statusCode": 202, "headers": {}}),
        };
        for (retry_after, expected) in [(Some("7"), 7), (Some("0"), 1), (None, 20), (Some("soon"), 20)] {
            assert_eq!(
                poll_interval(&accepted(retry_after), 0),
                Duration::from_secs(expected),
                "{retry_after:?}"
            );
        }
    }

    #[test]
    fn where_it_polls_is_shown_without_the_query() {
        assert_eq!(
            without_query("https://store.example/ops/7?sig=secret&se=2026#x"),
            "https://store.example/ops/7"
        );
        assert_eq!(without_query("not a url"), "");
    }

    #[test]
    fn credentials_follow_only_to_the_same_origin() {
        let request = json!({"method": "POST", "uri": "https://api.example/jobs",
            "headers": {"Authorization": "Bearer t", "Content-Type": "application/json", "x-tenant": "a"},
            "authentication": {"type": "Basic", "username": "u", "password": "p"},
            "body": {"job": 1}});
        let same = poll_request(&request, "https://api.example/jobs/7");
        assert_eq!(
            same,
            json!({"method": "GET", "uri": "https://api.example/jobs/7", "fail_on_error_status": false,
                   "headers": {"Authorization": "Bearer t", "x-tenant": "a"},
                   "authentication": {"type": "Basic", "username": "u", "password": "p"}})
        );
        for elsewhere in [
            "https://storage.example/jobs/7",
            "http://api.example/jobs/7",
            "https://api.example:8443/j",
        ] {
            assert_eq!(
                poll_request(&request, elsewhere),
                json!({"method": "GET", "uri": elsewhere, "fail_on_error_status": false}),
                "{elsewhere}"
            );
        }
    }
}
