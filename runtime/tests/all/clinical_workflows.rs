//! The MR and ultrasound example pipelines on real files from pydicom's test data and the
//! `pydicom-data` package: each runs in the sandbox, writes DICOM that DCMTK's dcmdump reads,
//! and DCMTK's storescp (a PACS's storage end) accepts it from DCMTK's storescu.

use crate::dicom_scu::storescp;
use crate::real_dicom::{pydicom_data_files, pydicom_files};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use ward::jobs::JobStatus;

/// Sends `files` with DCMTK's storescu to a fresh storescp and returns what it stored.
fn store_in_a_pacs(files: &[PathBuf]) -> Vec<PathBuf> {
    let work = tempdir();
    let out = tempdir();
    let scp = storescp(work.path(), out.path(), &[]);
    let status = Command::new(dcmtk_tool("storescu"))
        // -R: propose exactly the files' SOP classes (SEG and multi-frame secondary capture
        // are not in storescu's default list).
        .args(["-R", "-aec", "STORESCP", "127.0.0.1", &scp.port.to_string()])
        .args(files)
        .status()
        .expect("storescu is needed (apt-get install -y dcmtk)");
    assert!(status.success(), "storescu failed:\n{}", scp.log());
    // storescu returns once storescp has answered every C-STORE: the files are written.
    let stored: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        stored.len(),
        files.len(),
        "stored: {stored:?}\n{}",
        scp.log()
    );
    // Keep them past the temporary directory.
    let keep = tempdir().keep();
    stored
        .iter()
        .map(|p| {
            let to = keep.join(p.file_name().unwrap());
            std::fs::copy(p, &to).unwrap();
            to
        })
        .collect()
}

fn payload_of(files: &[PathBuf]) -> tempfile::TempDir {
    let payload = tempdir();
    for f in files {
        std::fs::copy(f, payload.path().join(f.file_name().unwrap())).unwrap();
    }
    payload
}

