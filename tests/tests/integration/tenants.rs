//! Two tenants in one server, on loopback: each reaches only its own runs, secrets and
//! metrics; another tenant's key (or none) gets 404 and an audit event naming the tenant;
//! the operator key opens both, and the operator's own `/metrics`.

use std::sync::Arc;

use cordon_host::db::{Db, DbError};
use cordon_host::ids::SecretName;
use cordon_host::secrets::SecretValue;
use cordon_host::secrets::store::{MasterKey, SecretStore};
use cordon_host::server::{ServerConfig, callback_url, tenants_router};
use cordon_host::tenants::{OpenedTenants, Tenant, open_all};
use cordon_host::workflow::EngineOptions;
use cordon_tests::{FAKE_GITHUB_TOKEN, FakeGithub, captured_log, http_client, serve, serve_cordon};
use serde_json::{Value, json};

/// A tenant project whose workflow opens an issue with the token stored as GITHUB_TOKEN.
fn write_tenant(dir: &std::path::Path, github: std::net::SocketAddr, tenant_json: Option<Value>) {
    std::fs::create_dir_all(dir.join("open")).expect("tenant dir");
    let connections = json!({"serviceProviderConnections": {"github": {
        "connector": "github",
        "parameterValues": {"base_url": format!("http://{github}"), "token": "@secret('GITHUB_TOKEN')"},
        "grant": {"hosts": [format!("http://{github}")], "secrets": [{"name": "token"}]}
    }}});
    std::fs::write(dir.join("connections.json"), connections.to_string()).expect("connections.json");
    let workflow = json!({"kind": "Stateful", "definition": {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {
            "Open": {
                "type": "ServiceProvider",
                "inputs": {
                    "parameters": {"owner": "acme", "repo": "widgets", "title": "t"},
                    "serviceProviderConfiguration": {"connectionName": "github", "operationId": "create_issue"},
                    "retryPolicy": {"type": "none"}
                }
            },
            "Done": {"type": "Response", "runAfter": {"Open": ["Succeeded", "Failed"]},
                     "inputs": {"statusCode": 200, "body": "@actions('Open')?['status']"}}
        }
    }});
    std::fs::write(dir.join("open/workflow.json"), workflow.to_string()).expect("workflow.json");
    if let Some(tenant_json) = tenant_json {
        std::fs::write(dir.join("tenant.json"), tenant_json.to_string()).expect("tenant.json");
    }
}

fn store_token(dir: &std::path::Path, key: &str, value: &str) {
    let db = Arc::new(cordon_host::db::SqliteDb::open(&dir.join(".cordon/history.db")).expect("history"));
    SecretStore::new(db, MasterKey::from_base64(key, "test").expect("key"))
        .set(
            &SecretName::new("GITHUB_TOKEN").expect("name"),
            &SecretValue::new(value),
        )
        .expect("store");
}

/// Opens the tenants under `root` with the secret store sealed by `master`.
async fn open_sealed_by(root: &std::path::Path, master: &str) -> anyhow::Result<OpenedTenants> {
    open_all(root, |_, db| {
        let mut options = EngineOptions::new(db.clone());
        options.secret_store = Some(SecretStore::new(db, MasterKey::from_base64(master, "test")?));
        Ok(options)
    })
    .await
}

/// Opens every tenant under `root`, all of which must open.
async fn open_with_store(
    root: &std::path::Path,
    master: &str,
) -> (Vec<Tenant>, cordon_host::server::ManagementKey) {
    open_sealed_by(root, master)
        .await
        .and_then(|opened| opened.require_all())
        .expect("tenants open")
}

/// Serves the tenants' router on loopback; returns its base URL.
async fn serve_tenants(tenants: &[Tenant]) -> String {
    // One config for the routes and the listener, so the operator's /metrics counts the
    // connections this listener accepts.
    let config = ServerConfig::default();
    let app = tenants_router(
        tenants
            .iter()
            .map(|t| (t.id.clone(), t.engine.clone(), t.keys.clone()))
            .collect(),
        Vec::new(),
        config.clone(),
    );
    format!("http://{}", serve_cordon(app, &config).await)
}

