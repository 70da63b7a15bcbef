//! Listing the files of a directory tree in a stable order.

use super::error::DicomError;
use std::path::{Path, PathBuf};

/// A file to read and the name it is reported under (relative to the root, `/`-separated).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceFile {
    pub name: String,
    pub path: PathBuf,
}

/// Every regular file under `root`, recursively, sorted by name; files named `DICOMDIR`
/// are left out (they index the others and hold no image).
pub fn list_files(root: &Path) -> Result<Vec<SourceFile>, DicomError> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let shown = if prefix.is_empty() { "." } else { &prefix };
        let entries = std::fs::read_dir(&dir).map_err(|e| DicomError::Io {
            file: shown.to_string(),
            reason: e.to_string(),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| DicomError::Io {
                file: shown.to_string(),
                reason: e.to_string(),
            })?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let name = if prefix.is_empty() {
                file_name.clone()
            } else {
                format!("{prefix}/{file_name}")
            };
            let file_type = entry.file_type().map_err(|e| DicomError::Io {
                file: name.clone(),
                reason: e.to_string(),
            })?;
            if file_type.is_dir() {
                dirs.push((entry.path(), name));
            } else if file_type.is_file() && file_name != "DICOMDIR" {
                out.push(SourceFile {
                    name,
                    path: entry.path(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}
