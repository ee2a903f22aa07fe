//! The workflow definition, in the shape of the Logic Apps Workflow Definition Language, read
//! from `workflow.json` into typed actions. Reading checks shape (types, required fields,
//! known action types); `cordon_host::workflow::validate` checks meaning (references, cycles, expressions,
//! schemas). Every problem carries the JSON path where it was found.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::status::Status;

use super::duration::parse_iso8601_duration;
use super::recurrence::{Recurrence, Schedule};
use super::retry::RetryPolicy;
use crate::problem::Problem;

/// A parsed `workflow.json`.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub stateful: bool,
    pub triggers: Vec<Trigger>,
    pub actions: Vec<Action>,
    /// Parameters declared in the definition, with their default values.
    pub parameters: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    pub name: String,
    pub kind: TriggerKind,
    pub inputs: Value,
    /// When a `Recurrence` trigger fires, or how often a polling trigger polls.
    pub recurrence: Option<Recurrence>,
    /// `splitOn`: an expression over the trigger's outputs whose array becomes one run per item.
    pub split_on: Option<String>,
    /// `conditions[].expression`: every one must be true for a run to start.
    pub conditions: Vec<String>,
    /// `runtimeConfiguration.concurrency`: how many runs of the workflow run at once.
    pub concurrency: Option<RunConcurrency>,
    /// `operationOptions: IncludeAuthorizationHeadersInOutputs`: a request's `Authorization`
    /// header is kept in the trigger outputs (dropped otherwise, as Logic Apps does).
    pub include_authorization_headers: bool,
}

/// `runtimeConfiguration.concurrency` of a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConcurrency {
    /// Runs in progress at once (`runs`, 1 to 100).
    pub runs: usize,
    /// Runs that may wait for a slot (`maximumWaitingRuns`, 0 to 200); beyond it a request
    /// trigger answers 429.
    pub maximum_waiting_runs: usize,
}

/// Logic Apps' default `maximumWaitingRuns` when only `runs` is set.
pub const DEFAULT_MAXIMUM_WAITING_RUNS: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerKind {
    /// `Request`: started by `cordon run --trigger-body` or an HTTP request.
    Request,
    /// `Recurrence`: started on a schedule.
    Recurrence,
    /// A connector's polling trigger.
    ServiceProvider { connection: String, operation: String },
    /// `HttpWebhook`: while the workflow is enabled, a service is subscribed with the
    /// trigger's URL (`listCallbackUrl()`); each call of the URL starts a run.
    HttpWebhook,
    /// `Http`: an endpoint called on the recurrence; an answer of 200 starts a run.
    Http,
    /// `SlidingWindow`: one run per window between consecutive occurrences of the
    /// recurrence, each started `delay` after its window ends; windows missed while the
    /// server was down or the workflow disabled all run, in order.
    SlidingWindow { delay: Duration },
}

impl TriggerKind {
    /// Whether a run of it starts from an HTTP request to the trigger's URL.
    pub fn is_called_over_http(&self) -> bool {
        matches!(self, TriggerKind::Request | TriggerKind::HttpWebhook)
    }
}

/// One action, with what every action type shares.
#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    /// The type as written (`Compose`, `ServiceProvider`, ...), for history and messages.
    pub type_name: String,
    pub kind: ActionKind,
    /// The raw `inputs`, with templates still in it.
    pub inputs: Value,
    /// Predecessor name to the statuses that let this action run.
    pub run_after: BTreeMap<String, Vec<Status>>,
    pub retry: Option<RetryPolicy>,
    pub timeout: Option<Duration>,
    pub secure_inputs: bool,
    pub secure_outputs: bool,
    /// The JSON path of this action in the file, for messages.
    pub json_path: String,
}

#[derive(Debug, Clone)]
pub enum ActionKind {
    Compose,
    ParseJson,
    If {
        expression: Value,
        actions: Vec<Action>,
        else_actions: Vec<Action>,
    },
    Switch {
        expression: Value,
        cases: Vec<SwitchCase>,
        default: Vec<Action>,
    },
    Foreach {
        items: Value,
        actions: Vec<Action>,
        /// How many iterations run at once (1 with the `Sequential` option).
        concurrency: usize,
    },
    Until {
        expression: Value,
        count: u64,
        timeout: Duration,
        actions: Vec<Action>,
    },
    Scope {
        actions: Vec<Action>,
    },
    Terminate,
    InitializeVariable,
    SetVariable,
    IncrementVariable,
    DecrementVariable,
    AppendToArrayVariable,
    AppendToStringVariable,
    Query,
    Select,
    Join,
    /// "Create CSV table" / "Create HTML table" (see `table.rs`).
    Table,
    Wait,
    /// `async_pattern`: a 202 Accepted with a Location is polled until the operation ends
    /// (Logic Apps' default), unless `operationOptions` has `DisableAsyncPattern`.
    Http {
        async_pattern: bool,
    },
    /// Subscribes (an HTTP request carrying `listCallbackUrl()`), waits for the service to call
    /// that URL, and unsubscribes.
    HttpWebhook,
    /// `asynchronous`: `operationOptions` has `Asynchronous` (Logic Apps' "Asynchronous
    /// response"), so the request is answered 202 with a Location at once.
    Response {
        asynchronous: bool,
    },
    ServiceProvider {
        connection: String,
        operation: String,
    },
    Workflow {
        workflow: String,
    },
}

