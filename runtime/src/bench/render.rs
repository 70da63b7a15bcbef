//! The render server's figures: a 512×512 slice drawn as PNG (window, overlay, encoding)
//! against a plain copy of the slice's bytes encoded as PNG with the same `png` crate; the
//! turning maximum-intensity projection of a 512×512×300 volume, per angle; and the delay
//! from a job's state change to its Server-Sent Event reaching a client, against an HTTP
//! round trip to the same server.

use super::stats::{summarize, Summary};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::engine::Engine;
use ward::service::config::token_hash;
use ward::service::db::Priority;
use ward::service::ui::render::{self, Loaded, Picture, View, Window, MIP_ANGLES};

pub struct RenderFigures {
    pub dims: [usize; 3],
    pub slice: Summary,
    pub slice_baseline: Summary,
    pub mip: Summary,
    pub sse: Summary,
    pub round_trip: Summary,
}

/// A CT-like volume: air, a soft-tissue ellipse, a bone ring and a bright lesion, with a
/// little deterministic noise; and its labels (bone 1, lesion 2).
fn phantom(dims: [usize; 3]) -> (imaging::Volume<i16>, imaging::Volume<u16>) {
    let [nx, ny, nz] = dims;
    let mut ct = vec![-1000i16; nx * ny * nz];
    let mut labels = vec![0u16; nx * ny * nz];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let x = (i as f64 - nx as f64 / 2.0) / (nx as f64 * 0.4);
                let y = (j as f64 - ny as f64 / 2.0) / (ny as f64 * 0.3);
                let r = (x * x + y * y).sqrt();
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((seed >> 59) as i16) - 16;
                let idx = i + nx * (j + ny * k);
                let z = k as f64 / nz as f64;
                let (v, l) = if r < 0.15 && (0.3..0.7).contains(&z) {
                    (300, 2)
                } else if (0.75..0.85).contains(&r) {
                    (900, 1)
                } else if r < 1.0 {
                    (40, 0)
                } else {
                    (-1000, 0)
                };
                ct[idx] = v + noise;
                labels[idx] = l;
            }
        }
    }
    let volume = imaging::Volume::new(dims, [0.7, 0.7, 1.5], [0.0; 3], ct);
    let labels = volume.with_data(labels);
    (volume, labels)
}

/// Encodes a copy of the slice's bytes as a 16-bit grey PNG: the least a slice could cost.
fn baseline_slice(volume: &imaging::Volume<i16>, k: usize) -> usize {
    let [nx, ny, _] = volume.dims;
    let plane = &volume.data[k * nx * ny..(k + 1) * nx * ny];
    let bytes: Vec<u8> = plane.iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, nx as u32, ny as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Sixteen);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().expect("a PNG header");
        w.write_image_data(&bytes).expect("PNG data");
        w.finish().expect("a PNG");
    }
    out.len()
}

pub fn render_figures(
    engine: Arc<Engine>,
    components: &Path,
    dims: [usize; 3],
    slices: usize,
    scratch: &Path,
) -> anyhow::Result<RenderFigures> {
    let (ct, labels) = phantom(dims);
    let loaded = Loaded::new(ct, Some(labels), "bench".into());
    let window = Window {
        center: 40.0,
        width: 400.0,
    };
    // Interleaved, so machine noise falls on both sides alike.
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for n in 0..slices {
        let k = (n * 7919) % dims[2];
        let t = Instant::now();
        let png = render::draw(
            &loaded,
            &Picture {
                view: View::Slice(imaging::reformat::Plane::Axial, k),
                window,
                opacity: 35,
            },
        )?;
        ours.push(t.elapsed());
        std::hint::black_box(png);
        let t = Instant::now();
        std::hint::black_box(baseline_slice(&loaded.ct, k));
        base.push(t.elapsed());
    }
    let mut mip = Vec::new();
    for angle in 0..MIP_ANGLES {
        let t = Instant::now();
        std::hint::black_box(render::draw(
            &loaded,
            &Picture {
                view: View::Mip(angle),
                window: Window {
                    center: 300.0,
                    width: 1500.0,
                },
                opacity: 35,
            },
        )?);
        mip.push(t.elapsed());
    }
    let (sse, round_trip) = sse_delay(engine, components, scratch, 100)?;
    Ok(RenderFigures {
        dims,
        slice: summarize(&mut ours),
        slice_baseline: summarize(&mut base),
        mip: summarize(&mut mip),
        sse,
        round_trip,
    })
}

const TOKEN: &str = "render-bench-token";

/// The delay from a job's state change in the service to its event at a client reading
/// `/ui/events`, `n` times; and, interleaved, a GET of `/healthz` on the same server.
fn sse_delay(
    engine: Arc<Engine>,
    components: &Path,
    scratch: &Path,
    n: usize,
) -> anyhow::Result<(Summary, Summary)> {
    // The scheduler is not started: the job only moves when this benchmark moves it.
    let (url, service) = super::service::serve_in_process(
        engine,
        components,
        scratch,
        "render-bench",
        TOKEN,
        false,
    )?;
    let yaml = "api-version: 0.1\nname: still\noperators:\n  - name: noop\n    component: {path: misbehave.wasm}\n    input: [{path: /payload}]\n";
    let pipeline = service.db.add_pipeline("bench", "still", yaml)?;
    service.db.begin_payload("bench", "pl-bench")?;
    service.db.complete_payload("pl-bench", 0, 0)?;
    let job = service.db.add_job(
        "job-bench",
        "bench",
        pipeline.id,
        "pl-bench",
        Priority::Normal,
        "created",
        1,
        0,
    )?;
    let session = service.ui.sessions.create(token_hash(TOKEN));
    let stream = ureq::get(&format!("{url}/ui/events"))
        .set("Cookie", &format!("ward_session={session}"))
        .call()
        .map_err(|e| anyhow::anyhow!("/ui/events: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        for line in BufReader::new(stream.into_reader()).lines() {
            let Ok(line) = line else { return };
            if line.starts_with("event: job-") && tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    let (mut delays, mut trips) = (Vec::new(), Vec::new());
    let states = [("created", "queued"), ("queued", "created")];
    for i in 0..n {
        let (from, to) = states[i % 2];
        let t = Instant::now();
        service.db.transition(&job.id, &[from], to)?;
        let at = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow::anyhow!("no event for a state change"))?;
        delays.push(at.duration_since(t));
        let t = Instant::now();
        ureq::get(&format!("{url}/healthz"))
            .call()
            .map_err(|e| anyhow::anyhow!("/healthz: {e}"))?;
        trips.push(t.elapsed());
    }
    Ok((summarize(&mut delays), summarize(&mut trips)))
}
