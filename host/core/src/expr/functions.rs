//! The function reference: one table per family, each entry with its argument counts, looked up
//! case-insensitively as Logic Apps does. Arguments are evaluated by the function itself
//! ([`Args`]), so `if`, `and`, `or` and `coalesce` can skip what they do not need.

mod collection;
mod conversion;
mod datetime;
mod logic;
mod manipulation;
mod math;
mod string;
mod uri;
mod workflow;
mod xml;

pub use datetime::parse_timestamp;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::value::{Num, describe};
use super::{Expr, ExprError, Scope, bounds};

type Implementation = fn(&Args<'_>) -> Result<Value, ExprError>;

/// One function of the expression language.
#[derive(Clone, Copy)]
pub struct FunctionInfo {
    pub name: &'static str,
    pub min_args: usize,
    /// `None` for functions that take any number (`concat`, `createArray`, ...).
    pub max_args: Option<usize>,
    implementation: Implementation,
}

impl std::fmt::Debug for FunctionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionInfo")
            .field("name", &self.name)
            .field("min_args", &self.min_args)
            .field("max_args", &self.max_args)
            .finish()
    }
}

/// Shorthand for the family tables.
const fn f(
    name: &'static str,
    min_args: usize,
    max_args: usize,
    implementation: Implementation,
) -> FunctionInfo {
    FunctionInfo {
        name,
        min_args,
        max_args: Some(max_args),
        implementation,
    }
}

/// A function that takes `min_args` or more arguments.
const fn variadic(name: &'static str, min_args: usize, implementation: Implementation) -> FunctionInfo {
    FunctionInfo {
        name,
        min_args,
        max_args: None,
        implementation,
    }
}

fn table() -> &'static HashMap<String, FunctionInfo> {
    static TABLE: OnceLock<HashMap<String, FunctionInfo>> = OnceLock::new();
    TABLE.get_or_init(|| {
        [
            string::FUNCTIONS,
            collection::FUNCTIONS,
            logic::FUNCTIONS,
            conversion::FUNCTIONS,
            math::FUNCTIONS,
            datetime::FUNCTIONS,
            uri::FUNCTIONS,
            manipulation::FUNCTIONS,
            workflow::FUNCTIONS,
            xml::FUNCTIONS,
        ]
        .iter()
        .flat_map(|family| family.iter())
        .map(|info| (info.name.to_ascii_lowercase(), *info))
        .collect()
    })
}

/// The function called `name`, ignoring case.
pub fn lookup(name: &str) -> Option<&'static FunctionInfo> {
    table().get(&name.to_ascii_lowercase())
}

/// Every function name, sorted.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = table().values().map(|i| i.name).collect();
    names.sort_unstable();
    names
}

/// The closest known name to a misspelt one, if any is close.
pub(super) fn suggest(name: &str) -> Option<&'static str> {
    crate::suggest::closest(name, table().values().map(|info| info.name))
}

pub(super) fn call(name: &str, args: &[Expr], scope: &dyn Scope) -> Result<Value, ExprError> {
    let info = lookup(name).ok_or_else(|| ExprError::new(format!("unknown function {name:?}")))?;
    (info.implementation)(&Args {
        name: info.name,
        exprs: args,
        scope,
    })
    // Every call's result, so that no value grows past the bounds inside one expression
    // either (`replace(replace(...))` squares a string's length at each level).
    .and_then(|value| bounds::check(&value).map(|()| value))
    .map_err(|e| {
        if e.message.starts_with(info.name) || e.message.contains(" in ") {
            e
        } else {
            ExprError::new(format!("{}: {}", info.name, e.message))
        }
    })
}

/// The arguments of one call, evaluated on demand.
pub(super) struct Args<'a> {
    pub name: &'static str,
    exprs: &'a [Expr],
    pub scope: &'a dyn Scope,
}

impl Args<'_> {
    pub fn len(&self) -> usize {
        self.exprs.len()
    }

    pub fn value(&self, i: usize) -> Result<Value, ExprError> {
        match self.exprs.get(i) {
            Some(expr) => expr.evaluate(self.scope),
            None => Ok(Value::Null),
        }
    }

    pub fn values(&self) -> Result<Vec<Value>, ExprError> {
        (0..self.len()).map(|i| self.value(i)).collect()
    }

    pub fn optional(&self, i: usize) -> Result<Option<Value>, ExprError> {
        if i < self.len() {
            self.value(i).map(Some)
        } else {
            Ok(None)
        }
    }

    fn wrong(&self, i: usize, wanted: &str, got: &Value) -> ExprError {
        ExprError::new(format!(
            "{} expects {wanted} as argument {}, got {}",
            self.name,
            i + 1,
            describe(got)
        ))
    }

    pub fn string(&self, i: usize) -> Result<String, ExprError> {
        match self.value(i)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong(i, "a string", &other)),
        }
    }

    pub fn optional_string(&self, i: usize) -> Result<Option<String>, ExprError> {
        if i < self.len() {
            self.string(i).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn integer(&self, i: usize) -> Result<i64, ExprError> {
        match self.value(i)? {
            Value::Number(n) if n.is_i64() || n.is_u64() => n
                .as_i64()
                .ok_or_else(|| self.wrong(i, "an integer", &Value::Number(n))),
            // A whole float within 64 bits (2^63 itself is just past i64::MAX); `as` would
            // quietly saturate anything larger.
            Value::Number(n)
                if n.as_f64().is_some_and(|f| {
                    f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                }) =>
            {
                Ok(n.as_f64().unwrap_or_default() as i64)
            }
            other => Err(self.wrong(i, "an integer", &other)),
        }
    }

    pub fn number(&self, i: usize) -> Result<Num, ExprError> {
        let value = self.value(i)?;
        Num::from_value(&value, self.name).map_err(|_| self.wrong(i, "a number", &value))
    }

    pub fn bool(&self, i: usize) -> Result<bool, ExprError> {
        match self.value(i)? {
            Value::Bool(b) => Ok(b),
            other => Err(self.wrong(i, "a boolean", &other)),
        }
    }

    pub fn array(&self, i: usize) -> Result<Vec<Value>, ExprError> {
        match self.value(i)? {
            Value::Array(a) => Ok(a),
            other => Err(self.wrong(i, "an array", &other)),
        }
    }

    pub fn object(&self, i: usize) -> Result<serde_json::Map<String, Value>, ExprError> {
        match self.value(i)? {
            Value::Object(o) => Ok(o),
            other => Err(self.wrong(i, "an object", &other)),
        }
    }

    pub fn error(&self, message: impl std::fmt::Display) -> ExprError {
        ExprError::new(format!("{} {message}", self.name))
    }
}
