//! Identifiers that cross a trust boundary. Each is validated once, when it is made, so the
//! rest of the host never handles a raw string where one of these belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier of some kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is not valid: {rule}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
    pub rule: &'static str,
}

macro_rules! validated_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                let valid: fn(&str) -> bool = $valid;
                if valid(&value) {
                    Ok($name(value))
                } else {
                    Err(InvalidId { kind: $kind, value, rule: $rule })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_lower_kebab(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

fn is_word(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

validated_id!(
    /// A connector's id from its manifest, such as `github`.
    ConnectorId,
    "connector id",
    "use 1 to 64 lowercase letters, digits and '-', starting with a letter",
    is_lower_kebab
);

validated_id!(
    /// A tenant of a multi-tenant server: the name of its directory, such as `acme`.
    TenantId,
    "tenant id",
    "use 1 to 64 lowercase letters, digits and '-', starting with a letter",
    is_lower_kebab
);

validated_id!(
    /// An operation (action or trigger) of a connector, such as `create_issue`.
    OperationId,
    "operation id",
    "use 1 to 64 letters, digits and '_', starting with a letter",
    is_word
);

validated_id!(
    /// The name of a secret, such as `api_token`.
    SecretName,
    "secret name",
    "use 1 to 64 letters, digits, '_' and '-', starting with a letter",
    is_name
);

validated_id!(
    /// The name of a connection (a tenant's configured use of a connector).
    ConnectionName,
    "connection name",
    "use 1 to 64 letters, digits, '_' and '-', starting with a letter",
    is_name
);

validated_id!(
    /// The name of a connection parameter, such as `base_url`.
    ParameterName,
    "parameter name",
    "use 1 to 64 letters, digits and '_', starting with a letter",
    is_word
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_connector_ids() {
        for ok in ["github", "json-transform", "a1"] {
            assert!(ConnectorId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "GitHub", "-x", "x-", "a b", "../x", &"a".repeat(65)] {
            assert!(ConnectorId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_names_refuse_path_and_placeholder_tricks() {
        for bad in ["../token", "token}}", "a/b", "{{secret:x}}", "", "1token"] {
            assert!(SecretName::new(bad).is_err(), "{bad}");
        }
        assert!(SecretName::new("api_token").is_ok());
        assert!(SecretName::new("api-key").is_ok());
    }

    #[test]
    fn error_names_the_kind_and_the_rule() {
        let error = OperationId::new("no way").unwrap_err().to_string();
        assert!(error.contains("operation id \"no way\""), "{error}");
        assert!(error.contains("letters"), "{error}");
    }
}
