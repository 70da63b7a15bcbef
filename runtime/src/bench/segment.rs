//! The `segment` stage in the sandbox against the same `imaging` code compiled natively, on
//! the same volume, each doing the same work: read the volume, segment it, write the labels
//! and the statistics.

use super::stats::{summarize, Summary};
use crate::engine::Engine;
use crate::host::bindings::context::JobInfo;
use crate::host::StageLog;
use crate::jobs::stage_run::{run_stage, StageInvocation};
use crate::sample::phantom::hu_at;
use crate::volumes::{Mount, VolumeKind};
use imaging::raw_io;
use imaging::segmentation::{segment, Params};
use imaging::Volume;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentComparison {
    pub dims: [usize; 3],
    pub sandbox: Summary,
    pub native: Summary,
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
    let mut sandbox_voxels = 0;
    let mut native_voxels = 0;
    let mut peak = 0;
    for r in 0..repeats {
        // Sandbox: the real stage, as the runner runs it.
        let out = scratch.join(format!("segment-sandbox-{r}"));
        std::fs::create_dir_all(&out)?;
        let mounts = [
            Mount {
                name: "volume".into(),
                kind: VolumeKind::InputFromStage,
                source: Some("dicom-reader".into()),
                host_path: input.clone(),
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
        let invocation = StageInvocation {
            component: &component,
            info: JobInfo {
                job_id: "bench".into(),
                pipeline: "bench".into(),
                stage: "segment".into(),
                tenant: "bench".into(),
                attempt: 1,
            },
            parameters: Vec::new(),
            env: Vec::new(),
            args: vec!["segment".into()],
            mounts: &mounts,
            memory_cap: 4 << 30,
            timeout: Duration::from_secs(600),
            log: Arc::new(StageLog::create(
                &scratch.join(format!("segment-{r}.log")),
                1 << 20,
            )?),
            progress: Arc::new(|_, _| {}),
        };
        let started = Instant::now();
        let result = run_stage(engine, &invocation);
        sandbox_samples.push(started.elapsed());
        if let Err(reason) = result.result {
            anyhow::bail!("the segment stage failed: {reason}");
        }
        peak = peak.max(result.memory_peak);
        let stats: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("stats.json"))?)?;
        sandbox_voxels = stats["total_voxels"].as_u64().unwrap_or_default() as usize;
        std::fs::remove_dir_all(&out)?;

        // Native: the same library calls the stage makes.
        let out = scratch.join(format!("segment-native-{r}"));
        std::fs::create_dir_all(&out)?;
        let started = Instant::now();
        let (ct, _) = raw_io::read_volume::<i16>(&input, "volume")?;
        let seg = segment(&ct, &Params::default(), &mut |_, _| {})?;
        let mut extra = serde_json::Map::new();
        extra.insert("labels".into(), serde_json::json!(seg.components.len()));
        raw_io::write_volume(&out, "labels", &seg.labels, extra)?;
        raw_io::write_json(&out.join("stats.json"), &seg.components)?;
        native_samples.push(started.elapsed());
        native_voxels = seg.total_voxels;
        std::fs::remove_dir_all(&out)?;
    }
    anyhow::ensure!(
        sandbox_voxels == native_voxels,
        "sandbox labelled {sandbox_voxels} voxels, native {native_voxels}"
    );
    Ok(SegmentComparison {
        dims,
        sandbox: summarize(&mut sandbox_samples),
        native: summarize(&mut native_samples),
        sandbox_memory_peak: peak,
        voxels: native_voxels,
    })
}
