//! The text of Logic Apps' Table action ("Create CSV table", "Create HTML table"): an array
//! made into a CSV or an HTML table.
//!
//! ```json
//! "Create_CSV_table": {
//!   "type": "Table",
//!   "inputs": {"format": "CSV", "from": "@body('Get_orders')",
//!              "columns": [{"header": "Order", "value": "@item()?['id']"}]}
//! }
//! ```
//!
//! Without `columns`, the columns are the objects' property names, in the order they first
//! appear over the whole array (an item without one of them leaves its cell empty), within an
//! object in the order its properties were written, as in Logic Apps. With
//! `columns`, each column's cell is its `value` evaluated per item (the engine does that);
//! columns with the same header are one column, as in Logic Apps, whose cell is the last of
//! their values that is not null. When every header is empty there is no header row (the
//! documented way to get a table of values only). Cells are the values' string forms, as
//! interpolation writes them (`null` empty, `True`/`False`, objects as compact JSON).
//!
//! CSV follows RFC 4180: rows end with CRLF (the last one too), and a cell with a comma, a
//! quote or a line break is quoted, its quotes doubled. HTML is one `<table>` with a
//! `<thead>` and a `<tbody>`, every header and cell escaped (`& < > " '`), so a value cannot
//! add markup. An empty array makes a table with its header row only (CSV) or an empty body
//! (HTML).

use serde_json::Value;

use crate::expr::{self, ExprError};

/// What the table is written as (`inputs.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Html,
}

impl TableFormat {
    /// Reads `inputs.format`: `CSV` or `HTML`, in any case.
    pub fn parse(format: Option<&Value>) -> Result<TableFormat, String> {
        match format.and_then(Value::as_str) {
            Some(text) if text.eq_ignore_ascii_case("csv") => Ok(TableFormat::Csv),
            Some(text) if text.eq_ignore_ascii_case("html") => Ok(TableFormat::Html),
            _ => Err(format!(
                "inputs.format must be \"CSV\" or \"HTML\", got {}",
                format.map_or_else(|| "nothing".to_owned(), expr::describe_value)
            )),
        }
    }
}

