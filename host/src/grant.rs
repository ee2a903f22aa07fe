//! What a connection may do: the operator's [`Grant`], intersected with what the connector's
//! manifest requests, computed once into an [`EffectiveGrant`] that every check goes through.
//!
//! Deny by default: an empty grant allows no host and no secret. A request passes only if the
//! connector requested a matching pattern *and* the operator granted one. A refusal is a
//! [`Denial`] that says what was asked, what is missing and the exact entry that would allow it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::address::special_range;
use crate::host_pattern::{Destination, DestinationHost, HostPattern};
use crate::ids::{ConnectionName, ConnectorId, SecretName};
use crate::manifest::Manifest;

/// What the operator allows one connection. The default allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Outbound host patterns.
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    #[serde(default)]
    pub secrets: Vec<SecretGrant>,
}

/// One granted secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretGrant {
    pub name: SecretName,
    /// Where the host may send it. Empty means: wherever the connection may send requests.
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    /// Whether the connector may read the plaintext (it must also request this).
    #[serde(default)]
    pub plaintext: bool,
}

/// What kind of permission a denial is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialKind {
    /// The destination's scheme, host or port.
    Host,
    /// A resolved or literal address in a special range.
    Address,
    /// Using a secret at all.
    Secret,
    /// Sending a secret to this destination.
    SecretDestination,
    /// Reading a secret's plaintext.
    SecretPlaintext,
    /// A per-invocation quota, such as the number of HTTP requests.
    Quota,
}

impl DenialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DenialKind::Host => "host",
            DenialKind::Address => "address",
            DenialKind::Secret => "secret",
            DenialKind::SecretDestination => "secret_destination",
            DenialKind::SecretPlaintext => "secret_plaintext",
            DenialKind::Quota => "quota",
        }
    }
}

/// A policy refusal: returned to the guest as a typed error and written to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenialKind,
    /// What the connector asked for, for example `https://evil.example:443`.
    pub asked: String,
    /// Which grant is missing.
    pub missing: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not allowed: {}", self.asked, self.missing)
    }
}

#[derive(Debug, Clone)]
struct EffectiveSecret {
    requested_hosts: Vec<HostPattern>,
    granted_hosts: Vec<HostPattern>,
    plaintext_requested: bool,
    plaintext_granted: bool,
}

/// The permissions of one connection: requested ∩ granted.
#[derive(Debug, Clone)]
pub struct EffectiveGrant {
    connector: ConnectorId,
    connection: ConnectionName,
    requested_hosts: Vec<HostPattern>,
    granted_hosts: Vec<HostPattern>,
    declared_secrets: Vec<SecretName>,
    secrets: BTreeMap<SecretName, EffectiveSecret>,
}

impl EffectiveGrant {
    pub fn new(manifest: &Manifest, connection: ConnectionName, grant: &Grant) -> EffectiveGrant {
        let secrets = manifest
            .secrets
            .iter()
            .filter_map(|requested| {
                let granted = grant.secrets.iter().find(|g| g.name == requested.name)?;
                Some((
                    requested.name.clone(),
                    EffectiveSecret {
                        requested_hosts: requested.hosts.clone(),
                        granted_hosts: granted.hosts.clone(),
                        plaintext_requested: requested.plaintext,
                        plaintext_granted: granted.plaintext,
                    },
                ))
            })
            .collect();
        EffectiveGrant {
            connector: manifest.id.clone(),
            connection,
            requested_hosts: manifest.hosts.clone(),
            granted_hosts: grant.hosts.clone(),
            declared_secrets: manifest.secrets.iter().map(|s| s.name.clone()).collect(),
            secrets,
        }
    }

