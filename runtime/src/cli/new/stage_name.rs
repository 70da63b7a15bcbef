//! The name of a new stage. One name serves as the crate's name, the component's file name
//! (with `_` for `-`) and the pipeline's operator name, so it must be valid as all three:
//! lowercase because operator names are.

use thiserror::Error;

/// The longest name accepted: the pipeline loader's limit for operator names (63).
const MAX_LEN: usize = 63;

/// Names cargo or rustc refuse or that collide with what the crate depends on.
const RESERVED: &[&str] = &[
    // Rust's own crates.
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
    "test",
    // Cargo's artifact directories.
    "build",
    "deps",
    "examples",
    "incremental",
    // The dependency every stage has.
    "ward-stage-sdk",
    "ward_stage_sdk",
];

/// Rust's keywords, strict and reserved: a crate cannot be named after one.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StageNameError {
    #[error("the stage name is empty")]
    Empty,
    #[error("'{name}' is {len} characters long; a stage name has at most {MAX_LEN}")]
    TooLong { name: String, len: usize },
    #[error("'{name}' starts with '{first}'; a stage name starts with a lowercase letter (a-z)")]
    BadStart { name: String, first: char },
    #[error(
        "'{name}' has '{found}' at character {position}; a stage name has only lowercase \
         letters (a-z), digits, '-' and '_'"
    )]
    BadCharacter {
        name: String,
        found: char,
        position: usize,
    },
    #[error("'{name}' is a Rust keyword and cannot name a crate")]
    Keyword { name: String },
    #[error("'{name}' is reserved ({why}) and cannot name a stage crate")]
    Reserved { name: String, why: &'static str },
}

/// A checked stage name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageName(String);

impl StageName {
    pub fn parse(name: &str) -> Result<StageName, StageNameError> {
        let owned = || name.to_string();
        let first = name.chars().next().ok_or(StageNameError::Empty)?;
        let len = name.chars().count();
        if len > MAX_LEN {
            return Err(StageNameError::TooLong { name: owned(), len });
        }
        if !first.is_ascii_lowercase() {
            return Err(StageNameError::BadStart {
                name: owned(),
                first,
            });
        }
        if let Some((index, found)) = name.chars().enumerate().find(|(_, c)| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        }) {
            return Err(StageNameError::BadCharacter {
                name: owned(),
                found,
                position: index + 1,
            });
        }
        if KEYWORDS.contains(&name) {
            return Err(StageNameError::Keyword { name: owned() });
        }
        if RESERVED.contains(&name) {
            let why = if name.starts_with("ward") {
                "the SDK every stage depends on"
            } else if ["build", "deps", "examples", "incremental"].contains(&name) {
                "cargo's artifact directory"
            } else {
                "a crate of Rust's standard library"
            };
            return Err(StageNameError::Reserved { name: owned(), why });
        }
        Ok(StageName(name.to_string()))
    }

    /// The crate's (and operator's) name, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Rust name of the crate, which is also the component's file stem: cargo writes
    /// `hello-stage` as `hello_stage.wasm`.
    pub fn crate_ident(&self) -> String {
        self.0.replace('-', "_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_serve_as_crate_component_and_operator_are_accepted() {
        for name in ["hello", "hello-stage", "lung_nodules2", "a", "x-1_y"] {
            assert_eq!(StageName::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(
            StageName::parse("hello-stage").unwrap().crate_ident(),
            "hello_stage"
        );
    }

    #[test]
    fn bad_names_are_refused_saying_why() {
        assert_eq!(StageName::parse(""), Err(StageNameError::Empty));
        let message = |name: &str| StageName::parse(name).unwrap_err().to_string();
        assert_eq!(
            message("2stage"),
            "'2stage' starts with '2'; a stage name starts with a lowercase letter (a-z)"
        );
        assert!(message("-x").contains("starts with '-'"));
        assert_eq!(
            message("hello.stage"),
            "'hello.stage' has '.' at character 6; a stage name has only lowercase letters \
             (a-z), digits, '-' and '_'"
        );
        assert!(message("Hello").contains("starts with 'H'"));
        assert!(message("heLlo").contains("has 'L' at character 3"));
        assert!(message("hé").contains("has 'é' at character 2"));
        assert!(message("a b").contains("has ' ' at character 2"));
        assert_eq!(
            message("fn"),
            "'fn' is a Rust keyword and cannot name a crate"
        );
        assert!(message("std").contains("standard library"));
        assert!(message("ward-stage-sdk").contains("the SDK"));
        assert!(message("deps").contains("artifact directory"));
        let long = "a".repeat(64);
        assert!(message(&long).contains("64 characters long"));
        assert!(StageName::parse(&"a".repeat(63)).is_ok());
    }
}
