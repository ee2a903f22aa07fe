//! `xpath()`: an XPath 1.0 expression over a document (XPath 1.0 is what Logic Apps' .NET
//! runtime evaluates), with the document's root as the context node.
//!
//! Prefixes the document declares, anywhere in it, can be used in the expression. Unprefixed
//! names match elements in no namespace, as XPath 1.0 says: an element in a default namespace
//! is matched by `*[local-name()='name']` (Logic Apps' documentation shows the same).
//!
//! Results: a node-set is always an array, in document order, even of one node or none (Logic
//! Apps' documentation shows some single matches unwrapped; one shape for every node-set is
//! what a workflow can rely on, and `first()` or `[0]` takes one). An element in it is an XML
//! value of that element (with the namespace declarations it inherits and uses), the root the
//! whole document, an attribute, text, comment or processing instruction its text. A number is
//! a JSON number (an integer when whole), a string a string, a boolean a boolean.
//!
//! The evaluator (sxd-xpath) recurses over the expression, so its size is bounded before it is
//! parsed: [`MAX_XPATH_LENGTH`] characters and [`MAX_XPATH_NESTING`] levels of brackets or
//! signs. Prefixes are checked first too, since sxd-xpath panics on an undeclared one.

use std::collections::HashMap;

use serde_json::Value;
use sxd_document::QName;
use sxd_document::dom::{Document, Element};
use sxd_xpath::nodeset::Node;

use super::{XmlError, declared_here, written_name};

/// The longest XPath expression taken, in characters.
pub const MAX_XPATH_LENGTH: usize = 1024;

/// How deep brackets (`(`, `[`) may nest in an XPath expression, and how many signs (`-`) may
/// follow one another.
pub const MAX_XPATH_NESTING: usize = 32;

const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// What `xpath` matches in the document `text`, as JSON.
pub fn evaluate(text: &str, xpath: &str) -> Result<Value, XmlError> {
    check_size(xpath)?;
    let document = super::parse(text)?;
    // The evaluator is a library that recurses and asserts; the checks above keep it within
    // what it handles. Should one of its assertions still fire, the run gets an error, not a
    // lost worker.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        evaluate_parsed(text, &document, xpath)
    }))
    .unwrap_or_else(|_| {
        Err(XmlError::new(format!(
            "cannot evaluate the XPath {xpath:?}: the XPath library failed on it (a bug; \
             please report the expression)"
        )))
    })
}

fn evaluate_parsed(text: &str, document: &roxmltree::Document<'_>, xpath: &str) -> Result<Value, XmlError> {
    let package = sxd_document::Package::new();
    let dom = package.as_document();
    let mut context = sxd_xpath::Context::new();
    let elements = copy_tree(text, document, dom, &mut context);
    check_prefixes(xpath, &elements.prefixes)?;
    let compiled = sxd_xpath::Factory::new()
        .build(xpath)
        .map_err(|e| XmlError::new(format!("cannot parse the XPath {xpath:?}: {e}")))?
        .ok_or_else(|| XmlError::new("got an empty XPath expression"))?;
    let result = compiled
        .evaluate(&context, dom.root())
        .map_err(|e| XmlError::new(format!("cannot evaluate the XPath {xpath:?}: {e}")))?;
    match result {
        sxd_xpath::Value::Boolean(b) => Ok(Value::Bool(b)),
        sxd_xpath::Value::String(s) => Ok(Value::String(s)),
        sxd_xpath::Value::Number(n) => number(n, xpath),
        sxd_xpath::Value::Nodeset(nodes) => {
            let nodes = nodes.document_order();
            check_result_size(text, document, &elements.ids, &nodes, xpath)?;
            Ok(Value::Array(
                nodes
                    .into_iter()
                    .map(|node| node_value(text, document, &elements.ids, node))
                    .collect(),
            ))
        }
    }
}

/// Refuses a node-set whose copies would pass the bound on a value before they are made:
/// each element is copied with everything inside it, so `//*` over a deep document copies
/// its text once per level.
#[allow(clippy::mutable_key_type)] // See `node_value`.
fn check_result_size(
    text: &str,
    document: &roxmltree::Document<'_>,
    ids: &HashMap<Element<'_>, roxmltree::NodeId>,
    nodes: &[Node<'_>],
    xpath: &str,
) -> Result<(), XmlError> {
    let bytes = nodes.iter().fold(0usize, |total, node| {
        let size = match node {
            Node::Root(_) => text.len(),
            Node::Element(element) => ids
                .get(element)
                .and_then(|&id| document.get_node(id))
                .map_or(0, |source| source.range().len()),
            _ => 0,
        };
        total.saturating_add(size)
    });
    // The copies go out as base64: 4 bytes for every 3.
    if bytes / 3 * 4 > crate::expr::MAX_VALUE_BYTES {
        return Err(XmlError::new(format!(
            "the XPath {xpath:?} matches elements holding {} MiB of XML in all, more than a \
             value may hold ({} MiB); match fewer or smaller elements, or take their text",
            bytes >> 20,
            crate::expr::MAX_VALUE_BYTES >> 20
        )));
    }
    Ok(())
}

fn number(n: f64, xpath: &str) -> Result<Value, XmlError> {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        return Ok(Value::from(n as i64));
    }
    serde_json::Number::from_f64(n).map(Value::Number).ok_or_else(|| {
        XmlError::new(format!(
            "the XPath {xpath:?} gives {n}, a number JSON cannot hold (number() of text that is \
             not a number is NaN)"
        ))
    })
}

