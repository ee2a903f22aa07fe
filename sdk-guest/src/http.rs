//! Outbound HTTP through the host. The host checks the grant, resolves and checks addresses,
//! fills in secret placeholders and never follows redirects.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::cordon::connector::http::{self as wit, HttpError};

/// A request under construction.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

/// A response. Redirects come back as they are.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The grant does not allow the request; the message names the missing grant.
    Denied(String),
    InvalidRequest(String),
    Timeout,
    ConnectionFailed(String),
    ResponseTooLarge(u64),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Denied(m) => write!(f, "denied by the host: {m}"),
            SendError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            SendError::Timeout => write!(f, "timed out"),
            SendError::ConnectionFailed(m) => write!(f, "connection failed: {m}"),
            SendError::ResponseTooLarge(cap) => write!(f, "response larger than {cap} bytes"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<SendError> for Error {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Timeout | SendError::ConnectionFailed(_) => Error::Transient(error.to_string()),
            _ => Error::Permanent(error.to_string()),
        }
    }
}

impl Request {
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Request::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Request::new("POST", url)
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Serializes `value` as the body and sets `Content-Type: application/json`.
    pub fn json<T: Serialize>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn send(self) -> Result<Response, SendError> {
        let request = wit::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self
                .timeout
                .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
        };
        match wit::send(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(HttpError::Denied(m)) => Err(SendError::Denied(m)),
            Err(HttpError::InvalidRequest(m)) => Err(SendError::InvalidRequest(m)),
            Err(HttpError::Timeout) => Err(SendError::Timeout),
            Err(HttpError::ConnectionFailed(m)) => Err(SendError::ConnectionFailed(m)),
            Err(HttpError::ResponseTooLarge(cap)) => Err(SendError::ResponseTooLarge(cap)),
        }
    }
}

impl Response {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::permanent(format!("response body is not the expected JSON: {e}")))
    }

    /// `Ok(self)` for 1xx to 3xx; otherwise the error kind the status means: 401 and 403
    /// unauthorized, 404 not found, 429 rate limited (with `Retry-After`), 408 and 5xx
    /// transient, other 4xx permanent.
    pub fn error_for_status(self) -> Result<Response, Error> {
        let status = self.status;
        if status < 400 {
            return Ok(self);
        }
        let mut detail = self.text();
        if detail.len() > 512 {
            let mut end = 512;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        let message = format!("HTTP {status}: {detail}");
        Err(match status {
            401 | 403 => Error::Unauthorized(message),
            404 => Error::NotFound(message),
            429 => Error::RateLimited {
                retry_after: self.header("retry-after").and_then(retry_after),
                message,
            },
            408 | 500..=599 => Error::Transient(message),
            _ => Error::Permanent(message),
        })
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (RFC 9110) read against the wall
/// clock, a date already past meaning no wait.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("Thu, 01 Jan 2026 00:00:00 GMT"), Some(Duration::ZERO));
        let in_a_minute = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(61));
        let wait = retry_after(&in_a_minute).expect("a date");
        assert!(
            wait > Duration::from_secs(1) && wait <= Duration::from_secs(61),
            "{wait:?}"
        );
        assert_eq!(retry_after("later"), None);
    }
}
