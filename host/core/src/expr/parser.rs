//! Templates and expressions from text into [`Template`] and [`Expr`]. A hand-written recursive
//! descent parser: the grammar is small (literals, calls, member access) and its error messages
//! are what users see in `cordon validate`, so each names the position and what was expected.

use serde_json::{Number, Value};

use super::functions;
use super::{Expr, ExprError, Segment, Template};

/// How deep an expression may nest: each call argument, index and property access inside
/// another counts one level. Parsing, evaluating and dropping an expression all recurse
/// through its tree, so without a bound a long enough `add(add(add(...)))` overflowed the
/// stack and killed the process (`cordon validate` on the workflow included). Real
/// expressions nest a few levels; 128 is far beyond them and far below what a 2 MiB thread
/// holds.
pub const MAX_EXPRESSION_DEPTH: usize = 128;

pub(super) fn parse_template(text: &str) -> Result<Template, ExprError> {
    if let Some(rest) = text.strip_prefix("@@") {
        return Ok(Template::Literal(format!("@{rest}")));
    }
    if let Some(rest) = text.strip_prefix('@')
        && !rest.starts_with('{')
    {
        return parse_expression(rest)
            .map(Template::Whole)
            .map_err(|e| ExprError::new(format!("in {}: {}", quoted(text), e.message)));
    }
    if !text.contains("@{") {
        return Ok(Template::Literal(text.to_owned()));
    }
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("@{") {
        // `@@{` is an escaped `@{`.
        if rest[..at].ends_with('@') {
            literal.push_str(&rest[..at]);
            literal.push('{');
            rest = &rest[at + 2..];
            continue;
        }
        literal.push_str(&rest[..at]);
        let body_start = at + 2;
        let body_len = closing_brace(&rest[body_start..]).ok_or_else(|| {
            ExprError::new(format!(
                "in {}: `@{{` at character {} has no closing `}}`",
                quoted(text),
                text[..text.len() - rest.len() + at].chars().count() + 1
            ))
        })?;
        let body = &rest[body_start..body_start + body_len];
        let expr = parse_expression(body)
            .map_err(|e| ExprError::new(format!("in {}: {}", quoted(text), e.message)))?;
        if !literal.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut literal)));
        }
        segments.push(Segment::Expr(expr));
        rest = &rest[body_start + body_len + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Text(literal));
    }
    if segments.iter().all(|s| matches!(s, Segment::Text(_))) {
        let text = segments
            .into_iter()
            .map(|s| match s {
                Segment::Text(t) => t,
                Segment::Expr(_) => String::new(),
            })
            .collect();
        return Ok(Template::Literal(text));
    }
    Ok(Template::Interpolated(segments))
}

/// The template quoted for an error message; a long one is cut short, so that a huge input
/// does not make a huge message (the position in the message still finds the place).
fn quoted(text: &str) -> String {
    const SHOWN: usize = 80;
    match text.char_indices().nth(SHOWN) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} characters)", &text[..cut], text.chars().count()),
    }
}

