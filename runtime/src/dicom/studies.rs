//! Study assembly (Orthanc's "stable study"): instances of a route that assembles by study
//! gather in one directory per study, from any number of associations, and the study becomes
//! a payload once no instance of it has arrived for the route's quiet period.

use super::store::Storage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Buffer {
    dir: PathBuf,
    last: Instant,
    quiet: Duration,
    calling: String,
    instances: usize,
}

/// Studies being gathered, by (called AE title, Study Instance UID).
pub struct StudyBuffers {
    storage: Storage,
    open: Mutex<HashMap<(String, String), Buffer>>,
}

/// A study that went quiet: its route, where it lies (still in `incoming/`), who sent it.
pub struct QuietStudy {
    pub ae_title: String,
    /// Its Study Instance UID.
    pub study: String,
    pub instances: usize,
    pub dir: PathBuf,
    pub calling: String,
}

impl StudyBuffers {
    pub fn new(storage: Storage) -> StudyBuffers {
        StudyBuffers {
            storage,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Moves the instances of one released association into their studies' buffers and
    /// restarts those studies' quiet periods. Returns how many were added (duplicates of
    /// instances already gathered are dropped).
    pub fn add(
        &self,
        ae_title: &str,
        quiet: Duration,
        association_dir: &Path,
        calling: &str,
    ) -> std::io::Result<usize> {
        let mut added = 0;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for entry in std::fs::read_dir(association_dir)? {
            let file = entry?.path();
            let study = study_of(&file).unwrap_or_else(|| "unknown-study".into());
            let key = (ae_title.to_string(), study.clone());
            let buffer = match open.get_mut(&key) {
                Some(b) => b,
                None => {
                    let name = format!(
                        "study-{}",
                        crate::jobs::new_job_id().trim_start_matches("job-")
                    );
                    let dir = self.storage.root.join("incoming").join(name);
                    std::fs::create_dir_all(&dir)?;
                    open.entry(key).or_insert(Buffer {
                        dir,
                        last: Instant::now(),
                        quiet,
                        calling: calling.to_string(),
                        instances: 0,
                    })
                }
            };
            buffer.last = Instant::now();
            let target = buffer.dir.join(file.file_name().unwrap_or_default());
            if target.exists() {
                std::fs::remove_file(&file)?;
            } else {
                std::fs::rename(&file, &target)?;
                buffer.instances += 1;
                added += 1;
            }
        }
        std::fs::remove_dir_all(association_dir)?;
        Ok(added)
    }

    /// Takes the studies whose quiet period has passed.
    pub fn take_quiet(&self) -> Vec<QuietStudy> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let due: Vec<(String, String)> = open
            .iter()
            .filter(|(_, b)| now.duration_since(b.last) >= b.quiet)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| {
                open.remove(&k).map(|b| QuietStudy {
                    ae_title: k.0,
                    study: k.1,
                    instances: b.instances,
                    dir: b.dir,
                    calling: b.calling,
                })
            })
            .collect()
    }
}

fn study_of(file: &Path) -> Option<String> {
    let uid = super::instance::inspect_instance(file).ok()?.study_instance;
    (!uid.is_empty()).then_some(uid)
}

/// Moves a gathered study from `incoming/` into `payloads/` in one rename.
pub fn complete_study(storage: &Storage, dir: &Path) -> std::io::Result<PathBuf> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = storage.payloads().join(name);
    std::fs::rename(dir, &target)?;
    std::fs::File::open(storage.payloads())?.sync_all()?;
    Ok(target)
}
