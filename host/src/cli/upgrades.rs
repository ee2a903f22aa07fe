//! `cordon connector status` and `cordon connector approve`: what each connection of a project
//! runs, which connector files wait for approval, and the operator's approval (see
//! `workflow::upgrades` for the policy).

use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

use crate::db::Db;
use crate::workflow::connections::{self, read_connector_file};
use crate::workflow::project::{ConnectionSpec, ConnectorSource, Project};
use crate::workflow::upgrades::{self, UpgradeCheck, VersionInfo};

use super::CacheArgs;
use super::workflow::{HistoryArgs, open_db};

/// One connection's state, as `status` reports it.
struct ConnectionState {
    name: String,
    file: String,
    current: VersionInfo,
    check: UpgradeCheck,
}

impl ConnectionState {
    fn state(&self) -> &'static str {
        match &self.check.approved {
            None => "not yet opened (approved as it is at its first start)",
            Some(approved) if approved.sha256 == self.current.sha256 => "approved",
            Some(_) if self.check.widening.is_empty() => {
                "upgrade within the grant (approved at the next start)"
            }
            Some(_) => "upgrade pending approval",
        }
    }

    fn pending(&self) -> bool {
        self.check
            .approved
            .as_ref()
            .is_some_and(|a| a.sha256 != self.current.sha256)
            && !self.check.widening.is_empty()
    }
}

fn file_specs(project: &Project) -> impl Iterator<Item = (&ConnectionSpec, String)> {
    project
        .connections
        .values()
        .filter_map(|spec| match &spec.connector {
            ConnectorSource::File(path) => Some((spec, path.display().to_string())),
            ConnectorSource::Builtin(_) => None,
        })
}

/// Loads the connection's current file and compares it with its approval record.
async fn state_of(
    runtime: &crate::Runtime,
    project: &Project,
    db: &dyn Db,
    spec: &ConnectionSpec,
    file: String,
) -> anyhow::Result<(ConnectionState, Vec<u8>, crate::Connector)> {
    let bytes = read_connector_file(project, spec)?;
    let current = connections::load_current(runtime, spec, Some(&bytes)).await?;
    let check = upgrades::check(db, spec, current.manifest())?;
    let state = ConnectionState {
        name: spec.name.clone(),
        file,
        current: VersionInfo::of(current.manifest(), current.component_hash()),
        check,
    };
    Ok((state, bytes, current))
}

/// Print the state of each connection whose connector is a file: the approved version, the
/// file's version, and what a pending upgrade asks for.
pub async fn status(history: &HistoryArgs, json_output: bool, cache: &CacheArgs) -> anyhow::Result<ExitCode> {
    let project = Project::open(&history.project)?;
    let db = open_db(&project.root, history.db.as_deref())?;
    let runtime = super::runtime(cache)?;
    let mut states = Vec::new();
    for (spec, file) in file_specs(&project) {
        states.push(state_of(&runtime, &project, &*db, spec, file).await?.0);
    }
    if json_output {
        let list: Vec<_> = states
            .iter()
            .map(|s| {
                json!({
                    "connection": s.name,
                    "file": s.file,
                    "state": s.state(),
                    "current": version_json(&s.current),
                    "approved": s.check.approved.as_ref().map(version_json),
                    "grantExtension": upgrades::grant_json(&s.check.extension),
                    "asks": if s.pending() { s.check.widening.to_string() } else { String::new() },
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({"connections": list}))?);
        return Ok(ExitCode::SUCCESS);
    }
    if states.is_empty() {
        println!("no connection uses a connector file; built-in connectors change only with cordon");
    }
    for s in &states {
        println!("{} ({}): {}", s.name, s.file, s.state());
        if let Some(approved) = &s.check.approved {
            println!("  approved: {}", version_text(approved));
        }
        let extension = &s.check.extension;
        if !extension.hosts.is_empty() || !extension.secrets.is_empty() {
            println!(
                "  granted by approvals, beside connections.json: {}",
                upgrades::grant_json(extension)
            );
        }
        println!("  file:     {}", version_text(&s.current));
        if s.pending() {
            println!("  asks for: {}", s.check.widening);
            println!(
                "  approve with: cordon connector approve {} --project {:?} --yes",
                s.name, history.project
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Show what the connection's current file asks for beyond its grant and, with `yes`, approve
/// it: record it as the approved version and grant exactly what it asked for.
pub async fn approve(
    history: &HistoryArgs,
    connection: &str,
    yes: bool,
    cache: &CacheArgs,
) -> anyhow::Result<ExitCode> {
    let project = Project::open(&history.project)?;
    let Some(spec) = project.connections.get(connection) else {
        let names: Vec<_> = project.connections.keys().cloned().collect();
        bail!(
            "the project has no connection {connection:?} (its connections: {})",
            names.join(", ")
        );
    };
    let ConnectorSource::File(path) = &spec.connector else {
        bail!(
            "connection {connection:?} uses a built-in connector, which changes only with cordon itself; there is nothing to approve"
        );
    };
    let db = open_db(&project.root, history.db.as_deref())?;
    let runtime = super::runtime(cache)?;
    let (state, bytes, current) =
        state_of(&runtime, &project, &*db, spec, path.display().to_string()).await?;
    if let Some(approved) = &state.check.approved {
        println!("approved: {}", version_text(approved));
        if approved.sha256 == state.current.sha256 {
            println!("the file is the approved version; nothing to approve");
            return Ok(ExitCode::SUCCESS);
        }
    }
    println!("file:     {}", version_text(&state.current));
    if state.check.widening.is_empty() {
        println!("asks for nothing beyond the grant");
    } else {
        println!("asks for, beyond the grant and the approved version:");
        for host in &state.check.widening.hosts {
            println!("  + host {}", host.as_str());
        }
        for secret in &state.check.widening.secrets {
            let plaintext = if secret.plaintext {
                " (may read its plaintext)"
            } else {
                ""
            };
            println!("  + secret {}{plaintext}", secret.name);
            if !spec.parameter_values.contains_key(secret.name.as_str()) {
                println!(
                    "    note: connections.json gives it no value; add \"{}\": \"@secret('NAME')\" to the connection's parameterValues",
                    secret.name
                );
            }
        }
    }
    if !yes {
        println!("nothing recorded; run again with --yes to approve");
        return Ok(ExitCode::from(1));
    }
    upgrades::approve(&*db, spec, &bytes, &current)?;
    println!(
        "approved {connection}: {} (takes effect when the project is next opened; restart `cordon serve`)",
        version_text(&state.current)
    );
    Ok(ExitCode::SUCCESS)
}

fn version_json(v: &VersionInfo) -> serde_json::Value {
    json!({"connector": v.connector, "version": v.version, "sha256": v.sha256})
}

fn version_text(v: &VersionInfo) -> String {
    format!(
        "{} {} (sha256 {})",
        v.connector,
        v.version,
        &v.sha256[..v.sha256.len().min(16)]
    )
}
