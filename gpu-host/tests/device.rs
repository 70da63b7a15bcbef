//! On a node with a GPU (scripts/gpu-check runs these there): module memory charged by the
//! PTX's figure and the driver's, and a raw address for a pointer parameter stopped before
//! the driver while the same kernel runs with buffers. Without a device each test says so
//! and passes: what they check without one is in the unit tests.

use gpu_host::{Dim3, Gpu, GpuError, KernelArg};

fn device() -> Option<Gpu> {
    let gpu = Gpu::probe();
    match gpu.info() {
        Some(info) => {
            eprintln!("device: {} ({} bytes)", info.name, info.total_memory);
            Some(gpu)
        }
        None => {
            eprintln!("no GPU on this node: nothing to check here");
            None
        }
    }
}

const POOL: u64 = 64 << 20;

fn module_with_a_pool() -> String {
    format!(
        ".version 7.0\n.target sm_70\n.address_size 64\n.visible .global .align 16 .b8 pool[{POOL}];\n.visible .entry touch(\n\t.param .u64 touch_param_0\n)\n{{\n\t.reg .b64 %rd<3>;\n\t.reg .b32 %r<2>;\n\tld.param.u64 %rd1, [touch_param_0];\n\tcvta.to.global.u64 %rd2, %rd1;\n\tld.global.u32 %r1, [pool];\n\tst.global.u32 [%rd2], %r1;\n\tret;\n}}\n"
    )
}

/// `scale(float* data, unsigned long long n, float factor)`.
const SCALE: &str = "
.version 7.0
.target sm_70
.address_size 64
.visible .entry scale(
\t.param .u64 scale_param_0,
\t.param .u64 scale_param_1,
\t.param .f32 scale_param_2
)
{
\t.reg .pred %p<2>;
\t.reg .f32 %f<4>;
\t.reg .b32 %r<5>;
\t.reg .b64 %rd<8>;
\tld.param.u64 %rd1, [scale_param_0];
\tld.param.u64 %rd2, [scale_param_1];
\tld.param.f32 %f1, [scale_param_2];
\tmov.u32 %r1, %ctaid.x;
\tmov.u32 %r2, %ntid.x;
\tmov.u32 %r3, %tid.x;
\tmad.lo.s32 %r4, %r1, %r2, %r3;
\tcvt.u64.u32 %rd3, %r4;
\tsetp.ge.u64 %p1, %rd3, %rd2;
\t@%p1 bra $L__BB0_2;
\tcvta.to.global.u64 %rd4, %rd1;
\tshl.b64 %rd5, %rd3, 2;
\tadd.s64 %rd6, %rd4, %rd5;
\tld.global.f32 %f2, [%rd6];
\tmul.f32 %f3, %f2, %f1;
\tst.global.f32 [%rd6], %f3;
$L__BB0_2:
\tret;
}
";

#[test]
fn module_memory_is_charged_to_the_quota() {
    let Some(gpu) = device() else { return };
    let ptx = module_with_a_pool();
    let mut small = gpu.session(POOL / 2);
    match small.load(Some(&ptx), None) {
        Err(GpuError::ModuleOverQuota { declared, .. }) => assert_eq!(declared, POOL),
        other => panic!("{other:?}"),
    }
    let mut roomy = gpu.session(1 << 30);
    let started = std::time::Instant::now();
    let module = roomy.load(Some(&ptx), None).unwrap();
    let charge = roomy.module_charge(module).unwrap();
    eprintln!(
        "a module of {POOL} declared bytes is charged {charge} bytes (load {:?})",
        started.elapsed()
    );
    assert!(charge >= POOL);
    // What is left of the quota is what the module did not take, and comes back with it.
    assert!(matches!(
        roomy.alloc((1 << 30) - charge + 1),
        Err(GpuError::QuotaExceeded { .. })
    ));
    roomy.unload(module);
    let all = roomy.alloc(1 << 30).unwrap();
    roomy.free(all);
}

#[test]
fn a_raw_address_for_a_pointer_parameter_never_reaches_the_driver() {
    let Some(gpu) = device() else { return };
    let mut s = gpu.session(1 << 20);
    let n = 1000u64;
    let data = s.alloc(n * 4).unwrap();
    let values: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    s.write(data, 0, &values).unwrap();
    let module = s.load(Some(SCALE), None).unwrap();
    let grid = Dim3 { x: 4, y: 1, z: 1 };
    let block = Dim3 { x: 256, y: 1, z: 1 };
    let raw = s.launch(
        module,
        "scale",
        grid,
        block,
        0,
        &[
            KernelArg::Uint64(0x7f00_0000_0000),
            KernelArg::Uint64(n),
            KernelArg::Float32(2.0),
        ],
    );
    assert!(
        matches!(&raw, Err(GpuError::InvalidArgument(m)) if m.contains("takes a buffer handle")),
        "{raw:?}"
    );
    // The context is as healthy as before: the same kernel runs with the buffer.
    s.launch(
        module,
        "scale",
        grid,
        block,
        0,
        &[
            KernelArg::Buffer(data),
            KernelArg::Uint64(n),
            KernelArg::Float32(2.0),
        ],
    )
    .unwrap();
    s.synchronize().unwrap();
    let out = s.read(data, 0, n * 4).unwrap();
    for (i, b) in out.chunks_exact(4).enumerate() {
        assert_eq!(f32::from_le_bytes(b.try_into().unwrap()), 2.0 * i as f32);
    }
}
