//! HttpWebhook actions end to end: a real service on loopback that takes subscriptions and
//! calls back, cordon's server routes on a real socket, and the run history in a SQLite file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use cordon_host::db::{Db, RunRecord, SqliteDb, Status};
use cordon_host::server::{Keys, ServerConfig, callback_url, router};
use cordon_host::workflow::clock::FakeClock;
use cordon_host::workflow::project::Project;
use cordon_host::workflow::webhooks::CallbackUrls;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_tests::{finished, http_client, runtime, serve, serve_cordon, workflow_engine};
use serde_json::{Value, json};

/// The service a workflow subscribes to: it keeps the callback URLs it was given and the
/// unsubscribe requests it got. `/subscribe-and-call-now` calls back before it answers the
/// subscribe request, as a service whose event has already happened may.
#[derive(Clone, Default)]
struct Service {
    subscribed: Arc<Mutex<Vec<String>>>,
    unsubscribed: Arc<Mutex<Vec<Value>>>,
}

impl Service {
    fn router(&self) -> Router {
        Router::new()
            .route("/subscribe", post(subscribe))
            .route("/subscribe-and-call-now", post(subscribe_and_call_now))
            .route("/unsubscribe", post(unsubscribe))
            .route(
                "/subscribe-refused",
                post(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "try later") }),
            )
            .with_state(self.clone())
    }

    fn subscriptions(&self) -> Vec<String> {
        self.subscribed.lock().expect("lock").clone()
    }

    fn unsubscriptions(&self) -> Vec<Value> {
        self.unsubscribed.lock().expect("lock").clone()
    }

    /// Waits (bounded) for the `n`th subscription and gives its callback URL.
    async fn subscription(&self, n: usize) -> String {
        for _ in 0..500 {
            if let Some(url) = self.subscriptions().get(n - 1) {
                return url.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("subscription {n} never came; got {:?}", self.subscriptions());
    }

    /// Waits (bounded) until `n` unsubscribe requests came.
    async fn unsubscribed(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let got = self.unsubscriptions();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{n} unsubscribe requests never came; got {:?}",
            self.unsubscriptions()
        );
    }
}

async fn subscribe(
    State(service): State<Service>,
    Json(body): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    let url = body["callbackUrl"]
        .as_str()
        .expect("callbackUrl in the subscription")
        .to_owned();
    service.subscribed.lock().expect("lock").push(url);
    (axum::http::StatusCode::CREATED, Json(json!({"subscribed": true})))
}

async fn subscribe_and_call_now(State(service): State<Service>, Json(body): Json<Value>) -> Json<Value> {
    let url = body["callbackUrl"].as_str().expect("callbackUrl").to_owned();
    service.subscribed.lock().expect("lock").push(url.clone());
    let answer = http_client()
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({"decision": "already"}).to_string())
        .send()
        .await
        .expect("callback during the subscribe request");
    assert_eq!(
        answer.status(),
        200,
        "{}",
        answer.text().await.unwrap_or_default()
    );
    Json(json!({"subscribed": true}))
}

async fn unsubscribe(State(service): State<Service>, Json(body): Json<Value>) -> Json<Value> {
    service.unsubscribed.lock().expect("lock").push(body);
    Json(json!({}))
}

/// A workflow started by a request that waits on the service at `subscribe_path`, then
/// composes the decision the callback brought.
fn waiting_workflow(service: std::net::SocketAddr, subscribe_path: &str, limit: Option<&str>) -> Value {
    let mut webhook = json!({
        "type": "HttpWebhook",
        "inputs": {
            "subscribe": {"method": "POST", "uri": format!("http://{service}{subscribe_path}"),
                          "body": {"callbackUrl": "@{listCallbackUrl()}"}},
            "unsubscribe": {"method": "POST", "uri": format!("http://{service}/unsubscribe"),
                            "body": {"run": "@{workflow().run.name}"}},
            "retryPolicy": {"type": "none"}
        }
    });
    if let Some(limit) = limit {
        webhook["limit"] = json!({"timeout": limit});
    }
    json!({
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {
            "Wait_for_approval": webhook,
            "Decision": {"type": "Compose", "inputs": "@body('Wait_for_approval')?['decision']",
                         "runAfter": {"Wait_for_approval": ["Succeeded"]}}
        }
    })
}

