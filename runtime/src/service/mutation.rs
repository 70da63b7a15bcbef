//! Deterministic mutation of valid inputs, for the smoke tests of the parsers that read
//! what the network sends (the coverage-guided fuzz targets in `fuzz/` go further).

/// xorshift64: a fixed seed gives the same sequence on every run and machine.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One to four edits of `bytes`: a bit flipped, a byte set to an edge value, bytes
    /// inserted or removed, or the tail cut off.
    pub fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..1 + self.below(4) {
            let at = self.below(bytes.len() as u64 + 1) as usize;
            match self.below(5) {
                0 if at < bytes.len() => bytes[at] ^= 1 << self.below(8),
                1 if at < bytes.len() => {
                    bytes[at] = [0, 0xff, b'\r', b'\n', b'-', b'0', b'7'][self.below(7) as usize]
                }
                2 => {
                    let n = 1 + self.below(16) as usize;
                    let b = self.next() as u8;
                    bytes.splice(at..at, std::iter::repeat_n(b, n));
                }
                3 if at < bytes.len() => {
                    let n = (1 + self.below(16) as usize).min(bytes.len() - at);
                    bytes.drain(at..at + n);
                }
                _ => bytes.truncate(at),
            }
        }
    }
}
