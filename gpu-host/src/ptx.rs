//! A kernel's parameters as its PTX declares them, so a launch's arguments are checked by
//! count and type before the driver sees them: a stage passing a float where the kernel
//! reads a pointer gets an error, not a device fault.

/// A parameter's PTX type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// 64-bit: a device pointer or a 64-bit integer.
    B64,
    /// 32-bit integer.
    B32,
    F32,
    F64,
    /// Anything else (8/16-bit, aligned byte arrays): not passable from a stage.
    Other,
}

/// What a stage passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Buffer,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Float32,
    Float64,
}

/// The parameters of kernel `entry` in `ptx`, or why they cannot be read.
pub fn entry_params(ptx: &str, entry: &str) -> Result<Vec<ParamType>, String> {
    let header = format!(".entry {entry}(");
    let start = ptx
        .find(&header)
        .ok_or_else(|| format!("the module has no kernel '{entry}'"))?;
    let rest = &ptx[start + header.len()..];
    let end = rest
        .find(')')
        .ok_or_else(|| format!("kernel '{entry}': its parameter list does not end"))?;
    let mut params = Vec::new();
    for decl in rest[..end].split(',') {
        let decl = decl.trim();
        if decl.is_empty() {
            continue;
        }
        let words: Vec<&str> = decl.split_whitespace().collect();
        if words.first() != Some(&".param") || words.len() < 3 {
            return Err(format!("kernel '{entry}': cannot read parameter '{decl}'"));
        }
        params.push(match words[1] {
            ".u64" | ".s64" | ".b64" => ParamType::B64,
            ".u32" | ".s32" | ".b32" => ParamType::B32,
            ".f32" => ParamType::F32,
            ".f64" => ParamType::F64,
            _ => ParamType::Other,
        });
    }
    Ok(params)
}

/// Checks `args` against kernel `entry`'s `params`.
pub fn check_args(entry: &str, params: &[ParamType], args: &[ArgKind]) -> Result<(), String> {
    if params.len() != args.len() {
        return Err(format!(
            "kernel '{entry}' takes {} arguments, {} were given",
            params.len(),
            args.len()
        ));
    }
    for (i, (p, a)) in params.iter().zip(args).enumerate() {
        let fits = matches!(
            (p, a),
            (
                ParamType::B64,
                ArgKind::Buffer | ArgKind::Int64 | ArgKind::Uint64
            ) | (ParamType::B32, ArgKind::Int32 | ArgKind::Uint32)
                | (ParamType::F32, ArgKind::Float32)
                | (ParamType::F64, ArgKind::Float64)
        );
        if !fits {
            return Err(format!(
                "kernel '{entry}' argument {i}: the kernel takes {p:?}, a {a:?} was given"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = "
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

    #[test]
    fn parameters_are_read_from_the_entry() {
        use ParamType::*;
        assert_eq!(
            entry_params(PTX, "smooth").unwrap(),
            vec![B64, B64, B32, F32]
        );
        assert!(entry_params(PTX, "other")
            .unwrap_err()
            .contains("no kernel 'other'"));
        assert!(entry_params(".entry broken(.param .u64 a", "broken").is_err());
    }

    #[test]
    fn arguments_must_match_in_count_and_type() {
        use ArgKind::*;
        let p = entry_params(PTX, "smooth").unwrap();
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
}
