//! The standalone adapter's job queue, kept on disk so a restart resumes it. Each job to run
//! (a payload and one of its route's pipelines) is a small JSON file in `queue/` under the
//! adapter's storage, written atomically before the job is announced and removed only once
//! the job has finished and its exports are recorded. After a restart every file still there
//! is queued again, in the order the jobs were first queued; whether its job already
//! finished is for the runner to tell from the job's `summary.json`.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// One job waiting to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedJob {
    /// Chosen when queued, so a job interrupted by a restart runs again under the same id.
    pub job_id: String,
    pub payload: PathBuf,
    /// The called AE title of the route.
    pub route: String,
    /// The pipeline file, as the route names it.
    pub pipeline: PathBuf,
    pub calling: String,
    /// Seconds since the Unix epoch.
    pub queued_unix: f64,
}

/// A queued job and the file that records it.
pub struct Entry {
    pub file: PathBuf,
    pub job: QueuedJob,
}

pub struct JobQueue {
    dir: PathBuf,
    waiting: Mutex<VecDeque<Entry>>,
    ready: Condvar,
}

impl JobQueue {
    /// Opens the queue in `dir`, with the jobs a previous run left in it.
    pub fn open(dir: &Path) -> std::io::Result<JobQueue> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => files.push(path),
                // A write cut short by a crash: its job was never announced.
                _ => std::fs::remove_file(&path)?,
            }
        }
        // File names start with the time queued, so they sort in queue order.
        files.sort();
        let mut waiting = VecDeque::new();
        for file in files {
            match std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<QueuedJob>(&b).map_err(|e| e.to_string()))
            {
                Ok(job) => waiting.push_back(Entry { file, job }),
                Err(why) => {
                    tracing::error!(file = %file.display(), reason = %why, "a queued job cannot be read; it is dropped");
                    std::fs::remove_file(&file)?;
                }
            }
        }
        Ok(JobQueue {
            dir: dir.to_path_buf(),
            waiting: Mutex::new(waiting),
            ready: Condvar::new(),
        })
    }

    /// Records `job` on disk, then queues it; returns how many jobs are waiting.
    pub fn push(&self, job: QueuedJob) -> std::io::Result<usize> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let file = self.dir.join(format!("{nanos:024}-{}.json", job.job_id));
        let temp = file.with_extension("tmp");
        std::fs::write(&temp, serde_json::to_vec_pretty(&job)?)?;
        std::fs::File::open(&temp)?.sync_all()?;
        std::fs::rename(&temp, &file)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let mut waiting = self.lock();
        waiting.push_back(Entry { file, job });
        self.ready.notify_one();
        Ok(waiting.len())
    }

    /// The next job, once there is one.
    pub fn take(&self) -> Entry {
        let mut waiting = self.lock();
        loop {
            if let Some(entry) = waiting.pop_front() {
                return entry;
            }
            waiting = self.ready.wait(waiting).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The job of `entry` is finished: it leaves the queue for good.
    pub fn done(&self, entry: &Entry) -> std::io::Result<()> {
        std::fs::remove_file(&entry.file)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Jobs waiting (not those running).
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> QueuedJob {
        QueuedJob {
            job_id: id.into(),
            payload: "p".into(),
            route: "CT".into(),
            pipeline: "x.yaml".into(),
            calling: "MOD".into(),
            queued_unix: 0.0,
        }
    }

    #[test]
    fn what_is_queued_and_not_done_is_there_after_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let queue = JobQueue::open(dir.path()).unwrap();
        for id in ["a", "b", "c"] {
            queue.push(job(id)).unwrap();
        }
        let first = queue.take();
        assert_eq!(first.job.job_id, "a");
        queue.done(&first).unwrap();
        // "b" is taken (running) but not done when the process dies.
        let _running = queue.take();
        std::fs::write(dir.path().join("cut-short.tmp"), b"{").unwrap();
        drop(queue);
        let again = JobQueue::open(dir.path()).unwrap();
        assert_eq!(again.waiting(), 2);
        let ids: Vec<String> = (0..2).map(|_| again.take().job.job_id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert!(!dir.path().join("cut-short.tmp").exists());
    }
}
