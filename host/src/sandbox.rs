//! The state of one store: an empty WASI context, the resource limiter, and the host side of
//! the `http`, `secrets` and `log` imports for one invocation.
//!
//! Every invocation gets a fresh store and instance, so nothing in here outlives a call.
//! Host functions return `wasmtime::Result<Result<T, WitError>>`: the outer error is a host
//! bug and traps; the inner one is a policy or IO answer the guest can handle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::audit;
use crate::bindings::{Plugin, http, log, secrets, types};
use crate::egress::{EgressClient, RequestScope, SendOutcome};
use crate::grant::{Denial, DenialKind, EffectiveGrant};
use crate::guest_log::{GuestLog, LogLevel, LogStream};
use crate::ids::SecretName;
use crate::limits::Limits;
use crate::secrets::{PLACEHOLDER_OPEN, Redactor, SecretSource, SecretValue};

/// Everything a store holds.
pub(crate) struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: StoreLimiter,
    pub(crate) host: ConnectorHost,
    /// Set by the epoch callback when the deadline passed, so a trap can be reported as such.
    pub(crate) deadline_hit: bool,
    /// When the guest last resumed after an epoch check, for the CPU share's accounting.
    pub(crate) resumed: Instant,
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl SandboxState {
    pub(crate) fn new(host: ConnectorHost, limits: &Limits) -> Self {
        // The WASI context is empty on purpose: no preopened directories, no environment,
        // no arguments, no sockets, no name lookup, stdin closed. stdout and stderr go into
        // the capped guest log.
        let mut builder = WasiCtx::builder();
        builder
            .stdout(host.log.stream(LogStream::Stdout))
            .stderr(host.log.stream(LogStream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resource_handles);
        SandboxState {
            wasi: builder.build(),
            table,
            limiter: StoreLimiter::new(limits),
            host,
            deadline_hit: false,
            resumed: Instant::now(),
        }
    }
}

/// Counts memory over all memories of the store, which wasmtime's per-memory limits do not.
pub(crate) struct StoreLimiter {
    memory_cap: usize,
    memory_total: usize,
    pub(crate) memory_refused: bool,
    tables: usize,
    table_elements: usize,
    instances: usize,
}

impl StoreLimiter {
    fn new(limits: &Limits) -> Self {
        StoreLimiter {
            memory_cap: limits.memory_bytes,
            memory_total: 0,
            memory_refused: false,
            tables: limits.tables,
            table_elements: limits.table_elements,
            instances: limits.instances,
        }
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_total - current.min(self.memory_total) + desired;
        if total > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

/// The host side of the connector imports for one invocation.
pub(crate) struct ConnectorHost {
    pub(crate) grant: Arc<EffectiveGrant>,
    /// `None` while `describe` runs: no network at all.
    pub(crate) egress: Option<Arc<EgressClient>>,
    pub(crate) secrets: Arc<dyn SecretSource>,
    pub(crate) loaded_secrets: BTreeMap<SecretName, Arc<SecretValue>>,
    pub(crate) redactor: Redactor,
    pub(crate) log: GuestLog,
    pub(crate) deadline: Instant,
    pub(crate) http_requests: u32,
    pub(crate) limits: Arc<Limits>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The tenant's quotas on requests in flight and egress bytes, if it has any.
    pub(crate) egress_quota: Option<Arc<crate::egress_quota::EgressQuota>>,
    /// Set when one of the tenant's quotas over time refused a request in this call, with
    /// when it has room again if known: a failure of the call is then reported as rate
    /// limited.
    pub(crate) throttled: Option<Option<std::time::Duration>>,
    /// Counts this store in `cordon_live_instances` while its call runs (a spare that no
    /// call took yet, and a used store waiting to be dropped, do not count).
    pub(crate) live: Option<crate::metrics::LiveInstance>,
}

impl ConnectorHost {
    fn deny(&self, mut denial: Denial) -> String {
        denial.asked = self.redactor.redact(&denial.asked);
        audit::denied(self.grant.connector(), self.grant.connection(), &denial);
        self.metrics
            .denial(self.grant.connector().as_str(), denial.kind.as_str());
        denial.to_string()
    }

    fn load_secret(&mut self, name: &SecretName) -> Result<Arc<SecretValue>, String> {
        if let Some(value) = self.loaded_secrets.get(name) {
            return Ok(value.clone());
        }
        let value = Arc::new(self.secrets.load(name).map_err(|e| e.to_string())?);
        self.redactor.remember(name, value.clone());
        self.loaded_secrets.insert(name.clone(), value.clone());
        Ok(value)
    }
}

pub(crate) struct HostImports;

impl HasData for HostImports {
    type Data<'a> = &'a mut ConnectorHost;
}

impl types::Host for ConnectorHost {}

impl http::Host for ConnectorHost {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let Some(egress) = self.egress.clone() else {
            let reason = "this call runs with no grants (describe may not use the network)".to_owned();
            return Ok(Err(http::HttpError::Denied(reason)));
        };
        self.http_requests += 1;
        if self.http_requests > self.limits.http.requests_per_invocation {
            let denial = Denial {
                kind: DenialKind::Quota,
                asked: format!("HTTP request number {}", self.http_requests),
                missing: format!(
                    "one invocation may send at most {} requests",
                    self.limits.http.requests_per_invocation
                ),
            };
            return Ok(Err(http::HttpError::Denied(self.deny(denial))));
        }
        let deadline = self.deadline;
        let quota = self.egress_quota.clone();
        let in_flight = match &quota {
            Some(quota) => {
                let asked = format!("HTTP request number {}", self.http_requests);
                match quota.admit(&asked, deadline).await {
                    Ok(slot) => Some(slot),
                    Err(refused) => {
                        self.throttled = Some(refused.retry_after);
                        return Ok(Err(http::HttpError::Denied(self.deny(refused.denial))));
                    }
                }
            }
            None => None,
        };
        let sent_bytes = request.body.as_ref().map_or(0, Vec::len);
        let redactor = self.redactor.clone();
        let mut load = |name: &SecretName| {
            self.load_secret(name)
                .map_err(|reason| http::HttpError::InvalidRequest(redactor.redact(&reason)))
        };
        let outcome = egress
            .send(
                request,
                RequestScope {
                    secrets: &mut load,
                    redactor: &redactor,
                    deadline,
                },
            )
            .await;
        drop(in_flight);
        if let Some(quota) = &quota {
            let received = match &outcome {
                SendOutcome::Response(response) => response.body.len(),
                _ => 0,
            };
            quota.charge(sent_bytes + received);
        }
        Ok(match outcome {
            SendOutcome::Response(response) => Ok(response),
            SendOutcome::Failed(error) => Err(error),
            SendOutcome::Denied(denial) => Err(http::HttpError::Denied(self.deny(denial))),
        })
    }
}

impl secrets::Host for ConnectorHost {
    fn placeholder(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::SecretError>> {
        let name = match SecretName::new(name) {
            Ok(name) => name,
            Err(e) => return Ok(Err(secrets::SecretError::Denied(e.to_string()))),
        };
        if let Err(denial) = self.grant.check_secret(&name) {
            return Ok(Err(secrets::SecretError::Denied(self.deny(denial))));
        }
        Ok(Ok(format!("{PLACEHOLDER_OPEN}{name}}}}}")))
    }

    fn reveal(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::SecretError>> {
        let name = match SecretName::new(name) {
            Ok(name) => name,
            Err(e) => return Ok(Err(secrets::SecretError::Denied(e.to_string()))),
        };
        if let Err(denial) = self.grant.check_reveal(&name) {
            return Ok(Err(secrets::SecretError::Denied(self.deny(denial))));
        }
        match self.load_secret(&name) {
            Ok(value) => {
                audit::secret_revealed(self.grant.connector(), self.grant.connection(), &name);
                Ok(Ok(value.expose().to_owned()))
            }
            Err(reason) => Ok(Err(secrets::SecretError::Unavailable(reason))),
        }
    }
}

impl log::Host for ConnectorHost {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log.write(level, LogStream::Log, &message);
        Ok(())
    }
}

/// The linker every connector is instantiated with: WASI (backed by the empty context) and
/// the connector imports. Which imports a component may use at all is checked at load time.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<SandboxState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
    Plugin::add_to_linker::<SandboxState, HostImports>(&mut linker, |state| &mut state.host)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(linker)
}
