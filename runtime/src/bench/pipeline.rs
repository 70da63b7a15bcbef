//! Compile, instantiate and end-to-end figures.

use super::stats::{summarize, time_n, Summary};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ward::engine::Engine;
use ward::host::StageLog;
use ward::jobs::stage_run::new_store;
use ward::jobs::{run_job, NoObserver};

/// Cranelift compile time of each component (no cache).
pub fn compile_times(
    engine: &Engine,
    components: &[(String, std::path::PathBuf)],
) -> anyhow::Result<Vec<(String, Duration, u64)>> {
    let mut out = Vec::new();
    for (name, path) in components {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let time = engine.compile_uncached(&bytes)?;
        out.push((name.clone(), time, bytes.len() as u64));
    }
    Ok(out)
}

/// Instantiating a loaded, pre-linked component into a fresh store (the store itself,
/// with its WASI context, is built outside the timed part and reported separately).
pub fn instantiate_time(
    engine: &Engine,
    component: &Path,
    iterations: usize,
    scratch: &Path,
) -> anyhow::Result<(Summary, Summary)> {
    let loaded = engine.load_component(component, None)?;
    let log = Arc::new(StageLog::create(&scratch.join("bench.log"), 1 << 20)?);
    let invocation = super::invocation(&loaded, &[], 64 << 20, log, Arc::new(|_, _| {}));
    let store_time = time_n(10, iterations, || {
        new_store(engine, &invocation).expect("a store");
    });
    // Only instantiation is timed, as the runner does it (asynchronously, on the stage's
    // runtime): the store is built before and dropped after (dropping returns the
    // instance's slot to the pool).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + 10 {
        let mut store = new_store(engine, &invocation)?;
        let started = std::time::Instant::now();
        let instance = runtime.block_on(loaded.pre.instantiate_async(&mut store));
        let elapsed = started.elapsed();
        instance?;
        if i >= 10 {
            samples.push(elapsed);
        }
        drop(store);
    }
    let instantiate = summarize(&mut samples);
    Ok((instantiate, store_time))
}

/// A pipeline of three trivial stages (a chain) run as a whole job, end to end: loading
/// (cached), job directory, payload digest, three sandboxes, summary.
pub fn trivial_pipeline_time(
    engine: &Engine,
    noop_component: &Path,
    iterations: usize,
    scratch: &Path,
) -> anyhow::Result<Summary> {
    let yaml = format!(
        "api-version: 0.1
name: trivial
operators:
  - name: a
    component: {{path: '{c}'}}
    parameters: {{behaviour: noop}}
    input: [{{path: /payload}}]
  - name: b
    component: {{path: '{c}'}}
    parameters: {{behaviour: noop}}
    input: [{{from: a, path: /in}}]
  - name: c
    component: {{path: '{c}'}}
    parameters: {{behaviour: noop}}
    input: [{{from: b, path: /in}}]
",
        c = noop_component.display()
    );
    let pipeline_file = scratch.join("trivial.yaml");
    std::fs::write(&pipeline_file, yaml)?;
    let pipeline = ward::pipeline::load(&pipeline_file)?;
    let payload = scratch.join("payload");
    std::fs::create_dir_all(&payload)?;
    std::fs::write(payload.join("input.txt"), b"trivial payload")?;
    let mut n = 0;
    let mut failure = None;
    let summary = time_n(5, iterations, || {
        n += 1;
        let request = super::bench_job(&pipeline, &payload, scratch.join(format!("job-{n}")), 2);
        match run_job(engine, &request, Arc::new(NoObserver)) {
            Ok(s) if s.failure.is_none() => {}
            Ok(s) => failure = Some(anyhow::anyhow!("trivial job failed: {:?}", s.failure)),
            Err(e) => failure = Some(e.into()),
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}
