//! A loaded connector, its connections, and invoking them.
//!
//! A [`Connection`] is a connector bound to a tenant's parameters, secrets and grant. Its
//! effective grant and its HTTP client are computed once, when it is made. Every call gets a
//! fresh store and instance from the pre-instantiated component, runs under the deadline and
//! the memory cap, and returns its output together with the connector's log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::bindings::{PluginPre, types as wit};
use crate::egress::EgressClient;
use crate::error::{ConnectError, ConnectorError, InvokeError};
use crate::grant::{EffectiveGrant, Grant};
use crate::guest_log::GuestLogRecord;
use crate::ids::ConnectionName;
use crate::json_text::json_text;
use crate::manifest::{Manifest, Operation, OperationKind, schema_errors};
use crate::runtime::{LoadReport, Runtime};
use crate::sandbox::SandboxState;
use crate::secrets::{Redactor, SecretSource};
use crate::spares::SpareQueue;

/// A loaded, validated connector. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    runtime: Runtime,
    pre: PluginPre<SandboxState>,
    manifest: Arc<Manifest>,
    hash: String,
    report: LoadReport,
    /// Instances made ahead of this connector's calls (see `spares.rs`).
    spares: Arc<SpareQueue>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("hash", &self.hash)
            .finish()
    }
}

/// A tenant's configured use of a connector.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub name: ConnectionName,
    /// Non-secret parameter values; the manifest's defaults fill the gaps.
    pub parameters: Map<String, Value>,
    pub grant: Grant,
    pub secrets: Arc<dyn SecretSource>,
}

/// Identifies one call for idempotency: every attempt of one action reuses the key.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub idempotency_key: String,
    pub attempt: u32,
}

impl Default for CallInfo {
    fn default() -> Self {
        CallInfo {
            idempotency_key: String::new(),
            attempt: 1,
        }
    }
}

/// What a call produced: its result, and the connector's log, which is kept even when the
/// call failed.
#[derive(Debug, Clone)]
pub struct Invocation<T> {
    pub result: Result<T, InvokeError>,
    pub log: GuestLogRecord,
    pub elapsed: Duration,
}

/// What one poll of a trigger found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PollOutput {
    pub items: Vec<Value>,
    pub state: Value,
}

