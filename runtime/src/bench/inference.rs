//! A model's inference through Ward's `wasi:nn` (a stage hands its tensor to the host, which
//! runs ONNX Runtime) against the same model on the same input in ONNX Runtime's own Python
//! API, in the same run, with the same threads and session options; and, where a build of
//! it is given, against the same network evaluated inside the sandbox by a guest of its own
//! (no host help), to show what brokering buys.

use super::segment::phantom_volume;
use super::stats::{summarize, Summary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ward::engine::Engine;
use ward::jobs::{new_job_id, run_job, JobRequest, JobStatus, NoObserver};

/// What was measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InferenceFigures {
    /// `[1, 1, Z, Y, X]`.
    pub dims: [usize; 5],
    pub threads: usize,
    /// Per run, as the stage sees it: its tensor to the host, the inference, the outputs back.
    pub ward: Summary,
    /// `InferenceSession.run` in Python.
    pub python: Summary,
    /// The guest that evaluates the network itself, when one is given.
    pub in_sandbox: Option<Summary>,
}

/// The phantom as the model's input, HU / 1000, `[1, 1, slices, size, size]`, little-endian.
fn input_file(size: usize, slices: usize, path: &Path) -> anyhow::Result<()> {
    let ct = phantom_volume([size, size, slices]);
    let bytes: Vec<u8> = ct
        .data
        .iter()
        .flat_map(|&hu| (f32::from(hu).clamp(-1024.0, 3071.0) / 1000.0).to_le_bytes())
        .collect();
    std::fs::write(path, bytes)?;
    Ok(())
}

fn durations(times_ms: &[f64]) -> Vec<Duration> {
    times_ms
        .iter()
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .collect()
}

/// Runs `component` (nn-probe, or a stage with its parameters) once as a job over the models
/// dataset and answers the per-run times it wrote.
fn stage_times(
    engine: &Engine,
    component: &Path,
    model: &Path,
    parameters: &str,
    inference: bool,
    threads: usize,
    scratch: &Path,
) -> anyhow::Result<Vec<f64>> {
    let dir = tempfile::Builder::new()
        .prefix("inference-")
        .tempdir_in(scratch)?;
    let digest = ward_nn::digest_of(&std::fs::read(model)?);
    let pipeline = dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "api-version: 0.1
name: inference-bench
models:
  - name: bench
    dataset: models
    path: model.onnx
    digest: {digest}
operators:
  - name: probe
    component:
      path: {component}
    parameters: {{{parameters}}}
    input:
      - dataset: models
        path: /models
    output:
      - name: out
        path: /results
    requests: {{memory: 3Gi, cpu: {threads}, timeout: 30m, inference: {inference}}}
",
            component = component.display()
        ),
    )?;
    let payload = dir.path().join("payload");
    std::fs::create_dir(&payload)?;
    let request = JobRequest {
        pipeline: ward::pipeline::load(&pipeline)?,
        payload,
        job_dir: dir.path().join("job"),
        job_id: new_job_id(),
        tenant: "bench".into(),
        parameters: BTreeMap::new(),
        datasets: [(
            "models".to_string(),
            model.parent().expect("a file").to_path_buf(),
        )]
        .into(),
        cpu_slots: threads as u32,
        cancel: None,
        preempted: None,
    };
    let summary = run_job(engine, &request, Arc::new(NoObserver))?;
    if summary.status != JobStatus::Succeeded {
        anyhow::bail!(
            "the inference stage failed: {}",
            summary
                .failure
                .map(|f| f.reason.message)
                .unwrap_or_default()
        );
    }
    let times = std::fs::read(dir.path().join("job/results/probe/out/times.json"))?;
    Ok(serde_json::from_slice(&times)?)
}

/// The same inference in ONNX Runtime's Python API: the same model file, input, threads and
/// session options (no memory pattern, no CPU arena, one inter-op thread).
fn python_times(
    model: &Path,
    input: &Path,
    dims: [usize; 5],
    threads: usize,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let script = r#"
import json, sys, time
import numpy as np, onnxruntime as ort
model, data, dims, threads, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
o = ort.SessionOptions()
o.intra_op_num_threads = threads
o.inter_op_num_threads = 1
o.enable_mem_pattern = False
o.enable_cpu_mem_arena = False
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
x = np.fromfile(data, dtype="<f4").reshape(dims)
name = s.get_inputs()[0].name
s.run(None, {name: x})
times = []
for _ in range(runs):
    t = time.perf_counter()
    s.run(None, {name: x})
    times.append((time.perf_counter() - t) * 1e3)
print(json.dumps(times))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &model.display().to_string(),
            &input.display().to_string(),
            &serde_json::to_string(&dims)?,
            &threads.to_string(),
            &runs.to_string(),
        ])
        .output()
        .map_err(|e| anyhow::anyhow!("python3 does not start: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "ONNX Runtime's Python API (pip install onnxruntime numpy) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Measures `runs` inferences of `model` on the phantom at `size`² x `slices` each way, after
/// one warm-up run each. `in_sandbox` is a guest that evaluates the model itself (same
/// parameters as nn-probe: `dims`, `data`, `runs`; writes times.json).
#[allow(clippy::too_many_arguments)]
pub fn inference_figures(
    engine: &Engine,
    nn_probe: &Path,
    in_sandbox: Option<&Path>,
    model_file: &Path,
    size: usize,
    slices: usize,
    runs: usize,
    threads: usize,
    scratch: &Path,
) -> anyhow::Result<InferenceFigures> {
    let models: PathBuf = scratch.join("inference-models");
    std::fs::create_dir_all(&models)?;
    let model = models.join("model.onnx");
    std::fs::copy(model_file, &model)?;
    let input = models.join("input.f32");
    input_file(size, slices, &input)?;
    let dims = [1, 1, slices, size, size];
    let dims_text = dims.map(|d| d.to_string()).join(",");
    let parameters = format!(
        "model: 'name:bench', input: ct, dims: '{dims_text}', data: /models/input.f32, runs: '{}'",
        runs + 1
    );
    let mut ward = durations(
        &stage_times(
            engine,
            nn_probe,
            &model,
            &parameters,
            true,
            threads,
            scratch,
        )?[1..],
    );
    let mut python = durations(&python_times(&model, &input, dims, threads, runs)?);
    let in_sandbox = match in_sandbox {
        Some(guest) => {
            let parameters = format!(
                "model: /models/model.onnx, dims: '{dims_text}', data: /models/input.f32, runs: '{}'",
                runs + 1
            );
            let mut t = durations(
                &stage_times(engine, guest, &model, &parameters, false, threads, scratch)?[1..],
            );
            Some(summarize(&mut t))
        }
        None => None,
    };
    Ok(InferenceFigures {
        dims,
        threads,
        ward: summarize(&mut ward),
        python: summarize(&mut python),
        in_sandbox,
    })
}
