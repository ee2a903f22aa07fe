use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::cordon::connector::types::InvocationContext;

/// What the host tells an operation about the call: the connection, its parameters, and the
/// idempotency key and attempt number of this action.
#[derive(Debug, Clone)]
pub struct Context {
    connection: String,
    parameters: serde_json::Map<String, serde_json::Value>,
    idempotency_key: String,
    attempt: u32,
}

impl Context {
    pub(crate) fn from_wit(context: InvocationContext) -> Result<Self, Error> {
        let parameters = match serde_json::from_str(&context.parameters)? {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            other => {
                return Err(Error::permanent(format!(
                    "connection parameters must be a JSON object, the host sent {other}"
                )));
            }
        };
        Ok(Context {
            connection: context.connection,
            parameters,
            idempotency_key: context.idempotency_key,
            attempt: context.attempt,
        })
    }

    /// The connection's name.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// Stable across all attempts of one action in one run: forward it to services that
    /// deduplicate by key.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// 1 for the first attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A connection parameter, deserialized. The host has already applied the manifest's
    /// defaults and checked required parameters, so `None` means optional and unset.
    pub fn parameter<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.parameters.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone()).map(Some).map_err(|e| {
                Error::invalid_input(format!("connection parameter {name:?} has the wrong type: {e}"))
            }),
        }
    }
}
