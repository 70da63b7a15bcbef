//! `ward serve`'s configuration, as its operator meets it: `ward serve --check` and a
//! refused start name every problem as `FILE:LINE:COL: message`, one per line, and the
//! check starts nothing (no socket bound, no state directory made).

use crate::dicom_scp::free_port;
use crate::service::hash;
use crate::support::*;
use std::path::Path;

/// `(line, column, words)` of each problem the configuration should be refused for.
type Expected<'a> = &'a [(usize, usize, &'a str)];

/// Checks that `said` is exactly one `FILE:LINE:COL: message` line per expected problem.
fn assert_located(config: &Path, said: &str, expected: Expected) {
    let lines: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), expected.len(), "one line per problem:\n{said}");
    for (line, column, words) in expected {
        let at = format!("{}:{line}:{column}: ", config.display());
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&at) && l.contains(words)),
            "a line at {at} says {words:?}:\n{said}"
        );
    }
}

/// An openssl-made certificate and its key in `dir`, named after `name`.
fn certificate(dir: &Path, name: &str) {
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join(format!("{name}-key.pem")))
        .arg("-out")
        .arg(dir.join(format!("{name}.pem")))
        .output()
        .expect("openssl makes a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

#[test]
fn every_problem_in_the_configuration_is_named_where_it_was_written() {
    let dir = tempdir();
    let config = dir.path().join("serve.yaml");
    let token = hash("a-token");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0
state: state
components: .
capacity: {{memory: 8Qi, jobs: 0}}
http: {{header-timeout: soon}}
tenants:
  - name: Radiology
    tokens:
      - {{name: ci, role: boss, sha256: {token}}}
      - {{name: old, role: viewer, sha256: 1234, expires: tomorrow}}
    stow: {{pipelines: [ct-segmentation], priority: urgent}}
  - name: cardio
    tokens: [{{name: ci, role: operator, sha256: {token}}}]
"
        ),
    )
    .unwrap();
    let expected: Expected = &[
        (4, 20, "capacity.memory '8Qi'"),
        (4, 31, "capacity.jobs '0' must be a whole number above 0"),
        (5, 24, "http.header-timeout 'soon' is not a duration"),
        (7, 11, "tenant 'Radiology': names are 1-63 characters"),
        (
            9,
            26,
            "token 'ci': role 'boss' must be viewer, operator or admin",
        ),
        (10, 43, "token 'old': sha256 must be 64 hex digits"),
        (
            10,
            58,
            "token 'old': expires must be seconds since the Unix epoch",
        ),
        (
            11,
            52,
            "stow priority 'urgent' must be lower, normal, higher or immediate",
        ),
        (13, 49, "the same hash as the one at"),
    ];
    let checked = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(checked.code, 2, "{}", checked.stderr);
    assert_located(&config, &checked.stderr, expected);
    let started = run_ward(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(started.code, 2, "{}", started.stderr);
    assert_located(&config, &started.stderr, expected);
    assert!(
        !dir.path().join("state").exists(),
        "a refused configuration leaves no state directory"
    );
}

#[test]
fn a_key_that_does_not_belong_and_broken_yaml_are_located() {
    let dir = tempdir();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\nstate: state\ncomponents: .\nmax-uploads: 1Gi\ntenants: []\n",
    )
    .unwrap();
    let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_located(
        &config,
        &out.stderr,
        &[(4, 1, "Unknown field `max-uploads`")],
    );

    std::fs::write(&config, "listen: 127.0.0.1:0\nstate: [state\n").unwrap();
    let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_located(&config, &out.stderr, &[(3, 1, "not valid YAML")]);

    std::fs::write(&config, "listen: 127.0.0.1:0\nlisten: 127.0.0.1:1\n").unwrap();
    let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_located(
        &config,
        &out.stderr,
        &[(2, 1, "key 'listen' appears twice")],
    );
}

