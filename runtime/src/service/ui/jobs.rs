//! The jobs pages: the list (filters and pages in the URL), a job (facts, graph, stages,
//! timeline, ports, results, pictures, exports), cancel and start with confirmation, logs.

use super::signin::CsrfForm;
use super::{dag, format, page, Chrome, Signed, UiError};
use crate::service::api::jobs::{cancel_job, job_of, start_job};
use crate::service::api::{blocking, Principal};
use crate::service::config::Role;
use crate::service::db::{JobRow, Priority};
use crate::service::{scheduler, Service};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Rows per page of the list.
const PAGE: usize = 50;
const STATES: &[&str] = &[
    "created",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
];
const PRIORITIES: &[&str] = &["lower", "normal", "higher", "immediate"];

/// A job as a row of the list.
pub struct JobItem {
    pub id: String,
    pub state: String,
    pub icon: &'static str,
    pub class: &'static str,
    pub pending: Option<String>,
    pub pipeline: String,
    pub priority: &'static str,
    pub submitted: String,
    pub started: String,
    pub duration: String,
    pub attempts: i64,
}

pub struct Opt {
    pub value: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "ui/jobs.html")]
struct JobsPage {
    chrome: Chrome,
    states: Vec<Opt>,
    priorities: Vec<Opt>,
    pipeline: String,
    jobs: Vec<JobItem>,
    total: usize,
    first: usize,
    last: usize,
    query: String,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/job_rows.html")]
struct RowsFragment {
    jobs: Vec<JobItem>,
    total: usize,
    first: usize,
    last: usize,
}

#[derive(Template)]
#[template(path = "ui/job_row.html")]
pub struct RowFragment {
    pub job: JobItem,
}

#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

impl ListQuery {
    fn state(&self) -> Option<&str> {
        self.state.as_deref().filter(|s| STATES.contains(s))
    }

    fn pipeline(&self) -> Option<&str> {
        self.pipeline
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn priority(&self) -> Option<Priority> {
        self.priority.as_deref().and_then(Priority::parse)
    }

    /// The query string of these filters at page `page`.
    fn to_query(&self, page: usize) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.state() {
            parts.push(format!("state={s}"));
        }
        if let Some(p) = self.pipeline() {
            parts.push(format!("pipeline={}", format::query_value(p)));
        }
        if let Some(p) = self.priority() {
            parts.push(format!("priority={}", p.name()));
        }
        if page > 0 {
            parts.push(format!("page={page}"));
        }
        parts.join("&")
    }
}

/// The icon and CSS class of a job or stage state.
pub fn icon(state: &str) -> (&'static str, &'static str) {
    dag::state_icon(state)
}

/// Why each queued job of `tenant` waits, by id.
fn pending_reasons(service: &Service, jobs: &[&JobRow]) -> Result<Vec<Option<String>>, UiError> {
    if !jobs.iter().any(|j| j.state == "queued") {
        return Ok(vec![None; jobs.len()]);
    }
    let running = service.db.running()?;
    let queued = service.db.queued()?;
    Ok(jobs
        .iter()
        .map(|j| {
            (j.state == "queued")
                .then(|| scheduler::pending_reason(&service.config, &running, &queued, &j.id))
                .flatten()
        })
        .collect())
}

pub fn item(job: &JobRow, pipeline: String, pending: Option<String>) -> JobItem {
    let (icon, class) = icon(&job.state);
    JobItem {
        id: job.id.clone(),
        state: job.state.clone(),
        icon,
        class,
        pending,
        pipeline,
        priority: job.priority.name(),
        submitted: format::utc(Some(job.created)),
        started: format::utc(job.started),
        duration: format::span(job.started, job.finished),
        attempts: job.attempts,
    }
}

/// The row of job `id`, as the live list swaps it in.
pub fn row_html(service: &Service, principal: &Principal, id: &str) -> Result<String, UiError> {
    let job = job_of(service, principal, id)?;
    let pipeline = service
        .db
        .pipeline_by_id(&principal.tenant, job.pipeline_id)?
        .map_or_else(|| "?".into(), |p| format!("{}:{}", p.name, p.version));
    let pending = pending_reasons(service, &[&job])?.pop().flatten();
    RowFragment {
        job: item(&job, pipeline, pending),
    }
    .render()
    .map_err(UiError::internal)
}

fn list_items(
    service: &Service,
    principal: &Principal,
    q: &ListQuery,
) -> Result<(Vec<JobItem>, usize, usize), UiError> {
    let page = q.page.unwrap_or(0).min(100_000);
    let (rows, total) = service.db.jobs_for_ui(
        &principal.tenant,
        q.state(),
        q.pipeline(),
        q.priority(),
        page * PAGE,
        PAGE,
    )?;
    let refs: Vec<&JobRow> = rows.iter().map(|(j, _, _)| j).collect();
    let reasons = pending_reasons(service, &refs)?;
    let items = rows
        .iter()
        .zip(reasons)
        .map(|((job, name, version), why)| item(job, format!("{name}:{version}"), why))
        .collect();
    Ok((items, total, page))
}

pub async fn list(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let (jobs, total, page_no) = list_items(&service, signed.principal(), &q)?;
        let first = page_no * PAGE + 1;
        let last = page_no * PAGE + jobs.len();
        page(&JobsPage {
            chrome: signed.chrome(&service, "jobs"),
            states: STATES
                .iter()
                .map(|s| Opt {
                    value: s,
                    selected: q.state() == Some(s),
                })
                .collect(),
            priorities: PRIORITIES
                .iter()
                .map(|p| Opt {
                    value: p,
                    selected: q.priority().map(|x| x.name()) == Some(p),
                })
                .collect(),
            pipeline: q.pipeline().unwrap_or_default().to_string(),
            total,
            first,
            last,
            query: q.to_query(page_no),
            prev: (page_no > 0).then(|| q.to_query(page_no - 1)),
            next: (last < total).then(|| q.to_query(page_no + 1)),
            jobs,
        })
    })
    .await
}

