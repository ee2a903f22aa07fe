//! HttpWebhook triggers: a service is kept subscribed, with the trigger's URL, while the
//! workflow is enabled; each call of that URL starts a run, as a Request trigger's does.
//!
//! ```json
//! "triggers": {"When_an_order_ships": {
//!   "type": "HttpWebhook",
//!   "inputs": {
//!     "subscribe": {"method": "POST", "uri": "https://shipping.example/hooks",
//!                   "body": {"url": "@{listCallbackUrl()}", "event": "shipped"}},
//!     "unsubscribe": {"method": "DELETE", "uri": "https://shipping.example/hooks/orders-flow"}
//!   }
//! }}
//! ```
//!
//! As in Logic Apps, the subscription outlives the process: it is made when the workflow is
//! first served enabled, and ended (with `unsubscribe`) when the workflow is disabled, or
//! replaced when the subscribe request the inputs make changes (an edited definition, a
//! changed parameter or app setting, another public URL). Stopping the server does not
//! unsubscribe: the service's calls while it is down fail on its side, as a Request trigger's
//! callers' do. What was subscribed is kept in the trigger's state in the history, so a
//! restart neither subscribes again nor forgets to unsubscribe.
//!
//! `cordon serve` runs [`keep_subscribed`]: every second it compares each trigger's wanted
//! subscription with the recorded one. A subscribe request that fails (an answer of 400 or
//! more, a refused host) is retried with the pollers' back-off, 5 s doubling to 15 min.
//!
//! Several servers on one history send each request once: before sending anything, a server
//! claims the change by writing a claim into the trigger's state, compare-and-set on its
//! version, and only the server whose write wins sends; the others leave the trigger alone
//! while the claim stands. A claim lapses after [`CLAIM`], so a server that died holding
//! one does not keep the trigger from ever changing. (Servers must agree on the public URL:
//! one with another URL wants another subscription, and takes turns replacing it.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::db::TriggerState;
use crate::expr::evaluate_value;

use super::Engine;
use super::builtin_inputs::http_request;
use super::definition::{Trigger, TriggerKind};
use super::scheduler::{BACKOFF_MAX, BACKOFF_START, TriggerScope};
use super::webhooks::send;

/// How often the subscriptions are compared with what they should be, so that enabling or
/// disabling a workflow takes effect within about this long.
const CHECK: Duration = Duration::from_secs(1);

/// How long a server's claim to change a subscription stands: longer than an unsubscribe and
/// a subscribe request take (each is bounded by the http connection's deadline).
pub const CLAIM: Duration = Duration::from_secs(120);

