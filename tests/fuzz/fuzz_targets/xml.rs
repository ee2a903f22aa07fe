//! XML from outside: any document and XPath give a value or an error, never a panic, a stack
//! overflow or a runaway allocation; and any document `json()` reads, `xml()` writes back as
//! well-formed XML.
#![no_main]

use cordon_core::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The document, then (after the first NUL, which XML cannot hold) the XPath.
    let (document, expression) = text.split_once('\0').unwrap_or((text, "//*"));
    let _ = xml::xpath(document, expression);
    if let Ok(serde_json::Value::Object(object)) = xml::to_json(document) {
        if let Err(e) = xml::from_json(&object) {
            panic!("json() of {document:?} gave {object:?}, which xml() refuses: {e}");
        }
    }
});
