//! A model loaded into ONNX Runtime: its session, what its inputs and outputs declare, and
//! running it on a stage's tensors.

use crate::onnxruntime::OnnxRuntime;
use crate::tensor::{describe_tensor, tensor_bytes, ElementType, HostTensor, TensorSpec};
use crate::NnError;
use ort::ep::{self, ExecutionProvider};
use ort::session::{RunOptions, Session};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use std::sync::Mutex;

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Cpu,
    Gpu,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Cpu => "cpu",
            Target::Gpu => "gpu",
        }
    }
}

/// How a model is loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The largest model file accepted.
    pub max_model_bytes: u64,
    /// Threads one inference uses (ONNX Runtime's intra-op pool).
    pub threads: usize,
    /// GPU memory the model's session may allocate (for `Target::Gpu`).
    pub gpu_memory: u64,
}

/// A loaded model. One session serves every stage that uses it, one inference at a time.
pub struct Model {
    pub name: String,
    /// `sha256:…` of the model file.
    pub digest: String,
    pub target: Target,
    /// Size of the model file.
    pub bytes: u64,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    session: Mutex<Session>,
}

/// `sha256:…` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Model {
    /// Loads `bytes` (an ONNX model) as `name`. Never panics on what the bytes hold.
    pub fn load(
        runtime: &OnnxRuntime,
        name: &str,
        bytes: &[u8],
        target: Target,
        options: &LoadOptions,
    ) -> Result<Model, NnError> {
        let size = bytes.len() as u64;
        if size > options.max_model_bytes {
            return Err(NnError::ModelTooLarge {
                model: name.into(),
                bytes: size,
                limit: options.max_model_bytes,
            });
        }
        if target == Target::Gpu && size > options.gpu_memory {
            return Err(NnError::GpuQuota {
                model: name.into(),
                bytes: size,
                quota: options.gpu_memory,
            });
        }
        let failed = |e: String| classify_load_error(name, e);
        let configure = || -> Result<ort::session::builder::SessionBuilder, String> {
            let b = Session::builder(&runtime.env).map_err(|e| e.to_string())?;
            let b = b
                .with_intra_threads(options.threads.max(1))
                .map_err(|e| e.to_string())?;
            let b = b.with_inter_threads(1).map_err(|e| e.to_string())?;
            // Memory goes back when an inference ends rather than staying in an arena sized
            // by the largest inference the session ever ran.
            b.with_memory_pattern(false).map_err(|e| e.to_string())
        };
        let builder = configure().map_err(failed)?;
        let registered = match target {
            Target::Cpu => builder.with_execution_providers([ep::CPU::default()
                .with_arena_allocator(false)
                .build()
                .error_on_failure()]),
            Target::Gpu => {
                let cuda = ep::CUDA::default()
                    .with_memory_limit(usize::try_from(options.gpu_memory).unwrap_or(usize::MAX));
                if !ep::CUDA::is_available().unwrap_or(false) {
                    return Err(NnError::Target {
                        model: name.into(),
                        target: "gpu".into(),
                        why: format!(
                            "the ONNX Runtime at {} has no CUDA execution provider (install onnxruntime-gpu's library and a GPU, or load with execution-target cpu)",
                            runtime.library.display()
                        ),
                    });
                }
                builder.with_execution_providers([cuda.build().error_on_failure()])
            }
        };
        let mut builder = registered.map_err(|e| {
            let why = e.to_string();
            match target {
                Target::Gpu => NnError::Target {
                    model: name.into(),
                    target: "gpu".into(),
                    why,
                },
                Target::Cpu => failed(why),
            }
        })?;
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| failed(e.to_string()))?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect();
        Ok(Model {
            name: name.into(),
            digest: digest_of(bytes),
            target,
            bytes: size,
            inputs,
            outputs,
            session: Mutex::new(session),
        })
    }

    fn list_inputs(&self) -> String {
        let all: Vec<String> = self
            .inputs
            .iter()
            .map(|s| format!("'{}' {}", s.name, s.describe()))
            .collect();
        all.join(", ")
    }

    /// Every input named once, each of the type and shape the model declares.
    pub fn check_inputs(&self, inputs: &[(String, HostTensor)]) -> Result<(), NnError> {
        for (name, tensor) in inputs {
            let Some(spec) = self.inputs.iter().find(|s| &s.name == name) else {
                return Err(NnError::UnknownInput {
                    model: self.name.clone(),
                    input: name.clone(),
                    inputs: self.list_inputs(),
                });
            };
            if let Err(onnx_type) = &spec.ty {
                return Err(NnError::UnsupportedType {
                    model: self.name.clone(),
                    what: format!("input '{name}' is of type {onnx_type}, and its"),
                });
            }
            if !spec.accepts(tensor) {
                return Err(NnError::Shape {
                    model: self.name.clone(),
                    input: name.clone(),
                    expected: spec.describe(),
                    got: describe_tensor(tensor),
                });
            }
        }
        for spec in &self.inputs {
            if !inputs.iter().any(|(n, _)| n == &spec.name) {
                return Err(NnError::MissingInput {
                    model: self.name.clone(),
                    input: spec.name.clone(),
                    inputs: self.list_inputs(),
                });
            }
        }
        Ok(())
    }

    /// Runs the model on checked `inputs`; outputs over `max_output` bytes each are refused.
    /// Blocks; `options` can stop it from another thread.
    pub fn run_blocking(
        &self,
        inputs: Vec<(String, HostTensor)>,
        options: &RunOptions,
        max_output: u64,
    ) -> Result<Vec<(String, HostTensor)>, NnError> {
        self.check_inputs(&inputs)?;
        let run_error = |why: String| {
            if why.contains("terminate flag") {
                NnError::Deadline {
                    model: self.name.clone(),
                }
            } else {
                NnError::Run {
                    model: self.name.clone(),
                    why,
                }
            }
        };
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            let value = to_value(tensor).map_err(|e| run_error(e.to_string()))?;
            values.push((name, value));
        }
        // A poisoned lock only means an earlier inference panicked; the session is intact.
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run_with_options(values, options)
            .map_err(|e| run_error(e.to_string()))?;
        let mut out = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            out.push((
                name.to_string(),
                from_value(&self.name, name, &value, max_output)?,
            ));
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("target", &self.target)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

