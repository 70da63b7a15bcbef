//! DIMSE command sets: any bytes a peer sends as a command give a command or an error, never
//! a panic, and never an allocation of what a length field declares.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ward::dicom::dimse::decode(data);
});
