//! The web UI in a real browser (headless chromium through chromedriver) against the real
//! `ward serve`, real stages and a real CT series: sign in, a job's row turning to succeeded
//! without a reload, the graph, a followed log, cancel with confirmation, the viewer's keys,
//! presets and overlay, the keyboard's reach, and tenant and role scope. Each view's
//! screenshot is saved for people to look at (`target/tmp/ui-screenshots/`);
//! `WARD_WRITE_SCREENSHOTS=1` also writes the README's two (`docs/screenshots/`).

use crate::service::{Server, CARD_OP, RAD_OP, RAD_VIEW};
use crate::support::*;
use crate::webdriver::{screenshot_dir, Browser};
use serde_json::json;

const RIGHT: &str = "\u{E014}";
const TAB: &str = "\u{E004}";

pub fn store(server: &Server, yaml: &str) {
    let (code, v) = server.send_raw(
        "POST",
        "/v1/pipelines",
        RAD_OP,
        "application/yaml",
        yaml.as_bytes(),
    );
    assert_eq!(code, 201, "{v}");
}

/// A CT series from `ward sample ct`, uploaded as a payload.
pub fn ct_payload(server: &Server) -> String {
    let dir = tempdir();
    let out = run_ward(&[
        "sample",
        "ct",
        "--out",
        dir.path().to_str().unwrap(),
        "--slices",
        "40",
        "--size",
        "128",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    server.payload(RAD_OP, dir.path())
}

pub const CT_PIPELINE: &str = "api-version: 0.1
name: ct-view
operators:
  - name: dicom-reader
    component: {path: dicom_reader.wasm}
    input: [{path: /payload}]
    output: [{name: volume, path: /results}]
    requests: {memory: 512Mi}
  - name: segment
    component: {path: segment.wasm}
    input: [{from: dicom-reader, name: volume, path: /input/volume}]
    output: [{name: labels, path: /results}]
    requests: {memory: 512Mi}
  - name: render
    component: {path: render.wasm}
    input:
      - {from: dicom-reader, name: volume, path: /input/volume}
      - {from: segment, name: labels, path: /input/labels}
    output: [{name: images, path: /results}]
    requests: {memory: 512Mi}
";

fn sign_in(b: &Browser, server: &Server, token: &str) {
    b.goto(&format!("{}/ui/login", server.url));
    let field = b.find("#token");
    b.type_into(&field, token);
    b.click(&b.find("#sign-in"));
    b.find("table.jobs");
}

pub fn start_job(server: &Server, pipeline: &str, payload: &str) -> String {
    let v = server.ok(
        "POST",
        "/v1/jobs",
        RAD_OP,
        Some(json!({"pipeline": pipeline, "payload": payload, "start": true})),
    );
    v["id"].as_str().unwrap().to_string()
}

/// The viewer's picture once the one asked for (`part` in its URL) has loaded.
fn shown(b: &Browser, part: &str) -> Vec<u8> {
    b.wait_until(
        &format!("the picture with {part}"),
        &format!(
            "var v = document.getElementById('viewer'); var i = document.getElementById('view');\
             return v.dataset.shown && v.dataset.shown.indexOf('{part}') >= 0 && i.complete && i.naturalWidth > 0;"
        ),
    );
    b.screenshot_of(&b.find("#view"))
}

fn readme_screenshot(b: &Browser, name: &str) {
    b.save_screenshot(&screenshot_dir().join(name));
    if std::env::var_os("WARD_WRITE_SCREENSHOTS").is_some() {
        b.save_screenshot(&repo_root().join("docs/screenshots").join(name));
    }
}

#[test]
fn ui_in_a_browser_jobs_live_graph_viewer_and_scope() {
    let server = Server::start_in(tempdir(), 2, "2Gi", 2, "max-upload: 64Mi", "http");
    store(&server, CT_PIPELINE);
    let payload = ct_payload(&server);
    let b = Browser::start();
    sign_in(&b, &server, RAD_OP);
    // A mark on the page: it survives only if the page is never reloaded.
    b.run("window.wardMark = 'still here'; return 1;");
    let id = start_job(&server, "ct-view", &payload);
    b.wait_until(
        "the new job's row, succeeded",
        &format!(
            "var r = document.getElementById('job-{id}');\
             return r && r.querySelector('.state-text').textContent === 'succeeded';"
        ),
    );
    assert_eq!(
        b.run("return window.wardMark;"),
        json!("still here"),
        "the row changed without a reload"
    );
    readme_screenshot(&b, "jobs.png");

    // The job: its graph names each stage and its state, as text.
    b.goto(&format!("{}/ui/jobs/{id}", server.url));
    b.find("svg.dag");
    for stage in ["dicom-reader", "segment", "render"] {
        // Read in one script: the live updates may swap the graph in between two calls.
        let text = b.wait_until(
            &format!("{stage}'s box in the graph"),
            &format!(
                "var t = document.querySelector('#dag-{stage} text.state'); return t && t.textContent;"
            ),
        );
        let text = text.as_str().unwrap();
        assert!(text.contains("succeeded"), "{stage}: {text}");
        assert!(text.contains('✓'), "{stage}: the state has an icon: {text}");
    }
    assert_eq!(b.count("table.stages tbody tr"), 3);
    assert!(
        b.count(".pictures img") >= 4,
        "the render stage's PNGs are shown"
    );
    b.save_screenshot(&screenshot_dir().join("job.png"));

    // The viewer: a key changes the slice and the picture, the lung preset and the overlay
    // toggle change the pixels.
    b.goto(&format!(
        "{}/ui/jobs/{id}/view/dicom-reader/volume",
        server.url
    ));
    b.wait_until(
        "the viewer's script",
        "return document.getElementById('viewer').dataset.ready;",
    );
    b.run("var i = document.getElementById('view'); document.getElementById('viewer').dataset.shown = i.src; return 1;");
    let slice: usize = b.text(&b.find("#slice-number")).parse().unwrap();
    let first = shown(&b, &format!("slice={slice}&"));
    b.click(&b.find("#view"));
    b.keys(&[RIGHT]);
    let next = shown(&b, &format!("slice={}&", slice + 1));
    assert_eq!(b.text(&b.find("#slice-number")), (slice + 1).to_string());
    assert_ne!(first, next, "the next slice is another picture");
    b.click(&b.find("#preset-lung"));
    let lung = shown(&b, "wc=-600&ww=1500");
    assert_ne!(next, lung, "the lung window changes the pixels");
    readme_screenshot(&b, "viewer.png");
    b.click(&b.find("#overlay-toggle"));
    let plain = shown(&b, "opacity=0");
    assert_ne!(lung, plain, "hiding the overlay changes the pixels");
    b.goto(&format!(
        "{}/ui/jobs/{id}/view/dicom-reader/volume?plane=mip&angle=3",
        server.url
    ));
    b.find("#view");
    b.save_screenshot(&screenshot_dir().join("viewer-mip.png"));

    // A followed log gains its lines as the stage writes them.
    store(
        &server,
        "api-version: 0.1
name: ticking
operators:
  - name: stage
    component: {path: misbehave.wasm}
    parameters: {behaviour: tick, sleep-ms: '300', ticks: '400'}
    input: [{path: /payload}]
    requests: {memory: 64Mi}
",
    );
    let ticking = start_job(&server, "ticking", &payload);
    server_wait_running(&server, &ticking);
    b.goto(&format!(
        "{}/ui/jobs/{ticking}/logs/stage?follow=1",
        server.url
    ));
    let before = b.text(&b.find("#log"));
    let seen = before.matches("tick").count();
    b.wait_until(
        "a new log line while following",
        &format!("return document.getElementById('log').textContent.split('tick').length - 1 > {seen} + 1;"),
    );
    b.save_screenshot(&screenshot_dir().join("log-follow.png"));

    // Every action on a job's page is reached by the keyboard, in order.
    b.goto(&format!("{}/ui/jobs/{ticking}", server.url));
    b.find("#cancel");
    let actions = b.run(
        "return Array.prototype.map.call(document.querySelectorAll('a[href], button, input:not([type=hidden]), select'), function (e) { return e.outerHTML.slice(0, 80); }).length;",
    );
    let total = actions.as_u64().unwrap() as usize;
    b.run("document.activeElement && document.activeElement.blur(); window.wardReached = {}; return 1;");
    let mut reached = 0;
    for _ in 0..total + 5 {
        b.keys(&[TAB]);
        reached = b
            .run("var e = document.activeElement; if (e && e !== document.body) { window.wardReached[e.outerHTML.slice(0, 120)] = 1; } return Object.keys(window.wardReached).length;")
            .as_u64()
            .unwrap() as usize;
    }
    assert!(reached >= total, "Tab reached {reached} of {total} actions");

    // Cancel, with its confirmation.
    b.click(&b.find("#cancel"));
    b.find("#confirm");
    assert!(
        b.source().contains("Cancel job"),
        "a confirmation comes first"
    );
    b.click(&b.find("#confirm"));
    b.wait_until(
        "the job cancelled",
        "return document.getElementById('job-state') && document.getElementById('job-state').textContent.indexOf('cancelled') >= 0;",
    );

    // A viewer's token: no cancel button, and a forged cancel POST is refused.
    let long = start_job(&server, "ticking", &payload);
    b.run("return 1;");
    b.click(&b.find("header form button"));
    sign_in(&b, &server, RAD_VIEW);
    b.goto(&format!("{}/ui/jobs/{long}", server.url));
    b.find("#job-state");
    assert_eq!(b.count("#cancel"), 0, "a viewer has no cancel button");
    let status = b.run(&format!(
        "var csrf = document.querySelector('input[name=csrf]').value;\
         var x = new XMLHttpRequest(); x.open('POST', '/ui/jobs/{long}/cancel', false);\
         x.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded');\
         x.send('csrf=' + csrf); return x.status;"
    ));
    assert_eq!(status, json!(403), "a viewer's cancel is refused");
    let job = server.ok("GET", &format!("/v1/jobs/{long}"), RAD_OP, None);
    assert_ne!(job["state"], "cancelled", "{job}");

    // Another tenant's job URL is 404.
    b.click(&b.find("header form button"));
    sign_in(&b, &server, CARD_OP);
    b.goto(&format!("{}/ui/jobs/{id}", server.url));
    b.find("h1");
    assert!(b.source().contains("404"), "{}", b.source());
    server.ok("POST", &format!("/v1/jobs/{long}/cancel"), RAD_OP, None);
}

fn server_wait_running(server: &Server, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let job = server.ok("GET", &format!("/v1/jobs/{id}"), RAD_OP, None);
        if job["state"] == "running" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} did not start: {job}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
