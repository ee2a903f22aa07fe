//! `POST /api/callbacks/{run}/{callback}?sig=SIG`: where the service an HttpWebhook action
//! subscribed to calls back (`workflow::webhooks` hands the URL out through
//! `listCallbackUrl()`). The callback is stored before the caller gets its answer, so a
//! `200` is never lost; the body is shaped by its Content-Type as a trigger's is.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::db::CallbackOutcome;

use super::{ServerState, header_values, problem, shaped_body};

pub(super) async fn receive(
    State(state): State<Arc<ServerState>>,
    Path((run_id, callback_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // The signature first, so an unsigned caller learns nothing about which runs exist.
    if !query
        .get("sig")
        .is_some_and(|sig| state.keys.trigger.verify_callback(&run_id, &callback_id, sig))
    {
        return problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong sig; call the URL listCallbackUrl() gave the HttpWebhook action",
        );
    }
    let body = match shaped_body(body, &headers, &state.config).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let callback = json!({"headers": header_values(&headers), "body": body});
    match state.engine.receive_callback(&run_id, &callback_id, &callback) {
        Ok(CallbackOutcome::Accepted) => Json(json!({"runId": run_id, "status": "Received"})).into_response(),
        Ok(CallbackOutcome::Unknown) => problem(
            StatusCode::NOT_FOUND,
            format!("run {run_id} has no HttpWebhook action waiting on this URL"),
        ),
        Ok(CallbackOutcome::AlreadyReceived) => problem(
            StatusCode::CONFLICT,
            "this callback URL was called already; the HttpWebhook action takes the first call only",
        ),
        Ok(CallbackOutcome::Ended) => problem(
            StatusCode::GONE,
            "the HttpWebhook action stopped waiting (it timed out, or its run was cancelled or ended)",
        ),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}
