//! A conformance stage whose behaviour is chosen by the `behaviour` parameter, so one
//! component covers the ways a stage can end: the runtime's tests run it through the real
//! engine and check the precise reason each ending is reported with.

use std::path::Path;
use ward_stage_sdk::{context, failed, invalid_input, log_info, StageError, VolumeKind};

mod attacks;
mod blocking;
mod hiding;

struct Misbehave;

impl ward_stage_sdk::Guest for Misbehave {
    fn run() -> Result<(), StageError> {
        let behaviour = context::parameter("behaviour").unwrap_or_else(|| "ok".to_string());
        match behaviour.as_str() {
            "ok" => inventory(),
            "noop" => Ok(()),
            "stage-error" => Err(failed!("deliberate failure requested by the test")),
            "huge-error" => Err(failed!("{}", "e".repeat(4 << 20))),
            "invalid-input" => Err(invalid_input!("deliberately rejecting the input")),
            "panic" => panic!("deliberate panic: the stage gave up"),
            "trap" => trap(),
            "exit" => std::process::exit(3),
            "oom" => attacks::exhaust_memory(),
            "spin" => attacks::spin(),
            "recurse" => attacks::recurse(1).map(|_| ()),
            "recurse-native" => {
                attacks::recurse_native(1);
                Ok(())
            }
            "write-payload" => attacks::write_payload(),
            "escape" => attacks::escape(),
            "flood" => attacks::flood(),
            "open-files" => attacks::hoard_handles(),
            "huge-log" => attacks::huge_log(),
            "huge-path" => attacks::huge_path(),
            "fill-disk" => attacks::fill_disk(),
            "many-files" => attacks::many_files(),
            "deep-dirs" => hiding::deep_dirs(),
            "unlinked-file" => hiding::unlinked_file(),
            "symlink-chain" => hiding::symlink_chain(),
            "env" => report_environment(),
            "undeclared" => report_undeclared(),
            "sleep" => sleep(),
            "tick" => tick(),
            "block-on-port" => blocking::block_on_port(),
            "random" => write_random(),
            other => Err(invalid_input!("unknown behaviour '{other}'")),
        }
    }
}

ward_stage_sdk::export!(Misbehave);

#[allow(unreachable_code)]
fn trap() -> Result<(), StageError> {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    Ok(())
}

/// Lists every mounted volume with its file count into `inventory.json` in the results
/// volume, so a test can check what a stage sees; also copies the `marker` parameter there.
fn inventory() -> Result<(), StageError> {
    let mut volumes = Vec::new();
    let mut results_dir = None;
    for v in ward_stage_sdk::volumes::mounted() {
        let files = count_files(Path::new(&v.path));
        if v.kind == VolumeKind::Results && results_dir.is_none() {
            results_dir = Some(v.path.clone());
        }
        volumes.push(serde_json::json!({
            "name": v.name,
            "kind": kind_name(v.kind),
            "source": v.source,
            "path": v.path,
            "read_only": v.read_only,
            "files": files,
        }));
    }
    let info = context::info();
    let report = serde_json::json!({
        "stage": info.stage,
        "tenant": info.tenant,
        "parameters": context::parameters(),
        "volumes": volumes,
    });
    let dir = results_dir.ok_or_else(|| failed!("no results volume is mounted"))?;
    let text = serde_json::to_string_pretty(&report).map_err(|e| failed!("{e}"))?;
    ward_stage_sdk::write_file(Path::new(&dir), "inventory.json", text.as_bytes())?;
    ward_stage_sdk::progress(1.0, "inventory written");
    log_info!(
        "saw {} volumes",
        report["volumes"].as_array().map_or(0, |v| v.len())
    );
    Ok(())
}

/// The WIT name of a volume kind.
fn kind_name(kind: VolumeKind) -> &'static str {
    match kind {
        VolumeKind::Payload => "payload",
        VolumeKind::Results => "results",
        VolumeKind::InputFromStage => "input-from-stage",
        VolumeKind::Dataset => "dataset",
    }
}

fn count_files(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// Writes a number drawn from the host's randomness: results that differ from run to run.
fn write_random() -> Result<(), StageError> {
    use std::hash::{BuildHasher, Hasher};
    let number = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let dir = ward_stage_sdk::results()?.path;
    ward_stage_sdk::write_file(Path::new(&dir), "random.txt", number.to_string().as_bytes())?;
    Ok(())
}

/// Sleeps for the `sleep-ms` parameter (default 200), then writes the inventory.
fn sleep() -> Result<(), StageError> {
    let ms: u64 = ward_stage_sdk::param("sleep-ms", 200)?;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    inventory()
}

/// Logs `tick N` every `sleep-ms` for `ticks` times: a log that grows while the stage runs.
fn tick() -> Result<(), StageError> {
    let ms: u64 = ward_stage_sdk::param("sleep-ms", 200)?;
    let ticks: u64 = ward_stage_sdk::param("ticks", 10)?;
    for n in 1..=ticks {
        log_info!("tick {n}");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    inventory()
}

/// Opens ports its operator does not declare and asks for a GPU on a host without one, and
/// writes what each answered: the answers must be errors, not traps.
fn report_undeclared() -> Result<(), StageError> {
    use ward_stage_sdk::{gpu, ports};
    let input = ports::open_input("slices")
        .map(|_| ())
        .map_err(|e| format!("{e:?}"));
    let output = ports::open_output("slices")
        .map(|_| ())
        .map_err(|e| format!("{e:?}"));
    let device = gpu::device().map(|d| d.name);
    let alloc = gpu::alloc(1024).map(|_| ()).map_err(|e| format!("{e:?}"));
    let report = serde_json::json!({
        "open-input": format!("{input:?}"),
        "open-output": format!("{output:?}"),
        "device": device,
        "alloc": format!("{alloc:?}"),
    });
    let dir = ward_stage_sdk::results()?.path;
    ward_stage_sdk::write_file(
        Path::new(&dir),
        "undeclared.json",
        report.to_string().as_bytes(),
    )?;
    Ok(())
}

/// What the stage sees of args and environment: only what the pipeline gave.
fn report_environment() -> Result<(), StageError> {
    let args: Vec<String> = std::env::args().collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let report = serde_json::json!({ "args": args, "env": env });
    let dir = ward_stage_sdk::results()?.path;
    ward_stage_sdk::write_file(
        Path::new(&dir),
        "environment.json",
        report.to_string().as_bytes(),
    )?;
    Ok(())
}
