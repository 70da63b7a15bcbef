//! `/v1/payloads`: uploads as tar archives, streamed to disk under the size limit, unpacked
//! into a directory that becomes the payload in one rename. A payload is immutable once
//! complete; an upload that fails leaves nothing behind.

use super::{blocking, ApiError, Principal};
use crate::service::archive::{self, ArchiveError};
use crate::service::config::Role;
use crate::service::Service;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

pub async fn upload(
    State(service): State<Arc<Service>>,
    principal: Principal,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Role::Operator)?;
    let tenant = service
        .config
        .tenant(&principal.tenant)
        .cloned()
        .ok_or_else(|| ApiError::internal("the caller's tenant is not configured"))?;
    let used = {
        let s = service.clone();
        let t = principal.tenant.clone();
        blocking(move || Ok(s.db.storage_used(&t)?)).await?
    };
    let limit = service
        .config
        .max_upload
        .min(tenant.quotas.storage.saturating_sub(used));
    let id = format!(
        "pl-{}",
        crate::jobs::new_job_id().trim_start_matches("job-")
    );
    let uploads = service.config.state.join("uploads");
    let staging = uploads.join(&id);
    let archive_path = uploads.join(format!("{id}.tar"));
    {
        let s = service.clone();
        let (t, i) = (principal.tenant.clone(), id.clone());
        blocking(move || Ok(s.db.begin_payload(&t, &i)?)).await?;
    }
    let result = receive(body, &archive_path, &staging, limit).await;
    let cleanup = |service: &Arc<Service>| {
        let _ = std::fs::remove_file(&archive_path);
        let _ = std::fs::remove_dir_all(&staging);
        let _ = service.db.forget_payload(&id);
    };
    let unpacked = match result {
        Ok(u) => u,
        Err(e) => {
            cleanup(&service);
            return Err(e);
        }
    };
    let target = service.payload_dir(&id);
    let renamed = std::fs::rename(&staging, &target);
    let _ = std::fs::remove_file(&archive_path);
    if let Err(e) = renamed {
        cleanup(&service);
        return Err(ApiError::internal(e));
    }
    {
        let s = service.clone();
        let i = id.clone();
        let (files, bytes) = (unpacked.files, unpacked.bytes);
        blocking(move || Ok(s.db.complete_payload(&i, files, bytes)?)).await?;
    }
    {
        let mut m = service.metrics.lock().unwrap_or_else(|e| e.into_inner());
        m.payloads_uploaded += 1;
        m.bytes_uploaded += unpacked.bytes;
    }
    service.audit(
        &principal.tenant,
        &principal.name,
        "payload.created",
        &id,
        &format!("{} files, {} bytes", unpacked.files, unpacked.bytes),
    );
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": id, "files": unpacked.files, "bytes": unpacked.bytes, "state": "complete"}),
        ),
    ))
}

/// Streams the body to `archive_path` (at most `limit` bytes), then unpacks it.
pub(super) async fn receive(
    mut body: Body,
    archive_path: &std::path::Path,
    staging: &std::path::Path,
    limit: u64,
) -> Result<archive::Unpacked, ApiError> {
    let too_large = move || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the upload is over the {limit} byte limit (max-upload or the tenant's storage quota)"),
        )
    };
    let storage_error = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage",
            format!("the upload cannot be stored: {e}"),
        )
    };
    let mut file = std::fs::File::create(archive_path).map_err(storage_error)?;
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request("bad-body", e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            // A tar archive holds a little more than its files; the files are bounded again
            // while unpacking.
            if received > limit.saturating_add(1 << 20) {
                return Err(too_large());
            }
            file.write_all(&data).map_err(storage_error)?;
        }
    }
    file.sync_all().map_err(storage_error)?;
    drop(file);
    let (archive_path, staging) = (archive_path.to_path_buf(), staging.to_path_buf());
    blocking(move || {
        std::fs::create_dir_all(&staging).map_err(storage_error)?;
        let file = std::fs::File::open(&archive_path).map_err(storage_error)?;
        archive::unpack(std::io::BufReader::new(file), &staging, limit).map_err(|e| match e {
            ArchiveError::TooLarge { .. } => too_large(),
            ArchiveError::Io { source, .. } => storage_error(source),
            other => ApiError::bad_request("bad-archive", other.to_string()),
        })
    })
    .await
}

pub async fn list(
    State(service): State<Arc<Service>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        Ok(Json(
            json!({"items": service.db.payloads(&principal.tenant)?}),
        ))
    })
    .await
}

pub async fn describe(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let row = service
            .db
            .payload(&principal.tenant, &id)?
            .ok_or_else(|| ApiError::not_found("payload", &id))?;
        Ok(Json(json!(row)))
    })
    .await
}

pub async fn download(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let row = service
            .db
            .payload(&principal.tenant, &id)?
            .filter(|p| p.state == "complete")
            .ok_or_else(|| ApiError::not_found("payload", &id))?;
        let tar = archive::pack(&service.payload_dir(&row.id)).map_err(ApiError::internal)?;
        Ok(([(header::CONTENT_TYPE, "application/x-tar")], tar).into_response())
    })
    .await
}

/// `POST /v1/datasets/{name}`: a named, read-only dataset (atlas, model weights) that
/// pipelines mount with `input: [{dataset: NAME, path: ...}]`. Immutable once stored.
pub async fn upload_dataset(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(name): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Role::Operator)?;
    let ok_name = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && !name.contains("..");
    if !ok_name {
        return Err(ApiError::bad_request(
            "bad-name",
            format!("dataset name '{name}' must be 1-63 characters of a-z, 0-9, '-', '_', '.'"),
        ));
    }
    let started = {
        let (s, t, n) = (service.clone(), principal.tenant.clone(), name.clone());
        blocking(move || Ok(s.db.begin_dataset(&t, &n)?)).await?
    };
    if !started {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("dataset '{name}' exists; datasets are immutable, store a new name"),
        ));
    }
    let uploads = service.config.state.join("uploads");
    let staging = uploads.join(format!("ds-{}-{name}", principal.tenant));
    let archive_path = uploads.join(format!("ds-{}-{name}.tar", principal.tenant));
    let result = receive(body, &archive_path, &staging, service.config.max_upload).await;
    let _ = std::fs::remove_file(&archive_path);
    let target = service.dataset_dir(&principal.tenant, &name);
    let placed = result.and_then(|u| {
        std::fs::create_dir_all(target.parent().expect("datasets/<tenant>"))
            .and_then(|()| std::fs::rename(&staging, &target))
            .map_err(ApiError::internal)?;
        Ok(u)
    });
    let unpacked = match placed {
        Ok(u) => u,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            let _ = service.db.forget_dataset(&principal.tenant, &name);
            return Err(e);
        }
    };
    let (s, t, n) = (service.clone(), principal.tenant.clone(), name.clone());
    let (files, bytes) = (unpacked.files, unpacked.bytes);
    blocking(move || Ok(s.db.complete_dataset(&t, &n, files, bytes)?)).await?;
    service.audit(
        &principal.tenant,
        &principal.name,
        "dataset.created",
        &name,
        &format!("{files} files, {bytes} bytes"),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "files": files, "bytes": bytes})),
    ))
}

pub async fn list_datasets(
    State(service): State<Arc<Service>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let items: Vec<Value> = service
            .db
            .datasets(&principal.tenant)?
            .into_iter()
            .map(|(name, files, bytes)| json!({"name": name, "files": files, "bytes": bytes}))
            .collect();
        Ok(Json(json!({"items": items})))
    })
    .await
}