/// A project whose `http` grant reaches `service`, with `workflows`.
fn project(service: std::net::SocketAddr, workflows: &[(&str, Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"http": {"grant": {"hosts": [format!("http://{service}")]}}}).to_string(),
    )
    .expect("connections.json");
    for (name, definition) in workflows {
        std::fs::create_dir_all(dir.path().join(name)).expect("dir");
        std::fs::write(
            dir.path().join(name).join("workflow.json"),
            json!({"kind": "Stateful", "definition": definition}).to_string(),
        )
        .expect("workflow.json");
    }
    dir
}

/// Serves the engine's routes on loopback and tells it where its callbacks come.
async fn serve_engine(engine: &Engine, keys: &Keys) -> String {
    let addr = serve_cordon(
        router(engine.clone(), keys.clone(), ServerConfig::default()),
        &ServerConfig::default(),
    )
    .await;
    let base = format!("http://{addr}");
    engine.serve_callbacks(CallbackUrls::new(&base, keys.trigger.clone()));
    base
}

/// A service on loopback, a project whose workflows `workflows` makes for it, the project's
/// engine and history, and (when `listen`) its routes on loopback.
struct Setup {
    service: Service,
    dir: tempfile::TempDir,
    engine: Engine,
    db: Arc<SqliteDb>,
    keys: Keys,
    /// The server's base URL; empty when nothing listens for callbacks.
    base: String,
}

