//! Real scanner files no one here wrote (pydicom's test data, installed with pip by the test
//! set-up): the reader's HU must match what pydicom computes, and compressed transfer syntaxes
//! must decode to the same pixels as their uncompressed originals.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use ward::jobs::JobStatus;

pub fn pydicom_files() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files'))"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pydicom is needed (pip install pydicom numpy): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// HU of every pixel of `file` as pydicom computes them (stored value × slope + intercept).
fn pydicom_hu(file: &Path) -> Vec<i64> {
    let script = "import sys, json, pydicom
ds = pydicom.dcmread(sys.argv[1])
a = ds.pixel_array.astype('float64') * float(getattr(ds, 'RescaleSlope', 1) or 1) + float(getattr(ds, 'RescaleIntercept', 0) or 0)
print(json.dumps([int(round(v)) for v in a.flatten().tolist()]))";
    let out = stdout_of(Command::new("python3").args(["-c", script, file.to_str().unwrap()]));
    serde_json::from_str(&out).unwrap()
}

fn reader_pipeline(dir: &Path) -> PathBuf {
    write_pipeline(
        dir,
        "api-version: 0.1
name: read
operators:
  - name: dicom-reader
    component: {path: '{components}/dicom_reader.wasm'}
    input: [{path: /payload}]
    output: [{name: volume, path: /results}]
",
    )
}

/// Runs the reader on a payload holding only `file`; returns the HU volume it wrote, or the
/// failure message.
fn read_with_ward(file: &Path) -> Result<(serde_json::Value, Vec<i64>), String> {
    let dir = tempdir();
    let payload = tempdir();
    std::fs::copy(file, payload.path().join(file.file_name().unwrap())).unwrap();
    let (summary, jobs) = run_pipeline(&reader_pipeline(dir.path()), payload.path(), &[]);
    if summary.status != JobStatus::Succeeded {
        return Err(summary.failure.unwrap().reason.message);
    }
    let results = jobs.path().join("job/results/dicom-reader/volume");
    let header = read_json(&results.join("volume.json"));
    let raw = std::fs::read(results.join("volume.raw")).unwrap();
    let hu = raw
        .chunks_exact(2)
        .map(|b| i64::from(i16::from_le_bytes([b[0], b[1]])))
        .collect();
    Ok((header, hu))
}

#[test]
fn a_real_ct_slice_matches_pydicom() {
    let file = pydicom_files().join("CT_small.dcm");
    let (header, hu) = read_with_ward(&file).unwrap();
    let expected = pydicom_hu(&file);
    assert_eq!(header["dims"], serde_json::json!([128, 128, 1]));
    assert_eq!(header["modality"], "CT");
    assert_eq!(hu.len(), expected.len());
    let mismatches = hu.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert_eq!(
        mismatches, 0,
        "HU differ from pydicom's in {mismatches} pixels"
    );
    // Not a trivially flat image: real anatomy spans hundreds of HU.
    let (min, max) = (
        expected.iter().min().unwrap(),
        expected.iter().max().unwrap(),
    );
    assert!(max - min > 500, "{min}..{max}");
}

