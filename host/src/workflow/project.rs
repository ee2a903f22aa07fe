//! A project directory, the unit a user runs:
//!
//! ```text
//! project/
//!   connections.json      serviceProviderConnections: connector, parameterValues, grant
//!   parameters.json       {"name": {"type": "String", "value": ...}}
//!   local.settings.json   {"Values": {"GITHUB_TOKEN": "..."}} (optional; the environment wins)
//!   <workflow>/workflow.json
//!   connectors/*.wasm     custom connectors, referenced by relative path
//! ```
//!
//! Files are read through a cap-std directory handle on the project, so a path written in a
//! definition (a connector's `.wasm`) cannot reach outside the project.
//!
//! `connections.json` follows Logic Apps Standard, plus what a sandbox needs:
//!
//! ```json
//! {"serviceProviderConnections": {
//!    "github": {
//!      "connector": "github",
//!      "parameterValues": {"base_url": "https://api.github.com", "token": "@appsetting('GITHUB_TOKEN')"},
//!      "grant": {"hosts": ["https://api.github.com"], "secrets": [{"name": "token"}]}}},
//!  "http": {"parameterValues": {"password": "@secret('API_PASSWORD')"},
//!           "grant": {"hosts": ["https://example.com"], "secrets": [{"name": "password"}]}}}
//! ```
//!
//! `connector` is a built-in connector's name or a `.wasm` path relative to the project. A
//! parameter whose value is `@appsetting('NAME')` is read from the settings, and one whose
//! value is `@secret('NAME')` from the encrypted secret store (`cordon secrets set`); a
//! connector's secrets must be given one of those ways, never as literal text. The top-level `http` grant is what
//! the built-in `Http` action may reach (nothing by default); its `parameterValues` give the
//! secrets its `authentication` takes from the connection (`token` for Bearer, `api_key` for
//! ApiKey, `password` for Basic without a password), the same two ways.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde_json::{Map, Value};

use crate::grant::Grant;

use super::Problem;
use super::definition::{Workflow, read_workflow};

/// Where a connection's connector comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorSource {
    Builtin(String),
    /// A path relative to the project directory.
    File(PathBuf),
}

/// One entry of `serviceProviderConnections`.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    pub name: String,
    pub connector: ConnectorSource,
    /// Values as written; `@appsetting('X')` and `@secret('X')` references are resolved
    /// when connecting.
    pub parameter_values: Map<String, Value>,
    pub grant: Grant,
}

/// A loaded project: everything read, every problem found.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub dir: Dir,
    pub connections: BTreeMap<String, ConnectionSpec>,
    /// Parameter values from `parameters.json`.
    pub parameters: Map<String, Value>,
    pub settings: Settings,
    /// What the built-in `Http` action may reach.
    pub http_grant: Grant,
    /// The built-in `Http` action's connection parameters as written (`connections.json`'s
    /// `http.parameterValues`): the `token`, `api_key` and `password` secrets its
    /// `authentication` takes, by `@secret('NAME')` or `@appsetting('NAME')`.
    pub http_parameter_values: Map<String, Value>,
    pub workflows: BTreeMap<String, Workflow>,
    /// Problems found while reading; `validate` adds the rest.
    pub problems: Vec<Problem>,
}

/// App settings: `local.settings.json` `Values`, overridden by the environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    pub fn from_values(values: BTreeMap<String, String>) -> Settings {
        Settings { values }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.values.get(name).cloned())
    }
}

/// The setting named by a whole-value `@appsetting('NAME')`, if that is what `value` is.
pub fn appsetting_reference(value: &Value) -> Option<String> {
    call_reference(value, "appsetting")
}

/// The stored secret named by a whole-value `@secret('NAME')`: a value in the encrypted
/// secret store (`cordon secrets set NAME`).
pub fn secret_reference(value: &Value) -> Option<String> {
    call_reference(value, "secret")
}

/// The quoted argument of a whole-value `@function('ARG')`.
fn call_reference(value: &Value, function: &str) -> Option<String> {
    let inner = value
        .as_str()?
        .trim()
        .strip_prefix('@')?
        .strip_prefix(function)?
        .strip_prefix('(')?
        .strip_suffix(')')?
        .trim()
        .strip_prefix('\'')?
        .strip_suffix('\'')?;
    Some(inner.to_owned())
}

