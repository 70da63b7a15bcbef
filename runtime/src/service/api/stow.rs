//! DICOMweb STOW-RS (`POST /v1/dicomweb/studies`, PS3.18 §10.5): a multipart/related body of
//! DICOM files becomes a payload, and the tenant's STOW pipelines run on it, as an AE route
//! does for a DIMSE association. Each instance is checked and stored under its SOP Instance
//! UID; the answer lists what was stored and what was refused, in the DICOM JSON model.
//!
//! The answer is a plain PS3.18 Store Instances Response: ReferencedSOPSequence (0008,1199)
//! and FailedSOPSequence (0008,1198), every element with its `vr`, so DICOMweb clients read
//! it as any other origin server's. Ward serves no WADO-RS retrieve, so no RetrieveURL
//! (0008,1190) is given: a URL that answers 404 would mislead a client. What is Ward's own —
//! the payload the instances became and the jobs started on it — is in the `Ward-Payload` and
//! `Ward-Jobs` headers and in a private block of the answer (see [`ward_block`]).
//! The body is read as a stream: each part goes straight to a file, every byte reserved in
//! the tenant's storage quota first, so no body is ever held in memory; the parts of one
//! body are bounded in number (`max-stow-parts`) and in header size.

use super::{blocking, payloads, streams, ApiError, Principal};
use crate::service::config::Role;
use crate::service::multipart::{boundary_of, MultipartError, MultipartReader};
use crate::service::storage::{OverQuota, Reservation};
use crate::service::submit::new_job;
use crate::service::Service;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

fn ui(uid: &str) -> Value {
    json!({"vr": "UI", "Value": [uid]})
}

/// The header naming the payload the stored instances became.
const PAYLOAD_HEADER: &str = "ward-payload";
/// The header listing the jobs started on it (comma-separated; empty when none).
const JOBS_HEADER: &str = "ward-jobs";

/// The private creator of Ward's block, at (0009,0010).
const PRIVATE_CREATOR: &str = "WARD 1.0";

/// Ward's private block in a STOW-RS answer: (0009,0010) LO the creator `WARD 1.0`,
/// (0009,1001) LO the payload id, (0009,1002) LO the ids of the jobs started on it (one value
/// each; no value when none was started).
fn ward_block(answer: &mut Value, payload: &str, jobs: &[String]) {
    answer["00090010"] = json!({"vr": "LO", "Value": [PRIVATE_CREATOR]});
    answer["00091001"] = json!({"vr": "LO", "Value": [payload]});
    answer["00091002"] = if jobs.is_empty() {
        json!({"vr": "LO"})
    } else {
        json!({"vr": "LO", "Value": jobs})
    };
}

/// A FailedSOPSequence item: the reason, and the instance when the part was readable enough
/// to name it.
fn failed_item(status: u16, instance: Option<(&str, &str)>) -> Value {
    let mut item = json!({"00081197": {"vr": "US", "Value": [status]}});
    if let Some((class, uid)) = instance {
        item["00081150"] = ui(class);
        item["00081155"] = ui(uid);
    }
    item
}

/// Why a part was refused: its status, the reason, and its SOP class and instance when they
/// could be read.
struct PartRefused {
    status: u16,
    why: String,
    instance: Option<(String, String)>,
}

/// Checks the part whose content is in `temp` and keeps it under its SOP Instance UID; its
/// SOP class and instance, or why it was refused. A duplicate instance is not kept twice.
fn check_part(dir: &Path, temp: &Path) -> Result<(String, String, bool), PartRefused> {
    // The bounded inspection the SCP uses: no declared length is believed before the bytes
    // are there, so a part of a few bytes declaring gigabytes reserves nothing.
    let facts = crate::dicom::instance::inspect_instance(temp).map_err(|e| PartRefused {
        status: 0xC000,
        why: format!("not a readable DICOM file: {e}"),
        instance: None,
    })?;
    let (class, instance) = (facts.sop_class, facts.sop_instance);
    let refused = |status: u16, why: String| PartRefused {
        status,
        why,
        instance: Some((class.clone(), instance.clone())),
    };
    crate::dicom::store::check_uid(&instance).map_err(|r| refused(r.status, r.message))?;
    if !crate::dicom::sop::is_storage_class(&class) {
        return Err(refused(
            0x0122,
            format!("SOP class {class} is not stored here"),
        ));
    }
    let target = dir.join(format!("{instance}.dcm"));
    let kept = !target.exists();
    if kept {
        std::fs::rename(temp, &target).map_err(|e| refused(0xA700, e.to_string()))?;
    }
    Ok((class, instance, kept))
}

