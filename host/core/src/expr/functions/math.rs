//! Math functions. Two integers give an integer (`div` truncates, as documented); a float on
//! either side gives a float. Integer overflow is an error, not a wrap.

use serde_json::Value;

use super::super::value::{Num, compare};
use super::{Args, ExprError, FunctionInfo, f, variadic};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    f("add", 2, 2, add),
    f("div", 2, 2, div),
    variadic("max", 1, max),
    variadic("min", 1, min),
    f("mod", 2, 2, modulo),
    f("mul", 2, 2, mul),
    f("rand", 2, 2, rand),
    f("range", 2, 2, range),
    f("sub", 2, 2, sub),
];

fn arithmetic(
    args: &Args<'_>,
    int: fn(i64, i64) -> Option<i64>,
    float: fn(f64, f64) -> f64,
) -> Result<Value, ExprError> {
    match (args.number(0)?, args.number(1)?) {
        (Num::Int(a), Num::Int(b)) => int(a, b)
            .map(Value::from)
            .ok_or_else(|| args.error(format!("of {a} and {b} overflows a 64-bit integer"))),
        (a, b) => Num::Float(float(a.as_f64(), b.as_f64())).into_value(),
    }
}

fn add(args: &Args<'_>) -> Result<Value, ExprError> {
    arithmetic(args, i64::checked_add, |a, b| a + b)
}

fn sub(args: &Args<'_>) -> Result<Value, ExprError> {
    arithmetic(args, i64::checked_sub, |a, b| a - b)
}

fn mul(args: &Args<'_>) -> Result<Value, ExprError> {
    arithmetic(args, i64::checked_mul, |a, b| a * b)
}

fn div(args: &Args<'_>) -> Result<Value, ExprError> {
    if args.number(1)?.as_f64() == 0.0 {
        return Err(args.error("cannot divide by zero"));
    }
    arithmetic(args, i64::checked_div, |a, b| a / b)
}

fn modulo(args: &Args<'_>) -> Result<Value, ExprError> {
    if args.number(1)?.as_f64() == 0.0 {
        return Err(args.error("cannot take a remainder of division by zero"));
    }
    arithmetic(args, i64::checked_rem, |a, b| a % b)
}

/// The numbers to compare: the arguments, or the items of a single array argument.
fn candidates(args: &Args<'_>) -> Result<Vec<Value>, ExprError> {
    let values = args.values()?;
    match values.as_slice() {
        [Value::Array(items)] if !items.is_empty() => Ok(items.clone()),
        [Value::Array(_)] => Err(args.error("of an empty array has no value")),
        _ => Ok(values),
    }
}

fn extreme(args: &Args<'_>, keep: std::cmp::Ordering) -> Result<Value, ExprError> {
    let mut best: Option<Value> = None;
    for value in candidates(args)? {
        Num::from_value(&value, args.name)?;
        best = match best {
            Some(b) if compare(&value, &b, args.name)? != keep => Some(b),
            _ => Some(value),
        };
    }
    Ok(best.unwrap_or(Value::Null))
}

fn max(args: &Args<'_>) -> Result<Value, ExprError> {
    extreme(args, std::cmp::Ordering::Greater)
}

fn min(args: &Args<'_>) -> Result<Value, ExprError> {
    extreme(args, std::cmp::Ordering::Less)
}

/// `rand(min, max)`: an integer from `min` inclusive to `max` exclusive.
fn rand(args: &Args<'_>) -> Result<Value, ExprError> {
    let (low, high) = (args.integer(0)?, args.integer(1)?);
    if high <= low {
        return Err(args.error(format!("needs min below max, got {low} and {high}")));
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| args.error(format!("has no random source: {e}")))?;
    let span = (high as i128 - low as i128) as u128;
    Ok(Value::from(
        (low as i128 + (u64::from_le_bytes(bytes) as u128 % span) as i128) as i64,
    ))
}

/// Caps `range` so a typo cannot allocate gigabytes inside the host.
const MAX_RANGE: i64 = 100_000;

fn range(args: &Args<'_>) -> Result<Value, ExprError> {
    let (start, count) = (args.integer(0)?, args.integer(1)?);
    if !(0..=MAX_RANGE).contains(&count) {
        return Err(args.error(format!("count must be between 0 and {MAX_RANGE}, got {count}")));
    }
    if start.checked_add(count.saturating_sub(1)).is_none() {
        return Err(args.error(format!(
            "from {start}, {count} integers overflow a 64-bit integer"
        )));
    }
    Ok(Value::Array((0..count).map(|i| Value::from(start + i)).collect()))
}
