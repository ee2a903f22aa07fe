//! Workflow definitions: any JSON document gives a workflow or the problems that stop it,
//! never a panic and never a silent refusal.
#![no_main]

use cordon_core::workflow::definition::read_workflow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let (workflow, problems) = read_workflow("fuzz", &document);
    assert!(workflow.is_some() || !problems.is_empty(), "refused without a problem: {document}");
});
