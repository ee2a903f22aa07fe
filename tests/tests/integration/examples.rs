//! The example projects in `examples/`, run as shipped against fake services on loopback. Only
//! the service URLs in `parameters.json` and the grant in `connections.json` are rewritten to
//! the fake's port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cordon_host::db::{Db, Status};
use cordon_tests::{serve, workflow_engine};
use serde_json::{Value, json};

/// Fakes of the finance, approvals, ticketing and notification services.
#[derive(Clone, Default)]
struct Services {
    purchases: Arc<Mutex<Vec<Value>>>,
    /// Idempotency key to purchase id.
    purchase_keys: Arc<Mutex<HashMap<String, String>>>,
    /// Every Idempotency-Key the finance API saw, in order.
    keys_seen: Arc<Mutex<Vec<String>>>,
    /// How many creates fail with 503 *after* the purchase was recorded.
    finance_failures_after_commit: Arc<AtomicUsize>,
    reject: Arc<Mutex<Option<String>>>,
    /// Approval requests withdrawn (the webhook's unsubscribe), by request id.
    withdrawn: Arc<Mutex<Vec<String>>>,
    tickets: Arc<Mutex<Vec<Value>>>,
    ticketing_failures: Arc<AtomicUsize>,
    messages: Arc<Mutex<Vec<Value>>>,
}

impl Services {
    fn router(&self) -> Router {
        Router::new()
            .route("/finance/purchases", post(create_purchase))
            .route("/approvals/requests", post(approve))
            .route("/approvals/requests/{id}", axum::routing::delete(withdraw))
            .route("/ticketing/tickets", post(open_ticket))
            .route("/notify/messages", post(notify))
            .with_state(self.clone())
    }
}

fn take_failure(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn create_purchase(State(s): State<Services>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    s.keys_seen.lock().expect("lock").push(key.clone());
    let existing = s.purchase_keys.lock().expect("lock").get(&key).cloned();
    let purchase = match existing {
        Some(id) => s
            .purchases
            .lock()
            .expect("lock")
            .iter()
            .find(|p| p["id"] == id.as_str())
            .cloned()
            .unwrap_or_default(),
        None => {
            let mut purchases = s.purchases.lock().expect("lock");
            let mut purchase = body;
            purchase["id"] = json!(format!("PO-{}", purchases.len() + 1));
            purchases.push(purchase.clone());
            if !key.is_empty() {
                s.purchase_keys
                    .lock()
                    .expect("lock")
                    .insert(key, purchase["id"].as_str().unwrap_or_default().to_owned());
            }
            purchase
        }
    };
    if take_failure(&s.finance_failures_after_commit) {
        return (StatusCode::SERVICE_UNAVAILABLE, "gateway timeout after commit").into_response();
    }
    (StatusCode::CREATED, Json(purchase)).into_response()
}

/// Takes an approval request and, as an approver would later, sends the decision to the
/// request's callback URL.
async fn approve(State(s): State<Services>, Json(body): Json<Value>) -> StatusCode {
    let decision = match s.reject.lock().expect("lock").clone() {
        Some(reason) => json!({"decision": "rejected", "reason": reason}),
        None => json!({"decision": "approved"}),
    };
    let url = body["callbackUrl"].as_str().expect("a callback URL").to_owned();
    tokio::spawn(async move {
        let answer = cordon_tests::http_client()
            .post(&url)
            .header("content-type", "application/json")
            .body(decision.to_string())
            .send()
            .await
            .expect("callback");
        assert_eq!(answer.status(), 200, "the run took the decision");
    });
    StatusCode::ACCEPTED
}

async fn withdraw(
    State(s): State<Services>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> StatusCode {
    s.withdrawn.lock().expect("lock").push(id);
    StatusCode::NO_CONTENT
}

async fn open_ticket(State(s): State<Services>, Json(body): Json<Value>) -> Response {
    if take_failure(&s.ticketing_failures) {
        return (StatusCode::SERVICE_UNAVAILABLE, "ticketing is down").into_response();
    }
    let mut tickets = s.tickets.lock().expect("lock");
    let mut ticket = body;
    ticket["id"] = json!(format!("T-{}", tickets.len() + 100));
    tickets.push(ticket.clone());
    (StatusCode::CREATED, Json(ticket)).into_response()
}

async fn notify(State(s): State<Services>, Json(body): Json<Value>) -> StatusCode {
    s.messages.lock().expect("lock").push(body);
    StatusCode::ACCEPTED
}

/// Copies `examples/NAME` into a temporary directory, pointing its services at `addr`.
fn example(name: &str, addr: SocketAddr) -> tempfile::TempDir {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&source, dir.path());
    let rewrite = |file: &str| {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text
            .replace("127.0.0.1:8081", &addr.to_string())
            .replace("127.0.0.1:8082", &addr.to_string());
        std::fs::write(&path, text).expect("write");
    };
    rewrite("parameters.json");
    rewrite("connections.json");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            if entry.file_name() == ".cordon" {
                continue;
            }
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Serves the engine's callback route on loopback, as `cordon run` does for a project with an
/// HttpWebhook action.
async fn listen_for_callbacks(engine: &cordon_host::workflow::Engine, dir: &Path) {
    let project = cordon_host::workflow::project::Project::open(dir).expect("project");
    let keys = cordon_host::server::Keys::for_project(&project).expect("keys");
    let config = cordon_host::server::ServerConfig::default();
    let routes = cordon_host::server::callbacks_router(engine.clone(), keys.clone(), config.clone());
    let addr = cordon_tests::serve_cordon(routes, &config).await;
    engine.serve_callbacks(cordon_host::workflow::webhooks::CallbackUrls::new(
        format!("http://{addr}"),
        keys.trigger,
    ));
}

fn request(dir: &Path, file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("read trigger body")).expect("JSON")
}

#[tokio::test]
async fn purchase_approval_retries_without_buying_twice() {
    let services = Services::default();
    services.finance_failures_after_commit.store(2, Ordering::SeqCst);
    let addr = serve(services.router()).await;
    let dir = example("purchase-approval", addr);
    let (engine, db, clock) = workflow_engine(dir.path()).await;
    listen_for_callbacks(&engine, dir.path()).await;

    let run = engine
        .run("purchase", request(dir.path(), "request.json"))
        .await
        .expect("run");
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(
        services.purchases.lock().expect("lock").len(),
        1,
        "exactly one purchase despite two failed attempts"
    );
    let keys = services.keys_seen.lock().expect("lock").clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| k == &keys[0] && !k.is_empty()),
        "every attempt sent the same key: {keys:?}"
    );
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(5), Duration::from_secs(10)]
    );
    let actions = db.actions(&run.id, false).expect("actions");
    let create = actions
        .iter()
        .find(|a| a.name == "Create_purchase")
        .expect("create");
    assert_eq!(create.attempts, 3);
    assert_eq!(create.idempotency_key, keys[0]);
    assert_eq!(run.response.expect("response")["body"]["purchaseId"], "PO-1");
    assert_eq!(
        *services.withdrawn.lock().expect("lock"),
        vec!["PR-2041".to_owned()],
        "the answered approval request was withdrawn once"
    );
}