impl Connector {
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub(crate) fn new(
        runtime: Runtime,
        pre: PluginPre<SandboxState>,
        manifest: Arc<Manifest>,
        hash: String,
        report: LoadReport,
    ) -> Self {
        Connector {
            spares: Arc::new(runtime.spare_queue()),
            runtime,
            pre,
            manifest,
            hash,
            report,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the component file, hex.
    pub fn component_hash(&self) -> &str {
        &self.hash
    }

    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// Creates a store with no grants, instantiates the component and drops both: the fixed
    /// cost every call pays. For benchmarks.
    #[doc(hidden)]
    pub async fn instantiate_and_drop(&self) -> Result<(), InvokeError> {
        let grant = Arc::new(EffectiveGrant::nothing(
            self.manifest.id.clone(),
            ConnectionName::new("benchmark").map_err(|e| InvokeError::Host(e.to_string()))?,
        ));
        let _slot = self.runtime.instance_slot().await;
        let mut store = self.runtime.new_store(
            grant,
            None,
            Arc::new(crate::secrets::NoSecrets),
            Redactor::default(),
        );
        self.pre
            .instantiate_async(&mut store)
            .await
            .map(drop)
            .map_err(|e| InvokeError::Host(e.to_string()))
    }

    /// Binds the connector to a connection: checks parameters, computes the effective grant
    /// and builds the connection's HTTP client.
    pub fn connect(&self, config: ConnectionConfig) -> Result<Connection, ConnectError> {
        let manifest = &self.manifest;
        let mut parameters = Map::new();
        for (name, value) in &config.parameters {
            if !manifest.parameters.iter().any(|p| p.name.as_str() == name) {
                return Err(ConnectError::UnknownParameter {
                    connector: manifest.id.to_string(),
                    connection: config.name.to_string(),
                    parameter: name.clone(),
                    known: names(manifest.parameters.iter().map(|p| p.name.as_str())),
                });
            }
            parameters.insert(name.clone(), value.clone());
        }
        for parameter in &manifest.parameters {
            if parameters.contains_key(parameter.name.as_str()) {
                continue;
            }
            match (&parameter.default_value, parameter.required) {
                (Some(default), _) => {
                    parameters.insert(parameter.name.to_string(), default.clone());
                }
                (None, true) => {
                    return Err(ConnectError::MissingParameter {
                        connector: manifest.id.to_string(),
                        connection: config.name.to_string(),
                        parameter: parameter.name.to_string(),
                    });
                }
                (None, false) => {}
            }
        }
        let grant = Arc::new(EffectiveGrant::new(manifest, config.name.clone(), &config.grant));
        let limits = self.runtime.limits().http.clone();
        let egress = EgressClient::new(grant.clone(), limits, self.runtime.inner.name_lookup.clone())
            .map_err(|e| ConnectError::Client {
                connection: config.name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Connection {
            connector: self.clone(),
            grant,
            parameters_json: Value::Object(parameters).to_string(),
            egress: Arc::new(egress),
            secrets: config.secrets,
        })
    }
}

fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<&str> = items.collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// A connector bound to one connection. Cheap to clone; safe to call concurrently.
#[derive(Clone, Debug)]
pub struct Connection {
    connector: Connector,
    grant: Arc<EffectiveGrant>,
    parameters_json: String,
    egress: Arc<EgressClient>,
    secrets: Arc<dyn SecretSource>,
}

enum Call<'a> {
    Invoke,
    Poll { state: Option<&'a Value> },
}

enum Returned {
    Output(String),
    Poll(wit::PollResult),
}

impl Connection {
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    pub fn name(&self) -> &ConnectionName {
        self.grant.connection()
    }

    /// Runs the action `operation` on `input`.
    pub async fn invoke(&self, operation: &str, input: &Value, call: &CallInfo) -> Invocation<Value> {
        let invocation = self
            .connector
            .runtime
            .in_tenant(self.run(operation, OperationKind::Action, input, call, Call::Invoke))
            .await;
        map_invocation(invocation, |returned| match returned {
            Returned::Output(text) => Ok(text),
            Returned::Poll(_) => Err(InvokeError::Host("an action returned a poll result".into())),
        })
        .and_then_value(|(op, text)| self.parse_output(op, &text, true))
    }

    /// Polls the trigger `trigger` configured by `input`, with the state of the last poll.
    pub async fn poll(
        &self,
        trigger: &str,
        input: &Value,
        state: Option<&Value>,
        call: &CallInfo,
    ) -> Invocation<PollOutput> {
        let invocation = self
            .connector
            .runtime
            .in_tenant(self.run(trigger, OperationKind::Trigger, input, call, Call::Poll { state }))
            .await;
        map_invocation(invocation, |returned| match returned {
            Returned::Poll(poll) => Ok(poll),
            Returned::Output(_) => Err(InvokeError::Host("a trigger returned an action result".into())),
        })
        .and_then_value(|(op, poll)| {
            let items = poll
                .items
                .iter()
                .map(|item| self.parse_output(op, item, true))
                .collect::<Result<Vec<_>, _>>()?;
            let state = self.parse_output(op, &poll.state, false)?;
            Ok(PollOutput { items, state })
        })
    }

    /// What the guest is told about the call.
    fn invocation_context(&self, call: &CallInfo) -> wit::InvocationContext {
        wit::InvocationContext {
            connection: self.grant.connection().to_string(),
            parameters: self.parameters_json.clone(),
            idempotency_key: call.idempotency_key.clone(),
            attempt: call.attempt,
        }
    }

    fn parse_output(&self, op: &Operation, text: &str, check_schema: bool) -> Result<Value, InvokeError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            InvokeError::InvalidOutput(format!(
                "{:?} returned text that is not JSON: {e}",
                op.id.as_str()
            ))
        })?;
        if check_schema {
            let validators = op.validators().map_err(InvokeError::Host)?;
            let errors = schema_errors(&validators.output, &value, 5);
            if !errors.is_empty() {
                return Err(InvokeError::InvalidOutput(format!(
                    "{:?} returned output that does not fit its output schema: {}",
                    op.id.as_str(),
                    errors.join("; ")
                )));
            }
        }
        Ok(value)
    }

