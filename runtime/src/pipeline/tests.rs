//! Validation of pipeline files: every problem found, each at its file:line:col.

use super::*;
use std::path::Path;

/// Validates `yaml` as if it were `<dir>/pipeline.yaml`, where `dir` holds `stage.wasm`.
pub(super) fn check(yaml: &str) -> Result<Pipeline, PipelineError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stage.wasm"), b"\0asm").unwrap();
    parse(&dir.path().join("pipeline.yaml"), yaml)
}

pub(super) fn problems(yaml: &str) -> Vec<String> {
    match check(yaml) {
        Ok(_) => panic!("expected validation problems"),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| {
                let file = p
                    .location
                    .file
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                format!(
                    "{file}:{}:{}: {}{}",
                    p.location.line,
                    p.location.column,
                    p.operator
                        .as_deref()
                        .map(|o| format!("[{o}] "))
                        .unwrap_or_default(),
                    p.message
                )
            })
            .collect(),
    }
}

const GOOD: &str = "api-version: 0.1
name: demo
parameters:
  lower: 200
operators:
  - name: reader
    component: {path: stage.wasm}
    input:
      - path: /payload
    output:
      - name: volume
        path: /results
  - name: segment
    component: {path: stage.wasm}
    parameters: {lower: 300}
    input:
      - from: reader
        path: /input
    requests: {memory: 256Mi, timeout: 90s, cpu: 2}
  - name: report
    component: {path: stage.wasm}
    input:
      - {from: reader, name: volume, path: /volume}
      - {from: segment, path: /labels}
";

#[test]
fn a_good_pipeline_is_ordered_and_resolved() {
    let p = check(GOOD).unwrap();
    let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["reader", "segment", "report"]);
    let segment = &p.stages[1];
    assert_eq!(
        segment.parameters["lower"], "300",
        "operator parameters override the pipeline's"
    );
    assert_eq!(p.stages[0].parameters["lower"], "200");
    assert_eq!(segment.requests.memory_bytes, 256 << 20);
    assert_eq!(segment.requests.timeout, std::time::Duration::from_secs(90));
    assert_eq!(segment.requests.cpu, 2);
    assert_eq!(
        segment.inputs[0].source,
        InputSource::Stage {
            stage: "reader".into(),
            output: "volume".into()
        }
    );
    assert_eq!(
        segment.outputs[0].name, "results",
        "an operator without outputs gets one"
    );
    assert_eq!(p.stages[2].depends_on, vec![0, 1]);
    assert_eq!(p.stages[0].inputs[0].source, InputSource::Payload);
    assert_eq!(p.stages[0].requests.memory_bytes, DEFAULT_MEMORY);
}

#[test]
fn stages_are_ordered_by_data_flow_not_file_order() {
    let yaml = "api-version: 0.1
name: reversed
operators:
  - name: b
    component: {path: stage.wasm}
    input: [{from: a, path: /in}]
  - name: a
    component: {path: stage.wasm}
";
    let p = check(yaml).unwrap();
    assert_eq!(p.stages[0].name, "a");
    assert_eq!(p.stages[1].depends_on, vec![0]);
}

#[test]
fn a_cycle_names_its_operators() {
    let yaml = "api-version: 0.1
name: loop
operators:
  - name: a
    component: {path: stage.wasm}
    input: [{from: c, path: /in}]
  - name: b
    component: {path: stage.wasm}
    input: [{from: a, path: /in}]
  - name: c
    component: {path: stage.wasm}
    input: [{from: b, path: /in}]
";
    let p = problems(yaml);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("cycle: a -> b -> c -> a")
            || p[0].contains("cycle: b -> c -> a -> b")
            || p[0].contains("cycle: c -> a -> b -> c"),
        "{p:?}"
    );
    assert!(p[0].starts_with("pipeline.yaml:"), "{p:?}");
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let yaml = "api-version: 0.1
name: broken
operators:
  - name: reader
    component: {path: missing.wasm}
    requests: {memory: 12Xi, timeout: soon, cpu: 0}
  - name: reader
    component: {path: stage.wasm}
  - name: segment
    component: {path: stage.wasm}
    input:
      - {from: raeder, path: /in}
      - {from: reader, name: nope, path: in}
