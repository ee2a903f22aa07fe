//! `cordon-sdk`: write a cordon connector in Rust.
//!
//! A connector is a WebAssembly component the cordon host runs in a sandbox. With this crate
//! you describe it with a builder, write each operation as a plain function over serde types,
//! and export it with one macro. The WIT bindings stay private to this crate.
//!
//! What it is not: a way to reach the network or files directly. Outbound HTTP goes through
//! [`http`], which the host performs after checking the grant; secrets go through
//! [`secrets`]; logging through [`log`].
//!
//! ```text
//! use cordon_sdk::{Connector, Context, Error};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Greet { name: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting { text: String }
//!
//! fn greet(_ctx: &Context, input: Greet) -> Result<Greeting, Error> {
//!     Ok(Greeting { text: format!("hello, {}", input.name) })
//! }
//!
//! fn connector() -> Connector {
//!     Connector::new("greeter", env!("CARGO_PKG_VERSION"))
//!         .description("Says hello")
//!         .action("greet", "Greet someone by name", greet)
//! }
//!
//! cordon_sdk::export_connector!(connector);
//! ```

mod connector;
mod context;
mod error;
mod export;
pub mod http;
pub mod log;
pub mod secrets;

#[doc(hidden)]
pub mod __private {
    //! Used by [`export_connector!`](crate::export_connector); not part of the API.
    pub use crate::bindings;
    pub use crate::bindings::__export_plugin;
    pub use crate::bindings::exports::cordon::connector::connector::Guest;
    pub use crate::bindings::exports::cordon::connector::connector::{
        ConnectorError, InvocationContext, Manifest, PollResult,
    };
    pub use crate::export::{describe, invoke, poll};
}

#[doc(hidden)]
pub mod bindings;

pub use connector::{Connector, Parameter, Poll, Secret, TriggerFn};
pub use context::Context;
pub use error::Error;
pub use schemars;
pub use serde_json;

/// The contract version this SDK builds connectors for (`cordon:connector@0.1.0`).
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Exports a connector. The argument is a function `fn() -> Connector`; it is called once per
/// host call, because the host gives every call a fresh instance.
#[macro_export]
macro_rules! export_connector {
    ($build:path) => {
        struct __CordonConnector;

        impl $crate::__private::Guest for __CordonConnector {
            fn describe() -> $crate::__private::Manifest {
                $crate::__private::describe(&$build())
            }

            fn invoke(
                operation: ::std::string::String,
                context: $crate::__private::InvocationContext,
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::ConnectorError> {
                $crate::__private::invoke(&$build(), operation, context, input)
            }

            fn poll(
                trigger: ::std::string::String,
                context: $crate::__private::InvocationContext,
                input: ::std::string::String,
                state: ::std::option::Option<::std::string::String>,
            ) -> ::std::result::Result<$crate::__private::PollResult, $crate::__private::ConnectorError>
            {
                $crate::__private::poll(&$build(), trigger, context, input, state)
            }
        }

        $crate::__private::__export_plugin!(__CordonConnector with_types_in $crate::__private::bindings);
    };
}
