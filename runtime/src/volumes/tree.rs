//! Walking a directory tree relative to directory descriptors (`openat`, `fstatat`,
//! `unlinkat`, never a full path), so a tree deeper than `PATH_MAX` is walked like any other,
//! and no entry is followed through a symbolic link.
//!
//! A stage's results are walked this way: to measure them against its quota, to check its
//! links and to remove them. Nesting is bounded ([`MAX_DEPTH`]): the walk keeps one
//! descriptor per level, and a tree nested deeper is refused as a whole.

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;
use std::ffi::{CStr, CString, OsStr};
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The deepest nesting of directories the host walks: a directory this many levels below
/// the root may hold files, but not another directory.
pub const MAX_DEPTH: usize = 256;

/// Why a tree could not be walked. Paths are relative to the walk's root.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(
        "directories nest deeper than {limit} levels (at {})",
        abbreviate(path)
    )]
    TooDeep { path: PathBuf, limit: usize },
    #[error("{}: {source}", abbreviate(path))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One entry met by [`walk`].
pub struct WalkEntry<'a> {
    /// The directory holding the entry.
    pub dir: BorrowedFd<'a>,
    pub name: &'a CStr,
    /// The entry's path relative to the root (may be longer than `PATH_MAX`: for messages
    /// and digests, never for system calls).
    pub path: &'a Path,
    pub kind: FileType,
    /// 1 for the root's own entries.
    pub depth: usize,
}

/// A directory being read: its descriptor and its entries in name order.
struct Level {
    fd: OwnedFd,
    entries: Vec<(CString, FileType)>,
    next: usize,
}

