//! Converting Clara Deploy pipeline definitions: the example converts into a pipeline Ward's
//! loader accepts, what has no Ward equivalent is warned of where it is written, and a file
//! that cannot be converted is refused with every problem located.

use super::*;
use std::path::{Path, PathBuf};

fn example() -> (PathBuf, String) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clara/liver-segmentation.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// Every image mapped to `stage.wasm`, the file `tests::check` provides.
fn to_stage() -> ClaraOptions {
    ClaraOptions {
        components: vec![
            ("clara/dicom-reader".into(), "stage.wasm".into()),
            ("clara/ai-liver:0.4.0".into(), "stage.wasm".into()),
        ],
        components_dir: None,
    }
}

fn shown(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            let file = p.location.file.file_name().unwrap().to_string_lossy();
            let op = p
                .operator
                .as_deref()
                .map(|o| format!("[{o}] "))
                .unwrap_or_default();
            format!(
                "{file}:{}:{}: {op}{}",
                p.location.line, p.location.column, p.message
            )
        })
        .collect()
}

fn refused(yaml: &str) -> Vec<String> {
    match convert_clara(Path::new("clara.yaml"), yaml, &ClaraOptions::default()) {
        Ok(c) => panic!("converted:\n{}", c.yaml),
        Err(e) => shown(e.problems()),
    }
}

#[test]
fn the_example_converts_into_a_pipeline_ward_accepts() {
    let (path, text) = example();
    let converted = convert_clara(&path, &text, &to_stage()).unwrap();
    let pipeline =
        super::tests::check(&converted.yaml).unwrap_or_else(|e| panic!("{e}\n{}", converted.yaml));
    assert_eq!(pipeline.name, "liver-segmentation");
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["dicom-reader", "liver-segmentation"]);
    let (reader, seg) = (&pipeline.stages[0], &pipeline.stages[1]);
    assert_eq!(
        reader.outputs[0].name, "output",
        "the unnamed output, named by its path"
    );
    assert_eq!(reader.outputs[0].guest_path, "/output");
    assert_eq!(
        reader.requests.memory_bytes,
        2048 << 20,
        "Clara's megabytes"
    );
    assert_eq!(
        seg.inputs[0].source,
        InputSource::Stage {
            stage: "dicom-reader".into(),
            output: "output".into()
        }
    );
    assert_eq!(seg.inputs[0].guest_path, "/input");
    assert_eq!(seg.outputs[0].name, "labels");
    assert_eq!(
        seg.requests.memory_bytes,
        4 << 30,
        "capped at what wasm addresses"
    );
    assert_eq!(seg.requests.gpu, 1);
    assert_eq!(seg.parameters.get("lower").map(String::as_str), Some("40"));
    assert_eq!(seg.parameters.get("upper").map(String::as_str), Some("200"));
    assert!(
        !seg.parameters.contains_key("NVIDIA_CLARA_TRTISURI"),
        "Clara's wiring is not a parameter"
    );
    let warnings = shown(&converted.warnings);
    let expected = [
        "liver-segmentation.yaml:11:1: `orchestrator` has no Ward equivalent",
        "liver-segmentation.yaml:12:1: `pull-secrets` has no Ward equivalent",
        "liver-segmentation.yaml:33:7: [liver-segmentation] container `command` has no Ward equivalent",
        "liver-segmentation.yaml:41:12: [liver-segmentation] requests.gpu 1 kept",
        "liver-segmentation.yaml:42:15: [liver-segmentation] requests.memory 8192 MB is above the 4Gi",
        "liver-segmentation.yaml:46:7: [liver-segmentation] variable `NVIDIA_CLARA_TRTISURI` is Clara's own wiring",
        "liver-segmentation.yaml:48:9: [liver-segmentation] service 'trtis', image 'nvcr.io/nvidia/tensorrtserver' has no Ward equivalent",
    ];
    assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
    for (got, want) in warnings.iter().zip(expected) {
        assert!(got.starts_with(want), "{got}\n  wanted {want}…");
    }
}

