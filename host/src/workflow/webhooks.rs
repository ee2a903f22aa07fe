//! The HttpWebhook action: subscribe, wait for the service to call back, unsubscribe.
//!
//! ```json
//! "Wait_for_approval": {
//!   "type": "HttpWebhook",
//!   "inputs": {
//!     "subscribe": {"method": "POST", "uri": "https://approvals.example/subscriptions",
//!                   "body": {"callbackUrl": "@{listCallbackUrl()}"}},
//!     "unsubscribe": {"method": "DELETE", "uri": "https://approvals.example/subscriptions/@{workflow().run.name}"}
//!   },
//!   "limit": {"timeout": "P1D"}
//! }
//! ```
//!
//! As in Logic Apps: `listCallbackUrl()` in the inputs is a URL of this server, unique to the
//! run and the action (a Foreach iteration gets its own); the subscribe request goes through
//! the project's `http` connection under the action's retry policy, and a response of 400 or
//! more fails the action; the action then waits, without a limit unless `limit.timeout` sets
//! one, until the service sends a request to the URL, whose `headers` and `body` (shaped by
//! its Content-Type as a trigger's are) become the action's outputs. The subscription ends
//! with the unsubscribe request, if the action has one: when the callback came, when the
//! action timed out, when the run was cancelled, or when the run ended around it (a
//! Terminate in another branch). An unsubscribe that fails is logged; it does not fail the
//! action, whose event has happened.
//!
//! Durability: the subscription's row is written before the subscribe request goes out (a
//! service may call back before that request even returns), and a callback is stored before
//! the service gets its answer, so a server that stops while an action waits loses nothing:
//! the resumed run finds the subscription made and goes on waiting, or finds the callback and
//! goes on. A process that stopped during the subscribe request itself subscribes again after
//! the resume, with the same URL; a run resumed where the callback URL is another (a new
//! port, a moved server) unsubscribes the old subscription and subscribes with the new URL.
//! An action whose inputs are `secureData` keeps its unsubscribe request out of the history,
//! so only the action itself can send it (not a cancel, a timeout or the run's end).
//!
//! The callback URL is signed with the project's trigger key; the callback is answered 404
//! for a URL that was never handed out, 409 for a second call (the action takes the first)
//! and 410 once the action ended without one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::db::{DbError, Status, WebhookRecord, WebhookState};
use crate::expr;
use crate::server::TriggerKey;
use crate::workflow::definition::ActionKind;
use crate::{CallInfo, ConnectorError};

use super::builtin_inputs;
use super::executor::actions::{http_exchange, scope, template_failure};
use super::executor::{ActionCall, ActionResult, EngineShared, RunEvent};

/// How often a waiting action looks at the history for a callback another server stored
/// (callbacks stored by this process wake it at once).
const POLL: Duration = Duration::from_secs(2);

/// The HttpWebhook actions waiting in this process, by run and callback id, so that a stored
/// callback wakes the one action it is for: with one wake-up for all, each callback made
/// every waiting action read its row again.
#[derive(Debug, Default)]
pub struct CallbackWaiters {
    waiting: Mutex<WaitingByKey>,
}

/// Per (run id, callback id): the wake-up, and how many executions wait on it (one, unless a
/// run is resumed in the process that still executes it).
type WaitingByKey = HashMap<(String, String), (Arc<Notify>, usize)>;

impl CallbackWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitingByKey> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the action waiting for `callback_id` of `run_id`, if it waits here.
    pub(crate) fn wake(&self, run_id: &str, callback_id: &str) {
        let key = (run_id.to_owned(), callback_id.to_owned());
        if let Some((notify, _)) = self.lock().get(&key) {
            notify.notify_waiters();
        }
    }

    fn wait(&self, run_id: &str, callback_id: &str) -> Waiting<'_> {
        let key = (run_id.to_owned(), callback_id.to_owned());
        let notify = {
            let mut waiting = self.lock();
            let entry = waiting.entry(key.clone()).or_insert_with(|| (Arc::default(), 0));
            entry.1 += 1;
            entry.0.clone()
        };
        Waiting {
            waiters: self,
            key,
            notify,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// One execution's registration in [`CallbackWaiters`], removed when it stops waiting
/// (however it stops: a callback, a timeout, a cancelled run's dropped task).
struct Waiting<'a> {
    waiters: &'a CallbackWaiters,
    key: (String, String),
    notify: Arc<Notify>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiters.lock();
        if let Some(entry) = waiting.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                waiting.remove(&self.key);
            }
        }
    }
}

/// Where callbacks reach a project's server, and the key that signs their URLs.
#[derive(Debug, Clone)]
pub struct CallbackUrls {
    /// Such as `http://127.0.0.1:7071`, or `…/tenants/acme` for a tenant.
    base: String,
    key: TriggerKey,
}

