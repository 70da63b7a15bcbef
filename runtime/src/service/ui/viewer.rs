//! The viewer's page and its pictures: a job output holding a Ward volume, shown slice by
//! slice in any plane or as a turning projection, with any window and the labels beside it
//! overlaid. The page works as plain links and a form; `viewer.js` adds keys, the wheel and
//! dragging, changing only the picture's URL.

use super::jobs::{blocking_ui, job_view, JobView};
use super::render::{self, LegendEntry, Picture, View, Window, MIP_ANGLES, PRESETS};
use super::{page, Chrome, Signed, UiError};
use crate::service::Service;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use imaging::reformat::Plane;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Deserialize, Default, Clone)]
pub struct ViewQuery {
    #[serde(default)]
    plane: Option<String>,
    #[serde(default)]
    slice: Option<usize>,
    #[serde(default)]
    angle: Option<usize>,
    #[serde(default)]
    wc: Option<f64>,
    #[serde(default)]
    ww: Option<f64>,
    #[serde(default)]
    opacity: Option<u8>,
}

/// The view asked for, with defaults filled in and values brought into range.
#[derive(Clone)]
struct Asked {
    plane: &'static str,
    slice: usize,
    angle: usize,
    wc: f64,
    ww: f64,
    opacity: u8,
}

fn plane_of(name: &str) -> Option<Plane> {
    match name {
        "axial" => Some(Plane::Axial),
        "coronal" => Some(Plane::Coronal),
        "sagittal" => Some(Plane::Sagittal),
        _ => None,
    }
}

impl Asked {
    fn from(q: &ViewQuery, dims: [usize; 3], has_labels: bool) -> Asked {
        let plane = match q.plane.as_deref() {
            Some("coronal") => "coronal",
            Some("sagittal") => "sagittal",
            Some("mip") => "mip",
            _ => "axial",
        };
        let slices = plane_of(plane).map_or(1, |p| dims[p.axis()]);
        let finite = |v: Option<f64>, d: f64| v.filter(|v| v.is_finite()).unwrap_or(d);
        Asked {
            plane,
            slice: q.slice.unwrap_or(slices / 2).min(slices.saturating_sub(1)),
            angle: q.angle.unwrap_or(0) % MIP_ANGLES,
            wc: finite(q.wc, 40.0).clamp(-32768.0, 32767.0).round(),
            ww: finite(q.ww, 400.0).clamp(1.0, 65536.0).round(),
            opacity: if has_labels {
                q.opacity.unwrap_or(35).min(100)
            } else {
                0
            },
        }
    }

    fn query(&self) -> String {
        format!(
            "plane={}&slice={}&angle={}&wc={}&ww={}&opacity={}",
            self.plane, self.slice, self.angle, self.wc, self.ww, self.opacity
        )
    }

    fn picture(&self) -> Picture {
        Picture {
            view: match plane_of(self.plane) {
                Some(p) => View::Slice(p, self.slice),
                None => View::Mip(self.angle),
            },
            window: Window {
                center: self.wc,
                width: self.ww,
            },
            opacity: self.opacity,
        }
    }
}

pub struct PlaneLink {
    pub name: &'static str,
    pub url: String,
    pub current: bool,
}

pub struct PresetLink {
    pub id: String,
    pub name: &'static str,
    pub url: String,
    pub wc: f64,
    pub ww: f64,
}

#[derive(Template)]
#[template(path = "ui/viewer.html")]
struct ViewerPage {
    chrome: Chrome,
    id: String,
    stage: String,
    output: String,
    plane: &'static str,
    slice: usize,
    slices: usize,
    slices_last: usize,
    angle: usize,
    angles: usize,
    angles_last: usize,
    angle_degrees: usize,
    wc: f64,
    ww: f64,
    opacity: u8,
    has_labels: bool,
    image_base: String,
    image_url: String,
    page_base: String,
    planes: Vec<PlaneLink>,
    presets: Vec<PresetLink>,
    prev_url: String,
    next_url: String,
    toggle_url: String,
    legend: Vec<LegendEntry>,
}

