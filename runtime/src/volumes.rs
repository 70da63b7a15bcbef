//! The volumes a stage sees: where each lives on the host, where it is mounted in the stage,
//! and with what rights; what a stage's results hold (walked relative to directory
//! descriptors, links resolved as the kernel would); and the content digest used to prove a
//! payload was not changed.

use crate::pipeline::{InputSource, StageSpec};
use rustix::fs::FileType;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

mod held;
mod links;
mod tree;

pub use held::{held_deleted, held_deleted_within, Held};
pub use links::{resolve, EscapingLink, Resolution, MAX_LINK_HOPS};
pub use tree::{abbreviate, clear_dir, walk, WalkEntry, WalkError, MAX_DEPTH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeKind {
    Payload,
    Results,
    InputFromStage,
    Dataset,
}

/// One directory mounted into a stage.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub name: String,
    pub kind: VolumeKind,
    /// The upstream stage or the dataset's name.
    pub source: Option<String>,
    pub host_path: PathBuf,
    pub guest_path: String,
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "operator '{operator}': dataset '{dataset}' was not given (pass --dataset {dataset}=DIR)"
    )]
    UnknownDataset { operator: String, dataset: String },
    #[error("{}: not a directory ({what})", path.display())]
    NotADirectory { path: PathBuf, what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", root.display())]
    Walk { root: PathBuf, source: WalkError },
}

/// Where a job's files live: `<root>/results/<stage>/<output>/`, `<root>/logs/<stage>.log`
/// and `<root>/summary.json`.
#[derive(Debug, Clone)]
pub struct JobLayout {
    pub root: PathBuf,
}

impl JobLayout {
    pub fn results_dir(&self, stage: &str, output: &str) -> PathBuf {
        self.root.join("results").join(stage).join(output)
    }

    pub fn log_path(&self, stage: &str) -> PathBuf {
        self.root.join("logs").join(format!("{stage}.log"))
    }

    pub fn summary_path(&self) -> PathBuf {
        self.root.join("summary.json")
    }
}

/// The mounts of `stage`: its inputs in pipeline order (payload, upstream results and
/// datasets, all read-only), then its own outputs (read-write).
pub fn plan_mounts(
    stage: &StageSpec,
    layout: &JobLayout,
    payload: &Path,
    datasets: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, VolumeError> {
    let mut mounts = Vec::new();
    for input in &stage.inputs {
        let (kind, source, host_path) = match &input.source {
            InputSource::Payload => (VolumeKind::Payload, None, payload.to_path_buf()),
            InputSource::Stage {
                stage: from,
                output,
            } => (
                VolumeKind::InputFromStage,
                Some(from.clone()),
                layout.results_dir(from, output),
            ),
            InputSource::Dataset { name } => {
                let dir = datasets
                    .get(name)
                    .ok_or_else(|| VolumeError::UnknownDataset {
                        operator: stage.name.clone(),
                        dataset: name.clone(),
                    })?;
                (VolumeKind::Dataset, Some(name.clone()), dir.clone())
            }
        };
        mounts.push(Mount {
            name: input.name.clone(),
            kind,
            source,
            host_path,
            guest_path: input.guest_path.clone(),
            read_only: true,
        });
    }
    for output in &stage.outputs {
        mounts.push(Mount {
            name: output.name.clone(),
            kind: VolumeKind::Results,
            source: None,
            host_path: layout.results_dir(&stage.name, &output.name),
            guest_path: output.guest_path.clone(),
            read_only: false,
        });
    }
    Ok(mounts)
}

/// What a stage's results hold: bytes of regular files, and entries (files, directories,
/// links).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub entries: u64,
}

/// The usage of every directory in `dirs`, together. Links are counted, never followed.
/// Best effort: what cannot be read is left out. A stage's results, where that would let
/// a stage hide what it wrote, are measured with [`measure`].
pub fn usage(dirs: &[&Path]) -> Usage {
    let mut total = Usage::default();
    for dir in dirs {
        let _ = measure_into(dir, &mut total);
    }
    total
}

/// The usage of `dir`, or why it cannot be measured (nested deeper than [`MAX_DEPTH`], or
/// unreadable).
pub fn measure(dir: &Path) -> Result<Usage, WalkError> {
    let mut total = Usage::default();
    measure_into(dir, &mut total)?;
    Ok(total)
}

fn measure_into(dir: &Path, total: &mut Usage) -> Result<(), WalkError> {
    walk(dir, |entry| {
        if entry.kind == FileType::RegularFile {
            // A file deleted while a running stage is measured is simply no longer there.
            match rustix::fs::statat(entry.dir, entry.name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => total.bytes += u64::try_from(st.st_size).unwrap_or(0),
                Err(rustix::io::Errno::NOENT) => return Ok(ControlFlow::Continue(())),
                Err(e) => {
                    return Err(WalkError::Io {
                        path: entry.path.to_path_buf(),
                        source: e.into(),
                    })
                }
            }
        }
        total.entries += 1;
        Ok(ControlFlow::Continue(()))
    })
}

/// Removes the symbolic links under `root` that lead out of it, resolved as the kernel
/// would resolve them (following every link on the way; absolute targets, steps above the
/// root and loops all escape), returning each (link, target). A stage can plant such a link
/// in its results; the sandbox will not follow it, but the host, a later reader or an export
/// might, so it does not outlive the stage. Links to nothing are left alone.
pub fn remove_escaping_symlinks(root: &Path) -> Result<Vec<(PathBuf, PathBuf)>, WalkError> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    Ok(links::remove_escaping(root)?
        .into_iter()
        .map(|l| (l.link, l.target))
        .collect())
}

/// A digest of a directory tree: every regular file's relative path and bytes, and every
/// symlink's target, in sorted order. Two trees with the same digest hold the same files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeDigest {
    pub digest: String,
    pub files: u64,
    pub bytes: u64,
}

pub fn tree_digest(root: &Path) -> Result<TreeDigest, VolumeError> {
    let mut hasher = Sha256::new();
    let mut files = 0;
    let mut bytes = 0;
    // Grown to the largest file read, up to 1 MiB: a payload of small files (a job's most
    // common input besides DICOM) does not pay for clearing a megabyte twice per job.
    let mut buf: Vec<u8> = Vec::new();
    // The walk's order is that of the sorted relative paths; directories add nothing.
    walk(root, |entry| {
        let io = |e: std::io::Error| WalkError::Io {
            path: entry.path.to_path_buf(),
            source: e,
        };
        if entry.kind == FileType::Directory {
            return Ok(ControlFlow::Continue(()));
        }
        hasher.update(entry.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        if entry.kind == FileType::Symlink {
            let target = rustix::fs::readlinkat(entry.dir, entry.name, Vec::new())
                .map_err(|e| io(e.into()))?;
            hasher.update(b"symlink:");
            hasher.update(String::from_utf8_lossy(target.as_bytes()).as_bytes());
        } else {
            let fd = rustix::fs::openat(
                entry.dir,
                entry.name,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| io(e.into()))?;
            let mut file = std::fs::File::from(fd);
            let len = file.metadata().map_err(io)?.len();
            hasher.update(len.to_le_bytes());
            let want = len.clamp(1, 1 << 20) as usize;
            if buf.len() < want {
                buf.resize(want, 0);
            }
            loop {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            files += 1;
            bytes += len;
        }
        hasher.update([0]);
        Ok(ControlFlow::Continue(()))
    })
    .map_err(|source| VolumeError::Walk {
        root: root.to_path_buf(),
        source,
    })?;
    Ok(TreeDigest {
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        files,
        bytes,
    })
}

#[cfg(test)]
mod tests;
