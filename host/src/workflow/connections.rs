//! Turning `connections.json` entries into live [`Connection`]s: load the connector, resolve
//! `@appsetting` and `@secret` references, hand declared secrets to a source that holds only
//! those.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

use crate::db::Db;
use crate::grant::Grant;
use crate::ids::{ConnectionName, SecretName};
use crate::secrets::store::SecretStore;
use crate::secrets::{SecretSource, SecretUnavailable, SecretValue};
use crate::{Connection, ConnectionConfig, Connector, LoadError, Runtime, builtin};

use super::project::{ConnectionSpec, ConnectorSource, Project, appsetting_reference, secret_reference};
use super::upgrades;

/// Where one of a connection's secrets comes from.
enum SecretOrigin {
    /// An app setting, read once when the connection was made.
    Setting(Arc<SecretValue>),
    /// The encrypted store, opened at each use, so `cordon secrets set` takes effect on the
    /// next call without a restart.
    Stored {
        store: SecretStore,
        stored_as: SecretName,
    },
}

/// The secrets of one connection: only the names its `connections.json` entry maps.
pub struct ConnectionSecrets {
    origins: BTreeMap<SecretName, SecretOrigin>,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSecrets")
            .field("names", &self.origins.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretSource for ConnectionSecrets {
    fn load(&self, name: &SecretName) -> Result<SecretValue, SecretUnavailable> {
        match self.origins.get(name) {
            Some(SecretOrigin::Setting(value)) => Ok(SecretValue::new(value.expose())),
            Some(SecretOrigin::Stored { store, stored_as }) => {
                store.get(stored_as).map_err(|e| SecretUnavailable {
                    name: name.to_string(),
                    reason: e.to_string(),
                })
            }
            None => Err(SecretUnavailable {
                name: name.to_string(),
                reason: "connections.json gives it no @appsetting or @secret reference".to_owned(),
            }),
        }
    }
}

/// The connector a connection runs and the grant it runs with.
pub struct LoadedConnector {
    pub connector: Connector,
    /// The connection's grant, with what approved upgrades added.
    pub grant: Grant,
}

impl std::fmt::Debug for LoadedConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedConnector")
            .field("connector", &self.connector.manifest().id)
            .field("sha256", &self.connector.component_hash())
            .field("grant", &self.grant)
            .finish()
    }
}

/// Loads the connector a connection names. With `approvals`, a connector file goes through
/// the upgrade check ([`super::upgrades`]).
pub async fn load_connector(
    runtime: &Runtime,
    project: &Project,
    spec: &ConnectionSpec,
    approvals: Option<&dyn Db>,
) -> anyhow::Result<LoadedConnector> {
    let ConnectorSource::File(path) = &spec.connector else {
        return Ok(LoadedConnector {
            connector: load_current(runtime, spec, None).await?,
            grant: spec.grant.clone(),
        });
    };
    // Through the runtime's file loader, so an unchanged file is not read or hashed again
    // (its bytes are read below only if an approval has to record them).
    let connector = runtime
        .load_file_in(&project.dir, &project.root, path)
        .await
        .map_err(|error| match error {
            LoadError::Read { .. } => anyhow::Error::new(error).context(format!(
                "connection {:?}: cannot read connector {path:?} inside the project (paths are relative to the project and cannot leave it)",
                spec.name
            )),
            other => other.into(),
        })?;
    match approvals {
        Some(db) => {
            let read = || read_connector_file(project, spec);
            upgrades::resolve(runtime, db, spec, &read, connector).await
        }
        None => Ok(LoadedConnector {
            connector,
            grant: spec.grant.clone(),
        }),
    }
}

/// The bytes of a connection's connector file.
pub fn read_connector_file(project: &Project, spec: &ConnectionSpec) -> anyhow::Result<Vec<u8>> {
    let ConnectorSource::File(path) = &spec.connector else {
        bail!("connection {:?} uses a built-in connector, not a file", spec.name);
    };
    project.read_connector_file(path).with_context(|| {
        format!(
            "connection {:?}: cannot read connector {path:?} inside the project (paths are relative to the project and cannot leave it)",
            spec.name
        )
    })
}

