//! Disk watermarks: above the high watermark (the share of the state directory's
//! filesystem in use) DIMSE and STOW-RS ingest refuse with a transient status (`0xA700`
//! Out of Resources, HTTP 507) so senders retry later; they resume once use is below the
//! low watermark. The gap between the two keeps ingest from flapping at the line.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The watermarks, as shares of the filesystem (0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermarks {
    pub high: f64,
    pub low: f64,
}

impl Default for Watermarks {
    fn default() -> Self {
        Watermarks {
            high: 0.95,
            low: 0.90,
        }
    }
}

/// Whether ingest is open, from the disk as it is now.
pub struct DiskGuard {
    dir: PathBuf,
    marks: Watermarks,
    refusing: AtomicBool,
    /// Instances and bodies refused for the disk, for `/metrics`.
    pub refused: AtomicU64,
}

impl DiskGuard {
    pub fn new(dir: PathBuf, marks: Watermarks) -> Self {
        DiskGuard {
            dir,
            marks,
            refusing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        }
    }

    /// The share of the state directory's filesystem in use (blocks not available to us).
    pub fn used(&self) -> Option<f64> {
        let s = rustix::fs::statvfs(&self.dir).ok()?;
        (s.f_blocks > 0).then(|| 1.0 - s.f_bavail as f64 / s.f_blocks as f64)
    }

    /// Ok while ingest may go on; else why not, for the refusal and the log.
    pub fn admit(&self) -> Result<(), String> {
        let Some(used) = self.used() else {
            return Ok(()); // a filesystem that cannot say is not refused for it
        };
        match self.step(used) {
            true => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(format!(
                    "the disk holding the state is {:.1}% full, above the high watermark of {:.1}%: ingest resumes below {:.1}%; retry later",
                    used * 100.0,
                    self.marks.high * 100.0,
                    self.marks.low * 100.0
                ))
            }
            false => Ok(()),
        }
    }

    /// True while refusing, after taking in `used`: refusing starts above the high
    /// watermark and stops below the low one.
    fn step(&self, used: f64) -> bool {
        let was = self.refusing.load(Ordering::Relaxed);
        let now = if was {
            used >= self.marks.low
        } else {
            used > self.marks.high
        };
        if now != was {
            self.refusing.store(now, Ordering::Relaxed);
            match now {
                true => tracing::warn!(
                    used_percent = used * 100.0,
                    high_percent = self.marks.high * 100.0,
                    "disk above the high watermark: DIMSE and STOW-RS ingest refused"
                ),
                false => tracing::warn!(
                    used_percent = used * 100.0,
                    low_percent = self.marks.low * 100.0,
                    "disk below the low watermark: ingest resumed"
                ),
            }
        }
        now
    }

    /// Whether ingest is refused now (as last measured).
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusing_starts_above_high_and_stops_below_low() {
        let g = DiskGuard::new(
            PathBuf::from("/"),
            Watermarks {
                high: 0.9,
                low: 0.8,
            },
        );
        assert!(!g.step(0.85), "below high: open");
        assert!(g.step(0.91), "above high: refused");
        assert!(g.step(0.85), "between the marks it stays refused");
        assert!(!g.step(0.79), "below low: open again");
        assert!(!g.step(0.85), "and between the marks it stays open");
    }

    #[test]
    fn a_real_filesystem_is_measured() {
        let g = DiskGuard::new(std::env::temp_dir(), Watermarks::default());
        let used = g.used().unwrap();
        assert!((0.0..=1.0).contains(&used), "{used}");
    }
}
