//! The `wasi:nn` interfaces on a stage's store. What the host holds for the stage (its
//! tensors, the models it has open) is counted in the stage's memory; every failure is a
//! `wasi:nn` error naming the model, the tensor and what was expected, never a trap.

use super::bindings::errors::{self, ErrorCode as WitCode};
use super::bindings::graph::{self, ExecutionTarget, GraphEncoding};
use super::bindings::inference::{self, NamedTensor};
use super::bindings::tensor::{self, TensorType};
use super::InferenceGrant;
use crate::host::StageState;
use std::sync::Arc;
use std::time::Instant;
use ward_nn::{
    describe_tensor, digest_of, onnxruntime, ElementType, ErrorCode, HostTensor, LoadOptions,
    Model, ModelKey, NnError, Target,
};
use wasmtime::component::Resource;

/// A tensor the stage made, or why it cannot be one (answered when it is used).
pub struct TensorHandle(Result<HostTensor, String>);
/// An open model.
pub struct GraphHandle(Arc<Model>);
/// A model ready to compute.
pub struct ContextHandle(Arc<Model>);
/// A failure, as the stage reads it.
pub struct ErrorHandle {
    code: WitCode,
    data: String,
}

fn wit_code(code: ErrorCode) -> WitCode {
    match code {
        ErrorCode::InvalidArgument => WitCode::InvalidArgument,
        ErrorCode::InvalidEncoding => WitCode::InvalidEncoding,
        ErrorCode::Timeout => WitCode::Timeout,
        ErrorCode::RuntimeError => WitCode::RuntimeError,
        ErrorCode::UnsupportedOperation => WitCode::UnsupportedOperation,
        ErrorCode::TooLarge => WitCode::TooLarge,
        ErrorCode::NotFound => WitCode::NotFound,
        ErrorCode::Security => WitCode::Security,
    }
}

fn element_type(t: TensorType) -> ElementType {
    match t {
        TensorType::Fp16 => ElementType::F16,
        TensorType::Fp32 => ElementType::F32,
        TensorType::Fp64 => ElementType::F64,
        TensorType::Bf16 => ElementType::BF16,
        TensorType::U8 => ElementType::U8,
        TensorType::I32 => ElementType::I32,
        TensorType::I64 => ElementType::I64,
    }
}

fn tensor_type(t: ElementType) -> TensorType {
    match t {
        ElementType::F16 => TensorType::Fp16,
        ElementType::F32 => TensorType::Fp32,
        ElementType::F64 => TensorType::Fp64,
        ElementType::BF16 => TensorType::Bf16,
        ElementType::U8 => TensorType::U8,
        ElementType::I32 => TensorType::I32,
        ElementType::I64 => TensorType::I64,
    }
}

type Answer<T> = wasmtime::Result<Result<T, Resource<ErrorHandle>>>;

impl StageState {
    /// Records `e` in the stage's log and hands it to the stage as an error resource.
    fn nn_error<T>(&mut self, e: NnError) -> Answer<T> {
        let data = e.to_string();
        self.log.line("WARN", &format!("inference: {data}"));
        let handle = self.table.push(ErrorHandle {
            code: wit_code(e.code()),
            data,
        })?;
        Ok(Err(handle))
    }

    fn nn_grant(&self) -> Result<Arc<InferenceGrant>, NnError> {
        // Linking refuses such a stage before it runs; this answers one that got here anyway.
        self.nn.grant.clone().ok_or_else(|| {
            NnError::Unavailable(
                "this stage did not declare requests.inference: true in the pipeline".into(),
            )
        })
    }

    /// Opens `model` for the stage, counting it in the stage's memory.
    fn open_graph(&mut self, model: Arc<Model>) -> Answer<Resource<GraphHandle>> {
        if !self.limiter.charge(model.bytes) {
            let e = NnError::Memory(format!(
                "model '{}' ({} bytes) does not fit beside the {} bytes the stage holds, within its {} (requests.memory)",
                model.name,
                model.bytes,
                self.limiter.memory_used(),
                self.limiter.memory_cap()
            ));
            return self.nn_error(e);
        }
        let bytes = model.bytes;
        match self.table.push(GraphHandle(model)) {
            Ok(h) => Ok(Ok(h)),
            Err(e) => {
                self.limiter.release(bytes);
                Err(e.into())
            }
        }
    }

    fn load_options(grant: &InferenceGrant) -> LoadOptions {
        LoadOptions {
            max_model_bytes: grant.host.max_model_bytes,
            threads: grant.threads,
            gpu_memory: grant.gpu_memory,
        }
    }

    fn push_tensor(
        &mut self,
        t: Result<HostTensor, String>,
    ) -> wasmtime::Result<Resource<TensorHandle>> {
        let bytes = t.as_ref().map_or(0, |t| t.bytes());
        let handle = self.table.push(TensorHandle(t));
        if handle.is_err() {
            self.limiter.release(bytes);
        }
        Ok(handle?)
    }
}

impl tensor::Host for StageState {}
impl errors::Host for StageState {}
impl inference::Host for StageState {}

