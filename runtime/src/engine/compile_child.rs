//! Compiling untrusted components in a child process under a time and memory bound.
//!
//! Cranelift's time and memory grow with what a component contains, and a component comes
//! from a vendor Ward does not trust: a crafted one can make a compile take minutes and
//! gigabytes. So the host compiles each component it has not compiled before in a child
//! (the `ward` binary itself, through a hidden subcommand) with a data-size rlimit and a
//! wall-clock deadline. The child reads the `.wasm` on its standard input and writes the
//! compiled artefact to a file in the host's private cache directory; the host then loads
//! that file as it loads any cache entry. A child past a bound is killed and the component
//! refused, naming the limit; the host process is never the one that runs out.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand of `ward` that compiles one component (see `cli::compile_child`).
pub const CHILD_SUBCOMMAND: &str = "__compile-component";

/// Exit status of a child that compiled nothing because the component is not valid.
pub const EXIT_INVALID: i32 = 3;

/// Bounds on compiling one component.
#[derive(Debug, Clone)]
pub struct CompileLimits {
    /// Wall-clock time the child may take.
    pub timeout: Duration,
    /// Bytes of data (heap and other private writable memory) the child may map.
    pub memory: u64,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            timeout: Duration::from_secs(120),
            memory: 2 << 30,
        }
    }
}

/// Where components are compiled: always in a child process running `program` (a `ward`
/// binary) under `limits`, never in the host.
#[derive(Debug, Clone)]
pub enum Compiler {
    Child {
        program: PathBuf,
        limits: CompileLimits,
    },
}

impl Compiler {
    /// The running `ward` binary as the compiler, with `limits`.
    pub fn this_binary(limits: CompileLimits) -> Compiler {
        let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ward"));
        Compiler::Child { program, limits }
    }
}

/// Why a compile in the child gave no artefact.
#[derive(Debug, thiserror::Error)]
pub enum ChildCompileError {
    /// The component itself is not valid (the child said why).
    #[error("{0}")]
    Invalid(String),
    #[error("compiling it took longer than the compile time limit of {}s; the compile was stopped (set WARD_COMPILE_TIMEOUT to allow more)", .limit.as_secs_f64())]
    Timeout { limit: Duration },
    #[error("compiling it needed more memory than the compile memory limit of {} bytes; the compile was stopped (set WARD_COMPILE_MEMORY to allow more){}", .limit, if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Memory { limit: u64, detail: String },
    #[error("the compiler process {} failed: {detail}", .program.display())]
    Failed { program: PathBuf, detail: String },
}

/// Compiles `wasm` in a child of `program` under `limits`, which writes the artefact to
/// `out` (a path in a directory only this user can write).
pub fn compile_in_child(
    program: &Path,
    limits: &CompileLimits,
    wasm: &[u8],
    out: &Path,
) -> Result<(), ChildCompileError> {
    let failed = |detail: String| ChildCompileError::Failed {
        program: program.to_path_buf(),
        detail,
    };
    let mut command = Command::new(program);
    command
        .arg(CHILD_SUBCOMMAND)
        .arg("--out")
        .arg(out)
        .env_remove("WARD_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    limit_child(&mut command, limits);
    let mut child = command.spawn().map_err(|e| failed(e.to_string()))?;

    // Standard input and error are served by threads so a child that stops reading or
    // floods its error output cannot block the host past the deadline.
    let mut stdin = child.stdin.take().expect("piped");
    let input = wasm.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut text);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&text).trim().to_string()
    });

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limits.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = writer.join();
                let _ = reader.join();
                let _ = std::fs::remove_file(out);
                return Err(ChildCompileError::Timeout {
                    limit: limits.timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let _ = writer.join();
    let message = reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let _ = std::fs::remove_file(out);
    if status.code() == Some(EXIT_INVALID) {
        return Err(ChildCompileError::Invalid(message));
    }
    if ran_out_of_memory(&status, &message) {
        // Rust's own line about the refused allocation, not the abort's backtrace noise.
        let detail = message
            .lines()
            .find(|l| l.contains("memory allocation of") || l.contains("Cannot allocate"))
            .map(|l| l.chars().take(500).collect())
            .unwrap_or_default();
        return Err(ChildCompileError::Memory {
            limit: limits.memory,
            detail,
        });
    }
    if killed_for_cpu(&status) {
        return Err(ChildCompileError::Timeout {
            limit: limits.timeout,
        });
    }
    Err(failed(format!("{status}: {}", last_line(&message))))
}

fn last_line(text: &str) -> String {
    text.lines()
        .last()
        .unwrap_or("")
        .chars()
        .take(500)
        .collect()
}

/// An allocation refused under the rlimit ends a Rust process with an abort and this
/// message; a thread or mapping refused shows as "Cannot allocate memory".
fn ran_out_of_memory(status: &std::process::ExitStatus, message: &str) -> bool {
    use std::os::unix::process::ExitStatusExt;
    message.contains("memory allocation of")
        || message.contains("Cannot allocate memory")
        || message.contains("out of memory")
        || status.signal() == Some(rustix::process::Signal::ABORT.as_raw())
}

fn killed_for_cpu(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(status.signal(), Some(s) if s == rustix::process::Signal::XCPU.as_raw() || s == rustix::process::Signal::KILL.as_raw())
}

/// Sets the child's data-size and CPU-time rlimits before it executes. RLIMIT_DATA counts
/// the heap and private writable mappings but not the mapped executable, so it bounds what
/// Cranelift allocates without penalising a large `ward` binary. The CPU limit is a backstop
/// to the wall-clock deadline the parent enforces.
fn limit_child(command: &mut Command, limits: &CompileLimits) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    use std::os::unix::process::CommandExt;
    let memory = limits.memory;
    let cpu = limits.timeout.as_secs().saturating_add(1);
    // SAFETY: the closure only makes setrlimit system calls, which are async-signal-safe,
    // and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let data = Rlimit {
                current: Some(memory),
                maximum: Some(memory),
            };
            setrlimit(Resource::Data, data).map_err(std::io::Error::from)?;
            let cpu = Rlimit {
                current: Some(cpu),
                maximum: Some(cpu),
            };
            setrlimit(Resource::Cpu, cpu).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

/// The child's side: compiles the component on standard input with `engine` and writes the
/// artefact to `out`. An invalid component exits with `EXIT_INVALID` and the reason.
pub fn child_main(engine: &wasmtime::Engine, out: &Path) -> i32 {
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(super::MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut wasm)
    {
        eprintln!("cannot read the component from standard input: {e}");
        return 1;
    }
    if wasm.len() as u64 > super::MAX_COMPONENT_BYTES {
        eprintln!(
            "the component is over the {}-byte limit",
            super::MAX_COMPONENT_BYTES
        );
        return EXIT_INVALID;
    }
    let compiled = match wasmtime::component::Component::new(engine, &wasm)
        .and_then(|component| component.serialize())
    {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{e:#}");
            return EXIT_INVALID;
        }
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .and_then(|mut file| {
            file.write_all(&compiled)?;
            file.sync_all()
        });
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write {}: {e}", out.display());
            1
        }
    }
}
