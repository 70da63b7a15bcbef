//! The conformance report: each check with its verdict, for people and as JSON.

use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub component: PathBuf,
    pub digest: Option<String>,
    pub passed: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figures: Option<RunFigures>,
}

/// What one run took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunFigures {
    pub seconds: f64,
    pub memory_peak_bytes: u64,
}

impl Report {
    pub fn new(component: &Path) -> Report {
        Report {
            component: component.to_path_buf(),
            digest: None,
            passed: true,
            checks: Vec::new(),
        }
    }

    pub fn push(&mut self, check: Check) {
        self.passed &= check.passed;
        self.checks.push(check);
    }

    /// The report as lines a person reads.
    pub fn to_text(&self) -> String {
        let mut out = format!("ward conformance: {}", self.component.display());
        if let Some(d) = &self.digest {
            out.push_str(&format!(" ({d})"));
        }
        out.push('\n');
        for c in &self.checks {
            out.push_str(&format!(
                "  {}  {:<30} {}\n",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        if failed == 0 {
            out.push_str(&format!("verdict: PASS ({} checks)\n", self.checks.len()));
        } else {
            out.push_str(&format!(
                "verdict: FAIL ({failed} of {} checks failed)\n",
                self.checks.len()
            ));
        }
        out
    }
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: String) -> Check {
        Check {
            name: name.into(),
            passed: true,
            detail,
            figures: None,
        }
    }

    pub fn fail(name: impl Into<String>, detail: String) -> Check {
        Check {
            name: name.into(),
            passed: false,
            detail,
            figures: None,
        }
    }

    pub fn with_figures(mut self, figures: RunFigures) -> Check {
        self.figures = Some(figures);
        self
    }
}
