//! Which kernel parameters may end up as memory addresses. A stage must not hand a kernel
//! a device address of its own making (a wrong one poisons the CUDA context every stage
//! shares), so a 64-bit parameter that may be dereferenced takes a buffer handle only.
//!
//! The rule is conservative: a parameter is an address unless its value provably never
//! reaches one. Values are followed through registers, whatever the order of the code
//! (loops included), across the instructions that only compute (`mov`, `add`, `mad`, `cvt`,
//! `selp`, `setp`, ...). A parameter is an address when a register holding anything of it
//! is, or is inside, the address operand `[...]` of any instruction, the operand of
//! `cvta`/`isspacep`, or is used by any other instruction (stored, passed to a call, an
//! atomic's data): what is not followed counts as an address. A parameter whose own address
//! is taken (`mov.u64 %rd1, k_param_0`), or a `ld.param` that does not read one parameter
//! whole, makes every parameter an address, since which one is read cannot be told.
//!
//! Not followed: flows through control (a branch on a parameter's bits). Those, like an
//! address built from constants, are the kernel's own code: the check is about what a
//! stage passes, not a verifier of what the kernel does.

use super::lex::{identifiers, split_top_level, strip_labels, Item};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Opcodes (before the first `.`) whose first operand is written from the others and that
/// touch no memory.
const COMPUTE: &[&str] = &[
    "mov", "add", "sub", "mul", "mad", "mul24", "mad24", "sad", "div", "rem", "abs", "neg", "min",
    "max", "popc", "clz", "bfind", "fns", "brev", "bfe", "bfi", "and", "or", "xor", "not", "cnot",
    "lop3", "shf", "shl", "shr", "prmt", "cvt", "selp", "slct", "setp", "set", "testp", "copysign",
    "fma", "rcp", "sqrt", "rsqrt", "sin", "cos", "lg2", "ex2", "tanh", "dp4a", "dp2a", "addc",
    "subc", "madc", "szext", "bmsk",
];

/// Opcodes that take no register a parameter could be in, or only read a predicate.
const CONTROL: &[&str] = &["bra", "ret", "exit", "bar", "barrier", "membar", "fence"];

/// After this many passes without settling, every parameter counts as an address.
const MAX_PASSES: usize = 256;

/// One instruction of the body.
struct Instruction<'a> {
    text: &'a str,
    opcode: &'a str,
    operands: Vec<&'a str>,
    /// Every `[...]` in it, wherever it stands: the memory it addresses.
    addresses: Vec<&'a str>,
}

/// The `[...]` parts of `text` (an unclosed one runs to the end).
fn bracketed(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let close = after.find(']').unwrap_or(after.len());
        out.push(&after[..close]);
        rest = &after[close.min(after.len())..];
    }
    out
}

fn instructions(body: &[Item]) -> (Vec<Instruction<'_>>, HashSet<&str>) {
    let mut out = Vec::new();
    let mut local_params = HashSet::new();
    for item in body {
        let Item::Statement(text) = item else {
            continue;
        };
        let text = strip_labels(text);
        if text.is_empty() {
            continue;
        }
        if text.starts_with('.') {
            // A declaration; `.param` ones inside the body are a call's arguments and
            // results, not the kernel's parameters.
            if text.starts_with(".param") {
                if let Some(name) = text.split_whitespace().last() {
                    local_params.insert(name.split('[').next().unwrap_or(name));
                }
            }
            continue;
        }
        // A guard (`@%p1`, `@!%p1`) only chooses whether the instruction runs.
        let unguarded = match text.strip_prefix('@') {
            Some(rest) => rest.split_once(char::is_whitespace).map_or("", |(_, r)| r),
            None => text,
        }
        .trim_start();
        // The opcode is its letters, digits, `_` and `.`, whether or not a space follows.
        let end = unguarded
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(unguarded.len());
        let (opcode, rest) = unguarded.split_at(end);
        out.push(Instruction {
            text,
            opcode,
            operands: split_top_level(rest),
            addresses: bracketed(rest),
        });
    }
    (out, local_params)
}

