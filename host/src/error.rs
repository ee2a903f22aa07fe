//! The failures callers branch on. Messages say what is wrong and how to fix it.

use std::time::Duration;

use crate::manifest::InvalidManifest;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {origin}: {reason}")]
    Read { origin: String, reason: String },
    #[error(
        "{origin} is {size} bytes, over the cap of {cap} bytes for a component; raise `Limits::component_bytes` if it is legitimate"
    )]
    TooLarge { origin: String, size: u64, cap: u64 },
    #[error("{origin} is not a WebAssembly file (it does not start with the \\0asm magic)")]
    NotWasm { origin: String },
    #[error(
        "{origin} is a core WebAssembly module, not a component; build the connector for wasm32-wasip2 with cordon-sdk"
    )]
    CoreModule { origin: String },
    #[error("{origin} is not a valid WebAssembly component: {reason}")]
    Invalid { origin: String, reason: String },
    #[error(
        "{origin} did not compile within {limit:?}; a connector this slow to compile is refused (raise `Limits::compile_time` if it is legitimate)"
    )]
    CompileTimeout { origin: String, limit: Duration },
    #[error(
        "{origin} was built for contract {found}, but this host implements {expected}; rebuild it against cordon-sdk for {expected}"
    )]
    WrongContract {
        origin: String,
        found: String,
        expected: String,
    },
    #[error(
        "{origin} does not export {expected}; is it a cordon connector? Build it with cordon-sdk and export_connector!"
    )]
    NotAConnector { origin: String, expected: String },
    #[error(
        "{origin} imports {import:?}, which connectors may not use; allowed are cordon:connector/{{types,http,secrets,log}} and wasi:{{io,cli,clocks,random,filesystem}}"
    )]
    DisallowedImport { origin: String, import: String },
    #[error("{origin} failed while describing itself: {reason}")]
    Describe { origin: String, reason: String },
    #[error("{origin}: {source}")]
    Manifest {
        origin: String,
        #[source]
        source: InvalidManifest,
    },
}

impl LoadError {
    /// A pre-check's finding, about the file `origin` names.
    pub fn from_problem(origin: &str, problem: cordon_core::component::ComponentProblem) -> LoadError {
        use cordon_core::component::ComponentProblem as P;
        let origin = origin.to_owned();
        match problem {
            P::NotWasm => LoadError::NotWasm { origin },
            P::CoreModule => LoadError::CoreModule { origin },
            P::UnknownLayer | P::Malformed(_) => LoadError::Invalid {
                origin,
                reason: problem.to_string(),
            },
            P::WrongContract { found, expected } => LoadError::WrongContract {
                origin,
                found,
                expected,
            },
            P::DisallowedImport(import) => LoadError::DisallowedImport { origin, import },
            P::NotAConnector(expected) => LoadError::NotAConnector { origin, expected },
        }
    }
}

/// Why a connection could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "connection {connection:?} is missing the required parameter {parameter:?} of connector {connector:?}"
    )]
    MissingParameter {
        connector: String,
        connection: String,
        parameter: String,
    },
    #[error(
        "connection {connection:?} sets parameter {parameter:?}, which connector {connector:?} does not have (it has: {known})"
    )]
    UnknownParameter {
        connector: String,
        connection: String,
        parameter: String,
        known: String,
    },
    #[error("cannot build the HTTP client for connection {connection:?}: {reason}")]
    Client { connection: String, reason: String },
}

/// The typed failure a connector returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorError {
    #[error("invalid input: {message}")]
    InvalidInput { message: String },
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    #[error("not found: {message}")]
    NotFound { message: String },
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("transient failure: {message}")]
    Transient { message: String },
    #[error("{message}")]
    Permanent { message: String },
}

/// Why an invocation produced no output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("connector {connector:?} has no {kind} {operation:?}; it has: {available}")]
    UnknownOperation {
        connector: String,
        operation: String,
        kind: &'static str,
        available: String,
    },
    #[error("the input of {operation:?} does not fit its schema:\n  - {}", reasons.join("\n  - "))]
    InvalidInput { operation: String, reasons: Vec<String> },
    #[error("connector error: {0}")]
    Connector(ConnectorError),
    #[error("the connector did not finish within its deadline of {0:?} and was stopped")]
    DeadlineExceeded(Duration),
    #[error("the connector tried to use more than {0} bytes of memory and was stopped")]
    MemoryLimit(usize),
    #[error("the connector returned {size} bytes of output, over the cap of {cap}")]
    OutputTooLarge { size: usize, cap: usize },
    #[error("the connector returned output that breaks its own contract: {0}")]
    InvalidOutput(String),
    #[error("the connector trapped: {0}")]
    Trap(String),
    #[error("the host could not run the connector: {0}")]
    Host(String),
    /// Every instance slot of the runtime stayed busy for the whole deadline. Retryable: it
    /// is load, not a fault of the call; `max_concurrent_instances` sets the slots.
    #[error(
        "no connector instance was free within {0:?}: all of the runtime's instance slots were busy (raise max_concurrent_instances, or lower the load)"
    )]
    NoFreeInstance(Duration),
}

impl InvokeError {
    /// A short, fixed name for the kind of failure, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::UnknownOperation { .. } => "unknown_operation",
            InvokeError::InvalidInput { .. } => "invalid_input",
            InvokeError::Connector(e) => match e {
                ConnectorError::InvalidInput { .. } => "connector_invalid_input",
                ConnectorError::Unauthorized { .. } => "connector_unauthorized",
                ConnectorError::NotFound { .. } => "connector_not_found",
                ConnectorError::RateLimited { .. } => "connector_rate_limited",
                ConnectorError::Transient { .. } => "connector_transient",
                ConnectorError::Permanent { .. } => "connector_permanent",
            },
            InvokeError::DeadlineExceeded(_) => "deadline_exceeded",
            InvokeError::MemoryLimit(_) => "memory_limit",
            InvokeError::OutputTooLarge { .. } => "output_too_large",
            InvokeError::InvalidOutput(_) => "invalid_output",
            InvokeError::Trap(_) => "trap",
            InvokeError::Host(_) => "host",
            InvokeError::NoFreeInstance(_) => "no_free_instance",
        }
    }

    /// Whether retrying the same call may succeed: transient and rate-limited connector
    /// errors and deadline overruns.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            InvokeError::DeadlineExceeded(_)
                | InvokeError::NoFreeInstance(_)
                | InvokeError::Connector(
                    ConnectorError::Transient { .. } | ConnectorError::RateLimited { .. }
                )
        )
    }
}
