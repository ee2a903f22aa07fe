//! `cordon serve`'s routes on a real socket on loopback, called with a real HTTP client.

use std::time::Duration;

use cordon_host::db::{Db, Status};
use cordon_host::server::{Keys, ServerConfig, TriggerKey, callback_url, router};
use cordon_host::workflow::project::Project;
use cordon_tests::{finished, serve, serve_cordon, workflow_engine};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    cordon_tests::http_client()
}

/// A client that sends the management key with every request.
fn operator(keys: &Keys) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", keys.management.token())
            .parse()
            .expect("header"),
    );
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()
        .expect("client")
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let text = http
        .get(url)
        .send()
        .await
        .expect("call")
        .text()
        .await
        .expect("body");
    parse(&text)
}

fn write(dir: &std::path::Path, name: &str, definition: Value) {
    std::fs::create_dir_all(dir.join(name)).expect("dir");
    std::fs::write(
        dir.join(name).join("workflow.json"),
        json!({"kind": "Stateful", "definition": definition}).to_string(),
    )
    .expect("workflow.json");
}

/// A project with no connections and `workflows` (name, definition) in a temporary directory
/// (kept alive by the first element), with its engine on a fake clock, history and keys.
async fn project_of(
    workflows: &[(&str, Value)],
) -> (
    tempfile::TempDir,
    cordon_host::workflow::Engine,
    std::sync::Arc<cordon_host::db::SqliteDb>,
    std::sync::Arc<cordon_host::workflow::clock::FakeClock>,
    Keys,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("connections.json"), "{}").expect("connections.json");
    for (name, definition) in workflows {
        write(dir.path(), name, definition.clone());
    }
    let (engine, db, clock) = workflow_engine(dir.path()).await;
    let keys = Keys::for_project(&Project::open(dir.path()).expect("project")).expect("keys");
    (dir, engine, db, clock, keys)
}

/// Serves a project's routes on loopback with the default limits.
async fn serve_project(engine: cordon_host::workflow::Engine, keys: &Keys) -> std::net::SocketAddr {
    serve_cordon(
        router(engine, keys.clone(), ServerConfig::default()),
        &ServerConfig::default(),
    )
    .await
}

