//! `ward cluster`: the scale simulation as the binary runs it, and the CRDs it prints.

use crate::support::run_ward;

#[test]
fn cluster_simulate_runs_every_job_exactly_once() {
    let out = run_ward(&["cluster", "simulate", "--nodes", "3", "--jobs", "200"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("FAKE"), "{}", out.stdout);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("| 3 |"))
        .unwrap_or_else(|| panic!("no row for 3 nodes in:\n{}", out.stdout));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | nodes | jobs | latency | killed | ran once | ran twice+ | never ran | ...
    assert_eq!(
        &cells[1..8],
        ["3", "200", "20 / 100 ms", "0", "200", "0", "0"],
        "{row}"
    );
}

#[test]
fn cluster_crds_prints_two_crds_as_yaml() {
    let out = run_ward(&["cluster", "crds"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut names = Vec::new();
    for doc in out.stdout.split("\n---\n") {
        let node = marked_yaml::parse_yaml(0, doc).expect("each document is YAML");
        let map = node.as_mapping().expect("a CRD is a mapping");
        assert_eq!(
            map.get_scalar("kind").map(|s| s.as_str()),
            Some("CustomResourceDefinition")
        );
        let meta = map.get_mapping("metadata").expect("metadata");
        names.push(meta.get_scalar("name").unwrap().as_str().to_string());
    }
    names.sort();
    assert_eq!(names, ["wardjobs.ward.dev", "wardpipelines.ward.dev"]);
}
