//! Many tenants in one server. A tenants directory holds one project per tenant:
//!
//! ```text
//! tenants/
//!   .cordon/operator-key     the operator's management key (made on first start, mode 0600)
//!   acme/                    a project: connections.json, workflows, and its own .cordon/
//!     tenant.json            optional: {"quotas": {...}, "retentionDays": 30}
//!   globex/
//! ```
//!
//! Each tenant gets its own [`Runtime`] (wasmtime engine, instance pool, artifact cache in
//! its `.cordon/cache`, metrics), its own run history (`.cordon/history.db`, which also holds
//! its encrypted secrets) and its own trigger and management keys. Nothing is shared but the
//! process and the master key of the secret store: one tenant's rows, secrets, compiled
//! artifacts and metrics are not in any structure another tenant's requests read.
//!
//! Why a runtime per tenant rather than one shared: the pool's slots are the concurrency
//! quota (a tenant that fills its own slots waits on them and cannot take another's), the
//! artifact cache cannot tell one tenant whether another loaded a component, and `/metrics`
//! of a tenant shows that tenant only. The cost is an engine, an epoch thread and a pool
//! reservation (address space, not memory) per tenant.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tracing::Instrument as _;

use crate::db::SqliteDb;
use crate::ids::TenantId;
use crate::server::{Keys, ManagementKey};
use crate::workflow::project::Project;
use crate::workflow::{Engine, EngineOptions};
use crate::{Limits, Runtime, RuntimeConfig};

/// What a tenant may use, from its `tenant.json`. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Quotas {
    /// Connector instances alive at once. Calls beyond it wait for a slot, up to their
    /// deadline, then fail with the retryable `ConnectorBusy`.
    pub concurrent_invocations: u32,
    /// Linear memory of one instance, over all its memories.
    #[serde(rename = "memoryPerInstanceMiB")]
    pub memory_per_instance_mib: u32,
    /// Wall-clock seconds one call may run (epoch interruption ends it).
    pub seconds_per_invocation: u32,
    /// Outbound requests one call may send.
    pub requests_per_invocation: u32,
    /// Bytes of one response body a connector may receive.
    pub response_bytes: usize,
    /// CPU seconds the tenant's connectors may use per minute, over all their calls: 60 is
    /// one core. Enforced over 10 ms windows at that rate (see `cpu_share.rs`), so a tenant
    /// never bursts past it.
    pub cpu_seconds_per_minute: u32,
    /// Runs the tenant may start per minute (`workflow::run_quota`); a request beyond it
    /// gets 429 with `Retry-After`. Unlimited when left out.
    pub runs_per_minute: Option<u32>,
    /// Outbound requests the tenant's connectors may have in flight at once; more wait,
    /// at most until their call's deadline (`egress_quota.rs`). Unlimited when left out.
    pub requests_in_flight: Option<u32>,
    /// Request and response body bytes the tenant's connectors may send and receive per
    /// minute; past it, requests are refused until there is room. Unlimited when left out.
    pub egress_bytes_per_minute: Option<u64>,
}

