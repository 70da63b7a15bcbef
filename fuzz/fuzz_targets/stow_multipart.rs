//! STOW-RS bodies: any bytes, read in any chunk sizes, must give parts or a clear error,
//! never a panic, and never more parts than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;
use ward::service::multipart::MultipartReader;

/// Hands out the input in chunks whose sizes come from its first byte.
struct Chunks<'a>(&'a [u8], usize);

impl Read for Chunks<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(out.len()).min(self.1);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let mut reader = MultipartReader::new(Chunks(body, 1 + step as usize * 97), "b", 64);
    while let Ok(Some(part)) = reader.next_part() {
        let _ = part.header("content-type");
        if reader.copy_content(&mut std::io::sink()).is_err() {
            break;
        }
    }
    assert!(reader.parts() <= 64);
});
