//! Every file under `examples/` is loaded the way its user would load it: a pipeline file
//! by `ward validate`, a service configuration by `ward serve --check`, a Clara Deploy
//! pipeline by the `convert_clara` tests (its stand-in components are theirs). A file of a kind
//! this walk does not know fails it, so a new example cannot go unchecked.

use crate::support::*;
use std::path::{Path, PathBuf};

/// What an example file is, from its name and top-level keys.
#[derive(Debug, PartialEq)]
enum Kind {
    Pipeline,
    /// A Clara Deploy pipeline definition (api-version 0.4/0.5), converted and run by the
    /// `convert_clara` tests.
    ClaraPipeline,
    ServiceConfig,
    /// The DICOM adapter's configuration, checked by its own tests.
    AdapterConfig,
    /// An ONNX model an example loads as a dataset, run by the ai_segment tests.
    Model,
}

fn top_level_keys(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '#', '-']) && !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect()
}

fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    if name == "adapter.yaml" {
        return Some(Kind::AdapterConfig);
    }
    if name.ends_with(".onnx") {
        return Some(Kind::Model);
    }
    if !name.ends_with(".yaml") {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let keys = top_level_keys(&text);
    let has = |k: &str| keys.contains(&k);
    let clara = text
        .lines()
        .any(|l| l.starts_with("api-version: 0.4") || l.starts_with("api-version: 0.5"));
    if has("api-version") && has("operators") && clara {
        Some(Kind::ClaraPipeline)
    } else if has("api-version") && has("operators") {
        Some(Kind::Pipeline)
    } else if has("listen") && has("components") && has("tenants") {
        Some(Kind::ServiceConfig)
    } else {
        None
    }
}

fn files_under(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, into);
        } else {
            into.push(path);
        }
    }
}

/// The service configuration beside `pipeline`, if the pipeline is one of the service's:
/// its components are then found in the configuration's `components` directory.
fn service_of(pipeline: &Path) -> Option<PathBuf> {
    let dir = pipeline.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| kind_of(p) == Some(Kind::ServiceConfig))
}

/// `ward validate` on a stored-pipeline example, as the service would resolve it: a copy
/// of it sits among the service's components (the built ones, linked into a scratch
/// directory, so the build output is not written to).
fn validate_for_service(pipeline: &Path, service: &Path) -> Output {
    let config = ward::service::config::ServeConfig::load(service)
        .unwrap_or_else(|e| panic!("{}: {e}", service.display()));
    let scratch = tempdir();
    for entry in std::fs::read_dir(&config.components).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::os::unix::fs::symlink(&path, scratch.path().join(path.file_name().unwrap()))
                .unwrap();
        }
    }
    let copy = scratch.path().join(pipeline.file_name().unwrap());
    std::fs::copy(pipeline, &copy).unwrap();
    run_ward(&["validate", copy.to_str().unwrap()])
}

#[test]
fn every_example_loads() {
    // The examples name the built reference stages.
    components_dir();
    let mut files = Vec::new();
    files_under(&repo_root().join("examples"), &mut files);
    files.sort();
    let mut checked = Vec::new();
    for file in &files {
        let shown = file
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        let kind = kind_of(file).unwrap_or_else(|| {
            panic!("{shown}: not a pipeline, service or adapter configuration; teach this test to load it")
        });
        let out = match kind {
            Kind::AdapterConfig | Kind::Model => continue,
            Kind::ClaraPipeline => {
                assert_eq!(
                    shown, "examples/clara/liver-segmentation.yaml",
                    "a new Clara example: have the convert_clara tests convert and run it"
                );
                let out = run_ward(&["validate", file.to_str().unwrap()]);
                assert!(
                    out.code == 2 && out.stderr.contains("ward convert clara"),
                    "{shown}: ward validate points at the converter: {}",
                    out.stderr
                );
                continue;
            }
            Kind::Pipeline => match service_of(file) {
                Some(service) => validate_for_service(file, &service),
                None => run_ward(&["validate", file.to_str().unwrap()]),
            },
            Kind::ServiceConfig => run_ward(&["serve", "--check", file.to_str().unwrap()]),
        };
        assert_eq!(
            out.code, 0,
            "{shown} ({kind:?}) does not load:\n{}{}",
            out.stdout, out.stderr
        );
        assert!(out.stdout.contains("valid"), "{shown}: {}", out.stdout);
        checked.push((kind, shown));
    }
    for kind in [Kind::Pipeline, Kind::ServiceConfig] {
        assert!(
            checked.iter().any(|(k, _)| *k == kind),
            "no {kind:?} example was found: {checked:?}"
        );
    }
    assert!(
        checked
            .iter()
            .any(|(_, f)| f == "examples/serve/ct-segmentation.yaml"),
        "the service's pipeline is among them: {checked:?}"
    );
}

/// Why the service has its own copy of the CT segmentation example: the standalone one
/// names its components by paths relative to itself, which the service refuses; the
/// service's names them in its components directory, and is stored.
#[test]
fn the_service_stores_its_example_pipeline_and_refuses_the_standalone_one() {
    use crate::service::{Server, RAD_OP};
    let server = Server::start(1, "8Gi", 1);
    let post = |example: &str| {
        let yaml = std::fs::read(repo_root().join(example)).unwrap();
        server.send_raw("POST", "/v1/pipelines", RAD_OP, "application/yaml", &yaml)
    };
    let (code, refused) = post("examples/ct-segmentation/pipeline.yaml");
    assert_eq!(code, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid-pipeline", "{refused}");
    let (code, stored) = post("examples/serve/ct-segmentation.yaml");
    assert_eq!(code, 201, "{stored}");
    assert_eq!(stored["name"], "ct-segmentation");
}
