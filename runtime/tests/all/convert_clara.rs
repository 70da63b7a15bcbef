//! `ward convert clara` through the binary: the Clara Deploy example becomes a pipeline that
//! `ward validate` accepts with the repository's stage components and that runs on a CT
//! series; `ward validate` on the Clara file itself names the command; a malformed Clara
//! file is refused at its file:line:col.

use crate::support::*;

fn clara_example() -> std::path::PathBuf {
    repo_root().join("examples/clara/liver-segmentation.yaml")
}

#[test]
fn the_clara_example_converts_validates_and_runs() {
    let components = components_dir();
    let dir = tempdir();
    let out = dir.path().join("pipeline.yaml");
    let segment = components.join("segment.wasm");
    let mapping = format!("clara/ai-liver={}", segment.display());
    let converted = run_ward(&[
        "convert",
        "clara",
        clara_example().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--components",
        components.to_str().unwrap(),
        "--component",
        &mapping,
    ]);
    assert_eq!(converted.code, 0, "{}", converted.stderr);
    // What has no Ward equivalent is said, where it is written.
    for warning in [
        "liver-segmentation.yaml:48:9: operator 'liver-segmentation': service 'trtis'",
        "liver-segmentation.yaml:33:7: operator 'liver-segmentation': container `command`",
    ] {
        assert!(
            converted.stderr.contains(warning),
            "{warning} in\n{}",
            converted.stderr
        );
    }

    let validated = run_ward(&["validate", out.to_str().unwrap()]);
    assert_eq!(
        validated.code,
        0,
        "{}{}\n{}",
        validated.stdout,
        validated.stderr,
        std::fs::read_to_string(&out).unwrap()
    );
    assert!(
        validated.stdout.contains("valid (2 operators)"),
        "{}",
        validated.stdout
    );
    assert!(
        validated.stdout.contains("dicom_reader.wasm"),
        "the image's own name"
    );

    // This host has no GPU: the converted file keeps Clara's request, which Ward honours by
    // refusing; asked for none, the same stages run on a CT series.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("gpu: \"1\""), "{text}");
    let cpu = dir.path().join("cpu.yaml");
    std::fs::write(&cpu, text.replace("gpu: \"1\"", "gpu: \"0\"")).unwrap();
    let payload = tempdir();
    ward::sample::ct_series::write_ct_series(
        payload.path(),
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 8,
            size: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let results = dir.path().join("job");
    let ran = ward_run(
        &cpu,
        payload.path(),
        &["--results", results.to_str().unwrap(), "--no-progress"],
    );
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let stats = read_json(&results.join("results/liver-segmentation/labels/stats.json"));
    // Clara's `variables` reached the stage as its parameters, and picked the phantom's
    // 60 HU lesion.
    assert_eq!(
        (stats["lower"].as_f64(), stats["upper"].as_f64()),
        (Some(40.0), Some(200.0)),
        "{stats}"
    );
    assert_eq!(
        stats["components"][0]["mean_hu"].as_f64(),
        Some(60.0),
        "{stats}"
    );
}

#[test]
fn validate_on_a_clara_file_names_the_convert_command() {
    let example = clara_example();
    let out = run_ward(&["validate", example.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let expected = format!(
        "{}:9:14: api-version '0.4.0' is a Clara Deploy pipeline definition; convert it with `ward convert clara {}`",
        example.display(),
        example.display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
}

#[test]
fn a_malformed_clara_file_is_refused_at_its_place() {
    let dir = tempdir();
    let file = dir.path().join("clara.yaml");
    std::fs::write(
        &file,
        "api-version: 0.4.0
name: ct
operators:
  - name: reader
    container: {image: clara/dicom-reader}
    output:
      - {name: volume, path: /output}
      - path: /stats
",
    )
    .unwrap();
    let out_file = dir.path().join("out.yaml");
    let out = run_ward(&[
        "convert",
        "clara",
        file.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}:8:9: operator 'reader': output 2: missing field `name`",
            file.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!out_file.exists(), "nothing written for a refused file");
}
