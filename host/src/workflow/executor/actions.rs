//! What each action type does. Containers (If, Switch, Scope, Foreach, Until) run their
//! children through [`run_set`]; calls that leave the process (Http, ServiceProvider, a child
//! Workflow) go through the retry loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::db::{AttemptRecord, DbError, RunRecord, Status};
use crate::expr::{self, Expr, Template, to_text};
use crate::{CallInfo, ConnectorError, InvokeError};

use super::super::builtin_inputs::{self, WaitFor};
use super::super::definition::{ActionKind, SwitchCase};
use super::super::table;
use super::async_http;
use super::scope::RunScope;
use super::{
    AbortOnDrop, ActionCall, ActionResult, EngineShared, Frame, LEASE, MAX_RUN_DEPTH, RunContext, RunState,
    create_run, execute_run, run_set,
};

/// Caps the items of one Foreach, as Logic Apps does (100,000).
pub const FOREACH_MAX_ITEMS: usize = 100_000;

/// Applies what a finished action did to the run's state, when a resumed run replays it.
pub fn apply_recorded_effects(state: &mut RunState, kind: &str, outputs: Option<&Value>) {
    let Some(outputs) = outputs else { return };
    match kind.to_ascii_lowercase().as_str() {
        "initializevariable"
        | "setvariable"
        | "incrementvariable"
        | "decrementvariable"
        | "appendtoarrayvariable"
        | "appendtostringvariable" => {
            let body = &outputs["body"];
            let assigned: Vec<&Value> = match body.get("variables").and_then(Value::as_array) {
                Some(list) => list.iter().collect(),
                None => vec![body],
            };
            for variable in assigned {
                if let Some(name) = variable.get("name").and_then(Value::as_str) {
                    state.variables.insert(name.to_owned(), variable["value"].clone());
                }
            }
        }
        "response" => state.response = Some(outputs.clone()),
        "terminate" => {
            let status = outputs
                .get("runStatus")
                .and_then(Value::as_str)
                .and_then(Status::parse)
                .unwrap_or(Status::Failed);
            state.terminated = Some((status, outputs.get("runError").cloned().filter(|e| !e.is_null())));
        }
        _ => {}
    }
}

pub(in crate::workflow) fn scope<'a>(call: &'a ActionCall<'a>) -> RunScope<'a> {
    RunScope {
        run: call.run,
        frame: call.frame,
        item_override: None,
        current: None,
        callback_url: None,
    }
}

pub(in crate::workflow) fn template_failure(inputs: Option<Value>, error: expr::ExprError) -> ActionResult {
    ActionResult::failed(inputs, "InvalidTemplate", error.message)
}

/// Evaluates the action's whole `inputs`.
/// Boxed failure: an `ActionResult` is large, and the `Ok` path is the common one.
fn evaluated_inputs(call: &ActionCall<'_>) -> Result<Value, Box<ActionResult>> {
    let inputs = match call.action.inputs.as_object() {
        // retryPolicy is configuration, not input.
        Some(map) if map.contains_key("retryPolicy") => {
            let mut map = map.clone();
            map.shift_remove("retryPolicy");
            Value::Object(map)
        }
        _ => call.action.inputs.clone(),
    };
    expr::evaluate_value(&inputs, &scope(call)).map_err(|e| Box::new(template_failure(None, e)))
}

macro_rules! inputs_or_fail {
    ($call:expr) => {
        match evaluated_inputs($call) {
            Ok(inputs) => inputs,
            Err(failure) => return Ok(*failure),
        }
    };
}