async fn setup(workflows: fn(std::net::SocketAddr) -> Vec<(&'static str, Value)>, listen: bool) -> Setup {
    let service = Service::default();
    let service_addr = serve(service.router()).await;
    let dir = project(service_addr, &workflows(service_addr));
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let keys = Keys::for_project(&Project::open(dir.path()).expect("project")).expect("keys");
    let base = if listen {
        serve_engine(&engine, &keys).await
    } else {
        String::new()
    };
    Setup {
        service,
        dir,
        engine,
        db,
        keys,
        base,
    }
}

/// A second worker on the project's history, whose clock is past the first one's leases.
async fn another_worker(dir: &tempfile::TempDir, db: &Arc<SqliteDb>) -> Engine {
    let mut options = EngineOptions::new(db.clone());
    options.clock = Arc::new(FakeClock::starting_at(1_700_000_000_000 + 120_000));
    options.lease_owner = "other-worker:1".to_owned();
    let project = Project::open(dir.path()).expect("project");
    Engine::open(&project, &runtime(), options).await.expect("engine")
}

/// Starts a run through the workflow's request trigger and gives its id.
async fn start(base: &str, keys: &Keys, workflow: &str) -> String {
    let answer = http_client()
        .post(callback_url(base, &keys.trigger, workflow, "manual", None))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("trigger");
    assert_eq!(answer.status(), 202);
    let body: Value = serde_json::from_str(&answer.text().await.expect("body")).expect("JSON");
    body["runId"].as_str().expect("runId").to_owned()
}

async fn call_back(url: &str, body: Value) -> (u16, String) {
    let answer = http_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("callback");
    (answer.status().as_u16(), answer.text().await.unwrap_or_default())
}

fn action(db: &SqliteDb, run_id: &str, name: &str) -> cordon_host::db::ActionRecord {
    db.actions(run_id, false)
        .expect("actions")
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no record of {name}"))
}

#[tokio::test]
async fn a_webhook_waits_for_its_callback_then_unsubscribes() {
    let Setup {
        service,
        db,
        keys,
        base,
        // The project directory lives as long as the test.
        dir: _dir,
        ..
    } = setup(
        |service| {
            vec![
                ("approval", waiting_workflow(service, "/subscribe", None)),
                (
                    "immediate",
                    waiting_workflow(service, "/subscribe-and-call-now", None),
                ),
            ]
        },
        true,
    )
    .await;

    let run_id = start(&base, &keys, "approval").await;
    let url = service.subscription(1).await;
    assert!(
        url.starts_with(&format!("{base}/api/callbacks/{run_id}/")),
        "{url}"
    );
    assert_eq!(db.run(&run_id).expect("run").status, Status::Running, "it waits");

    // A URL whose signature is not the server's, and one for an action that never
    // subscribed, are refused without touching the run.
    let forged = format!(
        "{}sig={}",
        &url[..url.find("sig=").expect("sig")],
        "00".repeat(32)
    );
    assert_eq!(call_back(&forged, json!({"decision": "forged"})).await.0, 401);
    let stranger = format!(
        "{base}/api/callbacks/{run_id}/nope?sig={}",
        keys.trigger.callback_signature(&run_id, "nope")
    );
    assert_eq!(call_back(&stranger, json!({})).await.0, 404);

    let (status, text) = call_back(&url, json!({"decision": "approved"})).await;
    assert_eq!(status, 200, "{text}");
    let run = finished(db.as_ref(), &run_id).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(action(&db, &run_id, "Decision").outputs, Some(json!("approved")));
    let webhook = action(&db, &run_id, "Wait_for_approval");
    assert_eq!(
        webhook.outputs.as_ref().map(|o| o["body"].clone()),
        Some(json!({"decision": "approved"}))
    );
    assert_eq!(
        webhook
            .inputs
            .as_ref()
            .map(|i| i["subscribe"]["body"]["callbackUrl"].clone()),
        Some(json!(url)),
        "the history shows the URL the service was given"
    );
    assert_eq!(service.unsubscribed(1).await, vec![json!({"run": run_id})]);
    // The action took the first call; a second is refused and changes nothing.
    let (status, text) = call_back(&url, json!({"decision": "changed my mind"})).await;
    assert_eq!(status, 409, "{text}");
    assert_eq!(action(&db, &run_id, "Decision").outputs, Some(json!("approved")));
    assert_eq!(service.subscriptions().len(), 1, "subscribed once");

    // A service that calls back before its answer to the subscribe request arrives.
    let run_id = start(&base, &keys, "immediate").await;
    let run = finished(db.as_ref(), &run_id).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(action(&db, &run_id, "Decision").outputs, Some(json!("already")));
    assert_eq!(service.unsubscribed(2).await[1], json!({"run": run_id}));
}

#[tokio::test]
async fn a_webhook_that_times_out_or_whose_run_is_cancelled_unsubscribes_and_refuses_late_callbacks() {
    let Setup {
        service,
        dir: _dir,
        engine,
        db,
        keys,
        base,
    } = setup(
        |service| {
            vec![
                ("expiring", waiting_workflow(service, "/subscribe", Some("PT1S"))),
                ("cancelled", waiting_workflow(service, "/subscribe", None)),
            ]
        },
        true,
    )
    .await;

    let run_id = start(&base, &keys, "expiring").await;
    let url = service.subscription(1).await;
    let run = finished(db.as_ref(), &run_id).await;
    assert_eq!(run.status, Status::Failed);
    assert_eq!(action(&db, &run_id, "Wait_for_approval").status, Status::TimedOut);
    assert_eq!(service.unsubscribed(1).await, vec![json!({"run": run_id})]);
    let (status, text) = call_back(&url, json!({"decision": "late"})).await;
    assert_eq!(status, 410, "{text}");

    let run_id = start(&base, &keys, "cancelled").await;
    let url = service.subscription(2).await;
    engine.cancel(&run_id).expect("cancel");
    assert_eq!(service.unsubscribed(2).await[1], json!({"run": run_id}));
    assert_eq!(db.run(&run_id).expect("run").status, Status::Cancelled);
    let (status, text) = call_back(&url, json!({"decision": "late"})).await;
    assert_eq!(status, 410, "{text}");
}

/// A served project whose run of "approval" was stopped (as if its process died) once the
/// service had its subscription; with the run's id and the callback URL the service got.
async fn stopped_while_waiting() -> (Setup, String, String) {
    let setup = setup(
        |service| vec![("approval", waiting_workflow(service, "/subscribe", None))],
        true,
    )
    .await;
    let first = setup.engine.clone();
    let execution = tokio::spawn(async move { first.run("approval", json!({})).await });
    let url = setup.service.subscription(1).await;
    let run_id = setup.db.list_runs(&Default::default()).expect("runs")[0]
        .id
        .clone();
    execution.abort();
    let _ = execution.await;
    (setup, run_id, url)
}

/// `engine` resumes the interrupted runs in a task of its own.
fn resume_in_background(engine: &Engine) -> tokio::task::JoinHandle<Result<Vec<RunRecord>, String>> {
    let engine = engine.clone();
    tokio::spawn(async move { engine.resume_interrupted().await.map_err(|e| format!("{e:#}")) })
}

/// Calls `url` until it answers 200 (the run's history may still be taken over), bounded.
async fn call_back_until_taken(url: &str, body: Value) {
    let mut answer = (0, String::new());
    for _ in 0..250 {
        answer = call_back(url, body.clone()).await;
        if answer.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the callback was never taken: {} {}", answer.0, answer.1);
}

#[tokio::test]
async fn a_resumed_run_goes_on_waiting_without_subscribing_again() {
    let (setup, run_id, url) = stopped_while_waiting().await;

    // A second worker on the same history, past the first one's lease and reached at the
    // same public URL, takes the run over. The callback comes to the first server's socket,
    // which stands for that URL, and reaches the run through the history.
    let second = another_worker(&setup.dir, &setup.db).await;
    second.serve_callbacks(CallbackUrls::new(&setup.base, setup.keys.trigger.clone()));
    let resumed = resume_in_background(&second);
    call_back_until_taken(&url, json!({"decision": "after the restart"})).await;
    let resumed = resumed.await.expect("task").expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].id, run_id);
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    assert_eq!(
        action(&setup.db, &run_id, "Decision").outputs,
        Some(json!("after the restart"))
    );
    assert_eq!(
        setup.service.subscriptions().len(),
        1,
        "the resumed run did not subscribe again"
    );
    assert_eq!(setup.service.unsubscribed(1).await, vec![json!({"run": run_id})]);
}

