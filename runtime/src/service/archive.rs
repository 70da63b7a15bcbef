//! Payload uploads and result downloads as tar archives. An upload is unpacked only as
//! regular files and directories under the target, with every path checked (no absolute
//! paths, no `..`, no links or devices) and the total size bounded while it is read.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the upload is not a tar archive: {0}")]
    NotTar(String),
    #[error("entry '{0}' leaves the payload (absolute path or '..')")]
    Escapes(String),
    #[error("entry '{path}' is a {kind}; payloads hold regular files and directories only")]
    NotAFile { path: String, kind: String },
    #[error(
        "the upload is over the {limit} byte limit (max-upload or the tenant's storage quota)"
    )]
    TooLarge { limit: u64 },
    #[error("the upload holds no files")]
    Empty,
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was unpacked.
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Unpacks the tar stream `from` into `dir`, at most `limit` bytes of file content.
pub fn unpack(from: impl Read, dir: &Path, limit: u64) -> Result<Unpacked, ArchiveError> {
    let mut archive = tar::Archive::new(from);
    let mut done = Unpacked { files: 0, bytes: 0 };
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::NotTar(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::NotTar(e.to_string()))?;
        let raw = entry
            .path()
            .map_err(|e| ArchiveError::NotTar(e.to_string()))?
            .into_owned();
        let shown = raw.display().to_string();
        let kind = entry.header().entry_type();
        let Some(relative) = safe_relative(&raw) else {
            if kind.is_dir() && raw.components().all(|c| matches!(c, Component::CurDir)) {
                continue;
            }
            return Err(ArchiveError::Escapes(shown));
        };
        let target = dir.join(&relative);
        let io = |source| ArchiveError::Io {
            path: target.clone(),
            source,
        };
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io)?;
            continue;
        }
        if !kind.is_file() {
            return Err(ArchiveError::NotAFile {
                path: shown,
                kind: format!("{kind:?}").to_lowercase(),
            });
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut out = std::fs::File::create(&target).map_err(io)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            done.bytes += n as u64;
            if done.bytes > limit {
                return Err(ArchiveError::TooLarge { limit });
            }
            out.write_all(&buf[..n]).map_err(io)?;
        }
        out.sync_all().map_err(io)?;
        done.files += 1;
    }
    if done.files == 0 {
        return Err(ArchiveError::Empty);
    }
    Ok(done)
}

/// A tar archive of everything under `dir` (regular files and directories), in memory.
pub fn pack(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}
