//! Secrets the connector declared and the operator granted.
//!
//! Prefer [`placeholder`]: put the returned text in a request header and the host fills in
//! the value on the way out, only for hosts the secret is bound to. The connector never holds
//! the plaintext.

use crate::Error;
use crate::bindings::cordon::connector::secrets::{self as wit, SecretError};

fn convert(error: SecretError) -> Error {
    match error {
        SecretError::Denied(m) => Error::Unauthorized(m),
        SecretError::Unavailable(m) => Error::Transient(m),
    }
}

/// The placeholder `{{secret:NAME}}` for a declared and granted secret.
pub fn placeholder(name: &str) -> Result<String, Error> {
    wit::placeholder(name).map_err(convert)
}

/// The plaintext of a secret. The connector must declare it with
/// [`Secret::plaintext`](crate::Secret::plaintext) and the operator must grant that.
pub fn reveal(name: &str) -> Result<String, Error> {
    wit::reveal(name).map_err(convert)
}