/// The directory of output `stage/output` of the job's latest attempt, if the summary names
/// it and it holds a volume; and the directory of the label volume beside it.
fn volume_dirs(
    v: &JobView,
    stage: &str,
    output: &str,
) -> Result<(PathBuf, Option<PathBuf>), UiError> {
    let named = v.summary["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["name"] == stage && s["outputs"].get(output).is_some());
    let attempt = v
        .attempt_dir
        .as_ref()
        .filter(|_| named)
        .ok_or_else(|| UiError::not_found("such output"))?;
    let results = attempt.join("results");
    let dir = results.join(stage).join(output);
    if !dir.join("volume.json").is_file() {
        return Err(UiError::not_found("volume in this output"));
    }
    let holds_labels =
        |d: &std::path::Path| d.join("labels.json").is_file() && d.join("labels.raw").is_file();
    let mut labels = holds_labels(&dir).then(|| dir.clone());
    if labels.is_none() {
        for s in v.summary["stages"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or_default();
            for (out, _) in s["outputs"].as_object().into_iter().flatten() {
                let d = results.join(name).join(out);
                if labels.is_none() && holds_labels(&d) {
                    labels = Some(d);
                }
            }
        }
    }
    Ok((dir, labels))
}

fn load(
    service: &Service,
    signed: &Signed,
    id: &str,
    stage: &str,
    output: &str,
) -> Result<Arc<render::Loaded>, UiError> {
    let v = job_view(service, signed.principal(), id)?;
    let (dir, labels) = volume_dirs(&v, stage, output)?;
    service
        .ui
        .renders
        .volume(&dir, labels.as_deref())
        .or_else(|_| service.ui.renders.volume(&dir, None))
        .map_err(|e| UiError::Page(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

pub async fn show(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path((id, stage, output)): Path<(String, String, String)>,
    Query(q): Query<ViewQuery>,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let loaded = load(&service, &signed, &id, &stage, &output)?;
        let has_labels = loaded.labels.is_some();
        let a = Asked::from(&q, loaded.ct.dims, has_labels);
        let page_base = format!("/ui/jobs/{id}/view/{stage}/{output}");
        let image_base = format!("/ui/jobs/{id}/render/{stage}/{output}");
        let with = |f: &dyn Fn(&mut Asked)| {
            let mut b = a.clone();
            f(&mut b);
            format!("{page_base}?{}", b.query())
        };
        let slices = plane_of(a.plane).map_or(1, |p| loaded.ct.dims[p.axis()]);
        let step = |d: isize| {
            with(&|b: &mut Asked| {
                if b.plane == "mip" {
                    b.angle = (b.angle as isize + d).rem_euclid(MIP_ANGLES as isize) as usize;
                } else {
                    b.slice = (b.slice as isize + d).clamp(0, slices as isize - 1) as usize;
                }
            })
        };
        page(&ViewerPage {
            chrome: signed.chrome(&service, "jobs"),
            planes: ["axial", "coronal", "sagittal", "mip"]
                .into_iter()
                .map(|name| PlaneLink {
                    name,
                    current: name == a.plane,
                    url: with(&|b: &mut Asked| {
                        b.plane = name;
                        b.slice = plane_of(name).map_or(0, |p| loaded.ct.dims[p.axis()] / 2);
                    }),
                })
                .collect(),
            presets: PRESETS
                .iter()
                .map(|&(name, wc, ww)| PresetLink {
                    id: name.replace(' ', "-"),
                    name,
                    wc,
                    ww,
                    url: with(&|b: &mut Asked| {
                        b.wc = wc;
                        b.ww = ww;
                    }),
                })
                .collect(),
            prev_url: step(-1),
            next_url: step(1),
            toggle_url: with(&|b: &mut Asked| b.opacity = if b.opacity > 0 { 0 } else { 35 }),
            image_url: format!("{image_base}/{}.png?{}", a.plane, a.query()),
            image_base,
            page_base,
            id,
            stage,
            output,
            plane: a.plane,
            slice: a.slice,
            slices,
            slices_last: slices.saturating_sub(1),
            angle: a.angle,
            angles: MIP_ANGLES,
            angles_last: MIP_ANGLES - 1,
            angle_degrees: a.angle * 360 / MIP_ANGLES,
            wc: a.wc,
            ww: a.ww,
            opacity: a.opacity,
            has_labels,
            legend: loaded.legend.clone(),
        })
    })
    .await
}

/// `GET /ui/jobs/{id}/render/{stage}/{output}/{plane}.png`: the picture, from the cache or
/// drawn now; `304` when the browser's copy (its `ETag`) is current.
pub async fn image(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Path((id, stage, output, view)): Path<(String, String, String, String)>,
    Query(mut q): Query<ViewQuery>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let plane = view
        .strip_suffix(".png")
        .filter(|p| ["axial", "coronal", "sagittal", "mip"].contains(p))
        .ok_or_else(|| UiError::not_found("such view"))?
        .to_string();
    q.plane = Some(plane);
    blocking_ui(move || {
        let loaded = load(&service, &signed, &id, &stage, &output)?;
        let a = Asked::from(&q, loaded.ct.dims, loaded.labels.is_some());
        let scope = format!("{}/{id}/{stage}/{output}", signed.principal().tenant);
        let rendered = service
            .ui
            .renders
            .picture(&scope, &loaded, &a.picture())
            .map_err(UiError::internal)?;
        let cache = "private, max-age=300";
        let current = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == rendered.etag));
        if current {
            return Ok((
                StatusCode::NOT_MODIFIED,
                [
                    (header::ETAG, rendered.etag),
                    (header::CACHE_CONTROL, cache.into()),
                ],
            )
                .into_response());
        }
        Ok((
            [
                (header::CONTENT_TYPE, "image/png".to_string()),
                (header::ETAG, rendered.etag),
                (header::CACHE_CONTROL, cache.into()),
            ],
            rendered.png.as_ref().clone(),
        )
            .into_response())
    })
    .await
}
