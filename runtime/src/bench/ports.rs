//! Port throughput: two sandboxed stages streaming fixed-size messages through a port,
//! against two native threads moving the same bytes through a bounded channel with the same
//! copies (one into the channel, one out into the reader's buffer).

use super::stats::{summarize, Summary};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::engine::Engine;
use ward::jobs::{new_job_id, run_job, NoObserver};

/// Median throughputs in bytes per second.
pub struct PortsThroughput {
    pub ward: Summary,
    pub native: Summary,
    pub bytes_per_run: u64,
}

/// Streams `messages` messages of `size` bytes from one `port-probe` stage to another,
/// `repeats` times, timing from the first stage's start to the last one's end, less the
/// same for a stream of no messages.
pub fn ports_throughput(
    engine: &Engine,
    probe: &Path,
    size: u64,
    messages: u64,
    repeats: usize,
    scratch: &Path,
) -> anyhow::Result<PortsThroughput> {
    let payload = scratch.join("ports-payload");
    std::fs::create_dir_all(&payload)?;
    let full = stream_pipeline(probe, size, messages, scratch)?;
    let empty = stream_pipeline(probe, size, 0, scratch)?;
    let mut ward_samples = Vec::new();
    let mut native_samples = Vec::new();
    // The two sides take turns, so what else the machine does hits both alike. Each turn
    // also runs the same two stages sending nothing: their start and end, which a stream
    // of any length pays once, are taken off, leaving what the port itself costs.
    for n in 0..repeats + 1 {
        let streamed = stream_once(engine, &full, &payload, scratch, size * messages)?;
        let fixed = stream_once(engine, &empty, &payload, scratch, 0)?;
        let native = native_channel(size as usize, messages);
        // The first turn compiles nothing (components are cached) but warms the pool.
        if n > 0 {
            ward_samples.push(streamed.saturating_sub(fixed));
            native_samples.push(native);
        }
    }
    Ok(PortsThroughput {
        ward: summarize(&mut ward_samples),
        native: summarize(&mut native_samples),
        bytes_per_run: size * messages,
    })
}

/// A writer stage sending `messages` messages of `size` bytes to a reader stage.
fn stream_pipeline(
    probe: &Path,
    size: u64,
    messages: u64,
    scratch: &Path,
) -> anyhow::Result<ward::pipeline::Pipeline> {
    // The channel's capacity, not the job's channel budget, is what bounds the stream here.
    let budget = (4 * size).clamp(
        ward::pipeline::DEFAULT_PORTS_BUDGET,
        ward::pipeline::DEFAULT_MAX_PORTS_BUDGET,
    );
    let yaml = format!(
        "api-version: 0.1
name: ports-bench
ports-budget: '{budget}'
operators:
  - name: writer
    component: {{path: '{c}'}}
    parameters: {{behaviour: bench-send, count: '{messages}', size: '{size}'}}
    ports: {{out: [{{name: out, capacity: 4, max-message: '{size}'}}]}}
  - name: reader
    component: {{path: '{c}'}}
    parameters: {{behaviour: bench-recv}}
    ports: {{in: [{{name: in, from: writer, port: out}}]}}
",
        c = probe.display()
    );
    let pipeline_file = scratch.join(format!("ports-bench-{messages}.yaml"));
    std::fs::write(&pipeline_file, yaml)?;
    Ok(ward::pipeline::load(&pipeline_file)?)
}

/// One job of `pipeline`, from its first stage's start to its last stage's end.
fn stream_once(
    engine: &Engine,
    pipeline: &ward::pipeline::Pipeline,
    payload: &Path,
    scratch: &Path,
    expected_bytes: u64,
) -> anyhow::Result<Duration> {
    let request = super::bench_job(
        pipeline,
        payload,
        scratch.join(format!("ports-job-{}", new_job_id())),
        2,
    );
    let summary = run_job(engine, &request, Arc::new(NoObserver))?;
    if let Some(f) = &summary.failure {
        anyhow::bail!("the ports benchmark job failed: {:?}", f);
    }
    let moved: u64 = summary.ports.iter().map(|p| p.bytes).sum();
    anyhow::ensure!(
        moved == expected_bytes,
        "the port moved {moved} bytes, not {expected_bytes}"
    );
    let start = summary
        .stages
        .iter()
        .filter_map(|s| s.started_at_s)
        .fold(f64::MAX, f64::min);
    let end = summary
        .stages
        .iter()
        .filter_map(|s| Some(s.started_at_s? + s.duration_s?))
        .fold(0.0, f64::max);
    Ok(Duration::from_secs_f64(end - start))
}

/// The native baseline: a bounded channel of capacity 4 between two threads; the writer
/// copies its message into a fresh buffer for the channel, the reader copies it into its own.
fn native_channel(size: usize, messages: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let message = vec![7u8; size];
        for _ in 0..messages {
            tx.send(message.clone()).expect("the reader is there");
        }
    });
    let mut buffer = vec![0u8; size];
    let mut total = 0u64;
    for m in rx {
        buffer[..m.len()].copy_from_slice(&m);
        total += m.len() as u64;
    }
    writer.join().expect("the writer ends");
    assert_eq!(total, size as u64 * messages);
    std::hint::black_box(&buffer);
    started.elapsed()
}

/// Bytes per second from a run time in microseconds.
pub fn rate(bytes: u64, micros: f64) -> f64 {
    bytes as f64 / (micros / 1e6)
}
