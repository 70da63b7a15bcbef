//! A stage's log: the lines it writes with `context.log`, and its stdout and stderr, in one
//! file of the job record, under a byte budget so a flooding stage cannot fill the disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// The longest single message kept; longer ones are cut and marked.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// How much of stderr is kept in memory to explain a trap (a panic message is printed there).
const STDERR_TAIL_BYTES: usize = 4 * 1024;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stdout,
    Stderr,
}

pub struct StageLog {
    inner: Mutex<Inner>,
    path: PathBuf,
    started: Instant,
    budget: u64,
}

struct Inner {
    /// Created at the first line, or after the stage's outcome is reported if it wrote
    /// nothing: creating a file is a large part of what a trivial stage costs, and it should
    /// not delay the stages downstream.
    file: Option<BufWriter<File>>,
    written: u64,
    dropped_bytes: u64,
    stdout_partial: Vec<u8>,
    stderr_partial: Vec<u8>,
    stderr_tail: String,
}

impl StageLog {
    /// A log that will be written to `path` (replacing any file there), keeping at most
    /// `budget` bytes. The file is created when the first line is written.
    pub fn create(path: &Path, budget: u64) -> std::io::Result<StageLog> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        Ok(StageLog {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file: None,
                written: 0,
                dropped_bytes: 0,
                stdout_partial: Vec::new(),
                stderr_partial: Vec::new(),
                stderr_tail: String::new(),
            }),
            started: Instant::now(),
            budget,
        })
    }

    /// Writes one line with a level tag ("INFO", "OUT", ...).
    pub fn line(&self, tag: &str, message: &str) {
        let mut inner = self.lock();
        self.write_line(&mut inner, tag, message);
    }

    /// Takes raw bytes a stage wrote to stdout or stderr; complete lines go to the log.
    pub fn stream(&self, source: Source, bytes: &[u8]) {
        let mut inner = self.lock();
        if source == Source::Stderr {
            let text = String::from_utf8_lossy(bytes);
            inner.stderr_tail.push_str(&text);
            if inner.stderr_tail.len() > STDERR_TAIL_BYTES {
                let mut cut = inner.stderr_tail.len() - STDERR_TAIL_BYTES;
                while !inner.stderr_tail.is_char_boundary(cut) {
                    cut += 1;
                }
                inner.stderr_tail.drain(..cut);
            }
        }
        let (tag, mut partial) = match source {
            Source::Stdout => ("OUT", std::mem::take(&mut inner.stdout_partial)),
            Source::Stderr => ("ERR", std::mem::take(&mut inner.stderr_partial)),
        };
        partial.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = partial[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&partial[start..start + pos]).into_owned();
            self.write_line(&mut inner, tag, &line);
            start += pos + 1;
        }
        partial.drain(..start);
        // A stage that never writes a newline still gets its output logged, in pieces.
        if partial.len() > MAX_MESSAGE_BYTES {
            let line = String::from_utf8_lossy(&partial).into_owned();
            self.write_line(&mut inner, tag, &line);
            partial.clear();
        }
        match source {
            Source::Stdout => inner.stdout_partial = partial,
            Source::Stderr => inner.stderr_partial = partial,
        }
    }

    /// The last few KiB the stage wrote to stderr, e.g. its panic message.
    pub fn stderr_tail(&self) -> String {
        self.lock().stderr_tail.trim().to_string()
    }

    /// Writes what is left of partial lines and the truncation note, and flushes.
    pub fn finish(&self) {
        let mut inner = self.lock();
        for (tag, partial) in [
            ("OUT", std::mem::take(&mut inner.stdout_partial)),
            ("ERR", std::mem::take(&mut inner.stderr_partial)),
        ] {
            if !partial.is_empty() {
                let line = String::from_utf8_lossy(&partial).into_owned();
                self.write_line(&mut inner, tag, &line);
            }
        }
        if inner.dropped_bytes > 0 {
            let note = format!(
                "{:>10.3} WARN  log budget of {} bytes spent: {} further bytes were dropped\n",
                self.started.elapsed().as_secs_f64(),
                self.budget,
                inner.dropped_bytes
            );
            self.write_raw(&mut inner, note.as_bytes());
        }
        if let Some(file) = inner.file.as_mut() {
            let _ = file.flush();
        }
    }

    /// Creates the (empty) file if the stage wrote nothing, so every stage has a log.
    pub fn ensure_file(&self) {
        let mut inner = self.lock();
        self.write_raw(&mut inner, b"");
        if let Some(file) = inner.file.as_mut() {
            let _ = file.flush();
        }
    }

    /// Bytes dropped because the budget was spent.
    pub fn dropped_bytes(&self) -> u64 {
        self.lock().dropped_bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-write; the log is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_line(&self, inner: &mut Inner, tag: &str, message: &str) {
        let message = truncate(message, MAX_MESSAGE_BYTES);
        let line = format!(
            "{:>10.3} {:<5} {}\n",
            self.started.elapsed().as_secs_f64(),
            tag,
            message
        );
        if inner.written + line.len() as u64 > self.budget {
            inner.dropped_bytes += line.len() as u64;
            return;
        }
        inner.written += line.len() as u64;
        self.write_raw(inner, line.as_bytes());
    }

    fn write_raw(&self, inner: &mut Inner, bytes: &[u8]) {
        if inner.file.is_none() {
            match File::create(&self.path) {
                Ok(f) => inner.file = Some(BufWriter::new(f)),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot create the stage log");
                    return;
                }
            }
        }
        if let Some(file) = inner.file.as_mut() {
            let _ = file.write_all(bytes);
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..cut], text.len() - cut).into()
}
