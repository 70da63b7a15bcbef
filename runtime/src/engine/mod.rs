//! The wasmtime engine: one per process, with the pooling allocator, the compiled-component
//! cache, epoch-based deadlines, and checked, pre-linked stage components.

mod cache;
pub mod compile_child;
mod config;
mod epoch;
mod slots;
mod world;

pub use cache::sha256_digest;
pub use config::EngineLimits;
pub use epoch::{EpochTicker, EPOCH_PERIOD};
pub use slots::SlotPermit;
use slots::StageSlots;
pub use world::{
    check_world, ComponentWorld, WorldMismatch, CONTRACT_VERSION, CONTRACT_VERSION_TEXT,
};

use crate::host::{self, StagePre, StageState};
use cache::{CompileFailure, ComponentCache};
pub use compile_child::{CompileLimits, Compiler};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, Linker};

/// The largest component file Ward will compile.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure wasmtime: {0}")]
    Config(String),
}

/// Why a component cannot be used as a stage.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{}: cannot read the component: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {size} bytes is over the {MAX_COMPONENT_BYTES}-byte limit for a component", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: digest is {actual}, but the pipeline pins {expected}", path.display())]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: not a WebAssembly file (it does not start with the \\0asm magic bytes)", path.display())]
    NotWasm { path: PathBuf },
    #[error("{}: a core WebAssembly module, not a component; build the stage for wasm32-wasip2 (or wrap the module with `wasm-tools component new`)", path.display())]
    CoreModule { path: PathBuf },
    #[error("{}: not a valid component: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: imports `{import}`, which Ward does not grant to stages: {why}", path.display())]
    ForbiddenImport {
        path: PathBuf,
        import: String,
        why: String,
    },
    #[error("{}: does not target ward:stage/stage: it exports no `run` function (its exports: {})", path.display(), if exports.is_empty() { "none".to_string() } else { exports.join(", ") })]
    WrongWorld { path: PathBuf, exports: Vec<String> },
    #[error("{}: does not link against the ward:stage/stage world: {reason}", path.display())]
    Link { path: PathBuf, reason: String },
    #[error("{}: refused: {reason}", path.display())]
    CompileLimit { path: PathBuf, reason: String },
}

/// A component checked against the stage world and linked, ready to instantiate.
pub struct StageComponent {
    pub path: PathBuf,
    pub digest: String,
    pub size: u64,
    pub world: ComponentWorld,
    pub pre: StagePre<StageState>,
    /// How long Cranelift took, when this load compiled it (None: from the cache).
    pub compile_time: Option<Duration>,
}

pub struct EngineOptions {
    /// Where compiled components are cached; None disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the compile cache may hold (least recently used entries are removed past it).
    pub cache_max_bytes: u64,
    /// Where and under which bounds components are compiled.
    pub compiler: Compiler,
    pub limits: EngineLimits,
    /// A setting from the environment that could not be read: `Engine::new` refuses it.
    pub environment_error: Option<String>,
    /// The ONNX Runtime library stages' inference runs on (`WARD_ONNXRUNTIME`); None: stages
    /// that ask for inference are answered `unavailable`.
    pub onnxruntime: Option<PathBuf>,
    /// The largest model file a stage may load.
    pub max_model_bytes: u64,
}

/// The compile cache's default size bound.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 4 << 30;

impl Default for EngineOptions {
    /// The cache directory and bounds from the environment (`WARD_CACHE_DIR`,
    /// `WARD_CACHE_MAX`, `WARD_COMPILE_TIMEOUT`, `WARD_COMPILE_MEMORY`, `WARD_MAX_STAGES`),
    /// components compiled in a child of the running binary.
    fn default() -> Self {
        let mut errors = Vec::new();
        let mut setting =
            |name: &str, parse: fn(&str) -> Result<u64, String>, default: u64| match std::env::var(
                name,
            ) {
                Ok(text) => parse(&text).unwrap_or_else(|e| {
                    errors.push(format!("{name}={text}: {e}"));
                    default
                }),
                Err(_) => default,
            };
        let defaults = CompileLimits::default();
        let cache_max_bytes = setting(
            "WARD_CACHE_MAX",
            crate::pipeline::quantity::parse_bytes,
            DEFAULT_CACHE_MAX_BYTES,
        );
        let memory = setting(
            "WARD_COMPILE_MEMORY",
            crate::pipeline::quantity::parse_bytes,
            defaults.memory,
        );
        let timeout_ms = setting(
            "WARD_COMPILE_TIMEOUT",
            |t| crate::pipeline::quantity::parse_duration(t).map(|d| d.as_millis() as u64),
            defaults.timeout.as_millis() as u64,
        );
        // Each stage slot reserves its memories' address space up front (4 GiB and guards
        // each): a host that cannot reserve the default (a profiler, a small address space)
        // runs with fewer.
        let max_concurrent_stages = setting(
            "WARD_MAX_STAGES",
            |t| match t.parse::<u64>() {
                Ok(n) if (1..=1024).contains(&n) => Ok(n),
                _ => Err("a number of stages from 1 to 1024".into()),
            },
            u64::from(EngineLimits::default().max_concurrent_stages),
        ) as u32;
        EngineOptions {
            cache_dir: default_cache_dir(),
            cache_max_bytes,
            compiler: Compiler::this_binary(CompileLimits {
                timeout: Duration::from_millis(timeout_ms),
                memory,
            }),
            limits: EngineLimits {
                max_concurrent_stages,
                ..EngineLimits::default()
            },
            environment_error: (!errors.is_empty()).then(|| errors.join("; ")),
            onnxruntime: ward_nn::library_from_env(),
            max_model_bytes: crate::nn::DEFAULT_MAX_MODEL_BYTES,
        }
    }
}

