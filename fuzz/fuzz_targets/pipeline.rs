//! Pipeline files: any text must give a pipeline or located problems, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ward::pipeline::parse(Path::new("/nonexistent/fuzz/pipeline.yaml"), text);
    }
});
