//! Typed stage parameters. A bad value is the pipeline author's mistake, so it is
//! `InvalidInput` naming the parameter and the value.

use crate::context;
use crate::StageError;
use std::str::FromStr;

/// The parameter as a string, or None when not set.
pub fn param_opt(name: &str) -> Option<String> {
    context::parameter(name)
}

/// The parameter parsed as `T`, or `default` when not set.
///
/// `param::<f64>("lower", 200.0)` with `lower = abc` fails with
/// `InvalidInput("parameter 'lower' = 'abc' is not a number")`.
pub fn param<T: FromStr>(name: &str, default: T) -> Result<T, StageError> {
    match param_opt(name) {
        None => Ok(default),
        Some(text) => parse(name, &text),
    }
}

/// Parses a parameter value; the message says what kind of value was expected.
pub fn parse<T: FromStr>(name: &str, text: &str) -> Result<T, StageError> {
    text.trim().parse::<T>().map_err(|_| {
        let expected = kind_of::<T>();
        StageError::InvalidInput(format!("parameter '{name}' = '{text}' is not {expected}"))
    })
}

/// The parameter, which must be one of `choices`; `default` when not set.
pub fn param_choice(name: &str, choices: &[&str], default: &str) -> Result<String, StageError> {
    let value = param_opt(name).unwrap_or_else(|| default.to_string());
    let trimmed = value.trim();
    if choices.contains(&trimmed) {
        Ok(trimmed.to_string())
    } else {
        Err(StageError::InvalidInput(format!(
            "parameter '{name}' = '{value}' is not one of {}",
            choices.join(", ")
        )))
    }
}

fn kind_of<T>() -> &'static str {
    let t = std::any::type_name::<T>();
    match t {
        "f32" | "f64" => "a number",
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "bool" => "true or false",
        _ => "valid",
    }
}
