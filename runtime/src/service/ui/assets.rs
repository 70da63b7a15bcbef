//! The UI's static files, embedded in the binary: htmx and its SSE extension (vendored,
//! see `static/LICENSES.md`), the viewer's script and the style sheet. Nothing is fetched
//! from elsewhere.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/htmx.min.js"),
    ),
    (
        "htmx-sse.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/htmx-sse.js"),
    ),
    (
        "viewer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/viewer.js"),
    ),
    (
        "ward.css",
        "text/css; charset=utf-8",
        include_bytes!("static/ward.css"),
    ),
    (
        "LICENSES.md",
        "text/plain; charset=utf-8",
        include_bytes!("static/LICENSES.md"),
    ),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
