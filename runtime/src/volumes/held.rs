//! Files a stage deleted from its results but still holds open. Their blocks stay taken
//! until the last descriptor closes, and no walk of the results sees them; but every file a
//! stage opens is a descriptor of this process (WASI's files are the host's), so they are
//! found among the process's own descriptors: a regular file with no link left whose last
//! path lay under the results.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Deleted files still open, counted once each however many descriptors hold them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub files: u64,
    pub bytes: u64,
}

/// Where this process's descriptors are listed (Linux).
const FD_DIR: &str = "/proc/self/fd";

/// One deleted regular file this process holds open.
#[derive(Debug, Clone)]
struct HeldFile {
    /// The path it had, as the kernel names it.
    was: PathBuf,
    dev: u64,
    ino: u64,
    bytes: u64,
}

/// The deleted files held open by this process whose path lay under one of `dirs` (given as
/// the kernel names them: canonical, absolute), from a listing made now.
pub fn held_deleted(dirs: &[PathBuf]) -> std::io::Result<Held> {
    held_deleted_within(dirs, Duration::ZERO)
}

/// Like [`held_deleted`], from a listing at most `max_age` old: the listing reads every
/// descriptor of the process (about 1.6 µs each), so the stages running at once share one
/// rather than each making its own.
pub fn held_deleted_within(dirs: &[PathBuf], max_age: Duration) -> std::io::Result<Held> {
    static LAST: Mutex<Option<(Instant, Arc<Vec<HeldFile>>)>> = Mutex::new(None);
    let files = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((at, files)) if !max_age.is_zero() && at.elapsed() <= max_age => files.clone(),
            _ => {
                let files = Arc::new(list_held()?);
                *last = Some((Instant::now(), files.clone()));
                files
            }
        }
    };
    let mut seen = BTreeSet::new();
    let mut held = Held::default();
    for file in files.iter() {
        if dirs.iter().any(|d| file.was.starts_with(d)) && seen.insert((file.dev, file.ino)) {
            held.files += 1;
            held.bytes += file.bytes;
        }
    }
    Ok(held)
}

/// Every deleted regular file this process holds open. Each descriptor is looked at with
/// one fstat (no path walk, no link text); only a regular file with no link left has its
/// old path read.
fn list_held() -> std::io::Result<Vec<HeldFile>> {
    let mut held = Vec::new();
    for entry in std::fs::read_dir(FD_DIR)? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<std::os::fd::RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor is only given to fstat. One closed since the listing gives
        // an error, one closed and reused another file's status: both are skipped or
        // counted as the file they now are, never written to or closed here.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = rustix::fs::fstat(fd) else {
            continue;
        };
        let regular =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        if !regular || st.st_nlink != 0 {
            continue;
        }
        // A descriptor closed since is simply gone.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(was) = target
            .as_os_str()
            .as_bytes()
            .strip_suffix(b" (deleted)")
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        else {
            continue;
        };
        held.push(HeldFile {
            was,
            dev: st.st_dev,
            ino: st.st_ino,
            // What it takes on disk: its length, or its blocks if more were allocated.
            bytes: (st.st_size.max(0) as u64).max(st.st_blocks.max(0) as u64 * 512),
        });
    }
    Ok(held)
}
