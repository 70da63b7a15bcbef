//! Ways to hide from the host's checks what a stage leaves in its results: names nested past
//! `PATH_MAX`, a file deleted but kept open, and a chain of links each harmless on its own.

use std::io::Write;
use std::path::Path;
use std::time::Duration;
use ward_stage_sdk::{failed, param, StageError};
use wasi::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};

/// The results volume as a WASI directory descriptor, and its path in the stage.
fn results_dir() -> Result<(Descriptor, String), StageError> {
    let results = ward_stage_sdk::results()?.path;
    wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, mount)| mount.trim_end_matches('/') == results.trim_end_matches('/'))
        .ok_or_else(|| failed!("the results volume {results} is not among the preopens"))
}

/// `deep-dirs`: nests `levels` (default 25) directories with names of `name-length`
/// (default 200) characters, each made inside the last one opened (so no path is ever longer
/// than one name), then writes `mb` MiB (default 200) at the bottom and succeeds.
pub fn deep_dirs() -> Result<(), StageError> {
    let levels: u32 = param("levels", 25)?;
    let name_length: usize = param("name-length", 200)?;
    let mb: u64 = param("mb", 200)?;
    let (mut dir, _) = results_dir()?;
    for level in 0..levels {
        let name = format!("{level:03}{}", "d".repeat(name_length.saturating_sub(3)));
        dir.create_directory_at(&name)
            .map_err(|e| failed!("create directory at level {level}: {e:?}"))?;
        dir = dir
            .open_at(
                PathFlags::empty(),
                &name,
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            )
            .map_err(|e| failed!("open directory at level {level}: {e:?}"))?;
    }
    let file = dir
        .open_at(
            PathFlags::empty(),
            "bulk",
            OpenFlags::CREATE,
            DescriptorFlags::WRITE,
        )
        .map_err(|e| failed!("create the file at the bottom: {e:?}"))?;
    let block = vec![0x5au8; 1 << 20];
    let mut offset = 0u64;
    for i in 0..mb {
        let mut written = 0;
        while written < block.len() {
            let n = file
                .write(&block[written..], offset)
                .map_err(|e| failed!("write {i} refused: {e:?}"))?;
            written += n as usize;
            offset += n;
        }
    }
    Ok(())
}

/// `unlinked-file`: creates a file in its results, deletes it, writes `mb` MiB (default
/// 200) to it, sleeps `sleep-ms` (default 200) and returns still holding it open.
pub fn unlinked_file() -> Result<(), StageError> {
    let mb: u64 = param("mb", 200)?;
    let sleep_ms: u64 = param("sleep-ms", 200)?;
    let results = ward_stage_sdk::results()?.path;
    let path = Path::new(&results).join("hidden");
    let mut file = std::fs::File::create(&path).map_err(|e| failed!("create: {e}"))?;
    std::fs::remove_file(&path).map_err(|e| failed!("delete: {e}"))?;
    let block = vec![0x5au8; 1 << 20];
    for i in 0..mb {
        file.write_all(&block)
            .map_err(|e| failed!("write {i} refused: {e}"))?;
    }
    std::thread::sleep(Duration::from_millis(sleep_ms));
    // Never closed: the host closes it only when it tears the sandbox down.
    std::mem::forget(file);
    Ok(())
}

/// `symlink-chain`: plants `a -> .`, `l1 -> a/..`, `l2 -> l1/..` … `l6 -> l5/..` and
/// `secret -> l6/etc/passwd` in its results (each harmless to a lexical check, together
/// leading to the host's `/etc/passwd`), tries to read `secret`, writes what it got to
/// `attempts.txt` and succeeds.
pub fn symlink_chain() -> Result<(), StageError> {
    let (dir, results) = results_dir()?;
    let mut links = vec![
        ("a".to_string(), ".".to_string()),
        ("l1".to_string(), "a/..".to_string()),
    ];
    for i in 2..=6 {
        links.push((format!("l{i}"), format!("l{}/..", i - 1)));
    }
    links.push(("secret".to_string(), "l6/etc/passwd".to_string()));
    for (name, target) in &links {
        dir.symlink_at(target, name)
            .map_err(|e| failed!("plant {name} -> {target}: {e:?}"))?;
    }
    let followed = match std::fs::read(Path::new(&results).join("secret")) {
        Ok(bytes) => format!("ALLOWED ({} bytes)", bytes.len()),
        Err(e) => format!("refused ({e})"),
    };
    ward_stage_sdk::write_file(
        Path::new(&results),
        "attempts.txt",
        format!("follow secret: {followed}\n").as_bytes(),
    )?;
    Ok(())
}
