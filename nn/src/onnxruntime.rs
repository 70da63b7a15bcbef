//! Loading ONNX Runtime at run time, once per process, from the library the host is given
//! (`WARD_ONNXRUNTIME` at the command line) (the `onnxruntime` wheel carries it as `onnxruntime/capi/libonnxruntime.so.*`,
//! `onnxruntime-gpu` with the CUDA execution provider beside it).

use crate::NnError;
use ort::environment::Environment;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that names the ONNX Runtime library.
pub const LIBRARY_VARIABLE: &str = "WARD_ONNXRUNTIME";

/// A loaded ONNX Runtime.
pub struct OnnxRuntime {
    pub(crate) env: Environment,
    pub library: PathBuf,
}

static LOADED: OnceLock<(PathBuf, Result<OnnxRuntime, String>)> = OnceLock::new();

/// The library `WARD_ONNXRUNTIME` names, if it names one.
pub fn library_from_env() -> Option<PathBuf> {
    std::env::var_os(LIBRARY_VARIABLE).map(PathBuf::from)
}

/// The process's ONNX Runtime, loaded on first use from `library`. A process loads one
/// library for its lifetime (ONNX Runtime's API table is global): a failure is answered
/// again, the same, to every later call, and another path is refused.
pub fn onnxruntime(library: Option<&Path>) -> Result<&'static OnnxRuntime, NnError> {
    let Some(path) = library else {
        return Err(NnError::Unavailable(format!(
            "ONNX Runtime is not installed on this host: {LIBRARY_VARIABLE} does not name its library (libonnxruntime.so, from the onnxruntime package)"
        )));
    };
    if !path.is_file() {
        return Err(NnError::Unavailable(format!(
            "{LIBRARY_VARIABLE}={}: no such file (the ONNX Runtime library, libonnxruntime.so)",
            path.display()
        )));
    }
    let (loaded_from, loaded) = LOADED.get_or_init(|| (path.to_path_buf(), load(path)));
    if loaded_from != path {
        return Err(NnError::Unavailable(format!(
            "this process loaded ONNX Runtime from {} already, and cannot load {} beside it",
            loaded_from.display(),
            path.display()
        )));
    }
    loaded
        .as_ref()
        .map_err(|why| NnError::Unavailable(why.clone()))
}

fn load(path: &Path) -> Result<OnnxRuntime, String> {
    // ort loads the library with dlopen and checks the API version it offers; a file that is
    // not ONNX Runtime, or one too old for this host, fails here.
    let loaded = std::panic::catch_unwind(|| ort::init_from(path));
    let builder = match loaded {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(format!(
                "{LIBRARY_VARIABLE}={}: cannot load ONNX Runtime: {e}",
                path.display()
            ))
        }
        Err(_) => {
            return Err(format!(
                "{LIBRARY_VARIABLE}={}: cannot load ONNX Runtime (the library is not one this host can use)",
                path.display()
            ))
        }
    };
    let env = builder
        .with_name("ward")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("ONNX Runtime from {}: {e}", path.display()))?;
    tracing::info!(library = %path.display(), "ONNX Runtime loaded");
    Ok(OnnxRuntime {
        env,
        library: path.to_path_buf(),
    })
}