/// The JSON of one node of a node-set.
// sxd's nodes hash by their address in the document's arena, which never moves; the lint
// sees the interior mutability behind it, not what the hash reads.
#[allow(clippy::mutable_key_type)]
fn node_value(
    text: &str,
    document: &roxmltree::Document<'_>,
    ids: &HashMap<Element<'_>, roxmltree::NodeId>,
    node: Node<'_>,
) -> Value {
    match node {
        Node::Root(_) => super::value_of(text),
        Node::Element(element) => {
            match ids.get(&element).and_then(|&id| document.get_node(id)) {
                Some(source) => super::value_of(&outer_xml(text, source)),
                // Every element was copied from the document; there is nothing else it can be.
                None => Value::Null,
            }
        }
        Node::Attribute(attribute) => Value::String(attribute.value().to_owned()),
        Node::Text(t) => Value::String(t.text().to_owned()),
        Node::Comment(comment) => Value::String(comment.text().to_owned()),
        Node::ProcessingInstruction(pi) => Value::String(pi.value().unwrap_or_default().to_owned()),
        Node::Namespace(namespace) => Value::String(namespace.uri().to_owned()),
    }
}

/// An element as written in the document, with the namespace declarations it inherits and
/// its subtree uses added to its start tag, so that it is a document of its own.
fn outer_xml(text: &str, element: roxmltree::Node<'_, '_>) -> String {
    let here = declared_here(&element);
    let needed: Vec<(Option<&str>, &str)> = element
        .namespaces()
        .map(|ns| (ns.name(), ns.uri()))
        .filter(|binding| !here.contains(binding))
        .filter(|&(prefix, uri)| {
            element
                .descendants()
                .filter(|node| node.is_element())
                .any(|node| uses(text, &node, prefix, uri))
        })
        .collect();
    let written = &text[element.range()];
    let name_end = 1 + written_name(text, &element).len();
    let mut out = String::with_capacity(written.len() + 64 * needed.len());
    out.push_str(&written[..name_end]);
    for (prefix, uri) in needed {
        match prefix {
            Some(prefix) => out.push_str(&format!(" xmlns:{prefix}=\"")),
            None => out.push_str(" xmlns=\""),
        }
        for c in uri.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push_str(&written[name_end..]);
    out
}

/// Whether an element's name or one of its attributes' is `prefix` bound to `uri`.
fn uses(text: &str, element: &roxmltree::Node<'_, '_>, prefix: Option<&str>, uri: &str) -> bool {
    let prefix_of = |name: &str| name.split_once(':').map(|(p, _)| p.to_owned());
    let element_uses = element.tag_name().namespace() == Some(uri)
        && prefix_of(written_name(text, element)).as_deref() == prefix;
    element_uses
        || element.attributes().any(|attribute| {
            attribute.namespace() == Some(uri)
                && prefix_of(&text[attribute.range_qname()]).as_deref() == prefix
        })
}

/// The sxd copy's elements, and the prefixes the document declares.
struct Copied<'d> {
    ids: HashMap<Element<'d>, roxmltree::NodeId>,
    prefixes: HashMap<String, String>,
}

/// Copies roxmltree's tree into `dom`, in document order and without recursion, and declares
/// the document's prefixes to `context`.
fn copy_tree<'d>(
    text: &str,
    document: &roxmltree::Document<'_>,
    dom: Document<'d>,
    context: &mut sxd_xpath::Context<'d>,
) -> Copied<'d> {
    let mut copied = Copied {
        ids: HashMap::new(),
        prefixes: HashMap::from([("xml".to_owned(), XML_NAMESPACE.to_owned())]),
    };
    // The copy of each element, by roxmltree's node index.
    let mut copies: Vec<Option<Element<'d>>> = vec![None; document.descendants().count() + 1];
    for node in document.root().descendants().skip(1) {
        let parent = node
            .parent()
            .filter(|parent| !parent.is_root())
            .and_then(|parent| copies[parent.id().get_usize()]);
        let child: sxd_document::dom::ChildOfElement<'d> = match node.node_type() {
            roxmltree::NodeType::Element => {
                let element = copy_element(text, &node, dom, &mut copied.prefixes);
                copies[node.id().get_usize()] = Some(element);
                copied.ids.insert(element, node.id());
                element.into()
            }
            roxmltree::NodeType::Text => dom.create_text(node.text().unwrap_or_default()).into(),
            roxmltree::NodeType::Comment => dom.create_comment(node.text().unwrap_or_default()).into(),
            roxmltree::NodeType::PI => match node.pi() {
                Some(pi) => dom.create_processing_instruction(pi.target, pi.value).into(),
                None => continue,
            },
            roxmltree::NodeType::Root => continue,
        };
        match (parent, child) {
            (Some(parent), child) => parent.append_child(child),
            (None, sxd_document::dom::ChildOfElement::Element(e)) => dom.root().append_child(e),
            (None, sxd_document::dom::ChildOfElement::Comment(c)) => dom.root().append_child(c),
            (None, sxd_document::dom::ChildOfElement::ProcessingInstruction(p)) => dom.root().append_child(p),
            // Text outside the root element is only whitespace; the document model has none.
            (None, sxd_document::dom::ChildOfElement::Text(_)) => {}
        }
    }
    for (prefix, uri) in &copied.prefixes {
        context.set_namespace(prefix, uri);
    }
    copied
}

