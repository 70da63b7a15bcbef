//! The results browser: a job's latest attempt's results, directory by directory, each file
//! downloaded (or, for pictures, shown). Paths are checked to stay inside the results.

use super::jobs::{blocking_ui, job_view};
use super::{format, page, Chrome, Signed, UiError};
use crate::service::Service;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Entry {
    pub name: String,
    pub url: String,
    pub dir: bool,
    pub size: String,
}

#[derive(Template)]
#[template(path = "ui/results.html")]
struct ResultsPage {
    chrome: Chrome,
    id: String,
    path: String,
    parent: Option<String>,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
pub struct Inline {
    #[serde(default)]
    inline: Option<String>,
}

/// `path` (relative, `/`-separated) under the job's results, refused if it leaves them.
pub fn resolve(root: &std::path::Path, path: &str) -> Result<PathBuf, UiError> {
    let mut out = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." || part.contains('\\') || part.contains('\0') {
            return Err(UiError::not_found("such result"));
        }
        out.push(part);
    }
    // A link inside the results must not lead out of them.
    let real = out
        .canonicalize()
        .map_err(|_| UiError::not_found("such result"))?;
    let real_root = root
        .canonicalize()
        .map_err(|_| UiError::not_found("results: the job has not run"))?;
    if !real.starts_with(&real_root) {
        return Err(UiError::not_found("such result"));
    }
    Ok(real)
}

pub async fn root(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    q: Query<Inline>,
) -> Result<Response, UiError> {
    serve(service, signed, id, String::new(), q.0).await
}

pub async fn browse(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path((id, path)): Path<(String, String)>,
    q: Query<Inline>,
) -> Result<Response, UiError> {
    serve(service, signed, id, path, q.0).await
}

async fn serve(
    service: Arc<Service>,
    signed: Signed,
    id: String,
    path: String,
    q: Inline,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let v = job_view(&service, signed.principal(), &id)?;
        let root = v
            .attempt_dir
            .ok_or_else(|| UiError::not_found("results: the job has not run"))?
            .join("results");
        let target = resolve(&root, &path)?;
        let path = path.trim_matches('/').to_string();
        if target.is_file() {
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&target).map_err(UiError::internal)?;
            let png = name.ends_with(".png");
            if png && q.inline.is_some() {
                return Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response());
            }
            let disposition = format!(
                "attachment; filename=\"{}\"",
                name.replace(['"', '\\'], "_")
            );
            return Ok((
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                bytes,
            )
                .into_response());
        }
        let mut entries: Vec<Entry> = std::fs::read_dir(&target)
            .map_err(UiError::internal)?
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let meta = e.metadata().ok();
                let dir = meta.as_ref().is_some_and(|m| m.is_dir());
                let rel = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                Entry {
                    url: format!(
                        "/ui/jobs/{id}/results/{}",
                        rel.split('/')
                            .map(format::query_value)
                            .collect::<Vec<_>>()
                            .join("/")
                    ),
                    size: if dir {
                        String::new()
                    } else {
                        format::bytes(meta.map_or(0, |m| m.len()))
                    },
                    name,
                    dir,
                }
            })
            .collect();
        entries.sort_by(|a, b| (!a.dir, &a.name).cmp(&(!b.dir, &b.name)));
        let parent = (!path.is_empty()).then(|| match path.rsplit_once('/') {
            Some((up, _)) => format!("/ui/jobs/{id}/results/{up}"),
            None => format!("/ui/jobs/{id}/results"),
        });
        page(&ResultsPage {
            chrome: signed.chrome(&service, "jobs"),
            id,
            path,
            parent,
            entries,
        })
    })
    .await
}
