//! Finding mounted volumes by what they are, never by a hard-coded path.

use crate::volumes::{self, Volume, VolumeKind};
use crate::StageError;
use std::path::{Path, PathBuf};

fn of_kind(kind: VolumeKind) -> Vec<Volume> {
    volumes::mounted()
        .into_iter()
        .filter(|v| v.kind == kind)
        .collect()
}

fn describe(kind: VolumeKind) -> &'static str {
    match kind {
        VolumeKind::Payload => "payload",
        VolumeKind::Results => "results",
        VolumeKind::InputFromStage => "input-from-stage",
        VolumeKind::Dataset => "dataset",
    }
}

fn exactly_one(kind: VolumeKind) -> Result<Volume, StageError> {
    let mut found = of_kind(kind);
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(StageError::Failed(format!(
            "no {} volume is mounted",
            describe(kind)
        ))),
        n => Err(StageError::Failed(format!(
            "{n} {} volumes are mounted, expected one",
            describe(kind)
        ))),
    }
}

/// The job's payload volume.
pub fn payload() -> Result<Volume, StageError> {
    exactly_one(VolumeKind::Payload)
}

/// This stage's own (read-write) results volume.
pub fn results() -> Result<Volume, StageError> {
    exactly_one(VolumeKind::Results)
}

/// The results of upstream stages, in pipeline-file order.
pub fn inputs_from_stages() -> Vec<Volume> {
    of_kind(VolumeKind::InputFromStage)
}

/// The mounted datasets.
pub fn datasets() -> Vec<Volume> {
    of_kind(VolumeKind::Dataset)
}

/// The first input-from-stage volume holding `file` (e.g. `volume.json`), with the path
/// of its directory. Not finding one is `InvalidInput`: the pipeline wires this stage to the
/// wrong upstream.
pub fn input_containing(file: &str) -> Result<(Volume, PathBuf), StageError> {
    let inputs = inputs_from_stages();
    for v in &inputs {
        let dir = PathBuf::from(&v.path);
        if dir.join(file).is_file() {
            return Ok((v.clone(), dir));
        }
    }
    let names: Vec<String> = inputs
        .iter()
        .map(|v| match &v.source {
            Some(s) => format!("'{}' from stage '{s}'", v.name),
            None => format!("'{}'", v.name),
        })
        .collect();
    Err(StageError::InvalidInput(format!(
        "no input volume holds {file} (inputs: {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// Writes a file under `dir`, naming it in errors.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, StageError> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StageError::Failed(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(&path, bytes)
        .map_err(|e| StageError::Failed(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}
