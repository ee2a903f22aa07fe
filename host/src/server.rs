//! `cordon serve`: request triggers, the management API and metrics over HTTP.
//!
//! Request triggers live at `POST /api/{workflow}/triggers/{trigger}/invoke?sig=SIG`, in the
//! manner of Logic Apps callback URLs: `SIG` is an HMAC-SHA256 of `workflow/trigger` under the
//! project's trigger key (`.cordon/trigger-key`, made on first use), so a URL works only for
//! the trigger it was issued for; `cordon workflows callback-url` prints it. A run is recorded
//! before the caller gets any answer, so an accepted request is never lost: a workflow with a
//! `Response` action answers with it (or `202` with the run id and a `Location` to poll for
//! the Response when the run outlasts [`ServerConfig::response_timeout`], or at once when the
//! Response is asynchronous: `"operationOptions": "Asynchronous"`); one without answers
//! `202` at once. A disabled
//! workflow answers `409`; one whose concurrency limit has no room for another waiting run
//! answers `429` with `Retry-After`.
//!
//! The management API (JSON), every route behind `Authorization: Bearer KEY` with the
//! project's management key (`.cordon/management-key`, made on first use):
//! - `GET /management/workflows`, `POST /management/workflows/{name}/enable|disable`;
//! - `GET /management/runs?workflow=&status=&limit=&before=` (newest first; a full page has
//!   `nextLink`), `GET /management/runs/{id}` (the same
//!   data as `cordon runs show --json`), `POST /management/runs/{id}/resubmit|cancel`;
//! - `GET /metrics`: Prometheus text format (see [`crate::metrics`]).
//!
//! `POST /api/callbacks/{run}/{callback}?sig=SIG` takes the callbacks of HttpWebhook actions
//! ([`webhook_callback`]); `GET /api/runs/{run}/response?sig=SIG` is where the caller of a
//! run that outlasted the wait polls for its Response ([`run_response`]).
//!
//! `GET /healthz` (the process answers) and `GET /readyz` (it takes work and its history
//! answers) need no key, for load balancers and orchestrators.
//!
//! [`serve`] accepts the connections, with a client timeout and a cap on how many are open
//! ([`listener`]).

pub mod connection_metrics;
pub mod listener;
pub(crate) mod request_body;
mod run_response;
mod webhook_callback;
pub use connection_metrics::ConnectionMetrics;
pub use listener::serve;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::db::{CancelOutcome, RunFilter, Status};
use crate::ids::TenantId;
use crate::tenants::UnavailableTenant;
use crate::workflow::Engine;
use crate::workflow::admission::Busy;
use crate::workflow::definition::{ActionKind, Trigger, TriggerKind, all_actions};
use crate::workflow::project::Project;
use crate::workflow::relative_path::RelativePath;
use crate::workflow::run_quota::RunQuotaExceeded;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a request waits for a workflow's `Response` before it gets `202`.
    pub response_timeout: Duration,
    /// How long runs in flight get to finish when the server stops.
    pub grace_period: Duration,
    /// Whether the server takes work: `/readyz` answers 503 once this is false (set it when
    /// shutting down). Starts true.
    pub ready: Arc<AtomicBool>,
    /// How long a client may take to send a request head (or, between requests, to start the
    /// next one before its keep-alive connection is closed), then its body, and how long the
    /// server's writes may stall on a client that does not read its answer.
    pub client_timeout: Duration,
    /// How many connections may be open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// What the listener counts; shared by every clone of the configuration.
    pub connections: Arc<ConnectionMetrics>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            response_timeout: Duration::from_secs(120),
            grace_period: Duration::from_secs(30),
            ready: Arc::new(AtomicBool::new(true)),
            client_timeout: Duration::from_secs(30),
            max_connections: 4096,
            connections: Arc::default(),
        }
    }
}

