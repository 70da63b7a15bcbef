//! How a stage ended, in words a person and a program can both read.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Not run because a stage it depends on failed.
    Skipped,
}

/// Why a stage failed. `kind` is stable (for programs); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureReason {
    pub kind: FailureKind,
    pub message: String,
    /// The guest's backtrace, for traps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The stage returned `stage-error::invalid-input`.
    InvalidInput,
    /// The stage returned `stage-error::failed`.
    StageError,
    /// The stage called exit with a non-zero status.
    Exit,
    /// The stage trapped (a panic, an unreachable, a bad memory access ...).
    Trap,
    /// Its linear memory would have grown past `requests.memory`.
    MemoryLimit,
    /// It ran past `requests.timeout`.
    Deadline,
    /// It wrote more to its results than `requests.disk` / `requests.files` allow.
    DiskQuota,
    /// It held more open files, directories and streams than a stage may.
    HandleLimit,
    /// Its wasm stack overflowed.
    StackOverflow,
    /// It waited on a port for stages that waited on it: none could go on.
    Deadlock,
    /// The job was cancelled while the stage ran, or before it could start.
    Cancelled,
    /// The job was ended to make room for a job of higher priority; it runs again from its
    /// payload.
    Preempted,
    /// It left symbolic links in its results that lead out of them (they were removed).
    Escape,
    /// It could not be loaded or instantiated.
    Load,
    /// The host could not prepare it (volumes, log file).
    Host,
    /// A stage it depends on failed.
    UpstreamFailed,
}

impl FailureReason {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> FailureReason {
        FailureReason {
            kind,
            message: message.into(),
            backtrace: None,
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(bt) = &self.backtrace {
            write!(f, "\n{bt}")?;
        }
        Ok(())
    }
}