#[tokio::test]
async fn request_triggers_and_the_management_api() {
    // The engine runs on a fake clock, so the slow workflow waits on a slow server instead.
    let sleeper = serve(axum::Router::new().route(
        "/sleep",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "awake"
        }),
    ))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"http": {"grant": {"hosts": [format!("http://{sleeper}")]}}}).to_string(),
    )
    .expect("connections.json");
    write(
        dir.path(),
        "echo",
        json!({
            "triggers": {"manual": {"type": "Request", "kind": "Http", "inputs": {"method": "POST", "schema": {
                "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}},
            "actions": {"Reply": {"type": "Response", "inputs": {"statusCode": 201, "headers": {"x-greeting": "yes"},
                                   "body": {"hello": "@triggerBody()?['name']", "via": "@triggerOutputs()?['headers']?['x-source']"}}}}
        }),
    );
    write(
        dir.path(),
        "fire",
        json!({"triggers": {"manual": {"type": "Request", "kind": "Http"}},
               "actions": {"Note": {"type": "Compose", "inputs": "@triggerBody()"}}}),
    );
    write(
        dir.path(),
        "deferred",
        json!({"triggers": {"manual": {"type": "Request", "kind": "Http"}},
               "actions": {"Reply": {"type": "Response", "operationOptions": "Asynchronous",
                                     "inputs": {"statusCode": 200, "body": "later"}}}}),
    );
    write(
        dir.path(),
        "slow",
        json!({"triggers": {"manual": {"type": "Request", "kind": "Http"}},
               "actions": {"Pause": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{sleeper}/sleep")}},
                           "Reply": {"type": "Response", "inputs": {"statusCode": 200}, "runAfter": {"Pause": ["Succeeded"]}}}}),
    );
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let keys = Keys::for_project(&Project::open(dir.path()).expect("project")).expect("keys");
    let key = keys.trigger.clone();
    let config = ServerConfig {
        response_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let addr = serve_cordon(router(engine, keys.clone(), config.clone()), &config).await;
    let base = format!("http://{addr}");
    let http = client();

    // A signed call runs the workflow and gets its Response.
    let url = callback_url(&base, &key, "echo", "manual", None);
    let response = http
        .post(&url)
        .header("x-source", "test")
        .header("content-type", "application/json")
        .body(json!({"name": "Ada"}).to_string())
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-greeting"], "yes");
    let run_id = response.headers()["x-cordon-run-id"]
        .to_str()
        .expect("run id")
        .to_owned();
    assert_eq!(
        response.text().await.map(|t| parse(&t)).expect("JSON"),
        json!({"hello": "Ada", "via": "test"})
    );
    assert_eq!(db.run(&run_id).expect("run").status, Status::Succeeded);

    // Wrong signature, wrong trigger, wrong method, a body that fails the schema.
    let forged = url.replace("sig=", "sig=00");
    assert_eq!(
        http.post(&forged)
            .header("content-type", "application/json")
            .body(json!({"name": "x"}).to_string())
            .send()
            .await
            .expect("call")
            .status(),
        401
    );
    let other = callback_url(&base, &key, "echo", "other", None);
    assert_eq!(http.post(&other).send().await.expect("call").status(), 404);
    assert_eq!(http.get(&url).send().await.expect("call").status(), 405);
    let bad = http
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({"name": 5}).to_string())
        .send()
        .await
        .expect("call");
    assert_eq!(bad.status(), 400);
    let reasons = bad.text().await.map(|t| parse(&t)).expect("JSON")["error"]["reasons"].to_string();
    assert!(reasons.contains("/name"), "{reasons}");
    // A body over the limit: 413 in JSON, naming the limit; no run started.
    let runs_before = db.list_runs(&Default::default()).expect("runs").len();
    let huge = http
        .post(&url)
        .header("content-type", "application/json")
        .body(format!("\"{}\"", "a".repeat(2 << 20)))
        .send()
        .await
        .expect("call");
    assert_eq!(huge.status(), 413);
    let message = huge.text().await.map(|t| parse(&t)).expect("JSON")["error"]["message"].to_string();
    assert!(message.contains("over 2 MiB"), "{message}");
    assert_eq!(
        db.list_runs(&Default::default()).expect("runs").len(),
        runs_before
    );

    // No Response action: 202 at once with the run id; the run completes in the background.
    let fired = http
        .post(callback_url(&base, &key, "fire", "manual", None))
        .body("plain text")
        .send()
        .await
        .expect("call");
    assert_eq!(fired.status(), 202);
    let fired_id = fired.text().await.map(|t| parse(&t)).expect("JSON")["runId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(finished(db.as_ref(), &fired_id).await.status, Status::Succeeded);
    let note = db.actions(&fired_id, false).expect("actions");
    assert_eq!(note[0].outputs, Some(json!("plain text")));

    // A run that outlasts the response timeout: 202 now, Succeeded later.
    let slow = http
        .post(callback_url(&base, &key, "slow", "manual", None))
        .send()
        .await
        .expect("call");
    assert_eq!(slow.status(), 202);
    // The 202 says where to poll for the Response (relative here: this router was mounted
    // without a public base); polling answers 202 until the run answers, then its Response.
    let slow_id = slow.headers()["x-cordon-run-id"]
        .to_str()
        .expect("run id")
        .to_owned();
    let location = slow.headers()["location"].to_str().expect("location").to_owned();
    assert!(
        location.starts_with(&format!("/api/runs/{slow_id}/response?sig=")),
        "{location}"
    );
    assert_eq!(slow.headers()["retry-after"], "1");
    let mut polled = Vec::new();
    for _ in 0..200 {
        let answer = http.get(format!("{base}{location}")).send().await.expect("poll");
        polled.push(answer.status().as_u16());
        if answer.status() != 202 {
            assert_eq!(answer.headers()["x-cordon-run-id"], slow_id.as_str());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(polled.last(), Some(&200), "{polled:?}");
    assert_eq!(polled[0], 202, "the run was still waiting on the sleeper");
    // The URL is the run's alone: another run's id, or no signature, is refused.
    let forged = location.replace(&slow_id, &fired_id);
    for url in [forged, format!("/api/runs/{slow_id}/response")] {
        let answer = http.get(format!("{base}{url}")).send().await.expect("poll");
        assert_eq!(answer.status(), 401, "{url}");
    }
    let unknown = format!("/api/runs/nope/response?sig={}", key.response_signature("nope"));
    let answer = http.get(format!("{base}{unknown}")).send().await.expect("poll");
    assert_eq!(answer.status(), 404);

    // An asynchronous Response: 202 and a Location at once, however fast the run is; the
    // Location gives the Response.
    let deferred = http
        .post(callback_url(&base, &key, "deferred", "manual", None))
        .send()
        .await
        .expect("call");
    assert_eq!(deferred.status(), 202);
    let location = deferred.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let mut answer = None;
    for _ in 0..200 {
        let polled = http.get(format!("{base}{location}")).send().await.expect("poll");
        if polled.status() != 202 {
            answer = Some((polled.status().as_u16(), polled.text().await.expect("body")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answer, Some((200, "later".to_owned())));

    // Management API: only with the management key.
    assert_eq!(
        http.get(format!("{base}/management/workflows"))
            .send()
            .await
            .expect("call")
            .status(),
        401
    );
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .header("authorization", "Bearer wrong")
            .send()
            .await
            .expect("call")
            .status(),
        401
    );
    let http = operator(&keys);
    let workflows: Value = get_json(&http, format!("{base}/management/workflows")).await;
    assert_eq!(workflows["workflows"].as_array().map(Vec::len), Some(4));
    let runs: Value = get_json(
        &http,
        format!("{base}/management/runs?workflow=echo&status=Succeeded"),
    )
    .await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1));
    let detail: Value = get_json(&http, format!("{base}/management/runs/{run_id}")).await;
    assert_eq!(detail["actions"][0]["name"], "Reply");
    assert_eq!(detail["actions"][0]["attempt_history"][0]["attempt"], 1);
    assert_eq!(
        http.get(format!("{base}/management/runs/nope"))
            .send()
            .await
            .expect("call")
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{base}/management/runs?status=Sideways"))
            .send()
            .await
            .expect("call")
            .status(),
        400
    );
    let bad_limit = http
        .get(format!("{base}/management/runs?limit=many"))
        .send()
        .await
        .expect("call");
    assert_eq!(bad_limit.status(), 400);
    let message = bad_limit.text().await.map(|t| parse(&t)).expect("a JSON error")["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("limit") && message.contains("limit=N"),
        "{message}"
    );
    let resubmitted = http
        .post(format!("{base}/management/runs/{run_id}/resubmit"))
        .send()
        .await
        .expect("call");
    assert_eq!(resubmitted.status(), 202);
    let new_id = resubmitted.text().await.map(|t| parse(&t)).expect("JSON")["runId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        finished(db.as_ref(), &new_id).await.resubmitted_from.as_deref(),
        Some(run_id.as_str())
    );
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("call")
            .text()
            .await
            .expect("text"),
        "ok"
    );
}

#[test]
fn a_signature_is_bound_to_its_workflow_and_trigger() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("connections.json"), "{}").expect("connections.json");
    let project = Project::open(dir.path()).expect("project");
    let key = TriggerKey::for_project(&project).expect("key");
    let again = TriggerKey::for_project(&project).expect("key is kept");
    let sig = key.signature("a", "manual");
    assert_eq!(
        again.signature("a", "manual"),
        sig,
        "the key persists in the project"
    );
    assert!(key.verify("a", "manual", &sig));
    assert!(!key.verify("b", "manual", &sig));
    assert!(!key.verify("a", "other", &sig));
    assert!(!key.verify("a", "manual", "not-hex"));
}

/// A server whose `/hold` requests wait until the test lets them go (bounded at 20 s).
#[derive(Clone)]
struct Gate {
    open: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            open: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    fn router(&self) -> axum::Router {
        let gate = self.clone();
        axum::Router::new().route(
            "/hold",
            axum::routing::get(move || {
                let gate = gate.clone();
                async move {
                    match tokio::time::timeout(Duration::from_secs(20), gate.open.acquire()).await {
                        Ok(Ok(permit)) => {
                            permit.forget();
                            "released"
                        }
                        _ => "timed out",
                    }
                }
            }),
        )
    }

    fn release(&self, count: usize) {
        self.open.add_permits(count);
    }
}

async fn status_of(db: &impl Db, run_id: &str, wanted: Status) {
    for _ in 0..250 {
        if db.run(run_id).expect("run").status == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "run {run_id} is {} and never became {wanted}",
        db.run(run_id).expect("run").status
    );
}

fn run_id_of(text: &str) -> String {
    parse(text)["runId"].as_str().expect("runId").to_owned()
}

#[tokio::test]
async fn concurrency_limits_cancel_enable_disable_readiness_and_metrics() {
    let gate = Gate::new();
    let held = serve(gate.router()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"http": {"grant": {"hosts": [format!("http://{held}")]}}}).to_string(),
    )
    .expect("connections.json");
    write(
        dir.path(),
        "queue",
        json!({
            "triggers": {"manual": {"type": "Request", "kind": "Http",
                "runtimeConfiguration": {"concurrency": {"runs": 1, "maximumWaitingRuns": 1}}}},
            "actions": {"Hold": {"type": "Http", "inputs": {"method": "GET", "uri": format!("http://{held}/hold")}}}
        }),
    );
    let (engine, db, _clock) = workflow_engine(dir.path()).await;
    let keys = Keys::for_project(&Project::open(dir.path()).expect("project")).expect("keys");
    let addr = serve_project(engine, &keys).await;
    let base = format!("http://{addr}");
    let url = callback_url(&base, &keys.trigger, "queue", "manual", None);
    let http = client();
    let ops = operator(&keys);
    let post = |url: String| {
        let http = http.clone();
        async move {
            let response = http.post(url).send().await.expect("call");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        }
    };

    // One runs, one waits, the third is refused.
    let (code, body) = post(url.clone()).await;
    assert_eq!(code, 202);
    let first = run_id_of(&body);
    status_of(db.as_ref(), &first, Status::Running).await;
    let (code, body) = post(url.clone()).await;
    assert_eq!(code, 202);
    let second = run_id_of(&body);
    assert_eq!(db.run(&second).expect("run").status, Status::Waiting);
    let (code, body) = post(url.clone()).await;
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("runtimeConfiguration.concurrency"), "{body}");

    // Cancel the running one: the waiting one takes its slot.
    let cancelled = ops
        .post(format!("{base}/management/runs/{first}/cancel"))
        .send()
        .await
        .expect("call");
    assert_eq!(cancelled.status(), 200);
    status_of(db.as_ref(), &first, Status::Cancelled).await;
    let hold = db.actions(&first, false).expect("actions");
    assert_eq!(
        hold[0].status,
        Status::Cancelled,
        "the action in flight is cancelled too"
    );
    status_of(db.as_ref(), &second, Status::Running).await;
    let again = ops
        .post(format!("{base}/management/runs/{first}/cancel"))
        .send()
        .await
        .expect("call");
    assert_eq!(again.status(), 409, "an ended run cannot be cancelled");
    gate.release(1);
    status_of(db.as_ref(), &second, Status::Succeeded).await;

    // Disabled workflows refuse requests with 409 until enabled again.
    let disabled = ops
        .post(format!("{base}/management/workflows/queue/disable"))
        .send()
        .await
        .expect("call");
    assert_eq!(disabled.status(), 200);
    let listed = get_json(&ops, format!("{base}/management/workflows")).await;
    assert_eq!(listed["workflows"][0]["enabled"], false);
    let (code, body) = post(url.clone()).await;
    assert_eq!(code, 409, "{body}");
    ops.post(format!("{base}/management/workflows/queue/enable"))
        .send()
        .await
        .expect("call");
    gate.release(1);
    let (code, body) = post(url.clone()).await;
    assert_eq!(code, 202);
    status_of(db.as_ref(), &run_id_of(&body), Status::Succeeded).await;

    // Readiness without a key; metrics with one.
    let ready = http.get(format!("{base}/readyz")).send().await.expect("call");
    assert_eq!(ready.status(), 200);
    let metrics = metrics_of(&ops, &base).await;
    for expected in [
        "cordon_runs_total{workflow=\"queue\",status=\"Succeeded\"}",
        "cordon_runs_in_flight 0",
        "cordon_action_duration_seconds_count{workflow=\"queue\",type=\"Http\",status=\"Succeeded\"} 2",
        "cordon_connector_invocations_total{connector=\"http\",call=\"invoke\",outcome=\"ok\"}",
        "cordon_live_instances",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn response_headers_that_would_break_the_exchange_fail_the_response_action() {
    let (_dir, engine, db, _clock, keys) = project_of(&[(
        "reply",
        json!({
            "triggers": {"manual": {"type": "Request", "kind": "Http"}},
            "actions": {"Reply": {"type": "Response",
                "inputs": {"statusCode": 200, "headers": "@triggerBody()", "body": "hello world"}}}
        }),
    )])
    .await;
    let addr = serve_project(engine, &keys).await;
    let url = callback_url(&format!("http://{addr}"), &keys.trigger, "reply", "manual", None);
    let http = client();
    let call = |headers: Value| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(headers.to_string())
            .send()
    };

    // Headers that are fine arrive, values that are not strings as their JSON text.
    let fine = call(json!({"Content-Type": "application/xml", "X-Count": 5}))
        .await
        .expect("call");
    assert_eq!(fine.status(), 200);
    assert_eq!(fine.headers()["content-type"], "application/xml");
    assert_eq!(fine.headers()["x-count"], "5");
    assert_eq!(fine.text().await.expect("body"), "hello world");

    // A Content-Length of 3 used to cut the body to "hel" and leave the rest on the
    // connection; a header name with a space, or a value with a line break, was dropped.
    for (headers, wanted) in [
        (json!({"Content-Length": "3"}), "is set by the server"),
        (json!({"Transfer-Encoding": "chunked"}), "is set by the server"),
        (json!({"bad name": "x"}), "not a valid HTTP header name"),
        (json!({"X-Multi": "a\nb"}), "not a valid HTTP header value"),
        (json!("text"), "headers must be an object"),
    ] {
        let refused = call(headers.clone()).await.expect("call");
        assert_eq!(refused.status(), 502, "{headers}");
        let run = refused.headers()["x-cordon-run-id"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        let answer = parse(&refused.text().await.expect("body"));
        let message = answer["error"]["message"].to_string();
        assert!(
            message.contains("before a Response action answered (an action failed: Reply)"),
            "{message}"
        );
        assert_eq!(answer["runId"], run.as_str());
        assert!(message.contains(&run), "{message}");
        let reply = db
            .actions(&run, false)
            .expect("actions")
            .into_iter()
            .find(|a| a.name == "Reply")
            .expect("Reply");
        let error = reply.error.expect("error")["message"].to_string();
        assert!(error.contains(wanted), "{headers}: {error}");
    }
}

#[tokio::test]
async fn relative_paths_and_query_parameters_reach_the_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("connections.json"), "{}").expect("connections.json");
    write(
        dir.path(),
        "lines",
        json!({
            "triggers": {"manual": {"type": "Request", "kind": "Http",
                                    "inputs": {"method": "GET", "relativePath": "/orders/{id}/lines/{line}"}}},
            "actions": {"Reply": {"type": "Response", "inputs": {"statusCode": 200, "body": {
                "id": "@triggerOutputs()['relativePathParameters']['id']",
                "line": "@triggerOutputs()['relativePathParameters']['line']",
                "expand": "@triggerOutputs()?['queries']?['expand']"}}}}
        }),
    );
    let (engine, _db, _clock) = workflow_engine(dir.path()).await;
    let project = Project::open(dir.path()).expect("project");
    let keys = Keys::for_project(&project).expect("keys");
    let workflow = project.workflow("lines").expect("workflow");
    let template = cordon_host::workflow::relative_path::RelativePath::of(&workflow.triggers[0])
        .expect("valid")
        .expect("has a relativePath");
    let addr = serve_project(engine, &keys).await;
    let base = format!("http://{addr}");
    let url = callback_url(&base, &keys.trigger, "lines", "manual", Some(&template));
    assert!(
        url.contains("/invoke/orders/{id}/lines/{line}?sig="),
        "the URL shows the template: {url}"
    );
    let http = client();

    let filled = url.replace("{id}", "A%2017").replace("{line}", "3") + "&expand=items";
    let response = http.get(&filled).send().await.expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(
        parse(&response.text().await.expect("body")),
        json!({"id": "A 17", "line": "3", "expand": "items"})
    );

    // A path of the wrong shape, no path at all, and a signature that is wrong for the path.
    for (wrong, status) in [
        (url.replace("{id}", "1").replace("/lines/{line}", ""), 404),
        (
            url.replace("{id}", "1")
                .replace("{line}", "2")
                .replace("/orders", "/invoices"),
            404,
        ),
        (callback_url(&base, &keys.trigger, "lines", "manual", None), 404),
        (
            url.replace("{id}", "1")
                .replace("{line}", "2")
                .replace("sig=", "sig=ff"),
            401,
        ),
    ] {
        let got = http.get(&wrong).send().await.expect("call");
        assert_eq!(got.status(), status, "{wrong}");
    }
}

