//! Reading a YAML file into its serde model with marked-yaml, so that a syntax error or a
//! value of the wrong shape is reported at the file:line:col where it was written. Shared
//! by pipeline files, Clara pipeline files, and the DICOM adapter's and the service's
//! configurations.

use super::error::Problem;
use super::model::Location;
use marked_yaml::LoaderOptions;
use std::path::Path;

/// Parses `text`, read from `path`, into `T` (duplicate keys refused). `top_level` names
/// what the top-level mapping holds, for the error when it is not a mapping.
pub(crate) fn from_located_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    top_level: &str,
) -> Result<T, Problem> {
    let at = |(line, column): (usize, usize)| Location {
        file: path.to_path_buf(),
        line,
        column,
    };
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| Problem {
        location: at(load_error_position(&e)),
        operator: None,
        message: format!("not valid YAML: {}", load_error_message(&e, top_level)),
    })?;
    marked_yaml::from_node(&node).map_err(|e| {
        let position = match e.start_mark() {
            Some(m) if (m.line(), m.column()) != (1, 1) => (m.line(), m.column()),
            // Some errors carry no useful span; an unknown key can still be found in the text.
            _ => unknown_key_position(&e, text).unwrap_or((1, 1)),
        };
        Problem {
            location: at(position),
            operator: None,
            message: format!("{e}"),
        }
    })
}

/// Where an unknown key is written: the first line whose key is that name.
fn unknown_key_position(e: &marked_yaml::FromNodeError, text: &str) -> Option<(usize, usize)> {
    let marked_yaml::Error::UnknownFieldError(field, _, _) = &**e else {
        return None;
    };
    text.lines().enumerate().find_map(|(i, line)| {
        let trimmed = line.trim_start_matches([' ', '-']);
        let column = line.len() - trimmed.len() + 1;
        trimmed
            .strip_prefix(field.as_str())?
            .trim_start()
            .starts_with(':')
            .then_some((i + 1, column))
    })
}

pub(crate) fn load_error_position(e: &marked_yaml::LoadError) -> (usize, usize) {
    use marked_yaml::LoadError::*;
    let mark = match e {
        TopLevelMustBeMapping(m)
        | TopLevelMustBeSequence(m)
        | UnexpectedAnchor(m)
        | MappingKeyMustBeScalar(m)
        | UnexpectedTag(m)
        | ScanError(m, _) => Some(*m),
        DuplicateKey(inner) => inner.key.span().start().copied(),
    };
    mark.map(|m| (m.line(), m.column())).unwrap_or((1, 1))
}

pub(crate) fn load_error_message(e: &marked_yaml::LoadError, top_level: &str) -> String {
    use marked_yaml::LoadError::*;
    match e {
        TopLevelMustBeMapping(_) => format!("the top level must be a mapping ({top_level})"),
        DuplicateKey(inner) => format!("key '{}' appears twice", inner.key.as_str()),
        ScanError(_, err) => err.to_string(),
        other => format!("{other}"),
    }
}
