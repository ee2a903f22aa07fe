//! Object manipulation: `addProperty`, `setProperty`, `removeProperty`, `coalesce`.

use serde_json::Value;

use super::{Args, ExprError, FunctionInfo, f, variadic};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    f("addProperty", 3, 3, add_property),
    variadic("coalesce", 1, coalesce),
    f("removeProperty", 2, 2, remove_property),
    f("setProperty", 3, 3, set_property),
];

fn add_property(args: &Args<'_>) -> Result<Value, ExprError> {
    let mut object = args.object(0)?;
    let name = args.string(1)?;
    if object.contains_key(&name) {
        return Err(args.error(format!(
            "cannot add {name:?}: it already exists; use setProperty to change it"
        )));
    }
    object.insert(name, args.value(2)?);
    Ok(Value::Object(object))
}

fn set_property(args: &Args<'_>) -> Result<Value, ExprError> {
    let mut object = args.object(0)?;
    object.insert(args.string(1)?, args.value(2)?);
    Ok(Value::Object(object))
}

fn remove_property(args: &Args<'_>) -> Result<Value, ExprError> {
    let mut object = args.object(0)?;
    object.shift_remove(&args.string(1)?);
    Ok(Value::Object(object))
}

fn coalesce(args: &Args<'_>) -> Result<Value, ExprError> {
    for i in 0..args.len() {
        let value = args.value(i)?;
        if !value.is_null() {
            return Ok(value);
        }
    }
    Ok(Value::Null)
}
