//! What can go wrong in inference, each naming the model, the tensor and what was expected,
//! and the `wasi:nn` error code a stage sees for it.

/// The `wasi:nn` error codes (`errors.error-code`), as the host chooses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    InvalidEncoding,
    Timeout,
    RuntimeError,
    UnsupportedOperation,
    TooLarge,
    NotFound,
    Security,
}

#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// ONNX Runtime could not be loaded: every inference call answers this.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("model '{model}': {bytes} bytes is over the limit of {limit} bytes for a model")]
    ModelTooLarge {
        model: String,
        bytes: u64,
        limit: u64,
    },
    #[error("model '{model}' is not an ONNX model ONNX Runtime can read: {why}")]
    NotOnnx { model: String, why: String },
    #[error("model '{model}' uses an operator this ONNX Runtime does not implement: {why}")]
    UnsupportedOperator { model: String, why: String },
    #[error("model '{model}' cannot be loaded: {why}")]
    Load { model: String, why: String },
    #[error(
        "model '{model}': only the ONNX encoding (or autodetect) is supported, not {encoding}"
    )]
    Encoding { model: String, encoding: String },
    #[error("model '{model}': execution target {target} is not available on this host: {why}")]
    Target {
        model: String,
        target: String,
        why: String,
    },
    #[error("model '{model}' does not fit the GPU memory this stage may use: it holds {bytes} bytes of weights, the stage may allocate {quota} bytes (requests.gpu-memory and the tenant's GPU quota)")]
    GpuQuota {
        model: String,
        bytes: u64,
        quota: u64,
    },
    #[error("no model named '{name}' is declared for this stage (the pipeline's `models:` declares {declared})")]
    UnknownModel { name: String, declared: String },
    #[error("model '{model}': {path}: {why}")]
    ModelFile {
        model: String,
        path: String,
        why: String,
    },
    #[error("model '{model}': {path} has digest {actual}, the pipeline declares {declared}")]
    Digest {
        model: String,
        path: String,
        declared: String,
        actual: String,
    },
    #[error("tensor {dims}: {why}")]
    BadTensor { dims: String, why: String },
    #[error("tensor {dims} of {bytes} bytes is over the limit of {limit} bytes for a tensor")]
    TensorTooLarge {
        dims: String,
        bytes: u64,
        limit: u64,
    },
    #[error("model '{model}' has no input '{input}'; its inputs are {inputs}")]
    UnknownInput {
        model: String,
        input: String,
        inputs: String,
    },
    #[error("model '{model}': input '{input}' is missing; its inputs are {inputs}")]
    MissingInput {
        model: String,
        input: String,
        inputs: String,
    },
    #[error("model '{model}': input '{input}' expects {expected}, got {got}")]
    Shape {
        model: String,
        input: String,
        expected: String,
        got: String,
    },
    #[error("model '{model}': {what} tensors are not supported by this host")]
    UnsupportedType { model: String, what: String },
    #[error("model '{model}': the inference ran past the stage's deadline and was stopped")]
    Deadline { model: String },
    #[error("model '{model}': the inference failed: {why}")]
    Run { model: String, why: String },
    #[error("the stage's memory would exceed its limit: {0}")]
    Memory(String),
}

impl NnError {
    /// The `wasi:nn` error code the stage sees.
    pub fn code(&self) -> ErrorCode {
        use NnError::*;
        match self {
            Unavailable(_)
            | Target { .. }
            | UnsupportedOperator { .. }
            | UnsupportedType { .. } => ErrorCode::UnsupportedOperation,
            ModelTooLarge { .. } | TensorTooLarge { .. } | GpuQuota { .. } | Memory(_) => {
                ErrorCode::TooLarge
            }
            NotOnnx { .. } | Encoding { .. } => ErrorCode::InvalidEncoding,
            Load { .. } | Run { .. } => ErrorCode::RuntimeError,
            UnknownModel { .. } | ModelFile { .. } => ErrorCode::NotFound,
            Digest { .. } => ErrorCode::Security,
            BadTensor { .. } | UnknownInput { .. } | MissingInput { .. } | Shape { .. } => {
                ErrorCode::InvalidArgument
            }
            Deadline { .. } => ErrorCode::Timeout,
        }
    }
}
