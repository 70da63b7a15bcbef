//! The volumes a stage sees: where each lives on the host, where it is mounted in the stage,
//! and with what rights; and the content digest used to prove a payload was not changed.

use crate::pipeline::{InputSource, StageSpec};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

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
pub fn usage(dirs: &[&Path]) -> Usage {
    fn walk(dir: &Path, total: &mut Usage) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            total.entries += 1;
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&entry.path(), total),
                Ok(t) if t.is_file() => {
                    total.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0)
                }
                _ => {}
            }
        }
    }
    let mut total = Usage::default();
    for dir in dirs {
        walk(dir, &mut total);
    }
    total
}

/// Removes the symbolic links under `root` whose target leads out of `root` (absolute, or
/// climbing above it with `..`), returning each (link, target). A stage can plant such a link
/// in its results; the sandbox will not follow it, but the host, a later reader or an export
/// might, so it does not outlive the stage.
pub fn remove_escaping_symlinks(root: &Path) -> Result<Vec<(PathBuf, PathBuf)>, VolumeError> {
    let mut found = Vec::new();
    let mut entries = Vec::new();
    if root.is_dir() {
        collect(root, root, &mut entries).map_err(|source| VolumeError::Io {
            path: root.to_path_buf(),
            source,
        })?;
    }
    for rel in entries {
        let path = root.join(&rel);
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        if leaves_root(&rel, &target) {
            std::fs::remove_file(&path).map_err(|source| VolumeError::Io {
                path: path.clone(),
                source,
            })?;
            found.push((rel, target));
        }
    }
    Ok(found)
}

/// Whether a link at `link` (relative to the root) with `target` resolves outside the root.
fn leaves_root(link: &Path, target: &Path) -> bool {
    use std::path::Component;
    if target.is_absolute() {
        return true;
    }
    // Depth of the link's directory below the root, then walk the target.
    let mut depth = link.parent().map_or(0, |p| p.components().count()) as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
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
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VolumeError::Io { path, source }
    };
    let mut entries = Vec::new();
    collect(root, root, &mut entries).map_err(io(root))?;
    entries.sort();
    let mut hasher = Sha256::new();
    let mut files = 0;
    let mut bytes = 0;
    let mut buf = vec![0u8; 1 << 20];
    for rel in entries {
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            hasher.update(b"symlink:");
            hasher.update(target.to_string_lossy().as_bytes());
        } else {
            let mut file = std::fs::File::open(&path).map_err(io(&path))?;
            hasher.update(meta.len().to_le_bytes());
            loop {
                let n = file.read(&mut buf).map_err(io(&path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            files += 1;
            bytes += meta.len();
        }
        hasher.update([0]);
    }
    Ok(TreeDigest {
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        files,
        bytes,
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() {
            collect(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_that_climb_out_are_told_apart_from_links_within() {
        let p = |s: &str| Path::new(s).to_path_buf();
        assert!(leaves_root(&p("link"), &p("../x")));
        assert!(leaves_root(&p("link"), &p("/etc/passwd")));
        assert!(leaves_root(&p("a/link"), &p("../../x")));
        assert!(leaves_root(&p("a/link"), &p("b/../../../x")));
        assert!(!leaves_root(&p("a/link"), &p("../x")));
        assert!(!leaves_root(&p("link"), &p("sub/file")));
        assert!(!leaves_root(&p("a/b/link"), &p("./../c")));
    }

    #[test]
    fn escaping_links_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/data"), b"x").unwrap();
        std::os::unix::fs::symlink("../../../etc/passwd", dir.path().join("sub/out")).unwrap();
        std::os::unix::fs::symlink("data", dir.path().join("sub/in")).unwrap();
        let removed = remove_escaping_symlinks(dir.path()).unwrap();
        assert_eq!(removed, vec![(p("sub/out"), p("../../../etc/passwd"))]);
        assert!(std::fs::symlink_metadata(dir.path().join("sub/in")).is_ok());
        assert!(std::fs::symlink_metadata(dir.path().join("sub/out")).is_err());

        fn p(s: &str) -> PathBuf {
            PathBuf::from(s)
        }
    }
}