impl tensor::HostTensor for StageState {
    fn new(
        &mut self,
        dimensions: Vec<u32>,
        ty: TensorType,
        data: Vec<u8>,
    ) -> wasmtime::Result<Resource<TensorHandle>> {
        // The data is already in the host (the canonical ABI copied it out of the stage's
        // memory, which bounds it); its claim is checked before anything else is done with it.
        let limit = self.limiter.memory_cap();
        let made = HostTensor::new(dimensions, element_type(ty), data, limit)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                if self.limiter.charge(t.bytes()) {
                    Ok(t)
                } else {
                    Err(format!(
                        "tensor {}: the stage's memory would exceed its limit of {} bytes (requests.memory)",
                        describe_tensor(&t),
                        limit
                    ))
                }
            });
        self.push_tensor(made)
    }

    fn dimensions(&mut self, t: Resource<TensorHandle>) -> wasmtime::Result<Vec<u32>> {
        Ok(self
            .table
            .get(&t)?
            .0
            .as_ref()
            .map(|t| t.dims.clone())
            .unwrap_or_default())
    }

    fn ty(&mut self, t: Resource<TensorHandle>) -> wasmtime::Result<TensorType> {
        Ok(self
            .table
            .get(&t)?
            .0
            .as_ref()
            .map_or(TensorType::U8, |t| tensor_type(t.ty)))
    }

    fn data(&mut self, t: Resource<TensorHandle>) -> wasmtime::Result<Vec<u8>> {
        Ok(self
            .table
            .get(&t)?
            .0
            .as_ref()
            .map(|t| t.data.clone())
            .unwrap_or_default())
    }

    fn drop(&mut self, t: Resource<TensorHandle>) -> wasmtime::Result<()> {
        if let Ok(t) = self.table.delete(t)?.0 {
            self.limiter.release(t.bytes());
        }
        Ok(())
    }
}

/// Runs `load` (a model read and committed to ONNX Runtime, or found in the cache) on a
/// thread of its own and awaits it: a large model takes seconds to load, and the stage's
/// deadline must still end the stage meanwhile (the load then finishes into the cache).
async fn off_thread(
    load: impl FnOnce() -> Result<Arc<Model>, NnError> + Send + 'static,
) -> Result<Arc<Model>, NnError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ward-model-load".into())
        .spawn(move || {
            let _ = answer.send(load());
        })
        .map_err(|e| {
            NnError::Unavailable(format!("cannot start a thread to load the model: {e}"))
        })?;
    answered.await.unwrap_or_else(|_| {
        Err(NnError::Unavailable(
            "the thread loading the model ended without an answer".into(),
        ))
    })
}

impl graph::Host for StageState {
    async fn load(
        &mut self,
        builder: Vec<Vec<u8>>,
        encoding: GraphEncoding,
        target: ExecutionTarget,
    ) -> Answer<Resource<GraphHandle>> {
        let name = "(bytes from the stage)";
        let grant = match self.nn_grant() {
            Ok(g) => g,
            Err(e) => return self.nn_error(e),
        };
        if !matches!(encoding, GraphEncoding::Onnx | GraphEncoding::Autodetect) {
            return self.nn_error(NnError::Encoding {
                model: name.into(),
                encoding: format!("{encoding:?}"),
            });
        }
        let target = match target {
            ExecutionTarget::Cpu => Target::Cpu,
            ExecutionTarget::Gpu => Target::Gpu,
            ExecutionTarget::Tpu => {
                return self.nn_error(NnError::Target {
                    model: name.into(),
                    target: "tpu".into(),
                    why: "Ward runs models on the CPU or a CUDA GPU".into(),
                })
            }
        };
        let Ok::<[Vec<u8>; 1], _>([bytes]) = builder.try_into() else {
            return self.nn_error(NnError::Load {
                model: name.into(),
                why: "an ONNX model is one part, the stage gave another number".into(),
            });
        };
        let options = Self::load_options(&grant);
        let loaded = off_thread(move || {
            let rt = onnxruntime(grant.host.library.as_deref())?;
            let digest = digest_of(&bytes);
            let short = format!("{}…", &digest[..19.min(digest.len())]);
            grant
                .host
                .cache
                .get_or_load(ModelKey { digest, target }, || {
                    Model::load(rt, &short, &bytes, target, &options)
                })
        })
        .await;
        match loaded {
            Ok(model) => self.open_graph(model),
            Err(e) => self.nn_error(e),
        }
    }

