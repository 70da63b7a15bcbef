//! The stage's global allocator: the C library's malloc for everything, except large blocks
//! (volumes, label maps), which are whole wasm pages taken with `memory.grow`.
//!
//! Why: wasi-libc's malloc has no mmap, so its `calloc` clears every block it hands out,
//! fresh pages included. A 512×512×300 label map is then written twice — 150 MB of memset,
//! faulting in every page — where native code gets untouched zero pages from the kernel and
//! writes only the labelled runs. Pages that `memory.grow` adds are zero by the wasm spec, so
//! a large zeroed block from fresh pages needs no clearing at all. Large blocks given back
//! are kept on a short free list and reused (cleared then, as they must be); a linear memory
//! never shrinks, so nothing is lost by not handing them to malloc.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Blocks of at least this many bytes are whole pages of their own.
const LARGE: usize = 4 << 20;
const PAGE: usize = 64 << 10;
/// Large blocks kept for reuse; one given back when the list is full joins the largest
/// neighbour it can, else the smallest entry is dropped for it (that memory stays unused).
const KEPT: usize = 64;

#[derive(Clone, Copy)]
struct Free {
    start: usize,
    pages: usize,
}

struct Large {
    free: [Free; KEPT],
    len: usize,
}

pub struct StageAllocator {
    // A stage is one thread (wasm32-wasip2 has none other), so the list needs no lock.
    large: UnsafeCell<Large>,
}

// SAFETY: wasm32-wasip2 components run single-threaded; nothing else can reach the list.
unsafe impl Sync for StageAllocator {}

impl StageAllocator {
    pub const fn new() -> Self {
        StageAllocator {
            large: UnsafeCell::new(Large {
                free: [Free { start: 0, pages: 0 }; KEPT],
                len: 0,
            }),
        }
    }

    fn pages(size: usize) -> usize {
        size.div_ceil(PAGE)
    }

    /// A block of `pages` pages and whether it is known to be zero: a kept one (first
    /// fit, split) or fresh pages.
    unsafe fn take(&self, pages: usize) -> Option<(*mut u8, bool)> {
        let large = &mut *self.large.get();
        let list = &mut large.free[..large.len];
        if let Some(i) = list.iter().position(|f| f.pages >= pages) {
            let f = list[i];
            if f.pages == pages {
                large.len -= 1;
                large.free[i] = large.free[large.len];
            } else {
                large.free[i] = Free {
                    start: f.start + pages * PAGE,
                    pages: f.pages - pages,
                };
            }
            return Some((f.start as *mut u8, false));
        }
        let old = core::arch::wasm32::memory_grow::<0>(pages);
        if old == usize::MAX {
            return None;
        }
        Some(((old * PAGE) as *mut u8, true))
    }

    unsafe fn give_back(&self, ptr: *mut u8, pages: usize) {
        let large = &mut *self.large.get();
        let start = ptr as usize;
        // Join a neighbour when there is one: blocks freed in turn stay one block.
        for f in &mut large.free[..large.len] {
            if f.start + f.pages * PAGE == start {
                f.pages += pages;
                return;
            }
            if start + pages * PAGE == f.start {
                f.start = start;
                f.pages += pages;
                return;
            }
        }
        if large.len < KEPT {
            large.free[large.len] = Free { start, pages };
            large.len += 1;
        } else if let Some(smallest) = (0..KEPT).min_by_key(|&i| large.free[i].pages) {
            if large.free[smallest].pages < pages {
                large.free[smallest] = Free { start, pages };
            }
        }
    }

    unsafe fn large(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if layout.align() > PAGE {
            return std::ptr::null_mut();
        }
        match self.take(Self::pages(layout.size())) {
            Some((ptr, fresh)) => {
                if zeroed && !fresh {
                    ptr.write_bytes(0, layout.size());
                }
                ptr
            }
            None => std::ptr::null_mut(),
        }
    }
}

impl Default for StageAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// A block is large exactly when its layout's size is at least LARGE: `realloc` moves a
// block between malloc and pages whenever its size crosses that line, so `dealloc`, which
// is given the layout, always knows which side owns it.
unsafe impl GlobalAlloc for StageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            self.large(layout, false)
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            self.large(layout, true)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE {
            self.give_back(ptr, Self::pages(layout.size()))
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old_large, new_large) = (layout.size() >= LARGE, new_size >= LARGE);
        if !old_large && !new_large {
            return System.realloc(ptr, layout, new_size);
        }
        if old_large && new_large {
            let (old_pages, new_pages) = (Self::pages(layout.size()), Self::pages(new_size));
            // Within its pages, or shrinking: in place, the tail given back.
            if new_pages <= old_pages {
                if new_pages < old_pages {
                    self.give_back(ptr.add(new_pages * PAGE), old_pages - new_pages);
                }
                return ptr;
            }
            // The last block of the memory grows in place (a Vec filled by pushes, a file
            // read to its end): no copy.
            let end = ptr as usize + old_pages * PAGE;
            if end == core::arch::wasm32::memory_size::<0>() * PAGE
                && core::arch::wasm32::memory_grow::<0>(new_pages - old_pages) != usize::MAX
            {
                return ptr;
            }
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let moved = self.alloc(new_layout);
        if !moved.is_null() {
            std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        moved
    }
}
