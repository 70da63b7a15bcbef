//! `declared`: what the host says this operator's ports are, as `declared.json`.

use crate::report;
use ward_stage_sdk::ports::{self, Direction};
use ward_stage_sdk::StageError;

pub fn report() -> Result<(), StageError> {
    let ports: Vec<serde_json::Value> = ports::declared()
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "direction": match p.direction {
                    Direction::Input => "input",
                    Direction::Output => "output",
                },
                "peers": p.peers,
                "message-type": p.message_type,
                "max-message": p.max_message,
                "capacity": p.capacity,
            })
        })
        .collect();
    report::write_json("declared.json", &serde_json::Value::Array(ports))
}
