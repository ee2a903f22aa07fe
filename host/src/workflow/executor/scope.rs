//! What an expression sees while a run executes: the run's records and variables through a
//! [`Frame`] that says which loop iterations the evaluating action sits in.

use serde_json::{Value, json};

use crate::db::ActionRecord;
use crate::expr::Scope;

use super::RunContext;

/// One enclosing loop iteration.
#[derive(Debug, Clone)]
pub struct LoopPosition {
    pub name: String,
    pub index: usize,
    /// The Foreach item; `None` for Until.
    pub item: Option<Value>,
}

/// Where an action executes: its enclosing loop iterations and its container's key.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub loops: Vec<LoopPosition>,
    /// The path of the container (plus `[i]` in a loop), "" at the top level.
    pub parent: String,
}

impl Frame {
    /// The history path of an action in this frame: `Outer[1]/Inner[0]/Name`.
    pub fn path(&self, name: &str) -> String {
        let mut path = String::new();
        for position in &self.loops {
            path.push_str(&format!("{}[{}]/", position.name, position.index));
        }
        path.push_str(name);
        path
    }

    /// The frame for the children of a non-loop container (Scope, If, Switch).
    pub fn inside(&self, container_path: &str) -> Frame {
        Frame {
            loops: self.loops.clone(),
            parent: container_path.to_owned(),
        }
    }

    /// The frame for one iteration of a loop.
    pub fn iteration(&self, loop_name: &str, loop_path: &str, index: usize, item: Option<Value>) -> Frame {
        let mut loops = self.loops.clone();
        loops.push(LoopPosition {
            name: loop_name.to_owned(),
            index,
            item,
        });
        Frame {
            loops,
            parent: format!("{loop_path}[{index}]"),
        }
    }
}

/// The record of an action as expressions read it (`actions('X')`, `result('Scope')`).
pub fn expression_record(record: &ActionRecord) -> Value {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    json!({
        "name": record.name,
        "status": record.status.as_str(),
        "inputs": record.inputs,
        "outputs": record.outputs,
        "startTime": time(record.started_at),
        "endTime": record.ended_at.map(time),
        "error": record.error,
        "code": record.error.as_ref().and_then(|e| e.get("code")).cloned().unwrap_or(Value::Null),
        "trackingId": record.idempotency_key,
    })
}

/// The expression scope of one action in one frame.
pub struct RunScope<'a> {
    pub run: &'a RunContext,
    pub frame: &'a Frame,
    /// `item()` inside Query and Select, which iterate without being loops.
    pub item_override: Option<Value>,
    /// `action()`: the evaluating action's own record.
    pub current: Option<Value>,
    /// `listCallbackUrl()`: set while an HttpWebhook action's inputs are evaluated.
    pub callback_url: Option<String>,
}

impl Scope for RunScope<'_> {
    fn parameter(&self, name: &str) -> Option<Value> {
        self.run
            .engine
            .parameters
            .get(name)
            .cloned()
            .or_else(|| self.run.plan.workflow.parameters.get(name).cloned())
    }

    fn variable(&self, name: &str) -> Option<Value> {
        self.run.state().variables.get(name).cloned()
    }

    fn action(&self, name: &str) -> Option<Value> {
        let path = self.run.plan.path_in_frame(name, self.frame)?;
        self.run.state().records.get(&path).map(expression_record)
    }

    fn current_action(&self) -> Option<Value> {
        self.current.clone()
    }

    fn trigger(&self) -> Option<Value> {
        Some(self.run.trigger.clone())
    }

    fn item(&self) -> Option<Value> {
        if let Some(item) = &self.item_override {
            return Some(item.clone());
        }
        self.frame.loops.iter().rev().find_map(|l| l.item.clone())
    }

    fn items(&self, loop_name: &str) -> Option<Value> {
        self.frame
            .loops
            .iter()
            .find(|l| l.name == loop_name)
            .and_then(|l| l.item.clone())
    }

    fn iteration_index(&self, loop_name: &str) -> Option<Value> {
        self.frame
            .loops
            .iter()
            .find(|l| l.name == loop_name)
            .map(|l| Value::from(l.index))
    }

    fn result(&self, scope_name: &str) -> Option<Value> {
        let container = self.run.plan.path_in_frame(scope_name, self.frame)?;
        let state = self.run.state();
        state.records.get(&container)?;
        let mut children: Vec<&ActionRecord> = state
            .records
            .values()
            .filter(|r| {
                r.parent == container
                    || r.parent.strip_prefix(&container).is_some_and(|rest| {
                        rest.starts_with('[') && rest.ends_with(']') && !rest[1..].contains('[')
                    })
            })
            .collect();
        children.sort_by_key(|r| r.sequence);
        Some(Value::Array(
            children.into_iter().map(expression_record).collect(),
        ))
    }

    fn workflow(&self) -> Value {
        json!({
            "name": self.run.plan.workflow.name,
            "id": self.run.plan.workflow.name,
            "run": {"name": self.run.run_id, "id": self.run.run_id},
        })
    }

    fn callback_url(&self) -> Option<String> {
        self.callback_url.clone()
    }

    fn appsetting(&self, name: &str) -> Option<String> {
        // Settings that hold connection secrets stay out of expressions, and so out of the
        // run history.
        if self.run.engine.secret_settings.contains(name) {
            return None;
        }
        self.run.engine.settings.get(name)
    }
}