pub async fn execute(call: &ActionCall<'_>) -> Result<ActionResult, DbError> {
    let action = call.action;
    Ok(match &action.kind {
        ActionKind::Compose => {
            let inputs = inputs_or_fail!(call);
            ActionResult::succeeded(Some(inputs.clone()), Some(inputs))
        }
        ActionKind::ParseJson => parse_json(inputs_or_fail!(call)),
        ActionKind::If {
            expression,
            actions,
            else_actions,
        } => {
            let result = match condition(expression, &scope(call)) {
                Ok(result) => result,
                Err(e) => return Ok(template_failure(None, e)),
            };
            let branch = if result { actions } else { else_actions };
            let outcome = run_set(call.run, branch, &call.frame.inside(&call.path)).await?;
            container_result(json!({"expressionResult": result}), outcome.status)
        }
        ActionKind::Switch {
            expression,
            cases,
            default,
        } => {
            let value = match expr::evaluate_value(expression, &scope(call)) {
                Ok(v) => v,
                Err(e) => return Ok(template_failure(None, e)),
            };
            let chosen: Option<&SwitchCase> = cases.iter().find(|c| case_matches(&c.value, &value));
            let branch = chosen.map_or(default.as_slice(), |c| c.actions.as_slice());
            let outcome = run_set(call.run, branch, &call.frame.inside(&call.path)).await?;
            let case = chosen.map_or(Value::Null, |c| Value::String(c.name.clone()));
            container_result(json!({"expressionValue": value, "case": case}), outcome.status)
        }
        ActionKind::Scope { actions } => {
            let outcome = run_set(call.run, actions, &call.frame.inside(&call.path)).await?;
            container_result(Value::Null, outcome.status)
        }
        ActionKind::Foreach {
            items,
            actions,
            concurrency,
        } => foreach(call, items, actions, *concurrency).await?,
        ActionKind::Until {
            expression,
            count,
            timeout,
            actions,
        } => until(call, expression, *count, *timeout, actions).await?,
        ActionKind::Terminate => {
            let inputs = inputs_or_fail!(call);
            let status = match builtin_inputs::terminate_status(inputs.get("runStatus")) {
                Ok(status) => status,
                Err(message) => return Ok(ActionResult::failed(Some(inputs), "InvalidTerminate", message)),
            };
            let error = inputs.get("runError").cloned().filter(|e| !e.is_null());
            call.run.state().terminated = Some((status, error.clone()));
            ActionResult::succeeded(
                Some(inputs),
                Some(json!({"runStatus": status.as_str(), "runError": error})),
            )
        }
        ActionKind::InitializeVariable => initialize_variables(call, inputs_or_fail!(call)),
        ActionKind::SetVariable
        | ActionKind::IncrementVariable
        | ActionKind::DecrementVariable
        | ActionKind::AppendToArrayVariable
        | ActionKind::AppendToStringVariable => update_variable(call, inputs_or_fail!(call)),
        ActionKind::Query => query(call),
        ActionKind::Select => select(call),
        ActionKind::Join => {
            let inputs = inputs_or_fail!(call);
            match (
                inputs.get("from").and_then(Value::as_array),
                inputs.get("joinWith").and_then(Value::as_str),
            ) {
                (Some(items), Some(with)) => match expr::join_texts(items, with) {
                    Ok(joined) => {
                        ActionResult::succeeded(Some(inputs.clone()), Some(json!({"body": joined})))
                    }
                    Err(e) => template_failure(Some(inputs.clone()), e),
                },
                _ => ActionResult::failed(
                    Some(inputs),
                    "InvalidJoin",
                    "Join needs inputs.from (an array) and inputs.joinWith (a string)",
                ),
            }
        }
        ActionKind::Table => table(call),
        ActionKind::Wait => wait(call, inputs_or_fail!(call)).await,
        ActionKind::Response { .. } => {
            let inputs = inputs_or_fail!(call);
            // The server would otherwise have to answer some other status than the one asked.
            let status = match builtin_inputs::response_status(inputs.get("statusCode")) {
                Ok(status) => status,
                Err(message) => return Ok(ActionResult::failed(Some(inputs), "InvalidResponse", message)),
            };
            if let Err(message) = builtin_inputs::response_headers(inputs.get("headers")) {
                return Ok(ActionResult::failed(Some(inputs), "InvalidResponse", message));
            }
            let response = json!({
                "statusCode": status,
                "headers": inputs.get("headers").cloned().unwrap_or(json!({})),
                "body": inputs.get("body").cloned().unwrap_or(Value::Null),
            });
            call.run.state().response = Some(response.clone());
            ActionResult::succeeded(Some(inputs), Some(response))
        }
        ActionKind::Http { async_pattern } => {
            let inputs = inputs_or_fail!(call);
            http(call, inputs, *async_pattern).await?
        }
        ActionKind::HttpWebhook => super::super::webhooks::execute(call).await?,
        ActionKind::ServiceProvider {
            connection,
            operation,
        } => {
            let inputs = inputs_or_fail!(call);
            service_provider(call, inputs, connection, operation).await?
        }
        ActionKind::Workflow { workflow } => {
            let inputs = inputs_or_fail!(call);
            child_workflow(call, inputs, workflow).await?
        }
    })
}

fn container_result(inputs: Value, status: Status) -> ActionResult {
    ActionResult {
        status: if status == Status::Succeeded {
            Status::Succeeded
        } else {
            Status::Failed
        },
        inputs: Some(inputs),
        outputs: None,
        error: (status != Status::Succeeded)
            .then(|| json!({"code": "ActionFailed", "message": "an action inside failed"})),
    }
}

fn case_matches(case: &Value, value: &Value) -> bool {
    match (case, value) {
        (Value::String(a), Value::String(b)) => a == b,
        _ => expr::function_equals(case, value),
    }
}

