//! A pipeline's graph as SVG, drawn on the server: one box per stage in columns by depth
//! (a stage sits right of every stage whose results it reads), solid arrows for results
//! volumes, dashed ones for port channels, and each stage's state written in its box as a
//! word and an icon, so the state never rests on colour alone.

use crate::pipeline::Pipeline;
use std::fmt::Write as _;

const BOX_W: usize = 170;
const BOX_H: usize = 54;
const GAP_X: usize = 60;
const GAP_Y: usize = 22;
const PAD: usize = 12;

/// The icon (a character any font has) and the CSS class of a stage state.
pub fn state_icon(state: &str) -> (&'static str, &'static str) {
    match state {
        "succeeded" => ("✓", "ok"),
        "failed" => ("✗", "bad"),
        "running" => ("▶", "run"),
        "skipped" => ("⤼", "skip"),
        "cancelled" => ("■", "skip"),
        _ => ("○", "wait"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Each stage's column: 0 for stages reading only the payload and datasets, else one more
/// than the deepest stage it reads from. Stages are in dependency order already.
fn columns(pipeline: &Pipeline) -> Vec<usize> {
    let mut col = vec![0usize; pipeline.stages.len()];
    for (i, s) in pipeline.stages.iter().enumerate() {
        col[i] = s.depends_on.iter().map(|&d| col[d] + 1).max().unwrap_or(0);
    }
    // A port reader sits right of its writer, as data flows.
    for (i, s) in pipeline.stages.iter().enumerate() {
        for port in &s.ports_in {
            for w in &port.writers {
                if let Some(wi) = pipeline.stages.iter().position(|x| x.name == w.stage) {
                    if col[i] <= col[wi] {
                        col[i] = col[wi] + 1;
                    }
                }
            }
        }
    }
    col
}

/// The SVG of `pipeline`, each stage labelled with `state_of(stage name)`.
pub fn svg(pipeline: &Pipeline, state_of: impl Fn(&str) -> String) -> String {
    let col = columns(pipeline);
    let mut row_in_col = vec![0usize; col.iter().max().map_or(0, |m| m + 1)];
    let mut pos = Vec::with_capacity(col.len());
    for &c in &col {
        pos.push((c, row_in_col[c]));
        row_in_col[c] += 1;
    }
    let rows = row_in_col.iter().copied().max().unwrap_or(1);
    let width = PAD * 2 + row_in_col.len() * BOX_W + row_in_col.len().saturating_sub(1) * GAP_X;
    let height = PAD * 2 + rows * BOX_H + rows.saturating_sub(1) * GAP_Y;
    let xy = |i: usize| {
        let (c, r) = pos[i];
        (PAD + c * (BOX_W + GAP_X), PAD + r * (BOX_H + GAP_Y))
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="dag" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-labelledby="dag-title"><title id="dag-title">Pipeline {} : {} stages</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>"#,
        escape(&pipeline.name),
        pipeline.stages.len()
    );
    let mut edge = |from: usize, to: usize, class: &str| {
        let (x0, y0) = xy(from);
        let (x1, y1) = xy(to);
        let _ = write!(
            out,
            r#"<path class="edge {class}" d="M {} {} C {} {} {} {} {} {}" marker-end="url(#arrow)"/>"#,
            x0 + BOX_W,
            y0 + BOX_H / 2,
            x0 + BOX_W + GAP_X / 2,
            y0 + BOX_H / 2,
            x1.saturating_sub(GAP_X / 2),
            y1 + BOX_H / 2,
            x1,
            y1 + BOX_H / 2
        );
    };
    for (i, s) in pipeline.stages.iter().enumerate() {
        for &d in &s.depends_on {
            edge(d, i, "volume");
        }
        for port in &s.ports_in {
            for w in &port.writers {
                if let Some(wi) = pipeline.stages.iter().position(|x| x.name == w.stage) {
                    edge(wi, i, "port");
                }
            }
        }
    }
    for (i, s) in pipeline.stages.iter().enumerate() {
        let (x, y) = xy(i);
        let state = state_of(&s.name);
        let (icon, class) = state_icon(&state);
        let _ = write!(
            out,
            r#"<g class="stage {class}" id="dag-{name}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/><text x="{tx}" y="{ty1}" class="name">{name}</text><text x="{tx}" y="{ty2}" class="state"><tspan class="icon">{icon}</tspan> {state}</text></g>"#,
            name = escape(&s.name),
            tx = x + 10,
            ty1 = y + 21,
            ty2 = y + 42,
            state = escape(&state),
        );
    }
    out.push_str("</svg>");
    out
}