impl Level {
    fn read(fd: OwnedFd, path: &Path) -> Result<Level, WalkError> {
        let mut entries = Vec::new();
        for entry in Dir::read_from(&fd).map_err(|e| io_error(path, e))? {
            let entry = entry.map_err(|e| io_error(path, e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            entries.push((name.to_owned(), entry.file_type()));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Level {
            fd,
            entries,
            next: 0,
        })
    }
}

/// Opens the directory `name` in `dir`, refusing a symbolic link.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the root of a walk (a path the host chose).
pub fn open_root(root: &Path) -> Result<OwnedFd, WalkError> {
    rustix::fs::openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(Path::new(""), e))
}

/// Walks every entry under `root` depth first, in name order at each level (so the order is
/// that of the sorted relative paths), and hands each to `visit`; a directory is entered
/// after its visit. Entries that vanish during the walk are skipped. `visit` may stop the
/// walk early with `ControlFlow::Break`.
pub fn walk(
    root: &Path,
    mut visit: impl FnMut(&WalkEntry<'_>) -> Result<ControlFlow<()>, WalkError>,
) -> Result<(), WalkError> {
    let mut path = PathBuf::new();
    let mut stack = vec![Level::read(open_root(root)?, &path)?];
    while let Some(top) = stack.last_mut() {
        let Some((name, kind)) = top.entries.get(top.next).cloned() else {
            stack.pop();
            path.pop();
            continue;
        };
        top.next += 1;
        let depth = stack.len();
        path.push(OsStr::from_bytes(name.to_bytes()));
        let dir = stack.last().expect("a level is open").fd.as_fd();
        let kind = match kind {
            FileType::Unknown => match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => {
                    path.pop();
                    continue;
                }
                Err(e) => return Err(io_error(&path, e)),
            },
            known => known,
        };
        let entry = WalkEntry {
            dir,
            name: &name,
            path: &path,
            kind,
            depth,
        };
        if visit(&entry)?.is_break() {
            return Ok(());
        }
        if kind != FileType::Directory {
            path.pop();
            continue;
        }
        if depth > MAX_DEPTH {
            return Err(WalkError::TooDeep {
                path,
                limit: MAX_DEPTH,
            });
        }
        match open_dir_at(dir, &name) {
            Ok(fd) => {
                let level = Level::read(fd, &path)?;
                stack.push(level);
            }
            // Gone, or replaced by something else, since it was listed (a running stage).
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {
                path.pop();
            }
            Err(e) => return Err(io_error(&path, e)),
        }
    }
    Ok(())
}

/// Removes everything under `root`, keeping `root` itself, however deep the tree: a
/// directory met [`MAX_DEPTH`] levels down is first moved up to the root (a rename within
/// the tree), and removed from there on a later pass, so the descriptors held stay bounded.
pub fn clear_dir(root: &Path) -> Result<(), WalkError> {
    let root_fd = open_root(root)?;
    let mut hoisted = 0u64;
    loop {
        let mut progress = false;
        let mut path = PathBuf::new();
        let again = root_fd.try_clone().map_err(|source| WalkError::Io {
            path: path.clone(),
            source,
        })?;
        let top_level = Level::read(again, &path)?;
        if top_level.entries.is_empty() {
            return Ok(());
        }
        // Each level's name in its parent, to remove it once emptied.
        let mut names: Vec<CString> = Vec::new();
        let mut stack = vec![top_level];
        while let Some(top) = stack.last_mut() {
            let Some((name, kind)) = top.entries.get(top.next).cloned() else {
                let emptied = stack.pop().expect("a level is open");
                drop(emptied);
                if let (Some(name), Some(parent)) = (names.pop(), stack.last()) {
                    match rustix::fs::unlinkat(&parent.fd, &name, AtFlags::REMOVEDIR) {
                        Ok(()) | Err(Errno::NOENT) => progress = true,
                        Err(e) => return Err(io_error(&path, e)),
                    }
                    path.pop();
                }
                continue;
            };
            top.next += 1;
            path.push(OsStr::from_bytes(name.to_bytes()));
            let dir = stack.last().expect("a level is open").fd.as_fd();
            let is_dir = match kind {
                FileType::Directory => true,
                FileType::Unknown => {
                    match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                        Err(Errno::NOENT) => {
                            path.pop();
                            continue;
                        }
                        Err(e) => return Err(io_error(&path, e)),
                    }
                }
                _ => false,
            };
            if !is_dir {
                match rustix::fs::unlinkat(dir, &name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => progress = true,
                    Err(e) => return Err(io_error(&path, e)),
                }
                path.pop();
                continue;
            }
            if stack.len() >= MAX_DEPTH {
                hoist(dir, &name, &root_fd, &mut hoisted).map_err(|e| io_error(&path, e))?;
                progress = true;
                path.pop();
                continue;
            }
            match open_dir_at(dir, &name) {
                Ok(fd) => {
                    let level = Level::read(fd, &path)?;
                    stack.push(level);
                    names.push(name);
                }
                Err(Errno::NOENT) => {
                    path.pop();
                }
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        if !progress {
            return Err(io_error(
                Path::new(""),
                Errno::NOTEMPTY, // nothing could be removed: give up rather than loop
            ));
        }
    }
}

/// Moves directory `name` in `dir` to the top of the tree under a name of its own.
fn hoist(
    dir: BorrowedFd<'_>,
    name: &CStr,
    root: &OwnedFd,
    counter: &mut u64,
) -> rustix::io::Result<()> {
    loop {
        *counter += 1;
        let new_name = CString::new(format!(".ward-removing-{counter}")).expect("no NUL");
        match rustix::fs::renameat_with(dir, name, root, &new_name, RenameFlags::NOREPLACE) {
            Err(Errno::EXIST) => continue,
            other => return other,
        }
    }
}

fn io_error(path: &Path, e: Errno) -> WalkError {
    WalkError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// A relative path short enough for a message: its start and how many levels it has.
pub fn abbreviate(path: &Path) -> String {
    const KEEP: usize = 120;
    let text = path.to_string_lossy();
    if text.len() <= KEEP {
        return text.into_owned();
    }
    let mut cut = KEEP;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… ({} levels, {} bytes)",
        &text[..cut],
        path.components().count(),
        text.len()
    )
}