impl CallbackUrls {
    pub fn new(base: impl Into<String>, key: TriggerKey) -> CallbackUrls {
        CallbackUrls {
            base: base.into().trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// The URL of an HttpWebhook trigger: its invoke URL, as a Request trigger's.
    pub fn trigger_url(&self, workflow: &str, trigger: &str) -> String {
        crate::server::callback_url(&self.base, &self.key, workflow, trigger, None)
    }

    /// Where the caller of a request trigger polls for `run_id`'s Response.
    pub fn response_url(&self, run_id: &str) -> String {
        format!(
            "{}/api/runs/{run_id}/response?sig={}",
            self.base,
            self.key.response_signature(run_id)
        )
    }

    /// The URL `listCallbackUrl()` gives the action at `callback_id` of `run_id`.
    pub fn url(&self, run_id: &str, callback_id: &str) -> String {
        format!(
            "{}/api/callbacks/{run_id}/{callback_id}?sig={}",
            self.base,
            self.key.callback_signature(run_id, callback_id)
        )
    }
}

/// The id of an action's callback within its run: derived from the action's path, so that a
/// resumed run hands out the same URL and each Foreach iteration its own.
pub fn callback_id(path: &str) -> String {
    hex::encode(&Sha256::digest(path.as_bytes())[..12])
}

pub(in crate::workflow) async fn execute(call: &ActionCall<'_>) -> Result<ActionResult, DbError> {
    let engine = &call.run.engine;
    let Some(urls) = engine.callbacks.get() else {
        return Ok(ActionResult::failed(
            None,
            "NoCallbackListener",
            "an HttpWebhook action waits for a callback, and nothing here listens for one: `cordon serve` \
             receives callbacks, and so does `cordon run` (on loopback) when the workflow has an HttpWebhook action",
        ));
    };
    let callback_id = callback_id(&call.path);
    let callback_url = urls.url(&call.run.run_id, &callback_id);
    let inputs = match evaluated_inputs(call, callback_url.clone()) {
        Ok(inputs) => inputs,
        Err(failure) => return Ok(*failure),
    };
    let subscribe = match inputs.get("subscribe") {
        Some(subscribe @ Value::Object(_)) => builtin_inputs::http_request(subscribe),
        _ => {
            return Ok(ActionResult::failed(
                Some(inputs),
                "InvalidWebhook",
                "an HttpWebhook action needs inputs.subscribe, the request {method, uri, ...} that gives the \
                 service listCallbackUrl()",
            ));
        }
    };
    let unsubscribe = inputs
        .get("unsubscribe")
        .filter(|u| u.is_object())
        .map(builtin_inputs::http_request);

    let lease = call.run.lease();
    // The unsubscribe request is kept for whoever ends the subscription (a cancel may come
    // while the subscribe request is out), unless the action's inputs are secure: those stay
    // out of the history, and only this execution, which holds them, can then unsubscribe.
    let stored = unsubscribe.as_ref().filter(|_| !call.action.secure_inputs);
    let subscription = engine
        .db
        .webhook_prepare(lease, &callback_id, &call.path, stored)?;
    // A run resumed under another callback URL (`cordon run` listens on a new port each
    // time unless told one; a server may have moved) would wait for a call that goes to the
    // old URL: when the subscribe request the action makes now differs from the one the
    // service got, and no callback came yet, the old subscription is ended and a new made.
    let outdated = subscription.state == WebhookState::Subscribed
        && subscription.callback.is_none()
        && subscription
            .subscribe
            .as_ref()
            .is_some_and(|made| made != &subscribe);
    if outdated && let Some(old) = &subscription.unsubscribe {
        send_unsubscribe(engine, &call.run.run_id, &call.path, old).await;
    }
    if subscription.state == WebhookState::Subscribing || outdated {
        let subscribed = http_exchange(call, &inputs, &subscribe).await?;
        if subscribed.status != Status::Succeeded {
            // Nothing was subscribed, so nothing is unsubscribed.
            engine.db.end_webhooks(&call.run.run_id, Some(&callback_id))?;
            return Ok(subscribed);
        }
        engine
            .db
            .webhook_subscribed(lease, &callback_id, &subscribe, stored)?;
    }
    engine.emit(RunEvent::CallbackAwaited {
        run_id: call.run.run_id.clone(),
        path: call.path.clone(),
        callback_url,
    });

    let waiting = engine.callback_waiters.wait(&call.run.run_id, &callback_id);
    let callback = loop {
        // Registered before looking, so a callback stored in between still wakes this.
        let arrived = waiting.notify.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        match engine.db.webhook(&call.run.run_id, &callback_id)? {
            Some(WebhookRecord {
                callback: Some(callback),
                ..
            }) => break callback,
            Some(WebhookRecord {
                state: WebhookState::Ended,
                ..
            })
            | None => {
                return Ok(ActionResult::failed(
                    Some(inputs),
                    "WebhookEnded",
                    "the subscription ended without a callback (its run was cancelled or ended)",
                ));
            }
            Some(_) => {}
        }
        tokio::select! {
            () = &mut arrived => {}
            () = tokio::time::sleep(POLL) => {}
        }
    };

    drop(waiting);

    let ended = engine.db.end_webhooks(&call.run.run_id, Some(&callback_id))?;
    if !ended.is_empty() {
        // This execution ended the subscription, so it unsubscribes, with the request it
        // evaluated (the stored one is the same, or absent for secure inputs).
        if let Some(request) = &unsubscribe {
            send_unsubscribe(engine, &call.run.run_id, &call.path, request).await;
        }
    }
    Ok(ActionResult::succeeded(Some(inputs), Some(callback)))
}

/// The action's inputs, with `listCallbackUrl()` giving `url`.
fn evaluated_inputs(call: &ActionCall<'_>, url: String) -> Result<Value, Box<ActionResult>> {
    let mut inputs = call.action.inputs.clone();
    if let Value::Object(map) = &mut inputs {
        // retryPolicy is configuration, not input.
        map.shift_remove("retryPolicy");
    }
    let mut scope = scope(call);
    scope.callback_url = Some(url);
    expr::evaluate_value(&inputs, &scope).map_err(|e| Box::new(template_failure(None, e)))
}

/// Ends the subscription of a timed-out action and unsubscribes.
pub(in crate::workflow) async fn end_timed_out(call: &ActionCall<'_>) -> Result<(), DbError> {
    if !matches!(call.action.kind, ActionKind::HttpWebhook) {
        return Ok(());
    }
    let ended = call
        .run
        .engine
        .db
        .end_webhooks(&call.run.run_id, Some(&callback_id(&call.path)))?;
    unsubscribe_all(&call.run.engine, ended).await;
    Ok(())
}

/// Ends every subscription of a run and its child runs (cancelled, or ended around a waiting
/// action) and unsubscribes them.
pub(in crate::workflow) async fn end_all(engine: &EngineShared, run_id: &str) -> Result<(), DbError> {
    let ended = engine.db.end_webhooks(run_id, None)?;
    unsubscribe_all(engine, ended).await;
    Ok(())
}

async fn unsubscribe_all(engine: &EngineShared, ended: Vec<WebhookRecord>) {
    for webhook in ended {
        if let Some(request) = &webhook.unsubscribe {
            send_unsubscribe(engine, &webhook.run_id, &webhook.path, request).await;
        }
    }
}

/// One attempt, no retries: the subscription ends whether or not the service heard of it.
async fn send_unsubscribe(engine: &EngineShared, run_id: &str, path: &str, request: &Value) {
    let key = format!("{}-unsubscribe", super::executor::idempotency_key(run_id, path));
    if let Err(reason) = send(engine, request, key).await {
        tracing::warn!(run_id, action = path, %reason, "the HttpWebhook unsubscribe request failed");
    }
}

/// Sends a subscribe or unsubscribe request once through the project's `http` connection; a
/// response of 400 or more is a failure, described.
pub(super) async fn send(
    engine: &EngineShared,
    request: &Value,
    idempotency_key: String,
) -> Result<(), String> {
    let info = CallInfo {
        idempotency_key,
        attempt: 1,
    };
    match engine.http.invoke("request", request, &info).await.result {
        Ok(response) => match response.get("statusCode").and_then(Value::as_u64) {
            Some(status) if status < 400 => Ok(()),
            status => Err(format!("the service answered {}", json!(status))),
        },
        Err(crate::InvokeError::Connector(ConnectorError::Permanent { message, .. })) => Err(message),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Whether `notified` completed, polled once without waiting.
    fn woken(notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        notified.poll(&mut cx) == Poll::Ready(())
    }

    #[test]
    fn a_callback_wakes_only_the_action_it_is_for() {
        let waiters = CallbackWaiters::default();
        let first = waiters.wait("run-1", "a");
        let other_run = waiters.wait("run-2", "a");
        let mut first_woken = pin!(first.notify.notified());
        first_woken.as_mut().enable();
        let mut other_woken = pin!(other_run.notify.notified());
        other_woken.as_mut().enable();

        waiters.wake("run-1", "a");
        assert!(woken(first_woken));
        assert!(!woken(other_woken.as_mut()));
        // A callback for an action that does not wait here wakes nothing.
        waiters.wake("run-3", "a");
        assert!(!woken(other_woken));
    }

    #[test]
    fn a_registration_ends_with_the_last_execution_waiting_on_it() {
        let waiters = CallbackWaiters::default();
        let first = waiters.wait("run-1", "a");
        let resumed = waiters.wait("run-1", "a");
        assert_eq!(waiters.len(), 1);
        drop(first);
        assert_eq!(waiters.len(), 1);
        {
            let mut woken_after = pin!(resumed.notify.notified());
            woken_after.as_mut().enable();
            waiters.wake("run-1", "a");
            assert!(woken(woken_after));
        }
        drop(resumed);
        assert_eq!(waiters.len(), 0);
    }
}
