//! The web UI at the HTTP level, against the real `ward serve`: sign-in and its cookies,
//! tenant and role scope, CSRF refusal, the Content-Security-Policy, Server-Sent Events,
//! the render server's PNGs and their ETags.

use crate::service::{Server, CARD_OP, RAD_OP, RAD_VIEW};
use crate::support::*;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// A signed-in browser, as far as HTTP goes: its session cookie and CSRF token.
pub struct UiClient {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
    agent: ureq::Agent,
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build()
}

fn response(r: Result<ureq::Response, ureq::Error>) -> ureq::Response {
    match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    }
}

/// The value of `name="csrf"` in a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

/// `name=value` of cookie `name` among a response's `Set-Cookie` headers, and the whole header.
fn set_cookie(r: &ureq::Response, name: &str) -> Option<(String, String)> {
    r.all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| (c.split(';').next().unwrap().to_string(), c.to_string()))
}

impl UiClient {
    /// Signs in with `token` as a browser does: the form, then its POST.
    pub fn sign_in(server: &Server, token: &str) -> UiClient {
        let agent = agent();
        let form = response(agent.get(&format!("{}/ui/login", server.url)).call());
        let (login_cookie, _) = set_cookie(&form, "ward_login").expect("the form's cookie");
        let csrf = csrf_of(&form.into_string().unwrap());
        let r = response(
            agent
                .post(&format!("{}/ui/login", server.url))
                .set("Cookie", &login_cookie)
                .send_form(&[("token", token), ("csrf", &csrf)]),
        );
        assert_eq!(r.status(), 303, "signed in: {:?}", r.into_string());
        let (cookie, _) = set_cookie(&r, "ward_session").expect("a session cookie");
        let mut client = UiClient {
            base: server.url.clone(),
            cookie,
            csrf: String::new(),
            agent,
        };
        let (_, page) = client.get("/ui/jobs");
        client.csrf = csrf_of(&page);
        client
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = response(
            self.agent
                .get(&format!("{}{path}", self.base))
                .set("Cookie", &self.cookie)
                .call(),
        );
        (r.status(), r.into_string().unwrap_or_default())
    }

    pub fn get_response(&self, path: &str, headers: &[(&str, &str)]) -> ureq::Response {
        let mut req = self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("Cookie", &self.cookie);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        response(req.call())
    }

    pub fn post(&self, path: &str, csrf: &str) -> (u16, String) {
        let r = response(
            self.agent
                .post(&format!("{}{path}", self.base))
                .set("Cookie", &self.cookie)
                .send_form(&[("csrf", csrf)]),
        );
        (r.status(), r.into_string().unwrap_or_default())
    }
}

/// A job of a pipeline of one misbehave stage, started.
fn sleeping_job(server: &Server, name: &str, ms: u64) -> String {
    let yaml = format!(
        "api-version: 0.1
name: {name}
operators:
  - name: stage
    component: {{path: misbehave.wasm}}
    parameters: {{behaviour: sleep, sleep-ms: '{ms}'}}
    input: [{{path: /payload}}]
    requests: {{memory: 64Mi}}
"
    );
    crate::ui_browser::store(server, &yaml);
    let dir = tempdir();
    std::fs::write(dir.path().join("a.txt"), b"payload").unwrap();
    let payload = server.payload(RAD_OP, dir.path());
    crate::ui_browser::start_job(server, name, &payload)
}