/// 32 random bytes kept as hex in a file under `dir` (a project, or a tenants directory),
/// made on first use, readable by the owner only.
fn stored_key(dir: &cap_std::fs::Dir, file: &str) -> anyhow::Result<Vec<u8>> {
    match dir.read_to_string(file) {
        Ok(text) => hex::decode(text.trim())
            .map_err(|e| anyhow::anyhow!("{file} is not hex ({e}); delete it to make a new key")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no random source for {file}: {e}"))?;
            dir.create_dir_all(".cordon")?;
            dir.write(file, hex::encode(key))?;
            #[cfg(unix)]
            {
                use cap_std::fs::PermissionsExt as _;
                dir.set_permissions(file, cap_std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(key.to_vec())
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {file}: {e}")),
    }
}

fn project_key(project: &Project, file: &str) -> anyhow::Result<Vec<u8>> {
    stored_key(&project.dir, file)
}

/// The key request-trigger signatures are made with.
#[derive(Clone)]
pub struct TriggerKey(Vec<u8>);

impl std::fmt::Debug for TriggerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TriggerKey(<redacted>)")
    }
}

impl TriggerKey {
    /// The project's key (`.cordon/trigger-key`); replacing it invalidates every callback URL.
    pub fn for_project(project: &Project) -> anyhow::Result<TriggerKey> {
        project_key(project, ".cordon/trigger-key").map(TriggerKey)
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(message.as_bytes());
        mac
    }

    /// What a trigger's signature covers. A callback's message has no `/` (run ids have none)
    /// and a trigger's always has one, so one signature never passes for the other.
    fn trigger_message(workflow: &str, trigger: &str) -> String {
        format!("{workflow}/{trigger}")
    }

    fn callback_message(run_id: &str, callback_id: &str) -> String {
        format!("callback\0{run_id}\0{callback_id}")
    }

    fn response_message(run_id: &str) -> String {
        format!("response\0{run_id}")
    }

    fn sign(&self, message: &str) -> String {
        hex::encode(self.mac(message).finalize().into_bytes())
    }

    fn verify_message(&self, message: &str, signature: &str) -> bool {
        match hex::decode(signature) {
            Ok(bytes) => self.mac(message).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    pub fn signature(&self, workflow: &str, trigger: &str) -> String {
        self.sign(&Self::trigger_message(workflow, trigger))
    }

    /// Constant-time check of a signature from a URL.
    pub fn verify(&self, workflow: &str, trigger: &str, signature: &str) -> bool {
        self.verify_message(&Self::trigger_message(workflow, trigger), signature)
    }

    /// The signature of an HttpWebhook action's callback URL.
    pub fn callback_signature(&self, run_id: &str, callback_id: &str) -> String {
        self.sign(&Self::callback_message(run_id, callback_id))
    }

    pub fn verify_callback(&self, run_id: &str, callback_id: &str, signature: &str) -> bool {
        self.verify_message(&Self::callback_message(run_id, callback_id), signature)
    }

    /// The signature of the URL a request's caller polls for its run's Response.
    pub fn response_signature(&self, run_id: &str) -> String {
        self.sign(&Self::response_message(run_id))
    }

    pub fn verify_response(&self, run_id: &str, signature: &str) -> bool {
        self.verify_message(&Self::response_message(run_id), signature)
    }
}

/// The bearer token of the management API and `/metrics`.
#[derive(Clone)]
pub struct ManagementKey(String);

impl std::fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagementKey(<redacted>)")
    }
}

/// Where the management key is kept, relative to the project.
pub const MANAGEMENT_KEY_FILE: &str = ".cordon/management-key";
/// Where the operator key is kept, relative to a tenants directory.
pub const OPERATOR_KEY_FILE: &str = ".cordon/operator-key";

impl ManagementKey {
    /// The project's key (`.cordon/management-key`).
    pub fn for_project(project: &Project) -> anyhow::Result<ManagementKey> {
        project_key(project, MANAGEMENT_KEY_FILE).map(|k| ManagementKey(hex::encode(k)))
    }

    /// The operator key of a tenants directory (`.cordon/operator-key`): it opens every
    /// tenant's management API.
    pub fn for_operator(tenants: &cap_std::fs::Dir) -> anyhow::Result<ManagementKey> {
        stored_key(tenants, OPERATOR_KEY_FILE).map(|k| ManagementKey(hex::encode(k)))
    }

    /// The token to send as `Authorization: Bearer TOKEN`.
    pub fn token(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with an `Authorization` header value.
    fn admits(&self, header: Option<&str>) -> bool {
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let (a, b) = (token.trim().as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The callback URL of a request trigger under `base` (such as `http://127.0.0.1:7071`). With a
/// `relativePath`, the URL shows its template (`…/invoke/orders/{id}?sig=…`); callers fill in
/// the parameters. The signature covers the workflow and trigger, not the path.
pub fn callback_url(
    base: &str,
    key: &TriggerKey,
    workflow: &str,
    trigger: &str,
    relative_path: Option<&RelativePath>,
) -> String {
    let path = relative_path.map(|p| format!("/{p}")).unwrap_or_default();
    format!(
        "{}/api/{workflow}/triggers/{trigger}/invoke{path}?sig={}",
        base.trim_end_matches('/'),
        key.signature(workflow, trigger)
    )
}

/// The callback URL of `trigger` of `workflow`, with its `relativePath` template if it has one
/// (an invalid one, which validation reports, is left out).
pub fn trigger_callback_url(base: &str, key: &TriggerKey, workflow: &str, trigger: &Trigger) -> String {
    let path = RelativePath::of(trigger).ok().flatten();
    callback_url(base, key, workflow, &trigger.name, path.as_ref())
}

/// The keys the server checks.
#[derive(Debug, Clone)]
pub struct Keys {
    pub trigger: TriggerKey,
    pub management: ManagementKey,
    /// In a multi-tenant server, the operator's key, which the management API also admits.
    pub operator: Option<ManagementKey>,
}

impl Keys {
    pub fn for_project(project: &Project) -> anyhow::Result<Keys> {
        Ok(Keys {
            trigger: TriggerKey::for_project(project)?,
            management: ManagementKey::for_project(project)?,
            operator: None,
        })
    }

    fn admit_management(&self, header: Option<&str>) -> bool {
        // Both are compared, whatever the first says, so timing does not tell which matched.
        let project = self.management.admits(header);
        let operator = self.operator.as_ref().is_some_and(|k| k.admits(header));
        project | operator
    }
}

#[derive(Debug)]
struct ServerState {
    engine: Engine,
    keys: Keys,
    /// The tenant these routes serve, in a multi-tenant server.
    tenant: Option<TenantId>,
    config: ServerConfig,
    /// Every request trigger, by workflow and trigger name.
    request_triggers: HashMap<(String, String), Result<RequestTrigger, String>>,
}

/// What a request trigger's callback URL checks, prepared once when the router is built so
/// that no request parses a path template or compiles a schema.
#[derive(Debug)]
struct RequestTrigger {
    /// `inputs.method`, or POST: "By default, the Request trigger expects a POST request"
    /// (Logic Apps, "Select expected request method").
    method: String,
    /// Whether `method` was written in the trigger (the refusal says how to change it if not).
    method_written: bool,
    relative_path: Option<RelativePath>,
    schema: Option<jsonschema::Validator>,
    /// Whether the caller's `Authorization` header is kept in the trigger outputs.
    include_authorization: bool,
    /// Whether the workflow has a `Response` action, so the caller waits for it.
    responds: bool,
    /// Whether a Response is asynchronous: the caller gets 202 and a Location at once.
    answers_later: bool,
}

impl RequestTrigger {
    /// The trigger's inputs, checked. Validation reports the same problems when the project
    /// loads, so the error only shows for an engine built without validation.
    fn prepare(trigger: &Trigger, actions: &[crate::workflow::definition::Action]) -> Result<Self, String> {
        let schema = match trigger
            .inputs
            .get("schema")
            .filter(|s| s.as_object().is_some_and(|o| !o.is_empty()))
        {
            Some(schema) => Some(
                jsonschema::validator_for(schema)
                    .map_err(|e| format!("the trigger's schema does not compile: {e}"))?,
            ),
            None => None,
        };
        let written = trigger.inputs.get("method").and_then(Value::as_str);
        Ok(RequestTrigger {
            method: written.unwrap_or("POST").to_owned(),
            method_written: written.is_some(),
            relative_path: RelativePath::of(trigger)?,
            schema,
            include_authorization: trigger.include_authorization_headers,
            responds: all_actions(actions)
                .iter()
                .any(|a| matches!(a.kind, ActionKind::Response { .. })),
            answers_later: all_actions(actions)
                .iter()
                .any(|a| matches!(a.kind, ActionKind::Response { asynchronous: true })),
        })
    }
}

/// Only the route HttpWebhook callbacks come to: what `cordon run` serves while it runs a
/// workflow with an HttpWebhook action (no trigger, no management API).
pub fn callbacks_router(engine: Engine, keys: Keys, config: ServerConfig) -> Router {
    let state = Arc::new(ServerState {
        engine,
        keys,
        tenant: None,
        config,
        request_triggers: HashMap::new(),
    });
    Router::new()
        .route("/api/callbacks/{run}/{callback}", post(webhook_callback::receive))
        .with_state(state)
}

/// The server's routes, built without a socket so tests and embedders can mount them.
pub fn router(engine: Engine, keys: Keys, config: ServerConfig) -> Router {
    routes(engine, keys, config, None)
}

/// A multi-tenant server: each tenant's routes under `/tenants/ID/`, each with its own engine,
/// history and keys (the operator key in `keys.operator` opens every tenant's management
/// API). A management request without the tenant's key (or the operator's) answers 404, as
/// if the tenant had no such route, and is audited with the tenant's name.
///
/// Every route of an `unavailable` tenant (one that did not open) answers 503; the reason
/// goes only to the operator key, since a trigger's caller is anyone with its URL.
///
/// `/metrics` at the root is the operator's (the operator key only): the process's
/// connections, which no tenant's `/metrics` shows, whether each tenant is up, and each
/// tenant's runs in flight.
pub fn tenants_router(
    tenants: Vec<(TenantId, Engine, Keys)>,
    unavailable: Vec<UnavailableTenant>,
    config: ServerConfig,
) -> Router {
    let operator = Arc::new(OperatorState {
        key: tenants.iter().find_map(|(_, _, keys)| keys.operator.clone()),
        tenants: tenants
            .iter()
            .map(|(id, engine, _)| (id.clone(), engine.clone()))
            .collect(),
        unavailable: unavailable.clone(),
        config: config.clone(),
    });
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(operator_metrics).with_state(operator.clone()))
        .route("/tenants", get(list_tenants).with_state(operator.clone()));
    for (tenant, engine, keys) in tenants {
        let path = format!("/tenants/{tenant}");
        app = app.nest(&path, routes(engine, keys, config.clone(), Some(tenant)));
    }
    for tenant in unavailable {
        let path = format!("/tenants/{}", tenant.id);
        let answer = any({
            let operator = operator.clone();
            move |headers: HeaderMap| std::future::ready(tenant_unavailable(&operator, &tenant, &headers))
        });
        app = app
            .route(&path, answer.clone())
            .route(&format!("{path}/{{*rest}}"), answer);
    }
    app
}

/// What the operator's `/metrics` of a tenants server reads.
#[derive(Debug)]
struct OperatorState {
    key: Option<ManagementKey>,
    tenants: Vec<(TenantId, Engine)>,
    unavailable: Vec<UnavailableTenant>,
    config: ServerConfig,
}

impl OperatorState {
    fn admits(&self, headers: &HeaderMap) -> bool {
        let header = headers.get("authorization").and_then(|v| v.to_str().ok());
        self.key.as_ref().is_some_and(|key| key.admits(header))
    }
}

/// 503 for any request to a tenant that did not open. No `Retry-After`: it stays down until
/// its files are fixed and the server restarts.
fn tenant_unavailable(operator: &OperatorState, tenant: &UnavailableTenant, headers: &HeaderMap) -> Response {
    let id = &tenant.id;
    let message = if operator.admits(headers) {
        format!(
            "tenant {id} did not open when the server started: {}; fix it (`cordon validate DIR \
             --tenants` shows every tenant's problems) and restart the server",
            tenant.reason
        )
    } else {
        format!(
            "tenant {id} is unavailable: it did not open when the server started; the operator's \
             log says why"
        )
    };
    problem(StatusCode::SERVICE_UNAVAILABLE, message)
}

/// 401 for an operator route called without the operator key; audited.
fn operator_key_missing(path: &str) -> Response {
    tracing::warn!(
        target: "cordon::audit",
        event = "management_denied",
        path,
        "operator route requested without the operator key"
    );
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Bearer")],
        Json(json!({"error": {"message": format!(
            "send Authorization: Bearer KEY with the operator key in the tenants directory's \
             {OPERATOR_KEY_FILE} (a tenant's own metrics are at /tenants/ID/metrics)"
        )}})),
    )
        .into_response()
}

/// `GET /tenants` (operator key): every tenant, whether it is up, its runs in flight, and
/// why one that did not open did not.
async fn list_tenants(State(state): State<Arc<OperatorState>>, headers: HeaderMap) -> Response {
    if !state.admits(&headers) {
        return operator_key_missing("/tenants");
    }
    let mut tenants: Vec<(&TenantId, Value)> = state
        .tenants
        .iter()
        .map(|(id, engine)| {
            (
                id,
                json!({"name": id.as_str(), "up": true, "runsInFlight": engine.in_flight()}),
            )
        })
        .collect();
    tenants.extend(state.unavailable.iter().map(|t| {
        (
            &t.id,
            json!({"name": t.id.as_str(), "up": false, "reason": t.reason}),
        )
    }));
    tenants.sort_by(|a, b| a.0.cmp(b.0));
    Json(json!({"tenants": tenants.into_iter().map(|(_, t)| t).collect::<Vec<_>>()})).into_response()
}

async fn operator_metrics(State(state): State<Arc<OperatorState>>, headers: HeaderMap) -> Response {
    if !state.admits(&headers) {
        return operator_key_missing("/metrics");
    }
    let mut up = String::from(
        "# HELP cordon_tenant_up Whether the tenant opened when the server started (0: its routes answer 503).\n\
         # TYPE cordon_tenant_up gauge\n",
    );
    let mut ids: Vec<(&TenantId, bool)> = state.tenants.iter().map(|(id, _)| (id, true)).collect();
    ids.extend(state.unavailable.iter().map(|t| (&t.id, false)));
    ids.sort();
    for (tenant, is_up) in ids {
        up.push_str(&format!(
            "cordon_tenant_up{{tenant=\"{tenant}\"}} {}\n",
            u8::from(is_up)
        ));
    }
    let mut exposition = up;
    exposition.push_str(
        "# HELP cordon_tenant_runs_in_flight Runs executing now in this process, by tenant.\n\
         # TYPE cordon_tenant_runs_in_flight gauge\n",
    );
    for (tenant, engine) in &state.tenants {
        exposition.push_str(&format!(
            "cordon_tenant_runs_in_flight{{tenant=\"{tenant}\"}} {}\n",
            engine.in_flight()
        ));
    }
    exposition.push_str("# EOF\n");
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.config.connections.appended_to(&exposition),
    )
        .into_response()
}

fn routes(engine: Engine, keys: Keys, config: ServerConfig, tenant: Option<TenantId>) -> Router {
    let request_triggers = engine
        .workflows()
        .flat_map(|w| {
            w.triggers
                .iter()
                .filter(|t| t.kind.is_called_over_http())
                .map(|t| {
                    (
                        (w.name.clone(), t.name.clone()),
                        RequestTrigger::prepare(t, &w.actions),
                    )
                })
        })
        .collect();
    let state = Arc::new(ServerState {
        engine,
        keys,
        tenant,
        config,
        request_triggers,
    });
    let managed = Router::new()
        .route("/management/workflows", get(list_workflows))
        .route("/management/workflows/{name}/enable", post(enable_workflow))
        .route("/management/workflows/{name}/disable", post(disable_workflow))
        .route(
            "/management/workflows/{name}/triggers/{trigger}/run",
            post(run_trigger),
        )
        .route("/management/runs", get(list_runs))
        .route("/management/runs/{id}", get(show_run))
        .route("/management/runs/{id}/resubmit", post(resubmit))
        .route("/management/runs/{id}/cancel", post(cancel))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_management_key,
        ));
    Router::new()
        .route("/api/{workflow}/triggers/{trigger}/invoke", any(invoke))
        .route("/api/callbacks/{run}/{callback}", post(webhook_callback::receive))
        .route("/api/runs/{run}/response", get(run_response::poll))
        .route("/api/{workflow}/triggers/{trigger}/invoke/{*path}", any(invoke))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(managed)
        .with_state(state)
}

