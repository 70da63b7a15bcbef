//! Stage `ai-segment`: segments the CT volume from the upstream stage whose results hold
//! `volume.json` with a 3D U-Net run on the host through `wasi:nn` (the pipeline declares the
//! model under `models:` and grants `requests.inference: true`).
//!
//! The model (models/ai-segment/) takes `ct`, FP32 `[1, 1, Z, Y, X]` of HU / 1000 with each
//! of Z, Y, X a multiple of 4, and answers `logits`, FP32 `[1, 4, Z, Y, X]` for background,
//! bone, contrast and lesion. The stage pads the volume to those multiples with its edge
//! voxels, takes the most likely class of every voxel and writes `labels.raw`/`labels.json`
//! (1 bone, 2 contrast, 3 lesion, named in `names`) and `stats.json`, as the threshold
//! `segment` stage does, so the same render and dicom-writer stages follow it.
//!
//! Parameters: `model` (the declared model's name, `ct-structures`; `NAME:gpu` or `NAME:cpu`
//! chooses where it runs), `fallback` (`cpu`: when the GPU is refused, run on the CPU;
//! `none`: fail), `slab-voxels` (the most voxels one inference takes, 16Mi: a larger volume
//! is segmented in slabs of slices that overlap by 8 slices on each side).

use imaging::raw_io;
use imaging::stats::{measure, LabelStats};
use imaging::Volume;
use serde::Serialize;
use std::path::PathBuf;
use ward_stage_sdk::nn::{Model, Tensor};
use ward_stage_sdk::{self as sdk, failed, invalid_input, log_info, log_warn, Guest, StageError};

/// The classes the model answers, after background.
const STRUCTURES: [&str; 3] = ["bone", "contrast", "lesion"];
/// Every axis of the model's input is a multiple of this (two 2× poolings).
const MULTIPLE: usize = 4;
/// Slices each slab of a large volume shares with each neighbour.
const HALO: usize = 8;
/// Voxels of one inference's input by default: 16 Mi (a 512x512x64 slab), about 64 MB of
/// input and 256 MB of scores, well within the stage's memory.
const DEFAULT_SLAB_VOXELS: usize = 16 << 20;

struct AiSegment;

#[derive(Serialize)]
struct StatsFile {
    model: String,
    structures: Vec<&'static str>,
    total_voxels: usize,
    total_ml: f64,
    components: Vec<Structure>,
}

#[derive(Serialize)]
struct Structure {
    name: &'static str,
    #[serde(flatten)]
    stats: LabelStats,
}

fn padded(n: usize) -> usize {
    n.div_ceil(MULTIPLE) * MULTIPLE
}

/// Slices of `ct` from `z0` to `z1` (exclusive) as the model's input: HU / 1000, clipped to
/// the CT range, padded to the model's multiples by repeating the edge voxels (as the model
/// was trained).
fn input_tensor(ct: &Volume<i16>, z0: usize, z1: usize) -> (Tensor, [usize; 3]) {
    let [nx, ny, _] = ct.dims;
    let [px, py, pz] = [padded(nx), padded(ny), padded(z1 - z0)];
    let mut values = Vec::with_capacity(px * py * pz);
    for k in 0..pz {
        for j in 0..py {
            let row = ct.index(0, j.min(ny - 1), z0 + k.min(z1 - z0 - 1));
            for i in 0..px {
                let hu = ct.data[row + i.min(nx - 1)];
                values.push(f32::from(hu).clamp(-1024.0, 3071.0) / 1000.0);
            }
        }
    }
    let dims = vec![1, 1, pz as u32, py as u32, px as u32];
    (Tensor::f32(dims, &values), [px, py, pz])
}

/// Runs the model on slices `z0..z1` and writes the most likely class of every voxel of
/// slices `k0..k1` (within them) into `labels` (ties go to the lower class).
#[allow(clippy::too_many_arguments)]
fn segment_slab(
    model: &Model,
    name: &str,
    ct: &Volume<i16>,
    (z0, z1): (usize, usize),
    (k0, k1): (usize, usize),
    labels: &mut [u16],
) -> Result<(), StageError> {
    let (input, [px, py, pz]) = input_tensor(ct, z0, z1);
    let outputs = model.run(vec![("ct", input)])?;
    let Some((_, logits)) = outputs.iter().find(|(n, _)| n == "logits") else {
        let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
        return Err(failed!(
            "model '{name}' answered no 'logits' output (it answered {names:?})"
        ));
    };
    let want = [
        1,
        1 + STRUCTURES.len() as u32,
        pz as u32,
        py as u32,
        px as u32,
    ];
    if logits.dims != want {
        return Err(failed!(
            "model '{name}': 'logits' is {:?}, expected {want:?}",
            logits.dims
        ));
    }
    let logits = logits.to_f32()?;
    let [nx, ny, _] = ct.dims;
    let plane = px * py * pz;
    for k in k0..k1 {
        for j in 0..ny {
            for i in 0..nx {
                let at = ((k - z0) * py + j) * px + i;
                let mut best = (0u16, logits[at]);
                for c in 1..=STRUCTURES.len() {
                    let v = logits[c * plane + at];
                    if v > best.1 {
                        best = (c as u16, v);
                    }
                }
                labels[ct.index(i, j, k)] = best.0;
            }
        }
    }
    Ok(())
}

