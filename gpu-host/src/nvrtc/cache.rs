//! Compiled PTX kept by source and architecture, within a number of entries and of bytes:
//! past either, the least recently used entries go.

use std::collections::HashMap;

/// Which compile an entry is: the source's SHA-256 and the architecture.
pub type Key = (String, Option<&'static str>);

pub struct PtxCache {
    max_entries: usize,
    max_bytes: u64,
    bytes: u64,
    clock: u64,
    entries: HashMap<Key, (String, u64)>,
}

impl PtxCache {
    pub fn new(max_entries: usize, max_bytes: u64) -> PtxCache {
        PtxCache {
            max_entries,
            max_bytes,
            bytes: 0,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The PTX for `key`, which becomes the most recently used.
    pub fn get(&mut self, key: &Key) -> Option<String> {
        let now = self.tick();
        let (ptx, used) = self.entries.get_mut(key)?;
        *used = now;
        Some(ptx.clone())
    }

    /// Keeps `ptx` for `key`, evicting the least recently used entries until both bounds
    /// hold; PTX larger than the whole cache is not kept.
    pub fn insert(&mut self, key: Key, ptx: String) {
        let size = ptx.len() as u64;
        if size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        let now = self.tick();
        if let Some((old, _)) = self.entries.insert(key, (ptx, now)) {
            self.bytes -= old.len() as u64;
        }
        self.bytes += size;
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
                .expect("not empty while over a bound");
            let (gone, _) = self.entries.remove(&oldest).expect("just found");
            self.bytes -= gone.len() as u64;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Key {
        (format!("source-{n}"), Some("compute_80"))
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut c = PtxCache::new(2, 1 << 20);
        c.insert(key(1), "one".into());
        c.insert(key(2), "two".into());
        // 1 is used again, so 2 is now the least recently used.
        assert_eq!(c.get(&key(1)).as_deref(), Some("one"));
        c.insert(key(3), "three".into());
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(2)), None);
        assert_eq!(c.get(&key(1)).as_deref(), Some("one"));
        assert_eq!(c.get(&key(3)).as_deref(), Some("three"));
    }

    #[test]
    fn the_byte_bound_holds_and_oversized_ptx_is_not_kept() {
        let mut c = PtxCache::new(100, 10);
        c.insert(key(1), "aaaa".into());
        c.insert(key(2), "bbbb".into());
        c.insert(key(3), "cccc".into());
        assert_eq!((c.len(), c.bytes()), (2, 8));
        assert_eq!(c.get(&key(1)), None);
        c.insert(key(4), "x".repeat(11));
        assert_eq!(c.get(&key(4)), None);
        assert_eq!(c.bytes(), 8);
        // Replacing an entry counts its new size only.
        c.insert(key(2), "bb".into());
        assert_eq!(c.bytes(), 6);
    }
}
