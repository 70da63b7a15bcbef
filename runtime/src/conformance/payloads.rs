//! The sample payloads a component is run on.

use std::path::{Path, PathBuf};
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

/// Writes the payloads under `scratch`: (name, directory) pairs.
pub fn write_all(scratch: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let root = scratch.join("payloads");
    let ct = root.join("ct-series");
    write_ct_series(
        &ct,
        &CtSeriesOptions {
            slices: 16,
            size: 64,
            ..CtSeriesOptions::default()
        },
    )?;
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty)?;
    let not_dicom = root.join("not-dicom");
    std::fs::create_dir_all(&not_dicom)?;
    std::fs::write(not_dicom.join("notes.txt"), "a report, not an image\n")?;
    std::fs::write(
        not_dicom.join("data.bin"),
        (0..=255u8).cycle().take(4096).collect::<Vec<u8>>(),
    )?;
    Ok(vec![
        ("ct-series".to_string(), ct),
        ("empty".to_string(), empty),
        ("not-dicom".to_string(), not_dicom),
    ])
}
