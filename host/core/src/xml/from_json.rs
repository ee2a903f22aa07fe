//! JSON to XML: `xml()` of a JSON object, by the conventions Logic Apps takes from Json.NET's
//! `DeserializeXmlNode`:
//!
//! - the object has one property, the root element, whose value is not an array; beside it,
//!   `?xml` may give the declaration (`{"@version": "1.0", "@encoding": "utf-8"}`), and
//!   `#comment` and `?target` what comes before the root;
//! - in an element's object, `@name` properties are attributes (`@xmlns` and `@xmlns:p`
//!   declare namespaces), `#text` is text, `#cdata-section` a CDATA section, `#comment` a
//!   comment, `?target` a processing instruction, and every other property a child element; an
//!   array makes one element per item;
//! - `null` and `{}` make an empty element; a string, number or boolean (`true`, `false`) makes
//!   the element's text.
//!
//! Child elements follow the object's key order: the order the properties were written in, as
//! in Logic Apps.

use serde_json::{Map, Value};

use super::XmlError;

/// The XML text of `object`, checked to be a well-formed document.
pub fn from_json(object: &Map<String, Value>) -> Result<String, XmlError> {
    let mut root = None;
    for key in object.keys() {
        if key == "?xml" || is_prolog(key) {
            continue;
        }
        if key.starts_with(['@', '#', '?']) {
            return Err(XmlError::new(format!(
                "cannot make XML of an object whose top level has {key:?}: its one property \
                 names the root element, as in {{\"root\": {{\"{key}\": ...}}}}"
            )));
        }
        if let Some(first) = root.replace(key) {
            return Err(XmlError::new(format!(
                "cannot make XML of an object with more than one property at its top level \
                 ({first:?} and {key:?}): a document has one root element; wrap them in one, as \
                 in {{\"root\": {{...}}}}"
            )));
        }
    }
    let Some(name) = root else {
        return Err(XmlError::new(
            "cannot make XML of an object with no property: its one property names the root \
             element, as in {\"root\": {...}}",
        ));
    };
    let value = &object[name];
    if value.is_array() {
        return Err(XmlError::new(format!(
            "cannot make XML of {name:?}: the root element's value is an array, and a document \
             has one root element; wrap the items in one, as in {{\"root\": {{\"{name}\": [...]}}}}"
        )));
    }
    let mut out = String::new();
    if let Some(declaration) = object.get("?xml") {
        write_declaration(declaration, &mut out)?;
    }
    // Comments and processing instructions beside the root element (`json()` of a document
    // with a stylesheet instruction gives one) go before it.
    for (key, value) in object.iter().filter(|(key, _)| is_prolog(key)) {
        write_content(key, value, &mut out)?;
    }
    write_element(name, value, &mut out)?;
    // What the names and prefixes make is checked by parsing it: an undeclared prefix, say.
    super::parse(&out).map_err(|e| {
        XmlError::new(format!(
            "the object makes XML that is not well-formed ({e}); a prefixed name needs its \
             prefix declared by an \"@xmlns:prefix\" property"
        ))
    })?;
    Ok(out)
}

/// A top-level property that is not the root element: a comment or a processing instruction.
fn is_prolog(key: &str) -> bool {
    key == "#comment" || (key.starts_with('?') && key != "?xml")
}

fn write_declaration(declaration: &Value, out: &mut String) -> Result<(), XmlError> {
    let Value::Object(fields) = declaration else {
        return Err(XmlError::new(
            "\"?xml\" must be an object such as {\"@version\": \"1.0\", \"@encoding\": \"utf-8\"}",
        ));
    };
    out.push_str("<?xml");
    // In the order XML requires, whatever the object's order.
    for field in ["version", "encoding", "standalone"] {
        if let Some(value) = fields.get(&format!("@{field}")) {
            out.push_str(&format!(" {field}=\""));
            escape(&scalar_text(value, "\"?xml\"")?, true, out)?;
            out.push('"');
        }
    }
    if !fields.contains_key("@version") {
        return Err(XmlError::new(
            "\"?xml\" needs \"@version\", as in {\"@version\": \"1.0\"}",
        ));
    }
    out.push_str("?>");
    Ok(())
}

