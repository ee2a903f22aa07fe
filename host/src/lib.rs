//! `cordon-host`: runs connectors as sandboxed WebAssembly components.
//!
//! A connector is a component built against the `cordon:connector@0.1.0` contract (see
//! `wit/`). The host loads it ([`Runtime::load_file`]), reads its manifest once in a sandbox
//! with no grants, binds it to a connection ([`Connector::connect`]) whose effective grant is
//! what the connector requested intersected with what the operator granted, and runs each
//! call in a fresh store and instance under a deadline and memory, table, stack, log and
//! output caps.
//!
//! It is not a workflow engine; workflows build on [`Connection::invoke`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use cordon_host::{CallInfo, ConnectionConfig, Grant, Runtime, RuntimeConfig};
//! use cordon_host::ids::ConnectionName;
//! use cordon_host::secrets::NoSecrets;
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let connector = runtime.load_file("json_transform.wasm".as_ref()).await?;
//! let connection = connector.connect(ConnectionConfig {
//!     name: ConnectionName::new("local")?,
//!     parameters: Default::default(),
//!     grant: Grant::default(), // deny everything
//!     secrets: Arc::new(NoSecrets),
//! })?;
//! let call = connection.invoke("echo", &serde_json::json!({"a": 1}), &CallInfo::default()).await;
//! println!("{}", call.result?);
//! # Ok(()) }
//! ```

pub mod audit;
mod bindings;
pub mod builtin;
mod cache;
pub mod cli;
mod connector;
mod cpu_share;
pub mod db;
pub mod egress;
pub mod egress_quota;
mod engine;
mod error;
mod file_identity;
pub mod grant;
pub mod guest_log;
pub mod ids;
mod json_text;
pub mod limits;
pub mod manifest;
pub mod metrics;
mod rate;
mod runtime;
mod sandbox;
pub mod secrets;
pub mod server;
mod spares;
pub mod tenants;
pub mod workflow;

// Parsers and policy with no IO and no wasmtime live in cordon-core; their paths here are
// unchanged.
pub use cordon_core::{address, expr, host_pattern, xml};

pub use bindings::CONTRACT_VERSION;
pub use connector::{
    CallInfo, Connection, ConnectionConfig, Connector, Invocation, PollOutput, ReusedInstance,
};
pub use error::{ConnectError, ConnectorError, InvokeError, LoadError};
pub use file_identity::SETTLED as FILE_SETTLED;
pub use grant::{EffectiveGrant, Grant, SecretGrant};
pub use limits::{HttpLimits, Limits};
pub use runtime::{
    ArtifactSource, DEFAULT_SPARE_INSTANCES, Identity, InstanceAllocation, LoadReport, Runtime, RuntimeConfig,
};
