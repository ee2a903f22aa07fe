//! The Extism twin of `json-transform`'s `echo` action: parse the input JSON into a value and
//! serialize it back, as cordon's SDK does for a typed handler.

use extism_pdk::{FnResult, Json, plugin_fn};
use serde_json::Value;

#[plugin_fn]
pub fn echo(Json(input): Json<Value>) -> FnResult<Json<Value>> {
    Ok(Json(input))
}
