//! Outbound HTTP for connectors: the grant is checked before the request, every resolved
//! address is checked again after DNS, and the client connects only to addresses that passed.
//!
//! How "connect only to checked addresses" holds: the reqwest client of a connection uses a
//! [`GuardedResolver`] that resolves the name itself and hands hyper only the addresses the
//! connection's grant allows. Each connection has its own client, so a pooled connection is
//! only ever reused by the grant that checked it. Literal IP hosts skip DNS and are checked
//! before sending.
//!
//! Also fixed here: redirects are never followed, proxy environment variables are never read,
//! `Host`, hop-by-hop headers and the methods CONNECT and TRACE are refused, and request and
//! response bodies are capped.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::bindings::http::{HttpError, Request, Response};
use crate::grant::{Denial, DenialKind, EffectiveGrant};
use crate::host_pattern::{Destination, DestinationHost};
use crate::ids::SecretName;
use crate::limits::HttpLimits;
use crate::secrets::{HeaderPart, Redactor, SecretValue, has_placeholders, header_parts};

/// Resolves host names. The system resolver is the default; tests and operators who pin
/// names use [`StaticLookup`].
pub trait NameLookup: Send + Sync + fmt::Debug {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The operating system's resolver, through tokio.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed table of names, for tests (DNS rebinding, names that resolve to loopback).
#[derive(Debug, Default, Clone)]
pub struct StaticLookup {
    names: BTreeMap<String, Vec<IpAddr>>,
}

impl StaticLookup {
    pub fn with(mut self, name: &str, addrs: &[IpAddr]) -> Self {
        self.names.insert(name.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl NameLookup for StaticLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        let found = self.names.get(&host.to_ascii_lowercase()).cloned();
        Box::pin(async move {
            found.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "name not in the static table")
            })
        })
    }
}

/// Every address a name resolved to was refused by the grant. Travels through reqwest's
/// error chain back to [`EgressClient::send`], which turns it into a [`Denial`].
#[derive(Debug)]
struct AddressRefused {
    ip: IpAddr,
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resolved address {} is not allowed by the grant", self.ip)
    }
}

impl std::error::Error for AddressRefused {}