#[test]
fn the_check_finds_the_files_the_configuration_names_missing_or_broken() {
    let dir = tempdir();
    certificate(dir.path(), "one");
    certificate(dir.path(), "two");
    std::fs::write(dir.path().join("short.key"), b"too short").unwrap();
    std::fs::write(dir.path().join("not.pem"), b"not a certificate").unwrap();
    let config = dir.path().join("serve.yaml");
    let write = |tls: &str, rest: &str| {
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0
state: state
components: no-such-components
tls: {tls}
{rest}
tenants:
  - name: radiology
    tokens: [{{name: ci, role: operator, sha256: {}}}]
",
                hash("a-token")
            ),
        )
        .unwrap()
    };
    write(
        "{certificate: one.pem, key: two-key.pem}",
        "audit-key-file: short.key\ndicom: no-adapter.yaml",
    );
    let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_located(
        &config,
        &out.stderr,
        &[
            (3, 13, "no-such-components is not a directory"),
            (4, 20, "the certificate and key do not go together"),
            (5, 17, "audit-key-file"),
            (6, 8, "no-adapter.yaml is not a file"),
        ],
    );
    write("{certificate: not.pem, key: missing.pem}", "");
    let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_located(
        &config,
        &out.stderr,
        &[
            (3, 13, "no-such-components is not a directory"),
            (4, 34, "missing.pem is not a file"),
        ],
    );
    assert!(
        !dir.path().join("state").exists(),
        "the check writes nothing"
    );
}

#[test]
fn the_check_passes_a_good_configuration_without_binding_its_address() {
    let dir = tempdir();
    certificate(dir.path(), "server");
    std::fs::write(dir.path().join("audit.key"), [7u8; 32]).unwrap();
    // The address is taken: a service would fail to bind it, the check does not try.
    let port = free_port();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}
state: state
components: {}
tls: {{certificate: server.pem, key: server-key.pem}}
audit-key-file: audit.key
tenants:
  - name: radiology
    tokens: [{{name: ci, role: operator, sha256: {}}}]
",
            components_dir().display(),
            hash("a-token")
        ),
    )
    .unwrap();
    let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(": valid"), "{}", out.stdout);
    assert!(
        !dir.path().join("state").exists(),
        "the check makes no state directory"
    );
}

#[test]
fn the_check_refuses_a_hosted_adapter_route_for_a_tenant_not_configured() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("adapter.yaml"),
        "listen: 127.0.0.1:0
storage: dicom
routes:
  - ae-title: CT_SEG
    tenant: cardio
    pipelines: [ct-segmentation]
  - ae-title: STORE
    export: [{output: dicom-writer.seg, destination: pacs}]
    tenant: radiology
destinations:
  - {name: pacs, ae-title: PACS, host: 127.0.0.1, port: 11113}
",
    )
    .unwrap();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0
state: state
components: .
dicom: adapter.yaml
tenants:
  - name: radiology
    tokens: [{{name: ci, role: operator, sha256: {}}}]
",
            hash("a-token")
        ),
    )
    .unwrap();
    let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_located(
        &config,
        &out.stderr,
        &[
            (4, 8, "route CT_SEG: tenant 'cardio' is not configured"),
            (4, 8, "route STORE: it exports results but runs no pipeline"),
        ],
    );
}

/// A hosted adapter's exports are checked against the pipelines the tenant has stored,
/// read from the state database of a service that is running (and again once it is not):
/// the check opens it read-only.
#[test]
fn the_check_names_an_export_the_stored_pipeline_does_not_have() {
    use crate::service::{Server, RAD_OP};
    let mut server = Server::start(1, "4Gi", 1);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let dir = server.config.parent().unwrap().to_path_buf();
    std::fs::write(
        dir.join("adapter.yaml"),
        "listen: 127.0.0.1:0
storage: dicom
routes:
  - ae-title: INVENTORY
    tenant: radiology
    pipelines: [inventory]
    export: [{output: stage.nope, destination: pacs}, {output: ghost.seg, destination: pacs}]
  - ae-title: LATER
    tenant: radiology
    pipelines: [not-stored-yet]
destinations:
  - {name: pacs, ae-title: PACS, host: 127.0.0.1, port: 11113}
",
    )
    .unwrap();
    // The running service's configuration, hosting the adapter (its address is in use: the
    // check does not bind it).
    let served = std::fs::read_to_string(&server.config).unwrap();
    let line = served.lines().count() + 1;
    let config = dir.join("check.yaml");
    std::fs::write(&config, format!("{served}dicom: adapter.yaml\n")).unwrap();
    let expected: Expected = &[
        (
            line,
            8,
            "route INVENTORY: export stage.nope to pacs: operator 'stage' of pipeline 'inventory' has no output 'nope'",
        ),
        (
            line,
            8,
            "route INVENTORY: export ghost.seg to pacs: pipeline 'inventory' has no operator 'ghost'",
        ),
    ];
    for running in [true, false] {
        if !running {
            server.kill();
        }
        let out = run_ward(&["serve", "--check", config.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
        assert_located(&config, &out.stderr, expected);
        assert!(
            out.stdout.contains(
                "route LATER: tenant 'radiology' has no pipeline 'not-stored-yet' stored yet"
            ),
            "a pipeline not stored yet is a note: {}",
            out.stdout
        );
    }
}