async fn require_management_key(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if !state.keys.admit_management(header) {
        tracing::warn!(
            target: "cordon::audit",
            event = "management_denied",
            tenant = state.tenant.as_ref().map(|t| t.as_str()),
            path = request.uri().path(),
            "management request without a valid key"
        );
        if state.tenant.is_some() {
            // Another tenant's key (or none) learns nothing, not even that the route exists.
            return problem(StatusCode::NOT_FOUND, "not found");
        }
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer")],
            Json(json!({"error": {"message": format!("send Authorization: Bearer KEY with the key in the project's {MANAGEMENT_KEY_FILE}")}})),
        )
            .into_response();
    }
    next.run(request).await
}

async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    if !state.config.ready.load(Ordering::SeqCst) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match state.engine.db().list_runs(&RunFilter {
        limit: Some(1),
        ..RunFilter::default()
    }) {
        Ok(_) => "ready".into_response(),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the run history does not answer: {e}"),
        ),
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let metrics = state.engine.metrics();
    metrics.set_runs_in_flight(state.engine.in_flight());
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        // A tenant's metrics are its own; the server's connections are the operator's.
        match state.tenant {
            None => state.config.connections.appended_to(&metrics.render()),
            Some(_) => metrics.render(),
        },
    )
        .into_response()
}

