//! Stage `tract-infer`: evaluates an ONNX model inside its own sandbox with tract, compiled
//! into the component: no host help. Parameters as nn-probe's: `model` (the ONNX file's
//! path), `dims` (of the one FP32 input), `data` (a file of its little-endian values),
//! `runs`. Writes `times.json` (each run in ms) and `outputs.json` (sum of each output).

use std::path::Path;
use tract_onnx::prelude::*;
use ward_stage_sdk::{self as sdk, failed, invalid_input, Guest, StageError};

struct TractInfer;

fn fail(e: impl std::fmt::Display) -> StageError {
    failed!("{e}")
}

impl Guest for TractInfer {
    fn run() -> Result<(), StageError> {
        let model_path = sdk::param("model", String::new())?;
        let dims_text = sdk::param("dims", String::new())?;
        let dims: Vec<usize> = dims_text
            .split(',')
            .map(|d| d.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid_input!("parameter 'dims' = '{dims_text}': {e}"))?;
        let data_path = sdk::param("data", String::new())?;
        let runs: u32 = sdk::param("runs", 1)?;
        let bytes = std::fs::read(&data_path).map_err(fail)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let model = tract_onnx::onnx()
            .model_for_path(&model_path)
            .and_then(|m| m.with_input_fact(0, f32::fact(&dims).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| failed!("model {model_path}: {e:#}"))?;
        let input: Tensor = tract_ndarray::Array::from_shape_vec(dims.clone(), values)
            .map_err(fail)?
            .into();
        let mut times = Vec::new();
        let mut sums = Vec::new();
        for _ in 0..runs {
            let started = std::time::Instant::now();
            let outputs = model.run(tvec!(input.clone().into())).map_err(fail)?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            sums = outputs
                .iter()
                .map(|o| {
                    o.as_slice::<f32>()
                        .map(|s| s.iter().map(|&v| f64::from(v)).sum::<f64>())
                        .unwrap_or(f64::NAN)
                })
                .collect();
        }
        let out = sdk::results()?;
        let dir = Path::new(&out.path);
        sdk::write_file(
            dir,
            "times.json",
            &serde_json::to_vec(&times).map_err(fail)?,
        )?;
        sdk::write_file(
            dir,
            "outputs.json",
            &serde_json::to_vec(&sums).map_err(fail)?,
        )?;
        Ok(())
    }
}

sdk::export!(TractInfer);
