//! Secrets the connector declared and the operator granted.
//!
//! Prefer [`placeholder`]: put the returned text in a request header and the host fills in
//! the value on the way out, only for hosts the secret is bound to. The connector never holds
//! the plaintext. For HTTP Basic authentication, [`basic_auth`] does the same for a password.

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

/// The value of an `Authorization` header for HTTP Basic authentication with `username` and
/// the password in the secret `password_secret`: `Basic {{base64:USERNAME:{{secret:NAME}}}}`.
/// The host fills in the password and base64-encodes `USERNAME:PASSWORD` on the way out, only
/// for hosts the secret is bound to, so the connector never holds the password.
///
/// Errors: the secret's, as [`placeholder`]'s; `InvalidInput` for a username with a colon
/// (RFC 7617 does not allow one), `{{`, `}}` or a control character.
pub fn basic_auth(username: &str, password_secret: &str) -> Result<String, Error> {
    if username.contains(':') {
        return Err(Error::invalid_input(format!(
            "the username {username:?} has a colon, which HTTP Basic authentication cannot carry (RFC 7617)"
        )));
    }
    if username.contains("{{") || username.contains("}}") || username.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "the username {username:?} has `{{{{`, `}}}}` or a control character; remove them"
        )));
    }
    let password = placeholder(password_secret)?;
    Ok(format!("Basic {{{{base64:{username}:{password}}}}}"))
}

/// The plaintext of a secret. The connector must declare it with
/// [`Secret::plaintext`](crate::Secret::plaintext) and the operator must grant that.
pub fn reveal(name: &str) -> Result<String, Error> {
    wit::reveal(name).map_err(convert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_refuses_usernames_the_header_cannot_carry() {
        // Refused before the host is asked for the placeholder.
        for username in ["svc:admin", "{{secret:token}}", "a}}b", "line\nbreak"] {
            assert!(
                matches!(basic_auth(username, "password"), Err(Error::InvalidInput(_))),
                "{username:?}"
            );
        }
    }
}
