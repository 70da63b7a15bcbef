//! CUDA C to PTX with NVRTC, loaded at run time: from the system's library path, or from
//! the directory in `WARD_NVRTC_DIR` (such as the `nvidia-cuda-nvrtc-cu12` wheel's `lib`),
//! which works without a GPU.
//!
//! The source is a stage's, so NVRTC never runs in the host process: a [`Compiler`] runs it
//! in a child process ([`child`]) under a memory and a time limit, and keeps what it
//! compiled in a bounded cache ([`cache`]). [`child_main`] is what that child runs.

mod cache;
pub mod child;
mod compiler;

pub use cache::PtxCache;
pub use child::{ChildProgram, CompileLimits};
pub use compiler::Compiler;

use crate::GpuError;
use std::io::{Read, Write};
use std::sync::OnceLock;

fn preload() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(dir) = std::env::var("WARD_NVRTC_DIR") else {
            return;
        };
        let path = std::path::Path::new(&dir).join("libnvrtc.so.12");
        // Loaded by full path, the library is then found by its name when cudarc asks;
        // it stays loaded for the life of the process.
        match unsafe { libloading::Library::new(&path) } {
            Ok(lib) => std::mem::forget(lib),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot load NVRTC"),
        }
    });
}

/// Whether NVRTC can be loaded.
pub fn available() -> bool {
    preload();
    // Probing only: looks the library up without calling into it.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The NVRTC version, when it is available.
pub fn version() -> Option<(i32, i32)> {
    if !available() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (status == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// The virtual architectures Ward compiles for, by compute capability.
const ARCHES: &[((u32, u32), &str)] = &[
    ((7, 0), "compute_70"),
    ((7, 5), "compute_75"),
    ((8, 0), "compute_80"),
    ((8, 6), "compute_86"),
    ((8, 9), "compute_89"),
    ((9, 0), "compute_90"),
];

/// The virtual architecture for compute capability `(major, minor)`.
pub fn arch_for(major: u32, minor: u32) -> Option<&'static str> {
    ARCHES
        .iter()
        .find(|(cc, _)| *cc == (major, minor))
        .map(|(_, a)| *a)
}

/// `arch` if it is one Ward compiles for (the child takes no other option from outside).
pub fn known_arch(arch: &str) -> Option<&'static str> {
    ARCHES.iter().map(|(_, a)| *a).find(|a| *a == arch)
}

/// Compiles CUDA C `source` to PTX for `arch` (NVRTC's default when none) in this
/// process, with no bound: only [`child_main`] calls it. A compile error carries NVRTC's log.
pub fn compile_in_process(source: &str, arch: Option<&'static str>) -> Result<String, GpuError> {
    if source.contains('\0') {
        return Err(GpuError::Compile(
            "the CUDA C source contains a NUL byte".into(),
        ));
    }
    if !available() {
        return Err(GpuError::Compile(
            "NVRTC is not available on this node (install it, or set WARD_NVRTC_DIR)".into(),
        ));
    }
    let options = cudarc::nvrtc::CompileOptions {
        arch,
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(source, options) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. }) => Err(
            GpuError::Compile(format!("{nvrtc:?}:\n{}", log.to_string_lossy().trim_end())),
        ),
        Err(other) => Err(GpuError::Compile(format!("{other:?}"))),
    }
}

/// The NVRTC child: CUDA C on stdin, PTX on stdout, NVRTC's log on stderr; the exit code
/// says which ([`child::EXIT_COMPILE_ERROR`], [`child::EXIT_OUT_OF_MEMORY`]). `arch` must
/// be one of Ward's. The parent has set its memory and CPU limits.
///
/// Before it reads the source it compiles an empty kernel, so that everything NVRTC loads
/// lazily is loaded, and then lowers its open-file limit to the three descriptors it has:
/// the stage's source cannot `#include` a file of the node (NVRTC would read it and quote
/// it back in its log).
pub fn child_main(arch: Option<&str>) -> i32 {
    let arch = match arch.map(|a| known_arch(a).ok_or(a)) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(a)) => {
            eprintln!("unknown architecture '{a}'");
            return child::EXIT_COMPILE_ERROR;
        }
    };
    if let Err(e) = compile_in_process("extern \"C\" __global__ void ward_warm_up() {}", arch) {
        eprintln!("{e}");
        return child::EXIT_COMPILE_ERROR;
    }
    let no_more_files = libc::rlimit {
        rlim_cur: 3,
        rlim_max: 3,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &no_more_files) } != 0 {
        eprintln!(
            "cannot limit the compiler's open files: {}",
            std::io::Error::last_os_error()
        );
        return child::EXIT_COMPILE_ERROR;
    }
    let mut source = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut source) {
        eprintln!("cannot read the CUDA C source: {e}");
        return child::EXIT_COMPILE_ERROR;
    }
    match compile_in_process(&source, arch) {
        Ok(ptx) => {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(ptx.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                return child::EXIT_COMPILE_ERROR;
            }
            0
        }
        Err(e) => {
            let message = match &e {
                GpuError::Compile(m) => m.clone(),
                other => other.to_string(),
            };
            eprintln!("{message}");
            // NVRTC says so either way, by its result or in its log.
            if message.contains("NVRTC_ERROR_OUT_OF_MEMORY")
                || message.contains("catastrophic error: out of memory")
            {
                child::EXIT_OUT_OF_MEMORY
            } else {
                child::EXIT_COMPILE_ERROR
            }
        }
    }
}
