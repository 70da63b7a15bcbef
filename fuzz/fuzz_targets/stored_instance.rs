//! Received DICOM files: any bytes stored as an instance give its facts or a refusal, never a
//! panic, and never an allocation of what a length field declares.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ward::dicom::instance::inspect_bytes(data);
});