/// Why a STOW-RS body as a whole was refused.
enum Refusal {
    Multipart(MultipartError),
    OverQuota(OverQuota),
    Storage(std::io::Error),
}

/// What the parts of a body came to.
#[derive(Default)]
struct Stored {
    stored: Vec<Value>,
    failed: Vec<Value>,
    files: u64,
    bytes: u64,
}

/// Copies part content to a file, reserving each byte in the tenant's quota first.
struct QuotaFile<'a> {
    file: std::fs::File,
    quota: &'a mut Reservation,
    written: u64,
    over: Option<OverQuota>,
}

impl std::io::Write for QuotaFile<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Err(e) = self.quota.grow(data.len() as u64) {
            self.over = Some(e);
            return Err(std::io::Error::other("over the storage quota"));
        }
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Reads the parts of `from` one at a time, each straight to a file in `staging`, then
/// checks it; nothing of the body is held beyond the reader's buffer.
fn store_parts(
    from: impl std::io::Read,
    boundary: &str,
    max_parts: usize,
    staging: &Path,
    quota: &mut Reservation,
) -> Result<Stored, Refusal> {
    let mut reader = MultipartReader::new(from, boundary, max_parts);
    let mut out = Stored::default();
    let temp = staging.join(".part");
    while let Some(part) = reader.next_part().map_err(Refusal::Multipart)? {
        let n = part.index;
        let is_dicom = part
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/dicom"));
        if !is_dicom {
            reader
                .copy_content(&mut std::io::sink())
                .map_err(Refusal::Multipart)?;
            tracing::warn!(part = n, "STOW-RS part refused: not application/dicom");
            out.failed.push(failed_item(0xC000, None));
            continue;
        }
        let file = std::fs::File::create(&temp).map_err(Refusal::Storage)?;
        let mut sink = QuotaFile {
            file,
            quota,
            written: 0,
            over: None,
        };
        let copied = reader.copy_content(&mut sink);
        let (written, over) = (sink.written, sink.over.take());
        drop(sink);
        if let Some(over) = over {
            return Err(Refusal::OverQuota(over));
        }
        match copied {
            Ok(_) => {}
            Err(MultipartError::Write { source, .. }) => return Err(Refusal::Storage(source)),
            Err(e) => return Err(Refusal::Multipart(e)),
        }
        match check_part(staging, &temp) {
            Ok((class, instance, kept)) => {
                if kept {
                    out.files += 1;
                    out.bytes += written;
                } else {
                    quota.shrink(written);
                }
                out.stored
                    .push(json!({"00081150": ui(&class), "00081155": ui(&instance)}));
            }
            Err(refused) => {
                quota.shrink(written);
                tracing::warn!(part = n, reason = %refused.why, "STOW-RS instance refused");
                let named = refused.instance.as_ref();
                out.failed.push(failed_item(
                    refused.status,
                    named.map(|(c, i)| (c.as_str(), i.as_str())),
                ));
            }
        }
        let _ = std::fs::remove_file(&temp);
    }
    let _ = std::fs::remove_file(&temp);
    Ok(out)
}