#[test]
fn ui_sign_in_gives_a_strict_http_only_cookie_and_refuses_bad_tokens_and_forms() {
    let server = Server::start(2, "1Gi", 2);
    let a = agent();
    // Not signed in: to the sign-in page.
    let r = response(a.get(&format!("{}/ui/jobs", server.url)).call());
    assert_eq!(r.status(), 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    let form = response(a.get(&format!("{}/ui/login", server.url)).call());
    let (login_cookie, _) = set_cookie(&form, "ward_login").unwrap();
    let csrf = csrf_of(&form.into_string().unwrap());
    // A form without its CSRF token is refused.
    let r = response(
        a.post(&format!("{}/ui/login", server.url))
            .set("Cookie", &login_cookie)
            .send_form(&[("token", RAD_OP), ("csrf", "forged")]),
    );
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "ward_session").is_none());
    // A token that is not one.
    let r = response(
        a.post(&format!("{}/ui/login", server.url))
            .set("Cookie", &login_cookie)
            .send_form(&[("token", "not-a-token"), ("csrf", &csrf)]),
    );
    assert_eq!(r.status(), 401);
    assert!(r
        .into_string()
        .unwrap()
        .contains("not a valid, unexpired API token"));
    // An expired token signs no one in.
    let r = response(
        a.post(&format!("{}/ui/login", server.url))
            .set("Cookie", &login_cookie)
            .send_form(&[("token", crate::service::EXPIRED), ("csrf", &csrf)]),
    );
    assert_eq!(r.status(), 401);
    let r = response(
        a.post(&format!("{}/ui/login", server.url))
            .set("Cookie", &login_cookie)
            .send_form(&[("token", RAD_OP), ("csrf", &csrf)]),
    );
    assert_eq!(r.status(), 303);
    let (_, header) = set_cookie(&r, "ward_session").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(header.contains(part), "{header}");
    }
    assert!(!header.contains(RAD_OP), "the token is not in the cookie");
    // Signing out ends the session: its cookie no longer signs in.
    let ui = UiClient::sign_in(&server, RAD_OP);
    assert_eq!(ui.get("/ui/jobs").0, 200);
    let (code, _) = ui.post("/ui/logout", &ui.csrf.clone());
    assert_eq!(code, 303);
    assert_eq!(ui.get("/ui/jobs").0, 303);
    // An address that keeps guessing is held back for the minute, even with a good token.
    let form = response(a.get(&format!("{}/ui/login", server.url)).call());
    let (login_cookie, _) = set_cookie(&form, "ward_login").unwrap();
    let csrf = csrf_of(&form.into_string().unwrap());
    let attempt = |token: &str| {
        response(
            a.post(&format!("{}/ui/login", server.url))
                .set("Cookie", &login_cookie)
                .send_form(&[("token", token), ("csrf", &csrf)]),
        )
        .status()
    };
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(attempt("a-guess"));
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(attempt(RAD_OP), 429);
    // The sign-ins are in the tenant's audit trail, and no token is in the log of it.
    let audit = server.audit(crate::service::RAD_ADMIN);
    assert!(
        audit.iter().any(|r| r["action"] == "ui.sign-in"),
        "{audit:?}"
    );
}

#[test]
fn ui_pages_carry_a_strict_csp_and_no_inline_script_or_style() {
    let server = Server::start(2, "1Gi", 2);
    let id = sleeping_job(&server, "quick", 10);
    server.wait(RAD_OP, &id);
    let ui = UiClient::sign_in(&server, RAD_OP);
    for path in [
        "/ui/jobs".to_string(),
        format!("/ui/jobs/{id}"),
        format!("/ui/jobs/{id}/logs/stage"),
        format!("/ui/jobs/{id}/results"),
        format!("/ui/jobs/{id}/cancel"),
        "/ui/pipelines".into(),
        "/ui/dicom".into(),
        "/ui/system".into(),
        "/ui/login".into(),
    ] {
        let r = ui.get_response(&path, &[]);
        assert!(
            r.status() == 200 || path.ends_with("/cancel"),
            "{path}: {}",
            r.status()
        );
        let csp = r
            .header("content-security-policy")
            .unwrap_or_default()
            .to_string();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let html = r.into_string().unwrap();
        // Every script is a file of this origin; no element carries a style or a handler.
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(
                tag.contains("src=\"/ui/static/"),
                "{path}: inline script {tag}"
            );
        }
        assert!(!html.contains(" style="), "{path}: an inline style");
        assert!(
            !html.contains(" onclick=") && !html.contains(" onload="),
            "{path}"
        );
        assert!(
            !html.contains("http://") || !html.contains("<script src=\"http"),
            "{path}"
        );
        assert!(html.contains("Not for diagnostic use"), "{path}");
    }
    // The vendored files are served from the binary.
    let r = ui.get_response("/ui/static/htmx.min.js", &[]);
    assert_eq!(r.status(), 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
}

