//! `GET /api/runs/{run}/response?sig=SIG`: where the caller of a request trigger collects the
//! workflow's Response when the run outlasted the wait (Logic Apps' asynchronous response).
//!
//! A request whose run has not answered within [`super::ServerConfig::response_timeout`]
//! (or at once, when the workflow's Response has `"operationOptions": "Asynchronous"`) gets
//! `202 Accepted` with the run id and a `Location` naming this URL; polling it answers `202`
//! (with `Retry-After`) while the run goes on, then the Response the run recorded, as the
//! request itself would have been answered, or `502` if the run ended without one. The run's
//! response is in the history, so the answer survives a restart of the server, and any server
//! on the same history gives it. Cordon's own Http action follows such a `Location` by
//! default (`workflow::executor::async_http`), so one workflow can call another's long run.
//!
//! The URL is signed with the project's trigger key for that run only, like an HttpWebhook's
//! callback URL: whoever was given it can read that run's Response and nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::db::DbError;

use super::{ServerState, accepted, problem, respond, run_problem};

/// How soon a caller polling a running run is asked to look again.
const RETRY_AFTER_SECONDS: u64 = 1;

pub(super) async fn poll(
    State(state): State<Arc<ServerState>>,
    Path(run_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // The signature first, so an unsigned caller learns nothing about which runs exist.
    if !query
        .get("sig")
        .is_some_and(|sig| state.keys.trigger.verify_response(&run_id, sig))
    {
        return problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong sig; poll the Location the 202 answer gave",
        );
    }
    let run = match state.engine.db().run(&run_id) {
        Ok(run) => run,
        Err(DbError::NoSuchRun(_)) => {
            return problem(StatusCode::NOT_FOUND, format!("there is no run {run_id}"));
        }
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    };
    if !run.status.is_terminal() {
        return still_running(&state, &run_id);
    }
    match &run.response {
        Some(response) => respond(response, &run_id),
        None => run_problem(
            StatusCode::BAD_GATEWAY,
            &run_id,
            format!(
                "run {run_id} ended {} without a Response action answering",
                run.status
            ),
        ),
    }
}

/// `202` with the run id, and where to poll for the run's Response.
pub(super) fn still_running(state: &ServerState, run_id: &str) -> Response {
    let mut answer = accepted(run_id);
    let location = match state.engine.response_url(run_id) {
        Some(url) => url,
        // No public base known (a router mounted by an embedder): a reference relative to
        // this server's root, which HTTP clients resolve against the request's URL.
        None => {
            let prefix = state
                .tenant
                .as_ref()
                .map(|t| format!("/tenants/{t}"))
                .unwrap_or_default();
            format!(
                "{prefix}/api/runs/{run_id}/response?sig={}",
                state.keys.trigger.response_signature(run_id)
            )
        }
    };
    if let Ok(location) = HeaderValue::from_str(&location) {
        answer.headers_mut().insert(header::LOCATION, location);
    }
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    answer
}
