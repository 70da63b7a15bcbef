//! Behaviours that move messages: the ordinary ends of a stream, a relay, writers that die
//! mid-stream, one half of a deadlock, and the throughput pair.

use crate::pattern::{self, Fnv1a};
use crate::{count, report, size, IN, OUT};
use std::time::Duration;
use ward_stage_sdk::ports::{self, Direction, OutputPort};
use ward_stage_sdk::{self as sdk, failed, OnPort, StageError};

/// `send`: `count` stamped messages of `size` bytes on `out`, then closes it unless
/// `close` = false.
pub fn send() -> Result<(), StageError> {
    let close: bool = sdk::param("close", true)?;
    let port = sdk::open_output(OUT)?;
    send_stamped(&port, count()?, size()?)?;
    if close {
        port.close();
    } else {
        // Dropping the handle would close the stream from inside the stage; forgetting it
        // leaves the port open for the host to close when the stage ends.
        std::mem::forget(port);
    }
    Ok(())
}

/// `recv`: receives on `in` until the end, sleeping `delay-ms` per message and checking the
/// pattern when `verify` (the writer was `send`); writes `received.json`.
pub fn recv() -> Result<(), StageError> {
    let delay = Duration::from_millis(sdk::param("delay-ms", 0u64)?);
    let verify: bool = sdk::param("verify", true)?;
    let writers = writers();
    // Interleaved writers (fan-in) leave the stamps out of order; the bodies still hold.
    let ordered = writers.len() <= 1;
    let port = sdk::open_input(IN)?;
    let mut messages = 0u64;
    let mut bytes = 0u64;
    let mut checksum = Fnv1a::new();
    while let Some(message) = port.recv().on_port(IN)? {
        if verify {
            pattern::check(&message, ordered.then_some(messages)).map_err(|e| failed!("{e}"))?;
        }
        checksum.update(&message);
        messages += 1;
        bytes += message.len() as u64;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
    report::write_json(
        "received.json",
        &serde_json::json!({
            "messages": messages,
            "bytes": bytes,
            "checksum": checksum.hex(),
            "writers_seen": writers,
        }),
    )
}

/// `relay`: every message from `in` on to `out`, then closes `out`.
pub fn relay() -> Result<(), StageError> {
    let input = sdk::open_input(IN)?;
    let output = sdk::open_output(OUT)?;
    while let Some(message) = input.recv().on_port(IN)? {
        output.send(&message).on_port(OUT)?;
    }
    output.close();
    Ok(())
}

/// `trap-after`: `count` messages on `out`, then a trap with the port still open.
#[allow(unreachable_code)]
pub fn trap_after() -> Result<(), StageError> {
    let port = sdk::open_output(OUT)?;
    send_stamped(&port, count()?, size()?)?;
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    Ok(())
}

/// `fail-after`: `count` messages on `out`, then a stage error with the port still open,
/// so readers learn of the failure from the host rather than seeing a normal end.
pub fn fail_after() -> Result<(), StageError> {
    let port = sdk::open_output(OUT)?;
    let n = count()?;
    send_stamped(&port, n, size()?)?;
    std::mem::forget(port);
    Err(failed!("gave up after {n}"))
}

/// `recv-then-send`: waits for one message (or the end) on `in`, then sends `count`
/// messages on `out` and closes it. Two of these reading each other never get past the wait.
pub fn recv_then_send() -> Result<(), StageError> {
    let input = sdk::open_input(IN)?;
    let output = sdk::open_output(OUT)?;
    input.recv().on_port(IN)?;
    send_stamped(&output, count()?, size()?)?;
    output.close();
    Ok(())
}

/// `bench-send`: one buffer of `size` bytes sent `count` times, then closed; writes
/// `count.json`.
pub fn bench_send() -> Result<(), StageError> {
    let n = count()?;
    let message = vec![0x5a_u8; size()?];
    let port = sdk::open_output(OUT)?;
    for _ in 0..n {
        port.send(&message).on_port(OUT)?;
    }
    port.close();
    write_count(n, n * message.len() as u64)
}

/// `bench-recv`: counts messages and bytes on `in` until the end; writes `count.json`.
pub fn bench_recv() -> Result<(), StageError> {
    let port = sdk::open_input(IN)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    while let Some(message) = port.recv().on_port(IN)? {
        messages += 1;
        bytes += message.len() as u64;
    }
    write_count(messages, bytes)
}

/// Sends messages 0..n, each the pattern body stamped with its number.
fn send_stamped(port: &OutputPort, n: u64, size: usize) -> Result<(), StageError> {
    let mut message = pattern::body(size);
    for i in 0..n {
        pattern::stamp(&mut message, i);
        port.send(&message).on_port(OUT)?;
    }
    Ok(())
}

/// The stages writing to `in`, as declared: every entry named `in`, since a fan-in port may
/// be declared once per writer.
fn writers() -> Vec<String> {
    let mut writers: Vec<String> = ports::declared()
        .into_iter()
        .filter(|p| p.name == IN && p.direction == Direction::Input)
        .flat_map(|p| p.peers)
        .collect();
    writers.sort();
    writers.dedup();
    writers
}

fn write_count(messages: u64, bytes: u64) -> Result<(), StageError> {
    report::write_json(
        "count.json",
        &serde_json::json!({ "messages": messages, "bytes": bytes }),
    )
}