#[tokio::test]
async fn purchase_approval_stops_when_the_approver_rejects() {
    let services = Services::default();
    *services.reject.lock().expect("lock") = Some("over budget".to_owned());
    let addr = serve(services.router()).await;
    let dir = example("purchase-approval", addr);
    let (engine, _db, _clock) = workflow_engine(dir.path()).await;
    listen_for_callbacks(&engine, dir.path()).await;

    let run = engine
        .run("purchase", request(dir.path(), "request.json"))
        .await
        .expect("run");
    assert_eq!(run.status, Status::Cancelled);
    assert_eq!(
        run.error.expect("error")["message"],
        "PR-2041 was rejected: over budget"
    );
    assert!(services.purchases.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn warehouse_alert_rides_out_a_ticketing_outage() {
    let services = Services::default();
    services.ticketing_failures.store(3, Ordering::SeqCst);
    let addr = serve(services.router()).await;
    let dir = example("warehouse-alert", addr);
    let (engine, db, clock) = workflow_engine(dir.path()).await;

    let run = engine
        .run("low-stock", request(dir.path(), "stock-level.json"))
        .await
        .expect("run");
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(
        clock.sleeps(),
        vec![
            Duration::from_secs(10),
            Duration::from_secs(20),
            Duration::from_secs(40)
        ]
    );
    let tickets = services.tickets.lock().expect("lock").clone();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["priority"], "high");
    let messages = services.messages.lock().expect("lock").clone();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["to"], "warehouse-manager@example.com");
    assert_eq!(
        messages[0]["text"],
        "Ticket T-100 opened: PAL-100 at Rotterdam is down to 0"
    );
    let actions = db.actions(&run.id, false).expect("actions");
    assert_eq!(
        actions
            .iter()
            .find(|a| a.name == "Open_ticket")
            .map(|a| a.attempts),
        Some(4)
    );
    assert_eq!(
        actions
            .iter()
            .find(|a| a.name == "Notify_manager_without_ticket")
            .map(|a| a.status),
        Some(Status::Skipped)
    );
}

#[tokio::test]
async fn warehouse_alert_tells_the_manager_when_ticketing_stays_down() {
    let services = Services::default();
    services.ticketing_failures.store(100, Ordering::SeqCst);
    let addr = serve(services.router()).await;
    let dir = example("warehouse-alert", addr);
    let (engine, _db, clock) = workflow_engine(dir.path()).await;

    let run = engine
        .run("low-stock", request(dir.path(), "stock-level.json"))
        .await
        .expect("run");
    assert_eq!(
        run.status,
        Status::Succeeded,
        "the fallback notification handles the failure"
    );
    assert_eq!(clock.sleeps().len(), 5, "five retries, then give up");
    assert!(services.tickets.lock().expect("lock").is_empty());
    let messages = services.messages.lock().expect("lock").clone();
    assert_eq!(messages.len(), 1);
    let text = messages[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("Ticketing is unavailable (the request failed with status 503)"),
        "{text}"
    );
}