fn copy_element<'d>(
    text: &str,
    node: &roxmltree::Node<'_, '_>,
    dom: Document<'d>,
    prefixes: &mut HashMap<String, String>,
) -> Element<'d> {
    let tag = node.tag_name();
    let element = dom.create_element(QName::with_namespace_uri(tag.namespace(), tag.name()));
    let written_prefix = |name: &str| name.split_once(':').map(|(p, _)| p.to_owned());
    element.set_preferred_prefix(written_prefix(written_name(text, node)).as_deref());
    for (prefix, uri) in declared_here(node) {
        match prefix {
            Some(prefix) => {
                element.register_prefix(prefix, uri);
                prefixes
                    .entry(prefix.to_owned())
                    .or_insert_with(|| uri.to_owned());
            }
            None => element.set_default_namespace_uri(Some(uri)),
        }
    }
    for attribute in node.attributes() {
        let name = QName::with_namespace_uri(attribute.namespace(), attribute.name());
        let copy = element.set_attribute_value(name, attribute.value());
        copy.set_preferred_prefix(written_prefix(&text[attribute.range_qname()]).as_deref());
    }
    element
}

/// Refuses an expression too long or too deeply nested for the evaluator's recursion.
fn check_size(xpath: &str) -> Result<(), XmlError> {
    let length = xpath.chars().count();
    if length > MAX_XPATH_LENGTH {
        return Err(XmlError::new(format!(
            "got an XPath of {length} characters; cordon takes at most {MAX_XPATH_LENGTH}"
        )));
    }
    let (mut depth, mut deepest, mut signs, mut most_signs) = (0usize, 0usize, 0usize, 0usize);
    for (_, c) in outside_literals(xpath) {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        match c {
            '-' => signs += 1,
            c if c.is_whitespace() => {}
            _ => signs = 0,
        }
        deepest = deepest.max(depth);
        most_signs = most_signs.max(signs);
    }
    if deepest > MAX_XPATH_NESTING || most_signs > MAX_XPATH_NESTING {
        return Err(XmlError::new(format!(
            "got an XPath that nests brackets or signs more than {MAX_XPATH_NESTING} deep, \
             more than cordon takes"
        )));
    }
    Ok(())
}

/// Refuses a prefix the document does not declare (the evaluator would panic on it), and a
/// ':' that is neither in a prefixed name nor in an axis (`child::`).
fn check_prefixes(xpath: &str, declared: &HashMap<String, String>) -> Result<(), XmlError> {
    let mut chars = outside_literals(xpath).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ':' if chars.peek().is_some_and(|&(_, next)| next == ':') => {
                chars.next();
            }
            ':' => {
                let before = &xpath[..i];
                let start = before
                    .char_indices()
                    .rev()
                    .take_while(|&(_, c)| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    .last()
                    .map_or(i, |(start, _)| start);
                let prefix = &before[start..];
                if prefix.is_empty() {
                    return Err(XmlError::new(format!(
                        "cannot parse the XPath {xpath:?}: a ':' must be inside a prefixed name \
                         (soap:Body) or an axis (child::)"
                    )));
                }
                if !declared.contains_key(prefix) {
                    return Err(XmlError::new(format!(
                        "the XPath {xpath:?} uses the prefix {prefix:?}, which the document does \
                         not declare; use a prefix the document declares, or match by local \
                         name, as in *[local-name()='Body']"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The characters of an XPath expression that are syntax, with their byte offsets: everything
/// but string literals (`'...'`, `"..."`, which have no escapes) and their quotes.
fn outside_literals(xpath: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote = None;
    xpath.char_indices().filter(move |&(_, c)| match quote {
        Some(q) => {
            if c == q {
                quote = None;
            }
            false
        }
        None if c == '\'' || c == '"' => {
            quote = Some(c);
            false
        }
        None => true,
    })
}
