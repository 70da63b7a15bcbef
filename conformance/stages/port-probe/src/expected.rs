//! Behaviours that provoke one port error each and record it in `error.txt`: they succeed
//! when the host answers with the expected error and fail (naming what came instead)
//! otherwise.

use crate::pattern;
use crate::{report, size, IN, OUT};
use std::fmt::Debug;
use ward_stage_sdk::ports::{self, PortError};
use ward_stage_sdk::{self as sdk, failed, OnPort, StageError};

/// `expect-peer-failed`: receives on `in` until an error. `peer-failed` is recorded (its
/// message alone) and becomes this stage's failure; a normal end succeeds.
pub fn peer_failed() -> Result<(), StageError> {
    let port = sdk::open_input(IN)?;
    loop {
        match port.recv() {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(PortError::PeerFailed(message)) => {
                report::write_text("error.txt", &message)?;
                return Err(StageError::Failed(message));
            }
            Err(other) => return unexpected("peer-failed", &other),
        }
    }
}

/// `oversize`: one message of `size` bytes on `out`; `too-large` is recorded as
/// `too-large <limit>`.
pub fn oversize() -> Result<(), StageError> {
    let port = sdk::open_output(OUT)?;
    match port.send(&pattern::body(size()?)) {
        Err(PortError::TooLarge(limit)) => {
            report::write_text("error.txt", &format!("too-large {limit}"))
        }
        other => unexpected("too-large", &other),
    }
}

/// `send-after-close`: closes `out`, then sends on it; expects `closed`.
pub fn send_after_close() -> Result<(), StageError> {
    let port = sdk::open_output(OUT)?;
    port.close();
    expect(
        port.send(b"after close"),
        |e| matches!(e, PortError::Closed),
        "closed",
    )
}

/// `recv-after-end`: receives on `in` until the end, then once more; expects `ended`.
pub fn recv_after_end() -> Result<(), StageError> {
    let port = sdk::open_input(IN)?;
    while port.recv().on_port(IN)?.is_some() {}
    expect(port.recv(), |e| matches!(e, PortError::Ended), "ended")
}

/// `open-twice`: opens `in` twice (keeping the first); expects `already-open`.
pub fn open_twice() -> Result<(), StageError> {
    let _first = sdk::open_input(IN)?;
    expect(
        ports::open_input(IN),
        |e| matches!(e, PortError::AlreadyOpen(_)),
        "already-open",
    )
}

/// `open-unknown`: opens an input port nobody declares; expects `unknown-port`.
pub fn open_unknown() -> Result<(), StageError> {
    expect(
        ports::open_input("no-such-port"),
        |e| matches!(e, PortError::UnknownPort(_)),
        "unknown-port",
    )
}

/// Records the error's debug form; succeeds if it is the expected one.
fn expect<T: Debug>(
    result: Result<T, PortError>,
    is_expected: impl Fn(&PortError) -> bool,
    name: &str,
) -> Result<(), StageError> {
    match result {
        Err(e) if is_expected(&e) => report::write_text("error.txt", &format!("{e:?}")),
        other => unexpected(name, &other),
    }
}

/// Records what came instead of the expected error, and fails saying so.
fn unexpected(expected: &str, got: &dyn Debug) -> Result<(), StageError> {
    let text = format!("{got:?}");
    report::write_text("error.txt", &text)?;
    Err(failed!("expected {expected}, got {text}"))
}
