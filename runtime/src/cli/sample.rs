//! `ward sample ct`: a synthetic CT series of the analytic phantom, as real DICOM files.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use ward::sample::ct_series::{write_ct_series_with_progress, CtSeriesOptions};
use ward::sample::phantom::Phantom;

#[derive(clap::Subcommand)]
pub enum SampleCommand {
    /// A CT series (one DICOM file per slice) of spheres of known HU and radius.
    Ct(CtArgs),
}

#[derive(clap::Args)]
pub struct CtArgs {
    /// Directory to write the series into.
    #[arg(long)]
    out: PathBuf,
    /// Number of slices.
    #[arg(long, default_value_t = 64)]
    slices: u32,
    /// Rows and columns per slice.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Slice thickness and spacing in mm.
    #[arg(long, default_value_t = 2.5)]
    thickness: f64,
    /// Square field of view in mm (pixel spacing = fov / size).
    #[arg(long, default_value_t = 400.0)]
    fov: f64,
    /// Seed for the UIDs: the same seed writes byte-identical files
    /// [default: ward-phantom, or ward-phantom-vary-SEED with --vary].
    #[arg(long)]
    seed: Option<String>,
    /// Image a phantom drawn from this seed (body, sphere sizes, places and HU,
    /// noise) instead of the standard one, and write its description, with the
    /// series geometry, to `phantom.json` in the output directory.
    #[arg(long, value_name = "SEED")]
    vary: Option<u64>,
}

/// Written as `phantom.json` by `--vary`: the phantom, the series geometry and
/// the label classes, so the truth at every voxel can be recomputed.
#[derive(serde::Serialize)]
struct PhantomFile<'a> {
    vary_seed: u64,
    phantom: &'a Phantom,
    size: u32,
    slices: u32,
    fov_mm: f64,
    slice_thickness_mm: f64,
    pixel_spacing_mm: f64,
    /// Class names by label value (see `Phantom::label_at`).
    labels: [&'static str; 4],
}

pub fn run(cmd: SampleCommand) -> anyhow::Result<i32> {
    let SampleCommand::Ct(args) = cmd;
    let options = CtSeriesOptions {
        slices: args.slices,
        size: args.size,
        slice_thickness_mm: args.thickness,
        fov_mm: args.fov,
        // A varied phantom is another study: give it UIDs of its own by default.
        seed: args.seed.unwrap_or_else(|| match args.vary {
            Some(v) => format!("ward-phantom-vary-{v}"),
            None => "ward-phantom".to_owned(),
        }),
        phantom: args.vary.map_or_else(Phantom::standard, Phantom::varied),
    };
    let bar = ProgressBar::new(u64::from(args.slices));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} slices")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("writing CT");
    let summary = write_ct_series_with_progress(&args.out, &options, &mut |done, _| {
        bar.set_position(u64::from(done))
    })?;
    bar.finish_and_clear();
    // Only with --vary: dicom-reader fails on a non-DICOM file in its payload
    // by default, so the standard series directory must hold DICOM alone.
    if let Some(vary_seed) = args.vary {
        let file = PhantomFile {
            vary_seed,
            phantom: &options.phantom,
            size: options.size,
            slices: options.slices,
            fov_mm: options.fov_mm,
            slice_thickness_mm: options.slice_thickness_mm,
            pixel_spacing_mm: summary.pixel_spacing_mm,
            labels: ["background", "bone", "contrast", "lesion"],
        };
        let path = args.out.join("phantom.json");
        let json = serde_json::to_string_pretty(&file)?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    out!(
        "wrote {} CT slices of {}x{} to {} (study {})",
        summary.files.len(),
        summary.dims[0],
        summary.dims[1],
        args.out.display(),
        summary.study_instance_uid
    );
    Ok(0)
}
