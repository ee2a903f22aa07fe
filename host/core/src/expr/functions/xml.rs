//! XML: `xml()` and `xpath()`. What XML values are and how they convert is `crate::xml`.

use serde_json::Value;

use super::super::value::describe;
use super::{Args, ExprError, FunctionInfo, f};
use crate::xml::{self, XmlError};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[f("xml", 1, 1, xml), f("xpath", 2, 2, xpath)];

/// Names the function, as every expression error does.
fn failed(args: &Args<'_>, e: XmlError) -> ExprError {
    ExprError::new(format!("{}: {e}", args.name))
}

/// `xml(value)`: an XML value from XML text (a string, or content such as an HTTP body), or
/// from a JSON object (or a string holding one) by the conventions in `crate::xml::from_json`.
fn xml(args: &Args<'_>) -> Result<Value, ExprError> {
    let value = args.value(0)?;
    if xml::text_of(&value).is_some() {
        return Ok(value);
    }
    if let Some(text) = document_text(&value) {
        xml::parse(&text).map_err(|e| failed(args, e))?;
        return Ok(xml::value_of(&text));
    }
    let object = match value {
        Value::Object(object) if object.contains_key("$content-type") => {
            return Err(failed(
                args,
                XmlError(format!(
                    "got content of type {} whose bytes are not UTF-8 text; cordon reads XML \
                     in UTF-8",
                    describe(&object["$content-type"])
                )),
            ));
        }
        Value::Object(object) => object,
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(object)) => object,
            _ => {
                return Err(failed(
                    args,
                    XmlError(format!(
                        "expects XML text or a JSON object, got a string that is neither: {}",
                        describe(&Value::String(s))
                    )),
                ));
            }
        },
        other => {
            return Err(failed(
                args,
                XmlError(format!(
                    "expects XML text or a JSON object with one property (the root element), \
                     got {}",
                    describe(&other)
                )),
            ));
        }
    };
    let text = xml::from_json(&object).map_err(|e| failed(args, e))?;
    Ok(xml::value_of(&text))
}

/// `xpath(xml, expression)`.
fn xpath(args: &Args<'_>) -> Result<Value, ExprError> {
    let value = args.value(0)?;
    let Some(text) = document_text(&value) else {
        return Err(failed(
            args,
            XmlError(format!(
                "expects XML as argument 1 (an XML value, as xml() makes, or XML text), got {}",
                describe(&value)
            )),
        ));
    };
    let expression = args.string(1)?;
    xml::xpath(&text, &expression).map_err(|e| failed(args, e))
}

/// The text of a value that holds a document: an XML value, other content (an HTTP body
/// declared `application/octet-stream`, say) whose bytes are UTF-8, or a string that starts
/// like markup. Whether it is well-formed is for the parser to say.
fn document_text(value: &Value) -> Option<String> {
    if let Some(text) = xml::text_of(value) {
        return Some(text);
    }
    match value {
        Value::String(s) if s.trim_start_matches('\u{FEFF}').trim_start().starts_with('<') => Some(s.clone()),
        Value::Object(_) => {
            let (_, bytes) = crate::content::decode(value)?;
            String::from_utf8(bytes).ok()
        }
        _ => None,
    }
}
