//! `ward dicom listen --check`: the configuration, every route's pipelines and every export
//! checked before anything listens, each problem on a line of its own at its file:line:col.

use super::free_port;
use crate::support::*;
use std::path::Path;

/// The example configuration of the README passes, with its pipeline and export.
#[test]
fn the_example_adapter_configuration_passes_the_check() {
    components_dir();
    let example = repo_root().join("examples/dicom/adapter.yaml");
    let out = run_ward(&["dicom", "listen", "--check", example.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("valid: 2 routes, 1 pipelines, 1 exports"),
        "{}",
        out.stdout
    );
}

/// A configuration for the example segmentation with exports `exports` (YAML flow items).
fn with_exports(dir: &Path, exports: &str) -> std::path::PathBuf {
    let example = repo_root().join("examples/ct-segmentation/pipeline.yaml");
    let config = dir.join("dicom.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{}
storage: {}
routes:
  - ae-title: CT_SEG
    pipelines: [{}]
    export:
{exports}destinations:
  - {{name: pacs, ae-title: PACS, host: 127.0.0.1, port: 104}}
",
            free_port(),
            dir.join("storage").display(),
            example.display()
        ),
    )
    .unwrap();
    config
}

/// An export naming a stage the pipeline lacks, and one naming an output its stage lacks,
/// are each refused where they are written, by `--check` and at start-up alike, and the
/// listener never starts (no storage is made).
#[test]
fn an_export_of_a_missing_stage_or_output_is_refused_at_its_line() {
    components_dir();
    let dir = tempdir();
    let config = with_exports(
        dir.path(),
        "      - {output: segmenter.seg, destination: pacs}
      - {output: dicom-writer.sag, destination: pacs}
",
    );
    let file = config.display().to_string();
    for how in ["--check", "--config"] {
        let out = run_ward(&["dicom", "listen", how, &file]);
        assert_eq!(out.code, 2, "{how}: {}{}", out.stdout, out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            lines,
            [
                format!(
                    "{file}:7:18: route 'CT_SEG': export output 'segmenter.seg': no stage 'segmenter' in the route's pipeline(s) ct-segmentation"
                ),
                format!(
                    "{file}:8:18: route 'CT_SEG': export output 'dicom-writer.sag': stage 'dicom-writer' has no output 'sag' (its outputs: seg)"
                ),
            ],
            "{how}: {}",
            out.stderr
        );
    }
    assert!(!dir.path().join("storage").exists(), "nothing was started");
}

/// Several problems in one configuration: each on its own line, in file order, at the
/// line and column of the value at fault.
#[test]
fn every_configuration_error_is_reported_at_its_file_line_and_column() {
    let dir = tempdir();
    let config = dir.path().join("dicom.yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:11112
storage: s
max-pdu: 1Ki
max-jobs: 0
routes:
  - ae-title: CT_SEG
    assemble: sometimes
    when: {modality: CT, max-slice-thickness: thin}
    export: [{output: seg, destination: pacs}]
  - ae-title: CT_SEG
    allow-ips: [localhost]
    export: [{output: a.b, destination: nowhere}]
",
    )
    .unwrap();
    let file = config.display().to_string();
    let out = run_ward(&["dicom", "listen", "--check", &file]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let expected = [
        "3:10: max-pdu must be from 4Ki to 16Mi",
        "4:11: max-jobs 0 must be from 1 to 1024",
        "7:15: route 'CT_SEG': assemble 'sometimes' must be `association` or `study`",
        "8:47: route 'CT_SEG': when max-slice-thickness: 'thin' is not a number",
        "9:23: route 'CT_SEG': export output 'seg' must be `stage.output`",
        "10:15: route 'CT_SEG': the AE title is routed twice",
        "11:17: route 'CT_SEG': 'localhost' is not an IP address",
        "12:41: route 'CT_SEG': unknown destination 'nowhere'",
    ]
    .map(|e| format!("{file}:{e}"));
    assert_eq!(lines, expected, "{}", out.stderr);

    // A key that is not one, and YAML that is not YAML, are located too.
    for (text, at) in [
        ("listen: x\nstorage: s\nroutes: []\nmax-job: 2\n", "4:1: "),
        ("listen: x\nstorage: [s\n", "3:1: not valid YAML"),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = run_ward(&["dicom", "listen", "--check", &file]);
        assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.starts_with(&format!("{file}:{at}")),
            "{text}: {}",
            out.stderr
        );
    }
}