async fn enable_workflow(State(state): State<Arc<ServerState>>, Path(name): Path<String>) -> Response {
    set_enabled(&state, &name, true)
}

async fn disable_workflow(State(state): State<Arc<ServerState>>, Path(name): Path<String>) -> Response {
    set_enabled(&state, &name, false)
}

fn set_enabled(state: &ServerState, name: &str, enabled: bool) -> Response {
    if !state.engine.workflows().any(|w| w.name == name) {
        return problem(StatusCode::NOT_FOUND, format!("no workflow {name:?}"));
    }
    match state.engine.set_enabled(name, enabled) {
        Ok(()) => {
            tracing::info!(workflow = name, enabled, "workflow state changed");
            Json(json!({"name": name, "enabled": enabled})).into_response()
        }
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}

/// Makes a scheduled trigger due now (`workflow::run_now`): 202 once it is, and the trigger's
/// loop fires it within a second.
async fn run_trigger(
    State(state): State<Arc<ServerState>>,
    Path((workflow, trigger)): Path<(String, String)>,
) -> Response {
    use crate::workflow::run_now::{RunNowError, run_now};
    match run_now(&state.engine, &workflow, &trigger) {
        Ok(due) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "workflow": workflow,
                "trigger": trigger,
                "dueAt": crate::workflow::scheduler::iso(due),
            })),
        )
            .into_response(),
        Err(e @ (RunNowError::NoSuchWorkflow(_) | RunNowError::NoSuchTrigger { .. })) => {
            problem(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ RunNowError::NotScheduled { .. }) => problem(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ RunNowError::Disabled(_)) => problem(StatusCode::CONFLICT, e.to_string()),
        Err(e @ (RunNowError::Busy(_) | RunNowError::NotYetScheduled(_) | RunNowError::Contended(_))) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(json!({"error": {"message": e.to_string()}})),
        )
            .into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}

