//! `ward bench`: Ward's speed figures, each beside its goal or a baseline from the same run.
//! Run it from a release build: `cargo run --release -p ward -- bench`.

use crate::bench::{self, Goal, Report, Row};
use std::path::PathBuf;
use ward::engine::{Engine, EngineOptions};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Directory of the built stage components.
    #[arg(long, default_value = "guests/target/wasm32-wasip2/release")]
    components: PathBuf,
    /// Volume size for the segment comparison: columns = rows.
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Slices of the segment comparison volume.
    #[arg(long, default_value_t = 300)]
    slices: usize,
    /// Repeats of the segment comparison.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Messages per run of the ports throughput figure (each --port-message bytes).
    #[arg(long, default_value_t = 1024)]
    port_messages: u64,
    /// Bytes per message of the ports throughput figure.
    #[arg(long, default_value_t = 1 << 20)]
    port_message: u64,
    /// CT instances of the DIMSE ingest figure (0 skips it; it needs DCMTK's storescp).
    #[arg(long, default_value_t = 500)]
    dicom_instances: u32,
    /// Rows = columns of those instances.
    #[arg(long, default_value_t = 512)]
    dicom_size: u32,
    /// Trivial jobs submitted to the job service for its load figure (0 skips it).
    #[arg(long, default_value_t = 1000)]
    service_jobs: usize,
    /// Concurrent clients submitting them.
    #[arg(long, default_value_t = 8)]
    service_clients: usize,
    /// Iterations of the instantiate and pipeline figures.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// Where job directories and volumes are written (default: the system's temporary
    /// directory). On a disk with slow metadata operations, a tmpfs such as /dev/shm shows
    /// Ward's own overhead.
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// A registry (HOST[:PORT]) to measure publishing, pulling and a cold start of the
    /// segment component against, with `skopeo copy` as the transfer baseline (none: skipped).
    #[arg(long, value_name = "HOST")]
    registry: Option<String>,
    /// Rounds of the registry figures.
    #[arg(long, default_value_t = 5)]
    registry_repeats: usize,
    #[command(flatten)]
    registry_args: super::registry_args::RegistryArgs,
    /// Slices the render server draws for its figure (0 skips the render figures); the
    /// volume is --size x --size x --slices.
    #[arg(long, default_value_t = 200)]
    render_slices: usize,
    /// The model of the inference figures (none there: they are skipped).
    #[arg(
        long,
        default_value = "examples/ct-ai-segmentation/model/ai-segment.onnx"
    )]
    inference_model: PathBuf,
    /// Inferences of each kind for the inference figures (0 skips them).
    #[arg(long, default_value_t = 5)]
    inference_runs: usize,
    /// Rows = columns of the inference figures' volume (the phantom).
    #[arg(long, default_value_t = 256)]
    inference_size: usize,
    /// Slices of that volume.
    #[arg(long, default_value_t = 64)]
    inference_slices: usize,
    /// ONNX Runtime threads of one inference, Ward's and Python's alike.
    #[arg(long, default_value_t = 2)]
    inference_threads: usize,
    /// A stage that evaluates the model inside the sandbox by itself, without the host
    /// (built from bench-stages/tract-infer; none: that figure is skipped).
    #[arg(long)]
    in_sandbox_inference: Option<PathBuf>,
    /// Rounds of every figure: each round measures both sides of every ratio in turn, so
    /// noise on a busy machine hits both; the report gives min, median and max over them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also write the report as JSON to this file, for `--compare` by a later run.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// A report written earlier with `--json`: print how each median changed against it.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
    /// Also count the instructions of the segment stage against native code with callgrind
    /// (valgrind), on a volume of --instructions-size² x --instructions-slices: a figure a
    /// busy machine does not move.
    #[arg(long)]
    instructions: bool,
    /// Rows = columns of the instruction count's volume.
    #[arg(long, default_value_t = 128)]
    instructions_size: usize,
    /// Slices of the instruction count's volume.
    #[arg(long, default_value_t = 40)]
    instructions_slices: usize,
    /// Exit 1 when a figure's median misses its goal.
    #[arg(long)]
    check_goals: bool,
}

const STAGES: [&str; 4] = ["dicom_reader", "segment", "render", "dicom_writer"];

pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(args.rounds >= 1, "--rounds: at least one");
    // Read first: a bad earlier report is found before minutes of measuring.
    let old = args
        .compare
        .as_ref()
        .map(|path| -> anyhow::Result<Report> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--compare {}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "--compare {}:{}:{}: not a `ward bench --json` report: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                )
            })
        })
        .transpose()?;
    let mut builder = tempfile::Builder::new();
    builder.prefix("ward-bench-");
    let scratch = match &args.scratch {
        Some(dir) => builder.tempdir_in(dir)?,
        None => builder.tempdir()?,
    };
    let engine = std::sync::Arc::new(Engine::new(EngineOptions {
        cache_dir: Some(scratch.path().join("cache")),
        ..EngineOptions::default()
    })?);
    let progress = indicatif::ProgressBar::new(args.rounds as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg} round {pos}/{len} {wide_bar} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.set_message("ward bench");
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let dir = scratch.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&dir)?;
        rounds.push(measure_round(&args, &engine, &dir)?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    if args.instructions {
        // Counts do not vary between rounds: measured once, reported with the first round.
        rounds[0].extend(instruction_rows(&args, scratch.path())?);
    }
    let report = Report::from_rounds(&rounds);
    report.print();
    if let Some(old) = &old {
        report.print_comparison(old);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| anyhow::anyhow!("--json {}: {e}", path.display()))?;
    }
    let missed = report.missed();
    if args.check_goals && !missed.is_empty() {
        for f in &missed {
            tracing::error!(figure = %f.what, median = f.value.median, "goal missed");
        }
        return Ok(1);
    }
    Ok(0)
}

/// The instruction counts of the segment stage, sandbox against native.
fn instruction_rows(args: &BenchArgs, scratch: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let segment = std::path::absolute(&args.components)?.join("segment.wasm");
    let dims = [
        args.instructions_size,
        args.instructions_size,
        args.instructions_slices,
    ];
    let f = bench::instruction_figures(&segment, dims, scratch)?;
    let m = |n: u64| n as f64 / 1e6;
    let [x, y, z] = f.dims;
    let [tx, ty, tz] = bench::instructions::TINY;
    Ok(vec![Row::new(
        format!("segment {x}x{y}x{z} whole stage, instructions less a {tx}x{ty}x{tz} run's"),
        m(f.sandbox.work()),
        "M",
    )
    // No goal: instructions are not time (wasm takes more, simpler ones); the figure is
    // for finding a change between commits, which `--compare` shows.
    .baseline("native imaging", m(f.native.work()))])
}

#[derive(clap::Args)]
pub struct SegmentOnceArgs {
    /// Which side runs: the stage in the sandbox or the same code natively.
    #[arg(long, value_enum)]
    side: bench::instructions::Side,
    /// The directory holding volume.raw and volume.json.
    #[arg(long)]
    input: PathBuf,
    /// The segment component.
    #[arg(long)]
    component: PathBuf,
    /// The compile cache the parent filled.
    #[arg(long)]
    cache: PathBuf,
    /// Where the results are written.
    #[arg(long)]
    scratch: PathBuf,
}

pub fn segment_once(args: SegmentOnceArgs) -> anyhow::Result<i32> {
    bench::instructions::run_once(
        args.side,
        &args.input,
        &args.component,
        &args.cache,
        &args.scratch,
    )?;
    Ok(0)
}

/// Whether `dir` is on a tmpfs, where the trivial job's goal is tighter (no disk under the
/// job directory's metadata operations).
fn on_tmpfs(dir: &std::path::Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as i64 == TMPFS_MAGIC)
}