/// The list's rows alone: what htmx loads when a job is added, and every few seconds as
/// the fallback of the live updates.
pub async fn rows(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let (jobs, total, page_no) = list_items(&service, signed.principal(), &q)?;
        page(&RowsFragment {
            first: page_no * PAGE + 1,
            last: page_no * PAGE + jobs.len(),
            total,
            jobs,
        })
    })
    .await
}

/// Runs blocking work (SQLite, files) off the async threads.
pub async fn blocking_ui<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(UiError::internal)?
}

pub struct StageItem {
    pub name: String,
    pub state: String,
    pub icon: &'static str,
    pub class: &'static str,
    pub started: String,
    pub duration: String,
    pub instantiate: String,
    pub peak: String,
    pub cap: String,
    pub reason: Option<String>,
}

pub struct PortItem {
    pub writer: String,
    pub reader: String,
    pub messages: u64,
    pub bytes: String,
    pub peak: String,
    pub capacity: u64,
    pub writer_blocked: String,
    pub reader_blocked: String,
}

pub struct OutputItem {
    pub stage: String,
    pub output: String,
    pub volume: bool,
}

pub struct PictureItem {
    pub url: String,
    pub caption: String,
}

pub struct ExportItem {
    pub file: String,
    pub destination: String,
    pub outcome: &'static str,
    pub attempts: u64,
    pub message: String,
}

#[derive(Template)]
#[template(path = "ui/job_stages.html")]
pub struct StagesFragment {
    pub id: String,
    pub state: String,
    pub icon: &'static str,
    pub class: &'static str,
    pub dag_svg: String,
    pub stages: Vec<StageItem>,
    pub timeline_svg: String,
}

#[derive(Template)]
#[template(path = "ui/job.html")]
struct JobPage {
    chrome: Chrome,
    id: String,
    /// The digest of the stages fragment as rendered, for the live updates.
    seen: String,
    state: String,
    icon: &'static str,
    class: &'static str,
    pending: Option<String>,
    failure: Option<String>,
    pipeline: String,
    priority: &'static str,
    attempts: i64,
    max_attempts: i64,
    payloads: Vec<String>,
    submitted: String,
    started: String,
    finished: String,
    duration: String,
    parameters: Vec<(String, String)>,
    can_cancel: bool,
    can_start: bool,
    dag_svg: String,
    stages: Vec<StageItem>,
    timeline_svg: String,
    ports: Vec<PortItem>,
    outputs: Vec<OutputItem>,
    pictures: Vec<PictureItem>,
    exports: Vec<ExportItem>,
}

/// What the UI reads of a job: its row, its pipeline, its latest attempt's summary.
pub struct JobView {
    pub job: JobRow,
    pub pipeline: Option<crate::pipeline::Pipeline>,
    pub pipeline_name: String,
    pub summary: Value,
    pub attempt_dir: Option<PathBuf>,
}

