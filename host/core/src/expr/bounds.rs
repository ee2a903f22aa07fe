//! How large a value an expression may produce.
//!
//! Functions such as `createArray`, `setProperty` and `concat` build values from values, so a
//! loop that feeds a variable back into itself grows it on every iteration: doubling a string
//! 30 times took all 24 GiB of a machine and the kernel killed the process, with every run in
//! it; wrapping an array in itself thousands of times made writing, comparing or dropping it
//! (each recursive) overflow the stack. Every function call's result is held to both bounds
//! (so is an interpolated template's, and what the Join, Select and append actions build), so
//! every value in a run is: the rest comes from JSON parsers with the same depth limit and
//! from connectors, HTTP responses and trigger bodies with their own size limits.
//!
//! The check walks the value, as the call that made it did; it stops at the first bound it
//! crosses.

use serde_json::Value;

use super::ExprError;

/// Arrays and objects inside one another, as deep as the JSON parsers at cordon's edges
/// accept (serde_json's limit of 128).
pub const MAX_VALUE_DEPTH: usize = 128;

/// About this many bytes of JSON text (in memory a value of many small items takes several
/// times its JSON size, as each item is a value of its own). Larger than anything that comes in (a connector's
/// output is at most 8 MiB, an HTTP response body 16 MiB, a trigger body 2 MiB), so joining a
/// few of them works; small enough that a value doubling itself stops long before memory runs
/// out. The evaluation that crosses it has already built its value, so a run holds at most
/// about twice this per evaluation in flight.
pub const MAX_VALUE_BYTES: usize = 32 << 20;

/// An error if `value` is deeper than [`MAX_VALUE_DEPTH`] or larger than [`MAX_VALUE_BYTES`].
/// Looks no further than the first bound it crosses, so it neither recurses without end nor
/// walks a huge value to the end.
pub fn check(value: &Value) -> Result<(), ExprError> {
    let mut budget = MAX_VALUE_BYTES;
    match measure(value, MAX_VALUE_DEPTH, &mut budget) {
        Ok(()) => Ok(()),
        Err(Exceeded::Depth) => Err(ExprError::new(format!(
            "the value nests more than {MAX_VALUE_DEPTH} arrays and objects inside one another, \
             deeper than the run history keeps; does a loop wrap a value in itself on every iteration?"
        ))),
        Err(Exceeded::Size) => Err(too_large()),
    }
}

/// An error if a value of about `bytes` of JSON would be larger than [`MAX_VALUE_BYTES`]: for
/// what can be far larger than its inputs (`replace`, `join`, the Join and Select actions),
/// checked before, or while, the value is built.
pub fn check_size(bytes: usize) -> Result<(), ExprError> {
    if bytes > MAX_VALUE_BYTES {
        return Err(too_large());
    }
    Ok(())
}

/// [`check_size`] for a text of `text_bytes` cut into `pieces` strings (`split`, `chunk`): the
/// text plus each piece's quotes and comma.
pub fn check_pieces(text_bytes: usize, pieces: usize) -> Result<(), ExprError> {
    check_size(text_bytes.saturating_add(pieces.saturating_mul(3)))
}

fn too_large() -> ExprError {
    ExprError::new(format!(
        "the value is larger than {} MiB of JSON, more than one value in a run may be; does a \
         loop grow a value from itself on every iteration?",
        MAX_VALUE_BYTES >> 20
    ))
}

/// About how many bytes `value` takes as JSON text (escapes aside): what the executor counts
/// to decide when records held in memory must be written.
pub fn json_size_hint(value: &Value) -> usize {
    let mut budget = usize::MAX;
    // Depth is not the question here; values in a run are bounded already.
    let _ = measure(value, usize::MAX, &mut budget);
    usize::MAX - budget
}

enum Exceeded {
    Depth,
    Size,
}

/// Takes `value`'s approximate JSON size from `budget`, failing once the budget or the
/// remaining depth runs out.
fn measure(value: &Value, depth_left: usize, budget: &mut usize) -> Result<(), Exceeded> {
    let mut take = |bytes: usize| {
        *budget = budget.checked_sub(bytes).ok_or(Exceeded::Size)?;
        Ok(())
    };
    match value {
        Value::Null | Value::Bool(_) => take(5),
        Value::Number(_) => take(8),
        Value::String(text) => take(text.len() + 2),
        Value::Array(items) => {
            let inner = depth_left.checked_sub(1).ok_or(Exceeded::Depth)?;
            take(2 + items.len())?;
            items.iter().try_for_each(|item| measure(item, inner, budget))
        }
        Value::Object(map) => {
            let inner = depth_left.checked_sub(1).ok_or(Exceeded::Depth)?;
            take(2)?;
            map.iter().try_for_each(|(key, item)| {
                *budget = budget.checked_sub(key.len() + 4).ok_or(Exceeded::Size)?;
                measure(item, inner, budget)
            })
        }
    }
}