/// Checks `inputs.columns` as written: absent, or an array of `{"header": string, "value": …}`.
/// Returns the headers in order.
pub fn column_headers(columns: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    let columns = match columns {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(columns)) => columns,
        Some(other) => {
            return Err(format!(
                "inputs.columns must be an array of {{\"header\", \"value\"}}, got {}",
                expr::describe_value(other)
            ));
        }
    };
    columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let header = column.get("header").map_or(Some(""), Value::as_str);
            match (header, column.get("value")) {
                (Some(header), Some(_)) => Ok(header.to_owned()),
                _ => Err(format!(
                    "inputs.columns[{index}] must be {{\"header\": a string, \"value\": the cell, usually with item()}}"
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The columns of an array of objects: every property name, in the order of first appearance.
pub fn automatic_headers(items: &[Value]) -> Result<Vec<String>, String> {
    let mut headers: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(object) = item else {
            return Err(format!(
                "item {index} of inputs.from is {}, not an object: without inputs.columns a table's \
                 columns are its objects' properties; give inputs.columns for other values",
                expr::describe_value(item)
            ));
        };
        for key in object.keys() {
            if !headers.iter().any(|known| known == key) {
                headers.push(key.clone());
            }
        }
    }
    Ok(headers)
}

/// The rows of an automatic table: each object's value under each header (null if absent).
pub fn automatic_rows(items: &[Value], headers: &[String]) -> Vec<Vec<Value>> {
    items
        .iter()
        .map(|item| {
            headers
                .iter()
                .map(|header| item.get(header).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect()
}

/// Merges columns that share a header into one (the last non-null value of a row wins), as
/// Logic Apps shows such pairs in one column. Empty headers are never merged: they are how a
/// table of values only is asked for.
pub fn merge_same_headers(headers: Vec<String>, rows: Vec<Vec<Value>>) -> (Vec<String>, Vec<Vec<Value>>) {
    let mut merged: Vec<String> = Vec::new();
    let mut target = Vec::with_capacity(headers.len());
    for header in headers {
        let same = (!header.is_empty())
            .then(|| merged.iter().position(|known| *known == header))
            .flatten();
        match same {
            Some(position) => target.push(position),
            None => {
                target.push(merged.len());
                merged.push(header);
            }
        }
    }
    if merged.len() == target.len() {
        return (merged, rows);
    }
    let rows = rows
        .into_iter()
        .map(|row| {
            let mut cells = vec![Value::Null; merged.len()];
            for (value, &column) in row.into_iter().zip(&target) {
                if !value.is_null() {
                    cells[column] = value;
                }
            }
            cells
        })
        .collect();
    (merged, rows)
}

/// The table's text. Fails only if it would be larger than a value may be.
pub fn render(format: TableFormat, headers: &[String], rows: &[Vec<Value>]) -> Result<String, ExprError> {
    let with_header_row = headers.iter().any(|h| !h.is_empty());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(expr::to_text).collect())
        .collect();
    let mut size = headers.iter().map(String::len).sum::<usize>();
    for row in &cells {
        size = row.iter().map(String::len).fold(size, usize::saturating_add);
    }
    // Quotes, separators and tags at most double a CSV cell and add a fixed amount per cell.
    expr::check_size(size.saturating_mul(2))?;
    let mut out = String::with_capacity(size + 16 * (cells.len() + 1) * headers.len().max(1));
    match format {
        TableFormat::Csv => {
            if with_header_row {
                csv_row(&mut out, headers.iter().map(String::as_str));
            }
            for row in &cells {
                csv_row(&mut out, row.iter().map(String::as_str));
            }
        }
        TableFormat::Html => {
            out.push_str("<table>");
            if with_header_row {
                out.push_str("<thead>");
                html_row(&mut out, "th", headers.iter().map(String::as_str));
                out.push_str("</thead>");
            }
            out.push_str("<tbody>");
            for row in &cells {
                html_row(&mut out, "td", row.iter().map(String::as_str));
            }
            out.push_str("</tbody></table>");
        }
    }
    Ok(out)
}

fn csv_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (index, cell) in cells.enumerate() {
        if index > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push_str("\r\n");
}

fn html_row<'a>(out: &mut String, tag: &str, cells: impl Iterator<Item = &'a str>) {
    out.push_str("<tr>");
    for cell in cells {
        out.push('<');
        out.push_str(tag);
        out.push('>');
        for c in cell.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }
    out.push_str("</tr>");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn automatic(format: TableFormat, items: Value) -> String {
        let items = items.as_array().cloned().unwrap_or_default();
        let headers = automatic_headers(&items).expect("objects");
        render(format, &headers, &automatic_rows(&items, &headers)).expect("small")
    }

    #[test]
    fn automatic_tables_as_the_logic_apps_reference_shows_them() {
        let items = json!([{"ID": 0, "Product_Name": "Apples"}, {"ID": 1, "Product_Name": "Oranges"}]);
        assert_eq!(
            automatic(TableFormat::Csv, items.clone()),
            "ID,Product_Name\r\n0,Apples\r\n1,Oranges\r\n"
        );
        assert_eq!(
            automatic(TableFormat::Html, items),
            "<table><thead><tr><th>ID</th><th>Product_Name</th></tr></thead><tbody>\
             <tr><td>0</td><td>Apples</td></tr><tr><td>1</td><td>Oranges</td></tr></tbody></table>"
        );
    }

    #[test]
    fn cells_and_headers() {
        // (items, CSV) — one row each unless the items say otherwise.
        let cases = [
            // Properties in the order they first appear over all items; a missing one is empty.
            (json!([{"a": 1}, {"b": 2, "a": 3}]), "a,b\r\n1,\r\n3,2\r\n"),
            // Quoting: commas, quotes and line breaks.
            (json!([{"t": "x,y"}]), "t\r\n\"x,y\"\r\n"),
            (json!([{"t": "say \"hi\""}]), "t\r\n\"say \"\"hi\"\"\"\r\n"),
            (json!([{"t": "two\nlines"}]), "t\r\n\"two\nlines\"\r\n"),
            (json!([{"a,b": 1}]), "\"a,b\"\r\n1\r\n"),
            // String forms: null empty, booleans as Logic Apps writes them, objects as JSON.
            (
                json!([{"b": true, "n": null, "o": {"k": [1, 2]}}]),
                "b,n,o\r\nTrue,,\"{\"\"k\"\":[1,2]}\"\r\n",
            ),
            (json!([{"x": 1.5, "y": -2}]), "x,y\r\n1.5,-2\r\n"),
            // No items: no columns, no rows.
            (json!([]), ""),
        ];
        for (items, csv) in cases {
            assert_eq!(automatic(TableFormat::Csv, items.clone()), csv, "{items}");
        }
    }

    #[test]
    fn html_escapes_every_header_and_cell() {
        assert_eq!(
            automatic(TableFormat::Html, json!([{"<b>": "a & 'b' \"c\" <script>"}])),
            "<table><thead><tr><th>&lt;b&gt;</th></tr></thead><tbody><tr><td>a &amp; &#39;b&#39; \
             &quot;c&quot; &lt;script&gt;</td></tr></tbody></table>"
        );
    }

    #[test]
    fn empty_headers_leave_out_the_header_row() {
        let headers = vec![String::new(), String::new()];
        let rows = vec![vec![json!("Apples"), json!(1)], vec![json!("Oranges"), json!(2)]];
        assert_eq!(
            render(TableFormat::Csv, &headers, &rows).unwrap(),
            "Apples,1\r\nOranges,2\r\n"
        );
        assert_eq!(
            render(TableFormat::Html, &headers, &rows).unwrap(),
            "<table><tbody><tr><td>Apples</td><td>1</td></tr><tr><td>Oranges</td><td>2</td></tr></tbody></table>"
        );
    }

    #[test]
    fn columns_with_the_same_header_are_one_column() {
        let headers = vec!["id".to_owned(), "name".to_owned(), "id".to_owned()];
        let rows = vec![
            vec![json!(1), json!("a"), json!(null)],
            vec![json!(2), json!("b"), json!(9)],
        ];
        let (headers, rows) = merge_same_headers(headers, rows);
        assert_eq!(
            render(TableFormat::Csv, &headers, &rows).unwrap(),
            "id,name\r\n1,a\r\n9,b\r\n"
        );
        // Empty headers stay apart.
        let (headers, rows) =
            merge_same_headers(vec![String::new(), String::new()], vec![vec![json!(1), json!(2)]]);
        assert_eq!(render(TableFormat::Csv, &headers, &rows).unwrap(), "1,2\r\n");
    }

    #[test]
    fn what_is_refused_says_why() {
        let cases: [(Result<(), String>, &str); 6] = [
            (
                TableFormat::parse(Some(&json!("xlsx"))).map(drop),
                "\"CSV\" or \"HTML\"",
            ),
            (TableFormat::parse(None).map(drop), "got nothing"),
            (
                automatic_headers(&[json!({"a": 1}), json!(2)]).map(drop),
                "item 1 of inputs.from is integer 2",
            ),
            (
                column_headers(Some(&json!({"header": "a"}))).map(drop),
                "must be an array",
            ),
            (
                column_headers(Some(&json!([{"header": "a"}]))).map(drop),
                "inputs.columns[0]",
            ),
            (
                column_headers(Some(&json!([{"header": 1, "value": 2}]))).map(drop),
                "inputs.columns[0]",
            ),
        ];
        for (result, expected) in cases {
            let message = result.expect_err(expected);
            assert!(message.contains(expected), "{message:?} should say {expected:?}");
        }
        assert_eq!(TableFormat::parse(Some(&json!("html"))), Ok(TableFormat::Html));
        assert_eq!(
            column_headers(Some(&json!([{"value": "@item()"}]))),
            Ok(Some(vec![String::new()]))
        );
    }
}
