//! `/v1/jobs`: create (from a pipeline and a payload), start, cancel, describe, list (paged),
//! logs and results.

use super::{blocking, ApiError, Principal};
use crate::service::config::Role;
use crate::service::db::{JobRow, Priority};
use crate::service::submit::new_job;
use crate::service::Service;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// A pipeline id, `name` (latest version) or `name:version`.
    pipeline: String,
    /// The payload; or, with `payloads`, the first of several.
    #[serde(default)]
    payload: Option<String>,
    /// Several payloads (Clara's input payloads): the stages see one directory per payload,
    /// named by its id, under the payload volume.
    #[serde(default)]
    payloads: Vec<String>,
    #[serde(default)]
    priority: Option<String>,
    /// Queue it at once (otherwise it waits for `start`).
    #[serde(default)]
    start: bool,
    /// Runs at most this many times when it fails (default 1: no retry).
    #[serde(default)]
    max_attempts: Option<u32>,
}

pub async fn create(
    State(service): State<Arc<Service>>,
    principal: Principal,
    body: Result<Json<CreateJob>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Role::Operator)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request("bad-json", e.body_text()))?;
    blocking(move || {
        let priority = match body.priority.as_deref() {
            None => Priority::Normal,
            Some(p) => Priority::parse(p).ok_or_else(|| {
                ApiError::bad_request(
                    "bad-priority",
                    format!("priority '{p}' must be lower, normal, higher or immediate"),
                )
            })?,
        };
        let max_attempts = body.max_attempts.unwrap_or(1);
        if !(1..=10).contains(&max_attempts) {
            return Err(ApiError::bad_request(
                "bad-attempts",
                "max_attempts must be from 1 to 10",
            ));
        }
        let pipeline = service
            .db
            .pipeline(&principal.tenant, &body.pipeline)?
            .ok_or_else(|| ApiError::not_found("pipeline", &body.pipeline))?;
        let ids: Vec<String> = body.payload.iter().chain(&body.payloads).cloned().collect();
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "no-payload",
                "give `payload` or `payloads`",
            ));
        }
        for id in &ids {
            let payload = service
                .db
                .payload(&principal.tenant, id)?
                .ok_or_else(|| ApiError::not_found("payload", id))?;
            if payload.state != "complete" {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "payload-incomplete",
                    format!("payload '{}' is still being written", payload.id),
                ));
            }
        }
        // Several payloads are recorded before the job can be started.
        let several = ids.len() > 1;
        let row = new_job(
            &service,
            &principal,
            &pipeline,
            &ids[0],
            priority,
            body.start && !several,
            max_attempts,
        )?;
        if several {
            service.db.set_job_payloads(&row.id, &ids)?;
            if body.start && service.db.transition(&row.id, &["created"], "queued")? {
                crate::service::job_events::queued(&row.id, &principal.tenant, &principal.name);
                service.notify();
            }
        }
        let row = job_of(&service, &principal, &row.id)?;
        Ok((StatusCode::CREATED, Json(json!(row))))
    })
    .await
}

pub fn job_of(service: &Service, principal: &Principal, id: &str) -> Result<JobRow, ApiError> {
    service
        .db
        .job(&principal.tenant, id)?
        .ok_or_else(|| ApiError::not_found("job", id))
}

pub async fn describe(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let job = job_of(&service, &principal, &id)?;
        let mut v = json!(job);
        if let Some(dir) = service.latest_attempt_dir(&job.id, job.attempts) {
            if let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) {
                v["summary"] = serde_json::from_str(&text).unwrap_or(Value::Null);
            }
        }
        Ok(Json(v))
    })
    .await
}

#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    page_size: Option<usize>,
    page_token: Option<String>,
}

pub async fn list(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let size = q.page_size.unwrap_or(100).clamp(1, 1000);
        let after = match &q.page_token {
            None => 0,
            Some(t) => t.parse::<i64>().map_err(|_| {
                ApiError::bad_request("bad-page-token", "page_token is not one this service gave")
            })?,
        };
        let rows = service
            .db
            .jobs(&principal.tenant, q.state.as_deref(), after, size + 1)?;
        let more = rows.len() > size;
        let page: Vec<&JobRow> = rows.iter().take(size).collect();
        let next = more
            .then(|| page.last().map(|r| r.seq.to_string()))
            .flatten();
        Ok(Json(json!({"items": page, "next_page_token": next})))
    })
    .await
}