#[derive(Debug, Clone)]
pub struct SwitchCase {
    pub name: String,
    pub value: Value,
    pub actions: Vec<Action>,
}

/// Logic Apps defaults and limits for loops.
pub const FOREACH_DEFAULT_CONCURRENCY: usize = 20;
pub const FOREACH_MAX_CONCURRENCY: usize = 50;
pub const UNTIL_DEFAULT_COUNT: u64 = 60;
pub const UNTIL_MAX_COUNT: u64 = 5000;
pub const UNTIL_DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

impl Action {
    /// Whether the action completes in memory, without waiting on anything outside the run:
    /// doing it again gives the same result, so a crash between its start and its end loses
    /// nothing. The executor records such an action once, when it ends, instead of also
    /// writing a `Running` record first; that is a third of the history writes of a run made
    /// of them.
    pub fn is_instant(&self) -> bool {
        matches!(
            self.kind,
            ActionKind::Compose
                | ActionKind::ParseJson
                | ActionKind::Terminate
                | ActionKind::InitializeVariable
                | ActionKind::SetVariable
                | ActionKind::IncrementVariable
                | ActionKind::DecrementVariable
                | ActionKind::AppendToArrayVariable
                | ActionKind::AppendToStringVariable
                | ActionKind::Query
                | ActionKind::Select
                | ActionKind::Join
                | ActionKind::Table
                | ActionKind::Response { .. }
        )
    }

