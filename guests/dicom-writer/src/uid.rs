//! Deterministic UIDs: `2.25.<decimal of 128 bits of a SHA-256>` (PS3.5 B.2), so the same
//! input always gives the same UIDs and two runs give byte-identical files.

use sha2::{Digest, Sha256};

/// Hashes the parts (length-prefixed, so ("ab","c") and ("a","bc") differ) into a UID.
pub fn derive(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Drop the top bit: UID components must not start with 0 and 2.25 values are < 2^128.
    bytes[0] &= 0x7f;
    format!("2.25.{}", u128::from_be_bytes(bytes).max(1))
}

/// The SHA-256 of some bytes, to fold large inputs (label data) into `derive`.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
