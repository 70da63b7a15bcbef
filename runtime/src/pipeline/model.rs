//! A validated pipeline: what the runtime executes.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where in the pipeline file something was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A pipeline that passed validation, its stages in an order where every stage comes after
/// the stages it reads from.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    pub stages: Vec<StageSpec>,
    /// What the job's port channels may hold at once, all together (`ports-budget`).
    pub ports_budget: PortsBudget,
    /// Models stages load by name (`models:`).
    pub models: Vec<ModelSpec>,
    /// Whether a running job may be ended for a job of higher priority (`preemptible`).
    pub preemptible: bool,
}

/// A model the pipeline declares: a file in a dataset, of a known digest.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSpec {
    pub name: String,
    pub dataset: String,
    /// Relative to the dataset's directory, without `..`.
    pub path: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// `cpu` or `gpu`.
    pub target: String,
    pub location: Location,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&StageSpec> {
        self.stages.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSpec {
    pub name: String,
    pub description: Option<String>,
    pub location: Location,
    pub component: ComponentRef,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    pub requests: Requests,
    /// Pipeline parameters overridden by the operator's.
    pub parameters: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    /// Indices (into `Pipeline::stages`) of the stages whose results volumes this one reads.
    pub depends_on: Vec<usize>,
    /// Streaming inputs, in file order (entries of a fan-in port merged).
    pub ports_in: Vec<PortInSpec>,
    /// Streaming outputs, in file order.
    pub ports_out: Vec<PortOutSpec>,
    /// Indices of the other stages joined to this one by ports, directly or through others:
    /// they all run at the same time.
    pub port_peers: Vec<usize>,
}

/// One end of a port connection: an operator and its port's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortEnd {
    pub stage: String,
    pub port: String,
}

impl std::fmt::Display for PortEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.stage, self.port)
    }
}

/// An input port and the output ports that write into it (several only for fan-in).
#[derive(Debug, Clone, Serialize)]
pub struct PortInSpec {
    pub name: String,
    pub writers: Vec<PortEnd>,
    pub message_type: Option<String>,
}

/// An output port, its channel bounds, and the input ports that read it.
#[derive(Debug, Clone, Serialize)]
pub struct PortOutSpec {
    pub name: String,
    pub message_type: Option<String>,
    pub capacity: u32,
    pub max_message: u64,
    pub readers: Vec<PortEnd>,
}

/// The job's channel budget: the bytes all its port channels may hold at once, together.
///
/// Buffered port messages live in the host's memory, not in any stage's, so they are bounded
/// per job rather than per channel: `send` waits while the budget cannot take the message,
/// exactly as it waits on a full channel (same back-pressure, same deadlock detection), and
/// the message is copied out of the writer only once it fits. A message shared by several
/// readers of one output port counts once. Beyond the budget the host holds, for a moment,
/// only the message each reader is being handed (at most one `max-message` per stage in a
/// port call). Set with the top-level key `ports-budget`
/// (default [`DEFAULT_PORTS_BUDGET`]); `ward run` refuses a budget over its
/// `--max-ports-budget`, `ward serve` one over the tenant's memory quota, and the budget is
/// part of the memory a job of port-joined stages is counted for (their stages' memory plus
/// the budget).
///
/// Validation refuses a port whose `max-message` is over the budget: such a message could
/// never be buffered. It does not refuse a pipeline because `capacity × max-message`, summed
/// over every channel, is more than the budget: the budget is what bounds that sum while the
/// job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortsBudget {
    pub bytes: u64,
    /// Where `ports-budget` was written; none when the default applies.
    pub location: Option<Location>,
}

impl Default for PortsBudget {
    fn default() -> Self {
        PortsBudget {
            bytes: DEFAULT_PORTS_BUDGET,
            location: None,
        }
    }
}