    /// The actions nested directly in this one, in every branch.
    pub fn children(&self) -> Vec<&Action> {
        match &self.kind {
            ActionKind::If {
                actions,
                else_actions,
                ..
            } => actions.iter().chain(else_actions).collect(),
            ActionKind::Switch { cases, default, .. } => cases
                .iter()
                .flat_map(|c| c.actions.iter())
                .chain(default)
                .collect(),
            ActionKind::Foreach { actions, .. }
            | ActionKind::Until { actions, .. }
            | ActionKind::Scope { actions } => actions.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Whether this action repeats its children (their paths carry an iteration index).
    pub fn is_loop(&self) -> bool {
        matches!(self.kind, ActionKind::Foreach { .. } | ActionKind::Until { .. })
    }

    /// The groups of sibling actions nested in this one: each branch is its own graph.
    pub fn branches(&self) -> Vec<&[Action]> {
        match &self.kind {
            ActionKind::If {
                actions,
                else_actions,
                ..
            } => vec![actions, else_actions],
            ActionKind::Switch { cases, default, .. } => cases
                .iter()
                .map(|c| c.actions.as_slice())
                .chain([default.as_slice()])
                .collect(),
            ActionKind::Foreach { actions, .. }
            | ActionKind::Until { actions, .. }
            | ActionKind::Scope { actions } => vec![actions],
            _ => Vec::new(),
        }
    }
}

/// Every action in a list and below it, depth first.
pub fn all_actions(actions: &[Action]) -> Vec<&Action> {
    let mut out = Vec::new();
    fn walk<'a>(actions: &'a [Action], out: &mut Vec<&'a Action>) {
        for action in actions {
            out.push(action);
            for branch in action.branches() {
                walk(branch, out);
            }
        }
    }
    walk(actions, &mut out);
    out
}

struct Reader<'a> {
    workflow: &'a str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, action: Option<&str>, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            workflow: self.workflow.to_owned(),
            action: action.map(str::to_owned),
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

/// Reads a `workflow.json` document. Returns the workflow if its shape is usable, and every
/// problem found either way.
pub fn read_workflow(name: &str, document: &Value) -> (Option<Workflow>, Vec<Problem>) {
    let mut reader = Reader {
        workflow: name,
        problems: Vec::new(),
    };
    let Some(root) = document.as_object() else {
        reader.problem(
            None,
            "$",
            "workflow.json must be an object with \"definition\" and \"kind\"",
        );
        return (None, reader.problems);
    };
    let stateful = match root.get("kind").and_then(Value::as_str) {
        Some(kind) if kind.eq_ignore_ascii_case("stateful") => true,
        Some(kind) if kind.eq_ignore_ascii_case("stateless") => false,
        Some(kind) => {
            reader.problem(
                None,
                "$.kind",
                format!("kind {kind:?} is not Stateful or Stateless"),
            );
            true
        }
        None => true,
    };
    let Some(definition) = root.get("definition").and_then(Value::as_object) else {
        reader.problem(None, "$.definition", "missing \"definition\" object");
        return (None, reader.problems);
    };
    let mut triggers = Vec::new();
    match definition.get("triggers") {
        None => {}
        Some(Value::Object(map)) => {
            if map.len() > 1 {
                reader.problem(
                    None,
                    "$.definition.triggers",
                    "a workflow has at most one trigger",
                );
            }
            for (trigger_name, t) in map {
                let path = format!("$.definition.triggers.{trigger_name}");
                if let Some(trigger) = read_trigger(&mut reader, trigger_name, t, &path) {
                    triggers.push(trigger);
                }
            }
        }
        Some(_) => reader.problem(None, "$.definition.triggers", "\"triggers\" must be an object"),
    }
    let actions = match definition.get("actions") {
        None => Vec::new(),
        Some(value) => read_actions(&mut reader, value, "$.definition.actions"),
    };
    let mut parameters = Map::new();
    if let Some(declared) = definition.get("parameters").and_then(Value::as_object) {
        for (pname, p) in declared {
            parameters.insert(
                pname.clone(),
                p.get("defaultValue").cloned().unwrap_or(Value::Null),
            );
        }
    }
    let workflow = Workflow {
        name: name.to_owned(),
        stateful,
        triggers,
        actions,
        parameters,
    };
    (Some(workflow), reader.problems)
}

fn service_provider_configuration(
    reader: &mut Reader<'_>,
    owner: &str,
    inputs: &Value,
    path: &str,
) -> Option<(String, String)> {
    let config = inputs.get("serviceProviderConfiguration");
    let field = |key: &str| {
        config
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (field("connectionName"), field("operationId")) {
        (Some(connection), Some(operation)) => Some((connection, operation)),
        _ => {
            reader.problem(
                Some(owner),
                &format!("{path}.inputs.serviceProviderConfiguration"),
                "a ServiceProvider step needs inputs.serviceProviderConfiguration with \"connectionName\" and \"operationId\"",
            );
            None
        }
    }
}

fn read_trigger(reader: &mut Reader<'_>, name: &str, value: &Value, path: &str) -> Option<Trigger> {
    let type_name = value.get("type").and_then(Value::as_str).unwrap_or_default();
    let inputs = value.get("inputs").cloned().unwrap_or(Value::Null);
    let kind = match type_name.to_ascii_lowercase().as_str() {
        "request" => TriggerKind::Request,
        "recurrence" => TriggerKind::Recurrence,
        "httpwebhook" => TriggerKind::HttpWebhook,
        "http" => TriggerKind::Http,
        "slidingwindow" => TriggerKind::SlidingWindow {
            delay: match inputs.get("delay") {
                None | Some(Value::Null) => Duration::ZERO,
                Some(Value::String(text)) => match parse_iso8601_duration(text) {
                    Ok(delay) => delay,
                    Err(message) => {
                        reader.problem(Some(name), &format!("{path}.inputs.delay"), message);
                        Duration::ZERO
                    }
                },
                Some(_) => {
                    reader.problem(
                        Some(name),
                        &format!("{path}.inputs.delay"),
                        "delay must be an ISO 8601 duration such as \"PT5M\"",
                    );
                    Duration::ZERO
                }
            },
        },
        "serviceprovider" => {
            let (connection, operation) = service_provider_configuration(reader, name, &inputs, path)?;
            TriggerKind::ServiceProvider {
                connection,
                operation,
            }
        }
        "" => {
            reader.problem(Some(name), &format!("{path}.type"), "trigger has no \"type\"");
            return None;
        }
        other => {
            reader.problem(
                Some(name),
                &format!("{path}.type"),
                format!(
                    "unknown trigger type {other:?}; cordon supports Request, Recurrence, SlidingWindow, ServiceProvider, Http and HttpWebhook"
                ),
            );
            return None;
        }
    };
    let recurrence = match (value.get("recurrence"), &kind) {
        (
            Some(recurrence),
            TriggerKind::Recurrence
            | TriggerKind::SlidingWindow { .. }
            | TriggerKind::ServiceProvider { .. }
            | TriggerKind::Http,
        ) => match Recurrence::parse(recurrence) {
            Ok(r)
                if matches!(kind, TriggerKind::SlidingWindow { .. }) && r.schedule != Schedule::default() =>
            {
                reader.problem(
                    Some(name),
                    &format!("{path}.recurrence.schedule"),
                    "a SlidingWindow trigger's windows follow frequency and interval only; a schedule is for Recurrence triggers",
                );
                None
            }
            Ok(r) => Some(r),
            Err(e) => {
                reader.problem(Some(name), &format!("{path}.recurrence{}", e.path), e.message);
                None
            }
        },
        (None, TriggerKind::Recurrence | TriggerKind::SlidingWindow { .. }) => {
            reader.problem(
                Some(name),
                &format!("{path}.recurrence"),
                format!(
                    "a {type_name} trigger needs \"recurrence\", such as {{\"frequency\": \"Hour\", \"interval\": 1}}"
                ),
            );
            None
        }
        (None, TriggerKind::ServiceProvider { .. } | TriggerKind::Http) => {
            reader.problem(
                Some(name),
                &format!("{path}.recurrence"),
                "a polling trigger needs \"recurrence\" to say how often it polls, such as {\"frequency\": \"Minute\", \"interval\": 1}",
            );
            None
        }
        (_, TriggerKind::Request | TriggerKind::HttpWebhook) => None,
    };
    let split_on = match value.get("splitOn") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            reader.problem(
                Some(name),
                &format!("{path}.splitOn"),
                "splitOn must be an expression such as \"@triggerBody()\"",
            );
            None
        }
    };
    let mut conditions = Vec::new();
    if let Some(list) = value.get("conditions") {
        let items = list.as_array().cloned().unwrap_or_default();
        if !list.is_array() {
            reader.problem(
                Some(name),
                &format!("{path}.conditions"),
                "conditions must be a list of {\"expression\": \"@...\"}",
            );
        }
        for (i, item) in items.iter().enumerate() {
            match item.get("expression").and_then(Value::as_str) {
                Some(text) => conditions.push(text.to_owned()),
                None => reader.problem(
                    Some(name),
                    &format!("{path}.conditions[{i}].expression"),
                    "a condition needs an \"expression\" string such as \"@equals(triggerBody()?['state'], 'open')\"",
                ),
            }
        }
    }
    check_operation_options(reader, name, value, path);
    let concurrency = value.pointer("/runtimeConfiguration/concurrency").and_then(|c| {
        read_run_concurrency(
            reader,
            name,
            c,
            &format!("{path}.runtimeConfiguration.concurrency"),
        )
    });
    // `SingleInstance` is Logic Apps' other spelling of one run at a time; it documents that
    // a trigger sets one or the other, not both.
    let concurrency = match (has_operation_option(value, "SingleInstance"), concurrency) {
        (false, concurrency) => concurrency,
        (true, None) if value.pointer("/runtimeConfiguration/concurrency/runs").is_none() => {
            Some(RunConcurrency {
                runs: 1,
                maximum_waiting_runs: DEFAULT_MAXIMUM_WAITING_RUNS,
            })
        }
        (true, concurrency) => {
            reader.problem(
                Some(name),
                &format!("{path}.operationOptions"),
                "SingleInstance and runtimeConfiguration.concurrency.runs both limit the runs at once; set one of them",
            );
            concurrency
        }
    };
    Some(Trigger {
        name: name.to_owned(),
        kind,
        inputs,
        recurrence,
        split_on,
        conditions,
        concurrency,
        include_authorization_headers: has_operation_option(value, "IncludeAuthorizationHeadersInOutputs"),
    })
}

