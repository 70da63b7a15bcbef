//! Inference for stages through `wasi:nn` on the real ONNX Runtime library
//! (`WARD_ONNXRUNTIME`, which `.ci/run` installs and sets): models from a stage's bytes and
//! by the pipeline's `models:`, and every bad model and tensor a stage can hand the host,
//! each a stage failure that names it, with a concurrent job unaffected.

use crate::support::{component, engine, engine_options, tempdir, write_pipeline};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use ward::engine::{Engine, EngineOptions};
use ward::jobs::{
    new_job_id, run_job, FailureKind, JobError, JobRequest, JobStatus, JobSummary, NoObserver,
};
use ward_nn::onnx_builder::OnnxModel;

/// A dataset directory holding the test models: `adder.onnx` (y = x + [1, 2, 3, 4] on
/// FP32 [1, 4]), `chain.onnx` (2000 products of [rows, 1024] by [1024, 1024]: minutes of
/// work), `odd.onnx` (an operator no runtime has), `not-onnx.onnx` (text), `big.onnx`.
fn models() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempdir();
        let write =
            |name: &str, bytes: Vec<u8>| std::fs::write(dir.path().join(name), bytes).unwrap();
        write("adder.onnx", OnnxModel::adder(4).to_bytes());
        write("chain.onnx", OnnxModel::matmul_chain(1024, 2000).to_bytes());
        write("odd.onnx", OnnxModel::unknown_operator().to_bytes());
        write(
            "not-onnx.onnx",
            b"name: organs\nthis is a YAML file, not a model\n".to_vec(),
        );
        write("big.onnx", OnnxModel::adder(1 << 16).to_bytes());
        dir
    })
    .path()
}

fn digest(file: &str) -> String {
    ward_nn::digest_of(&std::fs::read(models().join(file)).unwrap())
}

/// A pipeline of one nn-probe stage with `params` (YAML map entries) and `requests`, the
/// test models declared as `adder` and `chain`, and the models dataset at /models.
fn probe_pipeline(dir: &Path, params: &str, requests: &str) -> std::path::PathBuf {
    write_pipeline(
        dir,
        &format!(
            "api-version: 0.1
name: nn-probe
models:
  - name: adder
    dataset: test-models
    path: adder.onnx
    digest: {adder}
  - name: chain
    dataset: test-models
    path: chain.onnx
    digest: {chain}
  - name: tampered
    dataset: test-models
    path: odd.onnx
    digest: sha256:{zeros}
operators:
  - name: probe
    component:
      path: {probe}
    parameters: {{{params}}}
    input:
      - dataset: test-models
        path: /models
    output:
      - name: out
        path: /results
    requests: {{{requests}}}
",
            adder = digest("adder.onnx"),
            chain = digest("chain.onnx"),
            zeros = "0".repeat(64),
            probe = component("nn-probe").display(),
        ),
    )
}

fn request(pipeline: &Path, jobs: &Path) -> JobRequest {
    let payload = jobs.join("payload");
    std::fs::create_dir_all(&payload).unwrap();
    JobRequest {
        pipeline: ward::pipeline::load(pipeline)
            .unwrap_or_else(|e| panic!("pipeline invalid:\n{e}")),
        payload,
        job_dir: jobs.join("job"),
        job_id: new_job_id(),
        tenant: "test".into(),
        parameters: BTreeMap::new(),
        datasets: [("test-models".to_string(), models().to_path_buf())].into(),
        cpu_slots: 2,
        cancel: None,
        preempted: None,
    }
}

fn probe_on(engine: &Engine, params: &str, requests: &str) -> (JobSummary, tempfile::TempDir) {
    let dir = tempdir();
    let pipeline = probe_pipeline(dir.path(), params, requests);
    let summary = run_job(
        engine,
        &request(&pipeline, dir.path()),
        Arc::new(NoObserver),
    )
    .unwrap_or_else(|e| panic!("job could not run: {e}"));
    (summary, dir)
}

fn probe(params: &str, requests: &str) -> (JobSummary, tempfile::TempDir) {
    probe_on(engine(), params, requests)
}

const GRANTED: &str = "inference: true, memory: 256Mi, timeout: 2m";

