//! A connector's manifest as the host trusts it: read from `describe`, then validated once.
//! Every id is a validated newtype, every host pattern is parsed, every JSON Schema compiles.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bindings::types as wit;
use crate::host_pattern::HostPattern;
use crate::ids::{ConnectorId, OperationId, ParameterName, SecretName};

/// Whether an operation starts runs or is a step in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Action,
    Trigger,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub id: OperationId,
    pub kind: OperationKind,
    pub display_name: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Value,
    /// Compiled on first use: a manifest read back from the artifact cache was validated when
    /// it was first described, and compiling every schema on every load would double the
    /// cost of a cached load.
    #[serde(skip)]
    validators: Arc<OnceLock<Result<Validators, String>>>,
}

/// The compiled input and output schemas of an operation.
#[derive(Debug)]
pub(crate) struct Validators {
    pub(crate) input: jsonschema::Validator,
    pub(crate) output: jsonschema::Validator,
}

impl Operation {
    /// Why `input` does not fit this operation's input schema (empty when it fits).
    pub fn check_input(&self, input: &Value) -> Vec<String> {
        match self.validators() {
            Ok(validators) => schema_errors(&validators.input, input, 10),
            Err(e) => vec![e],
        }
    }

    pub(crate) fn validators(&self) -> Result<&Validators, String> {
        self.validators
            .get_or_init(|| {
                let input = compile_schema(&self.id, "input", &self.input_schema)?;
                let output = compile_schema(&self.id, "output", &self.output_schema)?;
                Ok(Validators { input, output })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretRequest {
    pub name: SecretName,
    pub description: String,
    pub hosts: Vec<HostPattern>,
    pub plaintext: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionParameter {
    pub name: ParameterName,
    pub description: String,
    pub required: bool,
    pub default_value: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub id: ConnectorId,
    pub version: semver::Version,
    pub display_name: String,
    pub description: String,
    pub operations: Vec<Operation>,
    pub hosts: Vec<HostPattern>,
    pub secrets: Vec<SecretRequest>,
    pub parameters: Vec<ConnectionParameter>,
}

/// Everything wrong with a manifest, one problem a line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the connector's manifest is invalid:\n  - {}", problems.join("\n  - "))]
pub struct InvalidManifest {
    pub problems: Vec<String>,
}

impl Manifest {
    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.id.as_str() == id)
    }

    pub fn secret(&self, name: &SecretName) -> Option<&SecretRequest> {
        self.secrets.iter().find(|s| &s.name == name)
    }

    /// Validates what `describe` returned, collecting every problem rather than stopping at
    /// the first, so a connector author fixes them in one go.
    pub(crate) fn from_wit(raw: wit::Manifest) -> Result<Manifest, InvalidManifest> {
        let mut problems = Vec::new();
        let mut note = |p: String| problems.push(p);

        let id = ConnectorId::new(raw.id).map_err(|e| note(e.to_string())).ok();
        let version = semver::Version::parse(&raw.version)
            .map_err(|e| {
                note(format!(
                    "version {:?} is not a semantic version: {e}",
                    raw.version
                ))
            })
            .ok();
        let hosts: Vec<HostPattern> = raw
            .hosts
            .iter()
            .filter_map(|h| HostPattern::parse(h).map_err(|e| note(e.to_string())).ok())
            .collect();

        let mut seen = BTreeSet::new();
        let mut operations = Vec::new();
        for op in raw.operations {
            let Ok(op_id) = OperationId::new(op.id.clone()).map_err(|e| note(e.to_string())) else {
                continue;
            };
            if !seen.insert(op_id.clone()) {
                note(format!("operation {op_id:?} is declared twice"));
                continue;
            }
            let input = parse_schema(&op_id, "input", &op.input_schema).map_err(&mut note);
            let output = parse_schema(&op_id, "output", &op.output_schema).map_err(&mut note);
            if let (Ok(input_schema), Ok(output_schema)) = (input, output) {
                let operation = Operation {
                    id: op_id,
                    kind: match op.kind {
                        wit::OperationKind::Action => OperationKind::Action,
                        wit::OperationKind::Trigger => OperationKind::Trigger,
                    },
                    display_name: op.display_name,
                    description: op.description,
                    input_schema,
                    output_schema,
                    validators: Arc::default(),
                };
                // Schemas that do not compile are a manifest error, found at load time.
                match operation.validators() {
                    Ok(_) => operations.push(operation),
                    Err(problem) => note(problem),
                }
            }
        }

        let mut secrets = Vec::new();
        let mut secret_names = BTreeSet::new();
        for s in raw.secrets {
            let Ok(name) = SecretName::new(s.name).map_err(|e| note(e.to_string())) else {
                continue;
            };
            if !secret_names.insert(name.clone()) {
                note(format!("secret {name:?} is declared twice"));
                continue;
            }
            let hosts = s
                .hosts
                .iter()
                .filter_map(|h| {
                    HostPattern::parse(h)
                        .map_err(|e| note(format!("secret {name:?}: {e}")))
                        .ok()
                })
                .collect();
            secrets.push(SecretRequest {
                name,
                description: s.description,
                hosts,
                plaintext: s.plaintext,
            });
        }

        let mut parameters = Vec::new();
        let mut parameter_names = BTreeSet::new();
        for p in raw.parameters {
            let Ok(name) = ParameterName::new(p.name).map_err(|e| note(e.to_string())) else {
                continue;
            };
            if !parameter_names.insert(name.clone()) {
                note(format!("parameter {name:?} is declared twice"));
                continue;
            }
            let default_value = match p.default_value.map(|d| serde_json::from_str::<Value>(&d)) {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    note(format!("parameter {name:?}: default value is not JSON: {e}"));
                    None
                }
            };
            parameters.push(ConnectionParameter {
                name,
                description: p.description,
                required: p.required,
                default_value,
            });
        }

        match (id, version) {
            (Some(id), Some(version)) if problems.is_empty() => Ok(Manifest {
                id,
                version,
                display_name: raw.display_name,
                description: raw.description,
                operations,
                hosts,
                secrets,
                parameters,
            }),
            _ => Err(InvalidManifest { problems }),
        }
    }
}

fn parse_schema(op: &OperationId, which: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("operation {op:?}: the {which} schema is not JSON: {e}"))
}

fn compile_schema(op: &OperationId, which: &str, schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema)
        .map_err(|e| format!("operation {op:?}: the {which} schema does not compile: {e}"))
}

