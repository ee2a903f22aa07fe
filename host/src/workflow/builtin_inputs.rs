//! What the built-in actions Response, Terminate, Wait and Http accept in their inputs. The
//! executor reads the evaluated inputs with these functions; `validate` runs the same ones
//! on inputs written as literals, so `cordon validate` refuses what the run would fail on,
//! with the same words.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::db::Status;
use crate::expr;

/// A Response action's `statusCode` (`inputs.statusCode`): 200 when absent, else an HTTP
/// status from 100 to 599.
pub fn response_status(code: Option<&Value>) -> Result<u16, String> {
    let Some(code) = code else {
        return Ok(200);
    };
    // Logic Apps writes status codes as numbers or as numeric strings.
    let number = match code {
        Value::String(text) => text.trim().parse::<u64>().ok(),
        other => other.as_u64(),
    };
    number
        .filter(|n| (100..=599).contains(n))
        .map(|n| n as u16)
        .ok_or_else(|| format!("statusCode must be an HTTP status from 100 to 599, got {code}"))
}

/// Headers the server frames the answer with (or cordon's own): a Response action that set
/// them would break the HTTP exchange (a `Content-Length` of 3 cut an 11-byte body short and
/// left the rest on the connection for the caller's next request to read).
const SERVER_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "x-cordon-run-id",
];

/// A Response action's `headers` (`inputs.headers`): an object of header names to values
/// (strings, or any JSON value, sent as its JSON text), each a valid HTTP header, none of
/// those the server sets itself. Nothing is dropped silently: the server sends every header.
pub fn response_headers(headers: Option<&Value>) -> Result<(), String> {
    let Some(headers) = headers.filter(|h| !h.is_null()) else {
        return Ok(());
    };
    let Some(map) = headers.as_object() else {
        return Err(format!(
            "headers must be an object of header names to values, got {}",
            expr::describe_value(headers)
        ));
    };
    for (name, value) in map {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "header name {name:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~, no spaces)"
            ));
        }
        if SERVER_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "header {name:?} is set by the server from the body and the connection; remove it"
            ));
        }
        if axum::http::HeaderValue::from_str(&header_text(value)).is_err() {
            return Err(format!(
                "the value of header {name:?} is not a valid HTTP header value (no line breaks or other control characters)"
            ));
        }
    }
    Ok(())
}

/// A Response header's value as sent: a string as it is, anything else as its JSON text.
pub fn header_text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

/// A Terminate action's `runStatus` (`inputs.runStatus`).
pub fn terminate_status(status: Option<&Value>) -> Result<Status, String> {
    status
        .and_then(Value::as_str)
        .and_then(Status::parse)
        .filter(|s| matches!(s, Status::Succeeded | Status::Failed | Status::Cancelled))
        .ok_or_else(|| "Terminate needs inputs.runStatus: Succeeded, Failed or Cancelled".to_owned())
}

/// How long a Wait action waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WaitFor {
    /// `interval`: `count` of `unit`.
    Interval(Duration),
    /// `until.timestamp`.
    Until(DateTime<Utc>),
}

/// A Wait action's `interval {count, unit}` or `until {timestamp}`.
pub fn wait_for(inputs: &Value) -> Result<WaitFor, String> {
    if let Some(interval) = inputs.get("interval") {
        let count = interval.get("count").and_then(Value::as_f64).unwrap_or(0.0);
        let unit = interval.get("unit").and_then(Value::as_str).unwrap_or("Second");
        let seconds = match unit.to_ascii_lowercase().trim_end_matches('s') {
            "second" => 1.0,
            "minute" => 60.0,
            "hour" => 3600.0,
            "day" => 86400.0,
            "week" => 604800.0,
            "month" => 2_592_000.0,
            _ => {
                return Err(format!(
                    "unknown unit {unit:?}; use Second, Minute, Hour, Day, Week or Month"
                ));
            }
        };
        if count < 0.0 {
            return Err("interval.count must not be negative".to_owned());
        }
        Duration::try_from_secs_f64(count * seconds)
            .map(WaitFor::Interval)
            .map_err(|_| format!("an interval of {count} {unit} is longer than any wait can be"))
    } else if let Some(timestamp) = inputs.pointer("/until/timestamp").and_then(Value::as_str) {
        expr::parse_timestamp(timestamp)
            .map(WaitFor::Until)
            .ok_or_else(|| format!("until.timestamp {timestamp:?} is not an ISO 8601 timestamp"))
    } else {
        Err("Wait needs inputs.interval {count, unit} or inputs.until {timestamp}".to_owned())
    }
}

/// The methods the `http` connector sends (`plugins/http`, which refuses others when the
/// request is made); `validate` names a literal one outside them before any run.
pub const HTTP_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The `request` input of the built-in `http` connector for an Http action's inputs. Errors
/// (4xx, 5xx) come back as responses, for the action's own status and retry handling.
pub fn http_request(inputs: &Value) -> Value {
    let mut request = Map::new();
    for key in ["method", "uri", "headers", "queries", "body", "authentication"] {
        if let Some(v) = inputs.get(key).filter(|v| !v.is_null()) {
            request.insert(key.to_owned(), v.clone());
        }
    }
    request.insert("fail_on_error_status".to_owned(), json!(false));
    Value::Object(request)
}

/// What the record of an Http or HttpWebhook action shows of its inputs: the values of each
/// request's `authentication` that Logic Apps writes inline (Basic's `password`, Raw's
/// `value`) replaced, so credentials written in a workflow do not land in the run history.
/// Bearer and ApiKey take theirs from the connection's secrets and have none to hide.
pub fn recorded_http_inputs(inputs: &Value) -> Value {
    fn mask(request: &mut Value) {
        if let Some(Value::Object(authentication)) = request.get_mut("authentication") {
            for field in ["password", "value"] {
                if let Some(value) = authentication.get_mut(field) {
                    *value = json!("*** (not recorded)");
                }
            }
        }
    }
    let mut recorded = inputs.clone();
    mask(&mut recorded);
    for request in ["subscribe", "unsubscribe"] {
        if let Some(request) = recorded.get_mut(request) {
            mask(request);
        }
    }
    recorded
}