fn write_element(name: &str, value: &Value, out: &mut String) -> Result<(), XmlError> {
    check_name(name)?;
    match value {
        Value::Array(items) => {
            for item in items {
                if item.is_array() {
                    return Err(XmlError::new(format!(
                        "cannot make XML of {name:?}: it holds an array inside an array, and \
                         only one array level becomes repeated elements"
                    )));
                }
                write_element(name, item, out)?;
            }
        }
        Value::Object(fields) => {
            out.push('<');
            out.push_str(name);
            // Namespace declarations first, as people write them.
            let is_declaration = |key: &str| key == "@xmlns" || key.starts_with("@xmlns:");
            let declarations = fields.iter().filter(|(key, _)| is_declaration(key));
            let attributes = fields.iter().filter(|(key, _)| !is_declaration(key));
            for (key, value) in declarations.chain(attributes) {
                if let Some(attribute) = key.strip_prefix('@') {
                    check_name(attribute)?;
                    out.push(' ');
                    out.push_str(attribute);
                    out.push_str("=\"");
                    escape(&scalar_text(value, key)?, true, out)?;
                    out.push('"');
                }
            }
            let mut content = fields.iter().filter(|(key, _)| !key.starts_with('@')).peekable();
            if content.peek().is_none() {
                out.push_str("/>");
                return Ok(());
            }
            out.push('>');
            for (key, value) in content {
                write_content(key, value, out)?;
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        scalar => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            escape(&scalar_text(scalar, name)?, false, out)?;
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
    Ok(())
}

/// One non-attribute property of an element's object.
fn write_content(key: &str, value: &Value, out: &mut String) -> Result<(), XmlError> {
    match key {
        "#text" | "#whitespace" | "#significant-whitespace" => {
            for text in texts(value, key)? {
                escape(&text, false, out)?;
            }
        }
        "#cdata-section" => {
            for text in texts(value, key)? {
                check_chars(&text)?;
                // "]]>" would end the section: close it between "]]" and ">" and reopen.
                out.push_str("<![CDATA[");
                out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
                out.push_str("]]>");
            }
        }
        "#comment" => {
            for text in texts(value, key)? {
                check_chars(&text)?;
                if text.contains("--") || text.ends_with('-') {
                    return Err(XmlError::new(format!(
                        "cannot make an XML comment of {text:?}: a comment cannot hold \"--\" or \
                         end with \"-\""
                    )));
                }
                out.push_str("<!--");
                out.push_str(&text);
                out.push_str("-->");
            }
        }
        _ if key.starts_with('?') => {
            let target = &key[1..];
            check_name(target)?;
            for text in texts(value, key)? {
                check_chars(&text)?;
                if text.contains("?>") {
                    return Err(XmlError::new(format!(
                        "cannot make the processing instruction {key:?}: its text holds \"?>\""
                    )));
                }
                out.push_str("<?");
                out.push_str(target);
                if !text.is_empty() {
                    out.push(' ');
                    out.push_str(&text);
                }
                out.push_str("?>");
            }
        }
        _ if key.starts_with('#') => {
            return Err(XmlError::new(format!(
                "cannot make XML of the property {key:?}: the '#' properties are #text, \
                 #cdata-section and #comment"
            )));
        }
        _ => write_element(key, value, out)?,
    }
    Ok(())
}

/// The texts of a `#text`-like property: one scalar, or an array of them.
fn texts(value: &Value, key: &str) -> Result<Vec<String>, XmlError> {
    match value {
        Value::Array(items) => items.iter().map(|item| scalar_text(item, key)).collect(),
        other => Ok(vec![scalar_text(other, key)?]),
    }
}

/// A scalar as XML text: booleans as XML writes them (`true`, not the `True` of `string()`).
fn scalar_text(value: &Value, key: &str) -> Result<String, XmlError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(_) | Value::Object(_) => Err(XmlError::new(format!(
            "cannot make XML text of {key:?}: its value is {}, and text takes a string, number \
             or boolean",
            if value.is_array() { "an array" } else { "an object" }
        ))),
    }
}

/// An XML name (XML 1.0's `Name`, without a leading `:`): a letter or `_` first, then also
/// digits, `.`, `-`, and `:` between a prefix and a local name.
fn check_name(name: &str) -> Result<(), XmlError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c != ':' && is_name_start(c));
    if starts_well && chars.all(is_name_char) {
        Ok(())
    } else {
        Err(XmlError::new(format!(
            "cannot make an XML name of {name:?}: a name starts with a letter or '_' and holds \
             only letters, digits, '.', '-', '_' (and ':' after a declared prefix); rename the \
             property"
        )))
    }
}

/// XML 1.0's `NameStartChar`.
fn is_name_start(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0's `NameChar`.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Characters XML 1.0 cannot hold at all, not even escaped: most control characters.
fn check_chars(text: &str) -> Result<(), XmlError> {
    match text
        .chars()
        .find(|&c| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}')
    {
        Some(c) => Err(XmlError::new(format!(
            "cannot put the character U+{:04X} into XML: XML 1.0 cannot hold it; encode the \
             value first (base64(), say)",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

/// Appends `text` escaped for element content or, with `attribute`, for a double-quoted
/// attribute value (where tabs and line breaks are kept as character references, since a
/// parser would turn them into spaces).
fn escape(text: &str, attribute: bool, out: &mut String) -> Result<(), XmlError> {
    check_chars(text)?;
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    Ok(())
}
