//! What the workflow functions (`parameters`, `variables`, `actions`, `trigger`, `item`, ...)
//! read. The executor implements [`Scope`] over a run's live state; [`JsonScope`] reads one JSON
//! document, for `cordon expr` and for tests.

use serde_json::Value;

/// The run state an expression can see. `None` means "does not exist here"; the function that
/// asked turns it into an error that names what is missing.
pub trait Scope {
    fn parameter(&self, name: &str) -> Option<Value>;
    fn variable(&self, name: &str) -> Option<Value>;
    /// The record of an action that has run in this run: `name`, `status`, `inputs`,
    /// `outputs`, `startTime`, `endTime`, `error`, ...
    fn action(&self, name: &str) -> Option<Value>;
    /// The record of the current action (`action()`), when evaluating its own outputs.
    fn current_action(&self) -> Option<Value> {
        None
    }
    /// The trigger's record: `name`, `outputs` (with `body` and `headers`), `startTime`, ...
    fn trigger(&self) -> Option<Value>;
    /// The current item of the innermost `Foreach`.
    fn item(&self) -> Option<Value>;
    /// The current item of the named `Foreach`.
    fn items(&self, loop_name: &str) -> Option<Value>;
    /// The current zero-based index of the named `Until` or `Foreach`.
    fn iteration_index(&self, loop_name: &str) -> Option<Value>;
    /// The records of the top-level actions inside a scoped action (`Scope`, `Foreach`, `Until`).
    fn result(&self, scope_name: &str) -> Option<Value>;
    /// `workflow()`: the workflow's name and the run's id.
    fn workflow(&self) -> Value;
    fn appsetting(&self, name: &str) -> Option<String>;
    /// `listCallbackUrl()`: set only while an HttpWebhook action's inputs are evaluated.
    fn callback_url(&self) -> Option<String> {
        None
    }
}

/// A scope read from one JSON document:
///
/// ```json
/// {"parameters": {}, "variables": {}, "actions": {"Name": {"outputs": {}}},
///  "trigger": {"outputs": {"body": {}}}, "item": null, "items": {"Loop": 1},
///  "iterationIndexes": {"Loop": 0}, "results": {"Scope": []}, "workflow": {},
///  "appsettings": {"KEY": "value"}, "callbackUrl": "https://..."}
/// ```
///
/// Every key is optional.
#[derive(Debug, Clone, Default)]
pub struct JsonScope {
    document: Value,
}

impl JsonScope {
    pub fn new(document: Value) -> JsonScope {
        JsonScope { document }
    }

    fn entry(&self, section: &str, name: &str) -> Option<Value> {
        self.document.get(section)?.get(name).cloned()
    }
}

impl Scope for JsonScope {
    fn parameter(&self, name: &str) -> Option<Value> {
        self.entry("parameters", name)
    }
    fn variable(&self, name: &str) -> Option<Value> {
        self.entry("variables", name)
    }
    fn action(&self, name: &str) -> Option<Value> {
        let mut record = self.entry("actions", name)?;
        if let Value::Object(map) = &mut record {
            map.entry("name")
                .or_insert_with(|| Value::String(name.to_owned()));
        }
        Some(record)
    }
    fn current_action(&self) -> Option<Value> {
        self.document.get("action").cloned()
    }
    fn trigger(&self) -> Option<Value> {
        self.document.get("trigger").cloned()
    }
    fn item(&self) -> Option<Value> {
        self.document.get("item").cloned()
    }
    fn items(&self, loop_name: &str) -> Option<Value> {
        self.entry("items", loop_name)
    }
    fn iteration_index(&self, loop_name: &str) -> Option<Value> {
        self.entry("iterationIndexes", loop_name)
    }
    fn result(&self, scope_name: &str) -> Option<Value> {
        self.entry("results", scope_name)
    }
    fn workflow(&self) -> Value {
        self.document
            .get("workflow")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}))
    }
    fn appsetting(&self, name: &str) -> Option<String> {
        self.entry("appsettings", name)
            .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
    }
    fn callback_url(&self) -> Option<String> {
        self.document
            .get("callbackUrl")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}
