//! The encrypted secret store, end to end: a workflow's connector reads its token through
//! `@secret('NAME')` from a real SQLite file, the file never holds the token, a new value
//! takes effect on the next call, and a missing key or name is reported before any run.

use std::sync::Arc;

use cordon_host::db::{Db, SqliteDb, Status};
use cordon_host::ids::SecretName;
use cordon_host::secrets::SecretValue;
use cordon_host::secrets::store::{MasterKey, SecretStore};
use cordon_host::workflow::project::Project;
use cordon_host::workflow::{Engine, EngineOptions};
use cordon_tests::{FAKE_GITHUB_TOKEN, FakeGithub, runtime, serve};
use serde_json::json;

fn write_project(dir: &std::path::Path, github: std::net::SocketAddr) {
    let connections = json!({"serviceProviderConnections": {"github": {
        "connector": "github",
        "parameterValues": {"base_url": format!("http://{github}"), "token": "@secret('GITHUB_TOKEN')"},
        "grant": {"hosts": [format!("http://{github}")], "secrets": [{"name": "token"}]}
    }}});
    std::fs::write(dir.join("connections.json"), connections.to_string()).expect("write connections.json");
    let workflow = json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {"Open": {
            "type": "ServiceProvider",
            "inputs": {
                "parameters": {"owner": "acme", "repo": "widgets", "title": "from the store"},
                "serviceProviderConfiguration": {"connectionName": "github", "operationId": "create_issue"},
                "retryPolicy": {"type": "none"}
            }
        }}
    }});
    std::fs::create_dir_all(dir.join("open")).expect("workflow dir");
    std::fs::write(dir.join("open/workflow.json"), workflow.to_string()).expect("write workflow.json");
}

fn token() -> SecretName {
    SecretName::new("GITHUB_TOKEN").expect("name")
}

/// Opens the project's engine; an error comes back as its full text, causes included.
async fn open_engine(
    dir: &std::path::Path,
    db: Arc<SqliteDb>,
    store: Option<SecretStore>,
) -> Result<Engine, String> {
    let mut options = EngineOptions::new(db);
    options.secret_store = store;
    let project = Project::open(dir).map_err(|e| format!("{e:#}"))?;
    Engine::open(&project, &runtime(), options)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// Every byte of the history: the database file and its write-ahead log.
fn history_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for file in ["history.db", "history.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(".cordon").join(file)) {
            bytes.extend(b);
        }
    }
    bytes
}

#[tokio::test]
async fn a_connector_gets_its_token_from_the_store_and_the_file_never_holds_it() {
    let github = FakeGithub::default();
    let addr = serve(github.router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_project(dir.path(), addr);
    let db = Arc::new(SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let key = MasterKey::generate();
    let store = SecretStore::new(db.clone(), MasterKey::from_base64(&key, "test").expect("key"));
    store
        .set(&token(), &SecretValue::new(FAKE_GITHUB_TOKEN))
        .expect("store the token");

    let engine = open_engine(dir.path(), db.clone(), Some(store.clone()))
        .await
        .expect("engine opens");
    let run = engine.run("open", json!({})).await.expect("run");
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(github.issues.lock().expect("lock").len(), 1);

    // A new value is read on the next call, without reopening anything: a wrong token now
    // fails against the fake, and the right one works again.
    store
        .set(&token(), &SecretValue::new("ghp-revoked"))
        .expect("replace");
    let run = engine.run("open", json!({})).await.expect("run");
    assert_eq!(run.status, Status::Failed);
    store
        .set(&token(), &SecretValue::new(FAKE_GITHUB_TOKEN))
        .expect("restore");
    let run = engine.run("open", json!({})).await.expect("run");
    assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
    assert_eq!(github.issues.lock().expect("lock").len(), 2);

    drop(engine);
    let bytes = history_bytes(dir.path());
    assert!(!bytes.is_empty());
    for needle in [FAKE_GITHUB_TOKEN, "ghp-revoked", key.as_str()] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the history file holds {needle:?}"
        );
    }
    assert_eq!(db.list_secrets().expect("list").len(), 1);
}

#[tokio::test]
async fn a_missing_key_or_name_or_the_wrong_key_stops_the_engine_with_the_fix() {
    let addr = serve(FakeGithub::default().router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_project(dir.path(), addr);
    let db = Arc::new(SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let store_with =
        |key: &str| SecretStore::new(db.clone(), MasterKey::from_base64(key, "test").expect("key"));
    let key = MasterKey::generate();

    let cases: [(Option<SecretStore>, &str); 2] = [
        (None, "CORDON_MASTER_KEY"),
        (Some(store_with(&key)), "cordon secrets set GITHUB_TOKEN"),
    ];
    for (store, expected) in cases {
        let error = open_engine(dir.path(), db.clone(), store)
            .await
            .expect_err("refused");
        assert!(error.contains("connection \"github\""), "{error}");
        assert!(error.contains(expected), "{error}");
    }

    store_with(&key)
        .set(&token(), &SecretValue::new(FAKE_GITHUB_TOKEN))
        .expect("store");
    let other = MasterKey::generate();
    let error = open_engine(dir.path(), db.clone(), Some(store_with(&other)))
        .await
        .expect_err("refused");
    assert!(error.contains("sealed with master key"), "{error}");
    // The right key still works afterwards: nothing was lost by the refusals.
    open_engine(dir.path(), db.clone(), Some(store_with(&key)))
        .await
        .expect("engine opens");
}

#[tokio::test]
async fn a_secret_written_as_text_is_refused_with_both_ways_to_write_it() {
    let addr = serve(FakeGithub::default().router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_project(dir.path(), addr);
    let connections = std::fs::read_to_string(dir.path().join("connections.json"))
        .expect("read")
        .replace("@secret('GITHUB_TOKEN')", FAKE_GITHUB_TOKEN);
    std::fs::write(dir.path().join("connections.json"), connections).expect("write");
    let db = Arc::new(SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let error = open_engine(dir.path(), db, None).await.expect_err("refused");
    assert!(
        error.contains("@secret('NAME')") && error.contains("@appsetting('SETTING')"),
        "{error}"
    );
    assert!(!error.contains(FAKE_GITHUB_TOKEN), "{error}");
}

#[tokio::test]
async fn name_tricks_in_a_secret_reference_are_refused_before_anything_is_opened() {
    let addr = serve(FakeGithub::default().router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_project(dir.path(), addr);
    let db = Arc::new(SqliteDb::open(&dir.path().join(".cordon/history.db")).expect("history"));
    let store = SecretStore::new(
        db.clone(),
        MasterKey::from_base64(&MasterKey::generate(), "test").expect("key"),
    );
    store
        .set(&token(), &SecretValue::new(FAKE_GITHUB_TOKEN))
        .expect("store");
    let original = std::fs::read_to_string(dir.path().join("connections.json")).expect("read");
    for trick in [
        "../GITHUB_TOKEN",
        "GITHUB_TOKEN}}",
        "{{secret:GITHUB_TOKEN}}",
        "GITHUB TOKEN",
        "",
    ] {
        let connections = original.replace("@secret('GITHUB_TOKEN')", &format!("@secret('{trick}')"));
        std::fs::write(dir.path().join("connections.json"), connections).expect("write");
        let error = open_engine(dir.path(), db.clone(), Some(store.clone()))
            .await
            .expect_err("refused");
        assert!(error.contains("secret name"), "{trick:?}: {error}");
        assert!(!error.contains(FAKE_GITHUB_TOKEN), "{error}");
    }
}