/// A job's channel budget unless the pipeline's `ports-budget` says otherwise.
pub const DEFAULT_PORTS_BUDGET: u64 = 64 << 20;
/// The most channel budget a job may have on a node unless its operator allows more
/// (`ward run --max-ports-budget`).
pub const DEFAULT_MAX_PORTS_BUDGET: u64 = 1 << 30;

/// Messages a port channel holds before `send` blocks, unless `capacity` says otherwise.
pub const DEFAULT_PORT_CAPACITY: u32 = 4;
pub const MAX_PORT_CAPACITY: u32 = 1024;
/// The largest port message unless `max-message` says otherwise (or the job's channel budget,
/// when that is smaller).
pub const DEFAULT_MAX_MESSAGE: u64 = 16 << 20;
/// The most `max-message` may be: a reader must hold the message in its linear memory.
pub const MAX_MAX_MESSAGE: u64 = 1 << 30;
/// The most stages one set of port-connected stages may hold: they all run at once.
pub const MAX_PORT_GROUP: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct ComponentRef {
    /// Resolved against the pipeline file's directory; for a registry component, empty until
    /// it is fetched and verified, then its file in the local component store.
    pub path: PathBuf,
    /// `sha256:<hex>` of the component file when the pipeline pins it (for a registry
    /// component, set to its layer digest once verified).
    pub digest: Option<String>,
    /// A component in an OCI registry, in place of `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryComponent>,
    pub location: Location,
}

/// `component: {ref: registry/vendor/name:tag, digest: sha256:…}`.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryComponent {
    /// `registry/vendor/name[:tag]`, as written.
    pub reference: String,
    /// The manifest digest it is pinned to (under `ward serve`, pinned when the pipeline is
    /// created if the file gives only a tag).
    pub manifest_digest: Option<String>,
    /// Where the verified component came from and who signed it, once it is verified.
    pub origin: Option<ComponentOrigin>,
}

/// The provenance of a registry component that verified, as job records keep it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ComponentOrigin {
    pub reference: String,
    pub manifest_digest: String,
    /// The fingerprint (`sha256:` of its SubjectPublicKeyInfo) of the key whose signature verified.
    pub signer: String,
    /// Where that key was trusted from (a file, a tenant).
    pub signer_source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// "pass", "skipped" or "none".
    pub conformance: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum InputSource {
    Payload,
    Stage { stage: String, output: String },
    Dataset { name: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct InputSpec {
    /// The volume's name as the stage sees it.
    pub name: String,
    pub source: InputSource,
    pub guest_path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputSpec {
    pub name: String,
    pub guest_path: String,
}

/// What a stage may use. Memory and timeout are enforced by the sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    pub memory_bytes: u64,
    pub cpu: u32,
    pub gpu: u32,
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
    /// Bytes the stage may leave in its results, all outputs together.
    pub disk_bytes: u64,
    /// Files (and directories) the stage may leave in its results.
    pub files: u64,
    /// GPU memory the stage may allocate, in bytes (0: none).
    pub gpu_memory_bytes: u64,
    /// Whether the stage may use `wasi:nn` (`requests.inference`).
    pub inference: bool,
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            memory_bytes: DEFAULT_MEMORY,
            cpu: 1,
            gpu: 0,
            timeout: DEFAULT_TIMEOUT,
            disk_bytes: DEFAULT_DISK,
            files: DEFAULT_FILES,
            gpu_memory_bytes: 0,
            inference: false,
        }
    }
}

/// A stage that names no `requests.memory` may use this much linear memory.
pub const DEFAULT_MEMORY: u64 = 1 << 30;
/// The most a stage may ask for: 32-bit wasm memories are at most 4 GiB each.
pub const MAX_MEMORY: u64 = 4 << 30;
/// A stage that names no `requests.timeout` is stopped after this long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// What a stage may write to its results unless `requests.disk` / `requests.files` say
/// otherwise.
pub const DEFAULT_DISK: u64 = 10 << 30;
pub const DEFAULT_FILES: u64 = 100_000;
/// The longest deadline a pipeline may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