";
    let p = problems(yaml);
    let expect = [
        "pipeline.yaml:5:23: [reader] component file 'missing.wasm' does not exist",
        "pipeline.yaml:6:24: [reader] requests.memory '12Xi': unknown size suffix 'Xi'",
        "pipeline.yaml:6:39: [reader] requests.timeout 'soon' is not a duration",
        "pipeline.yaml:6:50: [reader] requests.cpu '0' must be a whole number from 1 to 1024",
        "pipeline.yaml:7:11: [reader] duplicate operator name (first defined at",
        "pipeline.yaml:12:16: [segment] input from unknown operator 'raeder' (operators: reader)",
        "pipeline.yaml:13:42: [segment] path 'in' must be absolute",
        "pipeline.yaml:13:30: [segment] operator 'reader' has no output 'nope' (outputs: results)",
    ];
    for e in expect {
        assert!(
            p.iter().any(|got| got.starts_with(e)),
            "missing {e:?} in {p:#?}"
        );
    }
}

#[test]
fn memory_beyond_what_wasm_can_address_is_refused() {
    let yaml = "api-version: 0.1
name: big
operators:
  - name: a
    component: {path: stage.wasm}
    requests: {memory: 8Gi}
";
    let p = problems(yaml);
    assert!(p[0].contains("above the 4Gi"), "{p:?}");
}

#[test]
fn unknown_fields_and_bad_yaml_are_located() {
    let p = problems(
        "api-version: 0.1\nname: x\noperators:\n  - name: a\n    container: {path: stage.wasm}\n",
    );
    assert!(
        p[0].starts_with("pipeline.yaml:5:5: [a] unknown field `container`, expected one of"),
        "{p:?}"
    );
    let p = problems("api-version: 0.1\nname: [unclosed\n");
    assert!(p[0].contains("not valid YAML"), "{p:?}");
    let p = problems("api-version: 0.1\nname: x\nname: y\noperators: []\n");
    assert!(p[0].contains("'name' appears twice"), "{p:?}");
}

/// A missing field is placed at the element it is missing from, named by its operator and
/// its number in the list, not at the top of the file.
#[test]
fn missing_fields_are_located_at_their_element() {
    let head = "api-version: 0.1\nname: x\noperators:\n";
    let reader = "  - name: reader\n    component: {path: stage.wasm}\n";
    let cases = [
        (
            "  - name: segment\n    component: {path: stage.wasm}\n    output:\n      - name: labels\n        path: /results\n      - path: /stats\n",
            "pipeline.yaml:11:9: [segment] output 2: missing field `name`",
        ),
        (
            "  - name: segment\n    component: {path: stage.wasm}\n    output:\n      - name: stats\n",
            "pipeline.yaml:9:9: [segment] output 1: missing field `path`",
        ),
        (
            "  - component: {path: stage.wasm}\n    input: [{path: /payload}]\n",
            "pipeline.yaml:6:5: operator 2: missing field `name`",
        ),
        (
            "  - name: segment\n    input: [{path: /payload}]\n",
            "pipeline.yaml:6:5: [segment] missing field `component`",
        ),
        (
            "  - name: segment\n    component: {path: stage.wasm}\n    input:\n      - from: reader\n",
            "pipeline.yaml:9:9: [segment] input 1: missing field `path`",
        ),
        (
            "  - name: segment\n    component: {path: stage.wasm}\n    ports:\n      in:\n        - name: slices\n",
            "pipeline.yaml:10:11: [segment] input port 1: missing field `from`",
        ),
        (
            "  - name: segment\n    component: {path: stage.wasm}\n    ports:\n      out:\n        - {type: ward/x}\n        - {}\n",
            "pipeline.yaml:10:12: [segment] output port 1: missing field `name`",
        ),
    ];
    for (operator, expected) in cases {
        let p = problems(&format!("{head}{reader}{operator}"));
        assert_eq!(p, [expected], "in\n{head}{reader}{operator}");
    }
    let p =
        problems("api-version: 0.1\noperators:\n  - name: a\n    component: {path: stage.wasm}\n");
    assert_eq!(p, ["pipeline.yaml:1:1: missing field `name`"]);
}

