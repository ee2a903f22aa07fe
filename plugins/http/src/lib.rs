//! `http`: one generic HTTP request action in the manner of the Logic Apps HTTP action.
//!
//! It requests every host (`*://*:*`): what it may actually reach is exactly what the
//! operator grants the connection. Credentials from the connection's secrets (Bearer, ApiKey,
//! and Basic's password when the input gives only the username) go in by placeholder, so the
//! connector never holds them; Logic Apps' Basic with a password and Raw carry theirs in the
//! input, as an inline header does. Requests other than GET, HEAD and
//! OPTIONS carry an `Idempotency-Key` header with the call's idempotency key unless the input
//! sets one.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cordon_sdk::http::Request;
use cordon_sdk::{Connector, Context, Error, Secret, secrets};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn connector() -> Connector {
    Connector::new("http", env!("CARGO_PKG_VERSION"))
        .display_name("HTTP")
        .description("Send an HTTP request to any host the connection's grant allows")
        .host("*://*:*")
        .secret(Secret::new("token").description("Bearer token for `authentication: {type: Bearer}`"))
        .secret(Secret::new("api_key").description("API key for `authentication: {type: ApiKey}`"))
        .secret(Secret::new("password").description(
            "Password for `authentication: {type: Basic}` when the input gives only the username",
        ))
        .action(
            "request",
            "Send one HTTP request and return its status, headers and body",
            request,
        )
}

cordon_sdk::export_connector!(connector);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpInput {
    /// GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS.
    method: String,
    /// An absolute http or https URL.
    uri: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Query parameters appended to the URI.
    #[serde(default)]
    queries: BTreeMap<String, String>,
    /// A string is sent as it is; content (`{"$content-type": ..., "$content": base64}`, what
    /// `xml()`, `binary()` and a binary trigger body are) as its bytes under its type; anything
    /// else as JSON.
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    authentication: Option<Authentication>,
    /// Per-request timeout in milliseconds; the host's own cap still applies.
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Fail the action on a 4xx or 5xx status (default true, as in Logic Apps).
    #[serde(default = "yes")]
    fail_on_error_status: bool,
}

fn yes() -> bool {
    true
}

/// How to authenticate. Bearer and ApiKey take their value from a secret of the connection
/// by placeholder, so the connector never holds it, and so does Basic without a `password`;
/// Basic with a `password` and Raw are Logic Apps' forms, whose values are written in the
/// inputs (as an inline header's would be; the host keeps them out of the run history).
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "type", deny_unknown_fields)]
enum Authentication {
    /// `Authorization: Bearer <token>` from the `token` secret.
    Bearer,
    /// `<header>: <api_key>` from the `api_key` secret.
    ApiKey { header: String },
    /// `Authorization: Basic base64(username:password)`; without `password`, the password is
    /// the `password` secret, filled in and encoded by the host.
    Basic {
        username: String,
        #[serde(default)]
        password: Option<String>,
    },
    /// `Authorization: <value>`, as given.
    Raw { value: String },
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct HttpOutput {
    status_code: u16,
    headers: BTreeMap<String, String>,
    /// Parsed JSON when the response says it is JSON and parses; a string for text (a
    /// `text/*` type, or none, and UTF-8); otherwise content, `{"$content-type": ...,
    /// "$content": base64}` (XML, which `xml()` and `xpath()` read, and binary, kept byte for
    /// byte).
    body: Value,
}

fn request(context: &Context, input: HttpInput) -> Result<HttpOutput, Error> {
    let method = input.method.to_ascii_uppercase();
    if !matches!(
        method.as_str(),
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
    ) {
        return Err(Error::invalid_input(format!(
            "method {:?} is not supported; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
            input.method
        )));
    }
    let mut url = url::Url::parse(&input.uri)
        .map_err(|e| Error::invalid_input(format!("uri {:?} is not a valid URL: {e}", input.uri)))?;
    if !input.queries.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &input.queries {
            pairs.append_pair(name, value);
        }
    }
    let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
    let mut request = Request::new(method, url.as_str());
    let mut has_content_type = false;
    let mut has_idempotency_key = false;
    for (name, value) in &input.headers {
        has_content_type |= name.eq_ignore_ascii_case("content-type");
        has_idempotency_key |= name.eq_ignore_ascii_case("idempotency-key");
        request = request.header(name, value);
    }
    // Every attempt of one workflow action carries the same key, so a service that honours
    // `Idempotency-Key` (the IETF draft; Stripe and others) performs a retried create once.
    if unsafe_method && !has_idempotency_key && !context.idempotency_key().is_empty() {
        request = request.header("idempotency-key", context.idempotency_key());
    }
    match &input.authentication {
        None => {}
        Some(Authentication::Bearer) => {
            request = request.header(
                "authorization",
                format!("Bearer {}", secrets::placeholder("token")?),
            );
        }
        Some(Authentication::ApiKey { header }) => {
            request = request.header(header, secrets::placeholder("api_key")?);
        }
        Some(Authentication::Basic {
            username,
            password: Some(password),
        }) => {
            let credentials = BASE64.encode(format!("{username}:{password}"));
            request = request.header("authorization", format!("Basic {credentials}"));
        }
        Some(Authentication::Basic {
            username,
            password: None,
        }) => {
            request = request.header("authorization", secrets::basic_auth(username, "password")?);
        }
        Some(Authentication::Raw { value }) => {
            request = request.header("authorization", value);
        }
    }
    match input.body {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => request = request.body(text),
        Some(body) if let Some((content_type, bytes)) = content_of(&body) => {
            if !has_content_type {
                request = request.header("content-type", content_type);
            }
            request = request.body(bytes);
        }
        Some(json) => {
            if !has_content_type {
                request = request.header("content-type", "application/json");
            }
            request = request.body(serde_json::to_vec(&json)?);
        }
    }
    if let Some(ms) = input.timeout_ms {
        request = request.timeout(std::time::Duration::from_millis(ms));
    }
    let response = request.send()?;
    let response = if input.fail_on_error_status {
        response.error_for_status()?
    } else {
        response
    };
    let body = body_of(response.header("content-type"), &response.body);
    let mut headers = BTreeMap::new();
    for (name, value) in &response.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    Ok(HttpOutput {
        status_code: response.status,
        headers,
        body,
    })
}

/// A response body as the workflow sees it, by its `Content-Type`, as Logic Apps' HTTP
/// action gives it.
fn body_of(content_type: Option<&str>, body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    let essence = content_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let text = std::str::from_utf8(body).ok();
    if essence.contains("json")
        && let Ok(value) = serde_json::from_slice(body)
    {
        return value;
    }
    match text {
        Some(text) if essence.is_empty() || essence.starts_with("text/") || essence.contains("json") => {
            Value::String(text.to_owned())
        }
        _ => serde_json::json!({
            "$content-type": content_type.unwrap_or("application/octet-stream"),
            "$content": BASE64.encode(body),
        }),
    }
}

/// The type and bytes of a content value: exactly `$content-type` and `$content` (base64).
fn content_of(body: &Value) -> Option<(String, Vec<u8>)> {
    let object = body.as_object()?;
    if object.len() != 2 {
        return None;
    }
    let content_type = object.get("$content-type")?.as_str()?.to_owned();
    let bytes = BASE64.decode(object.get("$content")?.as_str()?).ok()?;
    Some((content_type, bytes))
}