/// An If condition: a template that yields a boolean, or the designer's object form
/// `{"and": [{"equals": [a, b]}, {"not": {...}}]}`.
pub fn condition(expression: &Value, scope: &dyn expr::Scope) -> Result<bool, expr::ExprError> {
    match expression {
        Value::Bool(b) => Ok(*b),
        Value::String(text) => match Template::parse(text)?.evaluate(scope)? {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            other => Err(expr::ExprError::new(format!(
                "the condition must be true or false, got {other}"
            ))),
        },
        Value::Object(map) if map.len() == 1 => {
            let (operator, operands) = map
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .unwrap_or(("", &Value::Null));
            match operator.to_ascii_lowercase().as_str() {
                "and" | "or" => {
                    let parts = operands.as_array().ok_or_else(|| {
                        expr::ExprError::new(format!("{operator} takes an array of conditions"))
                    })?;
                    let is_and = operator.eq_ignore_ascii_case("and");
                    for part in parts {
                        if condition(part, scope)? != is_and {
                            return Ok(!is_and);
                        }
                    }
                    Ok(is_and)
                }
                "not" => Ok(!condition(operands, scope)?),
                _ => {
                    let info = expr::lookup_function(operator).ok_or_else(|| {
                        expr::ExprError::new(format!("unknown condition operator {operator:?}"))
                    })?;
                    let args = operands
                        .as_array()
                        .ok_or_else(|| {
                            expr::ExprError::new(format!("{operator} takes an array of operands"))
                        })?
                        .iter()
                        .map(|a| expr::evaluate_value(a, scope).map(Expr::Literal))
                        .collect::<Result<Vec<_>, _>>()?;
                    let call = Expr::Call {
                        name: info.name.to_owned(),
                        args,
                    };
                    match call.evaluate(scope)? {
                        Value::Bool(b) => Ok(b),
                        other => Err(expr::ExprError::new(format!(
                            "{operator} gave {other}, not true or false"
                        ))),
                    }
                }
            }
        }
        other => Err(expr::ExprError::new(format!(
            "a condition is a template or an object like {{\"equals\": [a, b]}}, got {other}"
        ))),
    }
}

