//! URI parsing functions, over the `url` crate's WHATWG parser.

use serde_json::Value;

use super::{Args, ExprError, FunctionInfo, f};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    f("uriHost", 1, 1, uri_host),
    f("uriPath", 1, 1, uri_path),
    f("uriPathAndQuery", 1, 1, uri_path_and_query),
    f("uriPort", 1, 1, uri_port),
    f("uriQuery", 1, 1, uri_query),
    f("uriScheme", 1, 1, uri_scheme),
];

fn parse(args: &Args<'_>) -> Result<url::Url, ExprError> {
    let text = args.string(0)?;
    url::Url::parse(&text).map_err(|e| args.error(format!("cannot parse {text:?} as an absolute URI: {e}")))
}

fn uri_host(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(
        parse(args)?.host_str().unwrap_or_default().to_owned(),
    ))
}

fn uri_path(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(parse(args)?.path().to_owned()))
}

fn uri_path_and_query(args: &Args<'_>) -> Result<Value, ExprError> {
    let url = parse(args)?;
    Ok(Value::String(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }))
}

fn uri_port(args: &Args<'_>) -> Result<Value, ExprError> {
    let url = parse(args)?;
    url.port_or_known_default()
        .map(Value::from)
        .ok_or_else(|| args.error(format!("cannot tell the port of {:?}", url.as_str())))
}

fn uri_query(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(
        parse(args)?.query().map(|q| format!("?{q}")).unwrap_or_default(),
    ))
}

fn uri_scheme(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(parse(args)?.scheme().to_owned()))
}