async fn call(http: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, String) {
    let mut request = http.get(url);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = request.send().await.expect("call");
    (response.status().as_u16(), response.text().await.expect("body"))
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_and_the_operator_sees_all() {
    let log = captured_log();
    let github = FakeGithub::default();
    let addr = serve(github.router()).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (acme_dir, globex_dir) = (root.path().join("acme"), root.path().join("globex"));
    write_tenant(
        &acme_dir,
        addr,
        Some(json!({"quotas": {"concurrentInvocations": 2}})),
    );
    write_tenant(&globex_dir, addr, None);
    // Both store a secret of the same name; only acme's is the real token.
    let master = MasterKey::generate();
    store_token(&acme_dir, &master, FAKE_GITHUB_TOKEN);
    store_token(&globex_dir, &master, "globex-own-token");

    let (tenants, operator) = open_with_store(root.path(), &master).await;
    let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["acme", "globex"]);
    assert_eq!(tenants[0].quotas.concurrent_invocations, 2);
    assert_eq!(tenants[0].runtime.tenant().map(|t| t.as_str()), Some("acme"));
    let find = |id: &str| -> &Tenant { tenants.iter().find(|t| t.id.as_str() == id).expect("tenant") };
    let (acme, globex) = (find("acme"), find("globex"));
    let (acme_db, globex_db) = (acme.db.clone(), globex.db.clone());
    let (acme_key, globex_key) = (
        acme.keys.management.token().to_owned(),
        globex.keys.management.token().to_owned(),
    );
    let (acme_trigger, globex_trigger) = (acme.keys.trigger.clone(), globex.keys.trigger.clone());
    let base = serve_tenants(&tenants).await;
    let http = http_client();

    // Each tenant's run uses its own secret of the same name.
    let run_of = |response: &reqwest::Response| {
        response.headers()["x-cordon-run-id"]
            .to_str()
            .expect("run id")
            .to_owned()
    };
    let acme_url = callback_url(
        &format!("{base}/tenants/acme"),
        &acme_trigger,
        "open",
        "manual",
        None,
    );
    let response = http
        .post(&acme_url)
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("acme");
    let acme_run = run_of(&response);
    assert_eq!(response.text().await.expect("body"), "Succeeded");
    let globex_url = callback_url(
        &format!("{base}/tenants/globex"),
        &globex_trigger,
        "open",
        "manual",
        None,
    );
    let response = http
        .post(&globex_url)
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("globex");
    let globex_run = run_of(&response);
    assert_eq!(
        response.text().await.expect("body"),
        "Failed",
        "globex's own token is not GitHub's"
    );
    assert_eq!(github.issues.lock().expect("lock").len(), 1);

    // A trigger signed with one tenant's key does not start another tenant's workflow.
    let crossed = acme_url.replace("/tenants/acme/", "/tenants/globex/");
    let response = http
        .post(&crossed)
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("crossed");
    assert!(response.status().is_client_error(), "{}", response.status());

    // Histories are separate files: neither holds the other's run.
    assert!(matches!(globex_db.run(&acme_run), Err(DbError::NoSuchRun(_))));
    assert!(matches!(acme_db.run(&globex_run), Err(DbError::NoSuchRun(_))));

    // The management API: own key yes, another tenant's key or none 404, operator both.
    let runs = |tenant: &str| format!("{base}/tenants/{tenant}/management/runs");
    let (status, body) = call(&http, &runs("acme"), Some(&acme_key)).await;
    assert_eq!(status, 200);
    assert!(body.contains(&acme_run) && !body.contains(&globex_run), "{body}");
    for (url, key) in [
        (runs("globex"), Some(acme_key.as_str())),
        (
            format!("{base}/tenants/globex/management/runs/{globex_run}"),
            Some(acme_key.as_str()),
        ),
        (runs("acme"), Some(globex_key.as_str())),
        (runs("acme"), None),
        (format!("{base}/tenants/acme/metrics"), Some(globex_key.as_str())),
    ] {
        let (status, body) = call(&http, &url, key).await;
        assert_eq!(status, 404, "{url}: {body}");
        assert!(!body.contains(&globex_run) && !body.contains(&acme_run), "{body}");
    }
    let audit = log.text();
    assert!(
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["fields"]["event"] == "management_denied" && e["fields"]["tenant"] == "globex"),
        "the refusal is audited with the tenant"
    );
    for tenant in ["acme", "globex"] {
        let (status, _) = call(&http, &runs(tenant), Some(operator.token())).await;
        assert_eq!(status, 200, "the operator key opens {tenant}");
    }
    // The operator asking a tenant for another tenant's run gets 404 too: it is not there.
    let (status, _) = call(
        &http,
        &format!("{base}/tenants/acme/management/runs/{globex_run}"),
        Some(operator.token()),
    )
    .await;
    assert_eq!(status, 404);

    // Metrics are per tenant.
    let (status, acme_metrics) = call(&http, &format!("{base}/tenants/acme/metrics"), Some(&acme_key)).await;
    assert_eq!(status, 200);
    assert!(acme_metrics.contains("status=\"Succeeded\""), "{acme_metrics}");
    assert!(
        !acme_metrics.contains("status=\"Failed\""),
        "globex's failed run shows in acme's metrics"
    );
    let (_, unknown) = call(
        &http,
        &format!("{base}/tenants/initech/management/runs"),
        Some(operator.token()),
    )
    .await;
    assert!(
        !unknown.contains("initech"),
        "an unknown tenant answers a plain 404: {unknown}"
    );

    // The operator's /metrics: the process's connections and each tenant's runs in flight,
    // which no tenant's key opens.
    let operator_metrics = format!("{base}/metrics");
    for key in [Some(acme_key.as_str()), Some(globex_key.as_str()), None] {
        let (status, body) = call(&http, &operator_metrics, key).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("operator key"), "{body}");
    }
    let (status, metrics) = call(&http, &operator_metrics, Some(operator.token())).await;
    assert_eq!(status, 200);
    for expected in [
        "cordon_tenant_runs_in_flight{tenant=\"acme\"} 0",
        "cordon_tenant_runs_in_flight{tenant=\"globex\"} 0",
        "cordon_tenant_up{tenant=\"acme\"} 1",
        "cordon_server_connections_open ",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from:\n{metrics}");
    }
    let accepted: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("cordon_server_connections_accepted_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connections counted in:\n{metrics}"));
    assert!(accepted >= 1.0, "{metrics}");
    assert!(
        !metrics.contains("status=\"Succeeded\""),
        "a tenant's runs stay on its own /metrics"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
}

