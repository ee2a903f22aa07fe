//! The Http action's asynchronous pattern against a loopback service: a 202 Accepted with a
//! Location is polled to its end, durably across a stopped process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cordon_host::db::{Db, Status};
use cordon_host::workflow::clock::FakeClock;
use cordon_host::workflow::executor::RunEvent;
use cordon_host::workflow::project::Project;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_tests::{runtime, serve, workflow_engine};
use serde_json::{Value, json};

/// A service of long-running jobs. `POST /jobs/{name}` accepts one (202, Location
/// `/status/{name}`); each `GET /status/{name}` answers 202 until the job's polls run out,
/// then the job's end. `hang` makes the first poll of a job never answer.
#[derive(Clone, Default)]
struct Jobs {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
}

impl Jobs {
    fn router(&self) -> Router {
        Router::new()
            .route("/jobs/{name}", post(accept))
            .route("/status/{name}", get(status))
            .route("/hold", post(hold))
            .with_state(self.clone())
    }

    fn count(&self, key: &str) -> usize {
        let mut calls = self.calls.lock().expect("lock");
        let n = calls.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn calls(&self, key: &str) -> usize {
        self.calls.lock().expect("lock").get(key).copied().unwrap_or(0)
    }
}

async fn accept(State(jobs): State<Jobs>, Path(name): Path<String>) -> Response {
    jobs.count(&format!("POST {name}"));
    (
        StatusCode::ACCEPTED,
        [
            ("location", format!("/status/{name}")),
            ("retry-after", "5".to_owned()),
        ],
        "accepted",
    )
        .into_response()
}

/// Counts as `POST held`, then never answers.
async fn hold(State(jobs): State<Jobs>) -> Response {
    jobs.count("POST held");
    tokio::time::sleep(Duration::from_secs(600)).await;
    StatusCode::GATEWAY_TIMEOUT.into_response()
}

async fn status(State(jobs): State<Jobs>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let n = jobs.count(&format!("GET {name}"));
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    jobs.authorizations.lock().expect("lock").push(authorization);
    match (name.as_str(), n) {
        ("hang", 1) => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        ("missing", _) => (StatusCode::NOT_FOUND, "no such job").into_response(),
        // Still running: the second answer moves the job to another status URL.
        (_, 1) => (
            StatusCode::ACCEPTED,
            [("location", format!("/status/{name}"))],
            "",
        )
            .into_response(),
        ("slow", 2) => (StatusCode::ACCEPTED, [("location", "/status/slow-next")], "").into_response(),
        // A 202 without a Location: poll the same URL again.
        ("slow-next", 2) => (StatusCode::ACCEPTED, "").into_response(),
        (_, 2) => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        _ => axum::Json(json!({"job": name, "done": true})).into_response(),
    }
}

fn start_job(addr: SocketAddr, name: &str, options: Option<&str>) -> Value {
    let mut action = json!({"type": "Http", "inputs": {
        "method": "POST", "uri": format!("http://{addr}/jobs/{name}"),
        "headers": {"Authorization": "Bearer for-the-jobs-service", "Content-Type": "application/json"},
        "body": {"job": name}}});
    if let Some(options) = options {
        action["operationOptions"] = json!(options);
    }
    action
}

fn project(addr: SocketAddr, actions: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"http": {"grant": {"hosts": [format!("http://{addr}")]}}}).to_string(),
    )
    .expect("connections.json");
    std::fs::create_dir_all(dir.path().join("w")).expect("workflow dir");
    let workflow = json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}}, "actions": actions}});
    std::fs::write(dir.path().join("w/workflow.json"), workflow.to_string()).expect("workflow.json");
    dir
}

fn action(db: &dyn Db, run_id: &str, path: &str) -> cordon_host::db::ActionRecord {
    db.actions(run_id, false)
        .expect("actions")
        .into_iter()
        .find(|a| a.path == path)
        .unwrap_or_else(|| panic!("no record of {path}"))
}