async fn cancel(State(state): State<Arc<ServerState>>, Path(id): Path<String>) -> Response {
    match state.engine.cancel(&id) {
        Ok(CancelOutcome::Cancelled) => Json(json!({"runId": id, "status": "Cancelled"})).into_response(),
        Ok(CancelOutcome::AlreadyEnded(status)) => problem(
            StatusCode::CONFLICT,
            format!("run {id} already ended {status}; only unfinished runs can be cancelled"),
        ),
        Err(e) if is_no_such_run(&e) => problem(StatusCode::NOT_FOUND, format!("no run {id:?}")),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}

fn is_no_such_run(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::db::DbError>()
        .is_some_and(|d| matches!(d, crate::db::DbError::NoSuchRun(_)))
}

/// 429 for a tenant that started its quota of runs this minute; `Retry-After` says when
/// there is room again.
fn run_quota_exceeded(e: &RunQuotaExceeded) -> Response {
    let seconds = e.retry_after.as_secs() + u64::from(e.retry_after.subsec_nanos() > 0);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", seconds.max(1).to_string())],
        Json(json!({"error": {"code": "RunQuotaExceeded", "message": e.to_string()}})),
    )
        .into_response()
}

/// 429 for a workflow whose concurrency limit has no room.
fn busy(e: &Busy) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", "1")],
        Json(json!({"error": {"code": "WorkflowBusy", "message": e.to_string()}})),
    )
        .into_response()
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"message": message.into()}}))).into_response()
}

/// The largest body a trigger request may carry. The trigger's outputs, body included, are
/// written to the run history, so this bounds what one request can add to it.
const TRIGGER_BODY_LIMIT: usize = 2 << 20;

/// Both callback routes: `…/invoke` and `…/invoke/{*path}` for triggers with a
/// `relativePath`.
async fn invoke(
    State(state): State<Arc<ServerState>>,
    Path(mut segments): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let request = TriggerRequest {
        workflow: segments.remove("workflow").unwrap_or_default(),
        trigger: segments.remove("trigger").unwrap_or_default(),
        path: segments.remove("path"),
        query,
        method,
        headers,
        body,
    };
    invoke_trigger(state, request).await
}

