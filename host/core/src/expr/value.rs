//! How expression values convert and compare: string conversion, numbers (integers stay
//! integers, anything with a decimal is a float), property access.

use serde_json::{Number, Value};

use super::ExprError;

/// `items` as text joined by `delimiter`, as `join()` and the Join action make it. The length
/// is checked before the string is built: a long delimiter between many items multiplies.
pub fn join_texts(items: &[Value], delimiter: &str) -> Result<String, ExprError> {
    let texts: Vec<String> = items.iter().map(to_text).collect();
    let delimiters = delimiter.len().saturating_mul(texts.len().saturating_sub(1));
    super::bounds::check_size(
        texts
            .iter()
            .map(String::len)
            .fold(delimiters, usize::saturating_add),
    )?;
    Ok(texts.join(delimiter))
}

/// The string form of a value, as interpolation and `string()` produce it: strings as they are,
/// `null` as the empty string, booleans as `True`/`False` (as Logic Apps renders them),
/// numbers in their shortest form, an XML value as its XML text, other objects and arrays as
/// compact JSON.
pub fn to_text(value: &Value) -> String {
    if let Some(text) = crate::xml::text_of(value) {
        return text;
    }
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => number_text(n),
        other => other.to_string(),
    }
}

fn number_text(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

/// A short description of a value for error messages (never the whole of a large value).
pub fn describe(value: &Value) -> String {
    if value.is_null() {
        return "null".to_owned();
    }
    let kind = kind(value);
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{kind} {}…", text.chars().take(40).collect::<String>())
    } else {
        format!("{kind} {text}")
    }
}

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A number from an expression: integer arithmetic stays exact, a float anywhere makes the
/// result a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn from_value(value: &Value, function: &str) -> Result<Num, ExprError> {
        match value {
            Value::Number(n) => Ok(match n.as_i64() {
                Some(i) => Num::Int(i),
                None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            other => Err(ExprError::new(format!(
                "{function} expects a number, got {}; convert it with int() or float()",
                describe(other)
            ))),
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub fn into_value(self) -> Result<Value, ExprError> {
        match self {
            Num::Int(i) => Ok(Value::from(i)),
            Num::Float(f) => Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| ExprError::new(format!("the result {f} is not a finite number"))),
        }
    }
}

/// `target[key]`: object properties (exact match first, then case-insensitive, as Logic Apps
/// looks properties up) and array indexes.
pub fn member(target: &Value, key: &Value, null_safe: bool) -> Result<Value, ExprError> {
    let missing = |what: String| {
        if null_safe {
            Ok(Value::Null)
        } else {
            Err(ExprError::new(what))
        }
    };
    match (target, key) {
        (Value::Null, _) => missing(format!(
            "cannot read {} of null; write ?[{}] to get null instead",
            key_text(key),
            key_literal(key)
        )),
        (Value::Object(map), Value::String(name)) => {
            if let Some(v) = map.get(name) {
                return Ok(v.clone());
            }
            if let Some((_, v)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                return Ok(v.clone());
            }
            let available: Vec<&str> = map.keys().take(10).map(String::as_str).collect();
            missing(format!(
                "property {name:?} does not exist (the object has: {}); write ?['{name}'] if it may be missing",
                if available.is_empty() {
                    "no properties".to_owned()
                } else {
                    available.join(", ")
                }
            ))
        }
        (Value::Array(items), Value::Number(n)) => {
            let index = n
                .as_i64()
                .ok_or_else(|| ExprError::new(format!("array index {n} is not an integer")))?;
            match usize::try_from(index).ok().and_then(|i| items.get(i)) {
                Some(v) => Ok(v.clone()),
                None => missing(format!(
                    "index {index} is out of range for an array of {} items",
                    items.len()
                )),
            }
        }
        (target, key) => Err(ExprError::new(format!(
            "cannot read {} of {}",
            key_text(key),
            describe(target)
        ))),
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => format!("property {s:?}"),
        other => format!("index {other}"),
    }
}

fn key_literal(key: &Value) -> String {
    match key {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// Equality as `equals` defines it: numbers by value (1 equals 1.0), strings case-sensitively,
/// objects and arrays structurally.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// Ordering for `greater`, `less`, `sort`, `max`, `min`: numbers with numbers, strings with
/// strings (ordinal), booleans with booleans.
pub fn compare(a: &Value, b: &Value, function: &str) -> Result<std::cmp::Ordering, ExprError> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => {
            let (x, y) = (Num::from_value(a, function)?, Num::from_value(b, function)?);
            Ok(match (x, y) {
                (Num::Int(x), Num::Int(y)) => x.cmp(&y),
                _ => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
            })
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        _ => Err(ExprError::new(format!(
            "{function} cannot compare {} with {}",
            describe(a),
            describe(b)
        ))),
    }
}