/// For each parameter in `names`, why the kernel `body` may use it as an address, or none.
pub fn address_uses(body: &[Item], names: &[&str]) -> Vec<Option<String>> {
    let (code, local_params) = instructions(body);
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let quote = |i: &Instruction<'_>| {
        let one_line: String = i.text.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("`{one_line}`")
    };
    let everything = |why: String| vec![Some(why); names.len()];

    // Registers and the parameters whose values they may hold.
    let mut holds: HashMap<&str, BTreeSet<usize>> = HashMap::new();
    for i in &code {
        if i.opcode.starts_with("ld.param") {
            let address = i.operands.get(1).copied().unwrap_or("");
            let inner = address
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .map(|a| a.trim());
            let whole = inner.map(|a| a.strip_suffix("+0").unwrap_or(a).trim());
            match whole {
                Some(name) if index.contains_key(name) => {
                    for r in identifiers(i.operands[0]) {
                        holds.entry(r).or_default().insert(index[name]);
                    }
                }
                Some(name) if local_params.contains(name) => {}
                _ => {
                    return everything(format!(
                        "{} reads the parameters in a way that cannot be followed",
                        quote(i)
                    ))
                }
            }
            continue;
        }
        for operand in &i.operands {
            if let Some(name) = identifiers(operand)
                .into_iter()
                .find(|id| index.contains_key(id))
            {
                return everything(format!(
                    "{} takes the address of parameter {name}, so which parameters are read cannot be told",
                    quote(i)
                ));
            }
        }
    }

    // Values flow through computing instructions until nothing changes.
    let base = |opcode: &str| opcode.split('.').next().unwrap_or(opcode).to_string();
    let mut settled = false;
    for _ in 0..MAX_PASSES {
        let mut changed = false;
        for i in &code {
            if !COMPUTE.contains(&base(i.opcode).as_str()) || i.operands.is_empty() {
                continue;
            }
            let mut from = BTreeSet::new();
            for operand in &i.operands[1..] {
                for r in identifiers(operand) {
                    if let Some(set) = holds.get(r) {
                        from.extend(set.iter().copied());
                    }
                }
            }
            if from.is_empty() {
                continue;
            }
            for r in identifiers(i.operands[0]) {
                let set = holds.entry(r).or_default();
                let before = set.len();
                set.extend(from.iter().copied());
                changed |= set.len() != before;
            }
        }
        if !changed {
            settled = true;
            break;
        }
    }
    if !settled {
        return everything(format!(
            "the kernel's registers did not settle in {MAX_PASSES} passes"
        ));
    }

    // Where the values end up.
    let mut why: Vec<Option<String>> = vec![None; names.len()];
    let mut mark = |set: &BTreeSet<usize>, reason: &dyn Fn() -> String| {
        for &p in set {
            if why[p].is_none() {
                why[p] = Some(reason());
            }
        }
    };
    let held = |text: &str| -> BTreeSet<usize> {
        identifiers(text)
            .into_iter()
            .filter_map(|r| holds.get(r))
            .flat_map(|s| s.iter().copied())
            .collect()
    };
    for i in &code {
        let opcode = base(i.opcode);
        for address in &i.addresses {
            mark(&held(address), &|| {
                format!("it reaches the address of {}", quote(i))
            });
        }
        if i.opcode.starts_with("ld.param") {
            continue;
        }
        let sources = i.operands.iter().skip(match opcode.as_str() {
            // What a load writes comes from memory, not from the parameters.
            "ld" | "ldu" => 1,
            _ => 0,
        });
        let used: BTreeSet<usize> = sources.flat_map(|o| held(o)).collect();
        if used.is_empty() || COMPUTE.contains(&opcode.as_str()) {
            continue;
        }
        match opcode.as_str() {
            "cvta" | "isspacep" => mark(&used, &|| {
                format!("it is converted as an address by {}", quote(i))
            }),
            "ld" | "ldu" => {}
            op if CONTROL.contains(&op) => {}
            _ => mark(&used, &|| {
                format!("it is used by {}, which is not followed", quote(i))
            }),
        }
    }
    why
}