#[test]
fn a_real_ct_slice_goes_through_the_whole_pipeline() {
    let payload = tempdir();
    std::fs::copy(
        pydicom_files().join("CT_small.dcm"),
        payload.path().join("CT_small.dcm"),
    )
    .unwrap();
    components_dir();
    let (summary, jobs) = run_pipeline(
        &repo_root().join("examples/ct-segmentation/pipeline.yaml"),
        payload.path(),
        &[],
    );
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let stats = read_json(&jobs.path().join("job/results/segment/labels/stats.json"));
    let hu = pydicom_hu(&pydicom_files().join("CT_small.dcm"));
    let above = hu.iter().filter(|&&v| v >= 200 && v <= 3071).count() as u64;
    assert_eq!(
        stats["total_voxels"].as_u64().unwrap(),
        above,
        "segmented voxels = pixels pydicom puts in [200, 3071] HU"
    );
    let seg = jobs
        .path()
        .join("job/results/dicom-writer/seg/dicom/segmentation.dcm");
    let dump = dcmdump(&["+E", seg.to_str().unwrap()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
}

#[test]
fn compressed_and_other_encodings_decode_to_the_same_pixels() {
    let files = pydicom_files();
    let (_, reference) = read_with_ward(&files.join("MR_small.dcm")).unwrap();
    assert_eq!(
        reference,
        pydicom_hu(&files.join("MR_small.dcm")),
        "uncompressed MR matches pydicom"
    );
    for variant in [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
    ] {
        let got = read_with_ward(&files.join(variant)).unwrap_or_else(|e| panic!("{variant}: {e}"));
        assert_eq!(
            got.1, reference,
            "{variant} decodes to the uncompressed pixels"
        );
    }
}

#[test]
fn jpeg_ls_gets_a_clear_per_file_error() {
    let message =
        read_with_ward(&pydicom_files().join("MR_small_jpeg_ls_lossless.dcm")).unwrap_err();
    assert!(
        message.contains("MR_small_jpeg_ls_lossless.dcm"),
        "{message}"
    );
    assert!(
        message.contains("1.2.840.10008.1.2.4.80"),
        "names the transfer syntax: {message}"
    );
}

#[test]
fn a_truncated_real_file_is_named() {
    let message = read_with_ward(&pydicom_files().join("MR_truncated.dcm")).unwrap_err();
    assert!(message.contains("MR_truncated.dcm"), "{message}");
}

/// `file` recompressed by a DCMTK tool into a temporary directory.
fn dcmtk_compress(tool: &str, args: &[&str], file: &Path, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{tool}{}.dcm", args.join("")));
    let status = Command::new(dcmtk_tool(tool))
        .args(args)
        .arg(file)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{tool} is needed (apt-get install -y dcmtk): {e}"));
    assert!(status.success(), "{tool} {args:?} failed");
    out
}

/// A real CT slice compressed by DCMTK (an independent encoder) decodes inside the sandbox
/// to exactly the HU pydicom reads from the original when lossless; what cannot be decoded
/// is named.
#[test]
fn dcmtk_compressed_copies_of_a_real_ct_decode_exactly() {
    let original = pydicom_files().join("CT_small.dcm");
    let reference = pydicom_hu(&original);
    let dir = tempdir();
    for (tool, args) in [
        ("dcmcjpeg", &["+e1"][..]),
        ("dcmcjpeg", &["+el"][..]),
        ("dcmcrle", &[][..]),
    ] {
        let copy = dcmtk_compress(tool, args, &original, dir.path());
        let (_, hu) = read_with_ward(&copy).unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"));
        assert_eq!(hu, reference, "{tool} {args:?} is lossless");
    }
    // 12-bit lossy JPEG (process 4) and JPEG-LS have no pure-Rust decoder in the sandbox.
    for (tool, args, syntax) in [
        ("dcmcjpeg", &["+ee"][..], "1.2.840.10008.1.2.4.51"),
        ("dcmcjpls", &[][..], "1.2.840.10008.1.2.4.80"),
    ] {
        let copy = dcmtk_compress(tool, args, &original, dir.path());
        let message = read_with_ward(&copy).unwrap_err();
        assert!(message.contains(syntax), "{tool} {args:?}: {message}");
        assert!(
            message.contains(copy.file_name().unwrap().to_str().unwrap()),
            "{message}"
        );
    }
}

/// A copy of `file` with the geometry Ward's reader needs to build a volume (in-plane spacing,
/// position, orientation), which a secondary capture lacks. DCMTK's dcmodify adds them and
/// writes the file back in its own transfer syntax, pixels untouched.
fn with_geometry(file: &Path, dir: &Path) -> PathBuf {
    let copy = dir.join(file.file_name().unwrap());
    std::fs::copy(file, &copy).unwrap();
    let status = Command::new(dcmtk_tool("dcmodify"))
        .args([
            "-nb",
            "-i",
            "(0028,0030)=0.5\\0.5",
            "-i",
            "(0020,0032)=0\\0\\0",
        ])
        .args(["-i", "(0020,0037)=1\\0\\0\\0\\1\\0", "-i", "(0018,0050)=1"])
        .arg(&copy)
        .status()
        .unwrap_or_else(|e| panic!("dcmodify is needed (apt-get install -y dcmtk): {e}"));
    assert!(status.success(), "dcmodify {}", copy.display());
    copy
}

/// A real deflated file (an 8-bit secondary capture in deflated explicit VR little endian,
/// from pydicom's test data) decodes to the pixels pydicom reads from the original.
#[test]
fn a_real_deflated_file_matches_pydicom() {
    let dir = tempdir();
    let original = pydicom_files().join("image_dfl.dcm");
    let file = with_geometry(&original, dir.path());
    let dump = dcmdump(&[file.to_str().unwrap()]);
    assert!(
        dump.stdout.contains("=DeflatedLittleEndianExplicit"),
        "still deflated: {}",
        dump.stdout
    );
    let (header, values) = read_with_ward(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header["dims"], serde_json::json!([512, 512, 1]));
    let expected = pydicom_hu(&original);
    assert_eq!(values, expected, "deflated pixels differ from pydicom's");
    assert!(
        expected.iter().max().unwrap() - expected.iter().min().unwrap() > 100,
        "a real image, not a flat one"
    );
}

/// 8-bit JPEG baseline (process 1, lossy) made by DCMTK's encoder from a real image, decoded
/// in the sandbox, against DCMTK's own decoder (dcmdjpeg) read by pydicom. The two inverse
/// DCTs may round differently, so a pixel may differ by one grey level, and nearly all must
/// agree exactly.
#[test]
fn jpeg_baseline_from_dcmtk_decodes_like_dcmtk() {
    let dir = tempdir();
    let original = with_geometry(&pydicom_files().join("image_dfl.dcm"), dir.path());
    let baseline = dcmtk_compress("dcmcjpeg", &["+eb"], &original, dir.path());
    let decoded = dir.path().join("dcmdjpeg.dcm");
    let status = Command::new(dcmtk_tool("dcmdjpeg"))
        .arg(&baseline)
        .arg(&decoded)
        .status()
        .unwrap_or_else(|e| panic!("dcmdjpeg is needed (apt-get install -y dcmtk): {e}"));
    assert!(status.success(), "dcmdjpeg failed");
    let reference = pydicom_hu(&decoded);
    let (_, values) = read_with_ward(&baseline).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(values.len(), reference.len());
    let worst = values
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .max()
        .unwrap();
    let differing = values
        .iter()
        .zip(&reference)
        .filter(|(a, b)| a != b)
        .count();
    eprintln!(
        "JPEG baseline: {differing} of {} pixels differ from dcmdjpeg's, by at most {worst}",
        values.len()
    );
    assert!(
        worst <= 1,
        "a pixel differs by {worst} grey levels from dcmdjpeg's"
    );
    assert!(
        differing * 100 <= values.len(),
        "{differing} of {} pixels differ from dcmdjpeg's",
        values.len()
    );
    // Lossy, and really so: the copy is not the original's pixels.
    assert_ne!(values, pydicom_hu(&original), "JPEG baseline is lossy here");
}

/// A real CT without (0020,0052) FrameOfReferenceUID (DCMTK's dcmodify removes it) still
/// gives a DICOM SEG: with a Frame of Reference of its own, and a warning in the writer's log.
#[test]
fn a_real_ct_without_a_frame_of_reference_still_gets_a_seg() {
    let payload = tempdir();
    let copy = payload.path().join("CT_small.dcm");
    std::fs::copy(pydicom_files().join("CT_small.dcm"), &copy).unwrap();
    let status = Command::new(dcmtk_tool("dcmodify"))
        .args(["-nb", "-e", "(0020,0052)"])
        .arg(&copy)
        .status()
        .unwrap_or_else(|e| panic!("dcmodify is needed (apt-get install -y dcmtk): {e}"));
    assert!(status.success(), "dcmodify -e (0020,0052)");
    assert!(!dcmdump(&[copy.to_str().unwrap()])
        .stdout
        .contains("(0020,0052)"));
    components_dir();
    let (summary, jobs) = run_pipeline(
        &repo_root().join("examples/ct-segmentation/pipeline.yaml"),
        payload.path(),
        &[],
    );
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let seg = jobs
        .path()
        .join("job/results/dicom-writer/seg/dicom/segmentation.dcm");
    let dump = dcmdump(&["+E", seg.to_str().unwrap()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    let line = dump
        .stdout
        .lines()
        .find(|l| l.starts_with("(0020,0052)"))
        .unwrap_or_else(|| panic!("the SEG has a FrameOfReferenceUID: {}", dump.stdout));
    assert!(line.contains("[2.25."), "{line}");
    let log = std::fs::read_to_string(jobs.path().join("job/logs/dicom-writer.log")).unwrap();
    assert!(
        log.contains("no (0020,0052) FrameOfReferenceUID"),
        "the writer warns: {log}"
    );
}

/// The directory of the `pydicom-data` package's files (pip, by the test set-up).
pub fn pydicom_data_files() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import os, data_store; print(os.path.join(os.path.dirname(data_store.__file__), 'data'))"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pydicom-data is needed (pip install pydicom-data): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A real Enhanced CT (two frames placed by their functional groups, rescaled by the shared
/// Pixel Value Transformation) goes through the CT pipeline inside the sandbox: the volume has
/// both frames in patient space, and the SEG references each frame of the one source
/// instance. (Its densest tissue is 172 HU, so the threshold is set to 100.)
#[test]
fn a_real_enhanced_ct_is_segmented_frame_by_frame() {
    let payload = tempdir();
    std::fs::copy(
        pydicom_data_files().join("eCT_Supplemental.dcm"),
        payload.path().join("eCT_Supplemental.dcm"),
    )
    .unwrap();
    components_dir();
    let (summary, jobs) = run_pipeline(
        &repo_root().join("examples/ct-segmentation/pipeline.yaml"),
        payload.path(),
        &[("lower", "100")],
    );
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let volume = read_json(
        &jobs
            .path()
            .join("job/results/dicom-reader/volume/volume.json"),
    );
    assert_eq!(volume["dims"], serde_json::json!([512, 512, 2]));
    assert_eq!(volume["geometry"], "patient");
    assert_eq!(volume["frame_numbers"].as_array().unwrap().len(), 2);
    let dz = volume["spacing"][2].as_f64().unwrap();
    assert!((dz - 10.0).abs() < 1e-6, "frames 10 mm apart: {dz}");
    let seg = jobs
        .path()
        .join("job/results/dicom-writer/seg/dicom/segmentation.dcm");
    let dump = dcmdump(&["+E", seg.to_str().unwrap()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    for frame in ["[1]", "[2]"] {
        assert!(
            dump.stdout
                .lines()
                .any(|l| l.contains("(0008,1160)") && l.contains(frame)),
            "ReferencedFrameNumber {frame}: {}",
            dump.stdout
        );
    }
}
