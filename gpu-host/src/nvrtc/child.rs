//! Running the NVRTC child: a program (`ward __nvrtc`) started with an address-space and a
//! CPU-time limit (`setrlimit` before it executes), in a process group of its own, killed
//! with that group at the stage's deadline or at the compiler's own time limit, whichever
//! comes first. A compile bomb costs the node at most those limits, and the host process
//! none of it.

use crate::GpuError;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The child's exit code when NVRTC refused the source (its log is on stderr).
pub const EXIT_COMPILE_ERROR: i32 = 1;
/// The child's exit code when NVRTC ran out of memory.
pub const EXIT_OUT_OF_MEMORY: i32 = 3;

/// PTX larger than this is refused (and the child stopped).
pub const MAX_PTX_BYTES: u64 = 64 << 20;
/// What is kept of the child's log.
const MAX_LOG_BYTES: u64 = 64 << 10;

/// The program that compiles: it reads CUDA C on stdin and writes PTX on stdout, given
/// `--arch ARCH` after `args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildProgram {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set in the child's environment, over what it inherits.
    pub env: Vec<(OsString, OsString)>,
}

impl ChildProgram {
    /// `program` with `args`.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> ChildProgram {
        ChildProgram {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            env: Vec::new(),
        }
    }

    /// The hidden `__nvrtc` subcommand of `ward`: this executable, or the one named by
    /// `WARD_NVRTC_PROGRAM` (for a host embedded in another executable, such as a test).
    pub fn this_executable() -> std::io::Result<ChildProgram> {
        let program = match std::env::var_os("WARD_NVRTC_PROGRAM") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()?,
        };
        Ok(ChildProgram::new(program, &["__nvrtc"]))
    }
}

/// What one compile may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileLimits {
    /// The child's address space (`RLIMIT_AS`), in bytes.
    pub memory: u64,
    /// Wall-clock time, also the child's CPU time (`RLIMIT_CPU`, rounded up to seconds).
    pub time: Duration,
    /// Compiles running at once on the node; more wait for a slot (within their deadline).
    pub concurrent: usize,
    /// Entries and bytes of PTX the compile cache keeps.
    pub cache_entries: usize,
    pub cache_bytes: u64,
}

impl Default for CompileLimits {
    fn default() -> CompileLimits {
        CompileLimits {
            memory: 2 << 30,
            time: Duration::from_secs(120),
            concurrent: 2,
            cache_entries: 256,
            cache_bytes: 64 << 20,
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// Compiles `source` for `arch` with `program` under `limits`, stopping at `deadline`
/// (the stage's) if that comes first: past the deadline the answer is
/// [`GpuError::Deadline`]; past a limit, a compile error naming it.
pub fn compile_in_child(
    program: &ChildProgram,
    source: &str,
    arch: Option<&str>,
    limits: &CompileLimits,
    deadline: Option<Instant>,
) -> Result<String, GpuError> {
    let started = Instant::now();
    let own_deadline = started + limits.time;
    let stop = deadline.map_or(own_deadline, |d| d.min(own_deadline));
    if started >= stop {
        return Err(GpuError::Deadline);
    }
    let mut command = Command::new(&program.program);
    command
        .args(&program.args)
        .envs(program.env.iter().cloned());
    if let Some(arch) = arch {
        command.args(["--arch", arch]);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let memory = limits.memory;
    let cpu = limits.time.as_secs() + u64::from(limits.time.subsec_nanos() > 0);
    // Runs in the child between fork and exec: only async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            set_limit(libc::RLIMIT_AS, memory, memory)?;
            set_limit(libc::RLIMIT_CPU, cpu.max(1), cpu.max(1) + 1)?;
            set_limit(libc::RLIMIT_CORE, 0, 0)?;
            // Gone with the thread that started it, should the host die first.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        GpuError::Compile(format!(
            "cannot start the compiler {}: {e}",
            program.program.display()
        ))
    })?;
    let group = child.id() as libc::pid_t;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let source = source.to_owned();
    // The child may not read all of it before it fails: a write error is not the answer.
    std::thread::spawn(move || {
        let _ = stdin.write_all(source.as_bytes());
    });
    let ptx = std::thread::spawn(move || read_at_most(stdout, MAX_PTX_BYTES + 1));
    let log = std::thread::spawn(move || read_at_most(stderr, MAX_LOG_BYTES));

    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill_group(group);
                let _ = child.wait();
                return Err(GpuError::Compile(format!(
                    "cannot wait for the compiler: {e}"
                )));
            }
        }
        let now = Instant::now();
        if now >= stop {
            kill_group(group);
            let _ = child.wait();
            if deadline.is_some_and(|d| d <= own_deadline) {
                return Err(GpuError::Deadline);
            }
            return Err(GpuError::Compile(format!(
                "NVRTC ran past its time limit of {:?} and was stopped",
                limits.time
            )));
        }
        std::thread::sleep(pause.min(stop - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    // The child is reaped now, so its group id may be reused: it is not signalled again.
    // (The compiler starts no processes of its own.)
    let ptx = ptx.join().unwrap_or_default();
    let log = String::from_utf8_lossy(&log.join().unwrap_or_default())
        .trim_end()
        .to_string();
    outcome(status, ptx, log, limits)
}

/// The answer for a child that ended with `status`, having written `ptx` and `log`.
fn outcome(
    status: ExitStatus,
    ptx: Vec<u8>,
    log: String,
    limits: &CompileLimits,
) -> Result<String, GpuError> {
    if ptx.len() as u64 > MAX_PTX_BYTES {
        return Err(GpuError::Compile(format!(
            "the compiled PTX is over its limit of {}",
            mib(MAX_PTX_BYTES)
        )));
    }
    let memory = |how: String| {
        GpuError::Compile(format!(
            "NVRTC ran past its memory limit of {} ({} bytes): {how}",
            mib(limits.memory),
            limits.memory
        ))
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => String::from_utf8(ptx)
            .ok()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| GpuError::Compile("the compiler wrote no PTX".into())),
        (Some(EXIT_OUT_OF_MEMORY), _) => Err(memory(log)),
        (Some(EXIT_COMPILE_ERROR), _) if !log.is_empty() => Err(GpuError::Compile(log)),
        // Allocation failures end a process this way under RLIMIT_AS.
        (_, Some(signal @ (libc::SIGABRT | libc::SIGSEGV | libc::SIGBUS))) => Err(memory(format!(
            "the compiler ended with signal {signal}{}",
            with_log(&log)
        ))),
        (_, Some(libc::SIGXCPU | libc::SIGKILL)) => Err(GpuError::Compile(format!(
            "NVRTC ran past its CPU time limit of {:?} and was stopped",
            limits.time
        ))),
        (code, signal) => Err(GpuError::Compile(format!(
            "the compiler failed ({}){}",
            match (code, signal) {
                (Some(c), _) => format!("exit code {c}"),
                (_, Some(s)) => format!("signal {s}"),
                _ => "no status".into(),
            },
            with_log(&log)
        ))),
    }
}

fn with_log(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(": {log}")
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn kill_group(group: libc::pid_t) {
    // Only called while the child is unreaped, so the group id is still the child's.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Up to `limit` bytes of `from`; the rest is left unread (the writer then fails).
fn read_at_most(from: impl Read, limit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = from.take(limit).read_to_end(&mut out);
    out
}

#[cfg(test)]
mod tests;
