//! The runtime: one engine, one linker, the artifact cache, and the loaded connectors.
//!
//! Loading a component: check its size and its header, compile it (or map it from the
//! artifact cache), check that it exports the contract this host implements and imports
//! nothing outside the allowed set, pre-instantiate it, then call `describe` in a sandbox
//! with no grants and validate the manifest. The result is cached per component hash.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use crate::bindings::PluginPre;
use crate::cache::ArtifactCache;
use crate::connector::Connector;
use crate::egress::{NameLookup, SystemLookup};
use crate::error::LoadError;
use crate::file_identity::FileStamp;
use crate::grant::EffectiveGrant;
use crate::guest_log::GuestLog;
use crate::ids::{ConnectionName, ConnectorId};
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::sandbox::{ConnectorHost, SandboxState};
use crate::secrets::{NoSecrets, Redactor};
use crate::spares::{Spare, SpareWorker};
use cordon_core::component;

/// How to build a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub limits: Limits,
    /// Where compiled artifacts are kept. `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may exist at once; sizes the pooling allocator.
    pub max_concurrent_instances: u32,
    /// Where instances' memories, tables and stacks come from.
    pub allocation: InstanceAllocation,
    /// How host names are resolved for outbound HTTP.
    pub name_lookup: Arc<dyn NameLookup>,
    /// The tenant this runtime serves, in a multi-tenant server (one runtime per tenant).
    /// Every call runs in a span that names it, so audit events and connector log lines do.
    pub tenant: Option<crate::ids::TenantId>,
    /// The most CPU this runtime's guests may use, in cores (see `cpu_share.rs`); `None`
    /// leaves them uncapped.
    pub cpu_share: Option<f64>,
    /// Outbound requests in flight and bytes per minute over all of this runtime's
    /// connections (see `egress_quota.rs`); unlimited by default.
    pub egress_quotas: crate::egress_quota::EgressQuotas,
    /// Fresh instances kept made ahead of calls, over all connectors, so a call does not
    /// wait for its instance to be made (see `spares.rs`); 0 turns this off. Each is a pool
    /// slot on top of `max_concurrent_instances`.
    pub spare_instances: u32,
}

/// Spares a runtime keeps by default: enough for the two connectors called most, four each.
pub const DEFAULT_SPARE_INSTANCES: u32 = 8;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            limits: Limits::default(),
            cache_dir: None,
            max_concurrent_instances: 1000,
            allocation: InstanceAllocation::Pooling,
            name_lookup: Arc::new(SystemLookup),
            tenant: None,
            cpu_share: None,
            egress_quotas: Default::default(),
            spare_instances: DEFAULT_SPARE_INSTANCES,
        }
    }
}

/// How a runtime allocates instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceAllocation {
    /// Slots reserved up front for `max_concurrent_instances` instances and reused, with
    /// copy-on-write memory images and pages kept resident between calls: the fast choice,
    /// and the default. It reserves a large range of virtual address space (not memory).
    #[default]
    Pooling,
    /// wasmtime's default: every instance maps fresh memory and unmaps it when dropped.
    /// Slower per call; for systems that cap virtual address space, and for comparison
    /// (`cargo run -p cordon-host --example bench` measures both).
    OnDemand,
}

/// Loads connectors and runs them in sandboxes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    linker: Linker<SandboxState>,
    pub(crate) limits: Arc<Limits>,
    cache: Option<ArtifactCache>,
    configuration_hash: String,
    pub(crate) name_lookup: Arc<dyn NameLookup>,
    loaded: Mutex<HashMap<String, Connector>>,
    /// One permit per pool slot: a call beyond `max_concurrent_instances` waits for a slot
    /// instead of failing to instantiate.
    instance_slots: tokio::sync::Semaphore,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    tenant: Option<crate::ids::TenantId>,
    cpu_share: Option<Arc<crate::cpu_share::CpuShare>>,
    egress_quota: Option<Arc<crate::egress_quota::EgressQuota>>,
    /// Makes spare instances and drops used stores off the callers' path.
    spares: Arc<SpareWorker>,
    /// What a spare's store holds until a call adopts it: no grant, no secrets. Shared, so a
    /// call replacing it frees nothing that another thread allocated.
    spare_grant: Arc<EffectiveGrant>,
    spare_secrets: Arc<dyn crate::secrets::SecretSource>,
    spare_redactor: Redactor,
}