    /// No egress, no secrets: what `describe` runs with.
    pub fn nothing(connector: ConnectorId, connection: ConnectionName) -> EffectiveGrant {
        EffectiveGrant {
            connector,
            connection,
            requested_hosts: Vec::new(),
            granted_hosts: Vec::new(),
            declared_secrets: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }

    pub fn connector(&self) -> &ConnectorId {
        &self.connector
    }

    pub fn connection(&self) -> &ConnectionName {
        &self.connection
    }

    /// Checks scheme, host and port, before any DNS.
    pub fn check_destination(&self, destination: &Destination) -> Result<(), Denial> {
        let asked = destination.to_string();
        if !self.requested_hosts.iter().any(|p| p.matches(destination)) {
            return Err(Denial {
                kind: DenialKind::Host,
                missing: format!(
                    "connector {:?} did not request this host in its manifest (it requested: {})",
                    self.connector.as_str(),
                    list(&self.requested_hosts)
                ),
                asked,
            });
        }
        if !self.granted_hosts.iter().any(|p| p.matches(destination)) {
            return Err(Denial {
                kind: DenialKind::Host,
                missing: format!(
                    "connection {:?} is not granted this host; to allow it, grant {:?}",
                    self.connection.as_str(),
                    asked
                ),
                asked,
            });
        }
        Ok(())
    }

    /// Checks one address the destination resolved to (or names literally). Special ranges
    /// need a granted pattern that names the address or its range; a name or `*` is not enough.
    pub fn check_address(&self, destination: &Destination, ip: IpAddr) -> Result<(), Denial> {
        let ip = crate::host_pattern::canonical_ip(ip);
        let Some(range) = special_range(ip) else {
            return Ok(());
        };
        if self.granted_hosts.iter().any(|p| p.names_address(ip)) {
            return Ok(());
        }
        let shown = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        let via = match &destination.host {
            DestinationHost::Domain(d) => format!("{d:?} resolves to {shown}, which is "),
            DestinationHost::Ip(_) => format!("{shown} is "),
        };
        Err(Denial {
            kind: DenialKind::Address,
            asked: destination.to_string(),
            missing: format!(
                "{via}{range}; only a grant that names the address allows it, such as {:?}",
                format!("{}://{shown}:{}", destination.scheme.as_str(), destination.port)
            ),
        })
    }

    /// Checks that the connector declared and was granted `name`.
    pub fn check_secret(&self, name: &SecretName) -> Result<(), Denial> {
        if !self.declared_secrets.contains(name) {
            return Err(Denial {
                kind: DenialKind::Secret,
                asked: format!("secret {:?}", name.as_str()),
                missing: format!(
                    "connector {:?} did not declare this secret in its manifest",
                    self.connector.as_str()
                ),
            });
        }
        if !self.secrets.contains_key(name) {
            return Err(Denial {
                kind: DenialKind::Secret,
                asked: format!("secret {:?}", name.as_str()),
                missing: format!(
                    "connection {:?} is not granted this secret; grant it to the connection",
                    self.connection.as_str()
                ),
            });
        }
        Ok(())
    }

    /// Checks that `name` may be sent to `destination`.
    pub fn check_secret_destination(
        &self,
        name: &SecretName,
        destination: &Destination,
    ) -> Result<(), Denial> {
        self.check_secret(name)?;
        let Some(secret) = self.secrets.get(name) else {
            return Err(unreachable_denial(name));
        };
        let asked = format!("sending secret {:?} to {destination}", name.as_str());
        if !secret.requested_hosts.is_empty()
            && !secret.requested_hosts.iter().any(|p| p.matches(destination))
        {
            return Err(Denial {
                kind: DenialKind::SecretDestination,
                asked,
                missing: format!(
                    "the connector bound this secret to {} only",
                    list(&secret.requested_hosts)
                ),
            });
        }
        if !secret.granted_hosts.is_empty() && !secret.granted_hosts.iter().any(|p| p.matches(destination)) {
            return Err(Denial {
                kind: DenialKind::SecretDestination,
                asked,
                missing: format!(
                    "the operator bound this secret to {} only",
                    list(&secret.granted_hosts)
                ),
            });
        }
        Ok(())
    }

    /// Checks that the connector may read the plaintext of `name`.
    pub fn check_reveal(&self, name: &SecretName) -> Result<(), Denial> {
        self.check_secret(name)?;
        let Some(secret) = self.secrets.get(name) else {
            return Err(unreachable_denial(name));
        };
        let asked = format!("reading the plaintext of secret {:?}", name.as_str());
        if !secret.plaintext_requested {
            return Err(Denial {
                kind: DenialKind::SecretPlaintext,
                asked,
                missing: "the connector did not request plaintext access to it; use a placeholder".to_owned(),
            });
        }
        if !secret.plaintext_granted {
            return Err(Denial {
                kind: DenialKind::SecretPlaintext,
                asked,
                missing: "plaintext reading is not granted; grant it with `plaintext: true` on the secret"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

// `check_secret` returned Ok, so the map has the entry; this keeps the code total anyway.
fn unreachable_denial(name: &SecretName) -> Denial {
    Denial {
        kind: DenialKind::Secret,
        asked: format!("secret {:?}", name.as_str()),
        missing: "the secret is not granted".to_owned(),
    }
}

fn list(patterns: &[HostPattern]) -> String {
    if patterns.is_empty() {
        "nothing".to_owned()
    } else {
        patterns.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types as wit;

    fn manifest(hosts: &[&str], secrets: &[(&str, &[&str], bool)]) -> Manifest {
        Manifest::from_wit(wit::Manifest {
            id: "demo".into(),
            version: "1.0.0".into(),
            display_name: String::new(),
            description: String::new(),
            operations: vec![],
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            secrets: secrets
                .iter()
                .map(|(name, hosts, plaintext)| wit::SecretRequest {
                    name: name.to_string(),
                    description: String::new(),
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                    plaintext: *plaintext,
                })
                .collect(),
            parameters: vec![],
        })
        .expect("valid manifest")
    }

    fn grant(hosts: &[&str], secrets: &[(&str, bool)]) -> Grant {
        Grant {
            hosts: hosts.iter().map(|h| h.parse().expect("pattern")).collect(),
            secrets: secrets
                .iter()
                .map(|(name, plaintext)| SecretGrant {
                    name: SecretName::new(*name).expect("name"),
                    hosts: vec![],
                    plaintext: *plaintext,
                })
                .collect(),
        }
    }

    fn effective(m: &Manifest, g: &Grant) -> EffectiveGrant {
        EffectiveGrant::new(m, ConnectionName::new("c").expect("name"), g)
    }

    fn dest(url: &str) -> Destination {
        Destination::parse(url).expect("url")
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn needs_both_request_and_grant() {
        let table: &[(&[&str], &[&str], &str, Option<&str>)] = &[
            (
                &["https://*.example.com"],
                &["https://api.example.com"],
                "https://api.example.com/",
                None,
            ),
            (
                &["https://api.example.com"],
                &["*://*:*"],
                "https://other.example.com/",
                Some("did not request"),
            ),
            (
                &["*://*:*"],
                &["https://api.example.com"],
                "https://other.example.com/",
                Some("not granted"),
            ),
            (
                &[],
                &["*://*:*"],
                "https://api.example.com/",
                Some("did not request"),
            ),
            (&["*://*:*"], &[], "https://api.example.com/", Some("not granted")),
        ];
        for (requested, granted, url, denial) in table {
            let g = effective(&manifest(requested, &[]), &grant(granted, &[]));
            match (g.check_destination(&dest(url)), denial) {
                (Ok(()), None) => {}
                (Err(d), Some(expected)) => assert!(d.missing.contains(expected), "{url}: {d}"),
                (result, expected) => panic!("{url}: got {result:?}, expected denial {expected:?}"),
            }
        }
    }

    #[test]
    fn special_addresses_need_an_explicit_grant() {
        let m = manifest(&["*://*:*"], &[]);
        let d = dest("http://internal.example:8080/");
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        let metadata: IpAddr = "169.254.169.254".parse().expect("ip");
        let public: IpAddr = "93.184.216.34".parse().expect("ip");
        let by_name = effective(&m, &grant(&["http://internal.example:8080", "*://*:*"], &[]));
        assert!(by_name.check_address(&d, loopback).is_err());
        assert!(by_name.check_address(&d, metadata).is_err());
        assert!(by_name.check_address(&d, public).is_ok());
        let by_address = effective(&m, &grant(&["http://127.0.0.1:8080"], &[]));
        assert!(by_address.check_address(&d, loopback).is_ok());
        assert!(by_address.check_address(&d, metadata).is_err());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert!(by_name.check_address(&d, mapped).is_err());
        assert!(by_address.check_address(&d, mapped).is_ok());
    }

    #[test]
    fn secrets_need_declaration_grant_and_binding() {
        let m = manifest(
            &["*://*:*"],
            &[("token", &["https://api.example.com"], false), ("key", &[], true)],
        );
        let g = effective(
            &m,
            &grant(&["*://*:*"], &[("token", false), ("key", false), ("other", true)]),
        );
        let token = SecretName::new("token").expect("name");
        let key = SecretName::new("key").expect("name");
        let other = SecretName::new("other").expect("name");
        assert!(g.check_secret(&token).is_ok());
        assert!(
            g.check_secret(&other)
                .unwrap_err()
                .missing
                .contains("did not declare")
        );
        assert!(
            g.check_secret_destination(&token, &dest("https://api.example.com/"))
                .is_ok()
        );
        assert!(
            g.check_secret_destination(&token, &dest("https://evil.example/"))
                .is_err()
        );
        assert!(
            g.check_secret_destination(&key, &dest("https://evil.example/"))
                .is_ok()
        );
        assert_eq!(
            g.check_reveal(&token).unwrap_err().kind,
            DenialKind::SecretPlaintext
        );
        assert!(g.check_reveal(&key).unwrap_err().missing.contains("not granted"));

        let ungranted = effective(&m, &grant(&["*://*:*"], &[]));
        assert!(
            ungranted
                .check_secret(&token)
                .unwrap_err()
                .missing
                .contains("not granted")
        );
    }
}