#[test]
fn ui_scope_is_the_token_s_tenant_and_role() {
    let server = Server::start(2, "1Gi", 2);
    let id = sleeping_job(&server, "long", 60_000);
    // Another tenant's job is not there.
    let cardio = UiClient::sign_in(&server, CARD_OP);
    for path in [
        format!("/ui/jobs/{id}"),
        format!("/ui/jobs/{id}/logs/stage"),
        format!("/ui/jobs/{id}/results"),
        format!("/ui/jobs/{id}/dag.svg"),
    ] {
        assert_eq!(cardio.get(&path).0, 404, "{path}");
    }
    let (_, list) = cardio.get("/ui/jobs");
    assert!(!list.contains(&id), "cardio's list shows radiology's job");
    let (code, _) = cardio.post(&format!("/ui/jobs/{id}/cancel"), &cardio.csrf);
    assert_eq!(code, 404);
    // A viewer sees the job but no button, and its POST is refused whatever it sends.
    let viewer = UiClient::sign_in(&server, RAD_VIEW);
    let (code, page) = viewer.get(&format!("/ui/jobs/{id}"));
    assert_eq!(code, 200);
    assert!(
        !page.contains("id=\"cancel\""),
        "a viewer has no cancel button"
    );
    let (code, _) = viewer.post(&format!("/ui/jobs/{id}/cancel"), &viewer.csrf);
    assert_eq!(code, 403);
    // An operator's form without the session's CSRF token is refused; with it, it cancels.
    let op = UiClient::sign_in(&server, RAD_OP);
    let (_, page) = op.get(&format!("/ui/jobs/{id}"));
    assert!(page.contains("id=\"cancel\""));
    let (code, _) = op.post(&format!("/ui/jobs/{id}/cancel"), "forged");
    assert_eq!(code, 403);
    let (code, _) = op.post(&format!("/ui/jobs/{id}/cancel"), &viewer.csrf);
    assert_eq!(code, 403, "another session's token is not this one's");
    let job = server.ok("GET", &format!("/v1/jobs/{id}"), RAD_OP, None);
    assert_eq!(
        job["state"], "running",
        "nothing refused changed the job: {job}"
    );
    let (code, _) = op.post(&format!("/ui/jobs/{id}/cancel"), &op.csrf);
    assert_eq!(code, 303);
    let done = server.wait(RAD_OP, &id);
    assert_eq!(done["state"], "cancelled", "{done}");
}

/// Reads Server-Sent Events from `path` until `want` accepts one (event name, data) or the
/// deadline passes; runs `after_connect` once the stream is open.
fn wait_for_event(
    ui: &UiClient,
    path: &str,
    after_connect: impl FnOnce(),
    mut want: impl FnMut(&str, &str) -> bool,
) -> (String, String) {
    let r = ui.get_response(path, &[("Accept", "text/event-stream")]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let mut lines = BufReader::new(r.into_reader()).lines();
    after_connect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut event, mut data) = (String::new(), String::new());
    while Instant::now() < deadline {
        let line = lines.next().expect("the stream stays open").unwrap();
        if let Some(e) = line
            .strip_prefix("event: ")
            .or_else(|| line.strip_prefix("event:"))
        {
            event = e.trim().to_string();
        } else if let Some(d) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix("data:"))
        {
            data.push_str(d);
            data.push('\n');
        } else if line.is_empty() {
            if !event.is_empty() && want(&event, &data) {
                return (event, data);
            }
            event.clear();
            data.clear();
        }
    }
    panic!("no wanted event on {path}");
}

#[test]
fn ui_events_stream_a_job_s_new_row_and_state_changes() {
    let server = Server::start(2, "1Gi", 2);
    let ui = UiClient::sign_in(&server, RAD_OP);
    let id = std::cell::RefCell::new(String::new());
    let mut saw_new = false;
    let (_, data) = wait_for_event(
        &ui,
        "/ui/events",
        || *id.borrow_mut() = sleeping_job(&server, "sse", 500),
        |event, data| {
            if event == "new" {
                saw_new = data.trim() == id.borrow().as_str();
            }
            event.starts_with("job-") && data.contains("state-text\">succeeded")
        },
    );
    assert!(saw_new, "a new job is announced first");
    let id = id.into_inner();
    assert!(data.contains(&format!("id=\"job-{id}\"")), "{data}");
    assert!(
        data.contains(&format!("sse-swap=\"job-{id}\"")),
        "the row keeps listening: {data}"
    );
}