/// The stage's failure: its kind and message.
fn failure(summary: &JobSummary) -> (FailureKind, String) {
    assert_eq!(summary.status, JobStatus::Failed, "{summary:#?}");
    let reason = summary.stages[0]
        .reason
        .clone()
        .expect("the stage has a reason");
    (reason.kind, reason.message)
}

fn outputs(dir: &Path) -> serde_json::Value {
    crate::support::read_json(&dir.join("job/results/probe/out/outputs.json"))
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("job/logs/probe.log")).unwrap_or_default()
}

#[test]
fn a_stage_runs_a_declared_model_and_one_from_its_own_bytes() {
    for model in ["name:adder", "file:/models/adder.onnx"] {
        let (summary, dir) = probe(
            &format!("model: '{model}', dims: '1,4', value: '1'"),
            GRANTED,
        );
        assert_eq!(
            summary.status,
            JobStatus::Succeeded,
            "{model}: {summary:#?}"
        );
        let out = outputs(dir.path());
        assert_eq!(out[0]["name"], "y");
        assert_eq!(out[0]["dims"], serde_json::json!([1, 4]));
        // (1 + 1) + (1 + 2) + (1 + 3) + (1 + 4)
        assert_eq!(out[0]["first"], serde_json::json!([2.0, 3.0, 4.0, 5.0]));
        assert_eq!(out[0]["sum"], 14.0);
        let log = log_of(dir.path());
        assert!(log.contains("inference: model"), "{log}");
        assert!(log.contains("on cpu ('x' FP32 [1, 4])"), "{log}");
    }
}

#[test]
fn a_declared_model_is_loaded_once_for_every_stage_and_job() {
    // An engine of its own, so no other test's models are in its cache.
    let own = Engine::new(engine_options()).unwrap();
    for _ in 0..3 {
        let (summary, _dir) =
            probe_on(&own, "model: 'name:adder', dims: '1,4', runs: '2'", GRANTED);
        assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    }
    assert_eq!(
        own.inference().cache.loads(),
        1,
        "one load for three jobs of one model"
    );
}

#[test]
fn bad_models_fail_the_stage_naming_the_model() {
    let (summary, _d) = probe("model: 'file:/models/not-onnx.onnx', dims: '1,4'", GRANTED);
    let (_, message) = failure(&summary);
    assert!(
        message.contains("model '/models/not-onnx.onnx'"),
        "{message}"
    );
    assert!(
        message.contains("(bytes from the stage)")
            || message.contains("not an ONNX model")
            || message.contains("cannot be loaded"),
        "{message}"
    );

    let (summary, _d) = probe("model: 'file:/models/odd.onnx', dims: '1,4'", GRANTED);
    let (_, message) = failure(&summary);
    assert!(
        message.contains("operator this ONNX Runtime does not implement"),
        "{message}"
    );
    assert!(message.contains("WardNoSuchOperator"), "{message}");

    // The declared digest is not the file's: refused before ONNX Runtime sees it. (A model
    // the cache holds under the declared digest is served without reading the file.)
    let (summary, _d) = probe("model: 'name:tampered', dims: '1,4'", GRANTED);
    let (_, message) = failure(&summary);
    assert!(message.contains("model 'tampered'"), "{message}");
    assert!(
        message.contains("the pipeline declares sha256:"),
        "{message}"
    );

    let (summary, _d) = probe("model: 'name:organs', dims: '1,4'", GRANTED);
    let (_, message) = failure(&summary);
    assert!(
        message.contains("no model named 'organs' is declared"),
        "{message}"
    );
    assert!(message.contains("'adder'"), "{message}");
}

#[test]
fn a_model_over_the_size_limit_is_refused() {
    static SMALL: OnceLock<Engine> = OnceLock::new();
    let small = SMALL.get_or_init(|| {
        Engine::new(EngineOptions {
            max_model_bytes: 64 << 10,
            ..engine_options()
        })
        .unwrap()
    });
    let (summary, _d) = probe_on(
        small,
        "model: 'file:/models/big.onnx', dims: '1,65536'",
        GRANTED,
    );
    let (_, message) = failure(&summary);
    assert!(
        message.contains("is over the limit of 65536 bytes for a model"),
        "{message}"
    );
    // The limit does not stop a small model.
    let (summary, _d) = probe_on(
        small,
        "model: 'file:/models/adder.onnx', dims: '1,4'",
        GRANTED,
    );
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
}