impl Default for Quotas {
    fn default() -> Self {
        let limits = Limits::default();
        Quotas {
            concurrent_invocations: 50,
            memory_per_instance_mib: (limits.memory_bytes >> 20) as u32,
            seconds_per_invocation: limits.deadline.as_secs() as u32,
            requests_per_invocation: limits.http.requests_per_invocation,
            response_bytes: limits.http.response_body_bytes,
            // One core: with several tenants on a small machine, none can take all of it.
            cpu_seconds_per_minute: 60,
            runs_per_minute: None,
            requests_in_flight: None,
            egress_bytes_per_minute: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TenantFile {
    #[serde(default)]
    quotas: Quotas,
    /// Days a finished run stays in the tenant's history (0 keeps every run); the server's
    /// `--retention-days` when left out.
    retention_days: Option<u32>,
}

/// What a tenant's `tenant.json` sets.
#[derive(Debug, Clone, Default)]
pub struct TenantSettings {
    pub quotas: Quotas,
    /// `retentionDays`, if the tenant sets its own.
    pub retention_days: Option<u32>,
}

impl Quotas {
    /// The runtime that enforces these quotas for `tenant`, caching artifacts in `cache_dir`.
    pub fn runtime_config(&self, tenant: &TenantId, cache_dir: PathBuf) -> RuntimeConfig {
        let defaults = Limits::default();
        let limits = Limits {
            memory_bytes: (self.memory_per_instance_mib as usize) << 20,
            deadline: Duration::from_secs(u64::from(self.seconds_per_invocation)),
            http: crate::HttpLimits {
                requests_per_invocation: self.requests_per_invocation,
                response_body_bytes: self.response_bytes,
                ..defaults.http.clone()
            },
            ..defaults
        };
        RuntimeConfig {
            limits,
            cache_dir: Some(cache_dir),
            max_concurrent_instances: self.concurrent_invocations,
            tenant: Some(tenant.clone()),
            cpu_share: Some(f64::from(self.cpu_seconds_per_minute) / 60.0),
            egress_quotas: crate::egress_quota::EgressQuotas {
                requests_in_flight: self.requests_in_flight,
                bytes_per_minute: self.egress_bytes_per_minute,
            },
            ..RuntimeConfig::default()
        }
    }

    fn check(&self) -> Result<(), String> {
        let positive = [
            ("concurrentInvocations", self.concurrent_invocations as usize),
            ("memoryPerInstanceMiB", self.memory_per_instance_mib as usize),
            ("secondsPerInvocation", self.seconds_per_invocation as usize),
            ("requestsPerInvocation", self.requests_per_invocation as usize),
            ("responseBytes", self.response_bytes),
            ("cpuSecondsPerMinute", self.cpu_seconds_per_minute as usize),
            ("runsPerMinute", self.runs_per_minute.unwrap_or(1) as usize),
            ("requestsInFlight", self.requests_in_flight.unwrap_or(1) as usize),
            (
                "egressBytesPerMinute",
                self.egress_bytes_per_minute.unwrap_or(1) as usize,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!(
                    "quotas.{name} is 0; give a positive number or leave it out for the default"
                ));
            }
        }
        if self.concurrent_invocations > 10_000 {
            return Err("quotas.concurrentInvocations is over 10000".to_owned());
        }
        if self.memory_per_instance_mib > 4096 {
            return Err("quotas.memoryPerInstanceMiB is over 4096 (a 32-bit memory's limit)".to_owned());
        }
        Ok(())
    }
}

/// One tenant, opened: its project, engine, history and keys.
#[derive(Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub project: Project,
    pub quotas: Quotas,
    /// `retentionDays` from `tenant.json`, if set.
    pub retention_days: Option<u32>,
    pub runtime: Runtime,
    pub db: Arc<SqliteDb>,
    pub engine: Engine,
    pub keys: Keys,
}

/// The tenants of a directory, each subdirectory (not starting with '.') one tenant, sorted
/// by name. A directory name that is not a valid tenant id is an error, not skipped, so a
/// typo never leaves a tenant silently unserved.
pub fn tenant_dirs(dir: &Path) -> anyhow::Result<Vec<(TenantId, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the tenants directory {}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!("{}: a directory name that is not UTF-8", dir.display());
        };
        if name.starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        let id = TenantId::new(name)
            .with_context(|| format!("tenant directory {:?} in {}", name, dir.display()))?;
        found.push((id, entry.path()));
    }
    found.sort();
    if found.is_empty() {
        bail!(
            "{} has no tenant directories; make one project directory per tenant inside it",
            dir.display()
        );
    }
    Ok(found)
}

/// Reads a tenant's `tenant.json` (absent means the default quotas and the server's
/// retention).
pub fn read_settings(project: &Project) -> anyhow::Result<TenantSettings> {
    let file: TenantFile = match project.dir.read_to_string("tenant.json") {
        Ok(text) => serde_json::from_str(&text).context("tenant.json")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => TenantFile::default(),
        Err(e) => return Err(e).context("cannot read tenant.json"),
    };
    file.quotas
        .check()
        .map_err(|e| anyhow::anyhow!("tenant.json: {e}"))?;
    Ok(TenantSettings {
        quotas: file.quotas,
        retention_days: file.retention_days,
    })
}

/// What opening a tenants directory found: the tenants that opened, those that did not,
/// and the operator key.
#[derive(Debug)]
pub struct OpenedTenants {
    pub tenants: Vec<Tenant>,
    pub unavailable: Vec<UnavailableTenant>,
    pub operator: ManagementKey,
}

impl OpenedTenants {
    /// The tenants and the operator key, or an error naming every tenant that did not open:
    /// for callers that need every tenant (benchmarks, tests, a strict embedder).
    pub fn require_all(self) -> anyhow::Result<(Vec<Tenant>, ManagementKey)> {
        if let Some(first) = self.unavailable.first() {
            bail!(
                "{} tenant(s) did not open; tenant {}: {}",
                self.unavailable.len(),
                first.id,
                first.reason
            );
        }
        Ok((self.tenants, self.operator))
    }
}

/// A tenant whose project did not open (a workflow that does not validate, a bad
/// `tenant.json`, a connector that does not load, a history that cannot be opened). The
/// server answers its routes with 503 and shows it on the operator's `/metrics`.
#[derive(Debug, Clone)]
pub struct UnavailableTenant {
    pub id: TenantId,
    /// Why, with the whole chain of causes (what the operator's log says too).
    pub reason: String,
}

