//! Connector upgrades, end to end with a real SQLite history: a new connector file that asks
//! for more than its grant waits for approval while the approved version keeps running; the
//! operator's approval grants exactly what it asked for; an upgrade within the grant needs no
//! approval.

use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::get;
use cordon_host::db::{Db, SqliteDb, Status};
use cordon_host::workflow::project::Project;
use cordon_host::workflow::upgrades;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_tests::{captured_log, fixture, runtime, serve};
use serde_json::{Value, json};

const API_KEY: &str = "mailer-key-0f3a";

/// A server that says whether the request carried the right API key (the connector's output
/// would show the key itself only redacted).
async fn key_server() -> String {
    let router = axum::Router::new().route(
        "/check",
        get(|headers: HeaderMap| async move {
            match headers.get("x-api-key").map(|v| v.as_bytes()) {
                Some(key) if key == API_KEY.as_bytes() => "key accepted",
                Some(_) => "wrong key",
                None => "no key",
            }
        }),
    );
    format!("http://{}/check", serve(router).await)
}

fn write_project(dir: &Path, with_key: bool) {
    let mut connection = json!({
        "connector": "connectors/mailer.wasm",
        "grant": {"hosts": ["http://127.0.0.1:*"]}
    });
    if with_key {
        connection["parameterValues"] = json!({"api-key": "@appsetting('MAILER_KEY')"});
    }
    let connections = json!({"serviceProviderConnections": {"mailer": connection}});
    std::fs::write(dir.join("connections.json"), connections.to_string()).expect("connections.json");
    std::fs::write(
        dir.join("local.settings.json"),
        json!({"Values": {"MAILER_KEY": API_KEY}}).to_string(),
    )
    .expect("local.settings.json");
    let workflow = json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {"Send": {
            "type": "ServiceProvider",
            "inputs": {
                "parameters": {"url": "@triggerBody()?['url']"},
                "serviceProviderConfiguration": {"connectionName": "mailer", "operationId": "send"},
                "retryPolicy": {"type": "none"}
            }
        }}
    }});
    std::fs::create_dir_all(dir.join("send")).expect("workflow dir");
    std::fs::write(dir.join("send/workflow.json"), workflow.to_string()).expect("workflow.json");
}

/// Puts a version of the mailer fixture where connections.json expects it.
fn install(dir: &Path, fixture_name: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixture(fixture_name)).expect("fixture built");
    std::fs::create_dir_all(dir.join("connectors")).expect("connectors dir");
    std::fs::write(dir.join("connectors/mailer.wasm"), &bytes).expect("install");
    bytes
}