    async fn run<'m>(
        &'m self,
        operation: &str,
        kind: OperationKind,
        input: &Value,
        call: &CallInfo,
        which: Call<'_>,
    ) -> Invocation<(&'m Operation, Returned)> {
        let started = Instant::now();
        let manifest = self.connector.manifest();
        let Some(op) = manifest.operation(operation).filter(|op| op.kind == kind) else {
            let kind_name = match kind {
                OperationKind::Action => "action",
                OperationKind::Trigger => "trigger",
            };
            return Invocation {
                result: Err(InvokeError::UnknownOperation {
                    connector: manifest.id.to_string(),
                    operation: operation.to_owned(),
                    kind: kind_name,
                    available: names(
                        manifest
                            .operations
                            .iter()
                            .filter(|o| o.kind == kind)
                            .map(|o| o.id.as_str()),
                    ),
                }),
                log: GuestLogRecord::default(),
                elapsed: started.elapsed(),
            };
        };
        if let Err(error) = check_input(op, operation, input) {
            return Invocation {
                result: Err(error),
                log: GuestLogRecord::default(),
                elapsed: started.elapsed(),
            };
        }

        let runtime = &self.connector.runtime;
        let limits = runtime.limits().clone();
        let redactor = Redactor::default();
        // Waiting for a slot counts against the deadline: under overload a call fails with a
        // retryable error instead of waiting without end.
        let Ok(slot) = tokio::time::timeout(limits.deadline, runtime.instance_slot()).await else {
            return Invocation {
                result: Err(InvokeError::NoFreeInstance(limits.deadline)),
                log: GuestLogRecord::default(),
                elapsed: started.elapsed(),
            };
        };
        // A spare made ahead of the call if one is ready, else a store made now; either way
        // an instance no other call has used.
        let spare = runtime.take_spare(&self.connector.spares, &self.connector.pre);
        let (mut store, ready) = match spare {
            Some(spare) => {
                let mut store = spare.store;
                runtime.adopt(
                    &mut store,
                    self.grant.clone(),
                    Some(self.egress.clone()),
                    self.secrets.clone(),
                    redactor.clone(),
                );
                (store, Some(spare.plugin))
            }
            None => {
                let store = runtime.new_store(
                    self.grant.clone(),
                    Some(self.egress.clone()),
                    self.secrets.clone(),
                    redactor.clone(),
                );
                (store, None)
            }
        };
        let context = self.invocation_context(call);
        let input_text = json_text(input);
        let guest_call = async {
            let plugin = match ready {
                Some(plugin) => plugin,
                None => self.connector.pre.instantiate_async(&mut store).await?,
            };
            let guest = plugin.cordon_connector_connector();
            match which {
                Call::Invoke => guest
                    .call_invoke(&mut store, operation, &context, &input_text)
                    .await
                    .map(|r| r.map(Returned::Output)),
                Call::Poll { state } => {
                    let state = state.map(json_text);
                    guest
                        .call_poll(&mut store, operation, &context, &input_text, state.as_deref())
                        .await
                        .map(|r| r.map(Returned::Poll))
                }
            }
        };
        // The epoch callback enforces the deadline while the guest runs; this outer timeout
        // is the backstop for time spent inside host calls.
        let outcome = tokio::time::timeout(limits.deadline + Duration::from_millis(250), guest_call).await;
        let state = store.data();
        let result = match outcome {
            Err(_) => Err(InvokeError::DeadlineExceeded(limits.deadline)),
            Ok(Err(trap)) => Err(if state.deadline_hit {
                InvokeError::DeadlineExceeded(limits.deadline)
            } else if state.limiter.memory_refused {
                InvokeError::MemoryLimit(limits.memory_bytes)
            } else {
                InvokeError::Trap(redactor.redact(&trap_message(&trap)))
            }),
            Ok(Ok(Err(error))) => {
                let error = convert_error(error, &redactor);
                Err(InvokeError::Connector(match state.host.throttled {
                    // The call failed after its tenant's quota refused it a request: retrying
                    // after the quota has room is what helps, so say so to retry policies.
                    Some(retry_after) if !matches!(error, ConnectorError::RateLimited { .. }) => {
                        ConnectorError::RateLimited {
                            message: format!("{error} (after the tenant's quota refused a request)"),
                            retry_after,
                        }
                    }
                    _ => error,
                }))
            }
            Ok(Ok(Ok(returned))) => {
                let size = match &returned {
                    Returned::Output(text) => text.len(),
                    Returned::Poll(poll) => {
                        poll.state.len() + poll.items.iter().map(String::len).sum::<usize>()
                    }
                };
                if size > limits.output_bytes {
                    Err(InvokeError::OutputTooLarge {
                        size,
                        cap: limits.output_bytes,
                    })
                } else {
                    Ok((op, redact_returned(returned, &redactor)))
                }
            }
        };
        let log = state.host.log.finish(&redactor);
        runtime.dispose(store);
        drop(slot);
        emit_log(self, operation, &log);
        runtime.metrics().invocation(
            self.connector.manifest().id.as_str(),
            match kind {
                OperationKind::Action => "invoke",
                OperationKind::Trigger => "poll",
            },
            result.as_ref().map_or_else(InvokeError::kind, |_| "ok"),
        );
        Invocation {
            result,
            log,
            elapsed: started.elapsed(),
        }
    }
}

/// One store and instance kept across calls: what a runtime without per-call isolation does.
/// cordon never runs a workflow this way (state would leak from one call to the next); it
/// exists so benchmarks can show what the fresh instance of every call costs. Calls share
/// one deadline, counted from when the instance was made.
#[doc(hidden)]
pub struct ReusedInstance {
    connection: Connection,
    store: wasmtime::Store<SandboxState>,
    plugin: crate::bindings::Plugin,
}

