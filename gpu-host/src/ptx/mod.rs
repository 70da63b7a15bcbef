//! A kernel's parameters as its PTX declares them, so a launch's arguments are checked by
//! count and type before the driver sees them: a stage passing a float where the kernel
//! reads a pointer gets an error, not a device fault. A 64-bit parameter the kernel uses as
//! a memory address takes a buffer handle only ([`addresses`]), and what a module declares
//! in device memory is counted before it is loaded ([`module_memory`]).

mod addresses;
mod globals;
mod lex;

pub use globals::{module_memory, ModuleMemory};
use lex::Item;

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

/// One parameter of a kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    /// Why the kernel may use this parameter as a memory address (then it takes a buffer
    /// handle only); none when the analysis shows it never does.
    pub address_use: Option<String>,
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

/// Kernel `entry` of `ptx`: its header (the text after `.entry`) and its body's items.
fn find_entry<'a>(items: &'a [Item], entry: &str) -> Result<(&'a str, &'a [Item]), String> {
    for (i, item) in items.iter().enumerate() {
        let Item::Statement(text) = item else {
            continue;
        };
        let Some(header) = entry_header(text, entry) else {
            continue;
        };
        // A prototype without a body (`.entry k(...);`) is not the kernel.
        if items.get(i + 1) != Some(&Item::Open) {
            continue;
        }
        let mut depth = 0usize;
        for (j, item) in items[i + 1..].iter().enumerate() {
            match item {
                Item::Open => depth += 1,
                Item::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok((header, &items[i + 2..i + 1 + j]));
                    }
                }
                Item::Statement(_) => {}
            }
        }
        return Err(format!("kernel '{entry}': its body does not end"));
    }
    Err(format!("the module has no kernel '{entry}'"))
}

/// The text after `.entry NAME` when `text` declares kernel `entry`: only linkage
/// directives may stand before `.entry` (so a `.entry` inside another statement, a string
/// say, is not taken for the kernel).
fn entry_header<'a>(text: &'a str, entry: &str) -> Option<&'a str> {
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix(".entry") {
            if !after.starts_with(char::is_whitespace) {
                return None;
            }
            let tail = after.trim_start().strip_prefix(entry)?.trim_start();
            return tail.starts_with('(').then_some(tail);
        }
        let (word, after) = rest.split_once(char::is_whitespace)?;
        if !matches!(word, ".visible" | ".extern" | ".weak") {
            return None;
        }
        rest = after.trim_start();
    }
}

/// The declarations in `header`'s parameter list: (name, type, declared `.ptr`).
fn parse_params(entry: &str, header: &str) -> Result<Vec<(String, ParamType, bool)>, String> {
    let inner = &header[1..];
    let end = inner
        .find(')')
        .ok_or_else(|| format!("kernel '{entry}': its parameter list does not end"))?;
    let mut params = Vec::new();
    for decl in inner[..end].split(',') {
        let decl = decl.trim();
        if decl.is_empty() {
            continue;
        }
        let words: Vec<&str> = decl.split_whitespace().collect();
        if words.first() != Some(&".param") || words.len() < 3 {
            return Err(format!("kernel '{entry}': cannot read parameter '{decl}'"));
        }
        let name = words[words.len() - 1];
        let name = name.split('[').next().unwrap_or(name).to_string();
        let ty = match words[1] {
            ".u64" | ".s64" | ".b64" => ParamType::B64,
            ".u32" | ".s32" | ".b32" => ParamType::B32,
            ".f32" => ParamType::F32,
            ".f64" => ParamType::F64,
            _ => ParamType::Other,
        };
        params.push((name, ty, words.contains(&".ptr")));
    }
    Ok(params)
}

/// The parameters of kernel `entry` in `ptx`, with which of them it may use as addresses,
/// or why they cannot be read.
pub fn kernel_params(ptx: &str, entry: &str) -> Result<Vec<Param>, String> {
    lex::refuse_preprocessor(ptx)?;
    let items = lex::items(ptx);
    let (header, body) = find_entry(&items, entry)?;
    let declared = parse_params(entry, header)?;
    let names: Vec<&str> = declared.iter().map(|(n, _, _)| n.as_str()).collect();
    let uses = addresses::address_uses(body, &names);
    Ok(declared
        .into_iter()
        .zip(uses)
        .map(|((name, ty, ptr), used)| Param {
            address_use: if ptr {
                Some("it is declared `.ptr`".to_string())
            } else {
                used
            },
            name,
            ty,
        })
        .collect())
}

/// The parameter types of kernel `entry` in `ptx`, or why they cannot be read.
pub fn entry_params(ptx: &str, entry: &str) -> Result<Vec<ParamType>, String> {
    Ok(kernel_params(ptx, entry)?
        .into_iter()
        .map(|p| p.ty)
        .collect())
}

/// Checks `args` against kernel `entry`'s `params`: count, type, and a buffer handle for
/// every 64-bit parameter the kernel may use as an address.
pub fn check_args(entry: &str, params: &[Param], args: &[ArgKind]) -> Result<(), String> {
    if params.len() != args.len() {
        return Err(format!(
            "kernel '{entry}' takes {} arguments, {} were given",
            params.len(),
            args.len()
        ));
    }
    for (i, (p, a)) in params.iter().zip(args).enumerate() {
        let fits = matches!(
            (p.ty, a),
            (
                ParamType::B64,
                ArgKind::Buffer | ArgKind::Int64 | ArgKind::Uint64
            ) | (ParamType::B32, ArgKind::Int32 | ArgKind::Uint32)
                | (ParamType::F32, ArgKind::Float32)
                | (ParamType::F64, ArgKind::Float64)
        );
        if !fits {
            return Err(format!(
                "kernel '{entry}' argument {i}: the kernel takes {:?}, a {a:?} was given",
                p.ty
            ));
        }
        if let (Some(why), ArgKind::Int64 | ArgKind::Uint64) = (&p.address_use, a) {
            return Err(format!(
                "kernel '{entry}' argument {i} ({}): a raw {a:?} was given, but the kernel may use this parameter as a memory address ({why}), so it takes a buffer handle",
                p.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
