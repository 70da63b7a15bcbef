//! The deterministic content of test messages, and a checksum of what was received.

/// A message of `size` bytes: a fixed body pattern. [`stamp`] writes the message number
/// over the first bytes, so one buffer serves every message.
pub fn body(size: usize) -> Vec<u8> {
    (0..size).map(body_byte).collect()
}

/// Byte `j` of every message's body (from byte 8 on, the part [`stamp`] leaves).
fn body_byte(j: usize) -> u8 {
    (j % 251) as u8
}

/// Writes message number `i`, little-endian, over the first (up to) 8 bytes.
pub fn stamp(message: &mut [u8], i: u64) {
    let n = message.len().min(8);
    message[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

/// Checks a received message: its body, and its number when the order is known.
pub fn check(message: &[u8], number: Option<u64>) -> Result<(), String> {
    let n = message.len().min(8);
    if let Some(i) = number {
        if message[..n] != i.to_le_bytes()[..n] {
            return Err(format!(
                "message {i} is stamped {:?}, expected {:?}",
                &message[..n],
                &i.to_le_bytes()[..n]
            ));
        }
    }
    match (n..message.len()).find(|&j| message[j] != body_byte(j)) {
        None => Ok(()),
        Some(j) => Err(format!(
            "message of {} bytes differs from the pattern at byte {j}: {} instead of {}",
            message.len(),
            message[j],
            body_byte(j)
        )),
    }
}

/// FNV-1a (64-bit) over a sequence of byte strings, as if concatenated.
pub struct Fnv1a(u64);

impl Fnv1a {
    pub fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// 16 lower-case hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_messages_check() {
        let mut m = body(100);
        stamp(&mut m, 7);
        assert_eq!(check(&m, Some(7)), Ok(()));
        assert!(check(&m, Some(8)).is_err());
        m[50] ^= 1;
        assert!(check(&m, None).is_err());
        let mut tiny = body(3);
        stamp(&mut tiny, 0x0102_0304);
        assert_eq!(tiny, [4, 3, 2]);
        assert_eq!(check(&tiny, Some(0x0102_0304)), Ok(()));
    }

    #[test]
    fn fnv1a_known_values() {
        let mut h = Fnv1a::new();
        assert_eq!(h.hex(), "cbf29ce484222325");
        h.update(b"a");
        assert_eq!(h.hex(), "af63dc4c8601ec8c");
        let mut split = Fnv1a::new();
        split.update(b"foo");
        split.update(b"bar");
        let mut whole = Fnv1a::new();
        whole.update(b"foobar");
        assert_eq!(split.hex(), whole.hex());
        assert_eq!(whole.hex(), "85944171f73967e8");
    }
}