/// Runs the MR example on `file`; returns the job directory's path and the mask's share of
/// the voxels.
fn mr_head_mask(file: &Path) -> (tempfile::TempDir, f64) {
    components_dir();
    let payload = payload_of(&[file.to_path_buf()]);
    let (summary, jobs) = run_pipeline(
        &repo_root().join("examples/mr-head-mask/pipeline.yaml"),
        payload.path(),
        &[],
    );
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let job = jobs.path().join("job");
    let stats = read_json(&job.join("results/head-mask/mask/stats.json"));
    let volume = read_json(&job.join("results/dicom-reader/volume/volume.json"));
    let voxels: u64 = volume["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .product();
    let share = stats["total_voxels"].as_u64().unwrap() as f64 / voxels as f64;
    let bias = read_json(&job.join("results/bias-correct/corrected/bias.json"));
    assert!(bias["scale"].as_f64().unwrap() > 0.0, "{bias}");
    for png in ["axial.png", "coronal.png", "sagittal.png"] {
        assert!(
            job.join("results/render/images").join(png).is_file(),
            "{png} rendered"
        );
    }
    (jobs, share)
}

fn seg_of(jobs: &Path) -> PathBuf {
    jobs.join("job/results/dicom-writer/seg/dicom/segmentation.dcm")
}

#[test]
fn the_mr_example_masks_a_classic_series_and_the_pacs_stores_its_seg() {
    let (jobs, share) = mr_head_mask(&pydicom_files().join("MR_small.dcm"));
    assert!(
        (0.05..0.95).contains(&share),
        "the head is part of the image, not all or nothing: {share}"
    );
    let seg = seg_of(jobs.path());
    let dump = dcmdump(&["+E", seg.to_str().unwrap()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    assert!(
        dump.stdout.contains("=SegmentationStorage"),
        "{}",
        dump.stdout
    );
    assert!(
        dump.stdout.contains("[head]"),
        "the segment is named: {}",
        dump.stdout
    );
    let stored = store_in_a_pacs(&[seg]);
    assert_eq!(dcmdump(&[stored[0].to_str().unwrap()]).code, 0);
}

#[test]
fn the_mr_example_masks_an_enhanced_multi_frame_series() {
    let (jobs, share) = mr_head_mask(&pydicom_data_files().join("emri_small.dcm"));
    assert!((0.05..0.95).contains(&share), "{share}");
    let volume = read_json(
        &jobs
            .path()
            .join("job/results/dicom-reader/volume/volume.json"),
    );
    assert_eq!(volume["dims"], serde_json::json!([64, 64, 10]));
    let seg = seg_of(jobs.path());
    let dump = dcmdump(&["+E", seg.to_str().unwrap()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    // Each SEG frame references its frame of the one enhanced instance.
    assert!(
        dump.stdout
            .lines()
            .any(|l| l.contains("(0008,1160)") && l.contains("[10]")),
        "{}",
        dump.stdout
    );
    store_in_a_pacs(&[seg]);
}

/// Runs the ultrasound example on `file`; returns the job directory.
fn us_cine(file: &Path) -> tempfile::TempDir {
    components_dir();
    let payload = payload_of(&[file.to_path_buf()]);
    let (summary, jobs) = run_pipeline(
        &repo_root().join("examples/us-cine/pipeline.yaml"),
        payload.path(),
        &[],
    );
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    jobs
}

/// A real echocardiography cine (120 colour JPEG frames, 33 ms apart): every frame measured
/// and played in the APNG, the key frame one of them, and the filtered loop stored by the
/// PACS as a multi-frame secondary capture of the source study with all 120 frames.
#[test]
fn the_us_example_reviews_a_real_cine_and_the_pacs_stores_the_loop() {
    let source = pydicom_data_files().join("color3d_jpeg_baseline.dcm");
    let jobs = us_cine(&source);
    let job = jobs.path().join("job");
    let review = read_json(&job.join("results/cine/review/cine.json"));
    assert_eq!(review["frames"], 120);
    assert!((review["frame_time_ms"].as_f64().unwrap() - 33.333).abs() < 0.01);
    let key = review["key_frame"].as_u64().unwrap();
    assert!((1..=120).contains(&key), "{key}");
    let per_frame = review["per_frame"].as_array().unwrap();
    assert_eq!(per_frame.len(), 120);
    // The loop moves (7 of its frames repeat the one before, as pydicom's decoding shows
    // too), and the key frame is where it moves most.
    let changes: Vec<f64> = per_frame
        .iter()
        .map(|f| f["change"].as_f64().unwrap())
        .collect();
    let moving = changes[1..].iter().filter(|&&c| c > 0.0).count();
    assert!(moving >= 100, "{moving} of 119 frames change");
    let most = changes.iter().copied().fold(0.0, f64::max);
    assert_eq!(changes[key as usize - 1], most);

    // The APNG holds every frame, at the cine's rate.
    let apng = std::fs::read(job.join("results/cine/review/cine.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(apng))
        .read_info()
        .unwrap();
    let control = reader.info().animation_control.unwrap();
    assert_eq!(control.num_frames, 120);
    let fc = reader.info().frame_control.unwrap();
    assert_eq!((fc.delay_num, fc.delay_den), (33, 1000));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let mut decoded = 0;
    while reader.next_frame(&mut buf).is_ok() {
        decoded += 1;
    }
    assert_eq!(decoded, 120);
    assert!(job.join("results/cine/review/key-frame.png").is_file());

    // Speckle reduced: the filtered frames are smoother than the source's luma.
    let roughness = |dir: &Path| {
        let header = read_json(&dir.join("volume.json"));
        let nx = header["dims"][0].as_u64().unwrap() as usize;
        let raw = std::fs::read(dir.join("volume.raw")).unwrap();
        let v: Vec<i64> = raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64)
            .collect();
        v.windows(2)
            .enumerate()
            .filter(|(i, _)| (i + 1) % nx != 0)
            .map(|(_, w)| (w[1] - w[0]).abs())
            .sum::<i64>() as f64
            / v.len() as f64
    };
    let before = roughness(&job.join("results/dicom-reader/volume"));
    let after = roughness(&job.join("results/speckle/filtered"));
    // Over the whole frame, black border and burnt-in text included: 1.80 -> 1.53 here.
    assert!(after < before * 0.9, "speckle reduced: {before} -> {after}");

    // The loop goes back to the PACS.
    let cine = job.join("results/dicom-writer/dicom/dicom/cine.dcm");
    let dump = dcmdump(&[cine.to_str().unwrap()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    assert!(
        dump.stdout
            .contains("=MultiframeGrayscaleByteSecondaryCaptureImageStorage"),
        "{}",
        dump.stdout
    );
    assert!(
        dump.stdout.contains("(0028,0008) IS [120]"),
        "{}",
        dump.stdout
    );
    let source_dump = dcmdump(&[source.to_str().unwrap()]);
    let study = |d: &str| {
        d.lines()
            .find(|l| l.starts_with("(0020,000d)"))
            .map(|l| l.to_string())
    };
    assert_eq!(
        study(&dump.stdout),
        study(&source_dump.stdout),
        "same study"
    );
    let stored = store_in_a_pacs(&[cine]);
    assert_eq!(dcmdump(&[stored[0].to_str().unwrap()]).code, 0);
}

/// A real palette-colour ultrasound with two frames, uncompressed and big endian: read as
/// RGB, filtered and written back the same.
#[test]
fn the_us_example_takes_palette_colour_in_either_byte_order() {
    let mut loops = Vec::new();
    for name in ["OBXXXX1A_2frame.dcm", "OBXXXX1A_expb_2frame.dcm"] {
        let jobs = us_cine(&pydicom_data_files().join(name));
        let job = jobs.path().join("job");
        let volume = read_json(&job.join("results/dicom-reader/volume/volume.json"));
        assert_eq!(volume["dims"], serde_json::json!([800, 600, 2]));
        assert_eq!(volume["rgb"]["dtype"], "uint16");
        assert_eq!(volume["geometry"], "frame-stack");
        loops.push(std::fs::read(job.join("results/speckle/filtered/volume.raw")).unwrap());
    }
    assert_eq!(
        loops[0], loops[1],
        "both byte orders give the same filtered loop"
    );
}
