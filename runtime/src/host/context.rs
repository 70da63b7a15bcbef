//! `ward:stage/context`: who the stage is, its parameters, its log and its progress.

use super::bindings::context::{Host, JobInfo, Level};
use super::stage_log::truncate;
use super::StageState;
use crate::engine::CONTRACT_VERSION_TEXT;
use wasmtime::component::{Linker, WasmStr};
use wasmtime::StoreContextMut;

/// Progress messages are short phrases shown beside a bar.
const MAX_PROGRESS_MESSAGE: usize = 256;

fn level_tag(level: Level) -> &'static str {
    match level {
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    }
}

/// Replaces the generated `context.log` in `linker`: the message is read where it lies in
/// the stage's memory and cut there, so a stage handing over gigabytes makes the host copy
/// at most the log's message bound, not the whole message.
pub fn link_log_in_place(linker: &mut Linker<StageState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut context = linker.instance(&format!("ward:stage/context@{CONTRACT_VERSION_TEXT}"))?;
    context.func_wrap(
        "log",
        |store: StoreContextMut<'_, StageState>, (level, message): (Level, WasmStr)| {
            let log = store.data().log.clone();
            let text = message.to_str(&store)?;
            // `line` cuts it to MAX_MESSAGE_BYTES.
            log.line(level_tag(level), &text);
            Ok(())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

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

    // Linked in its place is `log_in_place` below, which never copies the message; this is
    // what the generated trait asks for.
    fn log(&mut self, level: Level, message: String) {
        self.log.line(level_tag(level), &message);
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
