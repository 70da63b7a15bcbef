//! Live updates as Server-Sent Events, which htmx's SSE extension swaps into the page:
//! the jobs list (a changed job's row as event `job-<id>`, `new` when a job is added), a
//! job's graph and stages (event `stages`), and a log followed (event `line`). The list
//! wakes on the database's job-change signal rather than polling it; a job's stages and a
//! log are files the job runner writes, so their streams look at the file a few times a
//! second (and on the signal).

use super::jobs::{blocking_ui, job_view, log_path, row_html};
use super::{format, Signed, UiError};
use crate::service::Service;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The newest jobs of a tenant the list's stream follows.
const FOLLOWED: usize = 500;
/// How often a file a stream follows is looked at.
const FILE_POLL: Duration = Duration::from_millis(250);
/// The most of a log one event carries.
const LOG_CHUNK: u64 = 64 * 1024;

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Jobs of the tenant, each as (state, attempts), by id.
type Snapshot = HashMap<String, (String, i64)>;

fn snapshot(service: &Service, tenant: &str) -> Snapshot {
    service
        .db
        .job_states(tenant, FOLLOWED)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, state, attempts)| (id, (state, attempts)))
        .collect()
}

/// `GET /ui/events`: the jobs list's stream.
pub async fn jobs(State(service): State<Arc<Service>>, signed: Signed) -> Response {
    let principal = signed.0.principal.clone();
    let changes = service.db.watch_jobs();
    let s = service.clone();
    let tenant = principal.tenant.clone();
    let first = tokio::task::spawn_blocking(move || snapshot(&s, &tenant))
        .await
        .unwrap_or_default();
    let state = (service, principal, changes, first, Vec::<Event>::new());
    sse(stream::unfold(
        state,
        |(service, principal, mut changes, mut seen, mut pending)| async move {
            loop {
                if let Some(event) = pending.pop() {
                    return Some((Ok(event), (service, principal, changes, seen, pending)));
                }
                changes.changed().await.ok()?;
                let (s, p) = (service.clone(), principal.clone());
                let previous = std::mem::take(&mut seen);
                let (now, events) = tokio::task::spawn_blocking(move || {
                    let now = snapshot(&s, &p.tenant);
                    let mut events = Vec::new();
                    for (id, v) in &now {
                        match previous.get(id) {
                            Some(old) if old == v => {}
                            Some(_) => {
                                if let Ok(html) = row_html(&s, &p, id) {
                                    events.push(
                                        Event::default().event(format!("job-{id}")).data(html),
                                    );
                                }
                            }
                            None => events.push(Event::default().event("new").data(id.clone())),
                        }
                    }
                    (now, events)
                })
                .await
                .ok()?;
                seen = now;
                pending = events;
            }
        },
    ))
}

/// `GET /ui/jobs/{id}/events`: the job's graph and stages, sent whenever its summary or its
/// row changes.
#[derive(Deserialize)]
pub struct Seen {
    /// The digest of the fragment the page was rendered with.
    #[serde(default)]
    seen: Option<String>,
}

/// A short digest of a fragment, so a page can say which one it shows.
pub fn digest(html: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(html.as_bytes())[..12])
}

pub async fn job(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<Seen>,
) -> Result<Response, UiError> {
    let principal = signed.0.principal.clone();
    {
        let (s, p, i) = (service.clone(), principal.clone(), id.clone());
        blocking_ui(move || job_view(&s, &p, &i).map(|_| ())).await?;
    }
    let changes = service.db.watch_jobs();
    // What the page already shows is not sent again.
    let state = (service, principal, id, changes, q.seen.unwrap_or_default());
    Ok(sse(stream::unfold(
        state,
        |(service, principal, id, mut changes, last)| async move {
            loop {
                let (s, p, i) = (service.clone(), principal.clone(), id.clone());
                let html = tokio::task::spawn_blocking(move || {
                    job_view(&s, &p, &i)
                        .ok()
                        .and_then(|v| v.stages_fragment().render().ok())
                })
                .await
                .ok()??;
                let now = digest(&html);
                if now != last {
                    let event = Event::default().event("stages").data(html);
                    return Some((Ok(event), (service, principal, id, changes, now)));
                }
                // The summary is a file: look again soon, or at once on a row change.
                let _ = tokio::time::timeout(FILE_POLL, changes.changed()).await;
            }
        },
    )))
}

#[derive(Deserialize)]
pub struct LogFrom {
    #[serde(default)]
    from: u64,
}

/// `GET /ui/jobs/{id}/logs/{stage}/events?from=N`: what the log gains after byte N, as
/// escaped text for the page to append.
pub async fn log(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path((id, stage)): Path<(String, String)>,
    Query(q): Query<LogFrom>,
) -> Result<Response, UiError> {
    let path = {
        let (s, p) = (service.clone(), signed.0.principal.clone());
        blocking_ui(move || log_path(&s, &p, &id, &stage)).await?
    };
    let state = (path, q.from);
    Ok(sse(stream::unfold(state, |(path, mut at)| async move {
        loop {
            let p = path.clone();
            let read = tokio::task::spawn_blocking(move || read_from(&p, at))
                .await
                .ok()?;
            if let Some((text, next)) = read {
                at = next;
                let event = Event::default().event("line").data(format::escape(&text));
                return Some((Ok(event), (path, at)));
            }
            tokio::time::sleep(FILE_POLL).await;
        }
    })))
}

/// The complete lines of the file after byte `at` (at most [`LOG_CHUNK`]), and where they
/// end; none when there is no new complete line.
fn read_from(path: &std::path::Path, at: u64) -> Option<(String, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let size = f.metadata().ok()?.len();
    if size <= at {
        return None;
    }
    f.seek(SeekFrom::Start(at)).ok()?;
    let mut bytes = Vec::new();
    f.take(LOG_CHUNK).read_to_end(&mut bytes).ok()?;
    let end = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        // A line longer than a chunk goes as it is.
        None if bytes.len() as u64 == LOG_CHUNK => bytes.len(),
        None => return None,
    };
    bytes.truncate(end);
    Some((
        String::from_utf8_lossy(&bytes).into_owned(),
        at + end as u64,
    ))
}
