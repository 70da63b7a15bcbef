//! Symbolic links in a stage's results, resolved as the kernel resolves them: component by
//! component from the link's directory, following every link met on the way, so a chain of
//! links that each look harmless (`a -> .`, `up -> a/..`) is judged by where it really leads.

use super::tree::{open_dir_at, open_root, walk, WalkError, MAX_DEPTH};
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Links followed in one resolution before it is taken for a loop (Linux's `MAXSYMLINKS`).
pub const MAX_LINK_HOPS: usize = 40;

/// Where a link leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// To an entry inside the root.
    Inside,
    /// To nothing (a missing entry, or a file used as a directory): following it fails.
    Dangling,
    /// Out of the root, or around in circles; the reason.
    Escapes(&'static str),
}

/// Resolves the link at `link` (relative to the root open as `root`) whose target is
/// `target`, treating the root as the top of the world: a step above it escapes.
pub fn resolve(root: BorrowedFd<'_>, link: &Path, target: &Path) -> Result<Resolution, WalkError> {
    let io = |e: Errno| WalkError::Io {
        path: link.to_path_buf(),
        source: e.into(),
    };
    // The directories from the root down to where resolution stands; each a real
    // directory, never a link, so `..` is simply a step back.
    let mut stack: Vec<OwnedFd> = Vec::new();
    for c in link.parent().into_iter().flat_map(|p| p.components()) {
        let Component::Normal(name) = c else {
            continue;
        };
        let dir = stack.last().map_or(root, |d| d.as_fd());
        let fd = open_dir_at(dir, &c_name(name)).map_err(io)?;
        stack.push(fd);
    }
    let mut pending: VecDeque<OsString> = VecDeque::new();
    if !queue_target(&mut pending, target) {
        return Ok(Resolution::Escapes("its target is an absolute path"));
    }
    let mut hops = 1;
    while let Some(c) = pending.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            if stack.pop().is_none() {
                return Ok(Resolution::Escapes("it climbs above the results"));
            }
            continue;
        }
        let name = c_name(&c);
        let dir = stack.last().map_or(root, |d| d.as_fd());
        let st = match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Resolution::Dangling),
            Err(e) => return Err(io(e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Ok(Resolution::Escapes("it loops (too many links to follow)"));
                }
                let next = rustix::fs::readlinkat(dir, &name, Vec::new()).map_err(io)?;
                let next = PathBuf::from(OsString::from_vec(next.into_bytes()));
                if !queue_target(&mut pending, &next) {
                    return Ok(Resolution::Escapes(
                        "a link on its way has an absolute target",
                    ));
                }
            }
            FileType::Directory => {
                if pending.iter().all(|c| c.is_empty() || c == ".") {
                    return Ok(Resolution::Inside);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(WalkError::TooDeep {
                        path: link.to_path_buf(),
                        limit: MAX_DEPTH,
                    });
                }
                stack.push(open_dir_at(dir, &name).map_err(io)?);
            }
            _ => {
                return Ok(if pending.iter().all(|c| c.is_empty()) {
                    Resolution::Inside
                } else {
                    // A file used as a directory (`file/..`): the kernel refuses it.
                    Resolution::Dangling
                });
            }
        }
    }
    Ok(Resolution::Inside)
}

/// Puts the components of `target` at the front of `pending`; false for an absolute target.
fn queue_target(pending: &mut VecDeque<OsString>, target: &Path) -> bool {
    if target.has_root() {
        return false;
    }
    // Split on '/' by hand: `Path::components` drops a trailing slash, which matters
    // (`file/` is not `file`: the last component must then be a directory, like `file/.`).
    let parts: Vec<&[u8]> = target
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .collect();
    let last = parts.len() - 1;
    for (i, part) in parts.into_iter().enumerate().rev() {
        let part = if part.is_empty() && i == last && i > 0 {
            &b"."[..]
        } else {
            part
        };
        pending.push_front(OsString::from_vec(part.to_vec()));
    }
    true
}

fn c_name(name: &std::ffi::OsStr) -> CString {
    // Names read from a directory never hold NUL; a link target may not either.
    CString::new(name.as_bytes()).unwrap_or_default()
}

/// A link that leads out of the root: where it is, its target, and why it escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscapingLink {
    pub link: PathBuf,
    pub target: PathBuf,
    pub why: &'static str,
}

/// Finds the symbolic links under `root` that resolve out of it (or loop), and removes them.
pub fn remove_escaping(root: &Path) -> Result<Vec<EscapingLink>, WalkError> {
    let mut links = Vec::new();
    walk(root, |entry| {
        if entry.kind == FileType::Symlink {
            let target =
                rustix::fs::readlinkat(entry.dir, entry.name, Vec::new()).map_err(|e| {
                    WalkError::Io {
                        path: entry.path.to_path_buf(),
                        source: e.into(),
                    }
                })?;
            links.push((
                entry.path.to_path_buf(),
                PathBuf::from(OsString::from_vec(target.into_bytes())),
            ));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let root_fd = open_root(root)?;
    // Every link is judged before any is removed, so no verdict depends on the order.
    let mut escaping = Vec::new();
    for (link, target) in links {
        if let Resolution::Escapes(why) = resolve(root_fd.as_fd(), &link, &target)? {
            escaping.push(EscapingLink { link, target, why });
        }
    }
    for found in &escaping {
        remove_link(root_fd.as_fd(), &found.link)?;
    }
    Ok(escaping)
}

/// Removes the link at `link` (relative to the root), reaching it without following links.
fn remove_link(root: BorrowedFd<'_>, link: &Path) -> Result<(), WalkError> {
    let io = |e: Errno| WalkError::Io {
        path: link.to_path_buf(),
        source: e.into(),
    };
    let mut parent: Option<OwnedFd> = None;
    let names: Vec<_> = link
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(c_name(n)),
            _ => None,
        })
        .collect();
    let Some((last, dirs)) = names.split_last() else {
        return Ok(());
    };
    for name in dirs {
        let dir = parent.as_ref().map_or(root, |d| d.as_fd());
        parent = Some(open_dir_at(dir, name).map_err(io)?);
    }
    let dir = parent.as_ref().map_or(root, |d| d.as_fd());
    match rustix::fs::unlinkat(dir, last, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io(e)),
    }
}
