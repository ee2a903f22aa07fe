//! The parts of cordon that only compute: host patterns and address ranges (the egress
//! policy), the workflow expression language, the workflow definition grammar, XML values, and the
//! component pre-check. No IO beyond the clock and randomness, and no wasmtime.
//!
//! They live apart from `cordon-host` so that the fuzz targets (`tests/fuzz`) and the table
//! tests build them alone: fuzzing needs its own compiler flags, and a second build of
//! wasmtime under them would double CI's compile time. `cordon-host` re-exports every module
//! at its old path (`cordon_host::expr`, `cordon_host::workflow::definition`, ...).

pub mod address;
pub mod component;
pub mod content;
pub mod expr;
pub mod host_pattern;
pub mod problem;
pub mod status;
pub mod suggest;
pub mod time_zone;
pub mod workflow;
pub mod xml;