/// Reads from a raw connection until the server closes it (bounded), returning what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for 20 s; it sent: {}",
        String::from_utf8_lossy(&got)
    );
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_open_connections_are_capped() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let (_dir, engine, db, _clock, keys) = project_of(&[(
        "echo",
        json!({
            "triggers": {"manual": {"type": "Request", "kind": "Http"}},
            "actions": {"Reply": {"type": "Response", "inputs": {"statusCode": 200, "body": "@triggerBody()"}}}
        }),
    )])
    .await;
    let quick = ServerConfig {
        client_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let addr = serve_cordon(router(engine.clone(), keys.clone(), quick.clone()), &quick).await;
    let url = callback_url(&format!("http://{addr}"), &keys.trigger, "echo", "manual", None);
    let path = url
        .split_once(&addr.to_string())
        .expect("URL on addr")
        .1
        .to_owned();

    // A connection that sends nothing, and one that sends half a request head: closed.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(read_until_closed(&mut idle).await, "");
    let mut half = TcpStream::connect(addr).await.expect("connect");
    half.write_all(format!("POST {path} HTTP/1.1\r\nHost: cordon\r\n").as_bytes())
        .await
        .expect("write");
    assert_eq!(read_until_closed(&mut half).await, "");
    // A body that never arrives in full: 408 in JSON, naming the setting; no run started.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: cordon\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--client-timeout"), "{answer}");
    assert!(db.list_runs(&Default::default()).expect("runs").is_empty());
    // The same with a wrong signature: 401, since no body is read before the signature is
    // checked (an unsigned caller cannot make the server buffer one).
    let mut unsigned = TcpStream::connect(addr).await.expect("connect");
    unsigned
        .write_all(
            format!(
                "POST {} HTTP/1.1\r\nHost: cordon\r\nContent-Length: 100\r\n\r\n{{",
                path.replace("sig=", "sig=00")
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut unsigned).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // The server still answers.
    let echoed = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({"still": "here"}).to_string())
        .send()
        .await
        .expect("call");
    assert_eq!(echoed.status(), 200);
    assert_eq!(
        parse(&echoed.text().await.expect("body")),
        json!({"still": "here"})
    );
    // A Request trigger without `method` takes POST only, as in Logic Apps.
    let got = client().get(&url).send().await.expect("call");
    assert_eq!(got.status(), 405);
    assert_eq!(got.headers()["allow"], "POST");
    let message = parse(&got.text().await.expect("body"))["error"]["message"].to_string();
    assert!(message.contains("without inputs.method takes POST"), "{message}");
    // The listener counted the idle and the half-sent head, and the body that came too slowly
    // (a closed connection is counted by its task, so the count may lag the close a little).
    let mut timed_out = 0.0;
    for _ in 0..100 {
        let text = metrics_of(&operator(&keys), &format!("http://{addr}")).await;
        assert!(
            text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1,
            "one exposition: {text}"
        );
        assert!(
            metric(&text, "cordon_server_connections_accepted_total") >= 7.0,
            "{text}"
        );
        assert!(metric(&text, "cordon_server_connections_open") >= 1.0, "{text}");
        timed_out = metric(&text, "cordon_server_clients_timed_out_total");
        if timed_out >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(timed_out >= 3.0, "{timed_out} clients counted as timed out");

    // With every connection it may hold open (two, idle, within a long read timeout), the
    // server accepts no more until one closes; then the waiting request is answered.
    let capped = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let addr = serve_cordon(router(engine, keys.clone(), capped.clone()), &capped).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // A request on each proves the server accepted it (and so counts it).
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: cordon\r\n\r\n")
            .await
            .expect("write");
        let mut head = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut head)
            .await
            .expect("answer");
        assert_eq!(&head, b"HTTP/1.1 200");
        held.push(stream);
    }
    let mut third = TcpStream::connect(addr)
        .await
        .expect("the kernel's backlog takes it");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: cordon\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::io::AsyncReadExt::read(&mut third, &mut first),
    )
    .await;
    assert!(
        early.is_err(),
        "a third connection was served while two were open"
    );
    drop(held.pop());
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let text = metrics_of(&operator(&keys), &format!("http://{addr}")).await;
    assert_eq!(
        metric(&text, "cordon_server_connection_limit_reached_total"),
        1.0,
        "{text}"
    );
}

