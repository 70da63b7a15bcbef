//! The example CT pipeline on the synthetic phantom: results checked against the phantom's
//! known geometry, DICOM output checked by DCMTK, determinism, and bad payloads.

use crate::support::*;
use std::path::{Path, PathBuf};
use ward::jobs::{FailureKind, JobStatus, StageStatus};
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions, SeriesSummary};
use ward::sample::phantom::expected_components;
use ward::volumes::tree_digest;

fn example_pipeline() -> PathBuf {
    components_dir(); // the example names the built components by relative path
    repo_root().join("examples/ct-segmentation/pipeline.yaml")
}

fn phantom(dir: &Path, slices: u32, size: u32) -> SeriesSummary {
    let options = CtSeriesOptions {
        slices,
        size,
        ..CtSeriesOptions::default()
    };
    write_ct_series(dir, &options).expect("the phantom series is written")
}

/// The whole example through the `ward` binary, as a user runs it.
#[test]
fn the_example_segments_the_phantom_to_its_known_geometry() {
    let payload = tempdir();
    let series = phantom(payload.path(), 64, 256);
    let before = tree_digest(payload.path()).unwrap();
    let jobs = tempdir();
    let job = jobs.path().join("job");
    let pipeline = example_pipeline();
    let out = ward_run(
        &pipeline,
        payload.path(),
        &["--results", job.to_str().unwrap()],
    );
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("succeeded"), "{}", out.stdout);
    assert_eq!(
        tree_digest(payload.path()).unwrap(),
        before,
        "the payload is unchanged"
    );

    // The volume the reader built has the series' geometry.
    let volume = read_json(&job.join("results/dicom-reader/volume/volume.json"));
    assert_eq!(volume["dims"], serde_json::json!([256, 256, 64]));
    assert_eq!(
        volume["study_instance_uid"],
        series.study_instance_uid.as_str()
    );
    let raw = std::fs::metadata(job.join("results/dicom-reader/volume/volume.raw"))
        .unwrap()
        .len();
    assert_eq!(raw, 256 * 256 * 64 * 2);

    // Segmentation: the spheres above 200 HU, each within 2% of its analytic volume, centred
    // within a voxel of where the phantom puts it, with the phantom's HU.
    let stats = read_json(&job.join("results/segment/labels/stats.json"));
    let found = stats["components"].as_array().unwrap();
    let expected = expected_components(200.0, 3071.0);
    assert_eq!(found.len(), expected.len(), "{stats:#}");
    for (got, sphere) in found.iter().zip(&expected) {
        let ml = got["volume_ml"].as_f64().unwrap();
        let error = (ml - sphere.volume_ml()).abs() / sphere.volume_ml();
        assert!(
            error < 0.02,
            "{}: {ml:.2} ml vs {:.2} ml analytic ({:.1}% off)",
            sphere.name,
            sphere.volume_ml(),
            error * 100.0
        );
        for axis in 0..3 {
            let c = got["centroid_mm"][axis].as_f64().unwrap();
            assert!(
                (c - sphere.center_mm[axis]).abs() < 2.5,
                "{} centroid axis {axis}: {c} vs {}",
                sphere.name,
                sphere.center_mm[axis]
            );
        }
        assert_eq!(
            got["mean_hu"].as_f64().unwrap().round() as i64,
            i64::from(sphere.hu),
            "{}",
            sphere.name
        );
    }

    // Images a person looks at.
    for name in ["axial", "coronal", "sagittal", "mip"] {
        let png = std::fs::read(job.join(format!("results/render/images/{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}.png is a PNG");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert!(
            width >= 64 && height >= 32,
            "{name}.png is {width}x{height}"
        );
    }

    // The DICOM SEG references the source study and series, and DCMTK reads it cleanly.
    let seg = job.join("results/dicom-writer/seg/dicom/segmentation.dcm");
    let strict = dcmdump(&["+E", seg.to_str().unwrap()]);
    assert_eq!(strict.code, 0, "{}", strict.stderr);
    assert!(
        !strict.stderr.contains("W:") && !strict.stderr.contains("E:"),
        "dcmdump warns:\n{}",
        strict.stderr
    );
    let dump = dcmdump(&[
        "+P",
        "0008,0016",
        "+P",
        "0020,000d",
        "+P",
        "0008,0060",
        "+P",
        "0020,000e",
        "+P",
        "0062,0002",
        seg.to_str().unwrap(),
    ])
    .stdout;
    assert!(dump.contains("=SegmentationStorage"), "{dump}");
    assert!(
        dump.contains(&series.study_instance_uid),
        "same study: {dump}"
    );
    assert!(dump.contains("[SEG]"), "{dump}");
    // highdicom (an independent SEG implementation) reads it back to the same voxels.
    let (segments, referenced_series) = highdicom_segments(&seg);
    let expected_voxels: Vec<u64> = found
        .iter()
        .map(|c| c["voxels"].as_u64().unwrap())
        .collect();
    assert_eq!(
        segments, expected_voxels,
        "voxels per segment as read by highdicom"
    );
    assert_eq!(referenced_series, vec![series.series_instance_uid.clone()]);
    let all = dcmdump(&["+L", seg.to_str().unwrap()]).stdout;
    assert!(
        all.contains(&series.series_instance_uid),
        "references the source series"
    );
    assert!(
        all.contains(&series.frame_of_reference_uid),
        "same frame of reference"
    );
}

/// Voxels per segment of a DICOM SEG, and the series it references, as highdicom reads them.
fn highdicom_segments(seg: &Path) -> (Vec<u64>, Vec<String>) {
    let script = "import sys, json, highdicom as hd
seg = hd.seg.segread(sys.argv[1])
vol = seg.get_volume()
counts = [int((vol.array[..., i]).sum()) for i in range(vol.array.shape[-1])]
series = sorted({uids[1] for uids in seg.get_source_image_uids()})
print(json.dumps([counts, series]))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, seg.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "highdicom is needed (pip install highdicom): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("highdicom's answer")
}

fn results_digests(job: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stage in std::fs::read_dir(job.join("results")).unwrap().flatten() {
        let digest = tree_digest(&stage.path()).unwrap().digest;
        out.push((stage.file_name().to_string_lossy().into_owned(), digest));
    }
    out.sort();
    out
}

#[test]
fn two_runs_give_byte_identical_results() {
    let payload = tempdir();
    phantom(payload.path(), 16, 96);
    let (first, jobs1) = run_pipeline(&example_pipeline(), payload.path(), &[]);
    let (second, jobs2) = run_pipeline(&example_pipeline(), payload.path(), &[]);
    assert_eq!(first.status, JobStatus::Succeeded, "{first:#?}");
    assert_eq!(second.status, JobStatus::Succeeded);
    assert_eq!(
        results_digests(&jobs1.path().join("job")),
        results_digests(&jobs2.path().join("job"))
    );
}

#[test]
fn job_parameters_reach_the_stages() {
    let payload = tempdir();
    phantom(payload.path(), 16, 96);
    // Above the contrast sphere (300 HU): only the bone sphere remains.
    let (summary, jobs) = run_pipeline(&example_pipeline(), payload.path(), &[("lower", "500")]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let stats = read_json(&jobs.path().join("job/results/segment/labels/stats.json"));
    assert_eq!(stats["lower"], 500.0);
    assert_eq!(
        stats["components"].as_array().unwrap().len(),
        expected_components(500.0, 3071.0).len()
    );
}

/// Runs the example on `payload` and expects the reader to refuse it with `needle` in the
/// message; later stages are skipped and the payload is unchanged.
fn expect_reader_refuses(payload: &Path, needle: &str) {
    let before = tree_digest(payload).unwrap();
    let (summary, _jobs) = run_pipeline(&example_pipeline(), payload, &[]);
    assert_eq!(summary.status, JobStatus::Failed);
    let failure = summary.failure.as_ref().unwrap();
    assert_eq!(failure.stage.as_deref(), Some("dicom-reader"));
    assert_eq!(
        failure.reason.kind,
        FailureKind::InvalidInput,
        "{}",
        failure.reason
    );
    assert!(
        failure.reason.message.contains(needle),
        "expected {needle:?} in {:?}",
        failure.reason.message
    );
    for stage in ["segment", "render", "dicom-writer"] {
        assert_eq!(
            summary.stage(stage).unwrap().status,
            StageStatus::Skipped,
            "{stage}"
        );
    }
    assert_eq!(
        tree_digest(payload).unwrap(),
        before,
        "the payload is unchanged"
    );
}

#[test]
fn a_non_dicom_file_is_named() {
    let payload = tempdir();
    phantom(payload.path(), 8, 64);
    std::fs::write(payload.path().join("notes.txt"), "not a DICOM file at all, but long enough to have a preamble-sized head ......................................................................................................................").unwrap();
    expect_reader_refuses(payload.path(), "notes.txt");
}

#[test]
fn a_truncated_file_is_named() {
    let payload = tempdir();
    let series = phantom(payload.path(), 8, 64);
    let victim = &series.files[3];
    let bytes = std::fs::read(victim).unwrap();
    std::fs::write(victim, &bytes[..bytes.len() / 2]).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    expect_reader_refuses(payload.path(), &name);
}

#[test]
fn an_empty_payload_is_refused() {
    let payload = tempdir();
    expect_reader_refuses(payload.path(), "payload has no DICOM files");
}

#[test]
fn bad_files_can_be_skipped_on_request() {
    let payload = tempdir();
    phantom(payload.path(), 8, 64);
    std::fs::write(payload.path().join("stray.bin"), [0u8; 300]).unwrap();
    let (summary, jobs) = run_pipeline(
        &example_pipeline(),
        payload.path(),
        &[("on-bad-file", "skip")],
    );
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let volume = read_json(
        &jobs
            .path()
            .join("job/results/dicom-reader/volume/volume.json"),
    );
    assert_eq!(
        volume["skipped_files"][0]["file"], "stray.bin",
        "{volume:#}"
    );
    assert_eq!(volume["dims"][2], 8);
}