#[test]
fn an_image_without_a_mapping_becomes_the_component_named_after_it() {
    let (path, text) = example();
    let options = ClaraOptions {
        components: vec![],
        components_dir: Some("components/".into()),
    };
    let converted = convert_clara(&path, &text, &options).unwrap();
    assert!(
        converted
            .yaml
            .contains("path: components/dicom_reader.wasm"),
        "{}",
        converted.yaml
    );
    assert!(converted.yaml.contains("path: components/ai_liver.wasm"));
    let warnings = shown(&converted.warnings);
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "liver-segmentation.yaml:19:14: [dicom-reader] container image 'clara/dicom-reader' became component 'components/dicom_reader.wasm'"
        ) && w.contains("--component clara/dicom-reader=PATH")),
        "{warnings:#?}"
    );
}

#[test]
fn malformed_clara_files_are_refused_where_they_are_wrong() {
    let head = "api-version: 0.4.0\nname: ct\noperators:\n";
    let cases = [
        (
            "  - name: reader\n    input: [{path: /in}]\n",
            "clara.yaml:4:5: [reader] missing field `container`",
        ),
        (
            "  - name: reader\n    container:\n      tag: '1'\n",
            "clara.yaml:6:7: [reader] container: missing field `image`",
        ),
        (
            "  - name: reader\n    container: {image: r}\n    input:\n      - from: x\n",
            "clara.yaml:7:9: [reader] input 1: missing field `path`",
        ),
        (
            "  - name: reader\n    container: {image: r}\n    output:\n      - {name: a, path: /a}\n      - path: /b\n",
            "clara.yaml:8:9: [reader] output 2: missing field `name` (Clara needs it when an operator has several outputs)",
        ),
        (
            "  - name: reader\n    container: {image: r}\n    requests: {memory: lots}\n",
            "clara.yaml:6:24: [reader] requests.memory 'lots' must be a whole number",
        ),
        (
            "  - container: {image: r}\n",
            "clara.yaml:4:5: operator 1: missing field `name`",
        ),
        (
            "  - name: Bad/Name\n    container: {image: r}\n",
            "clara.yaml:4:11: operator name 'bad/name' must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit",
        ),
    ];
    for (operator, expected) in cases {
        assert_eq!(
            refused(&format!("{head}{operator}")),
            [expected],
            "in\n{head}{operator}"
        );
    }
    assert_eq!(
        refused("api-version: 0.1\nname: ct\noperators:\n  - name: a\n    container: {image: r}\n"),
        ["clara.yaml:1:14: api-version '0.1': ward convert clara reads Clara 0.4 and 0.5 pipeline definitions"]
    );
    assert_eq!(
        refused("api-version: 0.5.0\nname: ct\noperators: {a: b}\n"),
        ["clara.yaml:3:13: operators must be a list"]
    );
    let p = refused("api-version: 0.4.0\nname: [ct\n");
    assert!(
        p[0].starts_with("clara.yaml:") && p[0].contains("not valid YAML"),
        "{p:?}"
    );
    // Every problem, not just the first.
    let p =
        refused("api-version: 0.4.0\noperators:\n  - name: a\n  - name: b\n    container: {}\n");
    assert_eq!(
        p,
        [
            "clara.yaml:1:1: missing field `name`",
            "clara.yaml:3:5: [a] missing field `container`",
            "clara.yaml:5:16: [b] container: missing field `image`",
        ]
    );
}

#[test]
fn the_loader_names_the_convert_command_for_a_clara_file() {
    let (_, text) = example();
    let e = super::tests::check(&text).unwrap_err();
    let p = e.problems();
    assert_eq!(p.len(), 1, "{e}");
    assert_eq!((p[0].location.line, p[0].location.column), (9, 14));
    assert!(
        p[0].message.starts_with("api-version '0.4.0' is a Clara Deploy pipeline definition; convert it with `ward convert clara ")
            && p[0].message.ends_with("pipeline.yaml` (supported here: 0.1, 0.1.0)"),
        "{}",
        p[0].message
    );
}