#[test]
fn wrong_tensors_are_refused_naming_input_and_shape() {
    let (summary, _d) = probe("model: 'name:adder', dims: '1,5'", GRANTED);
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::InvalidInput, "{message}");
    assert!(
        message.contains("model 'adder': input 'x' expects FP32 [1, 4], got FP32 [1, 5]"),
        "{message}"
    );

    // A tensor claiming 4 GiB while carrying 16 bytes is refused by its claim.
    let (summary, _d) = probe(
        "model: 'name:adder', dims: '1024,1024,1024', elements: '4'",
        GRANTED,
    );
    let (_, message) = failure(&summary);
    assert!(
        message.contains("tensor [1024, 1024, 1024] FP32 of 4294967296 bytes is over the limit"),
        "{message}"
    );

    let (summary, _d) = probe("model: 'name:adder', dims: '1,4', elements: '3'", GRANTED);
    let (_, message) = failure(&summary);
    assert!(
        message.contains("its data is 12 bytes, its dimensions need 16"),
        "{message}"
    );

    let (summary, _d) = probe("model: 'name:adder', input: 'ct', dims: '1,4'", GRANTED);
    let (_, message) = failure(&summary);
    assert!(
        message.contains("model 'adder' has no input 'ct'; its inputs are 'x' FP32 [1, 4]"),
        "{message}"
    );
}

#[test]
fn an_inference_past_the_deadline_ends_its_stage_and_not_a_concurrent_job() {
    std::thread::scope(|s| {
        let slow = s.spawn(|| {
            probe(
                "model: 'name:chain', dims: '1024,1024'",
                "inference: true, memory: 256Mi, timeout: 3s",
            )
        });
        // A job beside it runs the other model to its end meanwhile.
        let (summary, dir) = probe("model: 'name:adder', dims: '1,4', runs: '20'", GRANTED);
        assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
        assert_eq!(outputs(dir.path())[0]["sum"], 14.0);
        let (summary, _d) = slow.join().unwrap();
        let (kind, message) = failure(&summary);
        assert_eq!(kind, FailureKind::Deadline, "{message}");
        assert!(message.contains("deadline"), "{message}");
    });
    // The stopped inference let go of its model: the next use of it answers.
    let (summary, dir) = probe("model: 'name:chain', dims: '1,1024'", GRANTED);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    assert_eq!(outputs(dir.path())[0]["dims"], serde_json::json!([1, 1024]));
}

#[test]
fn a_stage_importing_wasi_nn_without_declaring_it_is_refused_before_it_runs() {
    let dir = tempdir();
    let pipeline = probe_pipeline(dir.path(), "model: 'name:adder'", "memory: 64Mi");
    let e = run_job(
        engine(),
        &request(&pipeline, dir.path()),
        Arc::new(NoObserver),
    )
    .unwrap_err();
    assert!(matches!(e, JobError::InferenceNotDeclared { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("operator 'probe'"), "{text}");
    assert!(text.contains("imports wasi:nn/"), "{text}");
    assert!(text.contains("requests.inference: true"), "{text}");
    assert!(
        text.contains("pipeline.yaml:"),
        "the error names the file and line: {text}"
    );
    assert!(!dir.path().join("job/results").exists(), "no stage ran");
}

#[test]
fn without_onnx_runtime_a_stage_is_told_inference_is_unavailable() {
    let bare = Engine::new(EngineOptions {
        onnxruntime: None,
        ..engine_options()
    })
    .unwrap();
    let (summary, _d) = probe_on(&bare, "model: 'name:adder', dims: '1,4'", GRANTED);
    let (_, message) = failure(&summary);
    assert!(
        message.contains("unavailable: ONNX Runtime is not installed on this host"),
        "{message}"
    );
    let missing = Engine::new(EngineOptions {
        onnxruntime: Some("/nonexistent/libonnxruntime.so".into()),
        ..engine_options()
    })
    .unwrap();
    let (summary, _d) = probe_on(
        &missing,
        "model: 'file:/models/adder.onnx', dims: '1,4'",
        GRANTED,
    );
    let (_, message) = failure(&summary);
    assert!(
        message.contains("/nonexistent/libonnxruntime.so: no such file"),
        "{message}"
    );
}
