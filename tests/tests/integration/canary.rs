//! A canary secret, from the encrypted store, given to a hostile connector that logs it,
//! prints it to stdout and stderr, returns it in its error and sends it to a host it was not
//! granted. Afterwards the history file, every log line of the process and every answer of
//! the server and its management API are searched: none holds a copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cordon_host::db::{Db, SqliteDb, Status};
use cordon_host::ids::SecretName;
use cordon_host::secrets::SecretValue;
use cordon_host::secrets::store::{MasterKey, SecretStore};
use cordon_host::server::{Keys, ServerConfig, callback_url, router};
use cordon_host::workflow::project::Project;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_tests::{captured_log, fixture, http_client, runtime, serve, serve_cordon};
use serde_json::json;

const CANARY: &str = "canary-5d1e0b7a-from-the-store";

fn write_project(dir: &std::path::Path, listener: std::net::SocketAddr) {
    std::fs::create_dir_all(dir.join("connectors")).expect("connectors dir");
    std::fs::copy(fixture("hostile"), dir.join("connectors/hostile.wasm")).expect("copy fixture");
    let connections = json!({"serviceProviderConnections": {"hostile": {
        "connector": "connectors/hostile.wasm",
        "parameterValues": {"token": "@secret('CANARY_TOKEN')"},
        "grant": {"hosts": [], "secrets": [{"name": "token", "plaintext": true}]}
    }}});
    std::fs::write(dir.join("connections.json"), connections.to_string()).expect("connections.json");
    let workflow = json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {
            "Leak": {
                "type": "ServiceProvider",
                "inputs": {
                    "parameters": {"url": format!("http://{listener}/")},
                    "serviceProviderConfiguration": {"connectionName": "hostile", "operationId": "leak"},
                    "retryPolicy": {"type": "none"}
                }
            },
            "Report": {
                "type": "Response",
                "runAfter": {"Leak": ["Failed"]},
                "inputs": {"statusCode": 200, "body": {"error": "@actions('Leak')", "outputs": "@outputs('Leak')"}}
            }
        }
    }});
    std::fs::create_dir_all(dir.join("leak")).expect("workflow dir");
    std::fs::write(dir.join("leak/workflow.json"), workflow.to_string()).expect("workflow.json");
}

fn holds_canary(bytes: &[u8]) -> bool {
    bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes())
}

#[tokio::test]
async fn a_canary_from_the_store_is_nowhere_after_a_hostile_connector_tries_every_way_out() {
    let log = captured_log();
    // A server the connector was not granted: it must never hear from it.
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let listener = serve(axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "heard"
        }
    }))
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    write_project(dir.path(), listener);
    let db = Arc::new(SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let store = SecretStore::new(
        db.clone(),
        MasterKey::from_base64(&MasterKey::generate(), "test").expect("key"),
    );
    store
        .set(
            &SecretName::new("CANARY_TOKEN").expect("name"),
            &SecretValue::new(CANARY),
        )
        .expect("store the canary");
    let project = Project::open(dir.path()).expect("project");
    let mut options = EngineOptions::new(db.clone());
    options.secret_store = Some(store);
    let engine = Engine::open(&project, &runtime(), options).await.expect("engine");
    let keys = Keys::for_project(&project).expect("keys");
    let base = format!(
        "http://{}",
        serve_cordon(
            router(engine, keys.clone(), ServerConfig::default()),
            &ServerConfig::default()
        )
        .await
    );
    let http = http_client();

    let mut answers = String::new();
    let trigger = || {
        http.post(callback_url(&base, &keys.trigger, "leak", "manual", None))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    let response = trigger().await.expect("trigger");
    assert_eq!(response.status(), 200);
    let run_id = response.headers()["x-cordon-run-id"]
        .to_str()
        .expect("run id")
        .to_owned();
    let body = response.text().await.expect("body");
    assert!(
        body.contains("[REDACTED:token]"),
        "the error arrives, redacted: {body}"
    );
    answers.push_str(&body);

    // Every management answer about the run, and the metrics.
    let operator = format!("Bearer {}", keys.management.token());
    for path in [
        format!("/management/runs/{run_id}"),
        "/management/runs".to_owned(),
        "/management/workflows".to_owned(),
        "/metrics".to_owned(),
    ] {
        let answer = http
            .get(format!("{base}{path}"))
            .header("authorization", &operator)
            .send()
            .await
            .expect("management call");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answers.push_str(&answer.text().await.expect("body"));
    }
    let run = db.run(&run_id).expect("run");
    assert_eq!(
        run.status,
        Status::Succeeded,
        "the Response after the failed action ends the run"
    );
    let leak = db
        .actions(&run_id, true)
        .expect("actions")
        .into_iter()
        .find(|a| a.name == "Leak")
        .expect("Leak was recorded");
    assert_eq!(leak.status, Status::Failed);

    assert!(
        !holds_canary(answers.as_bytes()),
        "an API answer holds the canary"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the ungranted host was reached"
    );
    // The connector's log lines did reach the process log (redacted), so the search below
    // looks where a leak would land.
    let text = log.text();
    assert!(
        text.contains("[REDACTED:token]"),
        "the connector's log lines are logged, redacted"
    );
    assert!(!holds_canary(text.as_bytes()), "a log line holds the canary");
    tokio::time::sleep(Duration::from_millis(50)).await;
    for file in ["history.db", "history.db-wal", "history.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(".cordon").join(file)) {
            assert!(!holds_canary(&bytes), "{file} holds the canary");
        }
    }

    // The next legitimate request still works, and gets the same answer.
    let again = trigger().await.expect("trigger");
    assert_eq!(again.status(), 200);
}
