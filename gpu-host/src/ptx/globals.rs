//! The device memory a module takes when it is loaded: its `.global` and `.const`
//! variables, read from the PTX before it reaches the driver, so they count against the
//! stage's `gpu-memory` like its buffers. Each variable is placed at its alignment (its
//! `.align`, at least its element's size), as a loader lays them out. A declaration that
//! cannot be read refuses the module: what cannot be counted is not loaded.

use super::lex::{items, refuse_preprocessor, split_top_level, strip_labels, Item};

/// Bytes of device memory a module declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModuleMemory {
    /// `.global` variables.
    pub global: u64,
    /// `.const` variables.
    pub constant: u64,
}

impl ModuleMemory {
    pub fn total(&self) -> u64 {
        self.global.saturating_add(self.constant)
    }
}

/// Size in bytes of a PTX fundamental type, or of an opaque handle.
fn type_size(ty: &str) -> Option<u64> {
    Some(match ty {
        ".b8" | ".u8" | ".s8" => 1,
        ".b16" | ".u16" | ".s16" | ".f16" | ".bf16" => 2,
        ".b32" | ".u32" | ".s32" | ".f32" | ".f16x2" | ".bf16x2" | ".tf32" => 4,
        ".b64" | ".u64" | ".s64" | ".f64" => 8,
        ".b128" => 16,
        ".texref" | ".samplerref" | ".surfref" => 8,
        _ => return None,
    })
}

fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_suffix('U').unwrap_or(t);
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The number of elements at the outer level of an initializer `{a, b, {c}}`.
fn initializer_len(init: &str) -> u64 {
    let inner = init.trim();
    let inner = inner
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(inner);
    split_top_level(inner).len() as u64
}

/// The bytes of one declarator (`name`, `name[4][8]`, `name[] = {..}`) of `element` bytes.
fn declarator_size(decl: &str, element: u64) -> Result<u64, String> {
    let (lhs, init) = match decl.split_once('=') {
        Some((l, i)) => (l.trim(), Some(i.trim())),
        None => (decl.trim(), None),
    };
    let name_end = lhs.find('[').unwrap_or(lhs.len());
    let name = lhs[..name_end].trim();
    let mut dims = &lhs[name_end..];
    let mut count: u64 = 1;
    let mut first = true;
    while !dims.trim().is_empty() {
        let d = dims.trim_start();
        let close = d
            .find(']')
            .filter(|_| d.starts_with('['))
            .ok_or_else(|| format!("cannot read the dimensions of '{lhs}'"))?;
        let inside = d[1..close].trim();
        let n = if inside.is_empty() && first {
            // `[]`: as many as the initializer gives (none for an `.extern`, defined elsewhere).
            init.map_or(0, initializer_len)
        } else {
            number(inside)
                .ok_or_else(|| format!("cannot read the dimension [{inside}] of '{name}'"))?
        };
        count = count
            .checked_mul(n)
            .ok_or_else(|| format!("'{name}' is larger than can be counted"))?;
        dims = &d[close + 1..];
        first = false;
    }
    count
        .checked_mul(element)
        .ok_or_else(|| format!("'{name}' is larger than can be counted"))
}

/// The `.global` and `.const` memory `ptx` declares, or why it cannot be counted.
pub fn module_memory(ptx: &str) -> Result<ModuleMemory, String> {
    refuse_preprocessor(ptx)?;
    let mut memory = ModuleMemory::default();
    // Module scope is where these live; one inside a body would be counted all the same.
    for item in items(ptx) {
        let Item::Statement(text) = &item else {
            continue;
        };
        let text = strip_labels(text);
        let mut words: Vec<&str> = text.split_whitespace().collect();
        let Some(start) = words
            .iter()
            .position(|w| !matches!(*w, ".visible" | ".extern" | ".weak" | ".common"))
        else {
            continue;
        };
        let space = match words[start] {
            ".global" => &mut memory.global,
            w if w == ".const" || w.starts_with(".const[") => &mut memory.constant,
            _ => continue,
        };
        let mut align = 1u64;
        let mut vector = 1u64;
        let mut element = None;
        let mut rest_at = None;
        let mut i = start + 1;
        while i < words.len() {
            let w = words[i];
            if w == ".align" {
                align = words
                    .get(i + 1)
                    .and_then(|n| number(n))
                    .filter(|a| a.is_power_of_two())
                    .ok_or_else(|| format!("cannot read the alignment in '{text}'"))?;
                i += 2;
                continue;
            }
            if let Some(v) = w.strip_prefix(".v").and_then(number) {
                vector = v;
            } else if let Some(size) = type_size(w) {
                element = Some(size);
                rest_at = Some(i + 1);
                break;
            } else if w.starts_with(".attribute") || w == ".ptr" {
                // Attributes do not change the size.
            } else {
                return Err(format!("cannot read the type of '{text}'"));
            }
            i += 1;
        }
        let (Some(element), Some(rest_at)) = (element, rest_at) else {
            return Err(format!("cannot read the type of '{text}'"));
        };
        let element = element
            .checked_mul(vector)
            .ok_or_else(|| format!("cannot count '{text}'"))?;
        let align = align.max(element.next_power_of_two());
        let declarators = words.split_off(rest_at).join(" ");
        for decl in split_top_level(&declarators) {
            let size = declarator_size(decl, element)?;
            let placed = space
                .checked_next_multiple_of(align)
                .and_then(|at| at.checked_add(size))
                .ok_or_else(|| format!("'{decl}' is larger than can be counted"))?;
            *space = placed;
        }
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_and_constants_are_counted_with_their_alignment() {
        let ptx = "
.version 8.8
.target sm_80
.address_size 64
.global .align 4 .b8 table[1000];
.visible .global .align 8 .u64 counter;
.const .align 4 .f32 weights[27] = {1.0, 2.0, 1.0};
.global .v4 .f32 points[16], origin;
.extern .global .b8 elsewhere[];
.global .u32 primes[] = {2, 3, 5, 7};
.shared .align 4 .b8 tile[4096];
.visible .entry k(.param .u64 a)
{
	.local .align 8 .b8 __local_depot0[64];
	ld.global.u32 %r1, [table];
	ret;
}
";
        let m = module_memory(ptx).unwrap();
        // table 1000, counter at 1000 (8-aligned) + 8 = 1008, points at 1008 + 256 = 1264,
        // origin 1264 + 16 = 1280, elsewhere 0, primes 4 × 4 = 1296.
        assert_eq!(m.global, 1296);
        assert_eq!(m.constant, 108);
        assert_eq!(m.total(), 1404);
    }

    #[test]
    fn a_module_without_globals_takes_nothing_and_huge_or_unreadable_ones_are_refused() {
        assert_eq!(
            module_memory(".visible .entry k()\n{\n ret;\n}").unwrap(),
            ModuleMemory::default()
        );
        let huge = module_memory(".global .b8 big[4294967296][4294967296][16];").unwrap_err();
        assert!(
            huge.contains("'big' is larger than can be counted"),
            "{huge}"
        );
        let odd = module_memory(".global .b8 x[N];").unwrap_err();
        assert!(odd.contains("dimension [N] of 'x'"), "{odd}");
        let big = module_memory(".global .align 16 .b8 pool[1073741824];").unwrap();
        assert_eq!(big.global, 1 << 30);
    }
}