/// Opens every tenant of `dir`. `options` makes each tenant's engine options from its id and
/// history (the caller adds observers and the secret store).
///
/// A tenant that cannot open does not stop the others: it is returned in `unavailable`,
/// with the reason, for the server to log and to answer for (a tenant's own files, which
/// it may edit, must not take every other tenant down at the next restart). The start
/// fails only when no tenant opens, or when the directory itself is wrong (a subdirectory
/// whose name is not a tenant id is the operator's mistake, and it could not be routed).
pub async fn open_all(
    dir: &Path,
    options: impl Fn(&TenantId, Arc<SqliteDb>) -> anyhow::Result<EngineOptions>,
) -> anyhow::Result<OpenedTenants> {
    let operator = ManagementKey::for_operator(&cap_std::fs::Dir::open_ambient_dir(
        dir,
        cap_std::ambient_authority(),
    )?)?;
    let mut tenants = Vec::new();
    let mut unavailable = Vec::new();
    for (id, path) in tenant_dirs(dir)? {
        match open_one(&id, &path, &operator, &options).await {
            Ok(tenant) => tenants.push(tenant),
            Err(e) => unavailable.push(UnavailableTenant {
                id,
                reason: format!("{e:#}"),
            }),
        }
    }
    if tenants.is_empty() {
        let reasons: Vec<String> = unavailable
            .iter()
            .map(|t| format!("tenant {}: {}", t.id, t.reason))
            .collect();
        bail!(
            "no tenant in {} could open:\n{}",
            dir.display(),
            reasons.join("\n")
        );
    }
    Ok(OpenedTenants {
        tenants,
        unavailable,
        operator,
    })
}

async fn open_one(
    id: &TenantId,
    path: &Path,
    operator: &ManagementKey,
    options: &impl Fn(&TenantId, Arc<SqliteDb>) -> anyhow::Result<EngineOptions>,
) -> anyhow::Result<Tenant> {
    let project = Project::open(path)?;
    let TenantSettings {
        quotas,
        retention_days,
    } = read_settings(&project)?;
    let runtime = Runtime::new(quotas.runtime_config(id, path.join(".cordon").join("cache")))?;
    let db = Arc::new(SqliteDb::open(&path.join(".cordon").join("history.db"))?);
    let mut engine_options = options(id, db.clone())?;
    engine_options.runs_per_minute = quotas.runs_per_minute;
    // Opening checks connector upgrades, whose audit events must name the tenant like
    // every event of its calls.
    let engine = Engine::open(&project, &runtime, engine_options)
        .instrument(tracing::info_span!(target: "cordon::audit", "tenant", tenant = %id))
        .await?;
    let mut keys = Keys::for_project(&project)?;
    keys.operator = Some(operator.clone());
    Ok(Tenant {
        id: id.clone(),
        project,
        quotas,
        retention_days,
        runtime,
        db,
        engine,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_read_with_defaults_and_refuse_nonsense() {
        let parse = |text: &str| -> Result<Quotas, String> {
            let file: TenantFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
            file.quotas.check()?;
            Ok(file.quotas)
        };
        assert_eq!(parse("{}").unwrap(), Quotas::default());
        let q = parse(r#"{"quotas": {"concurrentInvocations": 4, "memoryPerInstanceMib": 16}}"#);
        assert!(
            q.unwrap_err().contains("unknown field"),
            "the field is memoryPerInstanceMiB"
        );
        let q = parse(r#"{"quotas": {"concurrentInvocations": 4, "memoryPerInstanceMiB": 16}}"#).unwrap();
        assert_eq!((q.concurrent_invocations, q.memory_per_instance_mib), (4, 16));
        assert_eq!(q.seconds_per_invocation, Quotas::default().seconds_per_invocation);
        assert!(
            parse(r#"{"quotas": {"concurrentInvocations": 0}}"#)
                .unwrap_err()
                .contains("is 0")
        );
        assert!(
            parse(r#"{"quotas": {"memoryPerInstanceMiB": 5000}}"#)
                .unwrap_err()
                .contains("4096")
        );
        let config = q.runtime_config(&TenantId::new("acme").unwrap(), PathBuf::from("/tmp/c"));
        assert_eq!(config.max_concurrent_instances, 4);
        assert_eq!(config.limits.memory_bytes, 16 << 20);
        assert_eq!(config.tenant.unwrap().as_str(), "acme");
    }

    #[test]
    fn a_tenant_may_set_its_own_retention() {
        let retention = |text: &str| -> Result<Option<u32>, String> {
            serde_json::from_str::<TenantFile>(text)
                .map(|f| f.retention_days)
                .map_err(|e| e.to_string())
        };
        assert_eq!(retention("{}"), Ok(None));
        assert_eq!(retention(r#"{"retentionDays": 30}"#), Ok(Some(30)));
        assert_eq!(retention(r#"{"retentionDays": 0}"#), Ok(Some(0)));
        assert!(retention(r#"{"retentionDays": -1}"#).is_err());
        assert!(
            retention(r#"{"retention": 30}"#)
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
