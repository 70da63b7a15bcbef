//! A conformance stage for streaming ports, whose `behaviour` parameter picks what it does
//! with its input port `in` and output port `out`: the runtime's tests wire several of them
//! into pipelines and check what each saw (in its results) and how each ended.
//!
//! Parameters: `behaviour`; `count` (messages, 16); `size` (bytes per message, 1 MiB; a
//! plain number or with a `k`/`M`/`G`/`Ki`/`Mi`/`Gi` suffix); `close` (true) for `send`;
//! `delay-ms` (0) and `verify` (true) for `recv`.

use ward_stage_sdk::{self as sdk, invalid_input, StageError};

mod declared;
mod expected;
mod flows;
mod pattern;
mod report;

struct PortProbe;

impl sdk::Guest for PortProbe {
    fn run() -> Result<(), StageError> {
        let behaviour = sdk::param_opt("behaviour").unwrap_or_default();
        match behaviour.trim() {
            "send" => flows::send(),
            "recv" => flows::recv(),
            "relay" => flows::relay(),
            "trap-after" => flows::trap_after(),
            "fail-after" => flows::fail_after(),
            "recv-then-send" => flows::recv_then_send(),
            "bench-send" => flows::bench_send(),
            "bench-recv" => flows::bench_recv(),
            "expect-peer-failed" => expected::peer_failed(),
            "oversize" => expected::oversize(),
            "send-after-close" => expected::send_after_close(),
            "recv-after-end" => expected::recv_after_end(),
            "open-twice" => expected::open_twice(),
            "open-unknown" => expected::open_unknown(),
            "declared" => declared::report(),
            other => Err(invalid_input!("unknown behaviour '{other}'")),
        }
    }
}

sdk::export!(PortProbe);

/// The input and output ports every behaviour uses.
const IN: &str = "in";
const OUT: &str = "out";

/// Messages to send: `count`, default 16.
fn count() -> Result<u64, StageError> {
    sdk::param("count", 16u64)
}

/// Bytes per message: `size`, default 1 MiB.
fn size() -> Result<usize, StageError> {
    match sdk::param_opt("size") {
        None => Ok(1 << 20),
        Some(text) => parse_size(&text)
            .ok_or_else(|| invalid_input!("parameter 'size' = '{text}' is not a byte count")),
    }
}

/// `1048576`, `1Mi`, `64k`: the size notations of pipeline files.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale: usize = match unit {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    number.parse::<usize>().ok()?.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("4096"), Some(4096));
        assert_eq!(super::parse_size("16Mi"), Some(16 << 20));
        assert_eq!(super::parse_size("2k"), Some(2000));
        assert_eq!(super::parse_size("Mi"), None);
        assert_eq!(super::parse_size("3 MB"), None);
    }
}