#[test]
fn ui_render_server_draws_pngs_with_etags_and_keeps_to_its_outputs() {
    use crate::ui_browser::{ct_payload, start_job, store, CT_PIPELINE};
    let server = Server::start_in(tempdir(), 2, "2Gi", 2, "max-upload: 64Mi", "http");
    store(&server, CT_PIPELINE);
    let payload = ct_payload(&server);
    let id = start_job(&server, "ct-view", &payload);
    assert_eq!(server.wait(RAD_OP, &id)["state"], "succeeded");
    let ui = UiClient::sign_in(&server, RAD_OP);
    let (code, page) = ui.get(&format!("/ui/jobs/{id}/view/dicom-reader/volume"));
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("Labels") && page.contains("Volume (ml)"),
        "the legend: {page}"
    );
    let base = format!("/ui/jobs/{id}/render/dicom-reader/volume");
    let get = |q: &str, etag: Option<&str>| {
        let headers: Vec<(&str, &str)> = etag.map(|e| ("If-None-Match", e)).into_iter().collect();
        let r = ui.get_response(&format!("{base}/{q}"), &headers);
        let status = r.status();
        let tag = r.header("etag").map(str::to_string);
        let kind = r.header("content-type").map(str::to_string);
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
        (status, tag, kind, body)
    };
    let (status, etag, kind, soft) = get("axial.png?slice=20&wc=40&ww=400&opacity=35", None);
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("image/png"));
    assert!(soft.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let etag = etag.expect("an ETag");
    // The browser's copy is current: 304, no body.
    let (status, again, _, body) = get("axial.png?slice=20&wc=40&ww=400&opacity=35", Some(&etag));
    assert_eq!(status, 304);
    assert_eq!(again.as_deref(), Some(etag.as_str()));
    assert!(body.is_empty());
    // Another window, another picture and another tag.
    let (_, lung_tag, _, lung) = get("axial.png?slice=20&wc=-600&ww=1500&opacity=35", None);
    assert_ne!(lung, soft);
    assert_ne!(lung_tag.as_deref(), Some(etag.as_str()));
    let (_, _, _, plain) = get("axial.png?slice=20&wc=40&ww=400&opacity=0", None);
    assert_ne!(plain, soft, "the overlay shows in the picture");
    for plane in ["coronal", "sagittal", "mip"] {
        let (status, _, _, png) = get(&format!("{plane}.png?slice=10&angle=5"), None);
        assert_eq!(status, 200, "{plane}");
        assert!(png.starts_with(b"\x89PNG"), "{plane}");
    }
    // Only the job's own outputs, and only the tenant's jobs.
    assert_eq!(get("volume.raw", None).0, 404);
    assert_eq!(
        ui.get(&format!("/ui/jobs/{id}/view/segment/nothing")).0,
        404
    );
    assert_eq!(
        ui.get(&format!("/ui/jobs/{id}/view/render/images")).0,
        404,
        "no volume there"
    );
    assert_eq!(
        ui.get(&format!("/ui/jobs/{id}/results/..%2F..%2Fsummary.json"))
            .0,
        404
    );
    let cardio = UiClient::sign_in(&server, CARD_OP);
    assert_eq!(
        cardio
            .get_response(&format!("{base}/axial.png"), &[])
            .status(),
        404,
        "another tenant's pictures are not there"
    );
    // The render stage's own PNGs are shown on the job's page and served inline.
    let (_, job_page) = ui.get(&format!("/ui/jobs/{id}"));
    assert!(
        job_page.contains("render/images/axial.png?inline=1"),
        "{job_page}"
    );
    let r = ui.get_response(
        &format!("/ui/jobs/{id}/results/render/images/axial.png?inline=1"),
        &[],
    );
    assert_eq!(r.header("content-type"), Some("image/png"));
}