#[tokio::test]
async fn a_tenant_that_does_not_open_answers_503_and_the_others_are_served() {
    let log = captured_log();
    let github = FakeGithub::default();
    let addr = serve(github.router()).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (acme_dir, globex_dir, initech_dir) = (
        root.path().join("acme"),
        root.path().join("globex"),
        root.path().join("initech"),
    );
    write_tenant(&acme_dir, addr, None);
    // globex's quota file is wrong; initech's workflow names an action that does not exist.
    write_tenant(&globex_dir, addr, Some(json!({"quotas": {"runsPerMinute": 0}})));
    write_tenant(&initech_dir, addr, None);
    let workflow = initech_dir.join("open/workflow.json");
    let text = std::fs::read_to_string(&workflow).expect("read");
    std::fs::write(&workflow, text.replace("\"Open\":[", "\"Opne\":[")).expect("break it");
    let master = MasterKey::generate();
    store_token(&acme_dir, &master, FAKE_GITHUB_TOKEN);

    let opened = open_sealed_by(root.path(), &master)
        .await
        .expect("acme opens, so the start goes on");
    let ids = |list: Vec<&cordon_host::ids::TenantId>| {
        list.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(opened.tenants.iter().map(|t| &t.id).collect()), ["acme"]);
    assert_eq!(
        ids(opened.unavailable.iter().map(|t| &t.id).collect()),
        ["globex", "initech"]
    );
    assert!(
        opened.unavailable[0].reason.contains("runsPerMinute is 0"),
        "{:?}",
        opened.unavailable[0]
    );
    assert!(
        opened.unavailable[1].reason.contains("Opne"),
        "{:?}",
        opened.unavailable[1]
    );

    let config = ServerConfig::default();
    let app = tenants_router(
        opened
            .tenants
            .iter()
            .map(|t| (t.id.clone(), t.engine.clone(), t.keys.clone()))
            .collect(),
        opened.unavailable.clone(),
        config.clone(),
    );
    let base = format!("http://{}", serve_cordon(app, &config).await);
    let http = http_client();

    // The tenant that opened runs as if the others were not there.
    let acme = &opened.tenants[0];
    let url = callback_url(
        &format!("{base}/tenants/acme"),
        &acme.keys.trigger,
        "open",
        "manual",
        None,
    );
    let response = http
        .post(&url)
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("acme");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "Succeeded");

    // Every route of one that did not: 503, the reason only for the operator.
    let operator = opened.operator.token().to_owned();
    for path in [
        "/tenants/globex",
        "/tenants/globex/api/open/triggers/manual/invoke?sig=00",
        "/tenants/initech/management/runs",
    ] {
        let (status, body) = call(&http, &format!("{base}{path}"), None).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            body.contains("unavailable") && body.contains("operator's log"),
            "{path}: {body}"
        );
        assert!(
            !body.contains("runsPerMinute") && !body.contains("Opne"),
            "{path}: {body}"
        );
        let (status, body) = call(&http, &format!("{base}{path}"), Some(&operator)).await;
        assert_eq!(status, 503, "{path}: {body}");
        let reason = if path.contains("globex") {
            "runsPerMinute is 0"
        } else {
            "Opne"
        };
        assert!(
            body.contains(reason) && body.contains("restart"),
            "{path}: {body}"
        );
    }
    let (status, metrics) = call(&http, &format!("{base}/metrics"), Some(&operator)).await;
    assert_eq!(status, 200);
    for expected in [
        "cordon_tenant_up{tenant=\"acme\"} 1",
        "cordon_tenant_up{tenant=\"globex\"} 0",
        "cordon_tenant_up{tenant=\"initech\"} 0",
        "cordon_tenant_runs_in_flight{tenant=\"acme\"} 0",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from:\n{metrics}");
    }
    assert!(
        !metrics.contains("cordon_tenant_runs_in_flight{tenant=\"globex\"}"),
        "{metrics}"
    );
    assert!(!log.text().contains(FAKE_GITHUB_TOKEN));
    // The operator's list of tenants says which are down and why; no other key opens it.
    let (status, listed) = call(&http, &format!("{base}/tenants"), Some(&operator)).await;
    assert_eq!(status, 200, "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    let names: Vec<&str> = listed["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["acme", "globex", "initech"]);
    assert_eq!(listed["tenants"][0]["up"], true);
    assert_eq!(listed["tenants"][1]["up"], false);
    assert!(
        listed["tenants"][1]["reason"]
            .as_str()
            .expect("reason")
            .contains("runsPerMinute is 0"),
        "{listed}"
    );
    let acme_key = acme.keys.management.token().to_owned();
    for key in [None, Some(acme_key.as_str())] {
        let (status, body) = call(&http, &format!("{base}/tenants"), key).await;
        assert_eq!(status, 401, "{body}");
    }

    // A strict caller can still ask for every tenant, and hears which did not open.
    let error = open_sealed_by(root.path(), &master)
        .await
        .and_then(|opened| opened.require_all().map(|_| ()))
        .expect_err("two did not open");
    assert!(
        format!("{error:#}").contains("2 tenant(s) did not open; tenant globex"),
        "{error:#}"
    );
}

