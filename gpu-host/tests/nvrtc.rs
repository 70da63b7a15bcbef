//! NVRTC on a machine without a GPU, as the host runs it: in a child process under limits.
//! This test executable is its own child: run as `nvrtc __nvrtc --arch ...` it does what
//! `ward __nvrtc` does ([`nvrtc::child_main`]), so the limits are tested on the real
//! compiler. NVRTC comes from the `nvidia-cuda-nvrtc-cu12` wheel (`.ci/run` installs it).
//!
//! A test executable of its own (`harness = false`): a libtest harness would write to the
//! stdout that carries the PTX.

use gpu_host::nvrtc::{self, ChildProgram, CompileLimits, Compiler};
use gpu_host::{check_args, kernel_params, module_memory, ArgKind, GpuError, ParamType};
use std::process::Command;
use std::time::{Duration, Instant};

const KERNEL: &str = include_str!("../kernels/smooth3d.cu");

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

/// Points NVRTC at the wheel's library (read before NVRTC is first loaded, here and in
/// the children, which inherit it).
fn nvrtc_from_the_wheel() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], 'lib'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "NVRTC is needed: pip install nvidia-cuda-nvrtc-cu12 ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Single-threaded here: no test has started yet.
    unsafe { std::env::set_var("WARD_NVRTC_DIR", dir) };
    assert!(nvrtc::available(), "NVRTC does not load");
}

fn this_as_child() -> ChildProgram {
    ChildProgram::new(std::env::current_exe().unwrap(), &["__nvrtc"])
}

fn compiler(limits: CompileLimits) -> Compiler {
    Compiler::new(this_as_child(), limits)
}

fn the_reference_kernel_compiles_in_the_child_and_its_pointers_take_buffers_only() {
    let c = compiler(CompileLimits::default());
    let ptx = c.compile(KERNEL, Some("compute_80"), None).unwrap();
    assert!(ptx.contains(".entry smooth3d("), "{ptx}");
    let params = kernel_params(&ptx, "smooth3d").unwrap();
    use ParamType::*;
    assert_eq!(
        params.iter().map(|p| p.ty).collect::<Vec<_>>(),
        vec![B64, B64, B32, B32, B32]
    );
    // `in` and `out` are dereferenced: a raw address for either is refused.
    use ArgKind::*;
    let ints = [Int32, Int32, Int32];
    let args = |a: ArgKind, b: ArgKind| [&[a, b][..], &ints[..]].concat();
    assert!(check_args("smooth3d", &params, &args(Buffer, Buffer)).is_ok());
    let err = check_args("smooth3d", &params, &args(Uint64, Buffer)).unwrap_err();
    assert!(
        err.starts_with("kernel 'smooth3d' argument 0 (smooth3d_param_0): a raw Uint64 was given, but the kernel may use this parameter as a memory address"),
        "{err}"
    );
    assert!(check_args("smooth3d", &params, &args(Buffer, Int64)).is_err());
    assert_eq!(module_memory(&ptx).unwrap().total(), 0);
    // The second compile of the same source comes from the cache.
    assert_eq!(c.compile(KERNEL, Some("compute_80"), None).unwrap(), ptx);
    assert_eq!(c.cached().0, 1);
}

fn a_size_parameter_nvrtc_compiles_is_not_an_address() {
    let source = r#"
extern "C" __global__ void scale(float* data, unsigned long long n, float factor)
{
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        data[i] *= factor;
    }
}
"#;
    let ptx = compiler(CompileLimits::default())
        .compile(source, Some("compute_80"), None)
        .unwrap();
    let params = kernel_params(&ptx, "scale").unwrap();
    assert!(params[0].address_use.is_some(), "{ptx}");
    assert_eq!(params[1].address_use, None, "{ptx}");
    use ArgKind::*;
    assert!(check_args("scale", &params, &[Buffer, Uint64, Float32]).is_ok());
    assert!(check_args("scale", &params, &[Uint64, Uint64, Float32]).is_err());
}

fn device_globals_nvrtc_compiles_are_counted() {
    let source = r#"
__device__ float table[1 << 20];
__device__ int counter;
__constant__ float weights[27];
extern "C" __global__ void k(float* out)
{
    atomicAdd(&counter, 1);
    out[threadIdx.x] = table[threadIdx.x] * weights[threadIdx.x % 27];
}
"#;
    let ptx = compiler(CompileLimits::default())
        .compile(source, Some("compute_80"), None)
        .unwrap();
    let m = module_memory(&ptx).unwrap();
    assert_eq!(m.global, (4 << 20) + 4, "{ptx}");
    assert_eq!(m.constant, 108, "{ptx}");
}

