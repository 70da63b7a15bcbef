//! `ward new stage NAME [--dir DIR]`: a stage crate that builds for `wasm32-wasip2` outside
//! the Ward repository: the stage, a pipeline for it, a test payload, a README, and a copy
//! of the stage SDK (which no registry serves) with the lockfile Ward's stages build with.

mod lockfile;
mod sdk;
mod stage_name;
mod template;

use anyhow::Context;
use stage_name::StageName;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum NewCommand {
    /// A stage crate: src/lib.rs, Cargo.toml, pipeline.yaml, a test payload, a README and
    /// the stage SDK.
    Stage(StageArgs),
}

#[derive(clap::Args)]
pub struct StageArgs {
    /// The stage's name: the crate's, the pipeline operator's and (with `_` for `-`) the
    /// component file's. Lowercase letters, digits, '-' and '_', starting with a letter.
    name: String,
    /// The directory to write the crate into; it must not exist or be empty. Default: NAME.
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(cmd: NewCommand) -> anyhow::Result<i32> {
    let NewCommand::Stage(args) = cmd;
    let name = StageName::parse(&args.name).map_err(|e| anyhow::anyhow!("ward new stage: {e}"))?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(name.as_str()));
    write_crate(&dir, &name)?;
    let component = format!("target/wasm32-wasip2/release/{}.wasm", name.crate_ident());
    out!(
        "wrote stage crate '{}' to {} (ward-stage-sdk {} for {} in {})",
        name.as_str(),
        dir.display(),
        sdk::version(),
        sdk::contract(),
        template::SDK_DIR
    );
    out!("next:");
    out!("  cd {}", dir.display());
    out!("  cargo build --release --target wasm32-wasip2");
    out!("  ward validate pipeline.yaml");
    out!("  ward run pipeline.yaml --payload test-payload --results job");
    out!("  ward conformance {component}");
    Ok(0)
}

/// Writes the crate so that a failure leaves no half-written crate behind: a new directory
/// is written beside `dir` and renamed into place; an existing empty one (perhaps the
/// current directory) is written in place and emptied again on failure.
fn write_crate(dir: &Path, name: &StageName) -> anyhow::Result<()> {
    if refuse_occupied(dir)? == Existing::EmptyDirectory {
        let written = write_files(dir, name);
        if written.is_err() {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_dir_all(entry.path())
                        .or_else(|_| std::fs::remove_file(entry.path()));
                }
            }
        }
        return written;
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    // Created like any directory (under the umask), unlike a private temporary directory.
    let staging = parent.join(format!(
        ".ward-new-stage-{}-{}",
        std::process::id(),
        name.as_str()
    ));
    std::fs::create_dir(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let written = write_files(&staging, name).and_then(|()| {
        // rename refuses a directory made and filled since the check above.
        std::fs::rename(&staging, dir).with_context(|| format!("cannot create {}", dir.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

fn write_files(root: &Path, name: &StageName) -> anyhow::Result<()> {
    for (path, bytes) in template::files(name) {
        let target = root.join(&path);
        if let Some(sub) = target.parent() {
            std::fs::create_dir_all(sub)
                .with_context(|| format!("cannot create {}", sub.display()))?;
        }
        std::fs::write(&target, bytes)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(())
}

#[derive(PartialEq, Eq)]
enum Existing {
    Nothing,
    EmptyDirectory,
}

/// An existing file, or a directory with anything in it, is not overwritten.
fn refuse_occupied(dir: &Path) -> anyhow::Result<Existing> {
    let metadata = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(e).with_context(|| format!("cannot check {}", dir.display())),
    };
    if !metadata.is_dir() {
        anyhow::bail!(
            "{} already exists and is not a directory; choose another --dir",
            dir.display()
        );
    }
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    if let Some(entry) = entries.next() {
        let first = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .file_name();
        anyhow::bail!(
            "{} already exists and is not empty (it holds '{}'); ward new stage writes only \
             into a new or empty directory: choose another --dir",
            dir.display(),
            first.to_string_lossy()
        );
    }
    Ok(Existing::EmptyDirectory)
}
