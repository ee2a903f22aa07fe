//! Logical comparison functions. `and`, `or` and `if` stop evaluating as soon as the answer is
//! known (Logic Apps evaluates every argument; see the module docs of `expr`).

use serde_json::Value;

use super::super::value::{compare, equal};
use super::{Args, ExprError, FunctionInfo, f, variadic};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    variadic("and", 1, and),
    f("equals", 2, 2, equals),
    f("greater", 2, 2, greater),
    f("greaterOrEquals", 2, 2, greater_or_equals),
    f("if", 3, 3, if_),
    f("less", 2, 2, less),
    f("lessOrEquals", 2, 2, less_or_equals),
    f("not", 1, 1, not),
    variadic("or", 1, or),
];

fn and(args: &Args<'_>) -> Result<Value, ExprError> {
    for i in 0..args.len() {
        if !args.bool(i)? {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

fn or(args: &Args<'_>) -> Result<Value, ExprError> {
    for i in 0..args.len() {
        if args.bool(i)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn not(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(!args.bool(0)?))
}

fn if_(args: &Args<'_>) -> Result<Value, ExprError> {
    if args.bool(0)? {
        args.value(1)
    } else {
        args.value(2)
    }
}

fn equals(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(equal(&args.value(0)?, &args.value(1)?)))
}

fn ordering(args: &Args<'_>) -> Result<std::cmp::Ordering, ExprError> {
    compare(&args.value(0)?, &args.value(1)?, args.name)
}

fn greater(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(ordering(args)?.is_gt()))
}

fn greater_or_equals(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(ordering(args)?.is_ge()))
}

fn less(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(ordering(args)?.is_lt()))
}

fn less_or_equals(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(ordering(args)?.is_le()))
}