/// `Retry-After` of an answer of the `http` connector (which lower-cases header names): delay
/// seconds, or an HTTP date (RFC 9110), read against `now_ms` (a date already past is no
/// wait at all).
pub fn retry_after(response: &Value, now_ms: i64) -> Option<Duration> {
    let value = response.pointer("/headers/retry-after")?.as_str()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    let wait_ms = i128::try_from(at_ms).ok()? - i128::from(now_ms);
    Some(Duration::from_millis(
        u64::try_from(wait_ms.max(0)).unwrap_or(u64::MAX),
    ))
}

/// The `Location` of an answer of the `http` connector, resolved against the `uri` the
/// request went to (a Location may be relative).
pub fn location(uri: &str, response: &Value) -> Option<String> {
    let location = response.pointer("/headers/location").and_then(Value::as_str)?;
    let base = url::Url::parse(uri).ok()?;
    base.join(location.trim()).ok().map(String::from)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // 2026-12-03T10:00:00Z.
        let now_ms = 1_796_292_000_000;
        let answer = |value: &str| json!({"statusCode": 429, "headers": {"retry-after": value}});
        for (value, expected) in [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            ("Thu, 03 Dec 2026 10:01:30 GMT", Some(Duration::from_secs(90))),
            // The two obsolete forms RFC 9110 still asks a recipient to read.
            ("Thursday, 03-Dec-26 10:00:05 GMT", Some(Duration::from_secs(5))),
            ("Thu Dec  3 10:00:02 2026", Some(Duration::from_secs(2))),
            ("Thu, 03 Dec 2026 09:00:00 GMT", Some(Duration::ZERO)),
            ("soon", None),
            ("-5", None),
        ] {
            assert_eq!(retry_after(&answer(value), now_ms), expected, "{value:?}");
        }
        assert_eq!(
            retry_after(&json!({"statusCode": 429, "headers": {}}), now_ms),
            None
        );
    }

    #[test]
    fn inline_credentials_stay_out_of_the_record() {
        let inputs = json!({"method": "GET", "uri": "https://a.example/",
            "authentication": {"type": "Basic", "username": "svc", "password": "hunter2"},
            "subscribe": {"authentication": {"type": "Raw", "value": "Token abc"}},
            "unsubscribe": {"authentication": {"type": "Bearer"}}});
        let recorded = recorded_http_inputs(&inputs);
        assert_eq!(recorded["authentication"]["username"], "svc");
        assert_eq!(recorded["authentication"]["password"], "*** (not recorded)");
        assert_eq!(
            recorded["subscribe"]["authentication"]["value"],
            "*** (not recorded)"
        );
        assert_eq!(recorded["unsubscribe"], inputs["unsubscribe"]);
        assert!(!recorded.to_string().contains("hunter2") && !recorded.to_string().contains("abc"));
    }

    #[test]
    fn response_status_codes() {
        for (inputs, expected) in [
            (json!({}), Ok(200)),
            (json!({"statusCode": 201}), Ok(201)),
            (json!({"statusCode": "404"}), Ok(404)),
            (json!({"statusCode": 999}), Err("from 100 to 599, got 999")),
            (json!({"statusCode": 99}), Err("got 99")),
            (json!({"statusCode": -1}), Err("got -1")),
            (json!({"statusCode": "teapot"}), Err("got \"teapot\"")),
            (json!({"statusCode": 200.5}), Err("got 200.5")),
        ] {
            let got = response_status(inputs.get("statusCode"));
            match expected {
                Ok(code) => assert_eq!(got, Ok(code), "{inputs}"),
                Err(words) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(words)),
                    "{inputs}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn terminate_statuses() {
        assert_eq!(terminate_status(Some(&json!("Failed"))), Ok(Status::Failed));
        assert_eq!(terminate_status(Some(&json!("Cancelled"))), Ok(Status::Cancelled));
        for bad in [
            Some(json!("Exploded")),
            Some(json!("Running")),
            Some(json!(5)),
            None,
        ] {
            assert!(terminate_status(bad.as_ref()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wait_intervals_and_timestamps() {
        assert_eq!(
            wait_for(&json!({"interval": {"count": 2, "unit": "Minute"}})),
            Ok(WaitFor::Interval(Duration::from_secs(120)))
        );
        assert_eq!(
            wait_for(&json!({"interval": {"count": 1.5, "unit": "Hours"}})),
            Ok(WaitFor::Interval(Duration::from_secs(5400)))
        );
        assert!(matches!(
            wait_for(&json!({"until": {"timestamp": "2030-01-01T00:00:00Z"}})),
            Ok(WaitFor::Until(_))
        ));
        for (inputs, words) in [
            (
                json!({"interval": {"count": 1, "unit": "Eon"}}),
                "unknown unit \"Eon\"",
            ),
            (
                json!({"interval": {"count": -1, "unit": "Second"}}),
                "must not be negative",
            ),
            (
                json!({"interval": {"count": 1e300, "unit": "Month"}}),
                "longer than any wait",
            ),
            (
                json!({"until": {"timestamp": "soon"}}),
                "not an ISO 8601 timestamp",
            ),
            (json!({}), "Wait needs inputs.interval"),
        ] {
            let got = wait_for(&inputs);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(words)),
                "{inputs}: {got:?}"
            );
        }
    }
}
