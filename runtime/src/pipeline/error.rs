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
    #[error("{}", display_problems(.0))]
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

fn display_problems(problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    out
}