fn read_run_concurrency(
    reader: &mut Reader<'_>,
    name: &str,
    value: &Value,
    path: &str,
) -> Option<RunConcurrency> {
    let runs = match value.get("runs") {
        None => return None,
        Some(v) => match v.as_u64().filter(|n| (1..=100).contains(n)) {
            Some(n) => n as usize,
            None => {
                reader.problem(
                    Some(name),
                    &format!("{path}.runs"),
                    "runs must be a whole number from 1 to 100",
                );
                return None;
            }
        },
    };
    let maximum_waiting_runs = match value.get("maximumWaitingRuns") {
        None => DEFAULT_MAXIMUM_WAITING_RUNS,
        Some(v) => match v.as_u64().filter(|n| *n <= 200) {
            Some(n) => n as usize,
            None => {
                reader.problem(
                    Some(name),
                    &format!("{path}.maximumWaitingRuns"),
                    "maximumWaitingRuns must be a whole number from 0 to 200",
                );
                return None;
            }
        },
    };
    Some(RunConcurrency {
        runs,
        maximum_waiting_runs,
    })
}

fn read_actions(reader: &mut Reader<'_>, value: &Value, path: &str) -> Vec<Action> {
    let Some(map) = value.as_object() else {
        reader.problem(None, path, "\"actions\" must be an object of named actions");
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, action)| read_action(reader, name, action, &format!("{path}.{name}")))
        .collect()
}

