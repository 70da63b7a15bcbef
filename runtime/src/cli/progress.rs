//! Progress bars for a running job: one per stage, fed by the stages' `progress` calls.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use ward::jobs::{JobObserver, StageRecord, StageStatus};

pub struct StageBars {
    bars: HashMap<String, ProgressBar>,
    _multi: MultiProgress,
}

impl StageBars {
    pub fn new(stages: &[String], visible: bool) -> StageBars {
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let width = stages.iter().map(String::len).max().unwrap_or(8);
        let style = ProgressStyle::with_template(&format!(
            "{{prefix:>{width}}} [{{bar:30}}] {{percent:>3}}% {{elapsed:>4}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> ");
        let bars = stages
            .iter()
            .map(|name| {
                let bar = multi.add(ProgressBar::new(1000));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar.set_message("compiling components (cached after the first run)");
                (name.clone(), bar)
            })
            .collect();
        StageBars {
            bars,
            _multi: multi,
        }
    }
}

impl JobObserver for StageBars {
    fn components_ready(&self) {
        for bar in self.bars.values() {
            bar.set_message("pending");
        }
    }

    fn stage_started(&self, stage: &str) {
        if let Some(bar) = self.bars.get(stage) {
            bar.reset_elapsed();
            bar.set_message("running");
        }
    }

    fn stage_progress(&self, stage: &str, fraction: f32, message: &str) {
        if let Some(bar) = self.bars.get(stage) {
            bar.set_position((fraction * 1000.0) as u64);
            // The stage chose this text: nothing in it may drive the terminal.
            bar.set_message(super::printable(message));
        }
    }

    fn stage_finished(&self, record: &StageRecord) {
        if let Some(bar) = self.bars.get(&record.name) {
            match record.status {
                StageStatus::Succeeded => {
                    bar.set_position(1000);
                    bar.finish_with_message("succeeded");
                }
                StageStatus::Failed => bar.abandon_with_message("FAILED"),
                _ => bar.abandon_with_message("skipped"),
            }
        }
    }
}

/// A bar for bytes moving to or from a registry, drawn on a terminal only.
pub fn transfer_bar(what: &str, wanted: bool) -> ProgressBar {
    use std::io::IsTerminal as _;
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if wanted && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}
