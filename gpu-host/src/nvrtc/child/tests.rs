//! The child's limits, with stand-ins for NVRTC: a shell that never ends, this test
//! executable allocating past its address-space limit, children that fail or say too much.

use super::*;

fn sh(script: &str) -> ChildProgram {
    ChildProgram::new("/bin/sh", &["-c", script])
}

fn limits() -> CompileLimits {
    CompileLimits::default()
}

#[test]
fn a_child_that_never_ends_is_killed_at_the_stage_deadline() {
    let deadline = Instant::now() + Duration::from_millis(300);
    let err = compile_in_child(
        &sh("while :; do :; done"),
        "src",
        None,
        &limits(),
        Some(deadline),
    )
    .unwrap_err();
    assert_eq!(err, GpuError::Deadline);
    assert!(Instant::now() >= deadline);
}

#[test]
fn a_child_past_the_compilers_own_time_limit_is_stopped_with_the_limit_named() {
    let limits = CompileLimits {
        time: Duration::from_millis(300),
        ..limits()
    };
    let err = compile_in_child(&sh("while :; do :; done"), "src", None, &limits, None).unwrap_err();
    assert_eq!(
        err,
        GpuError::Compile("NVRTC ran past its time limit of 300ms and was stopped".into())
    );
}

#[test]
fn the_child_runs_under_its_cpu_time_address_space_and_core_limits() {
    let limits = CompileLimits {
        time: Duration::from_millis(1500),
        memory: 512 << 20,
        ..limits()
    };
    let seen = compile_in_child(
        &sh("ulimit -t; ulimit -v; ulimit -c; cat >/dev/null"),
        "",
        None,
        &limits,
        None,
    )
    .unwrap();
    // CPU seconds rounded up, the address space in KiB, no core file.
    assert_eq!(seen, "2\n524288\n0\n");
}

/// Run as a child by the test below (this executable, with GPU_HOST_TEST_CHILD=allocate):
/// allocates and touches 768 MiB, as a compile bomb would. A no-op in the ordinary run.
#[test]
fn allocating_child() {
    if std::env::var("GPU_HOST_TEST_CHILD").as_deref() != Ok("allocate") {
        return;
    }
    let mut blocks = Vec::new();
    for _ in 0..12 {
        blocks.push(vec![1u8; 64 << 20]);
    }
    std::hint::black_box(&blocks);
}

#[test]
fn a_child_that_allocates_past_its_memory_limit_fails_with_the_limit_named() {
    let mut program = ChildProgram::new(
        std::env::current_exe().unwrap(),
        &[
            "--exact",
            "nvrtc::child::tests::allocating_child",
            "--nocapture",
            "--test-threads=1",
        ],
    );
    program
        .env
        .push(("GPU_HOST_TEST_CHILD".into(), "allocate".into()));
    let limits = CompileLimits {
        memory: 512 << 20,
        ..limits()
    };
    let err = compile_in_child(&program, "", None, &limits, None).unwrap_err();
    let GpuError::Compile(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("NVRTC ran past its memory limit of 512 MiB (536870912 bytes)"),
        "{message}"
    );
    // Under a larger limit the same child has what it asks for (and its "PTX" is the
    // test harness's report).
    let roomy = CompileLimits {
        memory: 2 << 30,
        ..limits
    };
    let out = compile_in_child(&program, "", None, &roomy, None).unwrap();
    assert!(out.contains("1 passed"), "{out}");
}

#[test]
fn the_source_goes_in_and_the_ptx_comes_out() {
    let source = "x".repeat(1 << 20);
    let ptx = compile_in_child(&sh("cat"), &source, None, &limits(), None).unwrap();
    assert_eq!(ptx, source);
    // The architecture is passed as `--arch`.
    let echoed = compile_in_child(
        &sh("echo \"$@\"; cat >/dev/null"),
        "",
        Some("compute_80"),
        &limits(),
        None,
    );
    assert_eq!(echoed.unwrap(), "compute_80\n");
}

#[test]
fn a_compile_error_carries_the_log_and_an_out_of_memory_exit_names_the_limit() {
    let err = compile_in_child(
        &sh("echo 'k.cu(1): error: expected an expression' >&2; exit 1"),
        "",
        None,
        &limits(),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        GpuError::Compile("k.cu(1): error: expected an expression".into())
    );
    let err = compile_in_child(
        &sh("echo NVRTC_ERROR_OUT_OF_MEMORY >&2; exit 3"),
        "",
        None,
        &limits(),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        GpuError::Compile(
            "NVRTC ran past its memory limit of 2048 MiB (2147483648 bytes): NVRTC_ERROR_OUT_OF_MEMORY"
                .into()
        )
    );
}

#[test]
fn ptx_over_its_limit_is_refused_and_a_missing_compiler_is_named() {
    let err = compile_in_child(
        &sh("head -c 100000000 /dev/zero"),
        "",
        None,
        &limits(),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        GpuError::Compile("the compiled PTX is over its limit of 64 MiB".into())
    );
    let err = compile_in_child(
        &ChildProgram::new("/nonexistent/ward", &["__nvrtc"]),
        "",
        None,
        &limits(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, GpuError::Compile(m) if m.starts_with("cannot start the compiler /nonexistent/ward")),
        "{err:?}"
    );
}
