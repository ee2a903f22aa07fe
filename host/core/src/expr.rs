//! The workflow expression language, as the Logic Apps Workflow Definition Language defines it.
//!
//! A JSON string in a definition is a [`Template`]:
//!
//! - `"@expr"`: the whole value is the expression's result, of any JSON type;
//! - `"text @{expr} text"`: string interpolation; each result is converted to a string
//!   (a lone `"@{expr}"` is a string too, as in Logic Apps);
//! - `"@@..."` at the start, or `@@{` anywhere: an escaped literal `@`;
//! - anything else is a literal string (`"user@example.com"` stays as written).
//!
//! An expression is a literal (`'text'` with `''` for a quote, integers, decimals, `true`,
//! `false`, `null`), a function call (`concat('a', 'b')`), or a property access on either:
//! `.name`, `['name']`, `[0]`, and their null-safe forms `?.name` and `?['name']`.
//!
//! Parsing checks function names and argument counts, so `cordon validate` catches a typo before
//! a run. Evaluation reads the run's state through [`Scope`]. There is no IO here beyond the
//! clock and the random source that `utcNow`, `guid` and `rand` need.
//!
//! Where we differ from Logic Apps: `if`, `and`, `or` and `coalesce` evaluate their arguments
//! lazily (Logic Apps evaluates every argument), so an untaken branch cannot fail a run;
//! and `xpath()` gives every node-set as an array, even of one node (`crate::xml` has the XML
//! conventions). Objects keep their properties in the order they were written, as in Logic
//! Apps.
//!
//! ```
//! use cordon_core::expr::{JsonScope, Template};
//! let scope = JsonScope::new(serde_json::json!({"parameters": {"name": "Ada"}}));
//! let template = Template::parse("Hello @{toUpper(parameters('name'))}!").unwrap();
//! assert_eq!(template.evaluate(&scope).unwrap(), "Hello ADA!");
//! ```

mod bounds;
mod functions;
mod parser;
mod scope;
mod value;

use serde_json::Value;

pub use bounds::{MAX_VALUE_BYTES, MAX_VALUE_DEPTH, check as check_value, check_size, json_size_hint};
pub use functions::{FunctionInfo, lookup as lookup_function, names as function_names, parse_timestamp};
pub use parser::MAX_EXPRESSION_DEPTH;
pub use scope::{JsonScope, Scope};
pub use value::equal as function_equals;
pub use value::{describe as describe_value, join_texts, to_text};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// `target.key`, `target['key']`, `target[index]`; `null_safe` for the `?` forms.
    Member {
        target: Box<Expr>,
        key: Box<Expr>,
        null_safe: bool,
    },
}

/// A parsed JSON string from a definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// No expression: the string as written (with escapes resolved).
    Literal(String),
    /// `@expr`: the expression's value, any JSON type.
    Whole(Expr),
    /// Text and `@{expr}` parts; the result is always a string.
    Interpolated(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Text(String),
    Expr(Expr),
}

/// A parse or evaluation failure. `position` is a character offset into the template when the
/// failure has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
}

impl ExprError {
    pub fn new(message: impl Into<String>) -> Self {
        ExprError {
            message: message.into(),
        }
    }
}

impl Template {
    /// Parses one JSON string of a definition.
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        parser::parse_template(text)
    }

    /// Whether the string contains any expression (so a literal need not be kept parsed).
    pub fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }

    pub fn evaluate(&self, scope: &dyn Scope) -> Result<Value, ExprError> {
        match self {
            Template::Literal(text) => Ok(Value::String(text.clone())),
            // Bounded already: a call checks its result, and member access only narrows.
            Template::Whole(expr) => expr.evaluate(scope),
            Template::Interpolated(segments) => {
                let mut out = String::new();
                for segment in segments {
                    match segment {
                        Segment::Text(text) => out.push_str(text),
                        Segment::Expr(expr) => out.push_str(&to_text(&expr.evaluate(scope)?)),
                    }
                }
                let value = Value::String(out);
                bounds::check(&value)?;
                Ok(value)
            }
        }
    }

    /// Every expression in the template, for static checks.
    pub fn expressions(&self) -> Vec<&Expr> {
        match self {
            Template::Literal(_) => Vec::new(),
            Template::Whole(expr) => vec![expr],
            Template::Interpolated(segments) => segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Expr(e) => Some(e),
                    Segment::Text(_) => None,
                })
                .collect(),
        }
    }
}

impl Expr {
    /// Parses a bare expression (without the leading `@`).
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        parser::parse_expression(text)
    }

    pub fn evaluate(&self, scope: &dyn Scope) -> Result<Value, ExprError> {
        match self {
            Expr::Literal(value) => Ok(value.clone()),
            Expr::Call { name, args } => functions::call(name, args, scope),
            Expr::Member {
                target,
                key,
                null_safe,
            } => {
                let target = target.evaluate(scope)?;
                let key = key.evaluate(scope)?;
                value::member(&target, &key, *null_safe)
            }
        }
    }

    /// Calls `visit` on this expression and every expression inside it.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Expr)) {
        visit(self);
        match self {
            Expr::Literal(_) => {}
            Expr::Call { args, .. } => args.iter().for_each(|a| a.walk(visit)),
            Expr::Member { target, key, .. } => {
                target.walk(visit);
                key.walk(visit);
            }
        }
    }
}

/// Evaluates every template inside a JSON value: strings are parsed and evaluated, objects and
/// arrays are walked, other values are kept.
pub fn evaluate_value(value: &Value, scope: &dyn Scope) -> Result<Value, ExprError> {
    match value {
        Value::String(text) => Template::parse(text)?.evaluate(scope),
        Value::Array(items) => items
            .iter()
            .map(|v| evaluate_value(v, scope))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, item) in map {
                let evaluated = evaluate_value(item, scope)
                    .map_err(|e| ExprError::new(format!("in {key:?}: {}", e.message)))?;
                out.insert(key.clone(), evaluated);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Every template inside a JSON value with its JSON path (for example `$.inputs.body.name`),
/// for static checks. Parse errors are reported with their path.
pub fn templates_in(value: &Value, path: &str) -> Vec<(String, Result<Template, ExprError>)> {
    let mut out = Vec::new();
    collect_templates(value, path.to_owned(), &mut out);
    out
}

fn collect_templates(value: &Value, path: String, out: &mut Vec<(String, Result<Template, ExprError>)>) {
    match value {
        Value::String(text) if text.contains('@') => out.push((path, Template::parse(text))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_templates(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = if key.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    format!("{path}.{key}")
                } else {
                    format!("{path}[{key:?}]")
                };
                collect_templates(item, child, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
