//! The one place the WIT contract is turned into Rust for the host. Everything else imports
//! from here, so a wasmtime upgrade touches this file only.

// Generated code: no docs of its own.
#![allow(missing_docs, missing_debug_implementations, unused_qualifications)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: {
        // HTTP does real IO, so it is async; everything may trap on a host bug.
        "cordon:connector/http.send": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub use cordon::connector::{http, log, secrets, types};

pub use cordon_core::component::CONTRACT_VERSION;
