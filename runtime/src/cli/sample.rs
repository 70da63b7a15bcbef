//! `ward sample ct`: a synthetic CT series of the analytic phantom, as real DICOM files.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use ward::sample::ct_series::{write_ct_series_with_progress, CtSeriesOptions};

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
    /// Seed for the UIDs: the same seed writes byte-identical files.
    #[arg(long, default_value = "ward-phantom")]
    seed: String,
}

pub fn run(cmd: SampleCommand) -> anyhow::Result<i32> {
    let SampleCommand::Ct(args) = cmd;
    let options = CtSeriesOptions {
        slices: args.slices,
        size: args.size,
        slice_thickness_mm: args.thickness,
        seed: args.seed,
        ..CtSeriesOptions::default()
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
