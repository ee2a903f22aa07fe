//! XML to JSON: `json()` of an XML value, by the conventions Logic Apps takes from Json.NET's
//! `SerializeXmlNode`:
//!
//! - the document is an object: `?xml` holds the declaration's fields (`{"@version": "1.0"}`)
//!   and one property holds the root element;
//! - an element with nothing in it is `null`, one with only text is that text, and any other
//!   an object: `@name` for each attribute and namespace declaration, one property per child
//!   element name (an array when the name repeats, or when the child has Json.NET's
//!   `json:Array="true"`), `#text` for text beside elements, `#comment` and `?target`;
//! - text stays a string: XML does not say what is a number.
//!
//! Names keep the prefix they were written with (`soap:Body`). Whitespace between elements is
//! formatting and is dropped; an element holding only whitespace keeps it.

use serde_json::{Map, Value};

use super::{XmlError, declared_here, written_name};

/// Json.NET's namespace, whose `Array` attribute asks for an array even of one element.
const JSON_NET_NAMESPACE: &str = "http://james.newtonking.com/projects/json";

/// The JSON form of the document `text`.
pub fn to_json(text: &str) -> Result<Value, XmlError> {
    let document = super::parse(text)?;
    let mut object = Map::new();
    if let Some(declaration) = declaration(text) {
        object.insert("?xml".to_owned(), declaration);
    }
    add_children(text, document.root(), &mut object);
    Ok(Value::Object(object))
}

/// The fields of the XML declaration, if the text starts with one (roxmltree checks its form,
/// loosely, and does not keep it).
fn declaration(text: &str) -> Option<Value> {
    let rest = text.trim_start_matches('\u{FEFF}').strip_prefix("<?xml")?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let mut body = &rest[..rest.find("?>")?];
    let mut fields = Map::new();
    while let Some(eq) = body.find('=') {
        let name = body[..eq].trim();
        let after = body[eq + 1..].trim_start();
        // A quote is one byte, so the value starts right after it; anything else (roxmltree
        // is lenient) ends the reading rather than a slice in the middle of a character.
        let quote = after.chars().next().filter(|&c| c == '"' || c == '\'')?;
        let end = after[1..].find(quote)? + 1;
        // roxmltree is lenient here (it takes `versionon="0.0"`): keep what a declaration
        // may hold, and no declaration without its version.
        if matches!(name, "version" | "encoding" | "standalone") {
            fields.insert(format!("@{name}"), Value::String(after[1..end].to_owned()));
        }
        body = &after[end + 1..];
    }
    fields.contains_key("@version").then_some(Value::Object(fields))
}

fn element(text: &str, node: roxmltree::Node<'_, '_>) -> Value {
    let mut object = Map::new();
    for (prefix, uri) in declared_here(&node) {
        let name = prefix.map_or_else(|| "@xmlns".to_owned(), |p| format!("@xmlns:{p}"));
        object.insert(name, Value::String(uri.to_owned()));
    }
    for attribute in node.attributes() {
        if attribute.namespace() == Some(JSON_NET_NAMESPACE) && attribute.name() == "Array" {
            continue;
        }
        let name = &text[attribute.range_qname()];
        object.insert(format!("@{name}"), Value::String(attribute.value().to_owned()));
    }
    let only_text = node.children().all(|child| child.is_text());
    if object.is_empty() && only_text {
        let content: String = node.children().filter_map(|child| child.text()).collect();
        return if content.is_empty() {
            Value::Null
        } else {
            Value::String(content)
        };
    }
    add_children(text, node, &mut object);
    Value::Object(object)
}

/// Adds what `parent` holds (elements, text, comments, processing instructions) to `object`.
fn add_children(text: &str, parent: roxmltree::Node<'_, '_>, object: &mut Map<String, Value>) {
    // (name, values, whether an array is asked for), in the order first seen.
    let mut groups: Vec<(String, Vec<Value>, bool)> = Vec::new();
    let mut add =
        |name: String, value: Value, array: bool| match groups.iter_mut().find(|(seen, ..)| *seen == name) {
            Some((_, values, wants_array)) => {
                values.push(value);
                *wants_array |= array;
            }
            None => groups.push((name, vec![value], array)),
        };
    for child in parent.children() {
        match child.node_type() {
            roxmltree::NodeType::Element => {
                let array = child.attribute((JSON_NET_NAMESPACE, "Array")) == Some("true");
                add(written_name(text, &child).to_owned(), element(text, child), array);
            }
            roxmltree::NodeType::Text => {
                let content = child.text().unwrap_or_default();
                if !content.trim().is_empty() {
                    add("#text".to_owned(), Value::String(content.to_owned()), false);
                }
            }
            roxmltree::NodeType::Comment => {
                let content = child.text().unwrap_or_default();
                add("#comment".to_owned(), Value::String(content.to_owned()), false);
            }
            roxmltree::NodeType::PI => {
                // A target of `xml` in any case is reserved (the declaration's); roxmltree
                // takes `<?xml` not followed by a space as one, which would stand for the
                // declaration in the JSON.
                if let Some(pi) = child.pi().filter(|pi| !pi.target.eq_ignore_ascii_case("xml")) {
                    let value = Value::String(pi.value.unwrap_or_default().to_owned());
                    add(format!("?{}", pi.target), value, false);
                }
            }
            roxmltree::NodeType::Root => {}
        }
    }
    for (name, mut values, array) in groups {
        let value = if values.len() == 1 && !array {
            values.pop().unwrap_or_default()
        } else {
            Value::Array(values)
        };
        object.insert(name, value);
    }
}
