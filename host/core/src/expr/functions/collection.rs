//! Collection functions over arrays, strings and objects.

use serde_json::{Map, Value};

use super::super::bounds;
use super::super::value::{compare, describe, equal, join_texts, member};
use super::{Args, ExprError, FunctionInfo, f, variadic};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    f("chunk", 2, 2, chunk),
    f("contains", 2, 2, contains),
    f("empty", 1, 1, empty),
    f("first", 1, 1, first),
    variadic("intersection", 2, intersection),
    f("join", 2, 2, join),
    f("last", 1, 1, last),
    f("length", 1, 1, length),
    f("reverse", 1, 1, reverse),
    f("skip", 2, 2, skip),
    f("sort", 1, 2, sort),
    f("take", 2, 2, take),
    variadic("union", 2, union),
];

fn chunk(args: &Args<'_>) -> Result<Value, ExprError> {
    let size = args.integer(1)?;
    if size <= 0 {
        return Err(args.error("needs a chunk length above 0"));
    }
    let size = size as usize;
    match args.value(0)? {
        Value::String(s) => {
            // Checked before splitting: one-character pieces of a long string take far more
            // memory than the string (each is a separate value).
            let pieces = s.chars().count().div_ceil(size);
            bounds::check_pieces(s.len(), pieces)?;
            let chars: Vec<char> = s.chars().collect();
            Ok(Value::Array(
                chars
                    .chunks(size)
                    .map(|c| Value::String(c.iter().collect()))
                    .collect(),
            ))
        }
        Value::Array(items) => Ok(Value::Array(
            items.chunks(size).map(|c| Value::Array(c.to_vec())).collect(),
        )),
        other => Err(args.error(format!("expects a string or an array, got {}", describe(&other)))),
    }
}

fn contains(args: &Args<'_>) -> Result<Value, ExprError> {
    let wanted = args.value(1)?;
    Ok(Value::Bool(match args.value(0)? {
        Value::String(s) => match &wanted {
            Value::String(w) => s.contains(w.as_str()),
            other => {
                return Err(args.error(format!("searches a string for a string, got {}", describe(other))));
            }
        },
        Value::Array(items) => items.iter().any(|i| equal(i, &wanted)),
        Value::Object(map) => wanted.as_str().is_some_and(|k| map.contains_key(k)),
        Value::Null => false,
        other => {
            return Err(args.error(format!(
                "expects a string, an array or an object, got {}",
                describe(&other)
            )));
        }
    }))
}

fn empty(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(match args.value(0)? {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        other => {
            return Err(args.error(format!(
                "expects a string, an array or an object, got {}",
                describe(&other)
            )));
        }
    }))
}

fn first(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(match args.value(0)? {
        Value::String(s) => s
            .chars()
            .next()
            .map_or(Value::Null, |c| Value::String(c.to_string())),
        Value::Array(a) => a.into_iter().next().unwrap_or(Value::Null),
        Value::Null => Value::Null,
        other => return Err(args.error(format!("expects a string or an array, got {}", describe(&other)))),
    })
}

fn last(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(match args.value(0)? {
        Value::String(s) => s
            .chars()
            .last()
            .map_or(Value::Null, |c| Value::String(c.to_string())),
        Value::Array(a) => a.into_iter().last().unwrap_or(Value::Null),
        Value::Null => Value::Null,
        other => return Err(args.error(format!("expects a string or an array, got {}", describe(&other)))),
    })
}

fn length(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::from(match args.value(0)? {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        other => return Err(args.error(format!("expects a string or an array, got {}", describe(&other)))),
    }))
}

fn intersection(args: &Args<'_>) -> Result<Value, ExprError> {
    let values = args.values()?;
    match &values[0] {
        Value::Array(first) => {
            let mut out: Vec<Value> = Vec::new();
            for item in first {
                let everywhere = values[1..]
                    .iter()
                    .all(|v| v.as_array().is_some_and(|a| a.iter().any(|x| equal(x, item))));
                if everywhere && !out.iter().any(|o| equal(o, item)) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        Value::Object(first) => {
            let mut out = Map::new();
            for (key, value) in first {
                let everywhere = values[1..]
                    .iter()
                    .all(|v| v.get(key).is_some_and(|x| equal(x, value)));
                if everywhere {
                    out.insert(key.clone(), value.clone());
                }
            }
            Ok(Value::Object(out))
        }
        other => Err(args.error(format!("expects arrays or objects, got {}", describe(other)))),
    }
}

fn union(args: &Args<'_>) -> Result<Value, ExprError> {
    let values = args.values()?;
    match &values[0] {
        Value::Array(_) => {
            let mut out: Vec<Value> = Vec::new();
            for (i, value) in values.iter().enumerate() {
                let items = value.as_array().ok_or_else(|| {
                    args.error(format!(
                        "expects only arrays, argument {} is {}",
                        i + 1,
                        describe(value)
                    ))
                })?;
                for item in items {
                    if !out.iter().any(|o| equal(o, item)) {
                        out.push(item.clone());
                    }
                }
            }
            Ok(Value::Array(out))
        }
        Value::Object(_) => {
            let mut out = Map::new();
            for (i, value) in values.iter().enumerate() {
                let object = value.as_object().ok_or_else(|| {
                    args.error(format!(
                        "expects only objects, argument {} is {}",
                        i + 1,
                        describe(value)
                    ))
                })?;
                out.extend(object.clone());
            }
            Ok(Value::Object(out))
        }
        other => Err(args.error(format!("expects arrays or objects, got {}", describe(other)))),
    }
}

fn join(args: &Args<'_>) -> Result<Value, ExprError> {
    let (items, delimiter) = (args.array(0)?, args.string(1)?);
    join_texts(&items, &delimiter).map(Value::String)
}

fn reverse(args: &Args<'_>) -> Result<Value, ExprError> {
    let mut items = args.array(0)?;
    items.reverse();
    Ok(Value::Array(items))
}

fn skip(args: &Args<'_>) -> Result<Value, ExprError> {
    let items = args.array(0)?;
    let count = args.integer(1)?.max(0) as usize;
    Ok(Value::Array(items.into_iter().skip(count).collect()))
}

fn take(args: &Args<'_>) -> Result<Value, ExprError> {
    let count = args.integer(1)?.max(0) as usize;
    match args.value(0)? {
        Value::String(s) => Ok(Value::String(s.chars().take(count).collect())),
        Value::Array(a) => Ok(Value::Array(a.into_iter().take(count).collect())),
        other => Err(args.error(format!("expects a string or an array, got {}", describe(&other)))),
    }
}

/// `sort(array, key?)`: ascending; with a key, objects are ordered by that property.
fn sort(args: &Args<'_>) -> Result<Value, ExprError> {
    let mut items = args.array(0)?;
    let key = args.optional_string(1)?;
    let sort_key = |v: &Value| -> Result<Value, ExprError> {
        match &key {
            Some(k) => member(v, &Value::String(k.clone()), true),
            None => Ok(v.clone()),
        }
    };
    let keyed: Result<Vec<(Value, Value)>, ExprError> =
        items.drain(..).map(|v| Ok((sort_key(&v)?, v))).collect();
    let mut keyed = keyed?;
    let mut failure = None;
    keyed.sort_by(|(a, _), (b, _)| {
        compare(a, b, "sort").unwrap_or_else(|e| {
            failure.get_or_insert(e);
            std::cmp::Ordering::Equal
        })
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(Value::Array(keyed.into_iter().map(|(_, v)| v).collect())),
    }
}
