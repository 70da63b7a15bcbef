//! The real `ward dicom listen` as a child process, its log captured to a file, and waiting
//! for what that log says: a positive signal that the listener has done something (closed an
//! association, declined a payload) before a test checks what it left behind.

use super::{wait_for_port, Killed};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `ward dicom listen --config CONFIG`, listening on `port`, logging at `level` to `log`.
pub fn listen(config: &Path, port: u16, level: &str, log: &Path) -> Killed {
    let child = ward()
        .args(["dicom", "listen", "--config", config.to_str().unwrap()])
        .env("WARD_LOG", level)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(port);
    Killed(child)
}

/// The log at `path`, without terminal colours.
pub fn plain_log(path: &Path) -> String {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            text.push(c);
        }
    }
    text
}

/// Waits until the log at `path` has a line holding every one of `needles`; that line.
pub fn wait_for_log(path: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = plain_log(path);
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `ward dicom listen` on a configuration of its own in a temporary directory.
pub struct Listening {
    pub child: Option<Killed>,
    pub port: u16,
    pub config: PathBuf,
    pub storage: PathBuf,
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Listening {
    /// Writes the configuration `config_text(storage, port)` and starts the listener.
    pub fn start(config_text: impl FnOnce(&Path, u16) -> String) -> Listening {
        let dir = tempdir();
        let port = super::free_port();
        let storage = dir.path().join("storage");
        let config = dir.path().join("dicom.yaml");
        std::fs::write(&config, config_text(&storage, port)).unwrap();
        let log = dir.path().join("listen.log");
        let child = listen(&config, port, "info", &log);
        Listening {
            child: Some(child),
            port,
            config,
            storage,
            log,
            dir,
        }
    }

    /// Kills the listener (SIGKILL).
    pub fn kill(&mut self) {
        drop(self.child.take());
    }

    /// Starts another listener on the same configuration and storage, logging to
    /// `listen-<n>.log`.
    pub fn start_again(&mut self, n: usize) {
        self.log = self.dir.path().join(format!("listen-{n}.log"));
        self.child = Some(listen(&self.config, self.port, "info", &self.log));
    }

    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        wait_for_log(&self.log, needles)
    }

    pub fn payloads(&self) -> Vec<PathBuf> {
        entries(&self.storage.join("payloads"))
    }

    pub fn jobs(&self) -> Vec<PathBuf> {
        entries(&self.storage.join("jobs"))
    }

    pub fn queued(&self) -> Vec<PathBuf> {
        entries(&self.storage.join("queue"))
    }
}

/// What is in `dir`, sorted; nothing when it does not exist.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    all.sort();
    all
}
