//! Helpers for the integration tests: the fixture connectors, a runtime with a shared
//! artifact cache, and real HTTP servers on loopback (an echo server and a fake GitHub).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use cordon_host::ids::ConnectionName;
use cordon_host::secrets::{NoSecrets, SecretSource};
use cordon_host::{Connection, ConnectionConfig, Connector, Grant, Runtime, RuntimeConfig};
use serde_json::{Value, json};

/// Path of a test-only connector built from `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CORDON_FIXTURE_DIR")).join(format!("cordon_fixture_{}.wasm", name.replace('-', "_")))
}

/// The component bytes of a built-in connector.
pub fn builtin(name: &str) -> &'static [u8] {
    match cordon_host::builtin::find(name) {
        Some(b) => b.component,
        None => panic!("no built-in connector {name:?}"),
    }
}

/// One artifact cache for the whole test binary, so each connector compiles once.
pub fn shared_cache_dir() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"))
        .path()
        .to_owned()
}

pub fn runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(shared_cache_dir()),
        max_concurrent_instances: 16,
        ..RuntimeConfig::default()
    }
}

pub fn runtime() -> Runtime {
    Runtime::new(runtime_config()).expect("runtime")
}

pub async fn hostile(runtime: &Runtime) -> Connector {
    runtime
        .load_file(&fixture("hostile"))
        .await
        .expect("hostile fixture loads")
}

pub fn grant(hosts: &[&str]) -> Grant {
    Grant {
        hosts: hosts.iter().map(|h| h.parse().expect("host pattern")).collect(),
        secrets: Vec::new(),
    }
}

pub fn connect(connector: &Connector, grant: Grant) -> Connection {
    connect_with(connector, grant, Arc::new(NoSecrets), Default::default())
}

pub fn connect_with(
    connector: &Connector,
    grant: Grant,
    secrets: Arc<dyn SecretSource>,
    parameters: serde_json::Map<String, Value>,
) -> Connection {
    connector
        .connect(ConnectionConfig {
            name: ConnectionName::new("test").expect("name"),
            parameters,
            grant,
            secrets,
        })
        .expect("connect")
}

/// An engine over the project in `dir`, with its history in `dir/.cordon/history.db` and a
/// fake clock, so retry waits are recorded instead of slept.
pub async fn workflow_engine(
    dir: &std::path::Path,
) -> (
    cordon_host::workflow::Engine,
    Arc<cordon_host::db::SqliteDb>,
    Arc<cordon_host::workflow::clock::FakeClock>,
) {
    use cordon_host::workflow::{Engine, EngineOptions, clock::FakeClock, project::Project};
    let project = Project::open(dir).expect("project opens");
    let db =
        Arc::new(cordon_host::db::SqliteDb::open(&dir.join(".cordon/history.db")).expect("history opens"));
    let clock = Arc::new(FakeClock::starting_at(1_700_000_000_000));
    let mut options = EngineOptions::new(db.clone());
    options.clock = clock.clone();
    let engine = Engine::open(&project, &runtime(), options)
        .await
        .expect("engine opens");
    (engine, db, clock)
}

/// An HTTP client for calling test servers: no proxy (another test sets proxy variables for
/// the whole process), and rustls with the ring provider.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().expect("client")
}

/// Waits (bounded: about 10 s) for a run accepted in the background to stop running.
pub async fn finished(db: &dyn cordon_host::db::Db, run_id: &str) -> cordon_host::db::RunRecord {
    for _ in 0..500 {
        let run = db.run(run_id).expect("run");
        if run.status != cordon_host::db::Status::Running {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("run {run_id} never finished");
}

/// A server on 127.0.0.1 with an ephemeral port, running until the test's runtime ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// `cordon serve`'s own listener ([`cordon_host::server::serve`]: read timeout, connection
/// cap) serving `router` on 127.0.0.1 with an ephemeral port until the test's runtime ends.
pub async fn serve_cordon(router: Router, config: &cordon_host::server::ServerConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let config = config.clone();
    tokio::spawn(async move {
        cordon_host::server::serve(listener, router, &config, std::future::pending()).await;
    });
    addr
}

/// `/echo` answers with the request it got; `/redirect?to=URL` answers 302; `/slow` never
/// finishes in time; `/big?bytes=N` sends N bytes.
pub fn echo_router() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/redirect", get(redirect))
        .route("/slow", get(slow))
        .route("/big", get(big))
}

/// A service behind authentication: `GET /private` answers 200 when the request's
/// `Authorization` header is one of `accepted`, 401 otherwise, and echoes the header it got
/// either way (as services that echo requests do, for the redaction to be seen).
pub fn credentials_router(accepted: Vec<String>) -> Router {
    let accepted = Arc::new(accepted);
    Router::new().route(
        "/private",
        get(move |headers: HeaderMap| {
            let accepted = accepted.clone();
            async move {
                let got = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let status = if accepted.contains(&got) {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                };
                (status, Json(json!({"authorization": got})))
            }
        }),
    )
}

async fn echo(method: axum::http::Method, headers: HeaderMap, body: String) -> Json<Value> {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Json(json!({"method": method.as_str(), "headers": headers, "body": body}))
}

async fn redirect(Query(q): Query<BTreeMap<String, String>>) -> Response {
    let to = q.get("to").cloned().unwrap_or_default();
    (StatusCode::FOUND, [("location", to)], "").into_response()
}

async fn slow() -> &'static str {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    "too late"
}