fn nested(reader: &mut Reader<'_>, value: &Value, key: &str, path: &str) -> Vec<Action> {
    match value.get(key) {
        Some(actions) => read_actions(reader, actions, &format!("{path}.{key}")),
        None => Vec::new(),
    }
}

const ACTION_TYPES: &str = "Compose, ParseJson, If, Switch, Foreach, Until, Scope, Terminate, InitializeVariable, SetVariable, IncrementVariable, DecrementVariable, AppendToArrayVariable, AppendToStringVariable, Query, Select, Join, Table, Wait, Http, HttpWebhook, Response, ServiceProvider, Workflow";

/// Every `operationOptions` value Logic Apps documents, those cordon acts on
/// (`Asynchronous`, `DisableAsyncPattern`, `IncludeAuthorizationHeadersInOutputs`,
/// `Sequential`, `SingleInstance`) and those it accepts and ignores. A name close to one of them is taken for a typo and reported (a
/// misspelt `DisableAsyncPattern` would silently turn polling on); any other name is let
/// through, since refusing options cordon does not know would refuse valid workflows.
const OPERATION_OPTIONS: [&str; 10] = [
    "Asynchronous",
    "DisableAsyncPattern",
    "DisableAutomaticDecompression",
    "EnableSchemaValidation",
    "FailWhenLimitsReached",
    "IncludeAuthorizationHeadersInOutputs",
    "Sequential",
    "SingleInstance",
    "SuppressWorkflowHeaders",
    "SuppressWorkflowHeadersOnResponse",
];

/// Reports an `operationOptions` that is not a comma-separated string, or names a misspelt
/// option.
fn check_operation_options(reader: &mut Reader<'_>, name: &str, value: &Value, path: &str) {
    let path = format!("{path}.operationOptions");
    match value.get("operationOptions") {
        None | Some(Value::Null) => {}
        Some(Value::String(list)) => {
            for option in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                if OPERATION_OPTIONS
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(option))
                {
                    continue;
                }
                if let Some(known) = crate::suggest::closest(option, OPERATION_OPTIONS) {
                    reader.problem(
                        Some(name),
                        &path,
                        format!("unknown operation option {option:?}; did you mean {known}?"),
                    );
                }
            }
        }
        Some(_) => reader.problem(
            Some(name),
            &path,
            "operationOptions must be a string of comma-separated options, such as \"DisableAsyncPattern\"",
        ),
    }
}

/// Whether an action's `operationOptions` (a comma-separated list) names `option`.
fn has_operation_option(action: &Value, option: &str) -> bool {
    action
        .get("operationOptions")
        .and_then(Value::as_str)
        .is_some_and(|o| o.split(',').any(|p| p.trim().eq_ignore_ascii_case(option)))
}