/// The byte offset of the `}` that closes an interpolation, skipping quoted strings.
fn closing_brace(body: &str) -> Option<usize> {
    let mut in_string = false;
    for (i, c) in body.char_indices() {
        match c {
            '\'' => in_string = !in_string, // `''` toggles twice: still right
            '}' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

pub(super) fn parse_expression(text: &str) -> Result<Expr, ExprError> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    parser.skip_space();
    if parser.at_end() {
        return Err(ExprError::new("empty expression after `@`"));
    }
    let expr = parser.expression()?;
    parser.skip_space();
    if !parser.at_end() {
        return Err(parser.error(&format!(
            "unexpected {:?} after a complete expression",
            parser.rest_preview()
        )));
    }
    Ok(expr)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// How many expressions enclose the one being parsed, counting each member access.
    depth: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn rest_preview(&self) -> String {
        self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .take(20)
            .collect()
    }

    fn error(&self, message: &str) -> ExprError {
        ExprError::new(format!("at character {}: {message}", self.pos + 1))
    }

    fn expect(&mut self, wanted: char, context: &str) -> Result<(), ExprError> {
        self.skip_space();
        if self.peek() == Some(wanted) {
            self.pos += 1;
            Ok(())
        } else if self.at_end() {
            Err(self.error(&format!("expected `{wanted}` {context}, found the end")))
        } else {
            Err(self.error(&format!(
                "expected `{wanted}` {context}, found {:?}",
                self.rest_preview()
            )))
        }
    }

    fn expression(&mut self) -> Result<Expr, ExprError> {
        let outer = self.depth;
        let expr = self.nested_expression();
        self.depth = outer;
        expr
    }

    /// One level deeper than the caller; an error once past [`MAX_EXPRESSION_DEPTH`].
    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return Err(self.error(&format!(
                "the expression nests more than {MAX_EXPRESSION_DEPTH} deep (calls, indexes and \
                 property accesses inside one another); split it across several actions"
            )));
        }
        Ok(())
    }

    fn nested_expression(&mut self) -> Result<Expr, ExprError> {
        self.deeper()?;
        self.skip_space();
        let mut expr = self.primary()?;
        loop {
            self.skip_space();
            let null_safe = self.peek() == Some('?');
            let next = if null_safe { self.peek_at(1) } else { self.peek() };
            match next {
                Some('.') => {
                    self.deeper()?;
                    self.pos += if null_safe { 2 } else { 1 };
                    let name = self
                        .identifier()
                        .ok_or_else(|| self.error("expected a property name after `.`"))?;
                    expr = Expr::Member {
                        target: Box::new(expr),
                        key: Box::new(Expr::Literal(Value::String(name))),
                        null_safe,
                    };
                }
                Some('[') => {
                    self.deeper()?;
                    self.pos += if null_safe { 2 } else { 1 };
                    let key = self.expression()?;
                    self.expect(']', "to close the index")?;
                    expr = Expr::Member {
                        target: Box::new(expr),
                        key: Box::new(key),
                        null_safe,
                    };
                }
                _ if null_safe => return Err(self.error("expected `.` or `[` after `?`")),
                _ => return Ok(expr),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        match self.peek() {
            None => Err(self.error("expected an expression, found the end")),
            Some('\'') => self.string().map(|s| Expr::Literal(Value::String(s))),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                let name = self.identifier().unwrap_or_default();
                self.skip_space();
                if self.peek() == Some('(') {
                    self.pos += 1;
                    self.call(name, start)
                } else {
                    match name.as_str() {
                        "true" => Ok(Expr::Literal(Value::Bool(true))),
                        "false" => Ok(Expr::Literal(Value::Bool(false))),
                        "null" => Ok(Expr::Literal(Value::Null)),
                        _ => {
                            self.pos = start;
                            Err(self.error(&format!(
                                "{name:?} is not a value; strings are quoted ('{name}') and functions are called ({name}())"
                            )))
                        }
                    }
                }
            }
            Some(c) => Err(self.error(&format!("unexpected {c:?}; expected a value or a function call"))),
        }
    }

    fn identifier(&mut self) -> Option<String> {
        self.skip_space();
        let start = self.pos;
        // Names with other characters are written `['my-prop']`.
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }

    fn call(&mut self, name: String, start: usize) -> Result<Expr, ExprError> {
        let mut args = Vec::new();
        self.skip_space();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.expression()?);
                self.skip_space();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => {
                        return Err(self.error(&format!(
                            "expected `,` or `)` in the arguments of {name}, found {:?}",
                            self.rest_preview()
                        )));
                    }
                }
            }
        }
        let info = functions::lookup(&name).ok_or_else(|| {
            let position = start + 1;
            let hint = functions::suggest(&name)
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            ExprError::new(format!(
                "at character {position}: unknown function {name:?}{hint}"
            ))
        })?;
        if args.len() < info.min_args || info.max_args.is_some_and(|max| args.len() > max) {
            let expected = match info.max_args {
                Some(max) if max == info.min_args => format!("{max}"),
                Some(max) => format!("{} to {max}", info.min_args),
                None => format!("at least {}", info.min_args),
            };
            return Err(ExprError::new(format!(
                "at character {}: {} takes {expected} argument{}, got {}",
                start + 1,
                info.name,
                if expected == "1" { "" } else { "s" },
                args.len()
            )));
        }
        Ok(Expr::Call {
            name: info.name.to_owned(),
            args,
        })
    }

    fn string(&mut self) -> Result<String, ExprError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("string is not closed; add a `'`"));
                }
                Some('\'') if self.peek_at(1) == Some('\'') => {
                    out.push('\'');
                    self.pos += 2;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Expr, ExprError> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        let digits = |p: &mut Parser| {
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
        };
        digits(self);
        let mut decimal = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            decimal = true;
            self.pos += 1;
            digits(self);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            decimal = true;
            self.pos += 1;
            if matches!(self.peek(), Some('-' | '+')) {
                self.pos += 1;
            }
            digits(self);
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let number = if decimal {
            text.parse::<f64>().ok().and_then(Number::from_f64)
        } else {
            text.parse::<i64>()
                .map(Number::from)
                .ok()
                .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
        };
        match number {
            Some(n) => Ok(Expr::Literal(Value::Number(n))),
            None => {
                self.pos = start;
                Err(self.error(&format!("{text:?} is not a number")))
            }
        }
    }
}