fn cuda_c_that_does_not_compile_gets_the_nvrtc_log() {
    let err = compiler(CompileLimits::default())
        .compile("extern \"C\" __global__ void k() { int x = ; }", None, None)
        .unwrap_err();
    let GpuError::Compile(log) = err else {
        panic!("{err:?}")
    };
    assert!(
        log.contains("NVRTC_ERROR_COMPILATION") && log.contains("expected an expression"),
        "{log}"
    );
}

fn the_source_cannot_include_a_file_of_the_node() {
    let err = compiler(CompileLimits::default())
        .compile("#include \"/etc/passwd\"\n", None, None)
        .unwrap_err();
    let GpuError::Compile(log) = err else {
        panic!("{err:?}")
    };
    assert!(
        log.contains("cannot open source file \"/etc/passwd\""),
        "{log}"
    );
    assert!(!log.contains("root:"), "{log}");
}

fn a_compile_bomb_is_stopped_at_the_memory_limit() {
    let limits = CompileLimits {
        memory: 512 << 20,
        ..CompileLimits::default()
    };
    let err = compiler(limits)
        .compile(&macro_bomb(true), None, None)
        .unwrap_err();
    let GpuError::Compile(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("NVRTC ran past its memory limit of 512 MiB (536870912 bytes)"),
        "{message}"
    );
}

fn a_compile_past_the_stage_deadline_ends_with_deadline() {
    let deadline = Instant::now() + Duration::from_millis(500);
    let err = compiler(CompileLimits::default())
        .compile(&macro_bomb(false), None, Some(deadline))
        .unwrap_err();
    assert_eq!(err, GpuError::Deadline);
    // The compiler's own limit, when it comes before the stage's deadline.
    let short = CompileLimits {
        time: Duration::from_secs(1),
        ..CompileLimits::default()
    };
    let err = compiler(short)
        .compile(
            &macro_bomb(false),
            None,
            Some(Instant::now() + Duration::from_secs(600)),
        )
        .unwrap_err();
    assert_eq!(
        err,
        GpuError::Compile("NVRTC ran past its time limit of 1s and was stopped".into())
    );
}

fn only_known_architectures_reach_nvrtc() {
    let err = compiler(CompileLimits::default()).compile(
        KERNEL,
        Some("compute_80 --include-path=/etc"),
        None,
    );
    assert!(
        matches!(&err, Err(GpuError::Compile(m)) if m.contains("unknown architecture")),
        "{err:?}"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__nvrtc") {
        let arch = args
            .iter()
            .position(|a| a == "--arch")
            .and_then(|i| args.get(i + 1));
        std::process::exit(nvrtc::child_main(arch.map(String::as_str)));
    }
    let tests: &[(&str, fn())] = &[
        (
            "the_reference_kernel_compiles_in_the_child_and_its_pointers_take_buffers_only",
            the_reference_kernel_compiles_in_the_child_and_its_pointers_take_buffers_only,
        ),
        (
            "a_size_parameter_nvrtc_compiles_is_not_an_address",
            a_size_parameter_nvrtc_compiles_is_not_an_address,
        ),
        (
            "device_globals_nvrtc_compiles_are_counted",
            device_globals_nvrtc_compiles_are_counted,
        ),
        (
            "cuda_c_that_does_not_compile_gets_the_nvrtc_log",
            cuda_c_that_does_not_compile_gets_the_nvrtc_log,
        ),
        (
            "the_source_cannot_include_a_file_of_the_node",
            the_source_cannot_include_a_file_of_the_node,
        ),
        (
            "a_compile_bomb_is_stopped_at_the_memory_limit",
            a_compile_bomb_is_stopped_at_the_memory_limit,
        ),
        (
            "a_compile_past_the_stage_deadline_ends_with_deadline",
            a_compile_past_the_stage_deadline_ends_with_deadline,
        ),
        (
            "only_known_architectures_reach_nvrtc",
            only_known_architectures_reach_nvrtc,
        ),
    ];
    // The first argument that is not a flag filters the tests by name, as libtest does.
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    nvrtc_from_the_wheel();
    let chosen: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        chosen.len() - failed.len(),
        failed.len(),
        tests.len() - chosen.len()
    );
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(101);
    }
}