/// A field the validator finds missing in a block mapping is placed at the mapping's first
/// key, not where the parser marked the mapping (the end of that key).
#[test]
fn a_component_without_a_path_is_placed_at_its_mapping() {
    let digest = "sha256:".to_string() + &"0".repeat(64);
    let p = problems(&format!(
        "api-version: 0.1\nname: x\noperators:\n  - name: a\n    component:\n      digest: {digest}\n"
    ));
    assert_eq!(
        p,
        ["pipeline.yaml:6:7: [a] component needs `path:` (a .wasm component file) or `ref:` (a registry component)"]
    );
}

/// What the user reads: the file, the place, the operator and the element.
#[test]
fn a_missing_output_name_reads_with_its_operator_and_output() {
    let yaml = "api-version: 0.1
name: x
operators:
  - name: segment
    component: {path: stage.wasm}
    output:
      - name: labels
        path: /results
      - path: /stats
";
    let shown = check(yaml).unwrap_err().to_string();
    assert!(
        shown.ends_with("pipeline.yaml:9:9: operator 'segment': output 2: missing field `name`"),
        "{shown}"
    );
}

/// Unknown fields and values of the wrong type are placed the same way: at the key, or at the
/// value.
#[test]
fn unknown_fields_and_wrong_types_are_located_at_their_element() {
    let head =
        "api-version: 0.1\nname: x\noperators:\n  - name: a\n    component: {path: stage.wasm}\n";
    let cases = [
        (
            "    output:\n      - name: o\n        path: /o\n        mode: rw\n",
            "pipeline.yaml:9:9: [a] output 1: unknown field `mode`, expected `name` or `path`",
        ),
        (
            "    requests:\n      memory: [1, 2]\n",
            "pipeline.yaml:7:16: [a] requests, `memory`: invalid type: sequence, expected a string",
        ),
        (
            "    parameters:\n      lower: 200\n      upper: {hu: 900}\n",
            "pipeline.yaml:8:15: [a] `upper`: invalid type: map, expected a string",
        ),
        (
            "    input:\n      - path: /payload\n      - {from: b, path: [x]}\n",
            "pipeline.yaml:8:26: [a] input 2, `path`: invalid type: sequence, expected a string",
        ),
    ];
    for (rest, expected) in cases {
        let p = problems(&format!("{head}{rest}"));
        assert_eq!(p, [expected], "in\n{head}{rest}");
    }
}

#[test]
fn names_that_could_escape_the_job_directory_are_refused() {
    let yaml = "api-version: 0.1
name: evil
operators:
  - name: ../../etc
    component: {path: stage.wasm}
";
    let p = problems(yaml);
    assert!(p[0].contains("operator name '../../etc' must be"), "{p:?}");
}

#[test]
fn unsupported_api_version_and_bad_registry_refs() {
    let yaml = "api-version: 9.0
name: x
operators:
  - name: a
    component: {ref: registry.example/seg:1, digest: sha256:abc}
  - name: b
    component: {ref: acme/seg:1}
  - name: c
    component: {ref: 'registry.example/seg@sha256:00'}
";
    let p = problems(yaml);
    assert!(
        p.iter()
            .any(|m| m.contains("api-version '9.0' is not supported")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("'acme' is not a registry host")),
        "{p:?}"
    );
    assert!(p.iter().any(|m| m.contains("not after '@'")), "{p:?}");
    assert!(
        p.iter().any(|m| m.contains("digest 'sha256:abc' must be")),
        "{p:?}"
    );
}