#[tokio::test]
async fn an_accepted_request_is_polled_until_the_operation_ends() {
    let jobs = Jobs::default();
    let addr = serve(jobs.router()).await;
    let dir = project(
        addr,
        json!({
            "Report": start_job(addr, "report", None),
            "Slow": start_job(addr, "slow", None),
            "Missing": start_job(addr, "missing", None),
            "Not_polled": start_job(addr, "fire-and-forget", Some("DisableAsyncPattern"))
        }),
    );
    // An engine like workflow_engine's, with an observer: what `cordon run` prints from.
    let db =
        Arc::new(cordon_host::db::SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let mut options = EngineOptions::new(db.clone());
    options.clock = Arc::new(FakeClock::starting_at(1_700_000_000_000));
    let polled = Arc::new(Mutex::new(Vec::new()));
    let seen = polled.clone();
    options.observer = Some(Arc::new(move |event: &RunEvent| {
        if let RunEvent::OperationPolled { path, location, .. } = event {
            seen.lock().expect("lock").push((path.clone(), location.clone()));
        }
    }));
    let project = Project::open(dir.path()).expect("project");
    let engine = Engine::open(&project, &runtime(), options).await.expect("engine");
    let run = engine.run("w", json!({})).await.expect("run");
    // Each polled action said where it polls (once each: a moved Location is not announced).
    let mut polled = polled.lock().expect("lock").clone();
    polled.sort();
    assert_eq!(
        polled,
        vec![
            ("Missing".to_owned(), format!("http://{addr}/status/missing")),
            ("Report".to_owned(), format!("http://{addr}/status/report")),
            ("Slow".to_owned(), format!("http://{addr}/status/slow")),
        ]
    );

    // 202, 503 (retried on the default policy), then the job's end: the action's outputs.
    let report = action(db.as_ref(), &run.id, "Report");
    assert_eq!(report.status, Status::Succeeded, "{:?}", report.error);
    let outputs = report.outputs.expect("outputs");
    assert_eq!(outputs["statusCode"], 200);
    assert_eq!(outputs["body"], json!({"job": "report", "done": true}));
    assert_eq!((jobs.calls("POST report"), jobs.calls("GET report")), (1, 3));
    // A new Location in a 202 is where the next poll goes.
    let slow = action(db.as_ref(), &run.id, "Slow");
    assert_eq!(slow.status, Status::Succeeded, "{:?}", slow.error);
    assert_eq!(slow.outputs.expect("outputs")["body"]["job"], "slow-next");
    assert_eq!(jobs.calls("GET slow-next"), 3);
    // A poll answered 404 fails the action with that answer.
    let missing = action(db.as_ref(), &run.id, "Missing");
    assert_eq!(missing.status, Status::Failed);
    assert_eq!(missing.error.expect("error")["code"], "404");
    assert_eq!(jobs.calls("GET missing"), 1);
    // DisableAsyncPattern: the 202 is the outputs, and nothing is polled.
    let not_polled = action(db.as_ref(), &run.id, "Not_polled");
    assert_eq!(not_polled.status, Status::Succeeded, "{:?}", not_polled.error);
    assert_eq!(not_polled.outputs.expect("outputs")["statusCode"], 202);
    assert_eq!(jobs.calls("GET fire-and-forget"), 0);
    // The polls carried the request's credentials (same origin), not its content headers.
    assert!(
        jobs.authorizations
            .lock()
            .expect("lock")
            .iter()
            .all(|a| a.as_deref() == Some("Bearer for-the-jobs-service"))
    );
}

#[tokio::test]
async fn a_run_resumed_while_polling_polls_on_without_sending_the_request_again() {
    let jobs = Jobs::default();
    let addr = serve(jobs.router()).await;
    let dir = project(addr, json!({"Hang": start_job(addr, "hang", None)}));
    let (engine, db, _clock) = workflow_engine(dir.path()).await;

    // The first process stops while its first poll waits for an answer.
    let first = tokio::spawn(async move { engine.run("w", json!({})).await });
    for waited in 0.. {
        if jobs.calls("GET hang") == 1 {
            break;
        }
        assert!(waited < 500, "the action never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.abort();
    let _ = first.await;

    // Another worker, past the first one's lease, resumes the run: it polls again and gets
    // the job's end; the job was started once.
    let project = Project::open(dir.path()).expect("project");
    let mut options = EngineOptions::new(db.clone());
    options.clock = Arc::new(FakeClock::starting_at(1_700_000_000_000 + 120_000));
    options.lease_owner = "other-worker:1".to_owned();
    let second = Engine::open(&project, &runtime(), options).await.expect("engine");
    let resumed = second.resume_interrupted().await.expect("resume");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Succeeded, "{:?}", resumed[0].error);
    let hang = action(db.as_ref(), &resumed[0].id, "Hang");
    assert_eq!(hang.outputs.expect("outputs")["body"]["done"], true);
    assert_eq!(jobs.calls("POST hang"), 1, "the request was not sent again");
    assert_eq!(jobs.calls("GET hang"), 3);
}

#[tokio::test]
async fn one_workflow_calls_another_long_run_and_gets_its_response() {
    use cordon_host::server::{Keys, ServerConfig, callback_url, router};
    // The slow workflow waits on this for a second of real time.
    let sleeper = serve(Router::new().route(
        "/sleep",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "awake"
        }),
    ))
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = listener.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"http": {"grant": {"hosts": [format!("http://{sleeper}"), format!("http://{server}")]}}})
            .to_string(),
    )
    .expect("connections.json");
    let write = |name: &str, definition: Value| {
        std::fs::create_dir_all(dir.path().join(name)).expect("workflow dir");
        std::fs::write(
            dir.path().join(name).join("workflow.json"),
            json!({"kind": "Stateful", "definition": definition}).to_string(),
        )
        .expect("workflow.json");
    };
    write(
        "slow",
        json!({"triggers": {"manual": {"type": "Request", "kind": "Http"}},
               "actions": {"Pause": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{sleeper}/sleep")}},
                           "Reply": {"type": "Response", "runAfter": {"Pause": ["Succeeded"]},
                                     "inputs": {"statusCode": 200, "body": {"order": "@triggerBody()?['order']", "done": true}}}}}),
    );
    write(
        "caller",
        json!({"triggers": {"manual": {"type": "Request", "kind": "Http"}},
               "actions": {"Call_slow": {"type": "Http", "inputs": {
                   "method": "POST", "uri": "@parameters('slowUrl')", "body": {"order": 7}}}}}),
    );
    let keys = Keys::for_project(&Project::open(dir.path()).expect("project")).expect("keys");
    let slow_url = callback_url(&format!("http://{server}"), &keys.trigger, "slow", "manual", None);
    std::fs::write(
        dir.path().join("parameters.json"),
        json!({"slowUrl": {"type": "String", "value": slow_url}}).to_string(),
    )
    .expect("parameters.json");

    // One engine on the real clock, served with a short response wait.
    let db =
        Arc::new(cordon_host::db::SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let project = Project::open(dir.path()).expect("project");
    let engine = Engine::open(&project, &runtime(), EngineOptions::new(db.clone()))
        .await
        .expect("engine");
    let config = ServerConfig {
        response_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let app = router(engine.clone(), keys, config.clone());
    tokio::spawn(async move {
        cordon_host::server::serve(listener, app, &config, std::future::pending()).await;
    });

    // The call gets 202 and a Location after 200 ms; the caller's Http action polls it (every
    // Retry-After second) until the slow run's Response, which is its outputs.
    let run = engine.run("caller", json!({})).await.expect("caller runs");
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let call = action(db.as_ref(), &run.id, "Call_slow");
    let outputs = call.outputs.expect("outputs");
    assert_eq!(outputs["statusCode"], 200);
    assert_eq!(outputs["body"], json!({"order": 7, "done": true}));
}

#[tokio::test]
async fn an_action_that_times_out_while_polling_leaves_no_polling_behind() {
    let jobs = Jobs::default();
    let addr = serve(jobs.router()).await;
    let mut hang = start_job(addr, "hang", None);
    hang["limit"] = json!({"timeout": "PT1S"});
    // The run goes on after the timeout (its rows would all go when it ended), held here.
    let mut held = start_job(addr, "held", Some("DisableAsyncPattern"));
    held["inputs"]["uri"] = json!(format!("http://{addr}/hold"));
    held["runAfter"] = json!({"Hang": ["TimedOut"]});
    let dir = project(addr, json!({"Hang": hang, "Held": held}));
    let (engine, db, _clock) = workflow_engine(dir.path()).await;

    let execution = tokio::spawn(async move { engine.run("w", json!({})).await });
    let mut waited = 0;
    let run_id = loop {
        let runs = db.list_runs(&Default::default()).expect("runs");
        if let Some(run) = runs.first()
            && jobs.calls("POST held") == 1
        {
            break run.id.clone();
        }
        assert!(!execution.is_finished(), "the run ended before it reached Held");
        assert!(waited < 500, "the run never reached Held");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(action(db.as_ref(), &run_id, "Hang").status, Status::TimedOut);
    assert_eq!(jobs.calls("GET hang"), 1, "it was polling when its time ran out");
    assert_eq!(
        db.http_poll(&run_id, "Hang").expect("read"),
        None,
        "a later execution of the action would send its request, not poll the old location"
    );
    execution.abort();
}
