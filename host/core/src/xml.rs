//! XML values, as Logic Apps carries them in JSON, and the conversions behind the expression
//! language's `xml()`, `xpath()` and `json()` of XML.
//!
//! An XML value is the text of a document wrapped the way Logic Apps wraps content that is not
//! JSON: `{"$content-type": "application/xml;charset=utf-8", "$content": "<base64 of the
//! UTF-8 text>"}`. So it survives the run history and the connector boundary as JSON, and
//! `string()`, `base64()` and interpolation give its text back.
//!
//! Documents come from outside (HTTP bodies, trigger bodies), so parsing is bounded: roxmltree
//! parses without recursion and refuses a DTD (so no entity can expand), and a document that
//! nests elements deeper than [`MAX_DEPTH`] is refused before anything walks it recursively
//! (its JSON form could not be deeper than a value may be anyway).

mod from_json;
mod to_json;
mod xpath;

pub use from_json::from_json;
pub use to_json::to_json;
pub use xpath::{MAX_XPATH_LENGTH, MAX_XPATH_NESTING, evaluate as xpath};

use serde_json::Value;

/// The content type of the XML values cordon makes.
pub const CONTENT_TYPE: &str = "application/xml;charset=utf-8";

/// How deep elements may nest in a document: as deep as a value may nest
/// ([`crate::expr::MAX_VALUE_DEPTH`]), since each element becomes an object in `json()`.
pub const MAX_DEPTH: usize = crate::expr::MAX_VALUE_DEPTH;

/// Why some text or value is not the XML asked for, said for the person who wrote the workflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XmlError(pub String);

impl XmlError {
    fn new(message: impl Into<String>) -> Self {
        XmlError(message.into())
    }
}

/// The XML value holding `text` (which the caller has checked is a well-formed document).
pub fn value_of(text: &str) -> Value {
    crate::content::value(CONTENT_TYPE, text.as_bytes())
}

/// The text of an XML value: content whose type names XML (`application/xml`, `text/xml`,
/// `application/soap+xml`, ...) and whose bytes are UTF-8. `None` for anything else.
pub fn text_of(value: &Value) -> Option<String> {
    let content_type = value.get("$content-type")?.as_str()?;
    if !is_xml_type(content_type) {
        return None;
    }
    String::from_utf8(crate::content::bytes(value)?).ok()
}

/// Whether a media type (parameters allowed) is an XML one.
pub fn is_xml_type(content_type: &str) -> bool {
    let essence = crate::content::essence(content_type);
    essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml")
}

/// Parses a document, refusing what cordon does not take: text that is not well-formed, a
/// DTD, and elements nested deeper than [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<roxmltree::Document<'_>, XmlError> {
    let document = roxmltree::Document::parse(text).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::new(
            "got XML with a DOCTYPE declaration, which cordon refuses (as Logic Apps does) so \
             that no entity can expand; remove the DOCTYPE",
        ),
        other => XmlError::new(format!("got text that is not well-formed XML: {other}")),
    })?;
    // Nodes come in document order, each after its parent: a node's depth is its parent's + 1.
    let mut depths = vec![0usize; document.descendants().count() + 1];
    for node in document.root().descendants() {
        // A processing instruction's target may not hold a ':' (Namespaces in XML); roxmltree
        // takes one, which no conversion could give back.
        if let Some(pi) = node.pi()
            && pi.target.contains(':')
        {
            let at = document.text_pos_at(node.range().start);
            return Err(XmlError::new(format!(
                "got text that is not well-formed XML: the processing instruction {:?} (at \
                 {at}) has a ':' in its target",
                pi.target
            )));
        }
        if !node.is_element() {
            continue;
        }
        let parent_depth = node.parent().map_or(0, |parent| depths[parent.id().get_usize()]);
        let depth = parent_depth + 1;
        if depth > MAX_DEPTH {
            let at = document.text_pos_at(node.range().start);
            return Err(XmlError::new(format!(
                "got XML whose elements nest more than {MAX_DEPTH} deep (at {at}), deeper \
                 than cordon takes"
            )));
        }
        depths[node.id().get_usize()] = depth;
        // roxmltree takes a name with an empty prefix (`<:r>`), which is not namespace-well-
        // formed and which no conversion could give back.
        let names = std::iter::once(written_name(text, &node))
            .chain(node.attributes().map(|attribute| &text[attribute.range_qname()]));
        for name in names {
            if name.starts_with(':') {
                let at = document.text_pos_at(node.range().start);
                return Err(XmlError::new(format!(
                    "got text that is not well-formed XML: the name {name:?} (at {at}) has an \
                     empty prefix; write it without the ':' or with a declared prefix"
                )));
            }
        }
    }
    Ok(document)
}

/// The qualified name an element or attribute was written with (`soap:Body`, `id`), read from
/// the document's text: roxmltree resolves prefixes to namespaces and keeps only the latter.
fn written_name<'a>(text: &'a str, node: &roxmltree::Node<'_, '_>) -> &'a str {
    let start = node.range().start + 1;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The namespace declarations an element makes itself, as (prefix, URI): roxmltree lists every
/// namespace in scope, inherited ones included.
fn declared_here<'a>(node: &roxmltree::Node<'a, '_>) -> Vec<(Option<&'a str>, &'a str)> {
    let inherited: Vec<(Option<&str>, &str)> = node
        .parent_element()
        .map(|parent| parent.namespaces().map(|ns| (ns.name(), ns.uri())).collect())
        .unwrap_or_default();
    node.namespaces()
        .map(|ns| (ns.name(), ns.uri()))
        .filter(|binding| !inherited.contains(binding))
        .collect()
}

#[cfg(test)]
mod tests;
