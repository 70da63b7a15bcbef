//! Every real image file of pydicom's test data and of the `pydicom-data` package (pip, by
//! the test set-up) read by Ward's reader, each on its own, against pydicom's decoding of
//! it (tests/pydicom_reference.py): grey values rescaled, colour as RGB, every frame. A file
//! Ward does not read must be refused with a reason from the README's table of what is read.

use imaging::dicom_series::{read_series, BadFilePolicy, Quiet, ReadOptions, Rgb, SourceFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directories of the two packages' files.
fn data_dirs() -> Vec<PathBuf> {
    let script = "import os, pydicom, data_store
print(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files'))
print(os.path.join(os.path.dirname(data_store.__file__), 'data'))";
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pydicom and pydicom-data are needed (pip install pydicom pydicom-data): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// Files Ward refuses, by the words their reason must contain (the README's table of what
/// is read says why). Everything else must be read and equal pydicom's pixels.
const REFUSED: &[(&str, &[&str])] = &[
    (
        // No file meta information, a wrong VR or a broken sequence in the header.
        "not a readable DICOM file",
        &[
            "ExplVR_BigEndNoMeta.dcm",
            "ExplVR_LitEndNoMeta.dcm",
            "MR_truncated.dcm",
            "OT-PAL-8-face.dcm",
            "SC_rgb_jpeg.dcm",
            "UN_sequence.dcm",
            "meta_missing_tsyntax.dcm",
            "no_meta.dcm",
            "no_meta_group_length.dcm",
            "rtplan_truncated.dcm",
            "rtstruct.dcm",
        ],
    ),
    // Not images: structured reports, RT plans, waveforms, DICOM SEG (a result).
    (
        "no image series",
        &[
            "empty_charset_LEI.dcm",
            "liver.dcm",
            "liver_1frame.dcm",
            "liver_expb.dcm",
            "liver_expb_1frame.dcm",
            "nested_priv_SQ.dcm",
            "priv_SQ.dcm",
            "reportsi.dcm",
            "reportsi_with_empty_number_tags.dcm",
            "rtplan.dcm",
            "test-SR.dcm",
            "waveform_ecg.dcm",
        ],
    ),
    (
        "JPEG-LS",
        &[
            "MR_small_jpeg_ls_lossless.dcm",
            "emri_small_jpeg_ls_lossless.dcm",
        ],
    ),
    // JPEG-LS test files that also lack the study's identity.
    (
        "missing (0020,000D) StudyInstanceUID",
        &[
            "JPEGLSNearLossless_08.dcm",
            "JPEGLSNearLossless_16.dcm",
            "SC_rgb_jls_lossy_line.dcm",
            "SC_rgb_jls_lossy_sample.dcm",
        ],
    ),
    // 12-bit JPEG (process 4): no pure-Rust decoder.
    (
        "SamplePrecision(12)",
        &["JPEG-lossy.dcm", "JPGExtended.dcm"],
    ),
    (
        "jpeg2k decoder failure",
        &["JPEG2000-embedded-sequence-delimiter.dcm"],
    ),
    (
        "without an Adobe APP14 or JFIF marker",
        &["SC_jpeg_no_color_transform.dcm"],
    ),
    // 32-bit samples: RGB test images, RT dose grids.
    (
        "only 8- and 16-bit",
        &[
            "SC_rgb_32bit.dcm",
            "SC_rgb_32bit_2frame.dcm",
            "SC_rgb_expb_32bit.dcm",
            "SC_rgb_expb_32bit_2frame.dcm",
            "SC_rgb_rle_32bit.dcm",
            "SC_rgb_rle_32bit_2frame.dcm",
            "rtdose.dcm",
            "rtdose_1frame.dcm",
            "rtdose_expb.dcm",
            "rtdose_expb_1frame.dcm",
            "rtdose_rle.dcm",
            "rtdose_rle_1frame.dcm",
        ],
    ),
    ("NumberOfFrames = '1A'", &["badVR.dcm"]),
];

/// Files pydicom does not decode as it decodes the original they are a copy of, compared
/// with that original instead.
const TWINS: &[(&str, &str)] = &[
    // Ends before the pixel data's sequence delimiter (pydicom finds no pixel data); every
    // frame is there.
    (
        "emri_small_jpeg_2k_lossless_too_short.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
    ),
    // Big-endian copies of a palette ultrasound: pydicom reads their palette with its bytes
    // swapped (746,523 samples differ from its own reading of the original); Ward reads
    // them equal to the original.
    ("OBXXXX1A_expb.dcm", "OBXXXX1A.dcm"),
    ("OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_2frame.dcm"),
];

/// Lossy JPEG (baseline, extended): two conforming decoders may round the inverse DCT and
/// chroma upsampling differently, so samples may differ by this much, this many per mille.
const JPEG_LOSSY: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];
const LOSSY_MAX_DIFFERENCE: i64 = 5;
const LOSSY_PER_MILLE: usize = 150;

fn reference(dir: &Path, files: &[PathBuf]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pydicom_reference.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(dir)
        .args(files)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "pydicom_reference.py failed");
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

fn read_i32(path: &Path) -> Vec<i64> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
        .collect()
}

#[test]
fn every_real_file_is_read_like_pydicom_or_refused_with_its_reason() {
    let mut files: Vec<PathBuf> = data_dirs()
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    assert!(files.len() > 100, "{} files found", files.len());
    let out = tempfile::tempdir().unwrap();
    let summary = reference(out.path(), &files);

    let refused: BTreeMap<&str, &str> = REFUSED
        .iter()
        .flat_map(|(words, names)| names.iter().map(move |n| (*n, *words)))
        .collect();
    let twins: BTreeMap<&str, &str> = TWINS.iter().copied().collect();
    let mut problems = Vec::new();
    let mut table = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let source = SourceFile {
            name: name.clone(),
            path: path.clone(),
        };
        let options = ReadOptions {
            on_bad_file: BadFilePolicy::Fail,
            series_uid: None,
        };
        let result = read_series(&[source], &options, &mut Quiet);
        let reference_name = twins.get(name.as_str()).copied().unwrap_or(&name);
        let expected = &summary[reference_name];
        match (result, refused.get(name.as_str())) {
            (Err(e), Some(words)) => {
                let message = e.to_string();
                if !message.contains(words) {
                    problems.push(format!("{name}: refused, but not for '{words}': {message}"));
                }
                table.push(format!("{name:45} refused: {message}"));
            }
            (Err(e), None) => problems.push(format!("{name}: refused: {e}")),
            (Ok(_), Some(words)) => {
                problems.push(format!("{name}: read, but should be refused for '{words}'"))
            }
            (Ok(series), None) => {
                let Some(kind) = expected["kind"].as_str() else {
                    problems.push(format!(
                        "{name}: read, but pydicom has no reference: {}",
                        expected["error"]
                    ));
                    continue;
                };
                let want = read_i32(&out.path().join(format!("{reference_name}.i32")));
                let shape: Vec<usize> = expected["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                let (frames, rows, cols) = (shape[0], shape[1], shape[2]);
                let v = &series.volume;
                if v.dims != [cols, rows, frames] {
                    problems.push(format!("{name}: dims {:?}, pydicom {shape:?}", v.dims));
                    continue;
                }
                let samples = if kind == "rgb" { 3 } else { 1 };
                let got: Vec<i64> = match (kind, &series.rgb) {
                    ("grey", None) => v.data.iter().map(|&x| x as i64).collect(),
                    ("rgb", Some(Rgb::U8(d))) => d.iter().map(|&x| x as i64).collect(),
                    ("rgb", Some(Rgb::U16(d))) => d.iter().map(|&x| x as i64).collect(),
                    (k, rgb) => {
                        problems.push(format!(
                            "{name}: pydicom gives {k}, Ward {}",
                            if rgb.is_some() { "colour" } else { "grey" }
                        ));
                        continue;
                    }
                };
                // Ward orders frames along the slice normal; map them back to file order.
                let plane = rows * cols * samples;
                let order: Vec<usize> = if series.meta.frame_numbers.is_empty() {
                    (0..frames).collect()
                } else {
                    series
                        .meta
                        .frame_numbers
                        .iter()
                        .map(|&f| f as usize - 1)
                        .collect()
                };
                let mut worst = 0;
                let mut differing = 0;
                for (z, &frame) in order.iter().enumerate() {
                    let ours = &got[z * plane..(z + 1) * plane];
                    let theirs = &want[frame * plane..(frame + 1) * plane];
                    for (a, b) in ours.iter().zip(theirs) {
                        let d = (a - b).abs();
                        worst = worst.max(d);
                        differing += usize::from(d != 0);
                    }
                }
                let lossy = expected["transfer_syntax"]
                    .as_str()
                    .is_some_and(|ts| JPEG_LOSSY.contains(&ts));
                let (max_diff, per_mille) = match lossy {
                    true => (LOSSY_MAX_DIFFERENCE, LOSSY_PER_MILLE),
                    false => (0, 0),
                };
                if worst > max_diff || differing * 1000 > per_mille * got.len() {
                    problems.push(format!(
                        "{name}: {differing} of {} samples differ from pydicom's, by up to {worst}",
                        got.len()
                    ));
                }
                table.push(format!(
                    "{name:45} read: {} {:?} {} ({differing} samples differ, by up to {worst})",
                    series.meta.geometry, v.dims, kind
                ));
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