/// `$WARD_CACHE_DIR`, else `$XDG_CACHE_HOME/ward/components`, else `~/.cache/ward/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WARD_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ward").join("components"))
}

/// What identifies a component file's contents without reading it: if none of these
/// changed, neither did the digest computed when it was last read.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    device: u64,
    inode: u64,
    /// The inode change time: any write moves it, and unlike mtime it cannot be set back.
    changed: (i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        use std::os::unix::fs::MetadataExt;
        Some(FileStamp {
            path: std::fs::canonicalize(path).ok()?,
            len: meta.len(),
            device: meta.dev(),
            inode: meta.ino(),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

pub struct Engine {
    wasmtime: wasmtime::Engine,
    linker: Linker<StageState>,
    cache: ComponentCache,
    compiler: Compiler,
    /// Linked components by digest, and the digest of each file as last read.
    loaded: Mutex<HashMap<String, Arc<StageComponent>>>,
    digests: Mutex<HashMap<FileStamp, String>>,
    max_concurrent_stages: u32,
    max_ports_budget: u64,
    slots: StageSlots,
    /// This node's GPU, found when a stage first needs it (none without a driver or a
    /// device): opening a CUDA context is not work for `ward validate` or a CPU-only job.
    gpu: std::sync::OnceLock<gpu_host::Gpu>,
    /// ONNX Runtime (loaded when a stage first infers) and the models stages share.
    inference: Arc<crate::nn::InferenceHost>,
    _epoch: EpochTicker,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Result<Engine, EngineError> {
        if let Some(error) = options.environment_error {
            return Err(EngineError::Config(error));
        }
        let config = config::wasmtime_config(&options.limits);
        let wasmtime =
            wasmtime::Engine::new(&config).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let mut linker = Linker::new(&wasmtime);
        host::add_to_linker(&mut linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let cache = ComponentCache::open(
            options.cache_dir.as_deref(),
            &wasmtime,
            options.cache_max_bytes,
        );
        let epoch = EpochTicker::start(wasmtime.clone());
        Ok(Engine {
            wasmtime,
            linker,
            cache,
            compiler: options.compiler,
            loaded: Mutex::new(HashMap::new()),
            digests: Mutex::new(HashMap::new()),
            max_concurrent_stages: options.limits.max_concurrent_stages,
            max_ports_budget: options.limits.max_ports_budget,
            slots: StageSlots::new(options.limits.max_concurrent_stages),
            gpu: std::sync::OnceLock::new(),
            inference: Arc::new(crate::nn::InferenceHost::new(
                options.onnxruntime,
                options.max_model_bytes,
            )),
            _epoch: epoch,
        })
    }

    /// This node's inference: its ONNX Runtime and shared models.
    pub fn inference(&self) -> &Arc<crate::nn::InferenceHost> {
        &self.inference
    }

    /// This node's GPU, if it has one.
    pub fn gpu(&self) -> &gpu_host::Gpu {
        self.gpu.get_or_init(gpu_host::Gpu::probe)
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.wasmtime
    }

    /// Takes one of the pool's instance slots for a stage, waiting while all are in use;
    /// the slot is given back when the permit is dropped (after the stage's store).
    pub fn stage_slot(&self) -> SlotPermit<'_> {
        self.slots.acquire()
    }

    /// Stage instances the pool holds slots for.
    pub fn max_concurrent_stages(&self) -> u32 {
        self.max_concurrent_stages
    }

    /// The largest channel budget a job may have here (`EngineLimits::max_ports_budget`).
    pub fn max_ports_budget(&self) -> u64 {
        self.max_ports_budget
    }

    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.dir()
    }

    /// The component already linked for a file with this stamp.
    fn known(&self, stamp: &FileStamp) -> Option<Arc<StageComponent>> {
        let digest = self
            .digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stamp)
            .cloned()?;
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .cloned()
    }

    /// Reads, checks and links the component at `path` (once per digest per process; a
    /// file whose size, time and inode are unchanged is not read again).
    pub fn load_component(
        &self,
        path: &Path,
        expected_digest: Option<&str>,
    ) -> Result<Arc<StageComponent>, ComponentError> {
        let stamp = FileStamp::of(path);
        if let Some(known) = stamp.as_ref().and_then(|s| self.known(s)) {
            if let Some(expected) = expected_digest.filter(|e| *e != known.digest) {
                return Err(ComponentError::DigestMismatch {
                    path: path.to_path_buf(),
                    expected: expected.to_string(),
                    actual: known.digest.clone(),
                });
            }
            return Ok(known);
        }
        let bytes = read_component(path)?;
        let digest = sha256_digest(&bytes);
        if let Some(expected) = expected_digest {
            if expected != digest {
                return Err(ComponentError::DigestMismatch {
                    path: path.to_path_buf(),
                    expected: expected.to_string(),
                    actual: digest,
                });
            }
        }
        if let Some(done) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
        {
            return Ok(done.clone());
        }
        let (component, compile_time) = self.compile(path, &bytes, &digest)?;
        let loaded = Arc::new(self.link(
            path,
            &component,
            digest.clone(),
            bytes.len() as u64,
            compile_time,
        )?);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.clone(), loaded.clone());
        if let Some(stamp) = stamp {
            self.digests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(stamp, digest);
        }
        Ok(loaded)
    }

    /// Compiles `bytes` without the cache and returns how long it took (for benchmarks).
    pub fn compile_uncached(&self, bytes: &[u8]) -> wasmtime::Result<Duration> {
        let started = std::time::Instant::now();
        Component::new(&self.wasmtime, bytes)?;
        Ok(started.elapsed())
    }

    /// Compiles (or loads from the cache) the component in `bytes`, read from `path`.
    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, Option<Duration>), ComponentError> {
        check_magic(path, bytes)?;
        self.cache
            .load_or_compile(&self.wasmtime, &self.compiler, bytes, digest)
            .map_err(|e| match e {
                CompileFailure::Invalid(reason) => ComponentError::Invalid {
                    path: path.to_path_buf(),
                    reason,
                },
                CompileFailure::Child(e) => ComponentError::CompileLimit {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                },
            })
    }

    fn link(
        &self,
        path: &Path,
        component: &Component,
        digest: String,
        size: u64,
        compile_time: Option<Duration>,
    ) -> Result<StageComponent, ComponentError> {
        check_world(component, &self.wasmtime).map_err(|m| match m {
            WorldMismatch::ForbiddenImport { import, why } => ComponentError::ForbiddenImport {
                path: path.to_path_buf(),
                import,
                why,
            },
            WorldMismatch::NoRun { exports } => ComponentError::WrongWorld {
                path: path.to_path_buf(),
                exports,
            },
        })?;
        let link_error = |e: wasmtime::Error| ComponentError::Link {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let instance_pre = self.linker.instantiate_pre(component).map_err(link_error)?;
        let pre = StagePre::new(instance_pre).map_err(link_error)?;
        Ok(StageComponent {
            path: path.to_path_buf(),
            digest,
            size,
            world: ComponentWorld::of(component, &self.wasmtime),
            pre,
            compile_time,
        })
    }
}