/// Resolves, then keeps only the addresses the grant allows.
struct GuardedResolver {
    grant: Arc<EffectiveGrant>,
    lookup: Arc<dyn NameLookup>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let grant = self.grant.clone();
        let lookup = self.lookup.clone();
        // The name the grant was checked against (`Destination::from_url`): lower case, one
        // trailing dot dropped. Resolving exactly that name keeps "checked" and "resolved"
        // the same host however the URL spelled it.
        let name = name.as_str().to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
        Box::pin(async move {
            let addrs = lookup.lookup(&name).await?;
            // Scheme and port do not matter for the address check; the pre-check covered them.
            let destination = Destination {
                scheme: crate::host_pattern::Scheme::Https,
                host: DestinationHost::Domain(name.clone()),
                port: 443,
            };
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|ip| match grant.check_address(&destination, *ip) {
                    Ok(()) => true,
                    Err(_) => {
                        refused.get_or_insert(*ip);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(ip)) => {
                    Err(Box::new(AddressRefused { ip }) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The HTTP client of one connection.
pub struct EgressClient {
    client: reqwest::Client,
    grant: Arc<EffectiveGrant>,
    limits: HttpLimits,
}

impl fmt::Debug for EgressClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressClient")
            .field("connection", self.grant.connection())
            .finish()
    }
}

/// Headers a connector may not set: they would let it talk to another host than the one
/// checked, smuggle a second request, or control the connection itself.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// What a request needs from the invocation around it.
pub(crate) struct RequestScope<'a> {
    pub secrets: &'a mut (dyn FnMut(&SecretName) -> Result<Arc<SecretValue>, HttpError> + Send),
    pub redactor: &'a Redactor,
    pub deadline: Instant,
}

/// The outcome of [`EgressClient::send`]: a denial is reported separately so the caller can
/// audit it.
pub(crate) enum SendOutcome {
    Response(Response),
    Denied(Denial),
    Failed(HttpError),
}

/// The TLS settings every connection's client starts from: the platform's root certificates
/// (read once per process) and ALPN for HTTP/2 and HTTP/1.1. Left to itself, reqwest reads and
/// parses the system's roots for every client it builds: about 100 KiB and a file walk per
/// connection, which made 10,000 connections cost 1 GiB. The clone shares the verifier and
/// its roots; each connection still has its own client, resolver and connection pool.
fn shared_tls_config() -> anyhow::Result<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Result<rustls::ClientConfig, String>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        // Installing the process-wide rustls provider is idempotent; an error only means
        // another provider was installed first, which is then used.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| format!("cannot load the platform's root certificates: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("no TLS protocol version is available: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    });
    config.clone().map_err(|reason| anyhow::anyhow!(reason))
}

impl EgressClient {
    pub fn new(
        grant: Arc<EffectiveGrant>,
        limits: HttpLimits,
        lookup: Arc<dyn NameLookup>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(shared_tls_config()?)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .dns_resolver(Arc::new(GuardedResolver {
                grant: grant.clone(),
                lookup,
            }))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(EgressClient {
            client,
            grant,
            limits,
        })
    }

    pub fn grant(&self) -> &EffectiveGrant {
        &self.grant
    }

    pub(crate) async fn send(&self, request: Request, scope: RequestScope<'_>) -> SendOutcome {
        let invalid = |m: String| SendOutcome::Failed(HttpError::InvalidRequest(m));
        let url = match url::Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => {
                return invalid(format!(
                    "{:?} is not a valid URL: {e}",
                    scope.redactor.redact(&request.url)
                ));
            }
        };
        let destination = match Destination::from_url(&url) {
            Ok(d) => d,
            Err(e) => return invalid(e.to_string()),
        };
        let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
            Ok(m) if m == reqwest::Method::CONNECT || m == reqwest::Method::TRACE => {
                return invalid(format!("method {} is not allowed", m.as_str()));
            }
            Ok(m) => m,
            Err(_) => return invalid(format!("{:?} is not an HTTP method", request.method)),
        };
        if let Err(denial) = self.grant.check_destination(&destination) {
            return SendOutcome::Denied(denial);
        }
        if let DestinationHost::Ip(ip) = destination.host
            && let Err(denial) = self.grant.check_address(&destination, ip)
        {
            return SendOutcome::Denied(denial);
        }
        if let Some(body) = &request.body
            && body.len() > self.limits.request_body_bytes
        {
            return invalid(format!(
                "the body has {} bytes; the cap is {}",
                body.len(),
                self.limits.request_body_bytes
            ));
        }

        let mut headers = reqwest::header::HeaderMap::new();
        let mut filled_secrets = false;
        for (name, value) in &request.headers {
            let lower = name.to_ascii_lowercase();
            if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
                return invalid(format!(
                    "header {name:?} may not be set by a connector; the host manages it"
                ));
            }
            let Ok(header_name) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) else {
                return invalid(format!("{name:?} is not a valid header name"));
            };
            let (value, filled) =
                match self.fill_placeholders(value, &destination, &mut *scope.secrets, scope.redactor) {
                    Ok(filled) => filled,
                    Err(outcome) => return outcome,
                };
            filled_secrets |= filled;
            let Ok(mut header_value) = reqwest::header::HeaderValue::from_str(&value) else {
                return invalid(format!(
                    "the value of header {name:?} has characters a header cannot carry (control characters or newlines)"
                ));
            };
            header_value.set_sensitive(filled);
            headers.append(header_name, header_value);
        }

        let now = Instant::now();
        if now >= scope.deadline {
            return SendOutcome::Failed(HttpError::Timeout);
        }
        let mut timeout = self.limits.timeout.min(scope.deadline - now);
        if let Some(ms) = request.timeout_ms {
            timeout = timeout.min(Duration::from_millis(u64::from(ms)));
        }

        // The whole exchange (send and body) runs under one `tokio::time::timeout` below;
        // reqwest's own per-request timeout would arm a second timer for the same bound.
        let mut builder = self.client.request(method, url).headers(headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let exchange = async {
            let mut response = builder.send().await?;
            let status = response.status().as_u16();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    let value = match v.to_str() {
                        Ok(text) => text.to_owned(),
                        // Header values may carry bytes beyond visible ASCII (obs-text).
                        Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    };
                    (n.as_str().to_owned(), value)
                })
                .collect();
            // Sized from Content-Length up front (never beyond the cap), so a large body is
            // not copied again each time the buffer grows.
            let announced = response.content_length().unwrap_or(0) as usize;
            let mut body = Vec::with_capacity(announced.min(self.limits.response_body_bytes));
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > self.limits.response_body_bytes {
                    return Ok(Err(HttpError::ResponseTooLarge(
                        self.limits.response_body_bytes as u64,
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Ok(Response {
                status,
                headers,
                body,
            }))
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return SendOutcome::Failed(HttpError::Timeout),
            Ok(result) => result,
        };
        match result {
            Ok(Ok(mut response)) => {
                // A service that echoes the request (many do, for debugging) would hand the
                // connector the secret it was never meant to see.
                if filled_secrets || !scope.redactor.is_empty() {
                    response.body = scope.redactor.redact_bytes(std::mem::take(&mut response.body));
                    for (_, v) in response.headers.iter_mut() {
                        *v = String::from_utf8_lossy(&scope.redactor.redact_bytes(v.clone().into_bytes()))
                            .into_owned();
                    }
                }
                SendOutcome::Response(response)
            }
            Ok(Err(error)) => SendOutcome::Failed(error),
            Err(error) => self.classify(error, &destination, scope.redactor),
        }
    }

    /// The header value with its secrets filled in and its `{{base64:…}}` blocks encoded, and
    /// whether it carries a secret (so the header is marked sensitive).
    fn fill_placeholders(
        &self,
        value: &str,
        destination: &Destination,
        secrets: &mut (dyn FnMut(&SecretName) -> Result<Arc<SecretValue>, HttpError> + Send),
        redactor: &Redactor,
    ) -> Result<(String, bool), SendOutcome> {
        // Most values have no `{{` at all: no parse, no allocation beyond the copy.
        if !value.contains("{{") {
            return Ok((value.to_owned(), false));
        }
        let parts = header_parts(value);
        if !has_placeholders(&parts) {
            return Ok((value.to_owned(), false));
        }
        let mut out = String::with_capacity(value.len());
        let filled = self.fill_parts(&parts, destination, secrets, redactor, &mut out)?;
        Ok((out, filled.is_some()))
    }

    /// Writes `parts` into `out`, and returns the first secret filled in, if any. Each secret
    /// is checked against the destination first. An encoded block with a secret in it is
    /// remembered by the redactor as sent, so a service that echoes the header back does not
    /// hand the credentials to the connector.
    fn fill_parts(
        &self,
        parts: &[HeaderPart<'_>],
        destination: &Destination,
        secrets: &mut (dyn FnMut(&SecretName) -> Result<Arc<SecretValue>, HttpError> + Send),
        redactor: &Redactor,
        out: &mut String,
    ) -> Result<Option<SecretName>, SendOutcome> {
        let mut first_secret = None;
        for part in parts {
            match part {
                HeaderPart::Text(text) => out.push_str(text),
                HeaderPart::Secret(name) => {
                    let name = SecretName::new((*name).to_owned()).map_err(|e| {
                        SendOutcome::Failed(HttpError::InvalidRequest(format!("placeholder: {e}")))
                    })?;
                    self.grant
                        .check_secret_destination(&name, destination)
                        .map_err(SendOutcome::Denied)?;
                    out.push_str(secrets(&name).map_err(SendOutcome::Failed)?.expose());
                    first_secret.get_or_insert(name);
                }
                HeaderPart::Base64(inner) => {
                    let mut plain = zeroize::Zeroizing::new(String::new());
                    let secret = self.fill_parts(inner, destination, secrets, redactor, &mut plain)?;
                    let encoded = BASE64.encode(plain.as_bytes());
                    out.push_str(&encoded);
                    if let Some(name) = secret {
                        redactor.remember(&name, Arc::new(SecretValue::new(encoded)));
                        first_secret.get_or_insert(name);
                    }
                }
            }
        }
        Ok(first_secret)
    }

    fn classify(&self, error: reqwest::Error, destination: &Destination, redactor: &Redactor) -> SendOutcome {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<AddressRefused>() {
                let denial = self
                    .grant
                    .check_address(destination, refused.ip)
                    .err()
                    .unwrap_or_else(|| Denial {
                        kind: DenialKind::Address,
                        asked: destination.to_string(),
                        missing: refused.to_string(),
                    });
                return SendOutcome::Denied(denial);
            }
            source = e.source();
        }
        if error.is_timeout() {
            return SendOutcome::Failed(HttpError::Timeout);
        }
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            message.push_str(": ");
            message.push_str(&e.to_string());
            source = e.source();
        }
        SendOutcome::Failed(HttpError::ConnectionFailed(redactor.redact(&message)))
    }
}
