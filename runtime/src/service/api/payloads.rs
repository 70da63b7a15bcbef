//! `/v1/payloads`: uploads as tar archives, unpacked as they arrive under the size limit and
//! the tenant's storage quota into a directory that becomes the payload in one rename. A payload is immutable once
//! complete; an upload that fails leaves nothing behind.

use super::{blocking, streams, ApiError, Principal};
use crate::service::archive::{self, ArchiveError};
use crate::service::config::Role;
use crate::service::storage::Reservation;
use crate::service::Service;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// The answer to an upload over the tenant's storage quota.
pub(super) fn over_quota(e: &crate::service::storage::OverQuota) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "over-quota", e.to_string())
}

pub async fn upload(
    State(service): State<Arc<Service>>,
    principal: Principal,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Role::Operator)?;
    let id = format!(
        "pl-{}",
        crate::jobs::new_job_id().trim_start_matches("job-")
    );
    let staging = service.config.state.join("uploads").join(&id);
    {
        let s = service.clone();
        let (t, i) = (principal.tenant.clone(), id.clone());
        blocking(move || Ok(s.db.begin_payload(&t, &i)?)).await?;
    }
    let reservation = service.reserve_storage(&principal.tenant);
    let result = receive(body, &staging, service.config.max_upload, reservation).await;
    let cleanup = |service: &Arc<Service>| {
        let _ = std::fs::remove_dir_all(&staging);
        let _ = service.db.forget_payload(&id);
    };
    let (unpacked, reservation) = match result {
        Ok(u) => u,
        Err(e) => {
            cleanup(&service);
            return Err(e);
        }
    };
    let target = service.payload_dir(&id);
    if let Err(e) = std::fs::rename(&staging, &target) {
        cleanup(&service);
        return Err(ApiError::internal(e));
    }
    {
        let s = service.clone();
        let i = id.clone();
        let (files, bytes) = (unpacked.files, unpacked.bytes);
        blocking(move || Ok(s.db.complete_payload(&i, files, bytes)?)).await?;
    }
    reservation.commit();
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

/// Unpacks the tar archive of the body into `staging` as it arrives (at most `limit`
/// bytes; every byte written is reserved in `reservation` first). Nothing of the archive is
/// kept but its files.
pub(super) async fn receive(
    body: Body,
    staging: &std::path::Path,
    limit: u64,
    mut reservation: Reservation,
) -> Result<(archive::Unpacked, Reservation), ApiError> {
    let too_large = move || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the upload is over the {limit} byte limit (max-upload)"),
        )
    };
    let storage_error = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage",
            format!("the upload cannot be stored: {e}"),
        )
    };
    // A tar archive holds a little more than its files; the files are bounded again while
    // unpacking.
    let (reader, pumped) = streams::pump(body, limit.saturating_add(1 << 20));
    let staging = staging.to_path_buf();
    let unpacked = blocking(move || {
        std::fs::create_dir_all(&staging).map_err(storage_error)?;
        let from = std::io::BufReader::with_capacity(1 << 16, reader);
        let unpacked = archive::unpack_counted(from, &staging, limit, Some(&mut reservation));
        Ok(unpacked.map(|u| (u, reservation)))
    })
    .await?;
    // The body's own failure explains the unpacker's.
    match pumped.await.map_err(ApiError::internal)? {
        streams::Pumped::TooLarge => return Err(too_large()),
        streams::Pumped::Broken(why) => return Err(ApiError::bad_request("bad-body", why)),
        _ => {}
    }
    unpacked.map_err(|e| match e {
        ArchiveError::TooLarge { .. } => too_large(),
        ArchiveError::OverQuota(q) => over_quota(&q),
        ArchiveError::Io { source, .. } => storage_error(source),
        other => ApiError::bad_request("bad-archive", other.to_string()),
    })
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
        Ok(streams::tar_response(service.payload_dir(&row.id)))
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
    // A staging name of its own: tenant and dataset names joined could collide ('a' + 'b-c'
    // and 'a-b' + 'c').
    let staging = service.config.state.join("uploads").join(format!(
        "ds-{}",
        crate::jobs::new_job_id().trim_start_matches("job-")
    ));
    let reservation = service.reserve_storage(&principal.tenant);
    let result = receive(body, &staging, service.config.max_upload, reservation).await;
    let target = service.dataset_dir(&principal.tenant, &name);
    let placed = result.and_then(|u| {
        std::fs::create_dir_all(target.parent().expect("datasets/<tenant>"))
            .and_then(|()| std::fs::rename(&staging, &target))
            .map_err(ApiError::internal)?;
        Ok(u)
    });
    let (unpacked, reservation) = match placed {
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
    reservation.commit();
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
