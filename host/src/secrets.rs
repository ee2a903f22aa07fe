//! Secret values, where they come from, the `{{secret:NAME}}` placeholder, and redaction.
//!
//! A [`SecretValue`] has no `Display`, no `Serialize`, and a `Debug` that prints nothing of
//! it; its memory is wiped on drop. The only way to read it is [`SecretValue::expose`], which
//! the egress code calls when it fills in a header and the sandbox calls for a granted
//! `reveal`. Everything that leaves the sandbox (log lines, errors, outputs) goes through a
//! [`Redactor`] that knows every value handed out during the invocation.

pub mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::ids::SecretName;

/// The opening of a placeholder in a request header value: `{{secret:NAME}}`.
pub const PLACEHOLDER_OPEN: &str = "{{secret:";
const PLACEHOLDER_CLOSE: &str = "}}";

/// A secret's plaintext. Deliberately not `Display`, `Serialize` or `Clone`.
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(Zeroizing::new(value.into()))
    }

    /// The plaintext. Call sites are few and each says why it needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A secret could not be loaded. The message never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {name:?} is unavailable: {reason}")]
pub struct SecretUnavailable {
    pub name: String,
    pub reason: String,
}

/// Where secret values come from. Implementations look a secret up by name; whether a
/// connector may have it at all is decided before, by the grant.
pub trait SecretSource: Send + Sync + fmt::Debug {
    fn load(&self, name: &SecretName) -> Result<SecretValue, SecretUnavailable>;
}

/// A source with no secrets in it.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn load(&self, name: &SecretName) -> Result<SecretValue, SecretUnavailable> {
        Err(SecretUnavailable {
            name: name.to_string(),
            reason: "no secret source is configured for this connection".to_owned(),
        })
    }
}

/// Reads secret `NAME` from the environment variable `PREFIX` + `NAME` in upper case, with
/// `-` turned into `_` (`api-key` with prefix `CORDON_SECRET_` reads `CORDON_SECRET_API_KEY`).
#[derive(Debug, Clone)]
pub struct EnvSecretSource {
    prefix: String,
}

