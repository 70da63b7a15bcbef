//! Writing what a behaviour saw into the first results volume.

use std::path::PathBuf;
use ward_stage_sdk::{self as sdk, failed, StageError, VolumeKind};

/// The first results volume (an operator may declare several outputs).
fn results_dir() -> Result<PathBuf, StageError> {
    sdk::volumes::mounted()
        .into_iter()
        .find(|v| v.kind == VolumeKind::Results)
        .map(|v| PathBuf::from(v.path))
        .ok_or_else(|| failed!("no results volume is mounted"))
}

/// Writes `name` (text) into the results.
pub fn write_text(name: &str, text: &str) -> Result<(), StageError> {
    sdk::write_file(&results_dir()?, name, text.as_bytes()).map(|_| ())
}

/// Writes `name` (pretty JSON with a trailing newline) into the results.
pub fn write_json(name: &str, value: &serde_json::Value) -> Result<(), StageError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| failed!("{e}"))?;
    text.push('\n');
    write_text(name, &text)
}