async fn big(Query(q): Query<BTreeMap<String, usize>>) -> String {
    "z".repeat(q.get("bytes").copied().unwrap_or(0))
}

/// A fake of the GitHub issues API, enough for the `github` connector.
#[derive(Clone, Default, Debug)]
pub struct FakeGithub {
    pub issues: Arc<Mutex<Vec<Value>>>,
    /// Idempotency keys of accepted creates, to show retries do not duplicate.
    pub seen_keys: Arc<Mutex<Vec<String>>>,
    /// How many times the issues were listed (polled).
    pub lists: Arc<std::sync::atomic::AtomicUsize>,
    /// Answers for the next list requests instead of the issues: status and `Retry-After`
    /// seconds.
    pub failures: Arc<Mutex<std::collections::VecDeque<ListFailure>>>,
}

/// A status code and `Retry-After` seconds for [`FakeGithub::fail_next`].
pub type ListFailure = (u16, Option<u64>);

pub const FAKE_GITHUB_TOKEN: &str = "ghp-test-token-0123456789";

impl FakeGithub {
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/repos/{owner}/{repo}/issues",
                get(list_issues).post(create_issue),
            )
            .with_state(self.clone())
    }

    /// The next list request answers `status` (with `Retry-After: retry_after` seconds).
    pub fn fail_next(&self, status: u16, retry_after: Option<u64>) {
        self.failures
            .lock()
            .expect("lock")
            .push_back((status, retry_after));
    }

    pub fn list_count(&self) -> usize {
        self.lists.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn add(&self, title: &str) -> u64 {
        let mut issues = self.issues.lock().expect("lock");
        let number = issues.len() as u64 + 1;
        issues.push(json!({
            "number": number, "title": title, "state": "open", "body": null,
            "html_url": format!("https://github.example/issues/{number}"),
            "user": {"login": "octocat"}, "labels": [], "created_at": "2026-11-22T00:00:00Z"
        }));
        number
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {FAKE_GITHUB_TOKEN}"))
}

async fn list_issues(
    State(fake): State<FakeGithub>,
    Path((_owner, _repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    fake.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let failure = fake.failures.lock().expect("lock").pop_front();
    if let Some((status, retry_after)) = failure {
        let status = StatusCode::from_u16(status).expect("status");
        let mut response = (status, Json(json!({"message": "failing as asked"}))).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        return response;
    }
    let mut issues = fake.issues.lock().expect("lock").clone();
    issues.reverse(); // newest first, as GitHub sorts by created desc
    Json(Value::Array(issues)).into_response()
}

async fn create_issue(
    State(fake): State<FakeGithub>,
    Path((_owner, _repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        fake.seen_keys.lock().expect("lock").push(key.to_owned());
    }
    let title = body["title"].as_str().unwrap_or_default().to_owned();
    let number = fake.add(&title);
    let issue = fake.issues.lock().expect("lock")[number as usize - 1].clone();
    (StatusCode::CREATED, Json(issue)).into_response()
}

/// Everything the process logs at info and above, and connectors' own lines (`cordon::guest`,
/// at debug), as JSON lines.
#[derive(Clone, Default, Debug)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide log capture. A scoped subscriber (`with_default`) is not enough: the tests
/// of a binary run on parallel threads, and a thread without the subscriber can register a
/// callsite first and race the cached interest. A global subscriber sees every thread; each
/// test picks out its own lines (by connection name, or by a value only it uses).
pub fn captured_log() -> &'static CapturedLog {
    static CAPTURED: OnceLock<CapturedLog> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = CapturedLog::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter("info,cordon::guest=debug")
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("only captured_log sets a subscriber");
        captured
    })
}

/// Calls the hostile connector's `fetch`, which reports what the host answered as data.
pub async fn fetch(connection: &Connection, input: Value) -> Value {
    let call = connection
        .invoke("fetch", &input, &cordon_host::CallInfo::default())
        .await;
    call.result.expect("fetch reports outcomes as data")
}

/// The `outcome` of a `fetch` report ("response", "denied", ...).
pub fn outcome(v: &Value) -> &str {
    v["outcome"].as_str().unwrap_or("?")
}

pub mod hand_made;
