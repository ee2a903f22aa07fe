//! Turning `connections.json` entries into live [`Connection`]s: load the connector, resolve
//! `@appsetting` references, hand declared secrets to a source that holds only those.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

use crate::ids::{ConnectionName, SecretName};
use crate::secrets::{SecretSource, SecretUnavailable, SecretValue};
use crate::{Connection, ConnectionConfig, Connector, Runtime, builtin};

use super::project::{ConnectionSpec, ConnectorSource, Project, appsetting_reference};

/// Secrets resolved from app settings for one connection. Holds only the names the connection
/// maps to a setting.
pub struct SettingsSecrets {
    values: BTreeMap<SecretName, Arc<SecretValue>>,
}

impl std::fmt::Debug for SettingsSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsSecrets")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretSource for SettingsSecrets {
    fn load(&self, name: &SecretName) -> Result<SecretValue, SecretUnavailable> {
        self.values
            .get(name)
            .map(|v| SecretValue::new(v.expose()))
            .ok_or_else(|| SecretUnavailable {
                name: name.to_string(),
                reason: "connections.json gives it no @appsetting reference".to_owned(),
            })
    }
}

/// Loads the connector a connection names.
pub async fn load_connector(
    runtime: &Runtime,
    project: &Project,
    spec: &ConnectionSpec,
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
            let bytes = project.read_connector_file(path).with_context(|| {
                format!(
                    "connection {:?}: cannot read connector {path:?} inside the project (paths are relative to the project and cannot leave it)",
                    spec.name
                )
            })?;
            Ok(runtime.load_bytes(&bytes, &path.display().to_string()).await?)
        }
    }
}

/// Binds a loaded connector to a connection's parameters, secrets and grant. Returns the
/// connection and the names of the settings it uses as secrets (which workflow expressions
/// must not read).
pub fn connect(
    connector: &Connector,
    project: &Project,
    spec: &ConnectionSpec,
) -> anyhow::Result<(Connection, BTreeSet<String>)> {
    let manifest = connector.manifest();
    let secret_names: BTreeSet<&str> = manifest.secrets.iter().map(|s| s.name.as_str()).collect();
    let mut parameters = Map::new();
    let mut secrets = BTreeMap::new();
    let mut secret_settings = BTreeSet::new();
    for (name, value) in &spec.parameter_values {
        let setting = appsetting_reference(value);
        if secret_names.contains(name.as_str()) {
            let Some(setting) = setting else {
                bail!(
                    "connection {:?}: {name:?} is a secret of connector {:?}; write it as \"@appsetting('SETTING')\" and put the value in local.settings.json or the environment, never in connections.json",
                    spec.name,
                    manifest.id
                );
            };
            let Some(text) = project.settings.get(&setting) else {
                bail!(
                    "connection {:?}: secret {name:?} refers to app setting {setting:?}, which is neither in local.settings.json nor in the environment",
                    spec.name
                );
            };
            secrets.insert(SecretName::new(name.clone())?, Arc::new(SecretValue::new(text)));
            secret_settings.insert(setting);
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
        grant: spec.grant.clone(),
        secrets: Arc::new(SettingsSecrets { values: secrets }),
    })?;
    Ok((connection, secret_settings))
}