/// The slabs a volume is segmented in: (input slices, slices kept), each input at most
/// `slab_voxels` once padded, overlapping its neighbours by [`HALO`] slices on each side so
/// the kept slices see the context they would see in the whole volume.
fn slabs(
    dims: [usize; 3],
    slab_voxels: usize,
) -> Result<Vec<((usize, usize), (usize, usize))>, StageError> {
    let [nx, ny, nz] = dims;
    let plane = padded(nx) * padded(ny);
    if padded(nz) * plane <= slab_voxels {
        return Ok(vec![((0, nz), (0, nz))]);
    }
    let depth = slab_voxels / plane / MULTIPLE * MULTIPLE;
    if depth <= 2 * HALO {
        return Err(invalid_input!(
            "parameter 'slab-voxels' = {slab_voxels}: a slab of {nx}x{ny} slices needs more than {} slices ({} voxels)",
            2 * HALO,
            (2 * HALO + MULTIPLE) * plane
        ));
    }
    let core = depth - 2 * HALO;
    let mut out = Vec::new();
    let mut k0 = 0;
    while k0 < nz {
        let k1 = (k0 + core).min(nz);
        out.push(((k0.saturating_sub(HALO), (k1 + HALO).min(nz)), (k0, k1)));
        k0 = k1;
    }
    Ok(out)
}

fn open_model(name: &str, fallback: &str) -> Result<Model, StageError> {
    match Model::by_name(name) {
        Ok(m) => Ok(m),
        Err(e) if name.ends_with(":gpu") && fallback == "cpu" => {
            let cpu = format!("{}:cpu", name.trim_end_matches(":gpu"));
            log_warn!("{e:?}; running on the CPU instead ('fallback' = cpu)");
            Model::by_name(&cpu)
        }
        Err(e) => Err(e),
    }
}

impl Guest for AiSegment {
    fn run() -> Result<(), StageError> {
        let model_name = sdk::param("model", "ct-structures".to_string())?;
        let fallback = sdk::param_choice("fallback", &["cpu", "none"], "cpu")?;
        let slab_voxels: usize = sdk::param("slab-voxels", DEFAULT_SLAB_VOXELS)?;
        let (_, dir) = sdk::input_containing("volume.json")?;
        let (ct, _) = raw_io::read_volume::<i16>(&dir, "volume")
            .map_err(|e| StageError::InvalidInput(e.to_string()))?;
        if ct.is_empty() {
            return Err(invalid_input!("the CT volume has no voxels"));
        }
        let out = PathBuf::from(sdk::results()?.path);

        sdk::progress(0.05, "loading the model");
        let model = open_model(&model_name, &fallback)?;
        let slabs = slabs(ct.dims, slab_voxels)?;
        if slabs.len() > 1 {
            log_info!(
                "{} slabs of at most {} slices, overlapping by {HALO} ('slab-voxels' = {slab_voxels})",
                slabs.len(),
                slabs.iter().map(|((z0, z1), _)| z1 - z0).max().unwrap_or(0)
            );
        }
        let mut labels = vec![0u16; ct.len()];
        for (n, &(input, kept)) in slabs.iter().enumerate() {
            let done = n as f32 / slabs.len() as f32;
            sdk::progress(0.1 + 0.7 * done, "inference");
            segment_slab(&model, &model_name, &ct, input, kept, &mut labels)?;
        }
        sdk::progress(0.8, "labels");
        let labels = ct.with_data(labels);
        let stats = measure(&labels, &ct, STRUCTURES.len());
        for s in &stats {
            log_info!(
                "{}: {} voxels, {:.2} ml, mean {:.0} HU",
                STRUCTURES[usize::from(s.label) - 1],
                s.voxels,
                s.volume_ml,
                s.mean_hu
            );
        }

        sdk::progress(0.9, "writing labels");
        let failed = |e: raw_io::RawIoError| StageError::Failed(e.to_string());
        let mut extra = serde_json::Map::new();
        extra.insert("labels".into(), serde_json::json!(STRUCTURES.len()));
        extra.insert("names".into(), serde_json::json!(STRUCTURES));
        raw_io::write_volume(&out, "labels", &labels, extra).map_err(failed)?;
        let stats_file = StatsFile {
            model: model_name,
            structures: STRUCTURES.to_vec(),
            total_voxels: stats.iter().map(|s| s.voxels).sum(),
            total_ml: stats.iter().map(|s| s.volume_ml).sum(),
            components: stats
                .into_iter()
                .map(|s| Structure {
                    name: STRUCTURES[usize::from(s.label) - 1],
                    stats: s,
                })
                .collect(),
        };
        raw_io::write_json(&out.join("stats.json"), &stats_file).map_err(failed)?;
        Ok(())
    }
}

sdk::export!(AiSegment);