fn classify_load_error(model: &str, why: String) -> NnError {
    let model = model.to_string();
    if why.contains("No Op registered") || why.contains("Could not find an implementation") {
        NnError::UnsupportedOperator { model, why }
    } else if why.contains("Protobuf parsing failed") || why.contains("protobuf") {
        NnError::NotOnnx { model, why }
    } else {
        NnError::Load { model, why }
    }
}

fn element_type(t: TensorElementType) -> Result<ElementType, String> {
    match t {
        TensorElementType::Float32 => Ok(ElementType::F32),
        TensorElementType::Float64 => Ok(ElementType::F64),
        TensorElementType::Uint8 => Ok(ElementType::U8),
        TensorElementType::Int32 => Ok(ElementType::I32),
        TensorElementType::Int64 => Ok(ElementType::I64),
        TensorElementType::Float16 => Ok(ElementType::F16),
        TensorElementType::Bfloat16 => Ok(ElementType::BF16),
        other => Err(format!("{other:?}")),
    }
}

fn spec(name: &str, ty: &ValueType) -> TensorSpec {
    match ty {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => TensorSpec {
            name: name.to_string(),
            ty: element_type(*ty),
            dims: shape
                .iter()
                .map(|&d| u64::try_from(d).ok().filter(|&d| d > 0))
                .collect(),
            symbols: dimension_symbols.iter().map(|s| s.to_string()).collect(),
        },
        other => TensorSpec {
            name: name.to_string(),
            ty: Err(format!("{other:?}")),
            dims: Vec::new(),
            symbols: Vec::new(),
        },
    }
}