fn read_component(path: &Path) -> Result<Vec<u8>, ComponentError> {
    let read_error = |source| ComponentError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_COMPONENT_BYTES {
        return Err(ComponentError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    std::fs::read(path).map_err(read_error)
}

/// Tells a core module or a non-wasm file apart from a component before compiling, so the
/// error says what the file is. Text (`.wat`) components are accepted.
fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), ComponentError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.starts_with(MAGIC) {
        return match bytes.get(4..8) {
            Some([1, 0, 0, 0]) => Err(ComponentError::CoreModule {
                path: path.to_path_buf(),
            }),
            _ => Ok(()),
        };
    }
    let text = std::str::from_utf8(bytes).unwrap_or("");
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(";;"))
        .unwrap_or("");
    if first.starts_with("(component") {
        return Ok(());
    }
    if first.starts_with("(module") {
        return Err(ComponentError::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Err(ComponentError::NotWasm {
        path: path.to_path_buf(),
    })
}

/// What `ward inspect` shows of a component.
#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    pub digest: String,
    pub size: u64,
    pub world: ComponentWorld,
    /// Why it is not a usable stage, or None when it is.
    pub stage_error: Option<String>,
}

impl Engine {
    /// Compiles the component at `path` and reports its world, whether or not it is a stage.
    pub fn inspect(&self, path: &Path) -> Result<Inspection, ComponentError> {
        let bytes = read_component(path)?;
        let digest = sha256_digest(&bytes);
        let (component, _) = self.compile(path, &bytes, &digest)?;
        let world = ComponentWorld::of(&component, &self.wasmtime);
        let stage_error = self
            .link(path, &component, digest.clone(), bytes.len() as u64, None)
            .err()
            .map(|e| e.to_string());
        Ok(Inspection {
            digest,
            size: bytes.len() as u64,
            world,
            stage_error,
        })
    }
}

/// The compiler child's side of `compile_child`: an engine configured exactly as the host's
/// (so its artefacts load there) compiles the component on standard input into `out`.
pub fn compile_child_main(out: &Path) -> i32 {
    let config = config::compile_config(&EngineLimits::default());
    match wasmtime::Engine::new(&config) {
        Ok(engine) => compile_child::child_main(&engine, out),
        Err(e) => {
            eprintln!("cannot configure wasmtime: {e:#}");
            1
        }
    }
}
