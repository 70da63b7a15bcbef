//! Logging and progress through the host (`context::log`, `context::progress`), so lines
//! land in the job record rather than in captured stdout.

use crate::context::{self, Level};

/// Writes one line to the stage's log.
pub fn log(level: Level, message: &str) {
    context::log(level, message);
}

/// Reports progress: `fraction` in [0, 1] and a short phrase.
pub fn progress(fraction: f32, message: &str) {
    context::progress(fraction, message);
}

#[macro_export]
macro_rules! log_trace {
    ($($arg:tt)*) => { $crate::log($crate::Level::Trace, &format!($($arg)*)) };
}
#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &format!($($arg)*)) };
}
#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*)) };
}
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*)) };
}
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &format!($($arg)*)) };
}
