//! Inference for sandboxed stages: a stage hands the host a model and tensors through
//! `wasi:nn`, and the host runs them on ONNX Runtime, loaded at run time so Ward builds and
//! runs without it. Everything a stage gives is checked before it is copied into ONNX
//! Runtime (model size, tensor sizes, the model's declared types and shapes), an inference
//! runs off the stage's thread and stops at the stage's deadline, and models declared by a
//! pipeline are loaded once and shared.

mod cache;
mod error;
mod model;
pub mod onnx_builder;
mod onnxruntime;
mod run;
mod tensor;

pub use cache::{ModelCache, ModelKey};
pub use error::{ErrorCode, NnError};
pub use model::{digest_of, LoadOptions, Model, Target};
pub use onnxruntime::{library_from_env, onnxruntime, OnnxRuntime, LIBRARY_VARIABLE};
pub use run::infer;
pub use tensor::{describe_tensor, format_dims, tensor_bytes, ElementType, HostTensor, TensorSpec};
