//! Conversion functions. Binary values are represented as Logic Apps represents binary content
//! in JSON: `{"$content-type": "application/octet-stream", "$content": "<base64>"}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::Value;

use super::super::value::{describe, to_text};
use super::{Args, ExprError, FunctionInfo, f, variadic};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    f("array", 1, 1, array),
    f("base64", 1, 1, base64),
    f("base64ToBinary", 1, 1, base64_to_binary),
    f("base64ToString", 1, 1, base64_to_string),
    f("binary", 1, 1, binary),
    f("bool", 1, 1, bool),
    variadic("createArray", 1, create_array),
    f("dataUri", 1, 1, data_uri),
    f("dataUriToBinary", 1, 1, data_uri_to_binary),
    f("dataUriToString", 1, 1, data_uri_to_string),
    f("decimal", 1, 1, decimal),
    f("decodeBase64", 1, 1, base64_to_string),
    f("decodeDataUri", 1, 1, data_uri_to_binary),
    f("decodeUriComponent", 1, 1, uri_component_to_string),
    f("encodeUriComponent", 1, 1, uri_component),
    f("float", 1, 2, float),
    f("int", 1, 1, int),
    f("json", 1, 1, json_),
    f("string", 1, 1, string),
    f("uriComponent", 1, 1, uri_component),
    f("uriComponentToBinary", 1, 1, uri_component_to_binary),
    f("uriComponentToString", 1, 1, uri_component_to_string),
];

/// Everything but the RFC 3986 unreserved characters is escaped, as .NET's `EscapeDataString`
/// (which Logic Apps uses) does.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn binary_value(bytes: &[u8]) -> Value {
    crate::content::value("application/octet-stream", bytes)
}

/// The bytes of a value: the content of a binary value, or the UTF-8 of its string form.
fn bytes_of(value: &Value) -> Vec<u8> {
    crate::content::bytes(value).unwrap_or_else(|| to_text(value).into_bytes())
}

fn utf8(args: &Args<'_>, bytes: Vec<u8>) -> Result<Value, ExprError> {
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| args.error("decoded bytes that are not UTF-8 text; use the binary form instead"))
}

fn decode_base64(args: &Args<'_>, text: &str) -> Result<Vec<u8>, ExprError> {
    BASE64
        .decode(text.trim())
        .map_err(|e| args.error(format!("cannot decode {:?} as base64: {e}", preview(text))))
}

fn preview(text: &str) -> String {
    text.chars().take(40).collect()
}

fn array(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Array(vec![args.value(0)?]))
}

fn create_array(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Array(args.values()?))
}

fn base64(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(BASE64.encode(bytes_of(&args.value(0)?))))
}

fn base64_to_binary(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = args.string(0)?;
    Ok(binary_value(&decode_base64(args, &text)?))
}

fn base64_to_string(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = args.string(0)?;
    let bytes = decode_base64(args, &text)?;
    utf8(args, bytes)
}

fn binary(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(binary_value(&bytes_of(&args.value(0)?)))
}

fn bool(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(match args.value(0)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) if s.eq_ignore_ascii_case("true") => true,
        Value::String(s) if s.eq_ignore_ascii_case("false") => false,
        other => return Err(args.error(format!("cannot convert {} to a boolean", describe(&other)))),
    }))
}

fn data_uri(args: &Args<'_>) -> Result<Value, ExprError> {
    let value = args.value(0)?;
    let content_type = value
        .get("$content-type")
        .and_then(Value::as_str)
        .unwrap_or("text/plain;charset=utf-8")
        .to_owned();
    Ok(Value::String(format!(
        "data:{content_type};base64,{}",
        BASE64.encode(bytes_of(&value))
    )))
}

fn data_uri_bytes(args: &Args<'_>) -> Result<Vec<u8>, ExprError> {
    let text = args.string(0)?;
    let (header, data) = text
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .ok_or_else(|| {
            args.error(format!(
                "expects a data URI (data:...,...), got {:?}",
                preview(&text)
            ))
        })?;
    if header.ends_with(";base64") {
        decode_base64(args, data)
    } else {
        Ok(percent_decode_str(data).collect())
    }
}

fn data_uri_to_binary(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(binary_value(&data_uri_bytes(args)?))
}

fn data_uri_to_string(args: &Args<'_>) -> Result<Value, ExprError> {
    let bytes = data_uri_bytes(args)?;
    utf8(args, bytes)
}

fn parse_number(args: &Args<'_>, kind: &str) -> Result<f64, ExprError> {
    match args.value(0)? {
        Value::Number(n) => Ok(n.as_f64().unwrap_or_default()),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| args.error(format!("cannot convert {s:?} to {kind}"))),
        other => Err(args.error(format!("cannot convert {} to {kind}", describe(&other)))),
    }
}

fn decimal(args: &Args<'_>) -> Result<Value, ExprError> {
    super::super::value::Num::Float(parse_number(args, "a decimal")?).into_value()
}

fn float(args: &Args<'_>) -> Result<Value, ExprError> {
    super::super::value::Num::Float(parse_number(args, "a float")?).into_value()
}

fn int(args: &Args<'_>) -> Result<Value, ExprError> {
    match args.value(0)? {
        Value::Number(n) if n.is_i64() => Ok(Value::Number(n)),
        Value::Number(n) => Ok(Value::from(n.as_f64().unwrap_or_default().trunc() as i64)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| args.error(format!("cannot convert {s:?} to an integer"))),
        Value::Bool(b) => Ok(Value::from(i64::from(b))),
        other => Err(args.error(format!("cannot convert {} to an integer", describe(&other)))),
    }
}

/// `json(value)`: JSON text parsed, an XML value converted (`crate::xml::to_json`), anything
/// else as it is.
fn json_(args: &Args<'_>) -> Result<Value, ExprError> {
    let value = args.value(0)?;
    if let Some(text) = crate::xml::text_of(&value) {
        return crate::xml::to_json(&text).map_err(|e| ExprError::new(format!("json: {e}")));
    }
    match value {
        Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| args.error(format!("cannot parse {:?} as JSON: {e}", preview(&s)))),
        other => Ok(other),
    }
}

fn string(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(to_text(&args.value(0)?)))
}

fn uri_component(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = to_text(&args.value(0)?);
    Ok(Value::String(
        utf8_percent_encode(&text, URI_COMPONENT).to_string(),
    ))
}

fn uri_component_to_binary(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = args.string(0)?;
    Ok(binary_value(&percent_decode_str(&text).collect::<Vec<u8>>()))
}

fn uri_component_to_string(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = args.string(0)?;
    utf8(args, percent_decode_str(&text).collect())
}