/// Loads the connector the project names now: the built-in, or the file's `bytes`.
pub async fn load_current(
    runtime: &Runtime,
    spec: &ConnectionSpec,
    bytes: Option<&[u8]>,
) -> anyhow::Result<Connector> {
    match &spec.connector {
        ConnectorSource::Builtin(name) => {
            let Some(found) = builtin::find(name) else {
                let names: Vec<_> = builtin::BUILTINS.iter().map(|b| b.name).collect();
                bail!(
                    "connection {:?} names connector {name:?}, which is not built in (built-ins: {}); for a custom connector give the path of its .wasm file",
                    spec.name,
                    names.join(", ")
                );
            };
            Ok(runtime.load_builtin(found).await?)
        }
        ConnectorSource::File(path) => {
            let bytes = bytes.context("a connector file's bytes were not read")?;
            Ok(runtime.load_bytes(bytes, &path.display().to_string()).await?)
        }
    }
}

/// Binds a loaded connector to a connection's parameters, secrets and grant. Returns the
/// connection and the names of the settings it uses as secrets (which workflow expressions
/// must not read). `store` is the encrypted secret store, if a master key was given.
pub fn connect(
    connector: &Connector,
    project: &Project,
    spec: &ConnectionSpec,
    grant: &Grant,
    store: Option<&SecretStore>,
) -> anyhow::Result<(Connection, BTreeSet<String>)> {
    let manifest = connector.manifest();
    let secret_names: BTreeSet<&str> = manifest.secrets.iter().map(|s| s.name.as_str()).collect();
    let mut parameters = Map::new();
    let mut secrets = BTreeMap::new();
    let mut secret_settings = BTreeSet::new();
    for (name, value) in &spec.parameter_values {
        let setting = appsetting_reference(value);
        if secret_names.contains(name.as_str()) {
            let origin = match (setting, secret_reference(value)) {
                (Some(setting), _) => {
                    let Some(text) = project.settings.get(&setting) else {
                        bail!(
                            "connection {:?}: secret {name:?} refers to app setting {setting:?}, which is neither in local.settings.json nor in the environment",
                            spec.name
                        );
                    };
                    secret_settings.insert(setting);
                    SecretOrigin::Setting(Arc::new(SecretValue::new(text)))
                }
                (None, Some(stored)) => stored_origin(spec, name, &stored, store)?,
                (None, None) => bail!(
                    "connection {:?}: {name:?} is a secret of connector {:?}; write it as \"@secret('NAME')\" (a value stored with `cordon secrets set NAME`) or \"@appsetting('SETTING')\" (local.settings.json or the environment), never as text in connections.json",
                    spec.name,
                    manifest.id.as_str()
                ),
            };
            secrets.insert(SecretName::new(name.clone())?, origin);
            continue;
        }
        let resolved = match setting {
            Some(setting) => Value::String(project.settings.get(&setting).with_context(|| {
                format!(
                    "connection {:?}: parameter {name:?} refers to app setting {setting:?}, which is neither in local.settings.json nor in the environment",
                    spec.name
                )
            })?),
            None => value.clone(),
        };
        parameters.insert(name.clone(), resolved);
    }
    let connection = connector.connect(ConnectionConfig {
        name: ConnectionName::new(spec.name.clone())?,
        parameters,
        grant: grant.clone(),
        secrets: Arc::new(ConnectionSecrets { origins: secrets }),
    })?;
    Ok((connection, secret_settings))
}

/// Checks that a `@secret('NAME')` reference can be served: there is a store, the name is
/// valid, and the store holds it (opened once here, so a wrong key shows now, not mid-run).
fn stored_origin(
    spec: &ConnectionSpec,
    parameter: &str,
    stored: &str,
    store: Option<&SecretStore>,
) -> anyhow::Result<SecretOrigin> {
    let context = || {
        format!(
            "connection {:?}: secret {parameter:?} refers to stored secret {stored:?}",
            spec.name
        )
    };
    let Some(store) = store else {
        bail!(
            "{}, but the secret store is not open: {}",
            context(),
            crate::secrets::store::MasterKeyError::NotSet
        );
    };
    let stored_as = SecretName::new(stored).with_context(context)?;
    store.get(&stored_as).with_context(context)?;
    Ok(SecretOrigin::Stored {
        store: store.clone(),
        stored_as,
    })
}
