//! The one place the WIT contract is turned into Rust for guests. Everything else in the
//! SDK imports from here, so a wit-bindgen upgrade touches this file only.
//!
//! Connector authors never see these types: the SDK converts to and from them.

// The generated code has no docs of its own and uses `unsafe` for the canonical ABI.
#![allow(
    missing_docs,
    unsafe_code,
    missing_debug_implementations,
    unused_qualifications
)]

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    // `export_connector!` in the author's crate expands to this macro.
    pub_export_macro: true,
    export_macro_name: "__export_plugin",
    default_bindings_module: "::cordon_sdk::__private::bindings",
    generate_all,
});
