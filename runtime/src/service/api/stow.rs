//! DICOMweb STOW-RS (`POST /v1/dicomweb/studies`, PS3.18 §10.5): a multipart/related body of
//! DICOM files becomes a payload, and the tenant's STOW pipelines run on it, as an AE route
//! does for a DIMSE association. Each instance is checked and stored under its SOP Instance
//! UID; the answer lists what was stored and what was refused, in the DICOM JSON model.

use super::{blocking, ApiError, Principal};
use crate::service::config::Role;
use crate::service::submit::new_job;
use crate::service::Service;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// The parts of a multipart body: each part's headers (lowercased names) and content.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<(String, &'a [u8])>, String> {
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let starts: Vec<usize> = finder.find_iter(body).collect();
    if starts.is_empty() {
        return Err(format!("no part delimited by boundary '{boundary}'"));
    }
    let mut out = Vec::new();
    for pair in starts.windows(2) {
        let mut part = &body[pair[0] + delimiter.len()..pair[1]];
        part = part.strip_prefix(b"\r\n").unwrap_or(part);
        // The CRLF before the next delimiter belongs to it.
        part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = memchr::memmem::find(part, b"\r\n\r\n") else {
            return Err("a part has no blank line after its headers".into());
        };
        let headers = String::from_utf8_lossy(&part[..split]).to_ascii_lowercase();
        out.push((headers, &part[split + 4..]));
    }
    let last = *starts.last().expect("not empty");
    if !body[last + delimiter.len()..].starts_with(b"--") {
        return Err("the body does not end with its closing boundary".into());
    }
    Ok(out)
}

/// The `boundary` parameter of a multipart/related content type.
fn boundary_of(content_type: &str) -> Result<String, String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.starts_with("multipart/related") {
        return Err(format!(
            "Content-Type '{content_type}' must be multipart/related; type=\"application/dicom\""
        ));
    }
    content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| "the multipart/related Content-Type has no boundary".into())
}

fn ui(uid: &str) -> Value {
    json!({"vr": "UI", "Value": [uid]})
}

/// Stores one part; its SOP class and instance, or why it was refused.
fn store_part(
    dir: &Path,
    n: usize,
    headers: &str,
    content: &[u8],
) -> Result<(String, String), (u16, String)> {
    if !headers.contains("application/dicom") {
        return Err((0xC000, "the part is not application/dicom".into()));
    }
    let temp = dir.join(format!(".part-{n}"));
    std::fs::write(&temp, content).map_err(|e| (0xA700, e.to_string()))?;
    let checked = (|| {
        let obj = dicom_object::open_file(&temp)
            .map_err(|e| (0xC000, format!("not a readable DICOM file: {e}")))?;
        let text = |tag| {
            obj.element(tag)
                .ok()
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                .unwrap_or_default()
        };
        let class = text(dicom_dictionary_std::tags::SOP_CLASS_UID);
        let instance = text(dicom_dictionary_std::tags::SOP_INSTANCE_UID);
        crate::dicom::store::check_uid(&instance).map_err(|r| (r.status, r.message))?;
        if !crate::dicom::sop::is_storage_class(&class) {
            return Err((0x0122, format!("SOP class {class} is not stored here")));
        }
        let target = dir.join(format!("{instance}.dcm"));
        if !target.exists() {
            std::fs::rename(&temp, &target).map_err(|e| (0xA700, e.to_string()))?;
        }
        Ok((class, instance))
    })();
    let _ = std::fs::remove_file(&temp);
    checked
}

pub async fn store(
    State(service): State<Arc<Service>>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = boundary_of(content_type)
        .map_err(|why| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad-media-type", why))?;
    let limit = service.config.max_upload;
    let bytes = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the upload is over the {limit} byte limit (max-upload)"),
            )
        })?;
    blocking(move || {
        let parts = parts(&bytes, &boundary).map_err(|why| ApiError::bad_request("bad-multipart", why))?;
        let id = format!("pl-{}", crate::jobs::new_job_id().trim_start_matches("job-"));
        let staging = service.config.state.join("uploads").join(&id);
        std::fs::create_dir_all(&staging).map_err(ApiError::internal)?;
        service.db.begin_payload(&principal.tenant, &id)?;
        let (mut stored, mut failed) = (Vec::new(), Vec::new());
        let mut bytes_stored = 0u64;
        for (n, (part_headers, content)) in parts.iter().enumerate() {
            match store_part(&staging, n, part_headers, content) {
                Ok((class, instance)) => {
                    bytes_stored += content.len() as u64;
                    stored.push(json!({"00081150": ui(&class), "00081155": ui(&instance)}));
                }
                Err((status, why)) => {
                    tracing::warn!(part = n, reason = %why, "STOW-RS instance refused");
                    failed.push(json!({"00081197": {"vr": "US", "Value": [status]}}));
                }
            }
        }
        let mut answer = json!({"00081198": {"vr": "SQ", "Value": failed}, "00081199": {"vr": "SQ", "Value": stored}});
        if stored.is_empty() {
            let _ = std::fs::remove_dir_all(&staging);
            service.db.forget_payload(&id)?;
            return Ok((StatusCode::CONFLICT, [(header::CONTENT_TYPE, "application/dicom+json")], answer.to_string()).into_response());
        }
        let files = stored.len() as u64;
        std::fs::rename(&staging, service.payload_dir(&id)).map_err(ApiError::internal)?;
        service.db.complete_payload(&id, files, bytes_stored)?;
        service.audit(&principal.tenant, &principal.name, "payload.created", &id, &format!("STOW-RS: {files} instances, {} refused", failed.len()));
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
        answer["ward"] = json!({"payload": id, "jobs": jobs});
        let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::ACCEPTED };
        Ok((status, [(header::CONTENT_TYPE, "application/dicom+json")], answer.to_string()).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_split_at_their_boundary() {
        let body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n--b1\r\nContent-Type: application/dicom\r\n\r\nB\r\nB\r\n--b1--\r\n";
        let p = parts(body, "b1").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1, b"AAA");
        assert_eq!(p[1].1, b"B\r\nB");
        assert!(p[0].0.contains("application/dicom"));
        assert!(
            parts(b"--b1\r\n\r\nA\r\n--b1", "b1").is_err(),
            "no closing boundary"
        );
        assert!(parts(b"nothing", "b1").is_err());
    }

    #[test]
    fn the_boundary_is_read_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/related; type=\"application/dicom\"; boundary=\"abc\"").unwrap(),
            "abc"
        );
        assert!(boundary_of("application/json").is_err());
        assert!(boundary_of("multipart/related; type=application/dicom").is_err());
    }
}
