//! What a hostile or broken stage tries. Each either ends the stage through a sandbox limit
//! or reports (as a stage error) that the sandbox refused it.

use std::path::Path;
use ward_stage_sdk::{failed, StageError, VolumeKind};

/// Grows a heap vector by 64 MiB at a time until allocation fails.
pub fn exhaust_memory() -> Result<(), StageError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 64 << 20];
        // Touch the block so it is really used.
        block[0] = hoard.len() as u8;
        hoard.push(block);
    }
}

/// Loops forever without calling the host.
pub fn spin() -> Result<(), StageError> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Recurses without end; the frame keeps a buffer so the stack fills quickly.
pub fn recurse(depth: u64) -> Result<u64, StageError> {
    let frame = std::hint::black_box([depth; 64]);
    if std::hint::black_box(depth) == u64::MAX {
        return Ok(0);
    }
    let below = recurse(depth + 1)?;
    Ok(below + frame[(depth % 64) as usize])
}

/// Recurses without end in frames small enough to live in wasm locals, so it is the wasm
/// (native) stack that overflows rather than the shadow stack in linear memory.
pub fn recurse_native(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse_native(std::hint::black_box(depth + 1))) ^ depth
}

/// Tries to create, overwrite and delete files in the payload and in upstream results.
pub fn write_payload() -> Result<(), StageError> {
    let mut refused = Vec::new();
    for v in ward_stage_sdk::volumes::mounted() {
        if v.kind == VolumeKind::Results {
            continue;
        }
        let dir = Path::new(&v.path);
        let created = std::fs::write(dir.join("planted.txt"), b"written by a stage");
        refused.push(format!("create in {}: {}", v.path, outcome(created)));
        if let Some(victim) = first_file(dir) {
            let overwritten = std::fs::write(&victim, b"overwritten");
            refused.push(format!(
                "overwrite {}: {}",
                victim.display(),
                outcome(overwritten)
            ));
            let removed = std::fs::remove_file(&victim);
            refused.push(format!("delete {}: {}", victim.display(), outcome(removed)));
        }
    }
    Err(failed!("write attempts: {}", refused.join("; ")))
}

/// Tries to leave its volumes with `..`, absolute paths and symbolic links planted in its
/// own results (relative and absolute targets), which it then follows.
pub fn escape() -> Result<(), StageError> {
    let mut attempts = Vec::new();
    let results = ward_stage_sdk::results()?.path;
    for (dir, mount) in wasi::filesystem::preopens::get_directories() {
        if mount.trim_end_matches('/') != results.trim_end_matches('/') {
            continue;
        }
        for (name, target) in [
            ("up-link", "../../../../../../../../etc/passwd"),
            ("abs-link", "/etc/passwd"),
        ] {
            let planted = dir
                .symlink_at(target, name)
                .map_err(|e| std::io::Error::other(format!("{e:?}")));
            attempts.push(format!("plant {name}: {}", outcome(planted)));
            let followed = std::fs::read(Path::new(&results).join(name)).map(|_| ());
            attempts.push(format!("follow {name}: {}", outcome(followed)));
        }
    }
    for target in [
        "/etc/passwd",
        "/payload/../../etc/passwd",
        "../etc/passwd",
        "/proc/self/environ",
    ] {
        attempts.push(format!(
            "read {target}: {}",
            outcome(std::fs::read(target).map(|_| ()))
        ));
    }
    Err(failed!("escape attempts: {}", attempts.join("; ")))
}

/// Opens files and keeps them open until the host refuses; fails with how many it got.
pub fn hoard_handles() -> Result<(), StageError> {
    let payload = ward_stage_sdk::payload()?.path;
    let victim =
        first_file(Path::new(&payload)).ok_or_else(|| failed!("no file in the payload"))?;
    let mut hoard = Vec::new();
    let refusal = loop {
        match std::fs::File::open(&victim) {
            Ok(f) if hoard.len() < 1_000_000 => hoard.push(f),
            Ok(_) => break "never refused".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    Err(failed!("opened {} files, then: {refusal}", hoard.len()))
}

/// Hands the host one 64 MiB log message, then succeeds.
pub fn huge_log() -> Result<(), StageError> {
    let message = "z".repeat(64 << 20);
    ward_stage_sdk::context::log(ward_stage_sdk::Level::Info, &message);
    Ok(())
}

/// Opens a file under a 16 MiB path; fails with what the host answered.
pub fn huge_path() -> Result<(), StageError> {
    let results = ward_stage_sdk::results()?.path;
    let path = format!("{results}/{}", "d/".repeat(8 << 20));
    let answer = std::fs::File::create(&path).map(|_| ());
    Err(failed!(
        "create under a {} byte path: {}",
        path.len(),
        outcome(answer)
    ))
}

/// Writes 1 MiB files into its results without end.
pub fn fill_disk() -> Result<(), StageError> {
    let results = ward_stage_sdk::results()?.path;
    let block = vec![0x5au8; 1 << 20];
    for i in 0u64.. {
        std::fs::write(Path::new(&results).join(format!("fill-{i}")), &block)
            .map_err(|e| failed!("write {i} refused: {e}"))?;
    }
    Ok(())
}

/// Creates 200,000 empty files in its results, then succeeds.
pub fn many_files() -> Result<(), StageError> {
    let results = ward_stage_sdk::results()?.path;
    for i in 0..200_000u64 {
        std::fs::write(Path::new(&results).join(format!("f{i}")), b"")
            .map_err(|e| failed!("file {i} refused: {e}"))?;
    }
    Ok(())
}

/// Writes far more log and stdout than any budget allows, then succeeds.
pub fn flood() -> Result<(), StageError> {
    let line = "x".repeat(1000);
    for i in 0..20_000 {
        ward_stage_sdk::context::log(ward_stage_sdk::Level::Info, &format!("{i} {line}"));
        println!("{i} {line}");
    }
    ward_stage_sdk::context::log(ward_stage_sdk::Level::Info, &"y".repeat(1 << 20));
    Ok(())
}

fn outcome(result: std::io::Result<()>) -> String {
    match result {
        Ok(()) => "ALLOWED".to_string(),
        Err(e) => format!("refused ({e})"),
    }
}

fn first_file(dir: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
}
