//! CUDA C to PTX with NVRTC, loaded at run time: from the system's library path, or from
//! the directory in `WARD_NVRTC_DIR` (such as the `nvidia-cuda-nvrtc-cu12` wheel's `lib`),
//! which works without a GPU. Results are cached by source and target architecture.

use crate::GpuError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

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

/// The virtual architecture for compute capability `(major, minor)`.
pub fn arch_for(major: u32, minor: u32) -> Option<&'static str> {
    Some(match (major, minor) {
        (7, 0) => "compute_70",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        _ => return None,
    })
}

/// Compiles CUDA C `source` to PTX for `arch` (NVRTC's default when none); a compile error
/// carries NVRTC's log.
pub fn compile(source: &str, arch: Option<&'static str>) -> Result<String, GpuError> {
    static CACHE: OnceLock<Mutex<HashMap<(String, Option<&'static str>), String>>> =
        OnceLock::new();
    let key = (hex::encode(Sha256::digest(source.as_bytes())), arch);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(ptx) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(ptx.clone());
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
    let ptx = match cudarc::nvrtc::compile_ptx_with_opts(source, options) {
        Ok(ptx) => ptx.to_src(),
        Err(cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. }) => {
            return Err(GpuError::Compile(format!(
                "{nvrtc:?}:\n{}",
                log.to_string_lossy().trim_end()
            )))
        }
        Err(other) => return Err(GpuError::Compile(format!("{other:?}"))),
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, ptx.clone());
    Ok(ptx)
}
