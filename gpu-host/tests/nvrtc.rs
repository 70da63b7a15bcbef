//! NVRTC on a machine without a GPU: the reference kernel compiles to PTX that names its
//! entry with the parameters the host checks launches against, and broken CUDA C gets
//! NVRTC's log. NVRTC comes from the `nvidia-cuda-nvrtc-cu12` wheel (`.ci/run` installs it).

use gpu_host::{entry_params, nvrtc, GpuError, ParamType};
use std::process::Command;

/// Points the host at the wheel's NVRTC, once.
fn nvrtc_from_the_wheel() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let out = Command::new("python3")
            .args(["-c", "import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], 'lib'))"])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "NVRTC is needed: pip install nvidia-cuda-nvrtc-cu12 ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = String::from_utf8(out.stdout).unwrap().trim().to_string();
        // Read by gpu-host before it first loads NVRTC.
        unsafe { std::env::set_var("WARD_NVRTC_DIR", dir) };
    });
    assert!(nvrtc::available(), "NVRTC does not load");
}

const KERNEL: &str = include_str!("../kernels/smooth3d.cu");

#[test]
fn the_reference_kernel_compiles_to_ptx_naming_its_entry() {
    nvrtc_from_the_wheel();
    assert!(nvrtc::version().is_some_and(|(major, _)| major >= 12));
    let ptx = nvrtc::compile(KERNEL, Some("compute_80")).unwrap();
    assert!(ptx.contains(".entry smooth3d("), "{ptx}");
    use ParamType::*;
    assert_eq!(
        entry_params(&ptx, "smooth3d").unwrap(),
        vec![B64, B64, B32, B32, B32]
    );
    // The second compile of the same source comes from the cache.
    let started = std::time::Instant::now();
    assert_eq!(nvrtc::compile(KERNEL, Some("compute_80")).unwrap(), ptx);
    assert!(started.elapsed() < std::time::Duration::from_millis(50));
}

#[test]
fn cuda_c_that_does_not_compile_gets_the_nvrtc_log() {
    nvrtc_from_the_wheel();
    let err = nvrtc::compile("extern \"C\" __global__ void k() { int x = ; }", None).unwrap_err();
    let GpuError::Compile(log) = err else {
        panic!("{err:?}")
    };
    assert!(
        log.contains("NVRTC_ERROR_COMPILATION") && log.contains("expected an expression"),
        "{log}"
    );
}