/// A trigger request's body, read within `timeout` (a client trickling it a byte at a time
/// would otherwise hold the connection and its handler forever) and at most
/// [`TRIGGER_BODY_LIMIT`] long. The refusals are JSON, like every other error here.
async fn read_body(body: axum::body::Body, config: &ServerConfig) -> Result<Bytes, Response> {
    let timeout = config.client_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, TRIGGER_BODY_LIMIT)).await {
        Ok(Ok(body)) => Ok(body),
        Err(_elapsed) => Err({
            config.connections.clients_timed_out.inc();
            problem(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s (the server's --client-timeout); nothing was started",
                    timeout.as_secs_f64()
                ),
            )
        }),
        Ok(Err(error)) if is_length_limit(&error) => Err(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over {} MiB, the most a trigger request may carry (it is kept in the run history)",
                TRIGGER_BODY_LIMIT >> 20
            ),
        )),
        Ok(Err(error)) => Err(problem(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {error}"),
        )),
    }
}

/// A request's body read as a trigger's is ([`read_body`]) and shaped by its Content-Type
/// ([`request_body`]); a refusal is the answer to send.
async fn shaped_body(
    body: axum::body::Body,
    headers: &HeaderMap,
    config: &ServerConfig,
) -> Result<Value, Response> {
    let body = read_body(body, config).await?;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    request_body::trigger_body(content_type, body)
        .await
        .map_err(|e| problem(StatusCode::BAD_REQUEST, e.to_string()))
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A call to a request trigger's callback URL.
struct TriggerRequest {
    workflow: String,
    trigger: String,
    /// What follows `/invoke/`, percent-decoded.
    path: Option<String>,
    query: HashMap<String, String>,
    method: Method,
    headers: HeaderMap,
    /// Read only once the signature, the trigger and the method are right, so that no
    /// unsigned caller makes the server buffer a body.
    body: axum::body::Body,
}

async fn invoke_trigger(state: Arc<ServerState>, request: TriggerRequest) -> Response {
    let TriggerRequest {
        workflow,
        trigger,
        path,
        mut query,
        method,
        headers,
        body,
    } = request;
    // Check the signature before saying anything about the workflow, so an unsigned caller
    // cannot probe which workflows exist.
    let sig = query.remove("sig");
    if !sig
        .as_deref()
        .is_some_and(|sig| state.keys.trigger.verify(&workflow, &trigger, sig))
    {
        return problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong sig; use the URL `cordon workflows callback-url` prints",
        );
    }
    let prepared = match state.request_triggers.get(&(workflow.clone(), trigger.clone())) {
        Some(Ok(prepared)) => prepared,
        Some(Err(e)) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.clone()),
        None if state.engine.workflows().any(|w| w.name == workflow) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("workflow {workflow:?} has no request trigger {trigger:?}"),
            );
        }
        None => return problem(StatusCode::NOT_FOUND, format!("no workflow {workflow:?}")),
    };
    match state.engine.is_enabled(&workflow) {
        Ok(true) => {}
        Ok(false) => {
            return problem(
                StatusCode::CONFLICT,
                format!(
                    "workflow {workflow:?} is disabled; enable it with POST /management/workflows/{workflow}/enable"
                ),
            );
        }
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
    let relative_path_parameters = match (&prepared.relative_path, path.as_deref()) {
        (None, None) => Map::new(),
        (Some(template), Some(actual)) => match template.matches(actual) {
            Some(parameters) => parameters,
            None => {
                return problem(
                    StatusCode::NOT_FOUND,
                    format!("the path {actual:?} does not match this trigger's relativePath {template:?}"),
                );
            }
        },
        (Some(template), None) => {
            return problem(
                StatusCode::NOT_FOUND,
                format!(
                    "this trigger expects a path after /invoke/ of the form {:?}",
                    template.to_string()
                ),
            );
        }
        (None, Some(_)) => {
            return problem(
                StatusCode::NOT_FOUND,
                "this trigger has no relativePath; call its URL without a path after /invoke",
            );
        }
    };
    if !prepared.method.eq_ignore_ascii_case(method.as_str()) {
        let wanted = &prepared.method;
        let why = if prepared.method_written {
            String::new()
        } else {
            "; a Request trigger without inputs.method takes POST, as in Logic Apps (set it to take another)"
                .to_owned()
        };
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(axum::http::header::ALLOW, wanted.to_ascii_uppercase())],
            Json(json!({"error": {"message": format!("this trigger accepts {wanted} only{why}")}})),
        )
            .into_response();
    }
    let body = match shaped_body(body, &headers, &state.config).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    if let Some(validator) = &prepared.schema {
        let reasons = crate::manifest::schema_errors(validator, &body, 10);
        if !reasons.is_empty() {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": "the body does not fit the trigger's schema", "reasons": reasons}})),
            )
                .into_response();
        }
    }
    // As in Logic Apps, `queries` and `relativePathParameters` appear only when there are any.
    let mut recorded_headers = header_values(&headers);
    if prepared.include_authorization
        && let Some(authorization) = headers.get("authorization")
    {
        // The workflow asked for it (to read a token's claims); it is in the run history then.
        recorded_headers.insert(
            "authorization".to_owned(),
            Value::String(String::from_utf8_lossy(authorization.as_bytes()).into_owned()),
        );
    }
    let mut trigger_outputs = json!({"headers": recorded_headers, "body": body});
    if !query.is_empty() {
        trigger_outputs["queries"] = json!(query);
    }
    if path.is_some() {
        trigger_outputs["relativePathParameters"] = Value::Object(relative_path_parameters);
    }
    let run = match state
        .engine
        .accept_from(&workflow, Some(&trigger), trigger_outputs)
    {
        Ok(run) => run,
        Err(e) if e.downcast_ref::<Busy>().is_some() => {
            return busy(e.downcast_ref::<Busy>().unwrap_or_else(|| unreachable!()));
        }
        Err(e) if e.downcast_ref::<RunQuotaExceeded>().is_some() => {
            return run_quota_exceeded(e.downcast_ref().unwrap_or_else(|| unreachable!()));
        }
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot record the run: {e:#}"),
            );
        }
    };
    let run_id = run.id.clone();
    let responds = prepared.responds;
    let engine = state.engine.clone();
    let execution = tokio::spawn(async move { engine.execute(run).await });
    if !responds {
        return accepted(&run_id);
    }
    if prepared.answers_later {
        return run_response::still_running(&state, &run_id);
    }
    match tokio::time::timeout(state.config.response_timeout, execution).await {
        Ok(Ok(Ok(finished))) => match finished.response {
            Some(response) => respond(&response, &run_id),
            None => {
                // The run's own error says which action failed (the Response action itself,
                // when its inputs were refused); `cordon runs show` has the details.
                let why = finished
                    .error_message()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                run_problem(
                    StatusCode::BAD_GATEWAY,
                    &run_id,
                    format!(
                        "run {run_id} ended {} before a Response action answered{why}",
                        finished.status
                    ),
                )
            }
        },
        Ok(Ok(Err(e))) => run_problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            &run_id,
            format!("run {run_id}: {e:#}"),
        ),
        Ok(Err(e)) => run_problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            &run_id,
            format!("run {run_id} stopped: {e}"),
        ),
        // The run goes on; the caller can follow it by id, or poll for its Response.
        Err(_) => run_response::still_running(&state, &run_id),
    }
}