/// Keeps the engine's HttpWebhook triggers subscribed until `stop` is cancelled. Does nothing
/// until the engine knows where callbacks reach it ([`Engine::serve_callbacks`]).
pub async fn keep_subscribed(engine: Engine, stop: CancellationToken) {
    let triggers: Vec<(String, Trigger)> = engine
        .workflows()
        .flat_map(|w| {
            w.triggers
                .iter()
                .filter(|t| t.kind == TriggerKind::HttpWebhook)
                .map(|t| (w.name.clone(), t.clone()))
        })
        .collect();
    if triggers.is_empty() {
        return;
    }
    // Per trigger: failures in a row, and when to try again.
    let mut backoff: HashMap<usize, (u32, Instant)> = HashMap::new();
    while !stop.is_cancelled() {
        for (index, (workflow, trigger)) in triggers.iter().enumerate() {
            if backoff.get(&index).is_some_and(|(_, at)| Instant::now() < *at) {
                continue;
            }
            match reconcile(&engine, workflow, trigger).await {
                Ok(()) => {
                    backoff.remove(&index);
                }
                Err(e) => {
                    let failures = backoff.get(&index).map_or(1, |(n, _)| n + 1);
                    let wait = BACKOFF_START
                        .saturating_mul(1 << (failures - 1).min(16))
                        .min(BACKOFF_MAX);
                    tracing::error!(workflow, trigger = trigger.name, error = %e, retry_in = ?wait,
                        "cannot keep the HttpWebhook trigger subscribed");
                    backoff.insert(index, (failures, Instant::now() + wait));
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(CHECK) => {}
        }
    }
}

/// Whether an HttpWebhook trigger's recorded state holds a subscription.
pub fn is_subscribed(state: &TriggerState) -> bool {
    Subscription::recorded(state).is_some()
}

/// The requests that make and end a subscription, as the trigger's inputs evaluate now.
#[derive(Debug, Clone, PartialEq)]
struct Subscription {
    subscribe: Value,
    unsubscribe: Option<Value>,
}

impl Subscription {
    fn recorded(state: &TriggerState) -> Option<Subscription> {
        let recorded = state.cursor.as_ref()?.get("subscription")?;
        Some(Subscription {
            subscribe: recorded.get("subscribe")?.clone(),
            unsubscribe: recorded.get("unsubscribe").filter(|u| !u.is_null()).cloned(),
        })
    }

    fn as_cursor(&self) -> Value {
        json!({"subscription": {"subscribe": self.subscribe, "unsubscribe": self.unsubscribe}})
    }
}

/// Until when another server's claim to change the subscription stands, if one was recorded.
fn claimed_until(state: &TriggerState) -> Option<i64> {
    state.cursor.as_ref()?.get("claimedUntil")?.as_i64()
}

/// The state with this server's claim added; the recorded subscription stays as it is, so
/// the trigger's URL keeps working while the claim stands.
fn with_claim(state: &TriggerState, until: i64) -> TriggerState {
    let mut cursor = state.cursor.clone().unwrap_or_else(|| json!({}));
    if let Value::Object(fields) = &mut cursor {
        fields.insert("claimedUntil".to_owned(), json!(until));
    }
    TriggerState {
        cursor: Some(cursor),
        ..state.clone()
    }
}

/// Makes the recorded subscription of one trigger what it should be now.
async fn reconcile(engine: &Engine, workflow: &str, trigger: &Trigger) -> anyhow::Result<()> {
    let shared = engine.shared();
    let Some(urls) = shared.callbacks.get() else {
        return Ok(());
    };
    let now = shared.clock.now_ms();
    let state = shared
        .db
        .trigger_state(workflow, &trigger.name)?
        .unwrap_or_else(|| TriggerState::new(workflow, &trigger.name, now));
    let wanted = if engine.is_enabled(workflow)? {
        let scope = TriggerScope {
            engine: shared,
            workflow,
            trigger: None,
            callback_url: Some(urls.trigger_url(workflow, &trigger.name)),
        };
        let inputs = match evaluate_value(&trigger.inputs, &scope) {
            Ok(inputs) => inputs,
            Err(e) => {
                // Whatever is subscribed stays so (the inputs may evaluate again once an app
                // setting is back); the failure is recorded where the management API shows it.
                let reason = format!("the trigger's inputs do not evaluate: {}", e.message);
                let next = TriggerState {
                    failures: state.failures + 1,
                    last_error: Some(reason.clone()),
                    ..state.clone()
                };
                engine.fire_trigger(&next, Vec::new())?;
                anyhow::bail!(reason);
            }
        };
        let Some(subscribe) = inputs.get("subscribe").filter(|s| s.is_object()) else {
            anyhow::bail!("an HttpWebhook trigger needs inputs.subscribe");
        };
        Some(Subscription {
            subscribe: http_request(subscribe),
            unsubscribe: inputs
                .get("unsubscribe")
                .filter(|u| u.is_object())
                .map(http_request),
        })
    } else {
        None
    };
    let recorded = Subscription::recorded(&state);
    if recorded.as_ref().map(|s| &s.subscribe) == wanted.as_ref().map(|s| &s.subscribe) {
        return Ok(());
    }
    if claimed_until(&state).is_some_and(|until| until > now) {
        // Another server is changing the subscription; its result is read at the next check.
        return Ok(());
    }
    let claim_ms = i64::try_from(CLAIM.as_millis()).unwrap_or(i64::MAX / 2);
    let claimed = with_claim(&state, now.saturating_add(claim_ms));
    if engine.fire_trigger(&claimed, Vec::new())?.is_none() {
        // Another server wrote the state first: it sends, not this one.
        return Ok(());
    }
    let state = TriggerState {
        version: state.version + 1,
        ..claimed
    };
    let key = |what: &str| format!("{workflow}/{}/{what}-{}", trigger.name, state.version);

    // The subscription as it was ends first; it is recorded as ended even if the service
    // did not hear of it (it is logged), so a broken unsubscribe cannot block the new one.
    if let Some(unsubscribe) = recorded.as_ref().and_then(|s| s.unsubscribe.as_ref()) {
        match send(shared, unsubscribe, key("unsubscribe")).await {
            Ok(()) => tracing::info!(
                workflow,
                trigger = trigger.name,
                "HttpWebhook trigger unsubscribed"
            ),
            Err(reason) => tracing::warn!(workflow, trigger = trigger.name, %reason,
                "the HttpWebhook trigger's unsubscribe request failed"),
        }
    }
    let mut next = TriggerState {
        cursor: None,
        last_error: None,
        failures: 0,
        ..state.clone()
    };
    let failure = match &wanted {
        Some(subscription) => match send(shared, &subscription.subscribe, key("subscribe")).await {
            Ok(()) => {
                next.cursor = Some(subscription.as_cursor());
                tracing::info!(workflow, trigger = trigger.name, "HttpWebhook trigger subscribed");
                None
            }
            Err(reason) => {
                next.failures = state.failures + 1;
                next.last_error = Some(format!("subscribe: {reason}"));
                Some(reason)
            }
        },
        None => None,
    };
    // Compare-and-set on the version read above: another server that changed the state
    // meanwhile wins, and the next check starts from what it wrote.
    engine.fire_trigger(&next, Vec::new())?;
    match failure {
        Some(reason) => anyhow::bail!("the subscribe request failed: {reason}"),
        None => Ok(()),
    }
}