fn read_action(reader: &mut Reader<'_>, name: &str, value: &Value, path: &str) -> Option<Action> {
    if !value.is_object() {
        reader.problem(Some(name), path, "an action must be an object");
        return None;
    }
    check_operation_options(reader, name, value, path);
    let type_name = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let inputs = value.get("inputs").cloned().unwrap_or(Value::Null);
    let kind = match type_name.to_ascii_lowercase().as_str() {
        "compose" => ActionKind::Compose,
        "parsejson" => ActionKind::ParseJson,
        "if" => ActionKind::If {
            expression: required(reader, name, value, "expression", path)?,
            actions: nested(reader, value, "actions", path),
            else_actions: value
                .get("else")
                .map(|e| nested(reader, e, "actions", &format!("{path}.else")))
                .unwrap_or_default(),
        },
        "switch" => {
            let expression = required(reader, name, value, "expression", path)?;
            let mut cases = Vec::new();
            if let Some(map) = value.get("cases").and_then(Value::as_object) {
                for (case_name, case) in map {
                    let case_path = format!("{path}.cases.{case_name}");
                    let Some(case_value) = case.get("case") else {
                        reader.problem(Some(name), &case_path, "a switch case needs a \"case\" value");
                        continue;
                    };
                    cases.push(SwitchCase {
                        name: case_name.clone(),
                        value: case_value.clone(),
                        actions: nested(reader, case, "actions", &case_path),
                    });
                }
            }
            let default = value
                .get("default")
                .map(|d| nested(reader, d, "actions", &format!("{path}.default")))
                .unwrap_or_default();
            ActionKind::Switch {
                expression,
                cases,
                default,
            }
        }
        "foreach" => {
            let items = required(reader, name, value, "foreach", path)?;
            let sequential = has_operation_option(value, "Sequential");
            let repetitions = value.pointer("/runtimeConfiguration/concurrency/repetitions");
            let concurrency = match repetitions {
                None => FOREACH_DEFAULT_CONCURRENCY,
                Some(r) => {
                    match r.as_u64() {
                        Some(n) if (1..=FOREACH_MAX_CONCURRENCY as u64).contains(&n) => n as usize,
                        _ => {
                            reader.problem(
                            Some(name),
                            &format!("{path}.runtimeConfiguration.concurrency.repetitions"),
                            format!("concurrency must be an integer from 1 to {FOREACH_MAX_CONCURRENCY}, got {r}"),
                        );
                            FOREACH_DEFAULT_CONCURRENCY
                        }
                    }
                }
            };
            ActionKind::Foreach {
                items,
                actions: nested(reader, value, "actions", path),
                concurrency: if sequential { 1 } else { concurrency },
            }
        }
        "until" => {
            let expression = required(reader, name, value, "expression", path)?;
            let count = match value.pointer("/limit/count") {
                None => UNTIL_DEFAULT_COUNT,
                Some(c) => match c.as_u64() {
                    Some(n) if (1..=UNTIL_MAX_COUNT).contains(&n) => n,
                    _ => {
                        reader.problem(
                            Some(name),
                            &format!("{path}.limit.count"),
                            format!("limit.count must be an integer from 1 to {UNTIL_MAX_COUNT}, got {c}"),
                        );
                        UNTIL_DEFAULT_COUNT
                    }
                },
            };
            let timeout = match value.pointer("/limit/timeout").and_then(Value::as_str) {
                None => UNTIL_DEFAULT_TIMEOUT,
                Some(text) => parse_iso8601_duration(text).unwrap_or_else(|e| {
                    reader.problem(Some(name), &format!("{path}.limit.timeout"), e);
                    UNTIL_DEFAULT_TIMEOUT
                }),
            };
            ActionKind::Until {
                expression,
                count,
                timeout,
                actions: nested(reader, value, "actions", path),
            }
        }
        "scope" => ActionKind::Scope {
            actions: nested(reader, value, "actions", path),
        },
        "terminate" => ActionKind::Terminate,
        "initializevariable" => ActionKind::InitializeVariable,
        "setvariable" => ActionKind::SetVariable,
        "incrementvariable" => ActionKind::IncrementVariable,
        "decrementvariable" => ActionKind::DecrementVariable,
        "appendtoarrayvariable" => ActionKind::AppendToArrayVariable,
        "appendtostringvariable" => ActionKind::AppendToStringVariable,
        "query" => ActionKind::Query,
        "select" => ActionKind::Select,
        "join" => ActionKind::Join,
        "table" => ActionKind::Table,
        "wait" => ActionKind::Wait,
        "http" => ActionKind::Http {
            async_pattern: !has_operation_option(value, "DisableAsyncPattern"),
        },
        "httpwebhook" => ActionKind::HttpWebhook,
        "response" => ActionKind::Response {
            asynchronous: has_operation_option(value, "Asynchronous"),
        },
        "serviceprovider" => {
            let (connection, operation) = service_provider_configuration(reader, name, &inputs, path)?;
            ActionKind::ServiceProvider {
                connection,
                operation,
            }
        }
        "workflow" => match inputs.pointer("/host/workflow/id").and_then(Value::as_str) {
            Some(id) => ActionKind::Workflow {
                workflow: id.rsplit('/').next().unwrap_or(id).to_owned(),
            },
            None => {
                reader.problem(
                    Some(name),
                    &format!("{path}.inputs.host.workflow.id"),
                    "a Workflow action names its child in inputs.host.workflow.id",
                );
                return None;
            }
        },
        "" => {
            reader.problem(
                Some(name),
                &format!("{path}.type"),
                format!("action has no \"type\"; use one of {ACTION_TYPES}"),
            );
            return None;
        }
        _ => {
            reader.problem(
                Some(name),
                &format!("{path}.type"),
                match crate::suggest::closest(&type_name, ACTION_TYPES.split(", ")) {
                    Some(known) => format!("unknown action type {type_name:?}; did you mean {known}?"),
                    None => format!("unknown action type {type_name:?}; cordon supports {ACTION_TYPES}"),
                },
            );
            return None;
        }
    };
    let mut run_after = BTreeMap::new();
    match value.get("runAfter") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (predecessor, statuses) in map {
                let status_path = format!("{path}.runAfter.{predecessor}");
                let mut parsed = Vec::new();
                for s in statuses.as_array().map(Vec::as_slice).unwrap_or_default() {
                    match s.as_str().and_then(Status::parse) {
                        Some(
                            status
                            @ (Status::Succeeded | Status::Failed | Status::Skipped | Status::TimedOut),
                        ) => parsed.push(status),
                        _ => reader.problem(
                            Some(name),
                            &status_path,
                            format!(
                                "{s} is not a runAfter status; use Succeeded, Failed, Skipped or TimedOut"
                            ),
                        ),
                    }
                }
                if !statuses.is_array() {
                    reader.problem(Some(name), &status_path, "runAfter values are arrays of statuses");
                }
                if parsed.is_empty() {
                    parsed.push(Status::Succeeded);
                }
                run_after.insert(predecessor.clone(), parsed);
            }
        }
        Some(_) => reader.problem(
            Some(name),
            &format!("{path}.runAfter"),
            "runAfter must be an object",
        ),
    }
    if value.get("retryPolicy").is_some() {
        // An easy slip, and a silent one: the default policy (four retries) would apply.
        reader.problem(
            Some(name),
            &format!("{path}.retryPolicy"),
            "retryPolicy belongs inside \"inputs\" (as in Logic Apps); here it would be ignored",
        );
    }
    let retry = match inputs.get("retryPolicy") {
        None => None,
        Some(policy) => match RetryPolicy::from_json(policy) {
            Ok(p) => Some(p),
            Err(e) => {
                reader.problem(Some(name), &format!("{path}.inputs.retryPolicy"), e);
                None
            }
        },
    };
    let timeout = match value.pointer("/limit/timeout").and_then(Value::as_str) {
        Some(text) if !matches!(kind, ActionKind::Until { .. }) => match parse_iso8601_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                reader.problem(Some(name), &format!("{path}.limit.timeout"), e);
                None
            }
        },
        _ => None,
    };
    let secure = |key: &str| {
        value
            .pointer("/runtimeConfiguration/secureData/properties")
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().any(|v| v.as_str() == Some(key)))
    };
    Some(Action {
        name: name.to_owned(),
        type_name,
        kind,
        inputs,
        run_after,
        retry,
        timeout,
        secure_inputs: secure("inputs"),
        secure_outputs: secure("outputs"),
        json_path: path.to_owned(),
    })
}