#[tokio::test]
async fn a_run_resumed_under_another_url_subscribes_again_with_it() {
    let (setup, run_id, old_url) = stopped_while_waiting().await;

    // The second worker is reached at another address (as `cordon run` is, on a new port):
    // the service's URL would lead nowhere, so the old subscription ends and a new one is made.
    let second = another_worker(&setup.dir, &setup.db).await;
    let second_base = serve_engine(&second, &setup.keys).await;
    let resumed = resume_in_background(&second);
    let new_url = setup.service.subscription(2).await;
    assert!(new_url.starts_with(&second_base), "{new_url}");
    assert_eq!(new_url, old_url.replace(&setup.base, &second_base));
    assert_eq!(setup.service.unsubscribed(1).await, vec![json!({"run": run_id})]);
    call_back_until_taken(&new_url, json!({"decision": "at the new address"})).await;
    let resumed = resumed.await.expect("task").expect("resume");
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    assert_eq!(
        action(&setup.db, &run_id, "Decision").outputs,
        Some(json!("at the new address"))
    );
    assert_eq!(
        setup.service.unsubscribed(2).await.len(),
        2,
        "the new one ended too"
    );
}

#[tokio::test]
async fn without_a_listener_a_webhook_fails_at_once_saying_why() {
    // An engine that no server receives callbacks for: the action fails at once, saying why,
    // and nothing is subscribed.
    let Setup {
        service,
        dir: _dir,
        engine,
        db,
        ..
    } = setup(
        |service| vec![("approval", waiting_workflow(service, "/subscribe", None))],
        false,
    )
    .await;
    let run = engine.run("approval", json!({})).await.expect("run");
    assert_eq!(run.status, Status::Failed);
    let webhook = action(&db, &run.id, "Wait_for_approval");
    let error = webhook.error.expect("error");
    assert_eq!(error["code"], "NoCallbackListener");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cordon serve"),
        "{error}"
    );
    assert!(service.subscriptions().is_empty());
}

