//! `ward:stage/volumes`: the volumes mounted for this stage.

use super::bindings::volumes::{Host, Volume};
use super::StageState;

impl Host for StageState {
    fn mounted(&mut self) -> Vec<Volume> {
        self.volumes.clone()
    }

    fn get(&mut self, name: String) -> Option<Volume> {
        self.volumes.iter().find(|v| v.name == name).cloned()
    }
}