impl std::fmt::Debug for RuntimeInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Whether a load compiled the component or took it from the artifact cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactSource {
    Compiled,
    Cache,
}

/// Where a load took the component's SHA-256 (its identity and cache key) from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// Computed from the bytes during this load.
    Hashed,
    /// Remembered for a connector file whose status has not changed since it was hashed.
    Remembered,
    /// Computed when cordon was built.
    Builtin,
}

/// How a component was loaded, for `inspect` and benchmarks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub artifact: ArtifactSource,
    pub identity: Identity,
    pub load_time: Duration,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        // Spares and used stores waiting to be dropped hold pool slots beyond the calls in
        // flight, which `instance_slots` bounds.
        let pool_slots = config
            .max_concurrent_instances
            .max(1)
            .saturating_add(config.spare_instances)
            .saturating_add(crate::spares::USED_QUEUE as u32);
        let engine = crate::engine::build(&config.limits, pool_slots, config.allocation)?;
        let linker = crate::sandbox::linker(&engine)?;
        let cache = config.cache_dir.as_deref().map(ArtifactCache::open).transpose()?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                metrics: Arc::default(),
                configuration_hash: crate::engine::configuration_hash(&engine),
                engine,
                linker,
                limits: Arc::new(config.limits),
                cache,
                name_lookup: config.name_lookup,
                loaded: Mutex::new(HashMap::new()),
                instance_slots: tokio::sync::Semaphore::new(config.max_concurrent_instances.max(1) as usize),
                tenant: config.tenant,
                cpu_share: config
                    .cpu_share
                    .map(|cores| Arc::new(crate::cpu_share::CpuShare::new(cores))),
                egress_quota: (config.egress_quotas != Default::default())
                    .then(|| Arc::new(crate::egress_quota::EgressQuota::new(config.egress_quotas))),
                spares: Arc::new(SpareWorker::new(config.spare_instances as usize)),
                spare_grant: Arc::new(EffectiveGrant::nothing(
                    ConnectorId::new("spare")?,
                    ConnectionName::new("spare")?,
                )),
                spare_secrets: Arc::new(NoSecrets),
                spare_redactor: Redactor::default(),
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The tenant this runtime serves, if it serves one.
    pub fn tenant(&self) -> Option<&crate::ids::TenantId> {
        self.inner.tenant.as_ref()
    }

    /// The metrics of this runtime and of the engines built on it.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    /// Loads a connector from a file.
    pub async fn load_file(&self, path: &Path) -> Result<Connector, LoadError> {
        let origin = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| LoadError::Read {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        let identity_key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        self.load_open_file(file, &identity_key, origin).await
    }

    /// Loads a connector file at `path` inside `dir` (a project's directory, whose own path
    /// is `root`): the file is opened through `dir`, so `path` cannot lead outside it.
    pub async fn load_file_in(
        &self,
        dir: &cap_std::fs::Dir,
        root: &Path,
        path: &Path,
    ) -> Result<Connector, LoadError> {
        let origin = path.display().to_string();
        let file = dir.open(path).map_err(|e| LoadError::Read {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        let identity_key = std::path::absolute(root.join(path)).unwrap_or_else(|_| root.join(path));
        self.load_open_file(file.into_std(), &identity_key, origin).await
    }

    /// Loads an open connector file. Its hash is taken from the artifact cache's memory of
    /// this path when the file's status shows it unchanged (`file_identity.rs`), so a cached
    /// load of an unchanged file never reads it; otherwise the file is read and hashed.
    async fn load_open_file(
        &self,
        file: std::fs::File,
        identity_key: &Path,
        origin: String,
    ) -> Result<Connector, LoadError> {
        let started = Instant::now();
        let read_error = |e: std::io::Error| LoadError::Read {
            origin: origin.clone(),
            reason: e.to_string(),
        };
        // Taken before the status: a write after this moment gives the file a later change time.
        let read_at = SystemTime::now();
        let metadata = file.metadata().map_err(read_error)?;
        let cap = self.inner.limits.component_bytes;
        if metadata.len() > cap {
            return Err(LoadError::TooLarge {
                origin,
                size: metadata.len(),
                cap,
            });
        }
        let stamp = FileStamp::of(&metadata);
        let identity_key = identity_key.display().to_string();
        let identities = self.inner.cache.as_ref().map(ArtifactCache::identities);
        if let Some(hash) = identities.and_then(|i| i.remembered(&identity_key, &stamp)) {
            let loaded = self
                .load_identified(None, hash, Identity::Remembered, &origin, started)
                .await?;
            if let Some(connector) = loaded {
                return Ok(connector);
            }
            // Remembered, but no longer in the artifact cache: read and compile it.
        }
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        file.take(cap + 1).read_to_end(&mut bytes).map_err(read_error)?;
        let hash = self.check_and_hash(&bytes, &origin)?;
        if let Some(identities) = identities {
            identities.remember(&identity_key, &stamp, read_at, &hash);
        }
        self.load_hashed(&bytes, hash, &origin, started).await
    }

    /// Loads a connector from bytes; `origin` names it in errors.
    pub async fn load_bytes(&self, bytes: &[u8], origin: &str) -> Result<Connector, LoadError> {
        let started = Instant::now();
        let hash = self.check_and_hash(bytes, origin)?;
        self.load_hashed(bytes, hash, origin, started).await
    }

    /// Checks a component's size and header, and returns its SHA-256.
    fn check_and_hash(&self, bytes: &[u8], origin: &str) -> Result<String, LoadError> {
        let cap = self.inner.limits.component_bytes;
        if bytes.len() as u64 > cap {
            return Err(LoadError::TooLarge {
                origin: origin.to_owned(),
                size: bytes.len() as u64,
                cap,
            });
        }
        component::check_header(bytes).map_err(|p| LoadError::from_problem(origin, p))?;
        Ok(hex::encode(Sha256::digest(bytes)))
    }

    /// Loads a built-in connector; its hash was computed when cordon was built.
    pub async fn load_builtin(&self, builtin: &crate::builtin::Builtin) -> Result<Connector, LoadError> {
        let started = Instant::now();
        let origin = format!("built-in connector {:?}", builtin.name);
        let hash = builtin.sha256.to_owned();
        let loaded = self
            .load_identified(Some(builtin.component), hash, Identity::Builtin, &origin, started)
            .await?;
        Ok(
            loaded
                .unwrap_or_else(|| unreachable!("a load with the bytes at hand always ends in a connector")),
        )
    }

    async fn load_hashed(
        &self,
        bytes: &[u8],
        hash: String,
        origin: &str,
        started: Instant,
    ) -> Result<Connector, LoadError> {
        let loaded = self
            .load_identified(Some(bytes), hash, Identity::Hashed, origin, started)
            .await?;
        Ok(
            loaded
                .unwrap_or_else(|| unreachable!("a load with the bytes at hand always ends in a connector")),
        )
    }

    /// Loads a component whose header was checked and whose SHA-256 is `hash`. Without its
    /// `bytes`, only a connector already loaded or in the artifact cache can be loaded; one
    /// that would need compiling gives `None`.
    async fn load_identified(
        &self,
        bytes: Option<&[u8]>,
        hash: String,
        identity: Identity,
        origin: &str,
        started: Instant,
    ) -> Result<Option<Connector>, LoadError> {
        if let Some(connector) = self.lookup(&hash) {
            return Ok(Some(connector));
        }

        let key = format!("{hash}-{}", self.inner.configuration_hash);
        let cached = self
            .inner
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.inner.engine, &key));
        let (component, artifact) = match (cached, bytes) {
            (Some(component), _) => (component, ArtifactSource::Cache),
            (None, None) => return Ok(None),
            (None, Some(bytes)) => {
                // Names first: a component that imports what it may not is refused before
                // Cranelift spends any time on it.
                component::precheck(bytes).map_err(|p| LoadError::from_problem(origin, p))?;
                let component = self.compile(bytes, origin).await?;
                if let Some(cache) = &self.inner.cache {
                    match component.serialize() {
                        Ok(artifact) => {
                            if let Err(error) = cache.store(&key, &artifact) {
                                tracing::warn!(%error, "the compiled connector was not cached");
                            }
                        }
                        Err(error) => tracing::warn!(%error, "cannot serialize the compiled connector"),
                    }
                }
                (component, ArtifactSource::Compiled)
            }
        };

        self.check_contract(&component, origin)?;
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Invalid {
                origin: origin.to_owned(),
                reason: format!("its imports do not match the contract: {e:#}"),
            })?;
        let pre = PluginPre::new(instance_pre).map_err(|e| LoadError::Invalid {
            origin: origin.to_owned(),
            reason: format!("its exports do not match the contract: {e:#}"),
        })?;
        let cached_manifest = match artifact {
            ArtifactSource::Cache => self.inner.cache.as_ref().and_then(|c| c.load_manifest(&key)),
            ArtifactSource::Compiled => None,
        };
        let manifest = match cached_manifest {
            Some(manifest) => manifest,
            None => {
                let manifest = self.describe(&pre, origin).await?;
                if let Some(cache) = &self.inner.cache
                    && let Err(error) = cache.store_manifest(&key, &manifest)
                {
                    tracing::warn!(%error, "the connector's manifest was not cached");
                }
                manifest
            }
        };
        let report = LoadReport {
            artifact,
            identity,
            load_time: started.elapsed(),
        };
        let connector = Connector::new(self.clone(), pre, Arc::new(manifest), hash.clone(), report);
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, connector.clone());
        Ok(Some(connector))
    }

    /// Compiles on a blocking thread, so a long compile holds no async worker, and waits at
    /// most `Limits::compile_time` for it.
    async fn compile(&self, bytes: &[u8], origin: &str) -> Result<Component, LoadError> {
        let engine = self.inner.engine.clone();
        let owned = bytes.to_vec();
        let compiling = tokio::task::spawn_blocking(move || Component::new(&engine, &owned));
        let limit = self.inner.limits.compile_time;
        match tokio::time::timeout(limit, compiling).await {
            Err(_elapsed) => Err(LoadError::CompileTimeout {
                origin: origin.to_owned(),
                limit,
            }),
            Ok(Err(join)) => Err(LoadError::Invalid {
                origin: origin.to_owned(),
                reason: format!("the compiler stopped: {join}"),
            }),
            Ok(Ok(compiled)) => compiled.map_err(|e| LoadError::Invalid {
                origin: origin.to_owned(),
                reason: format!("{e:#}"),
            }),
        }
    }

    /// Forgets every loaded connector, so the next load of the same component goes through
    /// the artifact cache (or compiles) again. Connections already made keep working.
    pub fn unload_all(&self) {
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn lookup(&self, hash: &str) -> Option<Connector> {
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }

    /// The contract check of [`component::check_contract`], on the compiled component's type
    /// (so artifacts from the cache are held to it as well as fresh compiles).
    fn check_contract(&self, compiled: &Component, origin: &str) -> Result<(), LoadError> {
        let engine = &self.inner.engine;
        let ty = compiled.component_type();
        component::check_contract(
            ty.imports(engine).map(|(name, _)| name),
            ty.exports(engine).map(|(name, _)| name),
        )
        .map_err(|p| LoadError::from_problem(origin, p))
    }

    async fn describe(&self, pre: &PluginPre<SandboxState>, origin: &str) -> Result<Manifest, LoadError> {
        let fail = |reason: String| LoadError::Describe {
            origin: origin.to_owned(),
            reason,
        };
        // The connector's id is not known before describe returns; the placeholder names only
        // appear in audit events if describe tries to use a capability, which it may not.
        let placeholder_id = ConnectorId::new("unknown").map_err(|e| fail(e.to_string()))?;
        let connection = ConnectionName::new("describe").map_err(|e| fail(e.to_string()))?;
        let grant = Arc::new(EffectiveGrant::nothing(placeholder_id, connection));
        let _slot = self.instance_slot().await;
        let mut store = self.new_store(grant, None, Arc::new(NoSecrets), Redactor::default());
        let deadline = self.inner.limits.deadline;
        let call = async {
            let plugin = pre.instantiate_async(&mut store).await?;
            plugin
                .cordon_connector_connector()
                .call_describe(&mut store)
                .await
        };
        let raw = match tokio::time::timeout(deadline + Duration::from_secs(1), call).await {
            Err(_) => return Err(fail(format!("did not finish within {deadline:?}"))),
            Ok(Err(e)) => {
                let state = store.data();
                let reason = if state.deadline_hit {
                    format!("did not finish within {deadline:?}")
                } else if state.limiter.memory_refused {
                    format!(
                        "used more than {} bytes of memory",
                        self.inner.limits.memory_bytes
                    )
                } else {
                    format!("{e:#}")
                };
                return Err(fail(reason));
            }
            Ok(Ok(raw)) => raw,
        };
        Manifest::from_wit(raw).map_err(|source| LoadError::Manifest {
            origin: origin.to_owned(),
            source,
        })
    }

    /// Waits for a free instance slot; hold the permit while the store lives.
    pub(crate) async fn instance_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        match self.inner.instance_slots.acquire().await {
            Ok(permit) => permit,
            // The semaphore lives as long as the runtime and is never closed.
            Err(_) => unreachable!("the instance semaphore is never closed"),
        }
    }

    /// A fresh store for one call, with its deadline armed; it counts as a live instance.
    pub(crate) fn new_store(
        &self,
        grant: Arc<EffectiveGrant>,
        egress: Option<Arc<crate::egress::EgressClient>>,
        secrets: Arc<dyn crate::secrets::SecretSource>,
        redactor: Redactor,
    ) -> Store<SandboxState> {
        let mut store = self.store_without_call(grant, egress, secrets, redactor);
        store.data_mut().host.live = Some(self.inner.metrics.instance());
        store
    }

    /// A fresh store with its deadline armed that does not count as a live instance (yet): a
    /// spare's, until a call adopts it. Counting it only to uncount it at once would show
    /// the spare thread's work in `cordon_live_instances` for a moment.
    fn store_without_call(
        &self,
        grant: Arc<EffectiveGrant>,
        egress: Option<Arc<crate::egress::EgressClient>>,
        secrets: Arc<dyn crate::secrets::SecretSource>,
        redactor: Redactor,
    ) -> Store<SandboxState> {
        let limits = &self.inner.limits;
        let host = self.connector_host(grant, egress, secrets, redactor, GuestLog::new(limits.log_bytes));
        let mut store = Store::new(&self.inner.engine, SandboxState::new(host, limits));
        store.limiter(|state| &mut state.limiter);
        store.set_max_component_handles(limits.resource_handles);
        store.set_epoch_deadline(1);
        let cpu_share = self.inner.cpu_share.clone();
        store.epoch_deadline_callback(move |mut context| {
            let now = Instant::now();
            let state = context.data_mut();
            // Read from the store, not captured: a spare instance gets its call's deadline
            // when the call takes it (`adopt`).
            let deadline = state.host.deadline;
            if now >= deadline {
                state.deadline_hit = true;
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            // The slice just run is paid and the next reserved: over its tenant's CPU share,
            // the guest sleeps until its slot (the deadline keeps running: it is wall-clock).
            if let Some(share) = &cpu_share {
                let wait = share.reserve(now, now.saturating_duration_since(state.resumed));
                state.resumed = now + wait;
                if !wait.is_zero() {
                    let waiting = crate::cpu_share::wait_for_tick(wait, deadline);
                    return Ok(wasmtime::UpdateDeadline::YieldCustom(1, Box::pin(waiting)));
                }
            }
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        store
    }

    /// The host side of one call's imports, its deadline counted from now (not counted as a
    /// live instance: the caller counts it when a call will use it).
    fn connector_host(
        &self,
        grant: Arc<EffectiveGrant>,
        egress: Option<Arc<crate::egress::EgressClient>>,
        secrets: Arc<dyn crate::secrets::SecretSource>,
        redactor: Redactor,
        log: GuestLog,
    ) -> ConnectorHost {
        let limits = &self.inner.limits;
        ConnectorHost {
            grant,
            egress,
            secrets,
            loaded_secrets: Default::default(),
            redactor,
            log,
            deadline: Instant::now() + limits.deadline,
            http_requests: 0,
            limits: limits.clone(),
            metrics: self.inner.metrics.clone(),
            egress_quota: self.inner.egress_quota.clone(),
            throttled: None,
            live: None,
        }
    }

    /// Instantiates `pre` in a store with no grant, no network and no secrets, for a call
    /// that has not come yet (see `spares.rs`). Its start function runs now, under the
    /// runtime's deadline and CPU share; it is not counted as a live instance until a call
    /// adopts it.
    pub(crate) async fn spare_instance(&self, pre: &PluginPre<SandboxState>) -> Result<Spare, String> {
        let inner = &self.inner;
        let mut store = self.store_without_call(
            inner.spare_grant.clone(),
            None,
            inner.spare_secrets.clone(),
            inner.spare_redactor.clone(),
        );
        let deadline = self.inner.limits.deadline + Duration::from_millis(250);
        match tokio::time::timeout(deadline, pre.instantiate_async(&mut store)).await {
            Ok(Ok(plugin)) => Ok(Spare { store, plugin }),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("instantiating took longer than {deadline:?}")),
        }
    }

    /// Makes a spare's store the store of the call about to run: the call's grant, network,
    /// secrets and redactor, and a deadline counted from now. What the start function wrote
    /// to the log stays in it: it is part of this instance's one call.
    pub(crate) fn adopt(
        &self,
        store: &mut Store<SandboxState>,
        grant: Arc<EffectiveGrant>,
        egress: Option<Arc<crate::egress::EgressClient>>,
        secrets: Arc<dyn crate::secrets::SecretSource>,
        redactor: Redactor,
    ) {
        let state = store.data_mut();
        let log = state.host.log.clone();
        state.host = self.connector_host(grant, egress, secrets, redactor, log);
        state.host.live = Some(self.inner.metrics.instance());
        state.resumed = Instant::now();
        // The epoch moved on while the spare waited; without this the call's first check
        // would come at once.
        store.set_epoch_deadline(1);
    }

    /// Hands a used store to the spare thread to be dropped after the caller has its answer.
    pub(crate) fn dispose(&self, mut store: Store<SandboxState>) {
        // It no longer counts as live: its call is over.
        store.data_mut().host.live = None;
        self.inner.spares.dispose(self, store);
    }

    /// An empty queue of spares for a connector just loaded.
    pub(crate) fn spare_queue(&self) -> crate::spares::SpareQueue {
        crate::spares::SpareQueue::new(self.inner.spares.clone(), self.inner.metrics.clone())
    }

    /// A ready spare of `connector`'s, if there is one.
    pub(crate) fn take_spare(
        &self,
        queue: &Arc<crate::spares::SpareQueue>,
        pre: &PluginPre<SandboxState>,
    ) -> Option<Spare> {
        self.inner.spares.take(self, queue, pre)
    }

    /// Runs `call` inside a span naming the runtime's tenant, if it has one, so every event of
    /// the call (audit events, the connector's log lines) says whose call it was. The span's
    /// target is the audit target, so a filter that keeps audit events keeps it too.
    pub(crate) async fn in_tenant<T>(&self, call: impl Future<Output = T>) -> T {
        use tracing::Instrument as _;
        match self.tenant() {
            Some(tenant) => {
                call.instrument(tracing::info_span!(target: "cordon::audit", "tenant", tenant = %tenant))
                    .await
            }
            None => call.await,
        }
    }
}
