//! Workflow functions: what a run has seen so far, read through [`Scope`](super::Scope).

use serde_json::Value;

use super::super::value::member;
use super::{Args, ExprError, FunctionInfo, f, not_implemented};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    f("action", 0, 0, action),
    f("actions", 1, 1, actions),
    f("actionBody", 1, 1, body),
    f("actionOutputs", 1, 1, outputs),
    f("appsetting", 1, 1, appsetting),
    f("body", 1, 1, body),
    f("formDataMultiValues", 2, 2, form_data_multi_values),
    f("formDataValue", 2, 2, form_data_value),
    f("item", 0, 0, item),
    f("items", 1, 1, items),
    f("iterationIndexes", 1, 1, iteration_indexes),
    not_implemented("listCallbackUrl", 0, 0),
    not_implemented("multipartBody", 2, 2),
    f("outputs", 1, 1, outputs),
    f("parameters", 1, 1, parameters),
    f("result", 1, 1, result),
    f("trigger", 0, 0, trigger),
    f("triggerBody", 0, 0, trigger_body),
    f("triggerFormDataMultiValues", 1, 1, trigger_form_data_multi_values),
    f("triggerFormDataValue", 1, 1, trigger_form_data_value),
    not_implemented("triggerMultipartBody", 1, 1),
    f("triggerOutputs", 0, 0, trigger_outputs),
    f("variables", 1, 1, variables),
    f("workflow", 0, 0, workflow),
];

fn action(args: &Args<'_>) -> Result<Value, ExprError> {
    args.scope.current_action().ok_or_else(|| {
        args.error("is only available in an action's own outputs (for example in a do-until condition)")
    })
}

fn action_record(args: &Args<'_>) -> Result<Value, ExprError> {
    let name = args.string(0)?;
    args.scope.action(&name).ok_or_else(|| {
        args.error(format!(
            "refers to {name:?}, which has not run in this run yet; add it to this action's runAfter or check the name"
        ))
    })
}

fn actions(args: &Args<'_>) -> Result<Value, ExprError> {
    action_record(args)
}

fn outputs(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(action_record(args)?
        .get("outputs")
        .cloned()
        .unwrap_or(Value::Null))
}

/// `body(name)`: the `body` of the action's outputs. Actions whose outputs are not an
/// HTTP-shaped `{statusCode, headers, body}` record (Compose) give their outputs as they are.
fn body(args: &Args<'_>) -> Result<Value, ExprError> {
    let outputs = action_record(args)?
        .get("outputs")
        .cloned()
        .unwrap_or(Value::Null);
    Ok(match outputs {
        Value::Object(ref map) if map.contains_key("body") => map["body"].clone(),
        other => other,
    })
}

fn form_value(body: &Value, key: &str) -> Vec<Value> {
    match body.get("$formdata").and_then(Value::as_array) {
        Some(entries) => entries
            .iter()
            .filter(|e| e.get("key").and_then(Value::as_str) == Some(key))
            .filter_map(|e| e.get("value").cloned())
            .collect(),
        None => Vec::new(),
    }
}

fn form_data_value(args: &Args<'_>) -> Result<Value, ExprError> {
    let body = body(args)?;
    single_form_value(args, form_value(&body, &args.string(1)?))
}

fn form_data_multi_values(args: &Args<'_>) -> Result<Value, ExprError> {
    let body = body(args)?;
    Ok(Value::Array(form_value(&body, &args.string(1)?)))
}

fn single_form_value(args: &Args<'_>, mut values: Vec<Value>) -> Result<Value, ExprError> {
    match values.len() {
        0 => Ok(Value::Null),
        1 => Ok(values.remove(0)),
        n => Err(args.error(format!("found {n} values for the key; use the MultiValues form"))),
    }
}

fn trigger(args: &Args<'_>) -> Result<Value, ExprError> {
    args.scope
        .trigger()
        .ok_or_else(|| args.error("has no trigger in this context"))
}

fn trigger_outputs(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(trigger(args)?.get("outputs").cloned().unwrap_or(Value::Null))
}

fn trigger_body(args: &Args<'_>) -> Result<Value, ExprError> {
    member(&trigger_outputs(args)?, &Value::String("body".into()), true)
}

fn trigger_form_data_value(args: &Args<'_>) -> Result<Value, ExprError> {
    let body = trigger_body(args)?;
    single_form_value(args, form_value(&body, &args.string(0)?))
}

fn trigger_form_data_multi_values(args: &Args<'_>) -> Result<Value, ExprError> {
    let body = trigger_body(args)?;
    Ok(Value::Array(form_value(&body, &args.string(0)?)))
}

fn item(args: &Args<'_>) -> Result<Value, ExprError> {
    args.scope
        .item()
        .ok_or_else(|| args.error("is only available inside a Foreach (or a Select, Query or Until)"))
}

fn items(args: &Args<'_>) -> Result<Value, ExprError> {
    let name = args.string(0)?;
    args.scope.items(&name).ok_or_else(|| {
        args.error(format!(
            "names {name:?}, which is not a Foreach this action is inside"
        ))
    })
}

fn iteration_indexes(args: &Args<'_>) -> Result<Value, ExprError> {
    let name = args.string(0)?;
    args.scope.iteration_index(&name).ok_or_else(|| {
        args.error(format!(
            "names {name:?}, which is not a loop this action is inside"
        ))
    })
}

fn parameters(args: &Args<'_>) -> Result<Value, ExprError> {
    let name = args.string(0)?;
    args.scope.parameter(&name).ok_or_else(|| {
        args.error(format!(
            "names {name:?}, which is not a parameter; declare it in parameters.json or the definition"
        ))
    })
}

fn variables(args: &Args<'_>) -> Result<Value, ExprError> {
    let name = args.string(0)?;
    args.scope.variable(&name).ok_or_else(|| {
        args.error(format!(
            "names {name:?}, which is not initialized; add an InitializeVariable action before this one"
        ))
    })
}

fn result(args: &Args<'_>) -> Result<Value, ExprError> {
    let name = args.string(0)?;
    args.scope.result(&name).ok_or_else(|| {
        args.error(format!(
            "names {name:?}, which is not a Scope, Foreach or Until that has run"
        ))
    })
}

fn workflow(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(args.scope.workflow())
}

fn appsetting(args: &Args<'_>) -> Result<Value, ExprError> {
    let name = args.string(0)?;
    args.scope.appsetting(&name).map(Value::String).ok_or_else(|| {
        args.error(format!(
            "names {name:?}, which is not set (add it to local.settings.json or the environment) or holds a connection's secret, which expressions may not read"
        ))
    })
}
