//! `json-transform`: reshapes JSON. It asks for no hosts and no secrets, so it can run with
//! an empty grant: the safest kind of connector.

use std::collections::BTreeMap;

use cordon_sdk::{Connector, Context, Error};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

fn connector() -> Connector {
    Connector::new("json-transform", env!("CARGO_PKG_VERSION"))
        .display_name("JSON transform")
        .description("Reshape JSON without network access: echo, pick fields, parse CSV, sum by group")
        .action("echo", "Return the input unchanged", echo)
        .action(
            "pick",
            "Keep only the named fields of an object or of every object in an array",
            pick,
        )
        .action(
            "parse_csv",
            "Parse CSV text with a header row into an array of objects",
            parse_csv,
        )
        .action("sum_by", "Group objects by one field and sum another", sum_by)
}

cordon_sdk::export_connector!(connector);

fn echo(_: &Context, input: Value) -> Result<Value, Error> {
    Ok(input)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PickInput {
    /// An object, or an array of objects.
    value: Value,
    /// The fields to keep.
    fields: Vec<String>,
}

fn pick(_: &Context, input: PickInput) -> Result<Value, Error> {
    let keep = |object: &Map<String, Value>| -> Value {
        Value::Object(
            input
                .fields
                .iter()
                .filter_map(|f| object.get(f).map(|v| (f.clone(), v.clone())))
                .collect(),
        )
    };
    match &input.value {
        Value::Object(object) => Ok(keep(object)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(object) => Ok(keep(object)),
                other => Err(Error::invalid_input(format!(
                    "value[{i}] is {}, expected an object",
                    kind(other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Err(Error::invalid_input(format!(
            "value is {}, expected an object or an array of objects",
            kind(other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ParseCsvInput {
    /// CSV text whose first line names the columns.
    text: String,
    /// The field separator; `,` if not given.
    #[serde(default)]
    delimiter: Option<char>,
    /// Turn cells that look like numbers into JSON numbers (default true).
    #[serde(default = "yes")]
    infer_numbers: bool,
}

fn yes() -> bool {
    true
}

fn parse_csv(_: &Context, input: ParseCsvInput) -> Result<Vec<Map<String, Value>>, Error> {
    let delimiter = input.delimiter.unwrap_or(',');
    let mut lines = input.text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = match lines.next() {
        Some(line) => split_csv_line(line, delimiter)?,
        None => return Ok(Vec::new()),
    };
    lines
        .enumerate()
        .map(|(i, line)| {
            let cells = split_csv_line(line, delimiter)?;
            if cells.len() != header.len() {
                return Err(Error::invalid_input(format!(
                    "line {} has {} fields but the header has {}",
                    i + 2,
                    cells.len(),
                    header.len()
                )));
            }
            Ok(header
                .iter()
                .cloned()
                .zip(cells.into_iter().map(|c| cell_value(c, input.infer_numbers)))
                .collect())
        })
        .collect()
}

fn cell_value(cell: String, infer_numbers: bool) -> Value {
    if infer_numbers {
        if let Ok(n) = cell.trim().parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(f) = cell.trim().parse::<f64>()
            && f.is_finite()
        {
            return Value::from(f);
        }
    }
    Value::String(cell)
}

/// Splits one line, honouring double quotes (`""` inside quotes is a literal quote).
fn split_csv_line(line: &str, delimiter: char) -> Result<Vec<String>, Error> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => cells.push(std::mem::take(&mut cell)),
            c => cell.push(c),
        }
    }
    if quoted {
        return Err(Error::invalid_input(format!(
            "unterminated quote in line {line:?}"
        )));
    }
    cells.push(cell);
    Ok(cells)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SumByInput {
    items: Vec<Map<String, Value>>,
    /// The field whose value names the group.
    group_by: String,
    /// The numeric field to add up.
    sum: String,
}

#[derive(Serialize, JsonSchema)]
struct Group {
    key: Value,
    count: u64,
    total: f64,
}

fn sum_by(_: &Context, input: SumByInput) -> Result<Vec<Group>, Error> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (i, item) in input.items.iter().enumerate() {
        let key = item.get(&input.group_by).cloned().unwrap_or(Value::Null);
        let amount = match item.get(&input.sum) {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| {
                Error::invalid_input(format!("items[{i}].{} is {s:?}, not a number", input.sum))
            })?,
            None | Some(Value::Null) => 0.0,
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "items[{i}].{} is {}, not a number",
                    input.sum,
                    kind(other)
                )));
            }
        };
        let group = groups.entry(key.to_string()).or_insert(Group {
            key,
            count: 0,
            total: 0.0,
        });
        group.count += 1;
        group.total += amount;
    }
    Ok(groups.into_values().collect())
}
