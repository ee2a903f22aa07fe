//! Workflow expressions: parsing and evaluating any template never panics.
#![no_main]

use cordon_core::expr::{JsonScope, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Longer inputs only nest deeper; the short ones reach every function.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 512 {
        return;
    }
    let Ok(template) = Template::parse(text) else {
        return;
    };
    let scope = JsonScope::new(serde_json::json!({
        "parameters": {"name": "cordon", "count": 3, "list": [1, 2, 3]},
        "variables": {"total": 1.5},
        "trigger": {"outputs": {"body": {"id": 7, "items": ["a", "b"]}}},
        "actions": {"Step": {"outputs": {"body": {"ok": true}}}}
    }));
    let _ = template.evaluate(&scope);
});