/// A request's headers as a run sees them (trigger outputs, an HttpWebhook's callback), without
/// the caller's credentials.
fn header_values(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str() != "authorization" && name.as_str() != "cookie")
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            )
        })
        .collect()
}

fn run_id_header(run_id: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static("x-cordon-run-id"),
        HeaderValue::from_str(run_id).unwrap_or_else(|_| HeaderValue::from_static("invalid")),
    )
}

/// An error about a run that was recorded: the caller gets its id the way a `202` gives it,
/// in `x-cordon-run-id` and as `runId`, to look the run up.
fn run_problem(status: StatusCode, run_id: &str, message: String) -> Response {
    (
        status,
        [run_id_header(run_id)],
        Json(json!({"error": {"message": message}, "runId": run_id})),
    )
        .into_response()
}

fn accepted(run_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [run_id_header(run_id)],
        Json(json!({"runId": run_id})),
    )
        .into_response()
}

/// The workflow's Response action as the HTTP answer.
fn respond(response: &Value, run_id: &str) -> Response {
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|c| StatusCode::from_u16(c as u16).ok())
        .unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    let (name, value) = run_id_header(run_id);
    headers.insert(name, value);
    if let Some(map) = response.get("headers").and_then(Value::as_object) {
        // The Response action refused any header that does not convert or that the server
        // sets itself (`builtin_inputs::response_headers`), so none is lost here.
        for (name, value) in map {
            let text = crate::workflow::builtin_inputs::header_text(value);
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(&text))
            {
                headers.insert(name, value);
            }
        }
    }
    match response.get("body") {
        Some(Value::String(text)) => (status, headers, text.clone()).into_response(),
        Some(Value::Null) | None => (status, headers).into_response(),
        Some(body) => match content_of(body) {
            // Content (an XML value, binary) goes out as its bytes under its own type, as in
            // Logic Apps, unless the action set a Content-Type itself.
            Some((content_type, bytes)) => {
                headers
                    .entry(axum::http::header::CONTENT_TYPE)
                    .or_insert(content_type);
                (status, headers, bytes).into_response()
            }
            None => (status, headers, Json(body.clone())).into_response(),
        },
    }
}

/// The type and bytes of a content value, `{"$content-type": ..., "$content": base64}` (what
/// `xml()`, `binary()` and `base64ToBinary()` make); `None` for any other value, which is
/// answered as JSON.
fn content_of(body: &Value) -> Option<(HeaderValue, Vec<u8>)> {
    if body.as_object()?.len() != 2 {
        return None;
    }
    let (content_type, bytes) = cordon_core::content::decode(body)?;
    Some((HeaderValue::from_str(content_type).ok()?, bytes))
}

