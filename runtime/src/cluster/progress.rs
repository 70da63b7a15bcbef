//! A running job's stages as a `WardJob` status shows them: the job runner's
//! [`JobObserver`] events turned into [`StageState`]s and sent to the node runtime, which
//! patches them into the status (rate-limited).

use crate::jobs::{rfc3339_utc, JobObserver, StageRecord, StageStatus};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};
use ward_cluster::executor::ProgressSender;
use ward_cluster::resources::StageState;

/// Sends the stages' states through a [`ProgressSender`] at every start and end.
pub struct StageProgress {
    sender: ProgressSender,
    state: Mutex<State>,
}

struct State {
    stages: Vec<StageState>,
    /// When each running stage started, for its wall time.
    started: HashMap<String, Instant>,
}

impl StageProgress {
    /// Every stage of `names` pending, sent at once.
    pub fn new(names: &[String], sender: ProgressSender) -> StageProgress {
        let stages: Vec<StageState> = names
            .iter()
            .map(|name| StageState {
                name: name.clone(),
                state: "pending".into(),
                ..StageState::default()
            })
            .collect();
        sender.send_replace(stages.clone());
        StageProgress {
            sender,
            state: Mutex::new(State {
                stages,
                started: HashMap::new(),
            }),
        }
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut StageState, &mut State)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = state.stages.iter().position(|s| s.name == name) else {
            return;
        };
        let mut stage = state.stages[i].clone();
        change(&mut stage, &mut state);
        state.stages[i] = stage;
        self.sender.send_replace(state.stages.clone());
    }
}

fn state_name(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Pending => "pending",
        StageStatus::Running => "running",
        StageStatus::Succeeded => "succeeded",
        StageStatus::Failed => "failed",
        StageStatus::Skipped => "skipped",
    }
}

impl JobObserver for StageProgress {
    fn stage_started(&self, stage: &str) {
        self.update(stage, |s, state| {
            s.state = "running".into();
            s.started_at = Some(rfc3339_utc(SystemTime::now()));
            state.started.insert(s.name.clone(), Instant::now());
        });
    }

    fn stage_finished(&self, record: &StageRecord) {
        self.update(&record.name, |s, state| {
            s.state = state_name(record.status).into();
            s.finished_at = Some(rfc3339_utc(SystemTime::now()));
            // A skipped stage never started: it has no wall time.
            s.wall_ms = state
                .started
                .remove(&record.name)
                .map(|at| at.elapsed().as_millis() as u64);
            s.reason = record.reason.as_ref().map(|r| r.message.clone());
        });
    }
}
