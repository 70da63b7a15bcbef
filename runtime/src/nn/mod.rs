//! `wasi:nn` for stages: the host side of the standard inference interface, on ONNX Runtime
//! (crate `ward-nn`). Granted only to stages whose pipeline declares
//! `requests.inference: true`; models come from the stage's own bytes (`load`) or from the
//! pipeline's `models:` (`load-by-name`), which the host loads once per digest and target
//! and shares between stages and jobs.

pub mod bindings;
mod host;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use ward_nn::{ModelCache, Target};

/// The largest model a stage may load by default (its bytes, before ONNX Runtime's copy).
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 1 << 30;

/// This node's inference: the ONNX Runtime library it is given, and the shared models.
pub struct InferenceHost {
    /// `WARD_ONNXRUNTIME`; None: every inference answers `unavailable`.
    pub library: Option<PathBuf>,
    pub cache: ModelCache,
    pub max_model_bytes: u64,
}

impl InferenceHost {
    pub fn new(library: Option<PathBuf>, max_model_bytes: u64) -> InferenceHost {
        InferenceHost {
            library,
            cache: ModelCache::new(),
            max_model_bytes,
        }
    }
}

/// A model the pipeline declares, resolved to its file for one job.
#[derive(Debug, Clone)]
pub struct DeclaredModel {
    pub path: PathBuf,
    /// `sha256:…`, checked when the file is read.
    pub digest: String,
    pub target: Target,
}

/// What one stage may do with inference.
pub struct InferenceGrant {
    pub host: Arc<InferenceHost>,
    /// By the names the pipeline declares.
    pub models: BTreeMap<String, DeclaredModel>,
    /// GPU memory a model on the GPU may take (`requests.gpu-memory`, within the tenant's
    /// GPU quota).
    pub gpu_memory: u64,
    /// ONNX Runtime threads one inference uses (`requests.cpu`).
    pub threads: usize,
}

/// The inference part of a stage's store.
#[derive(Default)]
pub struct StageInference {
    /// None for a stage that did not declare `requests.inference`.
    pub grant: Option<Arc<InferenceGrant>>,
}
