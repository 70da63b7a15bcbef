//! PTX text as a flat list of statements and braces, which the parameter and module-memory
//! checks walk. Comments are dropped; a statement ends at `;`, and a function header or a
//! label-less scope ends at the `{` that opens its body. Braces after `=` belong to an
//! initializer and stay inside their statement.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A statement or directive without its `;`, trimmed; a function header is one too.
    Statement(String),
    /// `{`: a function body or a nested scope begins.
    Open,
    /// `}`: it ends.
    Close,
}

/// Refuses PTX with a preprocessor directive (`#define`, `#include`, ...) outside comments
/// and strings: the loader would read other text than the checks here do. NVRTC never
/// writes one.
pub fn refuse_preprocessor(ptx: &str) -> Result<(), String> {
    let mut line = 1;
    let mut chars = ptx.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if c == '"' {
                        break;
                    }
                }
            }
            '#' => {
                return Err(format!(
                    "line {line}: preprocessor directives are not loaded (Ward checks the PTX as it is written)"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The statements and braces of `ptx`, in order.
pub fn items(ptx: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut initializer_depth: Option<u32> = None;
    let mut vector_depth = 0u32;
    let mut chars = ptx.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                end_line(&mut cur, &mut out);
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                cur.push(' ');
            }
            '"' => {
                // A string (a `.file` name) is kept whole: nothing inside it splits.
                cur.push('"');
                for c in chars.by_ref() {
                    cur.push(c);
                    if c == '"' {
                        break;
                    }
                }
            }
            '=' => {
                initializer_depth = Some(0);
                cur.push('=');
            }
            '{' => match &mut initializer_depth {
                Some(depth) => {
                    *depth += 1;
                    cur.push('{');
                }
                None if vector_depth > 0 || starts_vector_operand(&cur) => {
                    vector_depth += 1;
                    cur.push('{');
                }
                None => {
                    flush(&mut cur, &mut out);
                    out.push(Item::Open);
                }
            },
            '}' => match &mut initializer_depth {
                Some(depth) if *depth > 0 => {
                    *depth -= 1;
                    cur.push('}');
                }
                _ if vector_depth > 0 => {
                    vector_depth -= 1;
                    cur.push('}');
                }
                _ => {
                    flush(&mut cur, &mut out);
                    out.push(Item::Close);
                }
            },
            ';' => {
                flush(&mut cur, &mut out);
                initializer_depth = None;
                vector_depth = 0;
            }
            '\n' => end_line(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

fn flush(cur: &mut String, out: &mut Vec<Item>) {
    let text = cur.trim();
    if !text.is_empty() {
        out.push(Item::Statement(text.to_string()));
    }
    cur.clear();
}

/// A line ends: so do the directives that are written without a `;`.
fn end_line(cur: &mut String, out: &mut Vec<Item>) {
    if LINE_DIRECTIVES
        .iter()
        .any(|d| starts_with_word(cur.trim_start(), d))
    {
        flush(cur, out);
    } else {
        cur.push('\n');
    }
}

/// Directives written one a line, with no `;`.
const LINE_DIRECTIVES: &[&str] = &[".version", ".target", ".address_size", ".file", ".loc"];

fn starts_with_word(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// Whether a `{` here opens a vector operand (`mov.b64 {%r1, %r2}, %rd1`, `ld.v2.u32 {..}`)
/// rather than a scope: inside an instruction, after its opcode.
fn starts_vector_operand(cur: &str) -> bool {
    let text = strip_labels(cur.trim());
    let text = text.strip_prefix('@').map_or(text, |rest| {
        rest.split_once(char::is_whitespace).map_or("", |(_, r)| r)
    });
    let text = text.trim_start();
    // An instruction's opcode starts with a letter; directives start with '.'.
    text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// `text` without the labels (`$L__BB0_3:`) in front of it.
pub fn strip_labels(mut text: &str) -> &str {
    loop {
        let trimmed = text.trim_start();
        let end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '%'))
            .unwrap_or(trimmed.len());
        if end > 0 && trimmed[end..].starts_with(':') {
            text = &trimmed[end + 1..];
        } else {
            return trimmed;
        }
    }
}

/// The identifiers in `text` (registers, symbols, labels), each without a `.x`-style
/// suffix; numbers are not identifiers.
pub fn identifiers(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let is_start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b'$' || b == b'%';
    let is_part = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    while i < bytes.len() {
        let b = bytes[i];
        if is_start(b) {
            let start = i;
            i += 1;
            while i < bytes.len() && is_part(bytes[i]) {
                i += 1;
            }
            out.push(&text[start..i]);
            // A suffix (`%tid.x`, `%v.y`) belongs to the identifier before it.
            while i < bytes.len() && (bytes[i] == b'.' || is_part(bytes[i])) {
                i += 1;
            }
        } else if b.is_ascii_digit() {
            while i < bytes.len() && (is_part(bytes[i]) || bytes[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// `text` split at the commas that are outside brackets, braces and parentheses.
pub fn split_top_level(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() || !out.is_empty() {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_braces_comments_and_initializers() {
        let ptx = ".version 8.8\n.target sm_80 // the device\n.address_size 64\n// header\n.global .u32 t[2] = {1, 2}; /* c; */\n.entry k(.param .u64 a)\n{\n$L1:\n\tmov.b64 {%r1, %r2}, %rd1;\n\t{ ret; }\n}\n";
        assert_eq!(
            items(ptx),
            vec![
                Item::Statement(".version 8.8".into()),
                Item::Statement(".target sm_80".into()),
                Item::Statement(".address_size 64".into()),
                Item::Statement(".global .u32 t[2] = {1, 2}".into()),
                Item::Statement(".entry k(.param .u64 a)".into()),
                Item::Open,
                Item::Statement("$L1:\n\tmov.b64 {%r1, %r2}, %rd1".into()),
                Item::Open,
                Item::Statement("ret".into()),
                Item::Close,
                Item::Close,
            ]
        );
    }

    #[test]
    fn preprocessor_directives_are_refused_outside_comments_and_strings() {
        assert!(refuse_preprocessor("// #define\n.file 1 \"a#b.cu\"\n/* # */ ret;").is_ok());
        assert_eq!(
            refuse_preprocessor(".version 8.8\n#define P %rd1\n").unwrap_err(),
            "line 2: preprocessor directives are not loaded (Ward checks the PTX as it is written)"
        );
    }

    #[test]
    fn identifiers_labels_and_operands() {
        assert_eq!(
            identifiers("[%rd12+-8], %tid.x, 0f3F800000, k_param_0"),
            vec!["%rd12", "%tid", "k_param_0"]
        );
        assert_eq!(
            strip_labels("$L__BB0_3:\n\tcvt.u32.u64 %r7"),
            "cvt.u32.u64 %r7"
        );
        assert_eq!(
            split_top_level("%rd1, [%rd2+4], {%r1, %r2}"),
            vec!["%rd1", "[%rd2+4]", "{%r1, %r2}"]
        );
    }
}
