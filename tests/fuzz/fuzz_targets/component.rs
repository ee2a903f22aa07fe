//! The loader's pre-check: whatever bytes arrive as a connector file, the header and name
//! checks answer with a problem or a pass, never a panic.
#![no_main]

use cordon_core::component::{check_header, precheck, top_level_names};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let passed = precheck(data).is_ok();
    if passed {
        assert!(check_header(data).is_ok());
        assert!(top_level_names(data).is_ok());
    }
});
