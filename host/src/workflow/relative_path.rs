//! A request trigger's `relativePath`: a path template such as `orders/{id}/lines/{line}` that
//! extends the callback URL. Requests must match it segment by segment; each `{name}` segment
//! captures one segment of the request's path into the trigger outputs'
//! `relativePathParameters`, as in Logic Apps. No IO.

use serde_json::{Map, Value};

use super::definition::Trigger;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter(String),
}

/// A parsed `relativePath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelativePath {
    segments: Vec<Segment>,
}

impl RelativePath {
    /// A request trigger's parsed `relativePath`, if it has one.
    pub fn of(trigger: &Trigger) -> Result<Option<RelativePath>, String> {
        trigger
            .inputs
            .get("relativePath")
            .map(|v| match v.as_str() {
                Some(template) => RelativePath::parse(template),
                None => Err("relativePath must be a string such as \"orders/{id}\"".to_owned()),
            })
            .transpose()
    }

    /// Parses a template; the error says what is wrong with it.
    pub fn parse(template: &str) -> Result<RelativePath, String> {
        let trimmed = template.trim_matches('/');
        if trimmed.is_empty() {
            return Err(
                "relativePath is empty; leave it out, or give segments like \"orders/{id}\"".to_owned(),
            );
        }
        let mut segments = Vec::new();
        let mut names = std::collections::HashSet::new();
        for raw in trimmed.split('/') {
            if raw.is_empty() {
                return Err(format!("relativePath {template:?} has an empty segment (\"//\")"));
            }
            let segment = match raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                Some(name) => {
                    let valid = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !valid {
                        return Err(format!(
                            "relativePath parameter {raw:?} must be a name of letters, digits, '_' or '-'"
                        ));
                    }
                    if !names.insert(name.to_owned()) {
                        return Err(format!("relativePath names the parameter {name:?} twice"));
                    }
                    Segment::Parameter(name.to_owned())
                }
                None if raw.contains(['{', '}', '?', '#']) => {
                    return Err(format!(
                        "relativePath segment {raw:?} mixes text and a parameter or holds '?' or '#'; a parameter takes a whole segment, like \"{{id}}\""
                    ));
                }
                None => Segment::Literal(raw.to_owned()),
            };
            segments.push(segment);
        }
        Ok(RelativePath { segments })
    }

    /// The parameters, when `path` (already percent-decoded, with or without slashes at its
    /// ends) matches. Literal segments compare without regard to ASCII case, as URL paths of
    /// Logic Apps triggers do.
    pub fn matches(&self, path: &str) -> Option<Map<String, Value>> {
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        if actual.len() != self.segments.len() {
            return None;
        }
        let mut parameters = Map::new();
        for (segment, actual) in self.segments.iter().zip(actual) {
            match segment {
                Segment::Literal(text) if text.eq_ignore_ascii_case(actual) => {}
                Segment::Literal(_) => return None,
                Segment::Parameter(_) if actual.is_empty() => return None,
                Segment::Parameter(name) => {
                    parameters.insert(name.clone(), Value::String(actual.to_owned()));
                }
            }
        }
        Some(parameters)
    }
}

impl std::fmt::Display for RelativePath {
    /// The template, without slashes at its ends: what the callback URL shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match segment {
                Segment::Literal(text) => f.write_str(text)?,
                Segment::Parameter(name) => write!(f, "{{{name}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_parse_or_say_what_is_wrong() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("orders/{id}", Ok("orders/{id}")),
            ("/orders/{id}/lines/{line}/", Ok("orders/{id}/lines/{line}")),
            ("{tenant}", Ok("{tenant}")),
            ("", Err("is empty")),
            ("/", Err("is empty")),
            ("a//b", Err("empty segment")),
            ("orders/{}", Err("must be a name")),
            ("orders/{a b}", Err("must be a name")),
            ("orders/{id}/x/{id}", Err("twice")),
            ("orders/id-{id}", Err("takes a whole segment")),
            ("orders?x=1", Err("takes a whole segment")),
        ];
        for (template, expected) in cases {
            match (RelativePath::parse(template), expected) {
                (Ok(parsed), Ok(shown)) => assert_eq!(parsed.to_string(), *shown, "{template}"),
                (Err(e), Err(part)) => assert!(e.contains(part), "{template}: {e}"),
                (got, want) => panic!("{template}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn requests_match_segment_by_segment() {
        let path = RelativePath::parse("orders/{id}/lines/{line}").expect("template");
        let cases: &[(&str, Option<Value>)] = &[
            ("orders/17/lines/2", Some(json!({"id": "17", "line": "2"}))),
            ("/Orders/a b/LINES/x/", Some(json!({"id": "a b", "line": "x"}))),
            ("orders/17/lines", None),
            ("orders/17/lines/2/extra", None),
            ("orders//lines/2", None),
            ("invoices/17/lines/2", None),
            ("", None),
        ];
        for (actual, expected) in cases {
            assert_eq!(path.matches(actual).map(Value::Object), *expected, "{actual:?}");
        }
    }
}
