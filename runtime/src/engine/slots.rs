//! Stage slots: one per instance the pooling allocator holds, taken before a stage's store
//! is built and given back only after it is dropped, so stages wait for a free slot instead of
//! failing to instantiate when many jobs share the engine.

use std::sync::{Condvar, Mutex};

pub struct StageSlots {
    free: Mutex<u32>,
    freed: Condvar,
}

/// A taken slot; dropping it gives the slot back.
pub struct SlotPermit<'a> {
    slots: &'a StageSlots,
}

impl StageSlots {
    pub fn new(count: u32) -> StageSlots {
        StageSlots {
            free: Mutex::new(count),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting for one if all are taken.
    pub fn acquire(&self) -> SlotPermit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        SlotPermit { slots: self }
    }
}

impl Drop for SlotPermit<'_> {
    fn drop(&mut self) {
        *self.slots.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_full_set_of_slots_makes_the_next_wait() {
        let slots = Arc::new(StageSlots::new(1));
        let first = slots.acquire();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let slots = slots.clone();
            std::thread::spawn(move || {
                let _second = slots.acquire();
                tx.send(()).unwrap();
            })
        };
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err(),
            "the second waits"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("and gets the slot once it is given back");
        waiter.join().unwrap();
    }
}
