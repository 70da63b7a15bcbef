//! Files a stage deleted from its results but still holds open. Their blocks stay taken
//! until the last descriptor closes, and no walk of the results sees them; but every file a
//! stage opens is a descriptor of this process (WASI's files are the host's), so they are
//! found among the process's own descriptors: a regular file with no link left whose last
//! path lay under the results.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Deleted files still open, counted once each however many descriptors hold them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub files: u64,
    pub bytes: u64,
}

/// Where this process's descriptors are listed (Linux).
const FD_DIR: &str = "/proc/self/fd";

/// The deleted files held open by this process whose path lay under one of `dirs` (given as
/// the kernel names them: canonical, absolute).
pub fn held_deleted(dirs: &[PathBuf]) -> std::io::Result<Held> {
    let mut seen = BTreeSet::new();
    let mut held = Held::default();
    for entry in std::fs::read_dir(FD_DIR)? {
        let Ok(entry) = entry else { continue };
        let link = entry.path();
        // A descriptor closed since the listing is simply gone.
        let Ok(target) = std::fs::read_link(&link) else {
            continue;
        };
        let Some(was) = target
            .as_os_str()
            .as_bytes()
            .strip_suffix(b" (deleted)")
            .map(|p| Path::new(std::ffi::OsStr::from_bytes(p)))
        else {
            continue;
        };
        if !dirs.iter().any(|d| was.starts_with(d)) {
            continue;
        }
        // The descriptor's file itself (the kernel follows the link even once deleted).
        let Ok(meta) = std::fs::metadata(&link) else {
            continue;
        };
        if !meta.is_file() || meta.nlink() != 0 || !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        held.files += 1;
        // What it takes on disk: its length, or its blocks if more were allocated.
        held.bytes += meta.len().max(meta.blocks() * 512);
    }
    Ok(held)
}
