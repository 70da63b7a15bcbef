//! Errors in a pipeline file, each with file:line:col and the operator it concerns.

use super::model::Location;
use std::fmt;
use std::path::PathBuf;

/// One problem found in a pipeline file.
#[derive(Debug, Clone)]
pub struct Problem {
    pub location: Location,
    /// The operator the problem is in, when it is in one.
    pub operator: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.operator {
            Some(op) => write!(f, "{}: operator '{}': {}", self.location, op, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{}: cannot read the pipeline file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, in file order; validation does not stop at the first.
    #[error("{}", one_per_line(.0))]
    Invalid(Vec<Problem>),
}

impl PipelineError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            PipelineError::Invalid(p) => p,
            PipelineError::Read { .. } => &[],
        }
    }
}

/// Problems as Ward prints them: one `FILE:LINE:COL: message` line each. Shared by every
/// file Ward reads (pipelines, the adapter's and the service's configuration).
pub fn one_per_line(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