/// The little-endian elements in `data` as `T`s (its length a multiple of `N`).
fn from_le<const N: usize, T: Copy + Default>(data: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    let n = data.len() / N;
    if cfg!(target_endian = "little") {
        // The bytes are already the elements' representation: one copy, not n conversions.
        let mut out = vec![T::default(); n];
        // SAFETY: `out` holds n elements of N = size_of::<T>() bytes each (asserted), every
        // bit pattern is a valid f32/f64/i32/i64, and the regions do not overlap.
        assert_eq!(std::mem::size_of::<T>(), N);
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), out.as_mut_ptr().cast::<u8>(), n * N);
        }
        return out;
    }
    data.chunks_exact(N)
        .map(|c| from(c.try_into().expect("chunks_exact gives N bytes")))
        .collect()
}

/// `values` as little-endian bytes.
fn to_le<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        assert_eq!(std::mem::size_of::<T>(), N);
        let mut out = vec![0u8; values.len() * N];
        // SAFETY: `out` holds exactly the bytes of `values`; the regions do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                values.as_ptr().cast::<u8>(),
                out.as_mut_ptr(),
                out.len(),
            );
        }
        return out;
    }
    values.iter().flat_map(|&x| to(x)).collect()
}

fn to_value(t: HostTensor) -> ort::Result<DynValue> {
    let shape: Vec<i64> = t.dims.iter().map(|&d| i64::from(d)).collect();
    Ok(match t.ty {
        ElementType::F32 => {
            Tensor::from_array((shape, from_le(&t.data, f32::from_le_bytes)))?.into_dyn()
        }
        ElementType::F64 => {
            Tensor::from_array((shape, from_le(&t.data, f64::from_le_bytes)))?.into_dyn()
        }
        ElementType::I32 => {
            Tensor::from_array((shape, from_le(&t.data, i32::from_le_bytes)))?.into_dyn()
        }
        ElementType::I64 => {
            Tensor::from_array((shape, from_le(&t.data, i64::from_le_bytes)))?.into_dyn()
        }
        ElementType::U8 => Tensor::from_array((shape, t.data))?.into_dyn(),
        // check_inputs lets these through only for models that declare them; ort is built
        // without half-precision types, so they are refused here.
        ElementType::F16 | ElementType::BF16 => {
            return Err(ort::Error::new(format!(
                "{} tensors are not supported by this host",
                t.ty.name()
            )))
        }
    })
}

fn from_value(
    model: &str,
    output: &str,
    value: &DynValue,
    max_output: u64,
) -> Result<HostTensor, NnError> {
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(NnError::UnsupportedType {
            model: model.into(),
            what: format!("output '{output}' is not a tensor; non-tensor"),
        });
    };
    let ty = element_type(*ty).map_err(|t| NnError::UnsupportedType {
        model: model.into(),
        what: format!("output '{output}' is of type {t}; such"),
    })?;
    let dims: Vec<u32> = shape
        .iter()
        .map(|&d| u32::try_from(d).unwrap_or(u32::MAX))
        .collect();
    tensor_bytes(&dims, ty, max_output)?;
    let failed = |e: ort::Error| NnError::Run {
        model: model.into(),
        why: format!("output '{output}': {e}"),
    };
    let data = match ty {
        ElementType::F32 => to_le(
            value.try_extract_tensor::<f32>().map_err(failed)?.1,
            f32::to_le_bytes,
        ),
        ElementType::F64 => to_le(
            value.try_extract_tensor::<f64>().map_err(failed)?.1,
            f64::to_le_bytes,
        ),
        ElementType::I32 => to_le(
            value.try_extract_tensor::<i32>().map_err(failed)?.1,
            i32::to_le_bytes,
        ),
        ElementType::I64 => to_le(
            value.try_extract_tensor::<i64>().map_err(failed)?.1,
            i64::to_le_bytes,
        ),
        ElementType::U8 => value.try_extract_tensor::<u8>().map_err(failed)?.1.to_vec(),
        ElementType::F16 | ElementType::BF16 => {
            return Err(NnError::UnsupportedType {
                model: model.into(),
                what: format!("output '{output}' is {}; such", ty.name()),
            })
        }
    };
    Ok(HostTensor { dims, ty, data })
}
