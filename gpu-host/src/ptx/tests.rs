use super::*;

const SMOOTH: &str = "
.version 8.8
.target sm_90
.address_size 64
.visible .entry smooth(
\t.param .u64 smooth_param_0,
\t.param .u64 smooth_param_1,
\t.param .u32 smooth_param_2,
\t.param .f32 smooth_param_3
)
{
\tret;
}
";

/// `scale(float* data, unsigned long long n, float factor)`, as NVRTC writes it: `data`
/// is dereferenced (after `cvta.to.global` and arithmetic), `n` is only compared.
const SCALE: &str = "
.version 8.8
.target sm_80
.address_size 64

\t// .globl\tscale
.visible .entry scale(
\t.param .u64 scale_param_0,
\t.param .u64 scale_param_1,
\t.param .f32 scale_param_2
)
{
\t.reg .pred \t%p<2>;
\t.reg .f32 \t%f<4>;
\t.reg .b32 \t%r<5>;
\t.reg .b64 \t%rd<8>;

\tld.param.u64 \t%rd1, [scale_param_0];
\tld.param.u64 \t%rd2, [scale_param_1];
\tld.param.f32 \t%f1, [scale_param_2];
\tmov.u32 \t%r1, %ctaid.x;
\tmov.u32 \t%r2, %ntid.x;
\tmov.u32 \t%r3, %tid.x;
\tmad.lo.s32 \t%r4, %r1, %r2, %r3;
\tcvt.u64.u32 \t%rd3, %r4;
\tsetp.ge.u64 \t%p1, %rd3, %rd2;
\t@%p1 bra \t$L__BB0_2;

\tcvta.to.global.u64 \t%rd4, %rd1;
\tshl.b64 \t%rd5, %rd3, 2;
\tadd.s64 \t%rd6, %rd4, %rd5;
\tld.global.f32 \t%f2, [%rd6];
\tmul.f32 \t%f3, %f2, %f1;
\tst.global.f32 \t[%rd6], %f3;

$L__BB0_2:
\tret;
}
";

/// A kernel `k(.u64 a, .u64 b)` with `body` (which reads `a` into %rd1, `b` into %rd2).
fn two_params(body: &str) -> String {
    format!(
        ".version 8.8\n.target sm_80\n.address_size 64\n.visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .u64 k_param_1\n)\n{{\n\t.reg .b64 %rd<20>;\n\t.reg .b32 %r<20>;\n\tld.param.u64 %rd1, [k_param_0];\n\tld.param.u64 %rd2, [k_param_1];\n{body}\n\tret;\n}}\n"
    )
}

/// Which parameters of `k` the analysis calls addresses.
fn addresses(ptx: &str, entry: &str) -> Vec<bool> {
    kernel_params(ptx, entry)
        .unwrap()
        .iter()
        .map(|p| p.address_use.is_some())
        .collect()
}

#[test]
fn parameters_are_read_from_the_entry() {
    use ParamType::*;
    assert_eq!(
        entry_params(SMOOTH, "smooth").unwrap(),
        vec![B64, B64, B32, F32]
    );
    assert!(entry_params(SMOOTH, "other")
        .unwrap_err()
        .contains("no kernel 'other'"));
    assert!(entry_params(".entry broken(.param .u64 a", "broken").is_err());
}

#[test]
fn arguments_must_match_in_count_and_type() {
    use ArgKind::*;
    let p = kernel_params(SMOOTH, "smooth").unwrap();
    assert!(check_args("smooth", &p, &[Buffer, Buffer, Uint32, Float32]).is_ok());
    assert_eq!(
        check_args("smooth", &p, &[Buffer, Buffer]).unwrap_err(),
        "kernel 'smooth' takes 4 arguments, 2 were given"
    );
    assert_eq!(
        check_args("smooth", &p, &[Float32, Buffer, Uint32, Float32]).unwrap_err(),
        "kernel 'smooth' argument 0: the kernel takes B64, a Float32 was given"
    );
}

#[test]
fn a_dereferenced_parameter_given_a_raw_integer_is_refused() {
    use ArgKind::*;
    let p = kernel_params(SCALE, "scale").unwrap();
    assert_eq!(addresses(SCALE, "scale")[..2], [true, false]);
    let err = check_args("scale", &p, &[Uint64, Uint64, Float32]).unwrap_err();
    assert_eq!(
        err,
        "kernel 'scale' argument 0 (scale_param_0): a raw Uint64 was given, but the kernel may use this parameter as a memory address (it is converted as an address by `cvta.to.global.u64 %rd4, %rd1`), so it takes a buffer handle"
    );
    assert!(check_args("scale", &p, &[Int64, Uint64, Float32]).is_err());
}

