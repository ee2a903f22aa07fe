use std::fmt;
use std::time::Duration;

use crate::bindings::cordon::connector::types::{ConnectorError, RateLimit};

/// Why an operation failed. The workflow engine decides from the kind whether to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input does not fit the operation; retrying with the same input fails again.
    InvalidInput(String),
    /// The remote service refused the credentials.
    Unauthorized(String),
    /// The addressed thing does not exist.
    NotFound(String),
    /// The remote service asked to slow down.
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// A failure that may pass; the engine retries it.
    Transient(String),
    /// A failure that retrying will not fix.
    Permanent(String),
}

impl Error {
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Error::Permanent(message.into())
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Error::Transient(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    pub(crate) fn into_wit(self) -> ConnectorError {
        match self {
            Error::InvalidInput(m) => ConnectorError::InvalidInput(m),
            Error::Unauthorized(m) => ConnectorError::Unauthorized(m),
            Error::NotFound(m) => ConnectorError::NotFound(m),
            Error::RateLimited { message, retry_after } => ConnectorError::RateLimited(RateLimit {
                message,
                retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            }),
            Error::Transient(m) => ConnectorError::Transient(m),
            Error::Permanent(m) => ConnectorError::Permanent(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Unauthorized(m) => write!(f, "unauthorized: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::RateLimited { message, .. } => write!(f, "rate limited: {message}"),
            Error::Transient(m) => write!(f, "transient: {m}"),
            Error::Permanent(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Permanent(format!("json: {error}"))
    }
}
