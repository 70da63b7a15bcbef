//! Stage `nn-probe`: loads a model and runs it once on one FP32 tensor, as its parameters
//! say, so tests can hand the host every kind of bad model and tensor from inside a sandbox.
//!
//! Parameters:
//! - `model`: `file:PATH` (an ONNX file the stage reads and loads from bytes) or
//!   `name:NAME` (a model the pipeline declares; `NAME:gpu` / `NAME:cpu` pick the target).
//! - `target`: `cpu` (default) or `gpu`, for `file:`.
//! - `input`: the model input's name (`x`).
//! - `dims`: the tensor's dimensions, comma-separated (`1,4`).
//! - `elements`: how many FP32 values the tensor really carries (default: the product of
//!   `dims`), so a tensor can claim more than it holds.
//! - `value`: every element's value (`1`).
//! - `data`: a file of little-endian FP32 values to send instead (exactly `elements` of them).
//! - `runs`: how many times to run it (`1`).
//!
//! Writes `outputs.json`: per output its name, dimensions, the sum and the first values, and
//! `times.json`: each run's time as the stage sees it (tensors in and out included), in ms.
//! A `wasi:nn` error fails the stage with the host's message.

use std::path::Path;
use ward_stage_sdk::nn::{ExecutionTarget, Model, Tensor, TensorType};
use ward_stage_sdk::{self as sdk, failed, invalid_input, Guest, StageError};

struct NnProbe;

impl Guest for NnProbe {
    fn run() -> Result<(), StageError> {
        let model = sdk::param("model", String::new())?;
        let target = sdk::param_choice("target", &["cpu", "gpu"], "cpu")?;
        let input = sdk::param("input", "x".to_string())?;
        let dims_text = sdk::param("dims", "1,4".to_string())?;
        let dims: Vec<u32> = dims_text
            .split(',')
            .map(|d| d.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid_input!("parameter 'dims' = '{dims_text}': {e}"))?;
        let product: u64 = dims.iter().map(|&d| u64::from(d)).product();
        let elements: u64 = sdk::param("elements", product)?;
        let value: f32 = sdk::param("value", 1.0)?;
        let runs: u32 = sdk::param("runs", 1)?;
        let data_file = sdk::param_opt("data");
        let data = match &data_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| failed!("cannot read {path}: {e}"))?;
                if bytes.len() as u64 != elements * 4 {
                    return Err(invalid_input!(
                        "{path} holds {} bytes, not the {elements} FP32 values 'elements' says",
                        bytes.len()
                    ));
                }
                bytes
            }
            None => std::iter::repeat_n(value.to_le_bytes(), elements as usize)
                .flatten()
                .collect(),
        };

        let loaded = if let Some(path) = model.strip_prefix("file:") {
            let bytes = std::fs::read(path).map_err(|e| failed!("cannot read {path}: {e}"))?;
            let target = if target == "gpu" {
                ExecutionTarget::Gpu
            } else {
                ExecutionTarget::Cpu
            };
            Model::from_bytes(path, &bytes, target)?
        } else if let Some(name) = model.strip_prefix("name:") {
            Model::by_name(name)?
        } else {
            return Err(invalid_input!(
                "parameter 'model' = '{model}': give file:PATH or name:NAME"
            ));
        };
        let mut report = Vec::new();
        let mut times = Vec::new();
        for _ in 0..runs {
            let tensor = Tensor {
                dims: dims.clone(),
                ty: TensorType::Fp32,
                data: data.clone(),
            };
            let started = std::time::Instant::now();
            let outputs = loaded.run(vec![(input.as_str(), tensor)])?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            report = outputs
                .iter()
                .map(|(name, t)| {
                    let values = t.to_f32().unwrap_or_default();
                    serde_json::json!({
                        "name": name,
                        "dims": t.dims,
                        "sum": values.iter().map(|&v| f64::from(v)).sum::<f64>(),
                        "first": values.iter().take(8).collect::<Vec<_>>(),
                    })
                })
                .collect();
        }
        let results = sdk::results()?;
        let text = serde_json::to_vec_pretty(&report).map_err(|e| failed!("{e}"))?;
        sdk::write_file(Path::new(&results.path), "outputs.json", &text)?;
        let text = serde_json::to_vec(&times).map_err(|e| failed!("{e}"))?;
        sdk::write_file(Path::new(&results.path), "times.json", &text)?;
        Ok(())
    }
}

sdk::export!(NnProbe);
