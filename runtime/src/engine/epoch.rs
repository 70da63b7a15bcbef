//! The epoch ticker: advances the engine's epoch at a fixed period so every running stage
//! can be given a wall-clock deadline (`Store::set_epoch_deadline`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the epoch advances: the resolution of stage deadlines.
pub const EPOCH_PERIOD: Duration = Duration::from_millis(10);

pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: wasmtime::Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ward-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_PERIOD);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }

    /// Epoch ticks covering `timeout` (rounded up, at least one).
    pub fn ticks_for(timeout: Duration) -> u64 {
        let period = EPOCH_PERIOD.as_nanos();
        (timeout.as_nanos().div_ceil(period) as u64).max(1)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