#[test]
fn a_registry_component_keeps_its_reference_and_pin() {
    let dir = tempfile::tempdir().unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let yaml = format!(
        "api-version: 0.1
name: x
operators:
  - name: a
    component: {{ref: '127.0.0.1:5000/acme/seg:1', digest: {digest}}}
"
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let p = load(&file).unwrap();
    let r = p.stages[0].component.registry.as_ref().unwrap();
    assert_eq!(r.reference, "127.0.0.1:5000/acme/seg:1");
    assert_eq!(r.manifest_digest.as_deref(), Some(digest.as_str()));
    assert!(p.stages[0].component.digest.is_none());
}

#[test]
fn reading_a_file_that_is_not_there() {
    let err = load(Path::new("/nonexistent/pipeline.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/pipeline.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn inputs_that_would_mount_the_wrong_thing_are_refused() {
    let yaml = "api-version: 0.1
name: x
operators:
  - name: a
    component: {path: stage.wasm}
    input:
      - {name: volume, path: /in}
      - {dataset: atlas, name: atlas, path: /atlas}
      - {path: /data}
      - {path: /data/inner}
";
    let p = problems(yaml);
    assert!(
        p.iter()
            .any(|m| m.contains("`name: volume` without `from`")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("an input with `dataset` takes none")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("path '/data/inner' and '/data'") && m.contains("nested")),
        "{p:#?}"
    );
}

/// A deterministic mutation smoke test: thousands of corruptions of a valid pipeline file
/// (bytes flipped, cut, duplicated, spliced with YAML punctuation) must each give a located
/// error or a pipeline — never a panic. Longer, coverage-guided runs: `fuzz/` (cargo fuzz).
#[test]
fn corrupted_pipeline_files_never_panic() {
    const PIECES: &[&str] = &[
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "\n",
        "  ",
        "&a ",
        "*a",
        "!!str ",
        "'",
        "\"",
        "#",
        "|\n",
        ">-\n",
        "~",
        "? ",
        ",",
        "\t",
        "\u{feff}",
        "é",
        "from: ",
        "../",
        "operators:\n",
        "0x",
        "1e999",
        "-",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stage.wasm"), b"\0asm").unwrap();
    let file = dir.path().join("pipeline.yaml");
    for _ in 0..20_000 {
        let mut text: Vec<char> = GOOD.chars().collect();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % (text.len() + 1);
            match next() % 4 {
                0 if at < text.len() => {
                    text.remove(at);
                }
                1 => {
                    let piece = PIECES[(next() as usize) % PIECES.len()];
                    for (k, c) in piece.chars().enumerate() {
                        text.insert(at + k, c);
                    }
                }
                2 => text.truncate(at),
                _ => {
                    let from = (next() as usize) % (text.len() + 1);
                    let to = (from + (next() as usize) % 40).min(text.len());
                    let copy: Vec<char> = text[from..to].to_vec();
                    for (k, c) in copy.into_iter().enumerate() {
                        text.insert(at.min(text.len()) + k, c);
                    }
                }
            }
        }
        let text: String = text.into_iter().collect();
        let outcome = std::panic::catch_unwind(|| parse(&file, &text));
        assert!(outcome.is_ok(), "parsing panicked on:\n{text}");
    }
}

#[test]
fn preemptible_is_true_by_default_and_only_true_or_false() {
    assert!(check(GOOD).unwrap().preemptible);
    let pinned = GOOD.replace("name: demo\n", "name: demo\npreemptible: false\n");
    assert!(!check(&pinned).unwrap().preemptible);
    let p = problems(&GOOD.replace("name: demo\n", "name: demo\npreemptible: sometimes\n"));
    assert_eq!(
        p,
        vec!["pipeline.yaml:3:14: preemptible: 'sometimes' is not true or false"]
    );
}