fn parse_json(inputs: Value) -> ActionResult {
    let content = match inputs.get("content") {
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => {
                return ActionResult::failed(
                    Some(inputs.clone()),
                    "InvalidJSON",
                    format!("content is not valid JSON: {e}"),
                );
            }
        },
        Some(v) => v.clone(),
        None => {
            return ActionResult::failed(Some(inputs), "InvalidParseJson", "ParseJson needs inputs.content");
        }
    };
    if let Some(schema) = inputs.get("schema").filter(|s| !s.is_null()) {
        let validator = match jsonschema::validator_for(schema) {
            Ok(v) => v,
            Err(e) => {
                return ActionResult::failed(
                    Some(inputs),
                    "InvalidSchema",
                    format!("the schema does not compile: {e}"),
                );
            }
        };
        let reasons: Vec<String> = validator
            .iter_errors(&content)
            .take(10)
            .map(|e| format!("{} at {:?}", e, e.instance_path().to_string()))
            .collect();
        if !reasons.is_empty() {
            return ActionResult::failed(
                Some(inputs),
                "SchemaValidationFailed",
                format!("the content does not fit the schema: {}", reasons.join("; ")),
            );
        }
    }
    ActionResult::succeeded(Some(inputs), Some(json!({"body": content})))
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind.to_ascii_lowercase().as_str() {
        "integer" => value.is_i64() || value.is_u64(),
        "float" => value.is_number(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn default_for(kind: &str) -> Value {
    match kind.to_ascii_lowercase().as_str() {
        "integer" => json!(0),
        "float" => json!(0.0),
        "boolean" => json!(false),
        "string" => json!(""),
        "array" => json!([]),
        _ => json!({}),
    }
}

fn initialize_variables(call: &ActionCall<'_>, inputs: Value) -> ActionResult {
    let Some(declared) = inputs.get("variables").and_then(Value::as_array) else {
        return ActionResult::failed(
            Some(inputs),
            "InvalidVariable",
            "InitializeVariable needs inputs.variables: [{name, type, value}]",
        );
    };
    let mut assigned = Vec::new();
    let mut state = call.run.state();
    for variable in declared {
        let (Some(name), Some(kind)) = (
            variable.get("name").and_then(Value::as_str),
            variable.get("type").and_then(Value::as_str),
        ) else {
            return ActionResult::failed(
                Some(inputs.clone()),
                "InvalidVariable",
                "each variable needs \"name\" and \"type\"",
            );
        };
        let value = variable
            .get("value")
            .cloned()
            .unwrap_or_else(|| default_for(kind));
        if !type_matches(kind, &value) {
            return ActionResult::failed(
                Some(inputs.clone()),
                "InvalidVariableType",
                format!(
                    "variable {name:?} is declared {kind} but its value is {}",
                    expr_kind(&value)
                ),
            );
        }
        if state.variables.contains_key(name) {
            return ActionResult::failed(
                Some(inputs.clone()),
                "VariableAlreadyInitialized",
                format!("variable {name:?} is already initialized"),
            );
        }
        state.variables.insert(name.to_owned(), value.clone());
        assigned.push(json!({"name": name, "value": value}));
    }
    ActionResult::succeeded(Some(inputs), Some(json!({"body": {"variables": assigned}})))
}

fn expr_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Set, Increment, Decrement, AppendToArray, AppendToString: read-modify-write under the run's
/// lock, so parallel branches never lose an update.
fn update_variable(call: &ActionCall<'_>, inputs: Value) -> ActionResult {
    let Some(name) = inputs.get("name").and_then(Value::as_str).map(str::to_owned) else {
        return ActionResult::failed(Some(inputs), "InvalidVariable", "the action needs inputs.name");
    };
    let operand = inputs.get("value").cloned();
    let mut state = call.run.state();
    let Some(current) = state.variables.get(&name).cloned() else {
        return ActionResult::failed(
            Some(inputs),
            "VariableNotInitialized",
            format!("variable {name:?} is not initialized; add an InitializeVariable action before this one"),
        );
    };
    let updated = match &call.action.kind {
        ActionKind::SetVariable => operand.unwrap_or(Value::Null),
        ActionKind::IncrementVariable | ActionKind::DecrementVariable => {
            let step = operand.unwrap_or(json!(1));
            let sign = if matches!(call.action.kind, ActionKind::IncrementVariable) {
                1
            } else {
                -1
            };
            match (current.as_i64(), step.as_i64()) {
                (Some(a), Some(b)) => match b.checked_mul(sign).and_then(|step| a.checked_add(step)) {
                    Some(sum) => json!(sum),
                    // As the expression functions do: an integer overflow is an error, not a wrap.
                    None => {
                        return ActionResult::failed(
                            Some(inputs),
                            "InvalidVariableValue",
                            format!("variable {name:?} ({a}) and the step ({b}) overflow a 64-bit integer"),
                        );
                    }
                },
                _ => match (current.as_f64(), step.as_f64()) {
                    (Some(a), Some(b)) => json!(a + sign as f64 * b),
                    _ => {
                        return ActionResult::failed(
                            Some(inputs),
                            "InvalidVariableType",
                            format!("variable {name:?} and the step must be numbers"),
                        );
                    }
                },
            }
        }
        ActionKind::AppendToArrayVariable => match current.clone() {
            Value::Array(mut items) => {
                items.push(operand.unwrap_or(Value::Null));
                Value::Array(items)
            }
            _ => {
                return ActionResult::failed(
                    Some(inputs),
                    "InvalidVariableType",
                    format!("variable {name:?} is not an array"),
                );
            }
        },
        _ => match current.clone() {
            Value::String(mut text) => {
                text.push_str(&to_text(&operand.unwrap_or(Value::Null)));
                Value::String(text)
            }
            _ => {
                return ActionResult::failed(
                    Some(inputs),
                    "InvalidVariableType",
                    format!("variable {name:?} is not a string"),
                );
            }
        },
    };
    // An append grows the variable past what any one expression may make; hold it to the same
    // bounds, or a loop of appends would grow it without end.
    if matches!(
        call.action.kind,
        ActionKind::AppendToArrayVariable | ActionKind::AppendToStringVariable
    ) && let Err(e) = expr::check_value(&updated)
    {
        return ActionResult::failed(
            Some(inputs),
            "InvalidVariableValue",
            format!("appending to variable {name:?}: {}", e.message),
        );
    }
    if let ActionKind::SetVariable = call.action.kind
        && std::mem::discriminant(&current) != std::mem::discriminant(&updated)
        && !(current.is_number() && updated.is_number())
    {
        return ActionResult::failed(
            Some(inputs),
            "InvalidVariableType",
            format!(
                "variable {name:?} holds {} and cannot be set to {}",
                expr_kind(&current),
                expr_kind(&updated)
            ),
        );
    }
    state.variables.insert(name.clone(), updated.clone());
    ActionResult::succeeded(
        Some(inputs),
        Some(json!({"body": {"name": name, "value": updated}})),
    )
}

/// Evaluates `from` and returns it as an array.
fn from_items(call: &ActionCall<'_>) -> Result<Vec<Value>, Box<ActionResult>> {
    let from = call.action.inputs.get("from").cloned().unwrap_or(Value::Null);
    match expr::evaluate_value(&from, &scope(call)) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(other) => Err(Box::new(ActionResult::failed(
            None,
            "InvalidFrom",
            format!("inputs.from must be an array, got {}", expr_kind(&other)),
        ))),
        Err(e) => Err(Box::new(template_failure(None, e))),
    }
}

fn item_scope<'a>(call: &'a ActionCall<'a>, item: Value) -> RunScope<'a> {
    RunScope {
        run: call.run,
        frame: call.frame,
        item_override: Some(item),
        current: None,
        callback_url: None,
    }
}

fn query(call: &ActionCall<'_>) -> ActionResult {
    let items = match from_items(call) {
        Ok(items) => items,
        Err(failure) => return *failure,
    };
    let condition_value = call
        .action
        .inputs
        .get("where")
        .cloned()
        .unwrap_or(Value::Bool(true));
    let mut kept = Vec::new();
    for item in &items {
        match condition(&condition_value, &item_scope(call, item.clone())) {
            Ok(true) => kept.push(item.clone()),
            Ok(false) => {}
            Err(e) => return template_failure(Some(json!({"from": items})), e),
        }
    }
    ActionResult::succeeded(
        Some(json!({"from": items, "where": condition_value})),
        Some(json!({"body": kept})),
    )
}

fn select(call: &ActionCall<'_>) -> ActionResult {
    let items = match from_items(call) {
        Ok(items) => items,
        Err(failure) => return *failure,
    };
    let shape = call.action.inputs.get("select").cloned().unwrap_or(Value::Null);
    let mut selected = Vec::with_capacity(items.len());
    // Each selected value is bounded; so is the array they make.
    let mut size = 0usize;
    for item in &items {
        let value = expr::evaluate_value(&shape, &item_scope(call, item.clone())).and_then(|v| {
            size = size.saturating_add(expr::json_size_hint(&v));
            expr::check_size(size).map(|()| v)
        });
        match value {
            Ok(v) => selected.push(v),
            Err(e) => return template_failure(Some(json!({"from": items})), e),
        }
    }
    ActionResult::succeeded(
        Some(json!({"from": items, "select": shape})),
        Some(json!({"body": selected})),
    )
}

/// "Create CSV table" / "Create HTML table": `from` evaluated once, each column's `value` once
/// per item (with `item()`), and the text made by `workflow::table`.
fn table(call: &ActionCall<'_>) -> ActionResult {
    let inputs = &call.action.inputs;
    // The format may be computed; `columns` are evaluated below, per item.
    let written_format = inputs.get("format").cloned().unwrap_or(Value::Null);
    let format_value = match expr::evaluate_value(&written_format, &scope(call)) {
        Ok(value) => value,
        Err(e) => return template_failure(None, e),
    };
    let format = match table::TableFormat::parse(Some(&format_value).filter(|v| !v.is_null())) {
        Ok(format) => format,
        Err(message) => return ActionResult::failed(None, "InvalidTable", message),
    };
    let items = match from_items(call) {
        Ok(items) => items,
        Err(failure) => return *failure,
    };
    let columns = inputs.get("columns").cloned().unwrap_or(Value::Null);
    let recorded = || Some(json!({"format": format_value, "from": items, "columns": columns}));
    let (headers, rows) = match table::column_headers(Some(&columns)) {
        Err(message) => return ActionResult::failed(recorded(), "InvalidTable", message),
        Ok(None) => match table::automatic_headers(&items) {
            Ok(headers) => {
                let rows = table::automatic_rows(&items, &headers);
                (headers, rows)
            }
            Err(message) => return ActionResult::failed(recorded(), "InvalidTable", message),
        },
        Ok(Some(written_headers)) => {
            // A header may be an expression too (evaluated once, not per item).
            let run_scope = scope(call);
            let headers: Result<Vec<String>, _> = written_headers
                .iter()
                .map(|header| {
                    expr::evaluate_value(&Value::String(header.clone()), &run_scope).map(|v| to_text(&v))
                })
                .collect();
            let headers = match headers {
                Ok(headers) => headers,
                Err(e) => return template_failure(recorded(), e),
            };
            let values: Vec<&Value> = columns
                .as_array()
                .map(|columns| columns.iter().filter_map(|c| c.get("value")).collect())
                .unwrap_or_default();
            let mut rows = Vec::with_capacity(items.len());
            // Each cell is bounded; so is the table they make, before it is written out.
            let mut size = 0usize;
            for item in &items {
                let scope = item_scope(call, item.clone());
                let row: Result<Vec<Value>, _> = values
                    .iter()
                    .map(|v| {
                        expr::evaluate_value(v, &scope).and_then(|cell| {
                            size = size.saturating_add(expr::json_size_hint(&cell));
                            expr::check_size(size).map(|()| cell)
                        })
                    })
                    .collect();
                match row {
                    Ok(row) => rows.push(row),
                    Err(e) => return template_failure(recorded(), e),
                }
            }
            table::merge_same_headers(headers, rows)
        }
    };
    match table::render(format, &headers, &rows) {
        Ok(text) => ActionResult::succeeded(recorded(), Some(json!({"body": text}))),
        Err(e) => template_failure(recorded(), e),
    }
}

async fn wait(call: &ActionCall<'_>, inputs: Value) -> ActionResult {
    let clock = &call.run.engine.clock;
    // Both kinds end at an instant: an interval counts from the action's first start, so a
    // Wait resumed after a restart waits only for what is left of it.
    let ends_at = match builtin_inputs::wait_for(&inputs) {
        Ok(WaitFor::Interval(duration)) => call
            .first_started_at
            .saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
        Ok(WaitFor::Until(until)) => until.timestamp_millis(),
        Err(message) => return ActionResult::failed(Some(inputs), "InvalidWait", message),
    };
    let duration = Duration::from_millis(ends_at.saturating_sub(clock.now_ms()).max(0) as u64);
    clock.sleep(duration).await;
    ActionResult::succeeded(Some(inputs), None)
}

/// One attempt's outcome, for the retry loop.
enum Attempt {
    Done(ActionResult),
    /// Failed in a way that may pass on retry, with the service's Retry-After if it gave one.
    Retryable(ActionResult, Option<Duration>),
}

async fn with_retries<F, Fut>(call: &ActionCall<'_>, mut attempt: F) -> Result<ActionResult, DbError>
where
    F: FnMut(CallInfo) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let policy = call.action.retry.clone().unwrap_or_default();
    let clock = &call.run.engine.clock;
    let mut number = call.previous_attempts + 1;
    // A retry whose delay a stopped process did not see to its end waits out the rest.
    if let Some(due_at) = call.retry_due_at {
        clock
            .sleep(Duration::from_millis(
                due_at.saturating_sub(clock.now_ms()).max(0) as u64,
            ))
            .await;
    }
    loop {
        let started_at = clock.now_ms();
        // The first attempt starts with the action's own record; later ones record their start.
        if number > 1 {
            call.attempt_started(number, started_at)?;
        }
        let info = CallInfo {
            idempotency_key: call.idempotency_key(),
            attempt: number,
        };
        match attempt(info).await {
            Attempt::Done(result) => return Ok(result),
            Attempt::Retryable(result, retry_after) => {
                let Some(delay) = policy.delay(number, retry_after) else {
                    return Ok(result);
                };
                let ended_at = clock.now_ms();
                let due_at = ended_at.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                call.record_retried_attempt(
                    AttemptRecord {
                        attempt: number,
                        status: result.status,
                        started_at,
                        ended_at,
                        error: result.error.clone(),
                    },
                    due_at,
                )?;
                clock.sleep(delay).await;
                number += 1;
            }
        }
    }
}

fn invoke_failure(inputs: &Value, error: &InvokeError) -> Attempt {
    let result = invoke_failure_result(inputs, error);
    let retry_after = match error {
        InvokeError::Connector(ConnectorError::RateLimited { retry_after, .. }) => *retry_after,
        _ => None,
    };
    if error.is_retryable() {
        Attempt::Retryable(result, retry_after)
    } else {
        Attempt::Done(result)
    }
}

/// The failed result of a connector call that did not return.
pub(super) fn invoke_failure_result(inputs: &Value, error: &InvokeError) -> ActionResult {
    let code = match error {
        InvokeError::Connector(e) => match e {
            ConnectorError::InvalidInput { .. } => "InvalidInput",
            ConnectorError::Unauthorized { .. } => "Unauthorized",
            ConnectorError::NotFound { .. } => "NotFound",
            ConnectorError::RateLimited { .. } => "RateLimited",
            ConnectorError::Transient { .. } => "Transient",
            ConnectorError::Permanent { .. } => "ConnectorError",
        },
        InvokeError::InvalidInput { .. } => "InvalidInput",
        InvokeError::UnknownOperation { .. } => "UnknownOperation",
        InvokeError::DeadlineExceeded(_) => "ConnectorTimedOut",
        InvokeError::NoFreeInstance(_) => "ConnectorBusy",
        _ => "ConnectorFailed",
    };
    ActionResult::failed(Some(inputs.clone()), code, error.to_string())
}

/// The failed result of an HTTP answer with `status` 400 or more: the answer stays the outputs.
pub(super) fn status_failure(inputs: &Value, response: Value, status: u64) -> ActionResult {
    ActionResult {
        status: Status::Failed,
        inputs: Some(inputs.clone()),
        outputs: Some(response),
        error: Some(
            json!({"code": format!("{status}"), "message": format!("the request failed with status {status}")}),
        ),
    }
}

async fn service_provider(
    call: &ActionCall<'_>,
    inputs: Value,
    connection: &str,
    operation: &str,
) -> Result<ActionResult, DbError> {
    let Some(connection) = call.run.engine.connections.get(connection) else {
        return Ok(ActionResult::failed(
            Some(inputs),
            "ConnectionNotFound",
            format!("connection {connection:?} is not in connections.json"),
        ));
    };
    let parameters = inputs.get("parameters").cloned().unwrap_or_else(|| json!({}));
    with_retries(call, |info| {
        let parameters = &parameters;
        let inputs = &inputs;
        async move {
            let invocation = connection.invoke(operation, parameters, &info).await;
            match invocation.result {
                Ok(output) => Attempt::Done(ActionResult::succeeded(
                    Some(inputs.clone()),
                    Some(json!({"body": output})),
                )),
                Err(error) => invoke_failure(inputs, &error),
            }
        }
    })
    .await
}

/// The built-in Http action: the same sandboxed `http` connector, bound to the project's
/// `http` grant, so it passes exactly the checks a connector's request does. With the
/// asynchronous pattern on (the default), an accepted request is polled to its end
/// (`async_http.rs`); a run resumed while polling polls on without sending it again.
async fn http(call: &ActionCall<'_>, inputs: Value, async_pattern: bool) -> Result<ActionResult, DbError> {
    let request = builtin_inputs::http_request(&inputs);
    if !async_pattern {
        return http_exchange(call, &inputs, &request).await;
    }
    // Only an action that started before this process took it over can have been polling.
    let resumed = call.first_started_at < call.started_at || call.previous_attempts > 0;
    if resumed && let Some(location) = call.run.engine.db.http_poll(&call.run.run_id, &call.path)? {
        return async_http::poll(call, &inputs, &request, location, Duration::ZERO).await;
    }
    let answered = http_exchange(call, &inputs, &request).await?;
    let uri = request.get("uri").and_then(Value::as_str).unwrap_or_default();
    let accepted = answered
        .outputs
        .as_ref()
        .filter(|_| answered.status == Status::Succeeded)
        .and_then(|response| {
            let location = async_http::accepted_location(uri, response)?;
            Some((
                location,
                async_http::poll_interval(response, call.run.engine.clock.now_ms()),
            ))
        });
    match accepted {
        Some((location, wait)) => async_http::poll(call, &inputs, &request, location, wait).await,
        None => Ok(answered),
    }
}

/// Sends `request` through the `http` connection under the action's retry policy: a response
/// of 400 or more fails the action (408, 429 and 5xx are retried, honouring `Retry-After`).
/// `inputs` are what the action's record shows.
pub(in crate::workflow) async fn http_exchange(
    call: &ActionCall<'_>,
    inputs: &Value,
    request: &Value,
) -> Result<ActionResult, DbError> {
    let connection = &call.run.engine.http;
    with_retries(call, |info| async move {
        match connection.invoke("request", request, &info).await.result {
            Ok(response) => {
                let status = response.get("statusCode").and_then(Value::as_u64).unwrap_or(0);
                if status < 400 {
                    return Attempt::Done(ActionResult::succeeded(Some(inputs.clone()), Some(response)));
                }
                let retryable = status == 408 || status == 429 || status >= 500;
                let retry_after = builtin_inputs::retry_after(&response, call.run.engine.clock.now_ms());
                let result = status_failure(inputs, response, status);
                if retryable {
                    Attempt::Retryable(result, retry_after)
                } else {
                    Attempt::Done(result)
                }
            }
            Err(error) => invoke_failure(inputs, &error),
        }
    })
    .await
}

/// A child run's id is derived from the parent action, so a resumed parent finds the child it
/// started instead of starting a second one.
fn child_run_id(parent_run: &str, path: &str) -> String {
    let digest = Sha256::digest(path.as_bytes());
    format!("{parent_run}-{}", &hex::encode(digest)[..10])
}

/// Executes a child run in a task of its own. Each level of nesting then starts from the top
/// of a worker's stack; executed inline, each level's run, action and container futures are
/// polled from inside its parent's, and a debug build overflowed a 2 MiB stack before
/// [`MAX_RUN_DEPTH`]. Dropping the parent's execution (its `limit.timeout`, or the process
/// stopping the run) aborts the child with it, as an inline future would be dropped.
async fn execute_child(engine: Arc<EngineShared>, run: RunRecord, depth: u32) -> Result<RunRecord, DbError> {
    let mut child = AbortOnDrop(tokio::spawn(execute_run(engine, run, depth)));
    match (&mut child.0).await {
        Ok(finished) => finished,
        // The parent's action turns the panic into its own failure (`guard_against_panics`).
        Err(failure) if failure.is_panic() => std::panic::resume_unwind(failure.into_panic()),
        // The runtime is shutting down: the child stays unfinished and is resumed later.
        Err(_) => Err(DbError::Query(
            "the child run's task was cancelled because the process is stopping".to_owned(),
        )),
    }
}

/// After a Workflow action ran out of its `limit.timeout`: its child run, whose execution was
/// dropped with the action's, is cancelled, so it does not stay Running in the history with
/// no one to finish it (no parent will resume it). Other actions have no child.
pub(super) fn cancel_child_of_timed_out(call: &ActionCall<'_>) -> Result<(), DbError> {
    if !matches!(call.action.kind, ActionKind::Workflow { .. }) {
        return Ok(());
    }
    let child_id = child_run_id(&call.run.run_id, &call.path);
    match call.run.engine.db.cancel_run(&child_id, call.run.now()) {
        Ok(_) | Err(DbError::NoSuchRun(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn child_workflow(
    call: &ActionCall<'_>,
    inputs: Value,
    workflow: &str,
) -> Result<ActionResult, DbError> {
    let engine = &call.run.engine;
    if !engine.plans.contains_key(workflow) {
        return Ok(ActionResult::failed(
            Some(inputs),
            "WorkflowNotFound",
            format!("there is no workflow {workflow:?} in the project"),
        ));
    }
    let child_id = child_run_id(&call.run.run_id, &call.path);
    let existing: Option<RunRecord> = match engine.db.run(&child_id) {
        Ok(run) => Some(run),
        Err(DbError::NoSuchRun(_)) => None,
        Err(e) => return Err(e),
    };
    let depth = call.run.depth + 1;
    let child = match existing {
        Some(run) if run.status.is_terminal() => run,
        // Started below the limit before a restart: it finishes, under this execution's lease.
        Some(run) => {
            let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
            engine
                .db
                .take_over_run(engine.lease(&run.id), lease_ms, engine.clock.now_ms())?;
            execute_child(engine.clone(), run, depth).await?
        }
        None if depth > MAX_RUN_DEPTH => {
            return Ok(ActionResult::failed(
                Some(inputs),
                "WorkflowNestingTooDeep",
                format!(
                    "run {} is {} Workflow actions deep, and runs nest at most {MAX_RUN_DEPTH} deep; \
                     does {workflow:?} call itself (or a workflow that calls it back) with no condition that ends it?",
                    call.run.run_id, call.run.depth
                ),
            ));
        }
        None => {
            let outputs = json!({
                "headers": inputs.get("headers").cloned().unwrap_or_else(|| json!({})),
                "body": inputs.get("body").cloned().unwrap_or(Value::Null),
            });
            let run = create_run(
                engine,
                workflow,
                outputs,
                None,
                Some(call.run.run_id.clone()),
                Some(child_id),
            )?;
            execute_child(engine.clone(), run, depth).await?
        }
    };
    let response = child
        .response
        .clone()
        .unwrap_or_else(|| json!({"statusCode": 200, "headers": {}, "body": null}));
    let outputs = json!({"statusCode": response["statusCode"], "headers": response["headers"], "body": response["body"], "runId": child.id});
    Ok(if child.status == Status::Succeeded {
        ActionResult::succeeded(Some(inputs), Some(outputs))
    } else {
        ActionResult {
            status: Status::Failed,
            inputs: Some(inputs),
            outputs: Some(outputs),
            error: Some({
                // The child's own error says which of its actions failed.
                let why = child
                    .error_message()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                json!({"code": "ChildWorkflowFailed", "message": format!("child run {} of {workflow:?} ended {}{why}", child.id, child.status)})
            }),
        }
    })
}

async fn foreach(
    call: &ActionCall<'_>,
    items: &Value,
    actions: &[super::super::definition::Action],
    concurrency: usize,
) -> Result<ActionResult, DbError> {
    // A resumed Foreach iterates over the items it recorded, not a re-evaluation.
    let items = match call.recorded_inputs.as_ref().and_then(Value::as_array) {
        Some(recorded) => recorded.clone(),
        None => match expr::evaluate_value(items, &scope(call)) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                return Ok(ActionResult::failed(
                    None,
                    "InvalidForeach",
                    format!("foreach needs an array, got {}", expr_kind(&other)),
                ));
            }
            Err(e) => return Ok(template_failure(None, e)),
        },
    };
    if items.len() > FOREACH_MAX_ITEMS {
        return Ok(ActionResult::failed(
            None,
            "TooManyItems",
            format!(
                "foreach got {} items, over the limit of {FOREACH_MAX_ITEMS}",
                items.len()
            ),
        ));
    }
    let mut started = crate::db::ActionRecord {
        inputs: (!call.action.secure_inputs).then(|| Value::Array(items.clone())),
        ..call.run.state().records[&call.path].clone()
    };
    started.status = Status::Running;
    call.run.record_started(&started)?;

    let run: &Arc<RunContext> = call.run;
    let statuses: Vec<Result<Status, DbError>> =
        futures_util::stream::iter(items.iter().cloned().enumerate())
            .map(|(index, item)| {
                let frame: Frame = call
                    .frame
                    .iteration(&call.action.name, &call.path, index, Some(item));
                async move { run_set(run, actions, &frame).await.map(|o| o.status) }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    let mut failed = 0;
    for status in statuses {
        if status? != Status::Succeeded {
            failed += 1;
        }
    }
    let inputs = Value::Array(items);
    Ok(if failed == 0 {
        ActionResult::succeeded(Some(inputs), None)
    } else {
        ActionResult {
            status: Status::Failed,
            inputs: Some(inputs),
            outputs: None,
            error: Some(json!({"code": "ActionFailed", "message": format!("{failed} iteration(s) failed")})),
        }
    })
}

async fn until(
    call: &ActionCall<'_>,
    expression: &Value,
    count: u64,
    timeout: Duration,
    actions: &[super::super::definition::Action],
) -> Result<ActionResult, DbError> {
    let clock = &call.run.engine.clock;
    // From the loop's first start, so a restart does not give it its whole timeout again.
    let deadline = call.first_started_at + timeout.as_millis() as i64;
    let mut iterations = 0u64;
    let mut done = false;
    while iterations < count {
        let frame = call
            .frame
            .iteration(&call.action.name, &call.path, iterations as usize, None);
        let outcome = run_set(call.run, actions, &frame).await?;
        iterations += 1;
        if outcome.status != Status::Succeeded {
            return Ok(ActionResult {
                status: Status::Failed,
                inputs: Some(json!({"expression": expression})),
                outputs: Some(json!({"iterations": iterations, "limitReached": false})),
                error: Some(
                    json!({"code": "ActionFailed", "message": format!("iteration {} failed", iterations - 1)}),
                ),
            });
        }
        let iteration_scope = RunScope {
            run: call.run,
            frame: &frame,
            item_override: None,
            current: None,
            callback_url: None,
        };
        match condition(expression, &iteration_scope) {
            Ok(true) => {
                done = true;
                break;
            }
            Ok(false) => {}
            Err(e) => return Ok(template_failure(Some(json!({"expression": expression})), e)),
        }
        if clock.now_ms() >= deadline || call.run.is_terminated() {
            break;
        }
    }
    Ok(ActionResult::succeeded(
        Some(json!({"expression": expression, "limit": {"count": count, "timeout": format!("{timeout:?}")}})),
        Some(json!({"iterations": iterations, "limitReached": !done})),
    ))
}
