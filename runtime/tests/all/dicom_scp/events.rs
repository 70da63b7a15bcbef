//! What `ward dicom listen` says at its default level (info), as an operator reads it: each
//! association opened and released, each payload, each job queued, started and finished,
//! each export attempt, with the facts as fields.

use super::process::Listening;
use super::{config_text, free_port, store_series, storescp_on};
use crate::support::*;
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

/// A CT series through the segmentation to a PACS that is down at first: every event of its
/// way is logged, the failed export attempt and then the one that reached the PACS.
#[test]
fn the_listener_logs_associations_payloads_jobs_and_exports() {
    components_dir();
    let pacs_port = free_port();
    let example = repo_root().join("examples/ct-segmentation/pipeline.yaml");
    let l = Listening::start(|storage, port| {
        config_text(
            storage,
            port,
            &example,
            "    export: [{output: dicom-writer.seg, destination: pacs}]",
        ) + &format!(
            "destinations:\n  - {{name: pacs, ae-title: PACS, host: 127.0.0.1, port: {pacs_port}}}\n"
        )
    });
    let series = l.dir.path().join("series");
    let written = write_ct_series(
        &series,
        &CtSeriesOptions {
            slices: 12,
            size: 64,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    store_series(l.port, &series);

    l.wait_for_log(&[
        "association opened",
        "peer=127.0.0.1:",
        "calling=STORESCU",
        "called=CT_SEG",
    ]);
    l.wait_for_log(&["association released", "instances=12"]);
    let complete = l.wait_for_log(&["payload complete", "instances=12"]);
    let payload = l.payloads()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(field(&complete, "payload"), payload, "{complete}");
    assert_eq!(
        field(&complete, "study"),
        written.study_instance_uid,
        "{complete}"
    );
    let queued = l.wait_for_log(&["job queued", &format!("payload={payload}")]);
    let job = field(&queued, "job");
    l.wait_for_log(&[
        "job started",
        &format!("job={job}"),
        "pipeline=ct-segmentation",
    ]);
    let finished = l.wait_for_log(&["job finished", &format!("job={job}")]);
    assert!(finished.contains("outcome=succeeded"), "{finished}");
    assert!(finished.contains("duration_s="), "{finished}");
    l.wait_for_log(&[
        "export failed; it will be retried",
        "ae_title=PACS",
        "attempt=1",
    ]);

    let pacs_dir = l.dir.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let _pacs = storescp_on(&pacs_dir, "PACS", pacs_port);
    let sent = l.wait_for_log(&["export sent", "ae_title=PACS", "files=1"]);
    let attempt: u32 = field(&sent, "attempt")
        .parse()
        .unwrap_or_else(|_| panic!("no attempt number: {sent}"));
    assert!(attempt > 1, "sent after a retry: {sent}");
}

/// The value of field `name` in a log line (`name=value`).
fn field(line: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .rev()
        .find_map(|word| word.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no field {name} in: {line}"))
        .to_string()
}
