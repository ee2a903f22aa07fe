//! Content: bytes that are not JSON, with their media type, written in JSON the way Logic Apps
//! writes them: `{"$content-type": "image/png", "$content": "<base64>"}`. Binary values
//! (`binary()`), XML values, and request and response bodies that are neither JSON nor text
//! are content.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// The content value of `bytes` of type `content_type`.
pub fn value(content_type: &str, bytes: &[u8]) -> Value {
    json!({"$content-type": content_type, "$content": BASE64.encode(bytes)})
}

/// The bytes of a value's `$content`, whatever its type says; `None` if it has none, or it is
/// not base64.
pub fn bytes(value: &Value) -> Option<Vec<u8>> {
    BASE64.decode(value.get("$content")?.as_str()?).ok()
}

/// The type and bytes of a content value; `None` for any value that is not one.
pub fn decode(value: &Value) -> Option<(&str, Vec<u8>)> {
    let content_type = value.get("$content-type")?.as_str()?;
    Some((content_type, bytes(value)?))
}

/// A media type without its parameters, in lower case: `text/xml; charset=utf-8` is
/// `text/xml`.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}
