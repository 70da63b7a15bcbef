//! The restricted WASI 0.2 a stage gets, and the linker that grants it.
//!
//! The blocking WASI calls (poll, streams, filesystem) are the asynchronous implementations,
//! so a stage waiting in one yields to the runtime and its deadline can end it.
//!
//! Granted: filesystem (only the volume preopens), clocks, random, stdio (stdout/stderr into
//! the stage log, empty stdin), exit, environment (only what the pipeline gives), and
//! `wasi:nn` to stages that declare `requests.inference`. Not
//! granted: `wasi:sockets` and anything else; a component importing them is refused when
//! it is loaded, before it runs.

use super::stage_log::{Source, StageLog};
use super::stdio::LogPipe;
use super::StageState;
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiView};

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds the granted WASI interfaces and the `ward:stage` imports to `linker`.
pub fn add_to_linker(linker: &mut Linker<StageState>) -> wasmtime::Result<()> {
    type T = StageState;
    let l = linker;
    io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    super::Stage::add_to_linker::<T, HasSelf<T>>(l, |t| t)?;
    // Linked for every stage; a stage that imports it without declaring requests.inference
    // is refused before it runs (jobs::runner).
    crate::nn::bindings::Ml::add_to_linker::<T, HasSelf<T>>(l, |t| t)?;
    super::context::link_log_in_place(l)?;
    super::ports::link_send_in_place(l)?;
    Ok(())
}

/// One directory a stage sees.
pub struct Preopen<'a> {
    pub host_path: &'a Path,
    pub guest_path: &'a str,
    pub read_only: bool,
}

/// Builds the WASI context of one stage: its preopens, the args and env the pipeline
/// gives (nothing inherited from the host), output into its log, no network.
pub fn build_wasi(
    preopens: &[Preopen<'_>],
    args: &[String],
    env: &[(String, String)],
    log: &Arc<StageLog>,
) -> wasmtime::Result<WasiCtx> {
    let mut b = WasiCtxBuilder::new();
    b.args(args);
    for (k, v) in env {
        b.env(k, v);
    }
    b.stdout(LogPipe::new(log.clone(), Source::Stdout));
    b.stderr(LogPipe::new(log.clone(), Source::Stderr));
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    // File I/O runs on the stage's own thread rather than hopping to a blocking pool.
    b.allow_blocking_current_thread(true);
    for p in preopens {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(p.host_path, p.guest_path, perms)
            .map_err(|e| {
                e.context(format!(
                    "cannot mount {} at {}",
                    p.host_path.display(),
                    p.guest_path
                ))
            })?;
    }
    Ok(b.build())
}
