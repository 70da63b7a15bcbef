//! Test support for the parsers of what peers send: a seeded mutator (the same inputs on
//! every run, so a failure reproduces) and a probe of the largest single allocation a
//! thread makes, so a test can assert that parsing never reserves what a length field
//! declares rather than what arrived.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request of each thread.
struct Probe;

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size)
        }
    });
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static PROBE: Probe = Probe;

/// Runs `f` and returns what it returned and the largest allocation it asked for.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// xorshift64*: small, fast, and the same sequence for the same seed.
pub struct Mutator(u64);

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A copy of `input` with a few bytes flipped, inserted, overwritten with a length-like
    /// value, or the tail cut off.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(6) {
                0 if at < out.len() => out[at] ^= 1 << self.below(8),
                1 => out.insert(at, self.next() as u8),
                2 if at + 4 <= out.len() => {
                    // What an attacker puts in a length field.
                    let big =
                        [0xFFFF_FFFFu32, 0xFFFF_FFF0, 0x8000_0000, 0x0001_0000][self.below(4)];
                    out[at..at + 4].copy_from_slice(&big.to_le_bytes());
                }
                3 if at + 4 <= out.len() => {
                    let big = [0xFFFF_FFFFu32, 0x7FFF_FFFF][self.below(2)];
                    out[at..at + 4].copy_from_slice(&big.to_be_bytes());
                }
                4 => out.truncate(at),
                _ if at < out.len() => out[at] = self.next() as u8,
                _ => {}
            }
        }
        out
    }
}
