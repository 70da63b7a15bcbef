//! Instructions, not seconds: the `segment` stage in the sandbox against native code counted
//! by valgrind's callgrind, which gives the same count for the same binary and input however
//! busy the machine is, so a regression of the sandbox shows even where timings cannot.
//! (`perf stat -e instructions` would be cheaper, but containers often refuse it.)
//!
//! Each side runs in a child `ward __bench-segment-once` under callgrind, once on the measured
//! volume and once on a tiny one; the difference removes what both spend starting a process
//! and the engine, leaving the stage's own work: reading the volume, segmenting, writing.

use super::segment::{native_once, phantom_volume, sandbox_once};
use imaging::raw_io;
use std::path::{Path, PathBuf};
use std::process::Command;
use ward::engine::{Engine, EngineLimits, EngineOptions};

/// The volume counted against, and the one whose count is subtracted.
pub const TINY: [usize; 3] = [8, 8, 2];

/// Instruction counts of one side: on the measured volume and on the tiny one.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub measured: u64,
    pub tiny: u64,
}

impl Counts {
    /// What the stage's own work on the measured volume took.
    pub fn work(&self) -> u64 {
        self.measured.saturating_sub(self.tiny)
    }
}

pub struct InstructionFigures {
    pub dims: [usize; 3],
    pub sandbox: Counts,
    pub native: Counts,
}

/// Which side a child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    Sandbox,
    Native,
}

/// The engine a child runs the stage on: one stage slot, so its pool reserves a few
/// memories' address space (valgrind cannot map the default pool's terabyte), with the
/// parent's compile cache so nothing is compiled under the counter.
fn child_engine(cache: &Path) -> anyhow::Result<Engine> {
    Ok(Engine::new(EngineOptions {
        cache_dir: Some(cache.to_path_buf()),
        limits: EngineLimits {
            max_concurrent_stages: 1,
            ..EngineLimits::default()
        },
        ..EngineOptions::default()
    })?)
}

/// The child's work: one run of `side` on the volume in `input`.
pub fn run_once(
    side: Side,
    input: &Path,
    segment_wasm: &Path,
    cache: &Path,
    scratch: &Path,
) -> anyhow::Result<()> {
    match side {
        Side::Sandbox => {
            let engine = child_engine(cache)?;
            let component = engine.load_component(segment_wasm, None)?;
            sandbox_once(&engine, &component, input, scratch, 0)?;
        }
        Side::Native => {
            native_once(input, scratch, 0)?;
        }
    }
    Ok(())
}

/// Counts both sides on `dims` and on [`TINY`]; needs valgrind.
pub fn instruction_figures(
    segment_wasm: &Path,
    dims: [usize; 3],
    scratch: &Path,
) -> anyhow::Result<InstructionFigures> {
    let valgrind = which_valgrind()?;
    let cache = scratch.join("instructions-cache");
    // Compiled here, natively, into the cache the children read.
    child_engine(&cache)?.load_component(segment_wasm, None)?;
    let mut inputs = Vec::new();
    for (name, d) in [("measured", dims), ("tiny", TINY)] {
        let dir = scratch.join(format!("instructions-{name}"));
        std::fs::create_dir_all(&dir)?;
        raw_io::write_volume(&dir, "volume", &phantom_volume(d), Default::default())?;
        inputs.push(dir);
    }
    let count = |side: Side, input: &Path| -> anyhow::Result<u64> {
        callgrind_count(&valgrind, side, input, segment_wasm, &cache, scratch)
    };
    let mut figures = InstructionFigures {
        dims,
        sandbox: Counts {
            measured: 0,
            tiny: 0,
        },
        native: Counts {
            measured: 0,
            tiny: 0,
        },
    };
    figures.sandbox.tiny = count(Side::Sandbox, &inputs[1])?;
    figures.native.tiny = count(Side::Native, &inputs[1])?;
    figures.sandbox.measured = count(Side::Sandbox, &inputs[0])?;
    figures.native.measured = count(Side::Native, &inputs[0])?;
    Ok(figures)
}

fn which_valgrind() -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("valgrind"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--instructions needs valgrind (Debian package valgrind) on PATH: callgrind counts the instructions"
            )
        })
}

/// Runs one child under callgrind and reads the total instruction count it wrote.
fn callgrind_count(
    valgrind: &Path,
    side: Side,
    input: &Path,
    segment_wasm: &Path,
    cache: &Path,
    scratch: &Path,
) -> anyhow::Result<u64> {
    let side_name = match side {
        Side::Sandbox => "sandbox",
        Side::Native => "native",
    };
    let out = scratch.join(format!(
        "callgrind-{side_name}-{}.out",
        input.file_name().unwrap_or_default().to_string_lossy()
    ));
    let work = scratch.join(format!("instructions-work-{side_name}"));
    std::fs::create_dir_all(&work)?;
    let result = Command::new(valgrind)
        .arg("--tool=callgrind")
        // JIT code: wasmtime writes machine code into memory it then runs.
        .arg("--smc-check=all-non-file")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(std::env::current_exe()?)
        .arg("__bench-segment-once")
        .arg("--side")
        .arg(side_name)
        .arg("--input")
        .arg(input)
        .arg("--component")
        .arg(segment_wasm)
        .arg("--cache")
        .arg(cache)
        .arg("--scratch")
        .arg(&work)
        .output()?;
    anyhow::ensure!(
        result.status.success(),
        "the {side_name} side under callgrind failed ({}): {}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let text = std::fs::read_to_string(&out)
        .map_err(|e| anyhow::anyhow!("callgrind's output {}: {e}", out.display()))?;
    parse_total(&text).ok_or_else(|| {
        anyhow::anyhow!(
            "callgrind's output {} has no `summary:` or `totals:` line",
            out.display()
        )
    })
}

/// The instruction total of a callgrind output file.
fn parse_total(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l
            .strip_prefix("summary:")
            .or_else(|| l.strip_prefix("totals:"))?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_total_is_read_from_either_line() {
        let text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n\nfl=(1) a.c\nfn=(1) main\n3 5\n\nsummary: 1234567\n";
        assert_eq!(super::parse_total(text), Some(1_234_567));
        assert_eq!(super::parse_total("totals: 42 7\n"), Some(42));
        assert_eq!(super::parse_total("events: Ir\n"), None);
    }
}
