//! Connector upgrades: a new version of a connection's connector file that asks for more than
//! the operator granted waits for approval, and the approved version keeps running meanwhile.
//!
//! The policy, for connections whose connector is a file in the project (built-ins change
//! only with cordon itself, which the operator installs):
//!
//! - The history keeps, per connection, the approved version's bytes, its manifest, and the
//!   grant entries that approvals added (the *extension*). The connection's grant is its
//!   `connections.json` grant plus the extension.
//! - The first version a connection opens with is approved as it is: the operator wrote the
//!   grant for it, and what it requests beyond the grant stays denied at each call, as always.
//! - A different file is an upgrade. It *widens* if it requests a host the grant does not
//!   cover, a secret the grant does not name, or a secret's plaintext the grant does not
//!   allow, unless the approved version requested that same thing (the operator already
//!   decided about it). An upgrade that does not widen is approved at once.
//! - A widening upgrade is pending: the connection runs the approved version's bytes from the
//!   history, an audit event says what the new one asks for, and `cordon connector approve`
//!   shows the difference and, when the operator confirms, adds exactly the widening entries
//!   to the extension and records the new version. A running server picks it up at its next
//!   start, like any other change to the project.
//!
//! Why the history and not `connections.json`: approvals are decisions with a time and a
//! record, they must not be lost by a deploy that copies the project's files over, and the
//! history is already per tenant. `cordon connector status` shows the extension beside the
//! file's grant, so nothing about the effective grant is hidden.