async fn list_workflows(State(state): State<Arc<ServerState>>) -> Json<Value> {
    let workflows: Vec<Value> = state
        .engine
        .workflows()
        .map(|w| {
            let triggers: Vec<Value> = w
                .triggers
                .iter()
                .map(|t| {
                    let kind = match &t.kind {
                        TriggerKind::Request => "Request",
                        TriggerKind::Recurrence => "Recurrence",
                        TriggerKind::ServiceProvider { .. } => "ServiceProvider",
                        TriggerKind::HttpWebhook => "HttpWebhook",
                        TriggerKind::Http => "Http",
                        TriggerKind::SlidingWindow { .. } => "SlidingWindow",
                    };
                    let mut trigger = json!({"name": t.name, "type": kind});
                    // What the scheduler or the webhook keeper last recorded: when it fires
                    // next, and failures an operator should see without reading logs.
                    if let Ok(Some(recorded)) = state.engine.db().trigger_state(&w.name, &t.name) {
                        trigger["failures"] = json!(recorded.failures);
                        trigger["lastError"] = json!(recorded.last_error);
                        if let Some(at) = recorded.next_at.and_then(chrono::DateTime::from_timestamp_millis) {
                            trigger["nextRun"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                        }
                        if t.kind == TriggerKind::HttpWebhook {
                            trigger["subscribed"] = json!(crate::workflow::webhook_triggers::is_subscribed(&recorded));
                        }
                    }
                    trigger
                })
                .collect();
            let enabled = state.engine.is_enabled(&w.name).unwrap_or(true);
            json!({"name": w.name, "enabled": enabled, "stateful": w.stateful, "triggers": triggers, "actions": all_actions(&w.actions).len()})
        })
        .collect();
    Json(json!({"workflows": workflows}))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

/// Runs newest first, a page at a time: a full page carries `nextLink`, the same query for
/// the runs after its last one (`before=RUN_ID`), as Logic Apps' run listing does.
async fn list_runs(
    State(state): State<Arc<ServerState>>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Response {
    // axum's own rejection is plain text; the management API answers errors in JSON.
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}; the query takes workflow=NAME, status=STATUS, limit=N (at most 1000) and before=RUN_ID",
                    rejection.body_text()
                ),
            );
        }
    };
    let status = match query.status.as_deref().map(|s| (s, Status::parse(s))) {
        Some((text, None)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "status {text:?} is not one of Waiting, Running, Succeeded, Failed, Cancelled, TimedOut"
                ),
            );
        }
        Some((_, status)) => status,
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let filter = RunFilter {
        workflow: query.workflow,
        status,
        limit: Some(limit),
        before: query.before,
    };
    let runs = match state.engine.db().list_runs(&filter) {
        Ok(runs) => runs,
        Err(crate::db::DbError::NoSuchRun(before)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "before={before:?} is not a run of this history; pass the last run id of the previous page (its nextLink does)"
                ),
            );
        }
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut page = json!({"runs": runs});
    if runs.len() == limit
        && let Some(last) = runs.last()
    {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        if let Some(workflow) = &filter.workflow {
            next.append_pair("workflow", workflow);
        }
        if let Some(status) = filter.status {
            next.append_pair("status", status.as_str());
        }
        next.append_pair("limit", &limit.to_string());
        next.append_pair("before", &last.id);
        let prefix = state
            .tenant
            .as_ref()
            .map(|t| format!("/tenants/{t}"))
            .unwrap_or_default();
        page["nextLink"] = json!(format!("{prefix}/management/runs?{}", next.finish()));
    }
    Json(page).into_response()
}

async fn show_run(State(state): State<Arc<ServerState>>, Path(id): Path<String>) -> Response {
    let db = state.engine.db();
    let run = match db.run(&id) {
        Ok(run) => run,
        Err(crate::db::DbError::NoSuchRun(_)) => {
            return problem(StatusCode::NOT_FOUND, format!("no run {id:?}"));
        }
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let actions = match db.actions(&id, false) {
        Ok(actions) => actions,
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut listed = Vec::with_capacity(actions.len());
    for action in &actions {
        let mut value = serde_json::to_value(action.for_display()).unwrap_or(Value::Null);
        value["attempt_history"] = db
            .attempts(&id, &action.path)
            .ok()
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or(Value::Null);
        listed.push(value);
    }
    Json(json!({"run": run, "actions": listed})).into_response()
}

async fn resubmit(State(state): State<Arc<ServerState>>, Path(id): Path<String>) -> Response {
    match state.engine.accept_resubmission(&id) {
        Ok(run) => {
            let run_id = run.id.clone();
            let engine = state.engine.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.execute(run).await {
                    tracing::error!(error = %e, "resubmitted run stopped");
                }
            });
            accepted(&run_id)
        }
        Err(e) if is_no_such_run(&e) => problem(StatusCode::NOT_FOUND, format!("no run {id:?}")),
        // The run exists; what it would run again does not.
        Err(e) if e.downcast_ref::<crate::workflow::NoSuchWorkflow>().is_some() => {
            problem(StatusCode::CONFLICT, format!("{e:#}"))
        }
        Err(e) if e.downcast_ref::<Busy>().is_some() => {
            busy(e.downcast_ref::<Busy>().unwrap_or_else(|| unreachable!()))
        }
        Err(e) if e.downcast_ref::<RunQuotaExceeded>().is_some() => {
            run_quota_exceeded(e.downcast_ref().unwrap_or_else(|| unreachable!()))
        }
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}