/// Checks `value` against a compiled schema and returns at most `limit` readable reasons.
pub(crate) fn schema_errors(validator: &jsonschema::Validator, value: &Value, limit: usize) -> Vec<String> {
    // Every call checks its input and output, and nearly all are valid: `is_valid` stops at
    // the first failure and builds no error values, so the reasons are collected only for a
    // value that has some.
    if validator.is_valid(value) {
        return Vec::new();
    }
    validator
        .iter_errors(value)
        .take(limit)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("at {path}: {e}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> wit::Manifest {
        wit::Manifest {
            id: "demo".into(),
            version: "1.0.0".into(),
            display_name: "Demo".into(),
            description: String::new(),
            operations: vec![wit::Operation {
                id: "echo".into(),
                kind: wit::OperationKind::Action,
                display_name: "echo".into(),
                description: String::new(),
                input_schema: r#"{"type":"object"}"#.into(),
                output_schema: "true".into(),
            }],
            hosts: vec!["https://api.example.com".into()],
            secrets: vec![],
            parameters: vec![],
        }
    }

    #[test]
    fn accepts_a_good_manifest() {
        let m = Manifest::from_wit(raw()).unwrap();
        assert_eq!(m.id.as_str(), "demo");
        assert!(m.operation("echo").is_some());
    }

    #[test]
    fn lists_every_problem() {
        let mut bad = raw();
        bad.id = "Bad Id".into();
        bad.version = "one".into();
        bad.hosts.push("ftp://x".into());
        bad.operations.push(bad.operations[0].clone());
        bad.operations.push(wit::Operation {
            id: "broken".into(),
            input_schema: r#"{"type": 12}"#.into(),
            ..bad.operations[0].clone()
        });
        let error = Manifest::from_wit(bad).unwrap_err();
        let text = error.to_string();
        for expected in [
            "connector id",
            "semantic version",
            "ftp://x",
            "declared twice",
            "\"broken\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
    }

    /// Valid values take the `is_valid` fast path; invalid ones still get their reasons, with
    /// where they are, up to the limit.
    #[test]
    fn schema_errors_explain_invalid_values_only() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": { "url": { "type": "string" }, "count": { "type": "integer" } },
            "required": ["url"],
            "additionalProperties": false
        });
        let validator = jsonschema::validator_for(&schema).unwrap();
        let cases: [(Value, &[&str]); 4] = [
            (serde_json::json!({ "url": "https://x" }), &[]),
            (serde_json::json!({ "url": "https://x", "count": 3 }), &[]),
            (serde_json::json!({ "url": 7 }), &["at /url:"]),
            (
                serde_json::json!({ "count": "three", "extra": 1 }),
                &["at /count:", "url", "extra"],
            ),
        ];
        for (value, expected) in cases {
            let reasons = schema_errors(&validator, &value, 10);
            assert_eq!(reasons.is_empty(), expected.is_empty(), "{value}: {reasons:?}");
            for needle in expected {
                assert!(
                    reasons.iter().any(|r| r.contains(needle)),
                    "{value}: no {needle:?} in {reasons:?}"
                );
            }
        }
        let capped = schema_errors(
            &validator,
            &serde_json::json!({ "count": "three", "extra": 1 }),
            1,
        );
        assert_eq!(capped.len(), 1, "{capped:?}");
    }
}