use anyhow::{Context as _, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audit;
use crate::db::{ApprovedConnector, Db};
use crate::grant::{Grant, SecretGrant};
use crate::host_pattern::HostPattern;
use crate::manifest::{Manifest, SecretRequest};
use crate::{Connector, Runtime};

use super::connections::LoadedConnector;
use super::project::ConnectionSpec;

/// What a connector version asks for beyond the grant and beyond the approved version.
#[derive(Debug, Clone, Default)]
pub struct Widening {
    pub hosts: Vec<HostPattern>,
    /// Secrets not granted at all, or whose plaintext is requested and not granted.
    pub secrets: Vec<SecretRequest>,
}

impl Widening {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.secrets.is_empty()
    }

    /// The grant entries that allow exactly this widening.
    fn as_grant(&self) -> Grant {
        Grant {
            hosts: self.hosts.clone(),
            secrets: self
                .secrets
                .iter()
                .map(|s| SecretGrant {
                    name: s.name.clone(),
                    hosts: Vec::new(),
                    plaintext: s.plaintext,
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for Widening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("host {}", h.as_str()))
            .collect();
        parts.extend(self.secrets.iter().map(|s| {
            if s.plaintext {
                format!("secret {} (with its plaintext)", s.name)
            } else {
                format!("secret {}", s.name)
            }
        }));
        f.write_str(&parts.join(", "))
    }
}

/// What `offered` requests that neither `grant` allows nor the `approved` version requested.
pub fn widening(offered: &Manifest, grant: &Grant, approved: Option<&Manifest>) -> Widening {
    let hosts = offered
        .hosts
        .iter()
        .filter(|requested| !grant.hosts.iter().any(|granted| granted.covers(requested)))
        .filter(|requested| {
            !approved.is_some_and(|a| a.hosts.iter().any(|h| h.as_str() == requested.as_str()))
        })
        .cloned()
        .collect();
    let secrets = offered
        .secrets
        .iter()
        .filter(|requested| {
            let granted = grant.secrets.iter().find(|g| g.name == requested.name);
            match granted {
                None => true,
                Some(granted) => requested.plaintext && !granted.plaintext,
            }
        })
        .filter(|requested| {
            !approved.is_some_and(|a| {
                a.secret(&requested.name)
                    .is_some_and(|before| before.plaintext || !requested.plaintext)
            })
        })
        .cloned()
        .collect();
    Widening { hosts, secrets }
}

/// `grant` with `extension`'s entries added. An extension never narrows: a secret both name
/// keeps the grant's destinations and gains the extension's plaintext permission.
pub fn extend(grant: &Grant, extension: &Grant) -> Grant {
    let mut extended = grant.clone();
    for host in &extension.hosts {
        if !extended.hosts.iter().any(|h| h.as_str() == host.as_str()) {
            extended.hosts.push(host.clone());
        }
    }
    for secret in &extension.secrets {
        match extended.secrets.iter_mut().find(|s| s.name == secret.name) {
            Some(existing) => existing.plaintext |= secret.plaintext,
            None => extended.secrets.push(secret.clone()),
        }
    }
    extended
}

/// One version of a connector, as the upgrade report shows it.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub connector: String,
    pub version: String,
    pub sha256: String,
}

impl VersionInfo {
    pub fn of(manifest: &Manifest, sha256: &str) -> VersionInfo {
        VersionInfo {
            connector: manifest.id.to_string(),
            version: manifest.version.to_string(),
            sha256: sha256.to_owned(),
        }
    }
}

/// The approval record of `connection`, with its manifest and extension decoded.
struct Approval {
    record: ApprovedConnector,
    manifest: Manifest,
    extension: Grant,
}

fn approval(db: &dyn Db, connection: &str) -> anyhow::Result<Option<Approval>> {
    let Some(record) = db.approved_connector(connection)? else {
        return Ok(None);
    };
    let context = || format!("the approval record of connection {connection:?} in the history is unreadable");
    let manifest = serde_json::from_value(record.manifest.clone()).with_context(context)?;
    let extension = serde_json::from_value(record.grant_extension.clone()).with_context(context)?;
    Ok(Some(Approval {
        record,
        manifest,
        extension,
    }))
}

fn record(
    db: &dyn Db,
    connection: &str,
    connector: &Connector,
    bytes: &[u8],
    extension: &Grant,
    how: &str,
) -> anyhow::Result<()> {
    // The loader already hashed these bytes: the hash is the connector's identity.
    let sha256 = connector.component_hash().to_owned();
    db.approve_connector(&ApprovedConnector {
        connection: connection.to_owned(),
        sha256: sha256.clone(),
        component: bytes.to_vec(),
        manifest: serde_json::to_value(connector.manifest())?,
        grant_extension: serde_json::to_value(extension)?,
        approved_at: now_ms(),
    })?;
    audit::connector_approved(connection, &connector.manifest().id, &sha256, how);
    Ok(())
}

/// The offered file's bytes as they are read again to be recorded: they must still be what
/// the loader hashed, or the record would keep other bytes under the loaded version's hash.
fn reread(
    read: &dyn Fn() -> anyhow::Result<Vec<u8>>,
    offered: &Connector,
    spec: &ConnectionSpec,
) -> anyhow::Result<Vec<u8>> {
    let bytes = read()?;
    if hex::encode(Sha256::digest(&bytes)) != offered.component_hash() {
        bail!(
            "connection {:?}: its connector file changed while cordon was loading it; nothing was recorded, start again once the file is complete",
            spec.name
        );
    }
    Ok(bytes)
}

/// Decides which version of a file connector `spec`'s connection runs. `offered` is the
/// project's file, already loaded; `read` reads its bytes, which are needed only when a
/// version is recorded. The approved version comes from `db`.
pub async fn resolve(
    runtime: &Runtime,
    db: &dyn Db,
    spec: &ConnectionSpec,
    read: &dyn Fn() -> anyhow::Result<Vec<u8>>,
    offered: Connector,
) -> anyhow::Result<LoadedConnector> {
    let Some(approved) = approval(db, &spec.name)? else {
        record(
            db,
            &spec.name,
            &offered,
            &reread(read, &offered, spec)?,
            &Grant::default(),
            "first_install",
        )?;
        return Ok(LoadedConnector {
            connector: offered,
            grant: spec.grant.clone(),
        });
    };
    let grant = extend(&spec.grant, &approved.extension);
    let offered_sha256 = offered.component_hash().to_owned();
    if offered_sha256 == approved.record.sha256 {
        return Ok(LoadedConnector {
            connector: offered,
            grant,
        });
    }
    let widening = widening(offered.manifest(), &grant, Some(&approved.manifest));
    if widening.is_empty() {
        record(
            db,
            &spec.name,
            &offered,
            &reread(read, &offered, spec)?,
            &approved.extension,
            "within_grant",
        )?;
        return Ok(LoadedConnector {
            connector: offered,
            grant,
        });
    }
    audit::connector_upgrade_pending(
        &spec.name,
        &offered_sha256,
        &approved.record.sha256,
        &widening.to_string(),
    );
    let origin = format!(
        "the approved version of connection {:?} (from the history)",
        spec.name
    );
    let running = runtime
        .load_bytes(&approved.record.component, &origin)
        .await
        .with_context(|| format!("cannot load {origin}"))?;
    Ok(LoadedConnector {
        connector: running,
        grant,
    })
}

/// Approves the project's current file for `spec`'s connection: records it and adds its
/// widening to the extension. Returns what was added (empty if nothing needed approval).
pub fn approve(
    db: &dyn Db,
    spec: &ConnectionSpec,
    bytes: &[u8],
    offered: &Connector,
) -> anyhow::Result<Widening> {
    let checked = check(db, spec, offered.manifest())?;
    let extension = extend(&checked.extension, &checked.widening.as_grant());
    record(db, &spec.name, offered, bytes, &extension, "operator")?;
    Ok(checked.widening)
}

/// Where a connection's connector file stands against its approval record.
#[derive(Debug, Clone)]
pub struct UpgradeCheck {
    /// The approved version; `None` before the connection was first opened with a history.
    pub approved: Option<VersionInfo>,
    /// What approvals added to the connection's grant.
    pub extension: Grant,
    /// What `offered` asks for beyond the grant (with the extension) and the approved version.
    pub widening: Widening,
}

/// Compares `offered` (the project's file) with `spec`'s approval record, changing nothing.
pub fn check(db: &dyn Db, spec: &ConnectionSpec, offered: &Manifest) -> anyhow::Result<UpgradeCheck> {
    let approved = approval(db, &spec.name)?;
    let extension = approved.as_ref().map(|a| a.extension.clone()).unwrap_or_default();
    let widening = widening(
        offered,
        &extend(&spec.grant, &extension),
        approved.as_ref().map(|a| &a.manifest),
    );
    Ok(UpgradeCheck {
        approved: approved.map(|a| VersionInfo::of(&a.manifest, &a.record.sha256)),
        extension,
        widening,
    })
}

/// A JSON value of the extension for reports.
pub fn grant_json(grant: &Grant) -> Value {
    serde_json::to_value(grant).unwrap_or(Value::Null)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(hosts: &[&str], secrets: &[(&str, bool)]) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "id": "mailer",
            "version": "1.0.0",
            "display_name": "Mailer",
            "description": "",
            "operations": [],
            "hosts": hosts,
            "secrets": secrets.iter().map(|(name, plaintext)| serde_json::json!({
                "name": name, "description": "", "hosts": [], "plaintext": plaintext
            })).collect::<Vec<_>>(),
            "parameters": [],
        }))
        .unwrap()
    }

    fn grant(hosts: &[&str], secrets: &[(&str, bool)]) -> Grant {
        serde_json::from_value(serde_json::json!({
            "hosts": hosts,
            "secrets": secrets.iter().map(|(name, plaintext)| serde_json::json!({
                "name": name, "plaintext": plaintext
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn asks(w: &Widening) -> String {
        w.to_string()
    }

    #[test]
    fn widening_table() {
        let granted = grant(&["https://*.mail.test"], &[("key", false)]);
        let approved = manifest(
            &["https://api.mail.test", "https://stats.other.test"],
            &[("key", false)],
        );
        // (what the new version requests, what it asks for beyond grant and approved version)
        type Case = (
            &'static [&'static str],
            &'static [(&'static str, bool)],
            &'static str,
        );
        let table: &[Case] = &[
            (&["https://api.mail.test"], &[("key", false)], ""),
            // inside the grant's wildcard: nothing to approve
            (&["https://eu.mail.test"], &[], ""),
            // requested by the approved version already (the grant denies it at each call)
            (&["https://stats.other.test"], &[], ""),
            (&["https://evil.test"], &[], "host https://evil.test"),
            (&["https://*.test"], &[], "host https://*.test"),
            (&["http://api.mail.test"], &[], "host http://api.mail.test"),
            (&[], &[("other", false)], "secret other"),
            (&[], &[("key", true)], "secret key (with its plaintext)"),
        ];
        for &(hosts, secrets, expected) in table {
            let offered = manifest(hosts, secrets);
            assert_eq!(
                asks(&widening(&offered, &granted, Some(&approved))),
                expected,
                "{hosts:?} {secrets:?}"
            );
        }
    }

    #[test]
    fn approving_a_widening_makes_it_covered() {
        let granted = grant(&["https://api.mail.test"], &[("key", false)]);
        let offered = manifest(
            &["https://api.mail.test", "https://eu.mail.test"],
            &[("key", true), ("new", false)],
        );
        let wide = widening(&offered, &granted, None);
        assert_eq!(
            asks(&wide),
            "host https://eu.mail.test, secret key (with its plaintext), secret new"
        );
        let extended = extend(&granted, &wide.as_grant());
        assert!(widening(&offered, &extended, None).is_empty());
        // The extension only adds: the grant's own entries are still there, unchanged.
        assert_eq!(extended.hosts[0].as_str(), "https://api.mail.test");
        assert!(
            extended
                .secrets
                .iter()
                .any(|s| s.name.as_str() == "key" && s.plaintext)
        );
    }
}