impl std::fmt::Debug for ReusedInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReusedInstance")
            .field("connection", self.connection.name())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// An instance to call again and again; for benchmarks only (see [`ReusedInstance`]).
    #[doc(hidden)]
    pub async fn reused_instance(&self) -> Result<ReusedInstance, InvokeError> {
        let mut store = self.connector.runtime.new_store(
            self.grant.clone(),
            Some(self.egress.clone()),
            self.secrets.clone(),
            Redactor::default(),
        );
        let plugin = self
            .connector
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| InvokeError::Host(format!("{e:#}")))?;
        Ok(ReusedInstance {
            connection: self.clone(),
            store,
            plugin,
        })
    }
}

impl ReusedInstance {
    /// What [`Connection::invoke`] does, on the kept instance: input checked against its
    /// schema, the call, output parsed and checked against its schema.
    pub async fn invoke(&mut self, operation: &str, input: &Value) -> Result<Value, InvokeError> {
        let connection = &self.connection;
        let op = connection
            .connector
            .manifest()
            .operation(operation)
            .ok_or_else(|| InvokeError::Host(format!("no operation {operation:?}")))?;
        check_input(op, operation, input)?;
        let context = connection.invocation_context(&CallInfo::default());
        let text = self
            .plugin
            .cordon_connector_connector()
            .call_invoke(&mut self.store, operation, &context, &json_text(input))
            .await
            .map_err(|trap| InvokeError::Trap(trap_message(&trap)))?
            .map_err(|error| InvokeError::Connector(convert_error(error, &Redactor::default())))?;
        connection.parse_output(op, &text, true)
    }
}

/// The input checked against the operation's schema, before any instance is made.
fn check_input(op: &Operation, operation: &str, input: &Value) -> Result<(), InvokeError> {
    let validators = op.validators().map_err(InvokeError::Host)?;
    let reasons = schema_errors(&validators.input, input, 10);
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(InvokeError::InvalidInput {
            operation: operation.to_owned(),
            reasons,
        })
    }
}

/// The reason a guest call failed, without the wasm backtrace (which can run to thousands of
/// frames for a stack overflow).
fn trap_message(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    }
}

fn redact_returned(returned: Returned, redactor: &Redactor) -> Returned {
    if redactor.is_empty() {
        return returned;
    }
    match returned {
        Returned::Output(text) => Returned::Output(redactor.redact(&text)),
        Returned::Poll(poll) => Returned::Poll(wit::PollResult {
            items: poll.items.iter().map(|i| redactor.redact(i)).collect(),
            state: redactor.redact(&poll.state),
        }),
    }
}

fn emit_log(connection: &Connection, operation: &str, log: &GuestLogRecord) {
    for line in &log.lines {
        tracing::debug!(
            target: "cordon::guest",
            connector = %connection.connector.manifest().id,
            connection = %connection.name(),
            operation,
            stream = ?line.stream,
            level = ?line.level,
            "{}",
            line.message
        );
    }
    if log.dropped_lines > 0 {
        tracing::warn!(
            target: "cordon::guest",
            connector = %connection.connector.manifest().id,
            dropped = log.dropped_lines,
            "connector log exceeded its cap; lines were dropped"
        );
    }
}

fn convert_error(error: wit::ConnectorError, redactor: &Redactor) -> ConnectorError {
    let r = |m: String| redactor.redact(&m);
    match error {
        wit::ConnectorError::InvalidInput(m) => ConnectorError::InvalidInput { message: r(m) },
        wit::ConnectorError::Unauthorized(m) => ConnectorError::Unauthorized { message: r(m) },
        wit::ConnectorError::NotFound(m) => ConnectorError::NotFound { message: r(m) },
        wit::ConnectorError::RateLimited(limit) => ConnectorError::RateLimited {
            message: r(limit.message),
            retry_after: limit.retry_after_ms.map(Duration::from_millis),
        },
        wit::ConnectorError::Transient(m) => ConnectorError::Transient { message: r(m) },
        wit::ConnectorError::Permanent(m) => ConnectorError::Permanent { message: r(m) },
    }
}

fn map_invocation<A, B>(
    invocation: Invocation<(&Operation, A)>,
    f: impl FnOnce(A) -> Result<B, InvokeError>,
) -> Invocation<(&Operation, B)> {
    Invocation {
        result: invocation.result.and_then(|(op, a)| f(a).map(|b| (op, b))),
        log: invocation.log,
        elapsed: invocation.elapsed,
    }
}

impl<'m, A> Invocation<(&'m Operation, A)> {
    fn and_then_value<B>(
        self,
        f: impl FnOnce((&'m Operation, A)) -> Result<B, InvokeError>,
    ) -> Invocation<B> {
        Invocation {
            result: self.result.and_then(f),
            log: self.log,
            elapsed: self.elapsed,
        }
    }
}