#[test]
fn a_size_parameter_given_an_integer_and_a_pointer_given_a_buffer_are_accepted() {
    use ArgKind::*;
    let p = kernel_params(SCALE, "scale").unwrap();
    assert!(check_args("scale", &p, &[Buffer, Uint64, Float32]).is_ok());
    assert!(check_args("scale", &p, &[Buffer, Int64, Float32]).is_ok());
    // A buffer where an integer would do is harmless.
    assert!(check_args("scale", &p, &[Buffer, Buffer, Float32]).is_ok());
}

#[test]
fn an_address_through_arithmetic_or_a_vector_is_followed() {
    // Straight into an address after arithmetic, no cvta.
    let direct = two_params("\tadd.s64 %rd3, %rd1, 16;\n\tld.global.u32 %r1, [%rd3+4];");
    assert_eq!(addresses(&direct, "k"), [true, false]);
    // Split into halves and put back together.
    let halves = two_params(
        "\tmov.b64 {%r1, %r2}, %rd2;\n\txor.b32 %r3, %r1, 0;\n\tmov.b64 %rd9, {%r3, %r2};\n\tst.global.u32 [%rd9], %r1;",
    );
    assert_eq!(addresses(&halves, "k"), [false, true]);
    // Used before it is written in the text: a loop's back edge.
    let looped = two_params(
        "$L_loop:\n\tadd.s64 %rd5, %rd4, 4;\n\tatom.global.add.u32 %r1, [%rd5], 1;\n\tmov.u64 %rd4, %rd2;\n\tbra.uni $L_loop;",
    );
    assert_eq!(addresses(&looped, "k"), [false, true]);
    // A guarded instruction counts like any other.
    let guarded = two_params("\tsetp.eq.u64 %p1, %rd1, 0;\n\t@!%p1 ld.global.u32 %r1, [%rd2];");
    assert_eq!(addresses(&guarded, "k"), [false, true]);
}

#[test]
fn what_is_not_followed_counts_as_an_address() {
    // Stored to memory (it could be loaded back and dereferenced).
    let stored = two_params("\tst.global.u64 [%rd1], %rd2;");
    assert_eq!(addresses(&stored, "k"), [true, true]);
    let why = kernel_params(&stored, "k").unwrap()[1]
        .address_use
        .clone()
        .unwrap();
    assert_eq!(
        why,
        "it is used by `st.global.u64 [%rd1], %rd2`, which is not followed"
    );
    // Passed to a function.
    let called = two_params(
        "\t{\n\t.param .b64 param0;\n\tst.param.b64 [param0], %rd2;\n\tcall.uni f, (param0);\n\t}",
    );
    assert!(addresses(&called, "k")[1]);
    // A parameter's address taken: which parameter is read cannot be told.
    let taken = two_params("\tmov.u64 %rd3, k_param_0;\n\tld.param.u64 %rd4, [%rd3+8];");
    assert_eq!(addresses(&taken, "k"), [true, true]);
    // A read at an offset may be another parameter.
    let offset = two_params("\tld.param.u64 %rd5, [k_param_0+8];");
    assert_eq!(addresses(&offset, "k"), [true, true]);
    // Declared a pointer.
    let declared = ".entry p(.param .u64 .ptr .global .align 8 p_param_0)\n{\n\tret;\n}";
    assert_eq!(addresses(declared, "p"), [true]);
}

#[test]
fn parameters_that_are_only_computed_with_are_not_addresses() {
    let ptx = two_params(
        "\tmul.lo.s64 %rd3, %rd1, %rd2;\n\tsetp.lt.u64 %p1, %rd3, 100;\n\tselp.b32 %r1, 1, 0, %p1;\n\tld.param.u64 %rd4, [k_param_0+0];",
    );
    assert_eq!(addresses(&ptx, "k"), [false, false]);
    // The argument of a call (its own `.param`, not the kernel's) is not a parameter read.
    let call = two_params(
        "\t{\n\t.param .b32 retval0;\n\tcall.uni (retval0), g, ();\n\tld.param.b32 %r2, [retval0];\n\t}",
    );
    assert_eq!(addresses(&call, "k"), [false, false]);
}

#[test]
fn what_the_loader_would_read_differently_is_not_trusted() {
    // No space between the opcode and its operands: the address is still seen.
    let tight = two_params("\tld.global.u32%r1,[%rd2];");
    assert_eq!(addresses(&tight, "k"), [false, true]);
    // A macro could rename a register behind the analysis' back: refused outright.
    let macro_ptx = format!(
        "#define P %rd2\n{}",
        two_params("\tld.global.u32 %r1, [P];")
    );
    assert!(kernel_params(&macro_ptx, "k")
        .unwrap_err()
        .contains("preprocessor directives are not loaded"));
    // A `.entry` inside a string is not the kernel's header.
    let decoy = ".file 1 \".entry k(.param .u32 x)\" {\n}\n.visible .entry k(.param .u64 k_param_0)\n{\n\tret;\n}";
    assert_eq!(entry_params(decoy, "k").unwrap(), vec![ParamType::B64]);
}
