//! The host's CUDA C compiler as `ward` runs it: NVRTC in the `ward __nvrtc` child, under
//! the compiler's memory and time limits (no GPU needed; NVRTC comes from the
//! `nvidia-cuda-nvrtc-cu12` wheel that `.ci/run` installs).

use crate::support::run_ward;
use gpu_host::nvrtc::{ChildProgram, CompileLimits, Compiler};
use gpu_host::GpuError;
use std::time::{Duration, Instant};

/// `ward __nvrtc`, pointed at the wheel's NVRTC.
fn wards_compiler(limits: CompileLimits) -> Compiler {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], 'lib'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "NVRTC is needed: pip install nvidia-cuda-nvrtc-cu12"
    );
    let dir = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut program = ChildProgram::new(env!("CARGO_BIN_EXE_ward"), &["__nvrtc"]);
    program.env.push(("WARD_NVRTC_DIR".into(), dir.into()));
    Compiler::new(program, limits)
}

/// A preprocessor bomb: each macro doubles the one before, 2^40 tokens if let run. After
/// a declaration NVRTC expands it until memory runs out; alone, it spins in little
/// memory (about 300 MB) without end.
fn macro_bomb(after_a_declaration: bool) -> String {
    let mut lines = vec!["#define A0 x+".to_string()];
    for i in 1..40 {
        lines.push(format!("#define A{i} A{p} A{p}", p = i - 1));
    }
    let first = if after_a_declaration {
        "__device__ int x; "
    } else {
        ""
    };
    lines.push(format!("{first}__device__ int y = A39 1;"));
    lines.join("\n")
}

#[test]
fn ward_compiles_the_reference_kernel_in_its_nvrtc_child() {
    let kernel = include_str!("../../../gpu-host/kernels/smooth3d.cu");
    let ptx = wards_compiler(CompileLimits::default())
        .compile(kernel, Some("compute_90"), None)
        .unwrap();
    assert!(ptx.contains(".target sm_90") && ptx.contains(".entry smooth3d("));
    // Not a command for people.
    let help = run_ward(&["--help"]);
    assert!(!help.stdout.contains("nvrtc"), "{}", help.stdout);
}

#[test]
fn a_compile_bomb_in_wards_child_is_stopped_at_its_limits() {
    let memory = CompileLimits {
        memory: 512 << 20,
        ..CompileLimits::default()
    };
    let err = wards_compiler(memory)
        .compile(&macro_bomb(true), None, None)
        .unwrap_err();
    assert!(
        matches!(&err, GpuError::Compile(m) if m.starts_with("NVRTC ran past its memory limit of 512 MiB")),
        "{err:?}"
    );
    let deadline = Instant::now() + Duration::from_millis(500);
    let err = wards_compiler(CompileLimits::default())
        .compile(&macro_bomb(false), None, Some(deadline))
        .unwrap_err();
    assert_eq!(err, GpuError::Deadline);
}