    async fn load_by_name(&mut self, name: String) -> Answer<Resource<GraphHandle>> {
        let grant = match self.nn_grant() {
            Ok(g) => g,
            Err(e) => return self.nn_error(e),
        };
        let (model_name, target) = match name.rsplit_once(':') {
            Some((n, "cpu")) => (n.to_string(), Some(Target::Cpu)),
            Some((n, "gpu")) => (n.to_string(), Some(Target::Gpu)),
            _ => (name.clone(), None),
        };
        let Some(declared) = grant.models.get(&model_name).cloned() else {
            let declared: Vec<String> = grant.models.keys().map(|k| format!("'{k}'")).collect();
            return self.nn_error(NnError::UnknownModel {
                name,
                declared: if declared.is_empty() {
                    "none".into()
                } else {
                    declared.join(", ")
                },
            });
        };
        let target = target.unwrap_or(declared.target);
        let options = Self::load_options(&grant);
        let key = ModelKey {
            digest: declared.digest.clone(),
            target,
        };
        let loaded = off_thread(move || {
            let rt = onnxruntime(grant.host.library.as_deref())?;
            grant.host.cache.get_or_load(key, || {
                let bytes = read_model(&model_name, &declared, options.max_model_bytes)?;
                Model::load(rt, &model_name, &bytes, target, &options)
            })
        })
        .await;
        match loaded {
            Ok(model) => self.open_graph(model),
            Err(e) => self.nn_error(e),
        }
    }
}

/// The declared model's file, within the size limit and of the declared digest.
fn read_model(name: &str, declared: &super::DeclaredModel, limit: u64) -> Result<Vec<u8>, NnError> {
    let path = declared.path.display().to_string();
    let file_error = |why: String| NnError::ModelFile {
        model: name.into(),
        path: path.clone(),
        why,
    };
    let size = std::fs::metadata(&declared.path)
        .map_err(|e| file_error(e.to_string()))?
        .len();
    if size > limit {
        return Err(NnError::ModelTooLarge {
            model: name.into(),
            bytes: size,
            limit,
        });
    }
    let bytes = std::fs::read(&declared.path).map_err(|e| file_error(e.to_string()))?;
    let actual = digest_of(&bytes);
    if actual != declared.digest {
        return Err(NnError::Digest {
            model: name.into(),
            path,
            declared: declared.digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

impl graph::HostGraph for StageState {
    fn init_execution_context(
        &mut self,
        g: Resource<GraphHandle>,
    ) -> Answer<Resource<ContextHandle>> {
        let model = self.table.get(&g)?.0.clone();
        Ok(Ok(self.table.push(ContextHandle(model))?))
    }

    fn drop(&mut self, g: Resource<GraphHandle>) -> wasmtime::Result<()> {
        let g = self.table.delete(g)?;
        self.limiter.release(g.0.bytes);
        Ok(())
    }
}

impl inference::HostGraphExecutionContext for StageState {
    async fn compute(
        &mut self,
        ctx: Resource<ContextHandle>,
        inputs: Vec<NamedTensor>,
    ) -> Answer<Vec<NamedTensor>> {
        let model = self.table.get(&ctx)?.0.clone();
        // The inputs are the stage's to give: taken out of its table, given back in memory
        // once the inference has them no more.
        let mut tensors = Vec::with_capacity(inputs.len());
        let mut held = 0u64;
        let mut refused = None;
        for (name, t) in inputs {
            match self.table.delete(t)?.0 {
                Ok(t) => {
                    held += t.bytes();
                    tensors.push((name, t));
                }
                Err(why) => {
                    refused.get_or_insert(NnError::BadTensor {
                        dims: format!("'{name}'"),
                        why,
                    });
                }
            }
        }
        if let Some(e) = refused {
            self.limiter.release(held);
            return self.nn_error(e);
        }
        let shapes: Vec<String> = tensors
            .iter()
            .map(|(n, t)| format!("'{n}' {}", describe_tensor(t)))
            .collect();
        let started = Instant::now();
        let max_output = self.limiter.memory_cap();
        let answered = ward_nn::infer(model.clone(), tensors, max_output).await;
        self.limiter.release(held);
        let outputs = match answered {
            Ok(o) => o,
            Err(e) => return self.nn_error(e),
        };
        self.log.line(
            "INFO",
            &format!(
                "inference: model '{}' on {} ({}) took {:.1} ms",
                model.name,
                model.target.name(),
                shapes.join(", "),
                started.elapsed().as_secs_f64() * 1e3
            ),
        );
        let mut answer = Vec::with_capacity(outputs.len());
        for (name, t) in outputs {
            if !self.limiter.charge(t.bytes()) {
                let e = NnError::Memory(format!(
                    "output '{name}' of model '{}' ({}, {} bytes) does not fit within the stage's {} bytes (requests.memory)",
                    model.name,
                    describe_tensor(&t),
                    t.bytes(),
                    self.limiter.memory_cap()
                ));
                for (_, handle) in answer {
                    tensor::HostTensor::drop(self, handle)?;
                }
                return self.nn_error(e);
            }
            answer.push((name, self.push_tensor(Ok(t))?));
        }
        Ok(Ok(answer))
    }

    fn drop(&mut self, ctx: Resource<ContextHandle>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        Ok(())
    }
}

impl errors::HostError for StageState {
    fn code(&mut self, e: Resource<ErrorHandle>) -> wasmtime::Result<WitCode> {
        Ok(self.table.get(&e)?.code)
    }

    fn data(&mut self, e: Resource<ErrorHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&e)?.data.clone())
    }

    fn drop(&mut self, e: Resource<ErrorHandle>) -> wasmtime::Result<()> {
        self.table.delete(e)?;
        Ok(())
    }
}