/// Every figure once; the sides of each ratio alternate within it.
fn measure_round(
    args: &BenchArgs,
    engine: &std::sync::Arc<Engine>,
    scratch: &std::path::Path,
) -> anyhow::Result<Vec<Row>> {
    let components = std::path::absolute(&args.components)?;
    let component = |name: &str| components.join(format!("{name}.wasm"));
    let mut rows = Vec::new();

    let mut named: Vec<(String, PathBuf)> = STAGES
        .iter()
        .map(|s| (s.to_string(), component(s)))
        .collect();
    named.push(("misbehave".into(), component("misbehave")));
    for (name, time, bytes) in bench::compile_times(&engine, &named)? {
        rows.push(Row::new(
            format!("compile {name} ({} KiB)", bytes / 1024),
            time.as_secs_f64() * 1e3,
            "ms",
        ));
    }
    for (name, path) in &named {
        let (instantiate, store) =
            bench::instantiate_time(&engine, path, args.iterations, scratch)?;
        rows.push(
            Row::new(
                format!("instantiate {name}, median"),
                instantiate.median_us,
                "us",
            )
            .goal(Goal::AtMost(5.0)),
        );
        rows.push(Row::new(
            format!("  new store with WASI context for {name}, median"),
            store.median_us,
            "us",
        ));
    }
    let trivial = bench::trivial_pipeline_time(
        &engine,
        &component("misbehave"),
        args.iterations.min(200),
        scratch,
    )?;
    let tmpfs = on_tmpfs(scratch);
    rows.push(
        Row::new(
            format!(
                "trivial 3-stage job end to end ({}), p50",
                if tmpfs { "tmpfs" } else { "on disk" }
            ),
            trivial.median_us / 1e3,
            "ms",
        )
        .goal(Goal::AtMost(if tmpfs { 1.0 } else { 2.0 })),
    );
    rows.push(Row::new(
        format!(
            "trivial 3-stage job end to end ({}), p90",
            if tmpfs { "tmpfs" } else { "on disk" }
        ),
        trivial.p90_us / 1e3,
        "ms",
    ));

    let dims = [args.size, args.size, args.slices];
    let cmp = bench::segment_sandbox_vs_native(
        &engine,
        &component("segment"),
        dims,
        args.repeats,
        scratch,
    )?;
    rows.push(
        Row::new(
            format!(
                "segment {}x{}x{} in the sandbox, median",
                dims[0], dims[1], dims[2]
            ),
            cmp.sandbox.median_us / 1e6,
            "s",
        )
        .baseline("native imaging", cmp.native.median_us / 1e6)
        .goal(Goal::RatioAtMost(1.10)),
    );
    rows.push(
        Row::new(
            "  of which compute (threshold, labelling, measuring), median",
            cmp.sandbox_compute.median_us / 1e6,
            "s",
        )
        .baseline("native imaging", cmp.native_compute.median_us / 1e6)
        .goal(Goal::RatioAtMost(1.25)),
    );
    for (i, step) in bench::segment::STEP_NAMES.iter().enumerate() {
        rows.push(
            Row::new(
                format!("    {step}, median"),
                cmp.sandbox_steps[i].median_us / 1e3,
                "ms",
            )
            .baseline("native imaging", cmp.native_steps[i].median_us / 1e3),
        );
    }
    rows.push(
        Row::new(
            "  reading and writing the volume (with instantiation), median",
            cmp.sandbox_io.median_us / 1e6,
            "s",
        )
        .baseline("native file I/O", cmp.native_io.median_us / 1e6),
    );
    rows.push(Row::new(
        "  segment stage peak linear memory",
        cmp.sandbox_memory_peak as f64 / (1 << 20) as f64,
        "MiB",
    ));

    let ports = bench::ports_throughput(
        &engine,
        &component("port_probe"),
        args.port_message,
        args.port_messages,
        args.repeats,
        scratch,
    )?;
    let gbps = |s: &bench::stats::Summary| bench::rate(ports.bytes_per_run, s.median_us) / 1e9;
    rows.push(
        Row::new(
            format!(
                "ports: {} x {} KiB messages between two stages, median",
                args.port_messages,
                args.port_message / 1024
            ),
            gbps(&ports.ward),
            "GB/s",
        )
        .baseline("native bounded channel", gbps(&ports.native))
        .goal(Goal::RatioAtLeast(0.95)),
    );

    if args.dicom_instances > 0 {
        let ingest = bench::dimse_ingest(
            engine.clone(),
            args.dicom_instances,
            args.dicom_size,
            scratch,
        )?;
        let mb = ingest.bytes as f64 / 1e6;
        for associations in [1, 4] {
            let time = |receiver: &str| {
                ingest
                    .runs
                    .iter()
                    .find(|r| r.receiver == receiver && r.associations == associations)
                    .map_or(f64::NAN, |r| r.seconds)
            };
            let (ward, dcmtk) = (time("ward"), time("storescp"));
            let what = format!(
                "DIMSE ingest of {} CT {}² instances ({mb:.0} MB) over {associations} association(s)",
                ingest.instances, args.dicom_size
            );
            let mut row = Row::new(
                format!("{what}, instances/s"),
                ingest.instances as f64 / ward,
                "/s",
            )
            .baseline("storescp", ingest.instances as f64 / dcmtk);
            if associations == 4 {
                row = row.goal(Goal::RatioAtLeast(1.3));
            }
            rows.push(row);
            rows.push(
                Row::new(format!("{what}, MB/s"), mb / ward, "MB/s")
                    .baseline("storescp", mb / dcmtk),
            );
        }
    }

    if args.service_jobs > 0 {
        let load = bench::service_load(
            engine.clone(),
            &components,
            args.service_jobs,
            args.service_clients,
            scratch,
        )?;
        let library =
            bench::library_jobs_per_s(engine, &components, args.service_jobs, load.slots, scratch)?;
        let what = format!(
            "job service: {} trivial jobs from {} clients",
            load.jobs, load.clients
        );
        rows.push(Row::new(
            format!("{what}, submitted"),
            load.submitted_per_s,
            "/s",
        ));
        rows.push(
            Row::new(format!("{what}, completed"), load.completed_per_s, "/s")
                .baseline(
                    format!("the same jobs through the library, {} at once", load.slots),
                    library,
                )
                .goal(Goal::AtLeast(500.0)),
        );
        rows.push(Row::new(
            format!("{what}, submission latency p50"),
            load.submit.median_us / 1e3,
            "ms",
        ));
        rows.push(
            Row::new(
                format!("{what}, submission latency p99"),
                load.submit.p99_us / 1e3,
                "ms",
            )
            .goal(Goal::AtMost(10.0)),
        );
        rows.push(Row::new(
            format!("{what}, succeeded (none lost)"),
            load.succeeded as f64,
            "",
        ));
        anyhow::ensure!(
            load.succeeded == load.jobs,
            "{} of {} jobs succeeded",
            load.succeeded,
            load.jobs
        );
    }

    if let Some(host) = &args.registry {
        let registry = args.registry_args.registry()?;
        let figures = bench::registry_round_trip(
            &registry,
            host,
            &component("segment"),
            args.registry_repeats,
            scratch,
        )?;
        let ms = |s: &bench::stats::Summary| s.median_us / 1e3;
        let kib = figures.bytes / 1024;
        rows.push(Row::new(
            format!("registry: publish segment ({kib} KiB): push and sign, median"),
            ms(&figures.publish),
            "ms",
        ));
        rows.push(
            Row::new(
                format!(
                    "registry: pull and verify segment ({kib} KiB) into an empty store, median"
                ),
                ms(&figures.pull_verify),
                "ms",
            )
            .baseline("skopeo copy", ms(&figures.skopeo_copy)),
        );
        rows.push(
            Row::new(
                "registry: cold start of segment (pull, verify, compile, first instantiate), median",
                ms(&figures.cold_start),
                "ms",
            )
            .baseline("skopeo copy", ms(&figures.skopeo_copy)),
        );
    }

    if args.inference_runs > 0 && args.inference_model.is_file() {
        let in_sandbox = args
            .in_sandbox_inference
            .as_deref()
            .map(std::path::absolute)
            .transpose()?;
        let f = bench::inference_figures(
            &engine,
            &component("nn_probe"),
            in_sandbox.as_deref(),
            &args.inference_model,
            args.inference_size,
            args.inference_slices,
            args.inference_runs,
            args.inference_threads,
            scratch,
        )?;
        let ms = |s: &bench::stats::Summary| s.median_us / 1e3;
        let [_, _, z, y, x] = f.dims;
        let what = format!(
            "inference: {} on {x}x{y}x{z}, {} threads",
            args.inference_model
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            f.threads
        );
        rows.push(
            Row::new(
                format!("{what}, through wasi:nn, median"),
                ms(&f.ward),
                "ms",
            )
            .baseline("onnxruntime in Python", ms(&f.python))
            .goal(Goal::RatioAtMost(1.10)),
        );
        if let Some(s) = &f.in_sandbox {
            rows.push(
                Row::new(
                    format!("{what}, in the sandbox without the host, median"),
                    ms(s),
                    "ms",
                )
                .baseline("through wasi:nn", ms(&f.ward)),
            );
        }
    }

    if args.render_slices > 0 {
        let r = bench::render_figures(
            engine.clone(),
            &components,
            dims,
            args.render_slices,
            scratch,
        )?;
        let ms = |s: &bench::stats::Summary| s.median_us / 1e3;
        let [x, y, z] = r.dims;
        rows.push(
            Row::new(
                format!("render server: {x}x{y} slice as PNG (window, overlay), p50"),
                ms(&r.slice),
                "ms",
            )
            .baseline("copy of the slice + PNG", ms(&r.slice_baseline)),
        );
        rows.push(
            Row::new(
                format!("render server: {x}x{y} slice as PNG, p99"),
                r.slice.p99_us / 1e3,
                "ms",
            )
            .baseline(
                "copy of the slice + PNG, p99",
                r.slice_baseline.p99_us / 1e3,
            ),
        );
        rows.push(Row::new(
            format!("render server: turning MIP of {x}x{y}x{z}, per angle, p50"),
            ms(&r.mip),
            "ms",
        ));
        rows.push(
            Row::new(
                "render server: job state change to its SSE event, p50",
                ms(&r.sse),
                "ms",
            )
            .baseline("HTTP round trip to /healthz", ms(&r.round_trip)),
        );
        rows.push(
            Row::new(
                "render server: job state change to its SSE event, p99",
                r.sse.p99_us / 1e3,
                "ms",
            )
            .baseline(
                "HTTP round trip to /healthz, p99",
                r.round_trip.p99_us / 1e3,
            ),
        );
    }

    Ok(rows)
}