#[tokio::test]
async fn a_bad_tenant_directory_or_no_tenant_that_opens_stops_the_start_naming_why() {
    let github = serve(FakeGithub::default().router()).await;
    let cases = [
        ("Bad_Name", None, "tenant id"),
        (
            "acme",
            Some(json!({"quotas": {"concurrentInvocations": 0}})),
            "concurrentInvocations is 0",
        ),
        ("acme", Some(json!({"quota": {}})), "unknown field"),
        (
            "acme",
            Some(json!({"quotas": {"runsPerMinute": 0}})),
            "runsPerMinute is 0",
        ),
        (
            "acme",
            Some(json!({"quotas": {"egressBytesPerMinute": 0}})),
            "egressBytesPerMinute is 0",
        ),
    ];
    for (name, tenant_json, expected) in cases {
        let root = tempfile::tempdir().expect("tempdir");
        write_tenant(&root.path().join(name), github, tenant_json);
        let error = open_all(root.path(), |_, db| Ok(EngineOptions::new(db)))
            .await
            .expect_err("refused");
        let text = format!("{error:#}");
        assert!(text.contains(expected), "{name}: {text}");
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let error = open_all(empty.path(), |_, db| Ok(EngineOptions::new(db)))
        .await
        .expect_err("no tenants");
    assert!(
        format!("{error:#}").contains("no tenant directories"),
        "{error:#}"
    );
}

#[tokio::test]
async fn a_tenant_past_its_runs_per_minute_gets_429_with_retry_after_and_the_other_does_not() {
    let github = FakeGithub::default();
    let addr = serve(github.router()).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (acme_dir, globex_dir) = (root.path().join("acme"), root.path().join("globex"));
    write_tenant(&acme_dir, addr, Some(json!({"quotas": {"runsPerMinute": 2}})));
    write_tenant(&globex_dir, addr, None);
    let master = MasterKey::generate();
    store_token(&acme_dir, &master, FAKE_GITHUB_TOKEN);
    store_token(&globex_dir, &master, FAKE_GITHUB_TOKEN);
    let (tenants, _) = open_with_store(root.path(), &master).await;
    let urls: Vec<(String, _)> = tenants
        .iter()
        .map(|t| (t.id.as_str().to_owned(), t.keys.trigger.clone()))
        .collect();
    let acme_db = tenants[0].db.clone();
    let base = serve_tenants(&tenants).await;
    let http = http_client();
    let post = |tenant: &str| {
        let (_, key) = urls.iter().find(|(id, _)| id == tenant).expect("tenant");
        let url = callback_url(&format!("{base}/tenants/{tenant}"), key, "open", "manual", None);
        http.post(url)
            .body("{}")
            .header("content-type", "application/json")
            .send()
    };

    // A quiet tenant may start a minute's runs at once; the third waits.
    for _ in 0..2 {
        let response = post("acme").await.expect("acme");
        assert_eq!(response.status(), 200);
    }
    let refused = post("acme").await.expect("acme");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = serde_json::from_str(&refused.text().await.expect("body")).expect("JSON");
    assert_eq!(body["error"]["code"], "RunQuotaExceeded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("runsPerMinute"),
        "{body}"
    );
    // Nothing was recorded for the refused request, and the accepted runs are all there.
    let runs = acme_db
        .list_runs(&cordon_host::db::RunFilter::default())
        .expect("runs");
    assert_eq!(runs.len(), 2);
    // The other tenant has no such quota and is not slowed by acme's.
    for _ in 0..3 {
        assert_eq!(post("globex").await.expect("globex").status(), 200);
    }
    assert_eq!(github.issues.lock().expect("lock").len(), 5);
}
