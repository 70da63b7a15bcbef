//! Load on the job service: concurrent clients submit trivial jobs over HTTP to a `ward
//! serve` running in this process; the figures are submissions per second, the latency of
//! a submission, and jobs completed per second, with a check that every job ran once.

use super::stats::{summarize, Summary};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::engine::Engine;
use ward::service::config::{token_hash, ServeConfig};
use ward::service::{api, Service};

pub struct ServiceLoad {
    pub jobs: usize,
    pub clients: usize,
    /// Jobs the service runs at once (its `capacity.jobs`).
    pub slots: usize,
    pub submit: Summary,
    pub submitted_per_s: f64,
    pub completed_per_s: f64,
    pub succeeded: usize,
}

const TOKEN: &str = "bench-token";

/// Starts a `ward serve` in this process on a free port, with one tenant `bench` whose
/// operator token is `token`, its state in `scratch/<name>-state`; its scheduler runs only
/// when `schedule`. Returns its URL and the service.
pub fn serve_in_process(
    engine: Arc<Engine>,
    components: &Path,
    scratch: &Path,
    name: &str,
    token: &str,
    schedule: bool,
) -> anyhow::Result<(String, Arc<Service>)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config_path = scratch.join(format!("{name}.yaml"));
    std::fs::write(
        &config_path,
        format!(
            "listen: 127.0.0.1:{port}\nstate: {name}-state\ncomponents: {}\ntenants:\n  - name: bench\n    tokens: [{{name: bench, role: operator, sha256: {}}}]\n",
            components.display(),
            token_hash(token)
        ),
    )?;
    let config = ServeConfig::load(&config_path)?;
    let listen = config.listen.clone();
    let service = Service::open(config, engine)?;
    if schedule {
        service.start();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(&listen))?;
    let served = service.clone();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let _ = axum::serve(listener, api::router(served)).await;
        })
    });
    Ok((format!("http://{listen}"), service))
}

fn call(method: &str, url: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let req = ureq::request(method, url).set("Authorization", &format!("Bearer {TOKEN}"));
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    Ok(r.map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?
        .into_json()?)
}

/// `jobs` trivial jobs (one noop stage) from `clients` concurrent clients.
pub fn service_load(
    engine: Arc<Engine>,
    components: &Path,
    jobs: usize,
    clients: usize,
    scratch: &Path,
) -> anyhow::Result<ServiceLoad> {
    let (url, service) = serve_in_process(engine, components, scratch, "serve-bench", TOKEN, true)?;
    let slots = service.config.capacity_jobs;
    let yaml = "api-version: 0.1\nname: trivial\noperators:\n  - name: noop\n    component: {path: misbehave.wasm}\n    parameters: {behaviour: noop}\n    input: [{path: /payload}]\n";
    let r = ureq::post(&format!("{url}/v1/pipelines"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_string(yaml)
        .map_err(|e| anyhow::anyhow!("storing the pipeline: {e}"))?;
    anyhow::ensure!(r.status() == 201, "storing the pipeline: {}", r.status());
    let payload_dir = scratch.join("serve-bench-payload");
    std::fs::create_dir_all(&payload_dir)?;
    std::fs::write(payload_dir.join("input.txt"), b"trivial payload")?;
    let tar = ward::service::archive::pack(&payload_dir)?;
    let payload: Value = ureq::post(&format!("{url}/v1/payloads"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_bytes(&tar)
        .map_err(|e| anyhow::anyhow!("uploading the payload: {e}"))?
        .into_json()?;
    let payload = payload["id"].as_str().unwrap_or_default().to_string();

    let started = Instant::now();
    let per_client = jobs.div_ceil(clients);
    let mut latencies: Vec<Duration> = std::thread::scope(|s| -> anyhow::Result<Vec<Duration>> {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (url, payload) = (&url, &payload);
                s.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut mine = Vec::new();
                    for _ in 0..per_client.min(jobs.saturating_sub(c * per_client)) {
                        let t = Instant::now();
                        call(
                            "POST",
                            &format!("{url}/v1/jobs"),
                            Some(json!({"pipeline": "trivial", "payload": payload, "start": true})),
                        )?;
                        mine.push(t.elapsed());
                    }
                    Ok(mine)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a client panicked"))??,
            );
        }
        Ok(all)
    })?;
    let submitted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let succeeded = loop {
        let mut done = 0;
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("{url}/v1/jobs?state=succeeded&page_size=1000");
            if let Some(t) = &token {
                path.push_str(&format!("&page_token={t}"));
            }
            let page = call("GET", &path, None)?;
            done += page["items"].as_array().map_or(0, Vec::len);
            match page["next_page_token"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        if done >= jobs || Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let completed = started.elapsed();
    anyhow::ensure!(
        latencies.len() == jobs,
        "{} of {jobs} submissions were answered",
        latencies.len()
    );
    Ok(ServiceLoad {
        jobs,
        clients,
        slots,
        submit: summarize(&mut latencies),
        submitted_per_s: jobs as f64 / submitted.as_secs_f64(),
        completed_per_s: succeeded as f64 / completed.as_secs_f64(),
        succeeded,
    })
}

/// The baseline of the service's figure: the same trivial jobs run through the library
/// (`run_job`) by `slots` threads, without HTTP, SQLite or the audit trail; jobs per second.
pub fn library_jobs_per_s(
    engine: &Engine,
    components: &Path,
    jobs: usize,
    slots: usize,
    scratch: &Path,
) -> anyhow::Result<f64> {
    use ward::jobs::{run_job, NoObserver};
    let pipeline_file = scratch.join("library-trivial.yaml");
    std::fs::write(
        &pipeline_file,
        format!(
            "api-version: 0.1\nname: trivial\noperators:\n  - name: noop\n    component: {{path: '{}'}}\n    parameters: {{behaviour: noop}}\n    input: [{{path: /payload}}]\n",
            components.join("misbehave.wasm").display()
        ),
    )?;
    let pipeline = ward::pipeline::load(&pipeline_file)?;
    let payload = scratch.join("library-payload");
    std::fs::create_dir_all(&payload)?;
    std::fs::write(payload.join("input.txt"), b"trivial payload")?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..slots.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= jobs {
                            return Ok(());
                        }
                        let request = super::bench_job(
                            &pipeline,
                            &payload,
                            scratch.join(format!("library-job-{n}")),
                            1,
                        );
                        let summary = run_job(engine, &request, Arc::new(NoObserver))?;
                        anyhow::ensure!(
                            summary.failure.is_none(),
                            "a library job failed: {:?}",
                            summary.failure
                        );
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a library worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(jobs as f64 / started.elapsed().as_secs_f64())
}