/// Opens the project as a new process would and runs `send` once; returns the action's
/// output (`version`, `status`, `body`).
async fn send_once(dir: &Path, db: &Arc<SqliteDb>, url: &str) -> Value {
    let project = Project::open(dir).expect("project");
    let engine = Engine::open(&project, &runtime(), EngineOptions::new(db.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let run = engine.run("send", json!({"url": url})).await.expect("run");
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    let actions = db.actions(&run.id, false).expect("actions");
    let send = actions.iter().find(|a| a.name == "Send").expect("Send ran");
    let outputs = send.outputs.clone().expect("outputs");
    outputs.get("body").cloned().unwrap_or(outputs)
}

/// The SHA-256 of the mailer connection's approved version in `db`.
fn approved_sha256(db: &SqliteDb) -> String {
    let approved = db.approved_connector("mailer").expect("read");
    approved.expect("an approved version is recorded").sha256
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn an_upgrade_that_asks_for_more_waits_for_approval_while_the_approved_version_runs() {
    let log = captured_log();
    let url = key_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_project(dir.path(), false);
    let db = Arc::new(SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));

    // First install: approved as it is.
    let v1 = install(dir.path(), "mailer");
    assert_eq!(send_once(dir.path(), &db, &url).await["version"], "1.0.0");
    assert_eq!(approved_sha256(&db), sha256(&v1));

    // Version 2 asks for a secret and a host the grant does not give: it waits, and every
    // new start keeps running version 1, from the history's copy.
    let v2 = install(dir.path(), "mailer-v2");
    for _ in 0..2 {
        let out = send_once(dir.path(), &db, &url).await;
        assert_eq!(out["version"], "1.0.0", "{out}");
        assert_eq!(out["body"], "no key", "{out}");
    }
    assert_eq!(approved_sha256(&db), sha256(&v1));
    let project = Project::open(dir.path()).expect("project");
    let spec = &project.connections["mailer"];
    let rt = runtime();
    let offered = rt.load_bytes(&v2, "mailer v2").await.expect("v2 loads");
    let check = upgrades::check(&*db, spec, offered.manifest()).expect("check");
    assert_eq!(
        check.widening.to_string(),
        "host https://mail.example.test, secret api-key"
    );
    let text = log.text();
    assert!(
        text.contains("connector_upgrade_pending") && text.contains(&sha256(&v2)),
        "no audit event for the pending upgrade"
    );

    // The operator approves; connections.json now maps the secret to a setting. Version 2
    // runs, and the secret it asked for (which connections.json's grant never named) reaches
    // the server.
    let added = upgrades::approve(&*db, spec, &v2, &offered).expect("approve");
    assert_eq!(added.to_string(), check.widening.to_string());
    write_project(dir.path(), true);
    let out = send_once(dir.path(), &db, &url).await;
    assert_eq!(out["version"], "2.0.0", "{out}");
    assert_eq!(out["body"], "key accepted", "{out}");

    // Going back to version 1 asks for less: approved without anyone's help. Version 2 again
    // asks for nothing the approvals have not granted already.
    write_project(dir.path(), false);
    install(dir.path(), "mailer");
    assert_eq!(send_once(dir.path(), &db, &url).await["version"], "1.0.0");
    assert_eq!(approved_sha256(&db), sha256(&v1));
    write_project(dir.path(), true);
    install(dir.path(), "mailer-v2");
    assert_eq!(send_once(dir.path(), &db, &url).await["version"], "2.0.0");
}

#[tokio::test]
async fn a_new_history_approves_what_it_finds_and_the_grant_still_limits_it() {
    // A history that never saw the connection approves what it finds: the operator's grant in
    // connections.json is what limits it, checked at each call as always.
    let url = key_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_project(dir.path(), true);
    install(dir.path(), "mailer-v2");
    let db = Arc::new(SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let project = Project::open(dir.path()).expect("project");
    let engine = Engine::open(&project, &runtime(), EngineOptions::new(db.clone()))
        .await
        .expect("engine");
    let run = engine.run("send", json!({"url": url})).await.expect("run");
    // connections.json grants no secret, so version 2's key is refused at the call.
    assert_eq!(run.status, Status::Failed);
    let actions = db.actions(&run.id, false).expect("actions");
    let error = actions[0].error.clone().expect("the action's error").to_string();
    assert!(error.contains("api-key"), "{error}");
    assert_eq!(
        db.approved_connector("mailer")
            .expect("read")
            .expect("recorded")
            .manifest["version"],
        "2.0.0"
    );
}

#[tokio::test]
async fn in_a_tenants_directory_approvals_are_per_tenant_and_audited_with_the_tenant() {
    let log = captured_log();
    let root = tempfile::tempdir().expect("tempdir");
    let acme = root.path().join("acme");
    std::fs::create_dir_all(&acme).expect("tenant dir");
    write_project(&acme, false);
    let v1 = install(&acme, "mailer");
    let (tenants, _) = cordon_host::tenants::open_all(root.path(), |_, db| Ok(EngineOptions::new(db)))
        .await
        .and_then(|opened| opened.require_all())
        .expect("tenants open");
    let approved = tenants[0]
        .db
        .approved_connector("mailer")
        .expect("read")
        .expect("recorded in acme's own history");
    assert_eq!(approved.sha256, sha256(&v1));
    // (Other tests install the same file outside any tenant, so look for this one's event.)
    let audited_for_acme = log
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| {
            e["fields"]["event"] == "connector_approved"
                && e["fields"]["sha256"] == sha256(&v1)
                && e["span"]["tenant"] == "acme"
        });
    assert!(audited_for_acme, "the first install is audited with its tenant");
}
