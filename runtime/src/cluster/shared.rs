//! The shared (ReadWriteMany) volume every node mounts at the same path: a `WardJob` names
//! its payload, results, datasets and components by paths on it, and a node touches no path
//! outside it, whatever a job says.

use std::path::{Component, Path, PathBuf};

/// The shared volume's mount point on this node.
#[derive(Clone, Debug)]
pub struct SharedRoot {
    /// Canonical, so a path is compared with what the kernel resolves.
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SharedPathError {
    #[error("shared storage {}: {source}", path.display())]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {}: not an absolute path without '..' (paths in a WardJob are on the shared volume {})", path.display(), root.display())]
    NotPlain {
        what: &'static str,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("{what} {}: outside the shared volume {} (every path in a WardJob must be on it)", path.display(), root.display())]
    Outside {
        what: &'static str,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("{what} {}: {source}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SharedRoot {
    pub fn new(path: &Path) -> Result<SharedRoot, SharedPathError> {
        let root = path
            .canonicalize()
            .map_err(|source| SharedPathError::Root {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(SharedRoot { root })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `text` (what a job calls `what`) as a path on the shared volume. It must be absolute
    /// and plain; where it exists, what it resolves to (through any symbolic link) must be on
    /// the volume too, and where it does not, its nearest existing parent must be.
    pub fn check(&self, what: &'static str, text: &str) -> Result<PathBuf, SharedPathError> {
        let path = PathBuf::from(text);
        let plain = path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !plain {
            return Err(SharedPathError::NotPlain {
                what,
                path,
                root: self.root.clone(),
            });
        }
        let mut existing = path.as_path();
        let resolved = loop {
            match existing.canonicalize() {
                Ok(p) => break p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match existing.parent() {
                    Some(parent) => existing = parent,
                    None => break PathBuf::from("/"),
                },
                Err(source) => {
                    return Err(SharedPathError::Unreadable { what, path, source });
                }
            }
        };
        if !resolved.starts_with(&self.root) {
            return Err(SharedPathError::Outside {
                what,
                path,
                root: self.root.clone(),
            });
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_off_the_shared_volume_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(shared.join("payloads/p1")).unwrap();
        let root = SharedRoot::new(&shared).unwrap();
        let inside = shared.join("payloads/p1");
        assert_eq!(
            root.check("payload", inside.to_str().unwrap()).unwrap(),
            inside
        );
        // Not yet there, but under the volume: a results directory to be made.
        let results = shared.join("results/j1/attempt-1");
        assert!(root.check("results", results.to_str().unwrap()).is_ok());

        let outside = dir.path().join("elsewhere");
        std::fs::create_dir_all(&outside).unwrap();
        let e = root
            .check("payload", outside.to_str().unwrap())
            .unwrap_err();
        assert!(matches!(e, SharedPathError::Outside { .. }), "{e}");
        assert!(e.to_string().contains("outside the shared volume"), "{e}");

        let dotted = format!("{}/payloads/../../elsewhere", shared.display());
        assert!(matches!(
            root.check("payload", &dotted).unwrap_err(),
            SharedPathError::NotPlain { .. }
        ));
        assert!(matches!(
            root.check("payload", "relative/p1").unwrap_err(),
            SharedPathError::NotPlain { .. }
        ));

        // A link on the volume that leads off it is off it.
        std::os::unix::fs::symlink(&outside, shared.join("link")).unwrap();
        let linked = shared.join("link/x");
        assert!(matches!(
            root.check("dataset", linked.to_str().unwrap()).unwrap_err(),
            SharedPathError::Outside { .. }
        ));
    }
}
