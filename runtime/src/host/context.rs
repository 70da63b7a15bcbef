//! `ward:stage/context`: who the stage is, its parameters, its log and its progress.

use super::bindings::context::{Host, JobInfo, Level};
use super::stage_log::truncate;
use super::StageState;

/// Progress messages are short phrases shown beside a bar.
const MAX_PROGRESS_MESSAGE: usize = 256;

impl Host for StageState {
    fn info(&mut self) -> JobInfo {
        self.info.clone()
    }

    fn parameters(&mut self) -> Vec<(String, String)> {
        self.parameters.clone()
    }

    fn parameter(&mut self, name: String) -> Option<String> {
        self.parameters
            .binary_search_by(|(k, _)| k.as_str().cmp(&name))
            .ok()
            .map(|i| self.parameters[i].1.clone())
    }

    fn log(&mut self, level: Level, message: String) {
        let tag = match level {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        self.log.line(tag, &message);
    }

    fn progress(&mut self, fraction: f32, message: String) {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        (self.progress)(fraction, &truncate(&message, MAX_PROGRESS_MESSAGE));
    }
}

impl super::bindings::types::Host for StageState {}