impl EnvSecretSource {
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        EnvSecretSource {
            prefix: prefix.into(),
        }
    }

    fn variable(&self, name: &SecretName) -> String {
        format!(
            "{}{}",
            self.prefix,
            name.as_str().to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl SecretSource for EnvSecretSource {
    fn load(&self, name: &SecretName) -> Result<SecretValue, SecretUnavailable> {
        let variable = self.variable(name);
        read_env(name, &variable)
    }
}

fn read_env(name: &SecretName, variable: &str) -> Result<SecretValue, SecretUnavailable> {
    std::env::var(variable)
        .map(SecretValue::new)
        .map_err(|e| SecretUnavailable {
            name: name.to_string(),
            reason: match e {
                std::env::VarError::NotPresent => format!("environment variable {variable} is not set"),
                std::env::VarError::NotUnicode(_) => format!("environment variable {variable} is not UTF-8"),
            },
        })
}

/// Reads secret `NAME` from the file `NAME` in a directory, opened with cap-std so that no
/// name can reach outside it. One trailing newline is dropped.
#[derive(Debug)]
pub struct DirSecretSource {
    dir: cap_std::fs::Dir,
}

impl DirSecretSource {
    pub fn open(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let dir = cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(DirSecretSource { dir })
    }
}

impl SecretSource for DirSecretSource {
    fn load(&self, name: &SecretName) -> Result<SecretValue, SecretUnavailable> {
        let text = self
            .dir
            .read_to_string(name.as_str())
            .map_err(|e| SecretUnavailable {
                name: name.to_string(),
                reason: format!(
                    "cannot read file {:?} in the secrets directory: {e}",
                    name.as_str()
                ),
            })?;
        Ok(SecretValue::new(strip_one_newline(text)))
    }
}

fn strip_one_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Where one secret lives, as an operator writes it: `env:VARIABLE` or `file:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLocation {
    Env(String),
    File(PathBuf),
}

impl FromStr for SecretLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("env", var)) if !var.is_empty() => Ok(SecretLocation::Env(var.to_owned())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretLocation::File(PathBuf::from(path))),
            _ => Err(format!("secret location {s:?} must be env:VARIABLE or file:PATH")),
        }
    }
}

/// Secrets named one by one, each with its own location.
#[derive(Debug, Clone, Default)]
pub struct SecretMap {
    entries: BTreeMap<SecretName, SecretLocation>,
}

impl SecretMap {
    pub fn insert(&mut self, name: SecretName, location: SecretLocation) {
        self.entries.insert(name, location);
    }

    pub fn names(&self) -> impl Iterator<Item = &SecretName> {
        self.entries.keys()
    }
}

impl SecretSource for SecretMap {
    fn load(&self, name: &SecretName) -> Result<SecretValue, SecretUnavailable> {
        match self.entries.get(name) {
            None => NoSecrets.load(name),
            Some(SecretLocation::Env(var)) => read_env(name, var),
            Some(SecretLocation::File(path)) => std::fs::read_to_string(path)
                .map(|t| SecretValue::new(strip_one_newline(t)))
                .map_err(|e| SecretUnavailable {
                    name: name.to_string(),
                    reason: format!("cannot read {}: {e}", path.display()),
                }),
        }
    }
}

/// One `{{secret:NAME}}` found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub range: std::ops::Range<usize>,
    /// The text between `{{secret:` and `}}`, not yet validated.
    pub name: String,
}

/// Finds every placeholder in `text`. An opening without a closing `}}` is not a placeholder.
pub fn find_placeholders(text: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find(PLACEHOLDER_OPEN).map(|i| i + from) {
        let name_start = start + PLACEHOLDER_OPEN.len();
        let Some(len) = text[name_start..].find(PLACEHOLDER_CLOSE) else {
            break;
        };
        let end = name_start + len + PLACEHOLDER_CLOSE.len();
        found.push(Placeholder {
            range: start..end,
            name: text[name_start..name_start + len].to_owned(),
        });
        from = end;
    }
    found
}

/// Replaces every secret value handed out during one invocation with `[REDACTED:NAME]`.
/// Shared by the sandbox's log, the HTTP client and the result mapping.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    known: Arc<Mutex<Vec<KnownSecret>>>,
}

type KnownSecret = (SecretName, Arc<SecretValue>);

impl Redactor {
    pub fn remember(&self, name: &SecretName, value: Arc<SecretValue>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if value.expose().is_empty() || known.iter().any(|(n, _)| n == name) {
            return;
        }
        known.push((name.clone(), value));
    }

    pub fn redact(&self, text: &str) -> String {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = text.to_owned();
        for (name, value) in known.iter() {
            if out.contains(value.expose()) {
                out = out.replace(value.expose(), &format!("[REDACTED:{name}]"));
            }
        }
        out
    }

    /// Replaces secret values in raw bytes, such as a response body that echoes a header.
    pub fn redact_bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = bytes;
        for (name, value) in known.iter() {
            let needle = value.expose().as_bytes();
            if needle.is_empty() || out.len() < needle.len() {
                continue;
            }
            if out.windows(needle.len()).any(|w| w == needle) {
                let replacement = format!("{PLACEHOLDER_OPEN}{name}{PLACEHOLDER_CLOSE}");
                let mut replaced = Vec::with_capacity(out.len());
                let mut i = 0;
                while i < out.len() {
                    if out[i..].starts_with(needle) {
                        replaced.extend_from_slice(replacement.as_bytes());
                        i += needle.len();
                    } else {
                        replaced.push(out[i]);
                        i += 1;
                    }
                }
                out = replaced;
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.known.lock().map(|k| k.is_empty()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    #[test]
    fn debug_never_prints_the_value() {
        let value = SecretValue::new("hunter2");
        assert!(!format!("{value:?}").contains("hunter2"));
    }

    #[test]
    fn finds_placeholders() {
        let found = find_placeholders("Bearer {{secret:token}} and {{secret:api-key}} {{secret:open");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "token");
        assert_eq!(found[1].name, "api-key");
        assert_eq!(
            &"Bearer {{secret:token}}"[found[0].range.clone()],
            "{{secret:token}}"
        );
    }

    #[test]
    fn redacts_known_values_everywhere() {
        let redactor = Redactor::default();
        redactor.remember(&name("token"), Arc::new(SecretValue::new("s3cr3t")));
        assert_eq!(
            redactor.redact("a s3cr3t b s3cr3t"),
            "a [REDACTED:token] b [REDACTED:token]"
        );
        assert_eq!(
            redactor.redact_bytes(b"xs3cr3ty".to_vec()),
            b"x{{secret:token}}y".to_vec()
        );
    }

    #[test]
    fn secret_locations_parse() {
        assert_eq!("env:TOKEN".parse(), Ok(SecretLocation::Env("TOKEN".into())));
        assert_eq!("file:/run/s".parse(), Ok(SecretLocation::File("/run/s".into())));
        assert!("TOKEN".parse::<SecretLocation>().is_err());
        assert!("env:".parse::<SecretLocation>().is_err());
    }

    #[test]
    fn dir_source_cannot_escape_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "abc\n").unwrap();
        let source = DirSecretSource::open(dir.path()).unwrap();
        assert_eq!(source.load(&name("token")).unwrap().expose(), "abc");
        // Names are validated so "../x" cannot even be asked for; a missing one is reported.
        let error = source.load(&name("missing")).unwrap_err();
        assert!(error.to_string().contains("missing"));
    }

    #[test]
    fn env_source_maps_names_to_variables() {
        let source = EnvSecretSource::with_prefix("CORDON_TEST_SECRET_");
        assert_eq!(source.variable(&name("api-key")), "CORDON_TEST_SECRET_API_KEY");
        let error = source.load(&name("surely_unset_here")).unwrap_err();
        assert!(error.reason.contains("CORDON_TEST_SECRET_SURELY_UNSET_HERE"));
    }
}
