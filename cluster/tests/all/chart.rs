//! The Helm chart (`charts/ward`) against the code it deploys: its `crds/` are the CRDs
//! generated from Ward's resource types, `scripts/check-chart` (the real Helm engine and the
//! Kubernetes schemas) passes, and its Roles grant exactly `ward_cluster::rbac`'s rules.
//!
//! `WARD_WRITE_CRDS=1 cargo test -p ward-cluster --test all chart` writes the generated CRDs
//! into `charts/ward/crds` (what `ward cluster crds --out charts/ward/crds` does) before
//! comparing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use ward_cluster::crds;
use ward_cluster::rbac::{self, Rule};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lies in the workspace")
        .to_path_buf()
}

fn chart_crds_dir() -> PathBuf {
    repo_root().join("charts/ward/crds")
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let dir = chart_crds_dir();
    let generated = crds::all();
    if std::env::var_os("WARD_WRITE_CRDS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).expect("make the chart's crds directory");
        for crd in &generated {
            std::fs::write(dir.join(crds::file_name(crd)), crds::to_yaml(crd))
                .expect("write a CRD");
        }
    }
    let mut expected_names = BTreeSet::new();
    for crd in &generated {
        let name = crds::file_name(crd);
        let path = dir.join(&name);
        let in_chart = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `ward cluster crds --out charts/ward/crds` \
                 (or WARD_WRITE_CRDS=1 cargo test -p ward-cluster --test all chart)",
                path.display()
            )
        });
        assert!(
            in_chart == crds::to_yaml(crd),
            "{} differs from the CRD generated from Ward's resource types; run \
             `ward cluster crds --out charts/ward/crds` (or WARD_WRITE_CRDS=1 cargo test \
             -p ward-cluster --test all chart) and commit the result",
            path.display()
        );
        expected_names.insert(name);
    }
    // A CRD the code no longer defines would still be installed by Helm.
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("read the chart's crds directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        present, expected_names,
        "charts/ward/crds must hold exactly the generated CRDs"
    );
}

/// Runs `scripts/check-chart` with `args`; its stdout on success, a failed assertion with
/// all it said otherwise (a missing Python package included: that is a failure, not a skip).
fn check_chart(args: &[&str]) -> String {
    let script = repo_root().join("scripts/check-chart");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scripts/check-chart {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn chart_lints_renders_and_validates() {
    let said = check_chart(&[]);
    // The script ends by saying what it checked; a run that checked nothing says nothing.
    assert!(
        said.contains("chart checked:"),
        "scripts/check-chart did not report its checks:\n{said}"
    );
}

/// Every (apiGroup, resource, verb) a set of rules grants.
type Grants = BTreeSet<(String, String, String)>;

fn grants_of(rules: &[Rule]) -> Grants {
    let mut grants = Grants::new();
    for rule in rules {
        for group in rule.api_groups {
            for resource in rule.resources {
                for verb in rule.verbs {
                    grants.insert((group.to_string(), resource.to_string(), verb.to_string()));
                }
            }
        }
    }
    grants
}

fn grants_of_rendered(rules: &serde_json::Value) -> Grants {
    let strings = |rule: &serde_json::Value, key: &str| -> Vec<String> {
        rule[key]
            .as_array()
            .unwrap_or_else(|| panic!("a rendered rule without {key}: {rule}"))
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect()
    };
    let mut grants = Grants::new();
    for rule in rules.as_array().expect("a Role's rules are a list") {
        assert!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "a rendered rule outside what the comparison covers: {rule}"
        );
        for group in strings(rule, "apiGroups") {
            for resource in strings(rule, "resources") {
                for verb in strings(rule, "verbs") {
                    grants.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    grants
}

#[test]
fn chart_roles_grant_exactly_the_rbac_rules() {
    let printed = check_chart(&["--print-roles"]);
    let roles: serde_json::Value = serde_json::from_str(&printed)
        .unwrap_or_else(|e| panic!("--print-roles printed no JSON ({e}):\n{printed}"));
    for (component, rules) in [
        ("node", rbac::NODE_RULES),
        ("control-plane", rbac::CONTROL_PLANE_RULES),
    ] {
        let rendered = roles
            .get(component)
            .unwrap_or_else(|| panic!("the chart renders no {component} Role: {roles}"));
        assert_eq!(
            grants_of_rendered(rendered),
            grants_of(rules),
            "the chart's {component} Role differs from ward_cluster::rbac"
        );
    }
    assert_eq!(
        roles.as_object().map(|o| o.len()),
        Some(2),
        "the chart renders Roles other than the node's and the control plane's: {roles}"
    );
}