fn problem(file: &str, path: &str, message: impl Into<String>) -> Problem {
    Problem {
        workflow: file.to_owned(),
        action: None,
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads a JSON file from the project, if it exists.
fn read_json(dir: &Dir, file: &str, problems: &mut Vec<Problem>) -> Option<Value> {
    let text = match dir.read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(problem(file, "$", format!("cannot read: {e}")));
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(value) => Some(value),
        Err(e) => {
            problems.push(problem(
                file,
                "$",
                format!("malformed JSON at line {}, column {}: {e}", e.line(), e.column()),
            ));
            None
        }
    }
}

impl Project {
    /// Opens and reads a project. Fails only if the directory cannot be opened; everything
    /// else wrong is in [`Project::problems`].
    pub fn open(root: &Path) -> anyhow::Result<Project> {
        let dir = Dir::open_ambient_dir(root, ambient_authority()).map_err(|e| {
            anyhow::anyhow!("cannot open the project directory {root:?}: {e}; pass the folder that holds connections.json and the workflow folders")
        })?;
        let mut problems = Vec::new();

        let settings = read_json(&dir, "local.settings.json", &mut problems)
            .and_then(|v| v.get("Values").and_then(Value::as_object).cloned())
            .map(|values| {
                Settings::from_values(
                    values
                        .into_iter()
                        .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                        .collect(),
                )
            })
            .unwrap_or_default();

        let mut parameters = Map::new();
        if let Some(value) = read_json(&dir, "parameters.json", &mut problems) {
            match value.as_object() {
                Some(map) => {
                    for (name, p) in map {
                        match p.get("value") {
                            Some(v) => {
                                parameters.insert(name.clone(), v.clone());
                            }
                            None => problems.push(problem(
                                "parameters.json",
                                &format!("$.{name}"),
                                "a parameter is {\"type\": ..., \"value\": ...}; \"value\" is missing",
                            )),
                        }
                    }
                }
                None => problems.push(problem("parameters.json", "$", "must be an object of parameters")),
            }
        }

        let mut connections = BTreeMap::new();
        let mut http_grant = Grant::default();
        let mut http_parameter_values = Map::new();
        if let Some(value) = read_json(&dir, "connections.json", &mut problems) {
            if let Some(http) = value.get("http") {
                (http_grant, http_parameter_values) = read_http_connection(http, &mut problems);
            }
            if !value.is_object() {
                problems.push(problem(
                    "connections.json",
                    "$",
                    "must be an object: {\"serviceProviderConnections\": {...}, \"http\": {...}}",
                ));
            }
            match value.get("serviceProviderConnections") {
                None => {}
                Some(Value::Object(map)) => {
                    for (name, spec) in map {
                        if let Some(c) = read_connection(name, spec, &mut problems) {
                            connections.insert(name.clone(), c);
                        }
                    }
                }
                // Ignoring it would leave every connection undeclared, and the workflows'
                // errors would point at them rather than at this.
                Some(_) => problems.push(problem(
                    "connections.json",
                    "$.serviceProviderConnections",
                    "must be an object of connections by name, e.g. {\"orders\": {\"connector\": \"csv\"}}",
                )),
            }
        }

        let mut workflows = BTreeMap::new();
        let entries = dir
            .entries()
            .map_err(|e| anyhow::anyhow!("cannot list the project directory {root:?}: {e}"))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let file = format!("{name}/workflow.json");
            if !dir.exists(&file) {
                continue;
            }
            let mut file_problems = Vec::new();
            let Some(document) = read_json(&dir, &file, &mut file_problems) else {
                problems.extend(file_problems.into_iter().map(|mut p| {
                    p.workflow = name.clone();
                    p
                }));
                continue;
            };
            let (workflow, found) = read_workflow(&name, &document);
            problems.extend(found);
            if let Some(workflow) = workflow {
                workflows.insert(name, workflow);
            }
        }

        Ok(Project {
            root: root.to_owned(),
            dir,
            connections,
            parameters,
            settings,
            http_grant,
            http_parameter_values,
            workflows,
            problems,
        })
    }

    /// The workflow called `name`, or an error listing the ones there are.
    pub fn workflow(&self, name: &str) -> anyhow::Result<&Workflow> {
        self.workflows.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.workflows.keys().map(String::as_str).collect();
            anyhow::anyhow!(
                "project {:?} has no workflow {name:?} (a folder with workflow.json); it has: {}",
                self.root,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// Reads a connector file named in `connections.json`, confined to the project.
    pub fn read_connector_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.dir.read(path)
    }
}

/// `connections.json`'s `http`: the grant of the built-in `Http` action (required: without
/// one it reaches nothing) and the parameter values that carry its secrets.
fn read_http_connection(http: &Value, problems: &mut Vec<Problem>) -> (Grant, Map<String, Value>) {
    const EXPECTED: &str =
        "expected {\"grant\": {\"hosts\": [...], \"secrets\": [...]}, \"parameterValues\": {...}}";
    let Some(entries) = http.as_object() else {
        problems.push(problem("connections.json", "$.http", EXPECTED));
        return (Grant::default(), Map::new());
    };
    for key in entries
        .keys()
        .filter(|k| !["grant", "parameterValues"].contains(&k.as_str()))
    {
        problems.push(problem(
            "connections.json",
            &format!("$.http.{key}"),
            format!("unknown key {key:?}; {EXPECTED} (secrets go in parameterValues as \"@secret('NAME')\")"),
        ));
    }
    let grant = grant_of(entries.get("grant"), "$.http", problems).unwrap_or_else(|| {
        problems.push(problem("connections.json", "$.http", EXPECTED));
        Grant::default()
    });
    let parameter_values = parameter_values_of(entries.get("parameterValues"), "$.http", problems);
    (grant, parameter_values)
}

/// A connection entry's `grant` (at `path`), `None` when the entry has none; a malformed one
/// is a problem and grants nothing.
fn grant_of(grant: Option<&Value>, path: &str, problems: &mut Vec<Problem>) -> Option<Grant> {
    match serde_json::from_value::<Grant>(grant?.clone()) {
        Ok(grant) => Some(grant),
        Err(e) => {
            problems.push(problem(
                "connections.json",
                &format!("{path}.grant"),
                e.to_string(),
            ));
            Some(Grant::default())
        }
    }
}

/// A connection entry's `parameterValues` (at `path`): an object, or nothing.
fn parameter_values_of(
    values: Option<&Value>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Map<String, Value> {
    match values {
        None => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            problems.push(problem(
                "connections.json",
                &format!("{path}.parameterValues"),
                "must be an object",
            ));
            Map::new()
        }
    }
}

/// The keys of a connection entry: cordon's own, then those Logic Apps Standard writes.
const CONNECTION_KEYS: [&str; 6] = [
    "connector",
    "parameterValues",
    "grant",
    "serviceProvider",
    "displayName",
    "parameterSetName",
];

fn read_connection(name: &str, spec: &Value, problems: &mut Vec<Problem>) -> Option<ConnectionSpec> {
    let path = format!("$.serviceProviderConnections.{name}");
    let Some(entries) = spec.as_object() else {
        problems.push(problem(
            "connections.json",
            &path,
            "a connection must be an object: {\"connector\": ..., \"parameterValues\": {...}, \"grant\": {...}}",
        ));
        return None;
    };
    // An unknown key is most likely a misplaced one ("secrets" instead of a parameter's
    // @secret value, "grants"), and ignoring it would drop what the operator meant.
    for key in entries.keys().filter(|k| !CONNECTION_KEYS.contains(&k.as_str())) {
        problems.push(problem(
            "connections.json",
            &format!("{path}.{key}"),
            format!(
                "unknown key {key:?}; a connection takes {} (secrets go in parameterValues as \"@secret('NAME')\")",
                CONNECTION_KEYS.join(", ")
            ),
        ));
    }
    let connector = spec.get("connector").and_then(Value::as_str).or_else(|| {
        spec.pointer("/serviceProvider/id")
            .and_then(Value::as_str)
            .map(|id| id.rsplit('/').next().unwrap_or(id))
    });
    let Some(connector) = connector else {
        problems.push(problem(
            "connections.json",
            &path,
            "a connection needs \"connector\": a built-in connector's name or a .wasm path in the project",
        ));
        return None;
    };
    let connector = if connector.ends_with(".wasm") || connector.contains('/') {
        ConnectorSource::File(PathBuf::from(connector))
    } else {
        ConnectorSource::Builtin(connector.to_owned())
    };
    let parameter_values = parameter_values_of(spec.get("parameterValues"), &path, problems);
    let grant = grant_of(spec.get("grant"), &path, problems).unwrap_or_default();
    Some(ConnectionSpec {
        name: name.to_owned(),
        connector,
        parameter_values,
        grant,
    })
}
