//! `cordon validate`: every problem a project has, before anything runs. Each problem names the
//! workflow, the action and the JSON path.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::expr::{Expr, JsonScope, Template, templates_in};
use crate::manifest::OperationKind;

use super::builtin_inputs;
use super::definition::{Action, ActionKind, Trigger, TriggerKind, Workflow, all_actions};
use super::project::Project;
use super::table;
use super::{Connections, Problem};

/// Problems in the workflows of a project, given its loaded connections. (Problems reading
/// the files are in `Project::problems`; problems loading connectors come from
/// `Connections::load`.)
pub fn validate(project: &Project, connections: &Connections) -> Vec<Problem> {
    let mut problems = Vec::new();
    for workflow in project.workflows.values() {
        Checker {
            project,
            connections,
            workflow,
            problems: &mut problems,
        }
        .check();
    }
    problems
}

struct Checker<'a> {
    project: &'a Project,
    connections: &'a Connections,
    workflow: &'a Workflow,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, action: Option<&str>, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            workflow: self.workflow.name.clone(),
            action: action.map(str::to_owned),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn check(&mut self) {
        let every = all_actions(&self.workflow.actions);
        let mut seen = HashSet::new();
        for action in &every {
            if !seen.insert(action.name.as_str()) {
                self.problem(
                    Some(&action.name),
                    &action.json_path,
                    "another action has the same name; names must be unique in a workflow",
                );
            }
        }
        let names: HashSet<&str> = every.iter().map(|a| a.name.as_str()).collect();
        let loops: HashSet<&str> = every
            .iter()
            .filter(|a| a.is_loop())
            .map(|a| a.name.as_str())
            .collect();
        let containers: HashSet<&str> = every
            .iter()
            .filter(|a| {
                matches!(
                    a.kind,
                    ActionKind::Scope { .. } | ActionKind::Foreach { .. } | ActionKind::Until { .. }
                )
            })
            .map(|a| a.name.as_str())
            .collect();
        let variables: BTreeSet<String> = every
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::InitializeVariable))
            .filter_map(|a| a.inputs.get("variables").and_then(Value::as_array))
            .flatten()
            .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let known = Known {
            actions: names,
            loops,
            containers,
            variables,
            parameters: self
                .project
                .parameters
                .keys()
                .chain(self.workflow.parameters.keys())
                .cloned()
                .collect(),
        };

        self.check_siblings(&self.workflow.actions);
        for action in &self.workflow.actions {
            self.check_action(action, &known, false);
        }
        let mut concurrency = None;
        for trigger in &self.workflow.triggers {
            let path = format!("$.definition.triggers.{}", trigger.name);
            // Trigger expressions see parameters, app settings and the trigger's own outputs.
            let mut sources: Vec<(String, Value)> = trigger
                .conditions
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        format!("{path}.conditions[{i}].expression"),
                        Value::String(c.clone()),
                    )
                })
                .collect();
            if let Some(split_on) = &trigger.split_on {
                sources.push((format!("{path}.splitOn"), Value::String(split_on.clone())));
            }
            let trigger_known = Known {
                parameters: known.parameters.clone(),
                ..Known::default()
            };
            for (source_path, value) in &sources {
                for (template_path, parsed) in templates_in(value, source_path) {
                    match parsed {
                        Ok(template) => {
                            self.check_references(&trigger.name, &template_path, &template, &trigger_known)
                        }
                        Err(e) => self.problem(Some(&trigger.name), &template_path, e.message),
                    }
                }
            }
            if trigger.split_on.is_some() && trigger.kind.is_called_over_http() {
                self.problem(
                    Some(&trigger.name),
                    &format!("{path}.splitOn"),
                    "splitOn applies to polling triggers; a request starts one run",
                );
            }
            if trigger.kind == TriggerKind::HttpWebhook {
                self.check_webhook_requests(&trigger.name, &path, &trigger.inputs);
            }
            if trigger.kind == TriggerKind::Http {
                self.check_http_request(&trigger.name, &format!("{path}.inputs"), &trigger.inputs);
            }
            if trigger.kind == TriggerKind::Request {
                self.check_request_inputs(trigger, &path);
            }
            if let Some(c) = trigger.concurrency {
                if concurrency.is_some_and(|seen| seen != c) {
                    self.problem(
                        Some(&trigger.name),
                        &format!("{path}.runtimeConfiguration.concurrency"),
                        "the workflow's triggers set different concurrency limits; the limit is per workflow, so set it once",
                    );
                }
                concurrency = Some(c);
            }
            if let TriggerKind::ServiceProvider {
                connection,
                operation,
            } = &trigger.kind
            {
                self.check_operation(
                    &trigger.name,
                    &path,
                    connection,
                    operation,
                    OperationKind::Trigger,
                    &trigger.inputs,
                );
            }
        }
    }

    /// A request trigger's `method` and `relativePath`.
    fn check_request_inputs(&mut self, trigger: &Trigger, path: &str) {
        const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
        if let Some(method) = trigger.inputs.get("method") {
            let known = method
                .as_str()
                .is_some_and(|m| METHODS.iter().any(|k| k.eq_ignore_ascii_case(m)));
            if !known {
                self.problem(
                    Some(&trigger.name),
                    &format!("{path}.inputs.method"),
                    format!("method {method} is not one of {}", METHODS.join(", ")),
                );
            }
        }
        if let Some(schema) = trigger.inputs.get("schema") {
            self.check_schema(&trigger.name, &format!("{path}.inputs.schema"), schema);
        }
        if let Err(e) = super::relative_path::RelativePath::of(trigger) {
            self.problem(Some(&trigger.name), &format!("{path}.inputs.relativePath"), e);
        }
    }

    /// A JSON Schema written in the definition (a Request trigger's, a ParseJson's) compiles.
    /// One computed by an expression is the run's to check.
    fn check_schema(&mut self, name: &str, path: &str, schema: &Value) {
        match schema {
            Value::Object(map) if map.is_empty() => {}
            Value::Object(_) if contains_expression(schema) => {}
            Value::Object(_) => {
                if let Err(e) = jsonschema::validator_for(schema) {
                    self.problem(Some(name), path, format!("the schema does not compile: {e}"));
                }
            }
            Value::String(text) if text.starts_with('@') => {}
            other => self.problem(
                Some(name),
                path,
                format!("schema must be a JSON Schema object, not {other}"),
            ),
        }
    }

    /// `runAfter` names siblings, and siblings have no cycle.
    fn check_siblings(&mut self, actions: &[Action]) {
        let names: HashSet<&str> = actions.iter().map(|a| a.name.as_str()).collect();
        for action in actions {
            for predecessor in action.run_after.keys() {
                if predecessor == &action.name {
                    self.problem(
                        Some(&action.name),
                        &format!("{}.runAfter", action.json_path),
                        "an action cannot run after itself",
                    );
                } else if !names.contains(predecessor.as_str()) {
                    let mut siblings: Vec<&str> =
                        names.iter().copied().filter(|n| *n != action.name).collect();
                    siblings.sort_unstable();
                    self.problem(
                        Some(&action.name),
                        &format!("{}.runAfter.{predecessor}", action.json_path),
                        format!(
                            "runAfter names {predecessor:?}, which is not an action at the same level (there: {})",
                            if siblings.is_empty() { "none".to_owned() } else { siblings.join(", ") }
                        ),
                    );
                }
            }
        }
        if let Some(cycle) = find_cycle(actions) {
            let first = actions.iter().find(|a| a.name == cycle[0]);
            self.problem(
                Some(&cycle[0]),
                &first.map_or_else(String::new, |a| format!("{}.runAfter", a.json_path)),
                format!("runAfter forms a cycle: {}", cycle.join(" -> ")),
            );
        }
        for action in actions {
            for branch in action.branches() {
                self.check_siblings(branch);
            }
        }
    }

    fn check_action(&mut self, action: &Action, known: &Known, nested: bool) {
        let path = &action.json_path;
        let mut expression_sources: Vec<(String, &Value)> = vec![(format!("{path}.inputs"), &action.inputs)];
        match &action.kind {
            ActionKind::If { expression, .. } | ActionKind::Until { expression, .. } => {
                expression_sources.push((format!("{path}.expression"), expression));
                // A condition with no expression in it reads nothing from the run: evaluate
                // it here, with the executor's own function, so "" or "yes" is refused now.
                if !contains_expression(expression)
                    && let Err(e) = super::executor::condition(expression, &JsonScope::new(Value::Null))
                {
                    self.problem(Some(&action.name), &format!("{path}.expression"), e.message);
                }
            }
            ActionKind::Switch {
                expression, cases, ..
            } => {
                expression_sources.push((format!("{path}.expression"), expression));
                for (index, case) in cases.iter().enumerate() {
                    let case_path = format!("{path}.cases.{}.case", case.name);
                    if case.value.as_str().is_some_and(|s| s.starts_with('@')) {
                        self.problem(
                            Some(&action.name),
                            &case_path,
                            "a case value must be a constant, not an expression",
                        );
                    } else if !(case.value.is_string() || case.value.is_number()) {
                        self.problem(
                            Some(&action.name),
                            &case_path,
                            format!("a case value must be a string or a number, got {}", case.value),
                        );
                    } else if let Some(first) = cases[..index].iter().find(|c| c.value == case.value) {
                        // As in Logic Apps: the second case could never run.
                        self.problem(
                            Some(&action.name),
                            &case_path,
                            format!(
                                "case {:?} has the same value as case {:?} ({}); case values must be unique",
                                case.name, first.name, case.value
                            ),
                        );
                    }
                }
            }
            ActionKind::Foreach { items, .. } => expression_sources.push((format!("{path}.foreach"), items)),
            ActionKind::InitializeVariable if nested => {
                self.problem(
                    Some(&action.name),
                    path,
                    "InitializeVariable must be at the top level of the workflow, not inside another action",
                );
            }
            ActionKind::ServiceProvider {
                connection,
                operation,
            } => {
                self.check_operation(
                    &action.name,
                    path,
                    connection,
                    operation,
                    OperationKind::Action,
                    &action.inputs,
                );
            }
            ActionKind::Response { .. } | ActionKind::Terminate | ActionKind::Wait | ActionKind::Table => {
                self.check_builtin_inputs(action);
            }
            ActionKind::ParseJson => {
                if let Some(schema) = action.inputs.get("schema") {
                    self.check_schema(&action.name, &format!("{path}.inputs.schema"), schema);
                }
            }
            ActionKind::Http { .. } => {
                self.check_http_request(&action.name, &format!("{path}.inputs"), &action.inputs);
            }
            ActionKind::HttpWebhook => self.check_webhook_requests(&action.name, path, &action.inputs),
            ActionKind::SetVariable
            | ActionKind::IncrementVariable
            | ActionKind::DecrementVariable
            | ActionKind::AppendToArrayVariable
            | ActionKind::AppendToStringVariable => {
                if let Some(name) = action.inputs.get("name").and_then(Value::as_str)
                    && !name.contains('@')
                    && !known.variables.contains(name)
                {
                    self.problem(
                        Some(&action.name),
                        &format!("{path}.inputs.name"),
                        format!(
                            "variable {name:?} is not initialized; add it to an InitializeVariable action at the top level"
                        ),
                    );
                }
            }
            ActionKind::Workflow { workflow } => match self.project.workflows.get(workflow) {
                None => self.problem(
                    Some(&action.name),
                    &format!("{path}.inputs.host.workflow.id"),
                    format!("there is no workflow {workflow:?} in the project"),
                ),
                // As in Logic Apps: the child is called the way a request calls it, so it
                // must start with a Request trigger (its triggerBody() is the action's body).
                Some(child) if !child.triggers.iter().any(|t| t.kind == TriggerKind::Request) => self.problem(
                    Some(&action.name),
                    &format!("{path}.inputs.host.workflow.id"),
                    format!(
                        "workflow {workflow:?} has no Request trigger; a Workflow action can call only a workflow that starts with one"
                    ),
                ),
                Some(_) => {}
            },
            _ => {}
        }
        let webhook_inputs = format!("{path}.inputs");
        for (source_path, value) in expression_sources {
            // listCallbackUrl() has a value only where an HttpWebhook evaluates its inputs.
            let gives_callback_url =
                matches!(action.kind, ActionKind::HttpWebhook) && source_path == webhook_inputs;
            for (template_path, parsed) in templates_in(value, &source_path) {
                match parsed {
                    Ok(template) => {
                        self.check_references(&action.name, &template_path, &template, known);
                        if !gives_callback_url && calls(&template, "listCallbackUrl") {
                            self.problem(
                                Some(&action.name),
                                &template_path,
                                "listCallbackUrl() has a value only in the inputs of an HttpWebhook action or trigger; here it would fail the run",
                            );
                        }
                    }
                    Err(e) => self.problem(Some(&action.name), &template_path, e.message),
                }
            }
        }
        for child in action.children() {
            self.check_action(child, known, true);
        }
    }

    /// An Http action's inputs, or a webhook's subscribe or unsubscribe request, against what
    /// the `http` connector takes (when no expression makes it up at run time).
    fn check_http_request(&mut self, action: &str, path: &str, inputs: &Value) {
        if let Some(Value::String(method)) = inputs.get("method")
            && !contains_expression(&Value::String(method.clone()))
            && !builtin_inputs::HTTP_METHODS.contains(&method.to_ascii_uppercase().as_str())
        {
            self.problem(
                Some(action),
                &format!("{path}.method"),
                format!(
                    "method {method:?} is not one the http connector sends; use one of {}",
                    builtin_inputs::HTTP_METHODS.join(", ")
                ),
            );
        }
        let request = builtin_inputs::http_request(inputs);
        let manifest = self.connections.http.connector().manifest();
        if !contains_expression(&request)
            && let Some(op) = manifest.operation("request")
        {
            for reason in op.check_input(&request) {
                self.problem(
                    Some(action),
                    path,
                    format!("is not a request the http connector takes: {reason}"),
                );
            }
        }
        self.check_http_secret(action, path, inputs);
    }

    /// A request whose `authentication` takes a secret of the project's `http` connection
    /// (Bearer its `token`, ApiKey its `api_key`, Basic without a password its `password`)
    /// needs the connection to give and grant it; the run would fail on it otherwise.
    fn check_http_secret(&mut self, action: &str, path: &str, inputs: &Value) {
        let Some(authentication) = inputs.get("authentication").filter(|a| !contains_expression(a)) else {
            return;
        };
        let secret = match authentication.get("type").and_then(Value::as_str) {
            Some("Bearer") => "token",
            Some("ApiKey") => "api_key",
            Some("Basic") if authentication.get("password").is_none() => "password",
            _ => return,
        };
        let kind = authentication["type"].as_str().unwrap_or_default();
        let given = self.project.http_parameter_values.contains_key(secret);
        let granted = self
            .project
            .http_grant
            .secrets
            .iter()
            .any(|s| s.name.as_str() == secret);
        let missing = match (given, granted) {
            (true, true) => return,
            (false, false) => format!(
                "add \"{secret}\": \"@secret('NAME')\" to connections.json's http.parameterValues and {{\"name\": \"{secret}\"}} to its grant's secrets"
            ),
            (false, true) => format!(
                "add \"{secret}\": \"@secret('NAME')\" (or \"@appsetting('NAME')\") to connections.json's http.parameterValues"
            ),
            (true, false) => {
                format!("add {{\"name\": \"{secret}\"}} to connections.json's http.grant.secrets")
            }
        };
        self.problem(
            Some(action),
            &format!("{path}.authentication"),
            format!("{kind} authentication takes the secret {secret:?} of the project's http connection: {missing}"),
        );
    }

    /// An HttpWebhook's (action's or trigger's) `subscribe` request, which it needs, and its
    /// `unsubscribe` request if it has one.
    fn check_webhook_requests(&mut self, owner: &str, path: &str, inputs: &Value) {
        match inputs.get("subscribe") {
            Some(subscribe) if subscribe.is_object() => {
                self.check_http_request(owner, &format!("{path}.inputs.subscribe"), subscribe);
            }
            _ => self.problem(
                Some(owner),
                &format!("{path}.inputs.subscribe"),
                "an HttpWebhook needs inputs.subscribe, the request {method, uri, ...} that gives the service \
                 listCallbackUrl()",
            ),
        }
        match inputs.get("unsubscribe") {
            None | Some(Value::Null) => {}
            Some(unsubscribe) if unsubscribe.is_object() => {
                self.check_http_request(owner, &format!("{path}.inputs.unsubscribe"), unsubscribe);
            }
            Some(_) => self.problem(
                Some(owner),
                &format!("{path}.inputs.unsubscribe"),
                "inputs.unsubscribe must be a request {method, uri, ...}",
            ),
        }
    }

    /// The inputs of Response, Terminate, Wait and Table that are written as literals, read as
    /// the run will read them. Anything computed by an expression is left to the run.
    fn check_builtin_inputs(&mut self, action: &Action) {
        let inputs = &action.inputs;
        let literal = |value: &&Value| !contains_expression(value);
        let (field, message) = match action.kind {
            ActionKind::Response { .. } => {
                let code = inputs.get("statusCode").filter(literal);
                let headers = inputs.get("headers").filter(literal);
                match code.and_then(|c| builtin_inputs::response_status(Some(c)).err()) {
                    Some(message) => (".statusCode", Some(message)),
                    None => (
                        ".headers",
                        headers.and_then(|h| builtin_inputs::response_headers(Some(h)).err()),
                    ),
                }
            }
            ActionKind::Terminate => {
                let status = inputs.get("runStatus").filter(literal);
                (
                    ".runStatus",
                    status.and_then(|s| builtin_inputs::terminate_status(Some(s)).err()),
                )
            }
            ActionKind::Wait => {
                let literal_inputs = Some(inputs).filter(literal);
                ("", literal_inputs.and_then(|i| builtin_inputs::wait_for(i).err()))
            }
            ActionKind::Table => {
                let format = inputs.get("format");
                let format_problem = match format {
                    Some(f) if !literal(&f) => None,
                    _ => table::TableFormat::parse(format).err(),
                };
                if let Some(message) = format_problem {
                    (".format", Some(message))
                } else if inputs.get("from").is_none_or(Value::is_null) {
                    (
                        ".from",
                        Some("a Table needs inputs.from, the array whose items are its rows".to_owned()),
                    )
                } else {
                    (".columns", table::column_headers(inputs.get("columns")).err())
                }
            }
            _ => return,
        };
        if let Some(message) = message {
            let path = format!("{}.inputs{field}", action.json_path);
            self.problem(Some(&action.name), &path, message);
        }
    }

    /// Literal names in workflow functions must exist: `body('X')` needs an action X,
    /// `variables('v')` an InitializeVariable of v, and so on.
    fn check_references(&mut self, action: &str, path: &str, template: &Template, known: &Known) {
        let mut found = Vec::new();
        for expr in template.expressions() {
            expr.walk(&mut |e| {
                if let Expr::Call { name, args } = e
                    && let Some(Expr::Literal(Value::String(target))) = args.first()
                {
                    found.push((name.clone(), target.clone()));
                }
            });
        }
        for (function, target) in found {
            let missing = match function.as_str() {
                "actions" | "body" | "outputs" | "actionBody" | "actionOutputs" | "formDataValue" | "formDataMultiValues" => {
                    (!known.actions.contains(target.as_str())).then(|| format!("{function}('{target}') names an action that does not exist"))
                }
                "items" | "iterationIndexes" => (!known.loops.contains(target.as_str()))
                    .then(|| format!("{function}('{target}') names no Foreach or Until in this workflow")),
                "result" => (!known.containers.contains(target.as_str()))
                    .then(|| format!("result('{target}') names no Scope, Foreach or Until in this workflow")),
                "variables" => (!known.variables.contains(&target))
                    .then(|| format!("variables('{target}') names a variable no InitializeVariable action declares")),
                "parameters" => (!known.parameters.contains(&target))
                    .then(|| format!("parameters('{target}') names a parameter that is neither in parameters.json nor declared in the definition")),
                _ => None,
            };
            if let Some(message) = missing {
                self.problem(Some(action), path, message);
            }
        }
    }

    fn check_operation(
        &mut self,
        owner: &str,
        path: &str,
        connection: &str,
        operation: &str,
        kind: OperationKind,
        inputs: &Value,
    ) {
        let config_path = format!("{path}.inputs.serviceProviderConfiguration");
        if !self.project.connections.contains_key(connection) {
            let known: Vec<&str> = self.project.connections.keys().map(String::as_str).collect();
            self.problem(
                Some(owner),
                &format!("{config_path}.connectionName"),
                format!(
                    "connection {connection:?} is not in connections.json (it has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            return;
        }
        // A connection that failed to load is reported by Connections::load.
        let Some(live) = self.connections.by_name.get(connection) else {
            return;
        };
        let manifest = live.connector().manifest();
        let Some(op) = manifest.operations.iter().find(|o| o.id.as_str() == operation) else {
            let available: Vec<&str> = manifest
                .operations
                .iter()
                .filter(|o| o.kind == kind)
                .map(|o| o.id.as_str())
                .collect();
            self.problem(
                Some(owner),
                &format!("{config_path}.operationId"),
                format!(
                    "connector {:?} has no operation {operation:?}; its {} are: {}",
                    manifest.id,
                    if kind == OperationKind::Action {
                        "actions"
                    } else {
                        "triggers"
                    },
                    available.join(", ")
                ),
            );
            return;
        };
        if op.kind != kind {
            self.problem(
                Some(owner),
                &format!("{config_path}.operationId"),
                format!(
                    "{operation:?} is a{} of connector {:?}, not a{}",
                    if op.kind == OperationKind::Action {
                        "n action"
                    } else {
                        " trigger"
                    },
                    manifest.id,
                    if kind == OperationKind::Action {
                        "n action"
                    } else {
                        " trigger"
                    }
                ),
            );
            return;
        }
        let parameters = inputs
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        if !contains_expression(&parameters) {
            let reasons = op.check_input(&parameters);
            for reason in reasons {
                self.problem(
                    Some(owner),
                    &format!("{path}.inputs.parameters"),
                    format!("does not fit the input schema of {operation:?}: {reason}"),
                );
            }
        }
    }
}

#[derive(Default)]
struct Known<'a> {
    actions: HashSet<&'a str>,
    loops: HashSet<&'a str>,
    containers: HashSet<&'a str>,
    variables: BTreeSet<String>,
    parameters: BTreeSet<String>,
}

/// Whether an expression of `template` calls `function` (names are case-insensitive).
fn calls(template: &Template, function: &str) -> bool {
    let mut found = false;
    for expr in template.expressions() {
        expr.walk(&mut |e| {
            if let Expr::Call { name, .. } = e {
                found |= name.eq_ignore_ascii_case(function);
            }
        });
    }
    found
}

fn contains_expression(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('@'),
        Value::Array(items) => items.iter().any(contains_expression),
        Value::Object(map) => map.values().any(contains_expression),
        _ => false,
    }
}

/// A cycle among siblings' `runAfter`, as the names along it.
fn find_cycle(actions: &[Action]) -> Option<Vec<String>> {
    let edges: HashMap<&str, Vec<&str>> = actions
        .iter()
        .map(|a| (a.name.as_str(), a.run_after.keys().map(String::as_str).collect()))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &HashMap<&'a str, Vec<&'a str>>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Visiting);
        stack.push(node);
        for next in edges.get(node).map(Vec::as_slice).unwrap_or_default() {
            if edges.contains_key(next)
                && let Some(cycle) = visit(next, edges, marks, stack)
            {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for action in actions {
        if let Some(cycle) = visit(&action.name, &edges, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}
