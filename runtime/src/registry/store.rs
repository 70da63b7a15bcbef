//! The local content-addressed store of pulled components: `blobs/sha256/<hex>` holds each
//! manifest, config, layer, signature payload and report by its digest, and every read
//! re-hashes the bytes — a blob that no longer matches its name (a bad disk, a hand edit) is
//! deleted and reported missing, so it is fetched again and never used. `signatures/<hex>`
//! records which signature manifest was verified for a component manifest, so a verified
//! component can be used again without the registry.

use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("component store {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{0}' is not a sha256 digest")]
    BadDigest(String),
}

#[derive(Debug, Clone)]
pub struct ComponentStore {
    root: PathBuf,
}

impl ComponentStore {
    pub fn open(root: &Path) -> Result<ComponentStore, StoreError> {
        for dir in ["blobs/sha256", "signatures", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| StoreError::Io { path, source })?;
        }
        Ok(ComponentStore {
            root: root.to_path_buf(),
        })
    }

    /// `$WARD_COMPONENT_STORE`, else `$XDG_CACHE_HOME/ward/components`, else
    /// `~/.cache/ward/components`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("WARD_COMPONENT_STORE") {
            return PathBuf::from(dir);
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        cache.join("ward/components")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = super::digest_hex(digest).ok_or_else(|| StoreError::BadDigest(digest.into()))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// The blob's bytes if it is here and still matches its digest. A blob that does not is
    /// removed (and logged), so the caller fetches it again.
    pub fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.blob_path(digest)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let actual = super::sha256_digest(&bytes);
        if actual != digest {
            tracing::warn!(blob = %path.display(), expected = digest, %actual,
                "stored blob no longer matches its digest; removed, it will be fetched again");
            std::fs::remove_file(&path).map_err(|source| StoreError::Io { path, source })?;
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// The path of a blob that is here and matches its digest (checked now).
    pub fn verified_path(&self, digest: &str) -> Result<Option<PathBuf>, StoreError> {
        Ok(self
            .get(digest)?
            .map(|_| self.blob_path(digest))
            .transpose()?)
    }

    /// Stores `bytes` under their digest (written aside, then renamed into place).
    pub fn put(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let digest = super::sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        self.write_atomic(&path, bytes)?;
        Ok(digest)
    }

    /// The signature manifest verified for `manifest_digest`, if one was.
    pub fn signature_for(&self, manifest_digest: &str) -> Result<Option<String>, StoreError> {
        let hex = super::digest_hex(manifest_digest)
            .ok_or_else(|| StoreError::BadDigest(manifest_digest.into()))?;
        let path = self.root.join("signatures").join(hex);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| super::digest_hex(s).is_some())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn record_signature(
        &self,
        manifest_digest: &str,
        signature_manifest: &str,
    ) -> Result<(), StoreError> {
        let hex = super::digest_hex(manifest_digest)
            .ok_or_else(|| StoreError::BadDigest(manifest_digest.into()))?;
        let path = self.root.join("signatures").join(hex);
        self.write_atomic(&path, signature_manifest.as_bytes())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp")).map_err(io)?;
        tmp.write_all(bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupted_blob_is_removed_and_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path()).unwrap();
        let digest = store.put(b"component bytes").unwrap();
        assert_eq!(store.get(&digest).unwrap().unwrap(), b"component bytes");
        let path = store.verified_path(&digest).unwrap().unwrap();
        std::fs::write(&path, b"component bytez").unwrap();
        assert!(store.get(&digest).unwrap().is_none());
        assert!(!path.exists());
        assert!(store.get("sha256:zz").is_err());
    }

    #[test]
    fn signatures_are_recorded_by_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path()).unwrap();
        let m = crate::registry::sha256_digest(b"m");
        let s = crate::registry::sha256_digest(b"s");
        assert!(store.signature_for(&m).unwrap().is_none());
        store.record_signature(&m, &s).unwrap();
        assert_eq!(store.signature_for(&m).unwrap().unwrap(), s);
    }
}
