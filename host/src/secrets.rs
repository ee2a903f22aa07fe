//! Secret values, where they come from, the `{{secret:NAME}}` placeholder (and the
//! `{{base64:…}}` block that encodes one for HTTP Basic credentials), and redaction.
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

/// The opening of a block whose text is sent base64-encoded once its placeholders are filled:
/// `{{base64:USER:{{secret:NAME}}}}`. HTTP Basic credentials are `base64(user:password)`, so a
/// placeholder for the password alone would be encoded before the host could fill it.
pub const BASE64_OPEN: &str = "{{base64:";

/// One part of a header value as the host reads it: text sent as written, a secret filled in,
/// or a block encoded after its own parts are filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPart<'a> {
    Text(&'a str),
    /// The text between `{{secret:` and `}}`, not yet validated as a secret name.
    Secret(&'a str),
    /// The parts of a `{{base64:…}}` block: only text and secrets (blocks do not nest).
    Base64(Vec<HeaderPart<'a>>),
}

impl HeaderPart<'_> {
    /// Whether the host has anything to fill or encode in this part.
    fn is_text(&self) -> bool {
        matches!(self, HeaderPart::Text(_))
    }
}

/// Splits a header value into its parts. An opening without its closing `}}` is text, as is
/// anything else that is not a placeholder or a block, so a value without either is one
/// [`HeaderPart::Text`].
pub fn header_parts(value: &str) -> Vec<HeaderPart<'_>> {
    let mut parts = Vec::new();
    let mut text_start = 0;
    let mut at = 0;
    while let Some(found) = value[at..].find("{{").map(|i| i + at) {
        let rest = &value[found..];
        let part = secret_at(rest).or_else(|| base64_at(rest));
        match part {
            Some((part, len)) => {
                if text_start < found {
                    parts.push(HeaderPart::Text(&value[text_start..found]));
                }
                parts.push(part);
                at = found + len;
                text_start = at;
            }
            None => at = found + 1,
        }
    }
    if text_start < value.len() || parts.is_empty() {
        parts.push(HeaderPart::Text(&value[text_start..]));
    }
    parts
}

/// `{{secret:NAME}}` at the start of `text`, and its length.
fn secret_at(text: &str) -> Option<(HeaderPart<'_>, usize)> {
    let name = text.strip_prefix(PLACEHOLDER_OPEN)?;
    let len = name.find(PLACEHOLDER_CLOSE)?;
    Some((
        HeaderPart::Secret(&name[..len]),
        PLACEHOLDER_OPEN.len() + len + PLACEHOLDER_CLOSE.len(),
    ))
}

/// `{{base64:…}}` at the start of `text`, and its length. The block ends at the first `}}`
/// that does not close a secret placeholder inside it.
fn base64_at(text: &str) -> Option<(HeaderPart<'_>, usize)> {
    let body = text.strip_prefix(BASE64_OPEN)?;
    let mut parts = Vec::new();
    let mut text_start = 0;
    let mut at = 0;
    loop {
        let close = body[at..].find(PLACEHOLDER_CLOSE).map(|i| i + at)?;
        let secret = body[at..].find(PLACEHOLDER_OPEN).map(|i| i + at);
        match secret.filter(|&s| s < close) {
            Some(start) => {
                let (part, len) = secret_at(&body[start..])?;
                if text_start < start {
                    parts.push(HeaderPart::Text(&body[text_start..start]));
                }
                parts.push(part);
                at = start + len;
                text_start = at;
            }
            None => {
                if text_start < close {
                    parts.push(HeaderPart::Text(&body[text_start..close]));
                }
                let len = BASE64_OPEN.len() + close + PLACEHOLDER_CLOSE.len();
                return Some((HeaderPart::Base64(parts), len));
            }
        }
    }
}

/// Whether the host must fill or encode anything in a header value.
pub fn has_placeholders(parts: &[HeaderPart<'_>]) -> bool {
    parts.iter().any(|part| !part.is_text())
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
        // By value, not name: a secret is remembered as it is and as each encoding sent.
        if value.expose().is_empty() || known.iter().any(|(_, v)| v.expose() == value.expose()) {
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
    fn splits_header_values_into_text_secrets_and_base64_blocks() {
        use HeaderPart::{Base64, Secret, Text};
        for (value, expected) in [
            ("plain", vec![Text("plain")]),
            ("", vec![Text("")]),
            (
                "Bearer {{secret:token}} and {{secret:api-key}} {{secret:open",
                vec![
                    Text("Bearer "),
                    Secret("token"),
                    Text(" and "),
                    Secret("api-key"),
                    Text(" {{secret:open"),
                ],
            ),
            (
                "Basic {{base64:svc:{{secret:password}}}}",
                vec![Text("Basic "), Base64(vec![Text("svc:"), Secret("password")])],
            ),
            (
                "{{base64:{{secret:user}}:{{secret:password}}}}!",
                vec![
                    Base64(vec![Secret("user"), Text(":"), Secret("password")]),
                    Text("!"),
                ],
            ),
            ("{{base64:plain}}", vec![Base64(vec![Text("plain")])]),
            ("{{base64:}}", vec![Base64(vec![])]),
            // Unclosed: the block's opening is text (a placeholder after it is still one), and
            // so is an unclosed placeholder.
            (
                "Basic {{base64:svc:{{secret:password}}",
                vec![Text("Basic {{base64:svc:"), Secret("password")],
            ),
            (
                "{{base64:svc:{{secret:pass",
                vec![Text("{{base64:svc:{{secret:pass")],
            ),
            // Blocks do not nest: an inner opening is text, and the first `}}` closes.
            (
                "{{base64:a{{base64:b}}}}",
                vec![Base64(vec![Text("a{{base64:b")]), Text("}}")],
            ),
            ("{{other}} {{secret:x}}", vec![Text("{{other}} "), Secret("x")]),
        ] {
            assert_eq!(header_parts(value), expected, "{value:?}");
        }
        assert!(!has_placeholders(&header_parts("{{secret:open")));
        assert!(has_placeholders(&header_parts("{{base64:plain}}")));
    }

    /// The text a header value's parts stand for, so parsing can be checked to lose nothing.
    fn written(parts: &[HeaderPart<'_>]) -> String {
        parts
            .iter()
            .map(|part| match part {
                HeaderPart::Text(text) => (*text).to_owned(),
                HeaderPart::Secret(name) => format!("{PLACEHOLDER_OPEN}{name}{PLACEHOLDER_CLOSE}"),
                HeaderPart::Base64(inner) => format!("{BASE64_OPEN}{}{PLACEHOLDER_CLOSE}", written(inner)),
            })
            .collect()
    }

    #[test]
    fn header_parts_stand_for_exactly_the_value_written() {
        // Every sequence of up to five of these pieces: each parse gives back the text it was
        // given, and a block holds only text and secrets.
        let pieces = ["{{", "}}", "secret:", "base64:", "a", ":"];
        let mut values = Vec::new();
        let mut length_n = vec![String::new()];
        for _ in 0..5 {
            length_n = length_n
                .iter()
                .flat_map(|v| pieces.iter().map(move |p| format!("{v}{p}")))
                .collect();
            values.extend(length_n.iter().cloned());
        }
        for value in &values {
            let parts = header_parts(value);
            assert_eq!(&written(&parts), value);
            for part in &parts {
                if let HeaderPart::Base64(inner) = part {
                    assert!(
                        inner.iter().all(|p| !matches!(p, HeaderPart::Base64(_))),
                        "{value:?}"
                    );
                }
            }
        }
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
