//! A request trigger's body as the run sees it, shaped by its `Content-Type` the way Logic Apps
//! shapes it:
//!
//! - JSON (a type that names JSON, or no type and text that parses): the JSON value;
//! - `application/x-www-form-urlencoded`: `{"$content-type", "$content", "$formdata": [{"key",
//!   "value"}]}`, which `triggerFormDataValue()` reads (unless it is a JSON object or array:
//!   curl's `-d` sends JSON under this type);
//! - `multipart/*`: `{"$content-type", "$multipart": [{"headers", "body"}]}`, each part's body
//!   content, which `triggerMultipartBody()` (and for form data `triggerFormDataValue()`) reads;
//! - XML: an XML value (`xml()`, `xpath()` and `json()` take it);
//! - other text (`text/*`, or no type and UTF-8): a string;
//! - anything else: content, `{"$content-type", "$content": base64}`, so that no byte is lost
//!   (such a body used to become a string with its invalid UTF-8 replaced).

use axum::body::Bytes;
use cordon_core::content;
use serde_json::{Map, Value, json};

/// Why a body cannot be read as its type says, for a `400` answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(String);

/// The trigger body of a request with `content_type` and `body`.
pub async fn trigger_body(content_type: Option<&str>, body: Bytes) -> Result<Value, BodyError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let essence = content_type.map(content::essence).unwrap_or_default();
    if essence.contains("json") {
        return serde_json::from_slice(&body)
            .map_err(|e| BodyError(format!("the body is not valid JSON: {e}")));
    }
    let content_type = content_type.unwrap_or_default();
    if essence == "application/x-www-form-urlencoded" {
        // `curl -d '{"a": 1}'` sends JSON under this type unless told otherwise. A form encoder
        // escapes `{`, `[` and `"`, so a body that parses as JSON was never a form.
        if (body.starts_with(b"{") || body.starts_with(b"["))
            && let Ok(value) = serde_json::from_slice(&body)
        {
            return Ok(value);
        }
        return Ok(form(content_type, &body));
    }
    if essence.starts_with("multipart/") {
        return multipart(content_type, body).await;
    }
    if cordon_core::xml::is_xml_type(&essence) {
        return Ok(match std::str::from_utf8(&body) {
            Ok(text) => cordon_core::xml::value_of(text),
            Err(_) => content::value(content_type, &body),
        });
    }
    if essence.is_empty()
        && let Ok(value) = serde_json::from_slice(&body)
    {
        return Ok(value);
    }
    if (essence.is_empty() || essence.starts_with("text/"))
        && let Ok(text) = std::str::from_utf8(&body)
    {
        return Ok(Value::String(text.to_owned()));
    }
    let content_type = if content_type.is_empty() {
        "application/octet-stream"
    } else {
        content_type
    };
    Ok(content::value(content_type, &body))
}

fn form(content_type: &str, body: &[u8]) -> Value {
    let entries: Vec<Value> = url::form_urlencoded::parse(body)
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    let mut value = content::value(content_type, body);
    value["$formdata"] = Value::Array(entries);
    value
}

async fn multipart(content_type: &str, body: Bytes) -> Result<Value, BodyError> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        BodyError(format!(
            "the body is declared {content_type:?} but cannot be read as multipart: {e}; send a \
             Content-Type with its boundary, as in multipart/form-data; boundary=x"
        ))
    })?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut reader = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    loop {
        let field = reader
            .next_field()
            .await
            .map_err(|e| BodyError(format!("the multipart body is malformed: {e}")))?;
        let Some(field) = field else { break };
        let headers: Map<String, Value> = field
            .headers()
            .iter()
            .map(|(name, value)| {
                let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), Value::String(text))
            })
            .collect();
        // RFC 7578: a part without a type is text/plain.
        let part_type = field
            .content_type()
            .map_or_else(|| "text/plain".to_owned(), ToString::to_string);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| BodyError(format!("the multipart body is malformed: {e}")))?;
        parts.push(json!({"headers": headers, "body": content::value(&part_type, &bytes)}));
    }
    Ok(json!({"$content-type": content_type, "$multipart": parts}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(content_type: Option<&str>, bytes: &'static [u8]) -> Result<Value, BodyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(trigger_body(content_type, Bytes::from_static(bytes)))
    }

    #[test]
    fn bodies_take_the_shape_their_type_gives_them() {
        let multipart = b"--x\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\xff\x00\r\n--x--\r\n";
        let cases: [(Option<&str>, &[u8], Value); 11] = [
            (None, b"", Value::Null),
            (Some("application/json"), b"{\"a\": 1}", json!({"a": 1})),
            (None, b"[1, 2]", json!([1, 2])),
            (None, b"just words", json!("just words")),
            (
                Some("text/plain; charset=utf-8"),
                b"{\"a\": 1}",
                json!("{\"a\": 1}"),
            ),
            (
                Some("application/x-www-form-urlencoded"),
                b"name=Ada+L&tag=a&tag=b%26c",
                json!({"$content-type": "application/x-www-form-urlencoded", "$content": "bmFtZT1BZGErTCZ0YWc9YSZ0YWc9YiUyNmM=",
                       "$formdata": [{"key": "name", "value": "Ada L"}, {"key": "tag", "value": "a"}, {"key": "tag", "value": "b&c"}]}),
            ),
            (
                Some("application/x-www-form-urlencoded"),
                b"{\"a\": [1]}",
                json!({"a": [1]}),
            ),
            (
                Some("text/xml"),
                b"<a/>",
                json!({"$content-type": "application/xml;charset=utf-8", "$content": "PGEvPg=="}),
            ),
            (
                Some("image/png"),
                b"\x89PNG",
                json!({"$content-type": "image/png", "$content": "iVBORw=="}),
            ),
            (
                None,
                b"\xff\xfe",
                json!({"$content-type": "application/octet-stream", "$content": "//4="}),
            ),
            (
                Some("multipart/form-data; boundary=x"),
                multipart,
                json!({"$content-type": "multipart/form-data; boundary=x", "$multipart": [
                    {"headers": {"content-disposition": "form-data; name=\"note\""},
                     "body": {"$content-type": "text/plain", "$content": "aGkgdGhlcmU="}},
                    {"headers": {"content-disposition": "form-data; name=\"file\"; filename=\"a.bin\"",
                                 "content-type": "application/octet-stream"},
                     "body": {"$content-type": "application/octet-stream", "$content": "/wA="}}
                ]}),
            ),
        ];
        for (content_type, bytes, expected) in cases {
            let body = body_of(content_type, bytes).unwrap_or_else(|e| panic!("{content_type:?}: {e}"));
            assert_eq!(body, expected, "for {content_type:?}");
        }
    }

    #[test]
    fn bodies_that_are_not_what_their_type_says_are_refused() {
        let cases = [
            (Some("application/json"), &b"{oops"[..], "not valid JSON"),
            (Some("multipart/form-data"), b"--x\r\n", "with its boundary"),
            (
                Some("multipart/form-data; boundary=x"),
                b"--x\r\nno end",
                "multipart body is malformed",
            ),
        ];
        for (content_type, bytes, expected) in cases {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let error = runtime
                .block_on(trigger_body(content_type, Bytes::copy_from_slice(bytes)))
                .expect_err(expected);
            assert!(error.0.contains(expected), "{content_type:?}: {error}");
        }
    }
}