/// `/metrics` of the server at `base`, read with an operator's `client`.
async fn metrics_of(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of an unlabelled metric in an OpenMetrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn the_run_listing_pages_newest_first_through_next_links() {
    let echo = json!({
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {"Echo": {"type": "Compose", "inputs": "@triggerBody()"}}
    });
    let (_dir, engine, _db, clock, keys) = project_of(&[("a", echo.clone()), ("b", echo)]).await;
    let mut started = Vec::new();
    for i in 0..7 {
        let workflow = if i % 3 == 0 { "b" } else { "a" };
        started.push(engine.run(workflow, json!(i)).await.expect("run"));
        // Two runs in the same millisecond too: their ids break the tie.
        if i % 2 == 1 {
            cordon_host::workflow::clock::Clock::sleep(&*clock, Duration::from_millis(1)).await;
        }
    }
    let config = ServerConfig::default();
    let addr = serve_cordon(router(engine, keys.clone(), config.clone()), &config).await;
    let ops = operator(&keys);

    // Follows nextLink from `first` to the end, returning the ids in the order listed.
    let walk = |first: String| {
        let ops = ops.clone();
        async move {
            let mut ids = Vec::new();
            let mut next = Some(first);
            let mut pages = 0;
            while let Some(path) = next.take() {
                pages += 1;
                assert!(pages <= 10, "the links never end");
                let page = get_json(&ops, format!("http://{addr}{path}")).await;
                for run in page["runs"].as_array().expect("runs") {
                    ids.push(run["id"].as_str().expect("id").to_owned());
                }
                next = page["nextLink"].as_str().map(str::to_owned);
            }
            ids
        }
    };
    let mut newest_first: Vec<&cordon_host::db::RunRecord> = started.iter().collect();
    newest_first.sort_by(|x, y| (y.started_at, &y.id).cmp(&(x.started_at, &x.id)));
    let all: Vec<String> = newest_first.iter().map(|r| r.id.clone()).collect();
    assert_eq!(walk("/management/runs?limit=2".into()).await, all);
    assert_eq!(
        walk("/management/runs?limit=7".into()).await,
        all,
        "a full last page links to an empty one"
    );
    let of_a: Vec<String> = newest_first
        .iter()
        .filter(|r| r.workflow == "a")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(walk("/management/runs?workflow=a&limit=3".into()).await, of_a);
    assert_eq!(
        walk("/management/runs?status=Succeeded&limit=4".into()).await,
        all
    );
    assert!(walk("/management/runs?status=Failed".into()).await.is_empty());

    let wrong = ops
        .get(format!("http://{addr}/management/runs?before=no-such-run"))
        .send()
        .await
        .expect("call");
    assert_eq!(wrong.status(), 400);
    let message = parse(&wrong.text().await.expect("body"))["error"]["message"].to_string();
    assert!(message.contains("not a run of this history"), "{message}");
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    // An answer of about 20 MB: far more than the socket buffers on both sides hold.
    let padding = "x".repeat(200);
    let (_dir, engine, _db, _clock, keys) = project_of(&[(
        "big",
        json!({
            "triggers": {"manual": {"type": "Request", "kind": "Http"}},
            "actions": {"Reply": {"type": "Response", "inputs": {"statusCode": 200,
                "body": format!("@{{replace(string(range(0, 100000)), ',', '{padding}')}}")}}}
        }),
    )])
    .await;
    let config = ServerConfig {
        client_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let addr = serve_cordon(router(engine, keys.clone(), config.clone()), &config).await;
    let url = callback_url(&format!("http://{addr}"), &keys.trigger, "big", "manual", None);
    let path = url
        .split_once(&addr.to_string())
        .expect("URL on addr")
        .1
        .to_owned();

    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(format!("POST {path} HTTP/1.1\r\nHost: cordon\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .await
        .expect("write");
    // The answer starts arriving; then the client reads nothing for three times the limit.
    let mut first = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(60), stream.peek(&mut first))
        .await
        .expect("the answer starts")
        .expect("peek");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answer = read_until_closed(&mut stream).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .parse()
        .expect("a number");
    assert!(length > 20_000_000, "the answer is {length} bytes");
    assert!(
        body.len() < length,
        "the client got all {length} bytes: the server waited for it"
    );
}

#[tokio::test]
async fn a_soap_style_endpoint_reads_xml_and_answers_xml() {
    // The request's XML arrives as text; the answer is an XML value, sent as XML.
    let (_dir, engine, _db, _clock, keys) = project_of(&[(
        "quote",
        json!({
            "triggers": {"manual": {"type": "Request", "kind": "Http"}},
            "actions": {
                "Sku": {"type": "Compose",
                    "inputs": "@first(xpath(xml(triggerBody()), '//q:sku/text()'))"},
                "Reply": {"type": "Response", "runAfter": {"Sku": ["Succeeded"]},
                    "inputs": {"statusCode": 200,
                        "body": "@xml(json(concat('{\"q:price\": {\"@xmlns:q\": \"urn:quote\", \"@sku\": \"', outputs('Sku'), '\", \"#text\": 9.5}}')))"}},
                "Binary": {"type": "Response", "runAfter": {"Sku": ["Failed"]},
                    "inputs": {"statusCode": 400, "headers": {"Content-Type": "text/plain"},
                        "body": "@base64ToBinary('bm8gc2t1')"}}
            }
        }),
    )])
    .await;
    let addr = serve_project(engine, &keys).await;
    let url = callback_url(&format!("http://{addr}"), &keys.trigger, "quote", "manual", None);
    let http = client();
    let ask = |body: &'static str| {
        http.post(&url)
            .header("content-type", "application/xml")
            .body(body)
            .send()
    };

    let answer = ask(r#"<q:ask xmlns:q="urn:quote"><q:sku>A-1</q:sku></q:ask>"#)
        .await
        .expect("call");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/xml;charset=utf-8");
    assert_eq!(
        answer.text().await.expect("body"),
        r#"<q:price xmlns:q="urn:quote" sku="A-1">9.5</q:price>"#
    );

    // A body that is not well-formed XML fails the Compose; the other Response answers, its
    // binary body under the Content-Type it sets.
    let refused = ask("<q:ask xmlns:q=").await.expect("call");
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.headers()["content-type"], "text/plain");
    assert_eq!(refused.text().await.expect("body"), "no sku");
}

#[tokio::test]
async fn forms_uploads_and_binary_bodies_reach_the_run_whole() {
    let request = json!({"manual": {"type": "Request", "kind": "Http"}});
    let (_dir, engine, _db, _clock, keys) = project_of(&[
        (
            "form",
            json!({"triggers": request, "actions": {"Reply": {"type": "Response", "inputs": {
                "statusCode": 200,
                "body": {"name": "@triggerFormDataValue('name')", "tags": "@triggerFormDataMultiValues('tag')"}}}}}),
        ),
        (
            "upload",
            json!({"triggers": request, "actions": {"Reply": {"type": "Response", "inputs": {
                "statusCode": 200, "body": "@triggerMultipartBody(1)"}}}}),
        ),
        (
            "echo",
            json!({"triggers": request, "actions": {"Reply": {"type": "Response", "inputs": {
                "statusCode": 200, "body": "@triggerBody()"}}}}),
        ),
    ])
    .await;
    let addr = serve_project(engine, &keys).await;
    let url =
        |workflow: &str| callback_url(&format!("http://{addr}"), &keys.trigger, workflow, "manual", None);
    let http = client();
    let post = |workflow: &str, content_type: &str, body: Vec<u8>| {
        http.post(url(workflow))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    // A form as a browser posts it.
    let answer = post(
        "form",
        "application/x-www-form-urlencoded",
        b"name=Ada+Lovelace&tag=math&tag=poetry%26prose".to_vec(),
    )
    .await
    .expect("call");
    assert_eq!(answer.status(), 200);
    let body: Value = serde_json::from_slice(&answer.bytes().await.expect("body")).expect("json");
    assert_eq!(
        body,
        json!({"name": "Ada Lovelace", "tags": ["math", "poetry&prose"]})
    );

    // The same fields as a multipart form, beside a file whose bytes are not text.
    let file: Vec<u8> = vec![0x89, b'P', b'N', b'G', 0x00, 0xff, 0xfe];
    let mut multipart =
        b"--cut\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAda Lovelace\r\n".to_vec();
    multipart.extend_from_slice(
        b"--cut\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"ada.png\"\r\nContent-Type: image/png\r\n\r\n",
    );
    multipart.extend_from_slice(&file);
    multipart.extend_from_slice(
        b"\r\n--cut\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nmath\r\n--cut--\r\n",
    );
    let answer = post("form", "multipart/form-data; boundary=cut", multipart.clone())
        .await
        .expect("call");
    let body: Value = serde_json::from_slice(&answer.bytes().await.expect("body")).expect("json");
    assert_eq!(body, json!({"name": "Ada Lovelace", "tags": ["math"]}));
    // Part 1 is the file: answered as its own bytes under its own type.
    let answer = post("upload", "multipart/form-data; boundary=cut", multipart)
        .await
        .expect("call");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "image/png");
    assert_eq!(answer.bytes().await.expect("bytes").to_vec(), file);

    // A binary body is kept byte for byte (it used to become text with U+FFFD in place of
    // what was not UTF-8) and answered as it came.
    let answer = post("echo", "application/octet-stream", file.clone())
        .await
        .expect("call");
    assert_eq!(answer.headers()["content-type"], "application/octet-stream");
    assert_eq!(answer.bytes().await.expect("bytes").to_vec(), file);

    // A multipart body that ends early is refused before any run starts.
    let refused = post(
        "upload",
        "multipart/form-data; boundary=cut",
        b"--cut\r\nX: y".to_vec(),
    )
    .await
    .expect("call");
    assert_eq!(refused.status(), 400);
    let text = refused.text().await.expect("text");
    assert!(text.contains("multipart body is malformed"), "{text}");
}

#[tokio::test]
async fn a_callers_credentials_reach_the_run_only_when_the_trigger_asks_for_them() {
    let trigger = |options: Option<&str>| {
        let mut trigger = json!({"type": "Request", "kind": "Http"});
        if let Some(options) = options {
            trigger["operationOptions"] = json!(options);
        }
        json!({
            "triggers": {"manual": trigger},
            "actions": {"Headers": {"type": "Compose", "inputs": "@triggerOutputs()['headers']"}}
        })
    };
    let (_dir, engine, db, _clock, keys) = project_of(&[
        ("plain", trigger(None)),
        ("claims", trigger(Some("IncludeAuthorizationHeadersInOutputs"))),
    ])
    .await;
    let addr = serve_project(engine, &keys).await;
    for (workflow, kept) in [("plain", false), ("claims", true)] {
        let url = callback_url(&format!("http://{addr}"), &keys.trigger, workflow, "manual", None);
        let answer = client()
            .post(url)
            .header("authorization", "Bearer caller-token")
            .header("cookie", "session=abc")
            .header("x-request", "7")
            .send()
            .await
            .expect("trigger");
        assert_eq!(answer.status(), 202);
        let run_id = answer.headers()["x-cordon-run-id"]
            .to_str()
            .expect("id")
            .to_owned();
        let run = finished(db.as_ref(), &run_id).await;
        assert_eq!(run.status, Status::Succeeded, "{:?}", run.error);
        let headers = db
            .actions(&run_id, false)
            .expect("actions")
            .into_iter()
            .find(|a| a.name == "Headers")
            .and_then(|a| a.outputs)
            .expect("outputs");
        assert_eq!(headers["x-request"], "7", "{workflow}: {headers}");
        assert_eq!(headers.get("cookie"), None, "{workflow}: {headers}");
        assert_eq!(
            headers.get("authorization").and_then(Value::as_str),
            kept.then_some("Bearer caller-token"),
            "{workflow}: {headers}"
        );
    }
}

#[tokio::test]
async fn a_scheduled_trigger_runs_now_on_request_without_moving_its_schedule() {
    use cordon_host::workflow::clock::Clock as _;
    use cordon_host::workflow::scheduler::Scheduler;
    let daily = json!({"frequency": "Day", "interval": 1});
    let (_dir, engine, db, clock, keys) = project_of(&[
        (
            "nightly",
            json!({
                "triggers": {"daily": {"type": "Recurrence", "recurrence": daily}},
                "actions": {"Done": {"type": "Compose", "inputs": "@triggerBody()"}}
            }),
        ),
        (
            "windows",
            json!({
                "triggers": {"hourly": {"type": "SlidingWindow", "recurrence": {"frequency": "Hour", "interval": 1}}},
                "actions": {}
            }),
        ),
        (
            "hook",
            json!({"triggers": {"manual": {"type": "Request", "kind": "Http"}}, "actions": {}}),
        ),
    ])
    .await;
    let scheduler = Scheduler::new(engine.clone());
    let addr = serve_project(engine.clone(), &keys).await;
    let ops = operator(&keys);
    let run_trigger = |workflow: &str, trigger: &str| {
        let ops = ops.clone();
        let url = format!("http://{addr}/management/workflows/{workflow}/triggers/{trigger}/run");
        async move {
            let response = ops.post(url).send().await.expect("call");
            let status = response.status().as_u16();
            (status, parse(&response.text().await.expect("body")))
        }
    };

    // Before the server's first look at the trigger there is no schedule to move.
    let (status, body) = run_trigger("nightly", "daily").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not scheduled yet")
    );

    // The first look fires a new recurrence at once and schedules the next day.
    let t0 = clock.now_ms();
    // (The sliding window's first window starts now, so it has nothing to run yet.)
    assert_eq!(scheduler.tick(t0).await.expect("tick").len(), 1);
    let next_day = db
        .trigger_state("nightly", "daily")
        .expect("state")
        .and_then(|s| s.next_at)
        .expect("scheduled");
    assert_eq!(next_day, t0 + 24 * 3_600_000);
    assert!(scheduler.tick(t0 + 1000).await.expect("tick").is_empty());

    // Half an hour on: within the sliding window's first hour, so only the request fires.
    clock.sleep(Duration::from_secs(1800)).await;
    let (status, body) = run_trigger("nightly", "daily").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["workflow"], "nightly");
    let now = clock.now_ms();
    let runs = scheduler.tick(now).await.expect("tick");
    assert_eq!(runs.len(), 1, "the trigger ran now: {runs:?}");
    assert_eq!(runs[0].workflow, "nightly");
    assert_eq!(runs[0].trigger["outputs"]["body"]["missedOccurrences"], 0);
    assert_eq!(body["dueAt"], runs[0].trigger["outputs"]["body"]["scheduledTime"]);
    let state = db
        .trigger_state("nightly", "daily")
        .expect("state")
        .expect("state");
    assert_eq!(state.next_at, Some(next_day), "the schedule did not move");
    assert!(
        scheduler.tick(now + 1000).await.expect("tick").is_empty(),
        "it ran once"
    );
    let finished_run = engine
        .execute(runs.into_iter().next().expect("run"))
        .await
        .expect("run");
    assert_eq!(finished_run.status, Status::Succeeded);

    // What has no schedule to run is refused, with the reason.
    for (workflow, trigger, status, says) in [
        ("hook", "manual", 400, "starts a run when its URL is called"),
        ("windows", "hourly", 400, "once per window"),
        ("nightly", "hourly", 404, "its triggers: daily"),
        ("nightlly", "daily", 404, "no workflow \"nightlly\""),
    ] {
        let (got, body) = run_trigger(workflow, trigger).await;
        assert_eq!(got, status, "{workflow}/{trigger}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{workflow}/{trigger}: {message}");
    }
    let disabled = ops
        .post(format!("http://{addr}/management/workflows/nightly/disable"))
        .send()
        .await
        .expect("disable");
    assert_eq!(disabled.status().as_u16(), 200);
    let (status, body) = run_trigger("nightly", "daily").await;
    assert_eq!(status, 409, "{body}");

    // The management key is required, as for every management route.
    let anonymous = client()
        .post(format!(
            "http://{addr}/management/workflows/nightly/triggers/daily/run"
        ))
        .send()
        .await
        .expect("call");
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn a_polling_trigger_polls_now_on_request_unless_its_workflow_has_no_room() {
    use cordon_host::workflow::clock::Clock as _;
    use cordon_host::workflow::scheduler::Scheduler;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let endpoint = serve(axum::Router::new().route(
        "/ready",
        axum::routing::get(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move { axum::Json(json!({"call": n, "items": [n, n]})) }
        }),
    ))
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("connections.json"),
        json!({"http": {"grant": {"hosts": [format!("http://{endpoint}")]}}}).to_string(),
    )
    .expect("connections.json");
    write(
        dir.path(),
        "poller",
        json!({
            "triggers": {"ready": {
                "type": "Http",
                "inputs": {"method": "GET", "uri": format!("http://{endpoint}/ready")},
                "recurrence": {"frequency": "Day", "interval": 1},
                "splitOn": "@triggerBody()?['items']",
                "runtimeConfiguration": {"concurrency": {"runs": 1, "maximumWaitingRuns": 1}}
            }},
            "actions": {"Seen": {"type": "Compose", "inputs": "@triggerBody()"}}
        }),
    );
    let (engine, _db, clock) = workflow_engine(dir.path()).await;
    let keys = Keys::for_project(&Project::open(dir.path()).expect("project")).expect("keys");
    let scheduler = Scheduler::new(engine.clone());
    let addr = serve_project(engine.clone(), &keys).await;
    let ops = operator(&keys);
    let run_now = || {
        let ops = ops.clone();
        async move {
            let response = ops
                .post(format!(
                    "http://{addr}/management/workflows/poller/triggers/ready/run"
                ))
                .send()
                .await
                .expect("call");
            (response.status().as_u16(), response.text().await.expect("body"))
        }
    };

    // The first look calls the endpoint; its two runs take the workflow's one slot and its
    // one place in the queue.
    let first = scheduler.tick(clock.now_ms()).await.expect("tick");
    assert_eq!(first.len(), 2);
    let (status, body) = run_now().await;
    assert_eq!(
        status, 429,
        "a poll now would be skipped for want of room: {body}"
    );
    assert!(body.contains("concurrency limit"), "{body}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    // With room again, the trigger polls now instead of tomorrow.
    let runs = first.into_iter().map(|run| engine.execute(run));
    for done in futures_util::future::join_all(runs).await {
        assert_eq!(done.expect("run").status, Status::Succeeded);
    }
    let (status, body) = run_now().await;
    assert_eq!(status, 202, "{body}");
    let polled = scheduler.tick(clock.now_ms()).await.expect("tick");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "polled now");
    assert_eq!(polled.len(), 2);
    assert_eq!(polled[0].trigger["outputs"]["body"], json!(2));
}