#[tokio::test]
async fn a_tenants_callback_reaches_only_that_tenant() {
    let service = Service::default();
    let service_addr = serve(service.router()).await;
    let root = tempfile::tempdir().expect("temp dir");
    for tenant in ["acme", "globex"] {
        let dir = project(
            service_addr,
            &[("approval", waiting_workflow(service_addr, "/subscribe", None))],
        );
        std::fs::rename(dir.path(), root.path().join(tenant)).expect("tenant dir");
    }
    let (tenants, _operator) =
        cordon_host::tenants::open_all(root.path(), |_, db| Ok(EngineOptions::new(db)))
            .await
            .and_then(|opened| opened.require_all())
            .expect("tenants open");
    let config = ServerConfig::default();
    let app = cordon_host::server::tenants_router(
        tenants
            .iter()
            .map(|t| (t.id.clone(), t.engine.clone(), t.keys.clone()))
            .collect(),
        Vec::new(),
        config.clone(),
    );
    let root_url = format!("http://{}", serve_cordon(app, &config).await);
    for t in &tenants {
        t.engine.serve_callbacks(CallbackUrls::new(
            format!("{root_url}/tenants/{}", t.id),
            t.keys.trigger.clone(),
        ));
    }
    let acme = &tenants[0];
    assert_eq!(acme.id.as_str(), "acme");

    let run_id = start(&format!("{root_url}/tenants/acme"), &acme.keys, "approval").await;
    let url = service.subscription(1).await;
    assert!(
        url.starts_with(&format!("{root_url}/tenants/acme/api/callbacks/{run_id}/")),
        "{url}"
    );
    // The same path and signature under another tenant: that tenant's key does not sign it.
    let elsewhere = url.replace("/tenants/acme/", "/tenants/globex/");
    assert_eq!(call_back(&elsewhere, json!({"decision": "stolen"})).await.0, 401);
    let (status, text) = call_back(&url, json!({"decision": "approved"})).await;
    assert_eq!(status, 200, "{text}");
    let run = finished(acme.db.as_ref(), &run_id).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(
        action(&acme.db, &run_id, "Decision").outputs,
        Some(json!("approved"))
    );
}

/// The trigger of `workflow` as `GET /management/workflows` lists it.
async fn webhook_trigger(base: &str, keys: &Keys, workflow: &str) -> Value {
    let text = http_client()
        .get(format!("{base}/management/workflows"))
        .header("authorization", format!("Bearer {}", keys.management.token()))
        .send()
        .await
        .expect("management API")
        .text()
        .await
        .expect("body");
    let listing: Value = serde_json::from_str(&text).expect("JSON");
    listing["workflows"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["name"] == workflow))
        .map(|w| w["triggers"][0].clone())
        .unwrap_or_else(|| panic!("no workflow {workflow} in {text}"))
}