pub async fn store(
    State(service): State<Arc<Service>>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    // Above the disk's high watermark the body is refused before it is read: 507, retry.
    if let Err(why) = service.disk.admit() {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient-storage",
            why,
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = boundary_of(content_type, "multipart/related")
        .map_err(|why| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad-media-type", why))?;
    let limit = service.config.max_upload;
    let max_parts = service.config.max_stow_parts;
    let id = format!(
        "pl-{}",
        crate::jobs::new_job_id().trim_start_matches("job-")
    );
    let staging = service.config.state.join("uploads").join(&id);
    {
        let (s, t, i) = (service.clone(), principal.tenant.clone(), id.clone());
        blocking(move || Ok(s.db.begin_payload(&t, &i)?)).await?;
    }
    let (reader, pumped) = streams::pump(body, limit);
    let mut reservation = service.reserve_storage(&principal.tenant);
    let parsed = {
        let staging = staging.clone();
        blocking(move || {
            let stored = std::fs::create_dir_all(&staging)
                .map_err(Refusal::Storage)
                .and_then(|()| {
                    store_parts(reader, &boundary, max_parts, &staging, &mut reservation)
                });
            Ok((stored, reservation))
        })
        .await?
    };
    let pumped = pumped.await.map_err(ApiError::internal)?;
    let refused = |e: ApiError| {
        let _ = std::fs::remove_dir_all(&staging);
        let _ = service.db.forget_payload(&id);
        tracing::warn!(tenant = %principal.tenant, code = e.code, reason = %e.message, "STOW-RS body refused");
        Err(e)
    };
    let (stored, reservation) = match (parsed, pumped) {
        (_, streams::Pumped::TooLarge) => {
            return refused(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the upload is over the {limit} byte limit (max-upload)"),
            ))
        }
        (_, streams::Pumped::Broken(why)) => {
            return refused(ApiError::bad_request("bad-body", why))
        }
        ((Ok(stored), reservation), _) => (stored, reservation),
        ((Err(Refusal::Multipart(e @ MultipartError::TooManyParts { .. })), _), _) => {
            return refused(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-parts",
                e.to_string(),
            ))
        }
        ((Err(Refusal::Multipart(e)), _), _) => {
            return refused(ApiError::bad_request("bad-multipart", e.to_string()))
        }
        ((Err(Refusal::OverQuota(q)), _), _) => return refused(payloads::over_quota(&q)),
        ((Err(Refusal::Storage(e)), _), _) => {
            return refused(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage",
                format!("the upload cannot be stored: {e}"),
            ))
        }
    };
    blocking(move || {
        let Stored { stored, failed, files, bytes } = stored;
        let mut answer = json!({"00081198": {"vr": "SQ", "Value": failed}, "00081199": {"vr": "SQ", "Value": stored}});
        if stored_is_empty(&answer) {
            let _ = std::fs::remove_dir_all(&staging);
            service.db.forget_payload(&id)?;
            return Ok((StatusCode::CONFLICT, [(header::CONTENT_TYPE, "application/dicom+json")], answer.to_string()).into_response());
        }
        let refused_parts = answer["00081198"]["Value"].as_array().map_or(0, Vec::len);
        std::fs::rename(&staging, service.payload_dir(&id)).map_err(ApiError::internal)?;
        service.db.complete_payload(&id, files, bytes)?;
        reservation.commit();
        service.audit(&principal.tenant, &principal.name, "payload.created", &id, &format!("STOW-RS: {files} instances, {refused_parts} refused"));
        let tenant = service.config.tenant(&principal.tenant).cloned();
        let mut jobs = Vec::new();
        for name in tenant.iter().flat_map(|t| t.stow_pipelines.iter()) {
            let Some(pipeline) = service.db.pipeline(&principal.tenant, name)? else {
                tracing::warn!(pipeline = %name, "a STOW pipeline is not stored; not run");
                continue;
            };
            let priority = tenant.as_ref().map_or(crate::service::db::Priority::Normal, |t| t.stow_priority);
            let job = new_job(&service, &principal, &pipeline, &id, priority, true, 1)?;
            jobs.push(job.id);
        }
        ward_block(&mut answer, &id, &jobs);
        let status = if refused_parts == 0 { StatusCode::OK } else { StatusCode::ACCEPTED };
        let headers = [
            (header::CONTENT_TYPE, "application/dicom+json".to_string()),
            (header::HeaderName::from_static(PAYLOAD_HEADER), id.clone()),
            (header::HeaderName::from_static(JOBS_HEADER), jobs.join(", ")),
        ];
        Ok((status, headers, answer.to_string()).into_response())
    })
    .await
}

fn stored_is_empty(answer: &Value) -> bool {
    answer["00081199"]["Value"]
        .as_array()
        .is_none_or(Vec::is_empty)
}