fn required(reader: &mut Reader<'_>, name: &str, value: &Value, key: &str, path: &str) -> Option<Value> {
    match value.get(key) {
        Some(v) => Some(v.clone()),
        None => {
            reader.problem(Some(name), &format!("{path}.{key}"), format!("missing \"{key}\""));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_policy_beside_inputs_is_a_problem_and_inside_them_is_read() {
        let workflow = |action: Value| {
            serde_json::json!({"kind": "Stateful", "definition": {
                "triggers": {"manual": {"type": "Request", "kind": "Http"}},
                "actions": {"Call": action}}})
        };
        let misplaced =
            workflow(serde_json::json!({"type": "Compose", "inputs": 1, "retryPolicy": {"type": "none"}}));
        let (_, problems) = read_workflow("w", &misplaced);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "$.definition.actions.Call.retryPolicy");
        assert!(
            problems[0].message.contains("inside \"inputs\""),
            "{}",
            problems[0].message
        );

        let placed = workflow(serde_json::json!({"type": "Http", "inputs": {
            "method": "GET", "uri": "https://example.com", "retryPolicy": {"type": "none"}}}));
        let (found, problems) = read_workflow("w", &placed);
        assert!(problems.is_empty(), "{problems:?}");
        let action = &found.expect("workflow").actions[0];
        assert_eq!(action.retry, Some(RetryPolicy::None));
    }

    #[test]
    fn a_sliding_window_needs_a_plain_recurrence_and_a_duration_for_its_delay() {
        let with = |trigger: Value| {
            serde_json::json!({"kind": "Stateful", "definition": {
                "triggers": {"windows": trigger}, "actions": {}}})
        };
        let hourly = serde_json::json!({"frequency": "Hour", "interval": 1});
        let (found, problems) = read_workflow(
            "w",
            &with(
                serde_json::json!({"type": "SlidingWindow", "recurrence": hourly, "inputs": {"delay": "PT5M"}}),
            ),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let trigger = &found.expect("workflow").triggers[0];
        assert_eq!(
            trigger.kind,
            TriggerKind::SlidingWindow {
                delay: Duration::from_secs(300)
            }
        );
        assert!(trigger.recurrence.is_some());
        for (trigger, path, message) in [
            (
                serde_json::json!({"type": "SlidingWindow"}),
                "recurrence",
                "needs \"recurrence\"",
            ),
            (
                serde_json::json!({"type": "SlidingWindow", "recurrence": hourly, "inputs": {"delay": "5 minutes"}}),
                "inputs.delay",
                "ISO 8601",
            ),
            (
                serde_json::json!({"type": "SlidingWindow", "recurrence":
                    {"frequency": "Day", "interval": 1, "schedule": {"hours": [6]}}}),
                "recurrence.schedule",
                "frequency and interval only",
            ),
        ] {
            let (_, problems) = read_workflow("w", &with(trigger.clone()));
            assert_eq!(problems.len(), 1, "{trigger}: {problems:?}");
            assert!(
                problems[0].path.ends_with(path),
                "{trigger}: {}",
                problems[0].path
            );
            assert!(
                problems[0].message.contains(message),
                "{trigger}: {}",
                problems[0].message
            );
        }
    }

    #[test]
    fn operation_options_are_read_and_a_misspelt_one_is_a_problem() {
        let with_options = |trigger_options: Value, action_options: Value, concurrency: Option<u64>| {
            let mut trigger =
                serde_json::json!({"type": "Request", "kind": "Http", "operationOptions": trigger_options});
            if let Some(runs) = concurrency {
                trigger["runtimeConfiguration"] = serde_json::json!({"concurrency": {"runs": runs}});
            }
            serde_json::json!({"kind": "Stateful", "definition": {
                "triggers": {"manual": trigger},
                "actions": {"Call": {"type": "Http", "operationOptions": action_options,
                    "inputs": {"method": "GET", "uri": "https://example.com"}}}}})
        };
        let runs = |found: Option<Workflow>| found.and_then(|w| w.triggers[0].concurrency).map(|c| c.runs);
        for (trigger_options, action_options, concurrency, problem, expected_runs) in [
            (
                Value::Null,
                serde_json::json!("DisableAsyncPattern"),
                None,
                None,
                None,
            ),
            (
                serde_json::json!("SuppressWorkflowHeadersOnResponse"),
                serde_json::json!(" suppressworkflowheaders , DisableAsyncPattern"),
                None,
                None,
                None,
            ),
            // Options cordon has never heard of pass: refusing them would refuse valid workflows.
            (
                Value::Null,
                serde_json::json!("SomeFutureOption"),
                None,
                None,
                None,
            ),
            (
                Value::Null,
                serde_json::json!("DisableAsyncPatern"),
                None,
                Some("unknown operation option \"DisableAsyncPatern\"; did you mean DisableAsyncPattern?"),
                None,
            ),
            (
                Value::Null,
                serde_json::json!(["DisableAsyncPattern"]),
                None,
                Some("operationOptions must be a string"),
                None,
            ),
            (
                serde_json::json!("SingleInstance"),
                Value::Null,
                None,
                None,
                Some(1),
            ),
            (
                serde_json::json!("SingelInstance"),
                Value::Null,
                None,
                Some("did you mean SingleInstance?"),
                None,
            ),
            (Value::Null, Value::Null, Some(5), None, Some(5)),
            (
                serde_json::json!("SingleInstance"),
                Value::Null,
                Some(5),
                Some("set one of them"),
                Some(5),
            ),
        ] {
            let (found, problems) = read_workflow(
                "w",
                &with_options(trigger_options.clone(), action_options.clone(), concurrency),
            );
            let case = format!("{trigger_options} / {action_options} / {concurrency:?}");
            match problem {
                None => assert!(problems.is_empty(), "{case}: {problems:?}"),
                Some(wanted) => {
                    assert_eq!(problems.len(), 1, "{case}: {problems:?}");
                    assert!(
                        problems[0].message.contains(wanted),
                        "{case}: {}",
                        problems[0].message
                    );
                    assert!(
                        problems[0].path.ends_with(".operationOptions"),
                        "{case}: {}",
                        problems[0].path
                    );
                }
            }
            assert_eq!(runs(found), expected_runs, "{case}");
        }
    }
}
