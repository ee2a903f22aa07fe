//! The JSON text of a value, written the fast way.
//!
//! `Value::to_string()` (its `Display`) writes through `fmt::Formatter` piece by piece: for
//! 600 records of about 64 KiB it took twice as long as `serde_json::to_string`, which writes
//! into a `Vec` (222 against 108 µs, criterion group `json_text`; BENCHMARKS.md). Every value
//! that goes into a guest or into the run history is written here.

use serde_json::Value;

/// `value` as compact JSON text, the same text `value.to_string()` gives.
pub(crate) fn json_text(value: &Value) -> String {
    // Writing a `Value` cannot fail: its map keys are strings, and a `Vec` takes every write.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::json_text;
    use serde_json::json;

    #[test]
    fn the_text_is_what_display_writes() {
        for value in [
            json!(null),
            json!("quote \" backslash \\ newline \n tab \t control \u{1} emoji 🦀"),
            json!({"b": [1, 2.5, -3e300, true], "a": {"nested": null}, "": ""}),
            json!(u64::MAX),
            json!([]),
        ] {
            assert_eq!(json_text(&value), value.to_string());
        }
    }
}
