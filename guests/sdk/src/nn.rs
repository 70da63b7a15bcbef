//! Inference on the host through `wasi:nn` (feature `inference`). The pipeline must declare
//! `requests.inference: true` for the stage; models are loaded by the name the pipeline's
//! `models:` gives them ([`Model::by_name`]) or from bytes the stage holds
//! ([`Model::from_bytes`]).
//!
//! ```no_run
//! use ward_stage_sdk::nn::{Model, Tensor};
//! # fn main() -> Result<(), ward_stage_sdk::StageError> {
//! let model = Model::by_name("organs")?;
//! let input = Tensor::f32(vec![1, 1, 8, 8, 8], &vec![0.0; 512]);
//! let outputs = model.run(vec![("ct", input)])?;
//! let logits = outputs[0].1.to_f32()?;
//! # Ok(()) }
//! ```

/// The generated `wasi:nn` bindings.
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/deps/wasi-nn",
        world: "ml",
        default_bindings_module: "ward_stage_sdk::nn::bindings",
        runtime_path: "ward_stage_sdk::__wit_bindgen::rt",
    });
}

use crate::StageError;
pub use bindings::wasi::nn::graph::ExecutionTarget;
use bindings::wasi::nn::{errors, graph, inference, tensor};
pub use tensor::TensorType;

/// A `wasi:nn` error as a stage error: what the host said, with its code.
fn stage_error(what: &str, e: errors::Error) -> StageError {
    let code = e.code();
    let data = e.data();
    match code {
        errors::ErrorCode::InvalidArgument | errors::ErrorCode::InvalidEncoding => {
            StageError::InvalidInput(format!("{what}: {data}"))
        }
        _ => StageError::Failed(format!("{what}: {data} ({code:?})")),
    }
}

/// A tensor: dimensions, element type and little-endian bytes.
pub struct Tensor {
    pub dims: Vec<u32>,
    pub ty: TensorType,
    pub data: Vec<u8>,
}

impl Tensor {
    /// An FP32 tensor.
    pub fn f32(dims: Vec<u32>, values: &[f32]) -> Tensor {
        Tensor {
            dims,
            ty: TensorType::Fp32,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The elements of an FP32 tensor.
    pub fn to_f32(&self) -> Result<Vec<f32>, StageError> {
        if self.ty != TensorType::Fp32 {
            return Err(StageError::Failed(format!(
                "the model answered a {:?} tensor where FP32 was expected",
                self.ty
            )));
        }
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// A model loaded on the host.
pub struct Model {
    name: String,
    graph: graph::Graph,
}

impl Model {
    /// The model the pipeline declares as `name` (`name:cpu` or `name:gpu` to choose where
    /// it runs over the pipeline's `execution-target`).
    pub fn by_name(name: &str) -> Result<Model, StageError> {
        let graph =
            graph::load_by_name(name).map_err(|e| stage_error(&format!("model '{name}'"), e))?;
        Ok(Model {
            name: name.to_string(),
            graph,
        })
    }

    /// An ONNX model from bytes the stage holds.
    pub fn from_bytes(
        name: &str,
        onnx: &[u8],
        target: ExecutionTarget,
    ) -> Result<Model, StageError> {
        let graph = graph::load(&[onnx.to_vec()], graph::GraphEncoding::Onnx, target)
            .map_err(|e| stage_error(&format!("model '{name}'"), e))?;
        Ok(Model {
            name: name.to_string(),
            graph,
        })
    }

    /// Runs the model on named inputs; answers its outputs by name.
    pub fn run(&self, inputs: Vec<(&str, Tensor)>) -> Result<Vec<(String, Tensor)>, StageError> {
        let what = format!("model '{}'", self.name);
        let context = self
            .graph
            .init_execution_context()
            .map_err(|e| stage_error(&what, e))?;
        let named: Vec<inference::NamedTensor> = inputs
            .into_iter()
            .map(|(name, t)| {
                (
                    name.to_string(),
                    tensor::Tensor::new(&t.dims, t.ty, &t.data),
                )
            })
            .collect();
        let outputs = context.compute(named).map_err(|e| stage_error(&what, e))?;
        Ok(outputs
            .into_iter()
            .map(|(name, t)| {
                (
                    name,
                    Tensor {
                        dims: t.dimensions(),
                        ty: t.ty(),
                        data: t.data(),
                    },
                )
            })
            .collect())
    }
}
