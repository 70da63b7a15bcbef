//! Waiting forever inside host calls, where only the host's timer on the stage (its
//! deadline, or deadlock detection) can end it.

use std::time::Duration;
use ward_stage_sdk::{self as sdk, StageError};

/// `block-on-port`: receives on the input port named by `port` (default `in`) forever,
/// ignoring the messages. Without such a port, or once its stream is over, it waits in a
/// WASI sleep instead, so the stage blocks whether or not it is wired to a writer.
pub fn block_on_port() -> Result<(), StageError> {
    let name = sdk::param_opt("port").unwrap_or_else(|| "in".to_string());
    if sdk::has_input(&name) {
        let port = sdk::open_input(&name)?;
        while let Ok(Some(_)) = port.recv() {}
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