pub fn job_view(service: &Service, principal: &Principal, id: &str) -> Result<JobView, UiError> {
    let job = job_of(service, principal, id).map_err(|_| UiError::not_found("such job"))?;
    let row = service
        .db
        .pipeline_by_id(&principal.tenant, job.pipeline_id)?;
    let pipeline = row.as_ref().and_then(|p| {
        crate::pipeline::parse_stored(&service.config.components, &p.name, &p.yaml).ok()
    });
    let attempt_dir = service.latest_attempt_dir(&job.id, job.attempts);
    let summary = attempt_dir
        .as_ref()
        .and_then(|d| std::fs::read(d.join("summary.json")).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    Ok(JobView {
        pipeline_name: row.map_or_else(|| "?".into(), |p| format!("{}:{}", p.name, p.version)),
        job,
        pipeline,
        summary,
        attempt_dir,
    })
}

impl JobView {
    /// A stage's state: from the summary of the latest attempt, else pending.
    fn stage_state(&self, name: &str) -> String {
        self.summary["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name))
            .and_then(|s| s["status"].as_str())
            .map_or_else(
                || {
                    if self.job.state == "cancelled" {
                        "cancelled".into()
                    } else {
                        "pending".into()
                    }
                },
                str::to_string,
            )
    }

    pub fn stages_fragment(&self) -> StagesFragment {
        let dag_svg = self
            .pipeline
            .as_ref()
            .map(|p| dag::svg(p, |s| self.stage_state(s)))
            .unwrap_or_default();
        let names: Vec<String> = match &self.pipeline {
            Some(p) => p.stages.iter().map(|s| s.name.clone()).collect(),
            None => self.summary["stages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let record = |name: &str| {
            self.summary["stages"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let stages: Vec<StageItem> = names
            .iter()
            .map(|name| {
                let r = record(name);
                let state = self.stage_state(name);
                let (icon, class) = icon(&state);
                StageItem {
                    name: name.clone(),
                    icon,
                    class,
                    started: r["started_at_s"]
                        .as_f64()
                        .map_or_else(|| "—".into(), |s| format!("{s:.2}")),
                    duration: format::seconds(r["duration_s"].as_f64()),
                    instantiate: r["instantiate_ms"]
                        .as_f64()
                        .map_or_else(|| "—".into(), |ms| format!("{ms:.2} ms")),
                    peak: r["memory_peak_bytes"]
                        .as_u64()
                        .map_or_else(|| "—".into(), format::bytes),
                    cap: r["memory_cap_bytes"]
                        .as_u64()
                        .map_or_else(|| "—".into(), format::bytes),
                    reason: r["reason"].as_object().map(|o| {
                        format!(
                            "{}: {}",
                            o.get("kind").and_then(Value::as_str).unwrap_or("failed"),
                            o.get("message").and_then(Value::as_str).unwrap_or("")
                        )
                    }),
                    state,
                }
            })
            .collect();
        let timeline_svg = timeline(&self.summary);
        let (icon, class) = icon(&self.job.state);
        StagesFragment {
            id: self.job.id.clone(),
            state: self.job.state.clone(),
            icon,
            class,
            dag_svg,
            stages,
            timeline_svg,
        }
    }
}

/// Bars from each stage's start to its end (or to now while it runs), in seconds from the
/// job's start, with the figures written beside them.
fn timeline(summary: &Value) -> String {
    let Some(stages) = summary["stages"].as_array() else {
        return String::new();
    };
    let bars: Vec<(String, f64, f64)> = stages
        .iter()
        .filter_map(|s| {
            let start = s["started_at_s"].as_f64()?;
            Some((
                s["name"].as_str().unwrap_or("?").to_string(),
                start,
                s["duration_s"].as_f64().unwrap_or(0.0),
            ))
        })
        .collect();
    if bars.is_empty() {
        return String::new();
    }
    let end = bars
        .iter()
        .map(|(_, s, d)| s + d)
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let (label_w, bar_w, row_h) = (150.0, 420.0, 22.0);
    let height = row_h * bars.len() as f64 + 8.0;
    let width = label_w + bar_w + 110.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="stage timeline">"#
    );
    for (i, (name, start, duration)) in bars.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let x = label_w + start / end * bar_w;
        let w = (duration / end * bar_w).max(1.5);
        out.push_str(&format!(
            r#"<text x="0" y="{ty}" class="name">{name}</text><rect class="bar" x="{x:.1}" y="{y}" width="{w:.1}" height="{h}"/><text x="{tx:.1}" y="{ty}" class="figure">{start:.2} s + {duration:.2} s</text>"#,
            ty = y + 14.0,
            h = row_h - 6.0,
            tx = label_w + bar_w + 6.0,
            name = format::escape(name),
        ));
    }
    out.push_str("</svg>");
    out
}

fn outputs_of(summary: &Value, attempt_dir: Option<&PathBuf>) -> Vec<OutputItem> {
    let Some(dir) = attempt_dir else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in summary["stages"].as_array().into_iter().flatten() {
        let stage = s["name"].as_str().unwrap_or_default();
        for (name, _) in s["outputs"].as_object().into_iter().flatten() {
            let path = dir.join("results").join(stage).join(name);
            if path.is_dir() {
                out.push(OutputItem {
                    stage: stage.to_string(),
                    output: name.clone(),
                    volume: path.join("volume.json").is_file() && path.join("volume.raw").is_file(),
                });
            }
        }
    }
    out
}

/// The PNGs stages wrote, at most a few dozen.
fn pictures_of(
    id: &str,
    outputs: &[OutputItem],
    attempt_dir: Option<&PathBuf>,
) -> Vec<PictureItem> {
    let Some(dir) = attempt_dir else {
        return Vec::new();
    };
    let mut pictures = Vec::new();
    for o in outputs {
        let Ok(entries) = std::fs::read_dir(dir.join("results").join(&o.stage).join(&o.output))
        else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.ends_with(".png"))
            .collect();
        names.sort();
        for n in names.into_iter().take(24) {
            pictures.push(PictureItem {
                url: format!(
                    "/ui/jobs/{id}/results/{}/{}/{}?inline=1",
                    o.stage,
                    o.output,
                    format::query_value(&n)
                ),
                caption: format!("{} / {} / {n}", o.stage, o.output),
            });
        }
    }
    pictures
}

fn exports_of(attempt_dir: Option<&PathBuf>) -> Vec<ExportItem> {
    let Some(records) = attempt_dir
        .and_then(|d| std::fs::read(d.join("exports.json")).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Vec::new();
    };
    records
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| ExportItem {
            file: r["file"]
                .as_str()
                .and_then(|f| std::path::Path::new(f).file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            destination: r["destination"].as_str().unwrap_or_default().to_string(),
            outcome: if r["ok"] == true {
                "stored"
            } else if r["pending"] == true {
                "pending"
            } else {
                "failed"
            },
            attempts: r["attempts"].as_u64().unwrap_or(0),
            message: r["message"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

pub async fn show(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let v = job_view(&service, signed.principal(), &id)?;
        let job = &v.job;
        let (icon, class) = icon(&job.state);
        let pending = if job.state == "queued" {
            pending_reasons(&service, &[job])?.pop().flatten()
        } else {
            None
        };
        let operator = signed.principal().role >= Role::Operator;
        let fragment = v.stages_fragment();
        let seen = super::live::digest(&fragment.render().map_err(UiError::internal)?);
        let outputs = outputs_of(&v.summary, v.attempt_dir.as_ref());
        let mut payloads = service.db.job_payloads(&job.id)?;
        if payloads.is_empty() {
            payloads.push(job.payload_id.clone());
        }
        let ports = v.summary["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| PortItem {
                writer: p["writer"].as_str().unwrap_or_default().to_string(),
                reader: p["reader"].as_str().unwrap_or_default().to_string(),
                messages: p["messages"].as_u64().unwrap_or(0),
                bytes: format::bytes(p["bytes"].as_u64().unwrap_or(0)),
                peak: format::bytes(p["peak_buffered_bytes"].as_u64().unwrap_or(0)),
                capacity: p["capacity"].as_u64().unwrap_or(0),
                writer_blocked: format::seconds(p["writer_blocked_s"].as_f64()),
                reader_blocked: format::seconds(p["reader_blocked_s"].as_f64()),
            })
            .collect();
        let parameters = v.summary["parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect();
        let cluster = service.mode == crate::service::Mode::Cluster;
        page(&JobPage {
            chrome: signed.chrome(&service, "jobs"),
            seen,
            id: job.id.clone(),
            state: job.state.clone(),
            icon,
            class,
            pending,
            failure: job.failure.clone(),
            pipeline: v.pipeline_name.clone(),
            priority: job.priority.name(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            payloads,
            submitted: format::utc(Some(job.created)),
            started: format::utc(job.started),
            finished: format::utc(job.finished),
            duration: format::span(job.started, job.finished),
            parameters,
            can_cancel: operator && ["created", "queued", "running"].contains(&job.state.as_str()),
            can_start: operator
                && if cluster {
                    job.state == "created"
                } else {
                    ["created", "failed", "cancelled"].contains(&job.state.as_str())
                },
            pictures: pictures_of(&job.id, &outputs, v.attempt_dir.as_ref()),
            exports: exports_of(v.attempt_dir.as_ref()),
            outputs,
            ports,
            dag_svg: fragment.dag_svg,
            stages: fragment.stages,
            timeline_svg: fragment.timeline_svg,
        })
    })
    .await
}

/// The graph, stages table and timeline alone (what the live updates swap in).
pub async fn stages(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    blocking_ui(move || page(&job_view(&service, signed.principal(), &id)?.stages_fragment())).await
}

pub async fn dag_svg(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let svg = job_view(&service, signed.principal(), &id)?
            .stages_fragment()
            .dag_svg;
        Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
    })
    .await
}

#[derive(Template)]
#[template(path = "ui/confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    id: String,
    verb: &'static str,
    action: &'static str,
    consequence: &'static str,
}

fn confirm(
    service: &Service,
    signed: &Signed,
    id: &str,
    action: &'static str,
) -> Result<Response, UiError> {
    if signed.principal().role < Role::Operator {
        return Err(UiError::forbidden("A viewer's token cannot change jobs."));
    }
    job_of(service, signed.principal(), id).map_err(|_| UiError::not_found("such job"))?;
    let (verb, consequence) = match action {
        "cancel" => (
            "Cancel",
            "A queued job will not run; a running job's stages are stopped. Its payload is kept.",
        ),
        _ => (
            "Start",
            "The job is queued again and runs from its untouched payload as a new attempt.",
        ),
    };
    page(&ConfirmPage {
        chrome: signed.chrome(service, "jobs"),
        id: id.to_string(),
        verb,
        action,
        consequence,
    })
}

pub async fn confirm_cancel(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    blocking_ui(move || confirm(&service, &signed, &id, "cancel")).await
}

pub async fn confirm_start(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    blocking_ui(move || confirm(&service, &signed, &id, "start")).await
}

pub async fn cancel(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    change(service, signed, id, form, cancel_job).await
}

pub async fn start(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    change(service, signed, id, form, start_job).await
}

/// A confirmed cancel or start: the API's own function, then back to the job's page.
async fn change(
    service: Arc<Service>,
    signed: Signed,
    id: String,
    form: CsrfForm,
    act: fn(&Service, &Principal, &str) -> Result<JobRow, crate::service::api::ApiError>,
) -> Result<Response, UiError> {
    signed.check_post(&form.csrf, Role::Operator)?;
    let id = blocking(move || act(&service, signed.principal(), &id).map(|j| j.id)).await?;
    Ok(Redirect::to(&format!("/ui/jobs/{id}")).into_response())
}

/// The most of a log a page shows (its end); the download has it all.
const LOG_PAGE_BYTES: u64 = 1 << 20;

/// The log file of `stage` of job `id`'s latest attempt.
pub fn log_path(
    service: &Service,
    principal: &Principal,
    id: &str,
    stage: &str,
) -> Result<PathBuf, UiError> {
    let v = job_view(service, principal, id)?;
    let known = v
        .pipeline
        .as_ref()
        .is_some_and(|p| p.stages.iter().any(|s| s.name == stage));
    if !known {
        return Err(UiError::not_found("such stage"));
    }
    let dir = v
        .attempt_dir
        .ok_or_else(|| UiError::not_found("log: the job has not run"))?;
    Ok(dir.join("logs").join(format!("{stage}.log")))
}

#[derive(Template)]
#[template(path = "ui/log.html")]
struct LogPage {
    chrome: Chrome,
    id: String,
    stage: String,
    text: String,
    size: u64,
    follow: bool,
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    follow: Option<String>,
}

pub async fn log(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path((id, stage)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let path = log_path(&service, signed.principal(), &id, &stage)?;
        let (text, size) = read_tail(&path, LOG_PAGE_BYTES);
        page(&LogPage {
            chrome: signed.chrome(&service, "jobs"),
            id,
            stage,
            text,
            size,
            follow: q.follow.is_some(),
        })
    })
    .await
}

/// The last `limit` bytes of a file as text, and the file's size.
pub fn read_tail(path: &std::path::Path, limit: u64) -> (String, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), 0);
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = size.saturating_sub(limit);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.take(limit).read_to_end(&mut bytes);
    }
    (
        String::from_utf8_lossy(&bytes).into_owned(),
        from + bytes.len() as u64,
    )
}

pub async fn log_download(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path((id, stage)): Path<(String, String)>,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let path = log_path(&service, signed.principal(), &id, &stage)?;
        let bytes = std::fs::read(&path).unwrap_or_default();
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}-{stage}.log\""),
                ),
            ],
            bytes,
        )
            .into_response())
    })
    .await
}