/// The trigger of `workflow` as listed once it has failed at least once (or after about 5 s).
async fn webhook_trigger_once_failed(base: &str, keys: &Keys, workflow: &str) -> Value {
    let mut trigger = Value::Null;
    for _ in 0..250 {
        trigger = webhook_trigger(base, keys, workflow).await;
        if trigger["failures"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trigger
}

/// A workflow started by an HttpWebhook trigger: each call of its URL is a shipment.
fn shipments_workflow(service: std::net::SocketAddr) -> Value {
    json!({
        "triggers": {"When_shipped": {
            "type": "HttpWebhook",
            "inputs": {
                "subscribe": {"method": "POST", "uri": format!("http://{service}/subscribe"),
                              "body": {"callbackUrl": "@{listCallbackUrl()}"}},
                "unsubscribe": {"method": "POST", "uri": format!("http://{service}/unsubscribe"),
                                "body": {"hook": "@{workflow().name}"}}
            }
        }},
        "actions": {"Shipped": {"type": "Compose", "inputs": "@triggerBody()?['order']"}}
    })
}

#[tokio::test]
async fn servers_on_one_history_send_a_webhook_triggers_requests_once() {
    use cordon_host::workflow::clock::Clock as _;
    use cordon_host::workflow::webhook_triggers::{CLAIM, keep_subscribed};
    let Setup {
        service,
        dir,
        engine,
        db,
        keys,
        base,
    } = setup(|service| vec![("shipments", shipments_workflow(service))], true).await;
    // A second server on the same history and public URL, started at the same moment.
    let clock = Arc::new(FakeClock::starting_at(1_700_000_000_000));
    let mut options = EngineOptions::new(db.clone());
    options.clock = clock.clone();
    options.lease_owner = "second-server:1".to_owned();
    let project = Project::open(dir.path()).expect("project");
    let second = Engine::open(&project, &runtime(), options).await.expect("engine");
    second.serve_callbacks(CallbackUrls::new(&base, keys.trigger.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(keep_subscribed(engine.clone(), stop.clone()));
    tokio::spawn(keep_subscribed(second.clone(), stop.clone()));
    service.subscription(1).await;
    // Two more checks of each (one a second) pass without another subscribe request.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(service.subscriptions().len(), 1, "{:?}", service.subscriptions());
    stop.cancel();

    // A claim left by a server that died while changing the subscription: the trigger is
    // left alone while it stands, and changed once it lapses.
    let state = db
        .trigger_state("shipments", "When_shipped")
        .expect("state")
        .expect("stored");
    let mut cursor = state.cursor.clone().expect("subscription");
    cursor["claimedUntil"] = json!(clock.now_ms() + 1_000);
    let claimed = cordon_host::db::TriggerState {
        cursor: Some(cursor),
        ..state.clone()
    };
    assert!(db.fire_trigger(&claimed, &[], "died:1", 0).expect("write"));
    second.set_enabled("shipments", false).expect("disable");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(keep_subscribed(second.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(service.unsubscriptions().is_empty(), "the claim stands");
    clock.sleep(CLAIM).await;
    assert_eq!(service.unsubscribed(1).await, vec![json!({"hook": "shipments"})]);
    stop.cancel();
}

#[tokio::test]
async fn a_webhook_trigger_is_subscribed_while_its_workflow_is_enabled() {
    let Setup {
        service,
        dir,
        engine,
        db,
        keys,
        base,
    } = setup(
        |service| {
            let mut refused = shipments_workflow(service);
            refused["triggers"]["When_shipped"]["inputs"]["subscribe"]["uri"] =
                json!(format!("http://{service}/subscribe-refused"));
            // Inputs that evaluate only at run time, and fail there.
            let mut broken = shipments_workflow(service);
            broken["triggers"]["When_shipped"]["inputs"]["subscribe"]["body"]["count"] =
                json!("@int('several')");
            vec![
                ("shipments", shipments_workflow(service)),
                ("refused", refused),
                ("broken", broken),
            ]
        },
        true,
    )
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(cordon_host::workflow::webhook_triggers::keep_subscribed(
        engine.clone(),
        stop.clone(),
    ));

    // The service was given the trigger's URL; each call of it is a run.
    let url = service.subscription(1).await;
    assert_eq!(
        url,
        callback_url(&base, &keys.trigger, "shipments", "When_shipped", None)
    );
    let answer = call_back(&url, json!({"order": 7})).await;
    assert_eq!(answer.0, 202, "{}", answer.1);
    let run_id = serde_json::from_str::<Value>(&answer.1).expect("JSON")["runId"]
        .as_str()
        .expect("runId")
        .to_owned();
    let run = finished(db.as_ref(), &run_id).await;
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(action(&db, &run_id, "Shipped").outputs, Some(json!(7)));

    // The management API shows which triggers are subscribed, and why one is not.
    assert_eq!(
        webhook_trigger(&base, &keys, "shipments").await["subscribed"],
        true
    );
    let refused = webhook_trigger_once_failed(&base, &keys, "refused").await;
    assert_eq!(refused["subscribed"], false, "{refused}");
    assert!(
        refused["lastError"].as_str().unwrap_or_default().contains("503"),
        "{refused}"
    );
    let broken = webhook_trigger_once_failed(&base, &keys, "broken").await;
    assert_eq!(broken["subscribed"], false, "{broken}");
    let error = broken["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("do not evaluate") && error.contains("several"),
        "{broken}"
    );

    // Disabled: unsubscribed, and the URL starts nothing. Enabled again: subscribed again.
    engine.set_enabled("shipments", false).expect("disable");
    assert_eq!(service.unsubscribed(1).await, vec![json!({"hook": "shipments"})]);
    assert_eq!(call_back(&url, json!({"order": 8})).await.0, 409);
    assert_eq!(
        webhook_trigger(&base, &keys, "shipments").await["subscribed"],
        false
    );
    engine.set_enabled("shipments", true).expect("enable");
    assert_eq!(service.subscription(2).await, url);
    stop.cancel();

    // Another server on the same history and at the same public URL finds the subscription
    // recorded and does not make it again; disabling the workflow there ends it.
    let second = another_worker(&dir, &db).await;
    second.serve_callbacks(CallbackUrls::new(&base, keys.trigger.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(cordon_host::workflow::webhook_triggers::keep_subscribed(
        second.clone(),
        stop.clone(),
    ));
    // Two of its checks (one a second) pass without a new subscription.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(service.subscriptions().len(), 2);
    second.set_enabled("shipments", false).expect("disable");
    assert_eq!(service.unsubscribed(2).await.len(), 2);
    stop.cancel();
}