pub async fn start(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Operator)?;
    blocking(move || Ok(Json(json!(start_job(&service, &principal, &id)?)))).await
}

/// Queues job `id` again (created, failed or cancelled): the API's and the UI's start.
pub fn start_job(service: &Service, principal: &Principal, id: &str) -> Result<JobRow, ApiError> {
    let job = job_of(service, principal, id)?;
    // A WardJob is one run, named by its job: a finished one is not started again.
    if service.mode == crate::service::Mode::Cluster && job.state != "created" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad-state",
            format!(
                "job '{id}' is {}; in cluster mode only a created job can be started (submit a new job to run it again)",
                job.state
            ),
        ));
    }
    // A failed or cancelled job runs again from its untouched payload.
    if !service
        .db
        .transition(&job.id, &["created", "failed", "cancelled"], "queued")?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad-state",
            format!(
                "job '{id}' is {}; only a created, failed or cancelled job can be started",
                job.state
            ),
        ));
    }
    service.audit(&principal.tenant, &principal.name, "job.queued", id, "");
    crate::service::job_events::queued(id, &principal.tenant, &principal.name);
    service.notify();
    job_of(service, principal, id)
}

pub async fn cancel(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Operator)?;
    blocking(move || Ok(Json(json!(cancel_job(&service, &principal, &id)?)))).await
}

/// Cancels job `id` (queued, or running: its stages are stopped): the API's and the UI's.
pub fn cancel_job(service: &Service, principal: &Principal, id: &str) -> Result<JobRow, ApiError> {
    let job = job_of(service, principal, id)?;
    if service
        .db
        .transition(&job.id, &["created", "queued"], "cancelled")?
    {
        service.audit(&principal.tenant, &principal.name, "job.cancelled", id, "");
        service.cancel_dispatched(id);
    } else if job.state == "running" {
        service.cancel_running(id);
        service.audit(
            &principal.tenant,
            &principal.name,
            "job.cancel-requested",
            id,
            "",
        );
    } else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad-state",
            format!("job '{id}' is {}: nothing to cancel", job.state),
        ));
    }
    job_of(service, principal, id)
}

#[derive(Deserialize)]
pub struct StageQuery {
    stage: Option<String>,
}

fn check_stage_name(stage: &str) -> Result<(), ApiError> {
    let ok = !stage.is_empty()
        && stage
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && !stage.contains("..");
    ok.then_some(())
        .ok_or_else(|| ApiError::bad_request("bad-stage", format!("'{stage}' is not a stage name")))
}

/// The directory of the latest attempt of job `id`; a job that has not run has none.
fn ran_dir(
    service: &Service,
    principal: &Principal,
    id: &str,
) -> Result<std::path::PathBuf, ApiError> {
    let job = job_of(service, principal, id)?;
    service
        .latest_attempt_dir(&job.id, job.attempts)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not-run",
                format!("job '{id}' has not run"),
            )
        })
}

pub async fn logs(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<StageQuery>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let dir = ran_dir(&service, &principal, &id)?;
        let logs = dir.join("logs");
        let mut text = String::new();
        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if let Some(stage) = &q.stage {
            check_stage_name(stage)?;
            names.retain(|n| n == &format!("{stage}.log"));
            if names.is_empty() {
                return Err(ApiError::not_found("log of stage", stage));
            }
        }
        for name in names {
            let body = std::fs::read_to_string(logs.join(&name)).unwrap_or_default();
            text.push_str(&format!("==> {name} <==\n{body}\n"));
        }
        Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
    })
    .await
}

pub async fn results(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<StageQuery>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let dir = ran_dir(&service, &principal, &id)?;
        let mut root = dir.join("results");
        if let Some(stage) = &q.stage {
            check_stage_name(stage)?;
            root = root.join(stage);
            if !root.is_dir() {
                return Err(ApiError::not_found("results of stage", stage));
            }
        }
        Ok(super::streams::tar_response(root))
    })
    .await
}
