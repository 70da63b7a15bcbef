//! The `segment` stage in the sandbox against the same `imaging` code compiled natively, on
//! the same volume, each doing the same work: read the volume, segment it, write the labels
//! and the statistics.

use super::stats::{summarize, Summary};
use imaging::raw_io;
use imaging::segmentation::{segment, Params};
use imaging::Volume;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::engine::{Engine, StageComponent};
use ward::host::{ProgressFn, StageLog};
use ward::jobs::stage_run::run_stage;
use ward::sample::phantom::hu_at;
use ward::volumes::{Mount, VolumeKind};

/// One run's time, split where the stage reports progress: reading the volume (with
/// instantiation, in the sandbox), computing, and writing the results.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub read: Duration,
    pub compute: Duration,
    pub write: Duration,
    /// The compute phase's steps: thresholding, labelling, measuring.
    pub steps: [Duration; 3],
}

/// The progress fractions `imaging::segmentation::segment` reports as each step starts.
const STEP_MARKS: [f32; 3] = [0.1, 0.5, 0.7];
pub const STEP_NAMES: [&str; 3] = ["threshold", "labelling", "measuring"];

/// The steps' durations from (time, fraction) progress marks and the compute phase's end.
fn steps_of(marks: &[(Duration, f32)], end: Duration) -> [Duration; 3] {
    let at = |fraction: f32| {
        marks
            .iter()
            .find(|(_, f)| *f >= fraction)
            .map_or(end, |(t, _)| *t)
    };
    let starts = STEP_MARKS.map(at);
    [
        starts[1].saturating_sub(starts[0]),
        starts[2].saturating_sub(starts[1]),
        end.saturating_sub(starts[2]),
    ]
}

impl Phases {
    pub fn total(&self) -> Duration {
        self.read + self.compute + self.write
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentComparison {
    pub dims: [usize; 3],
    pub sandbox: Summary,
    pub native: Summary,
    /// Medians of the compute phase alone (threshold, labelling, measuring).
    pub sandbox_compute: Summary,
    pub native_compute: Summary,
    /// Reading and writing the volume: the whole run less its compute phase.
    pub sandbox_io: Summary,
    pub native_io: Summary,
    /// Medians of each step of the compute phase ([`STEP_NAMES`]).
    pub sandbox_steps: [Summary; 3],
    pub native_steps: [Summary; 3],
    pub sandbox_memory_peak: u64,
    /// Voxels labelled by each, which must agree.
    pub voxels: usize,
}

/// The phantom sampled at `dims` voxels over a 400 mm field of view and 150 mm of slices.
pub fn phantom_volume(dims: [usize; 3]) -> Volume<i16> {
    let spacing = [
        400.0 / dims[0] as f64,
        400.0 / dims[1] as f64,
        150.0 / dims[2] as f64,
    ];
    let origin = [
        -200.0 + spacing[0] / 2.0,
        -200.0 + spacing[1] / 2.0,
        -75.0 + spacing[2] / 2.0,
    ];
    let mut data = Vec::with_capacity(dims[0] * dims[1] * dims[2]);
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let p = [
                    origin[0] + i as f64 * spacing[0],
                    origin[1] + j as f64 * spacing[1],
                    origin[2] + k as f64 * spacing[2],
                ];
                data.push(hu_at(p));
            }
        }
    }
    Volume::new(dims, spacing, origin, data)
}

pub fn segment_sandbox_vs_native(
    engine: &Engine,
    segment_wasm: &Path,
    dims: [usize; 3],
    repeats: usize,
    scratch: &Path,
) -> anyhow::Result<SegmentComparison> {
    let input = scratch.join("segment-input");
    std::fs::create_dir_all(&input)?;
    raw_io::write_volume(&input, "volume", &phantom_volume(dims), Default::default())?;
    let component = engine.load_component(segment_wasm, None)?;

    let mut sandbox_samples = Vec::new();
    let mut native_samples = Vec::new();
    let mut sandbox_compute = Vec::new();
    let mut native_compute = Vec::new();
    let (mut sandbox_io, mut native_io) = (Vec::new(), Vec::new());
    let mut sandbox_steps: [Vec<Duration>; 3] = Default::default();
    let mut native_steps: [Vec<Duration>; 3] = Default::default();
    let (mut sandbox_stats, mut native_stats, mut peak) = (None, None, 0);
    // Alternate which goes first, so neither always runs on a warmer page cache.
    for r in 0..repeats {
        for sandbox_turn in [r % 2 == 0, r % 2 != 0] {
            if sandbox_turn {
                let (phases, stats, memory) = sandbox_once(engine, &component, &input, scratch, r)?;
                sandbox_samples.push(phases.total());
                sandbox_compute.push(phases.compute);
                sandbox_io.push(phases.read + phases.write);
                for (all, step) in sandbox_steps.iter_mut().zip(phases.steps) {
                    all.push(step);
                }
                sandbox_stats = Some(stats);
                peak = peak.max(memory);
            } else {
                let (phases, stats) = native_once(&input, scratch, r)?;
                native_samples.push(phases.total());
                native_compute.push(phases.compute);
                native_io.push(phases.read + phases.write);
                for (all, step) in native_steps.iter_mut().zip(phases.steps) {
                    all.push(step);
                }
                native_stats = Some(stats);
            }
        }
    }
    // Every label's voxel count, bounding box, centroid and HU must agree.
    let same = match (&sandbox_stats, &native_stats) {
        (Some(a), Some(b)) => agree(a, b),
        _ => false,
    };
    anyhow::ensure!(
        same,
        "the sandbox and native segmentations differ:\n{sandbox_stats:?}\n{native_stats:?}"
    );
    let voxels = native_stats
        .as_ref()
        .and_then(|s| s.as_array())
        .map(|a| a.iter().filter_map(|c| c["voxels"].as_u64()).sum::<u64>() as usize)
        .unwrap_or_default();
    Ok(SegmentComparison {
        dims,
        sandbox: summarize(&mut sandbox_samples),
        native: summarize(&mut native_samples),
        sandbox_compute: summarize(&mut sandbox_compute),
        native_compute: summarize(&mut native_compute),
        sandbox_io: summarize(&mut sandbox_io),
        native_io: summarize(&mut native_io),
        sandbox_steps: sandbox_steps.map(|mut s| summarize(&mut s)),
        native_steps: native_steps.map(|mut s| summarize(&mut s)),
        sandbox_memory_peak: peak,
        voxels,
    })
}

