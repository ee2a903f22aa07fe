//! Workflow functions: what a run has seen so far, read through [`Scope`](super::Scope).

use serde_json::Value;

use super::super::value::{describe, member};
use super::{Args, ExprError, FunctionInfo, f};

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
    f("listCallbackUrl", 0, 0, list_callback_url),
    f("multipartBody", 2, 2, multipart_body),
    f("outputs", 1, 1, outputs),
    f("parameters", 1, 1, parameters),
    f("result", 1, 1, result),
    f("trigger", 0, 0, trigger),
    f("triggerBody", 0, 0, trigger_body),
    f("triggerFormDataMultiValues", 1, 1, trigger_form_data_multi_values),
    f("triggerFormDataValue", 1, 1, trigger_form_data_value),
    f("triggerMultipartBody", 1, 1, trigger_multipart_body),
    f("triggerOutputs", 0, 0, trigger_outputs),
    f("variables", 1, 1, variables),
    f("workflow", 0, 0, workflow),
];

fn action(args: &Args<'_>) -> Result<Value, ExprError> {
    args.scope.current_action().ok_or_else(|| {
        args.error("is only available in an action's own outputs (for example in a do-until condition)")
    })
}

/// `listCallbackUrl()`: the URL the service an HttpWebhook action or trigger subscribes to
/// calls back. As in Logic Apps, it has a value in their inputs only.
fn list_callback_url(args: &Args<'_>) -> Result<Value, ExprError> {
    args.scope.callback_url().map(Value::String).ok_or_else(|| {
        args.error(
            "is available only in the inputs of an HttpWebhook action or trigger (its subscribe and unsubscribe \
             requests), where it is the URL the service calls back when the event happens",
        )
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

/// The values of a form field: from a form-encoded body (`$formdata`), or from the parts of a
/// multipart form (`$multipart`) named so by their `Content-Disposition`, a text part as its
/// text and any other (a file) as its content.
fn form_value(body: &Value, key: &str) -> Vec<Value> {
    if let Some(entries) = body.get("$formdata").and_then(Value::as_array) {
        return entries
            .iter()
            .filter(|e| e.get("key").and_then(Value::as_str) == Some(key))
            .filter_map(|e| e.get("value").cloned())
            .collect();
    }
    let Some(parts) = body.get("$multipart").and_then(Value::as_array) else {
        return Vec::new();
    };
    parts
        .iter()
        .filter(|part| {
            part.pointer("/headers/content-disposition")
                .and_then(Value::as_str)
                .and_then(field_name)
                .is_some_and(|name| name == key)
        })
        .filter_map(|part| part.get("body"))
        .map(|content| text_of_part(content).unwrap_or_else(|| content.clone()))
        .collect()
}

/// The `name` of a `Content-Disposition: form-data; name="..."` (not its `filename`).
fn field_name(disposition: &str) -> Option<&str> {
    disposition.split(';').skip(1).find_map(|parameter| {
        let value = parameter.trim().strip_prefix("name=")?;
        Some(value.trim_matches('"'))
    })
}

/// A text part's text: its type is `text/*` and its bytes are UTF-8.
fn text_of_part(content: &Value) -> Option<Value> {
    let (content_type, bytes) = crate::content::decode(content)?;
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/")
    {
        return None;
    }
    String::from_utf8(bytes).ok().map(Value::String)
}

/// The body of part `index` (from 0) of a multipart body, as content.
fn multipart_part(args: &Args<'_>, body: &Value, index_arg: usize) -> Result<Value, ExprError> {
    let parts = body.get("$multipart").and_then(Value::as_array).ok_or_else(|| {
        args.error(format!(
            "expects a multipart body (a request sent as multipart/form-data, say), got {}",
            describe(body)
        ))
    })?;
    let index = args.integer(index_arg)?;
    usize::try_from(index)
        .ok()
        .and_then(|i| parts.get(i))
        .and_then(|part| part.get("body"))
        .cloned()
        .ok_or_else(|| {
            args.error(format!(
                "asks for part {index}, but the body has {} (counted from 0)",
                parts.len()
            ))
        })
}

fn multipart_body(args: &Args<'_>) -> Result<Value, ExprError> {
    let body = body(args)?;
    multipart_part(args, &body, 1)
}

fn trigger_multipart_body(args: &Args<'_>) -> Result<Value, ExprError> {
    let body = trigger_body(args)?;
    multipart_part(args, &body, 0)
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