/// The real stage, run as the runner runs it: (phases, per-label statistics, peak memory). The
/// phases are taken from the stage's progress reports: 0.1 after reading, 0.9 before writing.
pub(super) fn sandbox_once(
    engine: &Engine,
    component: &StageComponent,
    input: &Path,
    scratch: &Path,
    r: usize,
) -> anyhow::Result<(Phases, serde_json::Value, u64)> {
    let out = scratch.join(format!("segment-sandbox-{r}"));
    let marks: Arc<std::sync::Mutex<Vec<(Duration, f32)>>> = Default::default();
    let started = Instant::now();
    std::fs::create_dir_all(&out)?;
    let mounts = [
        Mount {
            name: "volume".into(),
            kind: VolumeKind::InputFromStage,
            source: Some("dicom-reader".into()),
            host_path: input.to_path_buf(),
            guest_path: "/input/volume".into(),
            read_only: true,
        },
        Mount {
            name: "labels".into(),
            kind: VolumeKind::Results,
            source: None,
            host_path: out.clone(),
            guest_path: "/results".into(),
            read_only: false,
        },
    ];
    let log = Arc::new(StageLog::create(
        &scratch.join(format!("segment-{r}.log")),
        1 << 20,
    )?);
    let progress: ProgressFn = {
        let marks = marks.clone();
        Arc::new(move |fraction, _| {
            marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((started.elapsed(), fraction))
        })
    };
    let invocation = super::invocation(component, &mounts, 4 << 30, log, progress);
    let result = run_stage(engine, &invocation);
    let total = started.elapsed();
    if let Err(reason) = result.result {
        anyhow::bail!("the segment stage failed: {reason}");
    }
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("stats.json"))?)?;
    let components = stats["components"].clone();
    std::fs::remove_dir_all(&out)?;
    let marks = marks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let at = |fraction: f32| marks.iter().find(|(_, f)| *f >= fraction).map(|(t, _)| *t);
    let (Some(read_done), Some(write_start)) = (at(0.1), at(0.9)) else {
        anyhow::bail!("the segment stage did not report progress at 0.1 and 0.9");
    };
    let phases = Phases {
        read: read_done,
        compute: write_start.saturating_sub(read_done),
        write: total.saturating_sub(write_start),
        steps: steps_of(&marks, write_start),
    };
    Ok((phases, components, result.memory_peak))
}

/// The same library calls the stage makes, compiled natively: (phases, per-label statistics).
pub(super) fn native_once(
    input: &Path,
    scratch: &Path,
    r: usize,
) -> anyhow::Result<(Phases, serde_json::Value)> {
    let out = scratch.join(format!("segment-native-{r}"));
    std::fs::create_dir_all(&out)?;
    let started = Instant::now();
    let (ct, _) = raw_io::read_volume::<i16>(input, "volume")?;
    let read = started.elapsed();
    let mut marks = Vec::new();
    let seg = segment(&ct, &Params::default(), &mut |f, _| {
        marks.push((started.elapsed(), f))
    })?;
    let compute_end = started.elapsed();
    let compute = compute_end - read;
    let mut extra = serde_json::Map::new();
    extra.insert("labels".into(), serde_json::json!(seg.components.len()));
    raw_io::write_volume(&out, "labels", &seg.labels, extra)?;
    raw_io::write_json(&out.join("stats.json"), &seg.components)?;
    let write = started.elapsed() - read - compute;
    std::fs::remove_dir_all(&out)?;
    Ok((
        Phases {
            read,
            compute,
            write,
            steps: steps_of(&marks, compute_end),
        },
        serde_json::to_value(&seg.components)?,
    ))
}

/// Equal JSON, except that numbers may differ in their last bits (sums in another order,
/// decimal round trips).
fn agree(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| agree(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| agree(v, w)))
        }
        _ => a == b,
    }
}
