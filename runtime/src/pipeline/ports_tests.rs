//! Validation of streaming ports.

use super::tests::{check, problems};
use super::*;

/// Three operators in a streaming chain, `{extra}` appended to the operator list.
fn chain(extra: &str) -> String {
    format!(
        "api-version: 0.1
name: stream
operators:
  - name: reader
    component: {{path: stage.wasm}}
    ports:
      out: [{{name: slices, type: ward/ct-slice-v1, capacity: 2, max-message: 1Mi}}]
  - name: smooth
    component: {{path: stage.wasm}}
    ports:
      in: [{{name: slices, from: reader, type: ward/ct-slice-v1}}]
      out: [{{name: smoothed}}]
  - name: assemble
    component: {{path: stage.wasm}}
    ports:
      in: [{{name: slices, from: smooth, port: smoothed}}]
{extra}"
    )
}

#[test]
fn ports_connect_writers_to_readers_and_join_their_stages() {
    let p = check(&chain("")).unwrap();
    let reader = p.stage("reader").unwrap();
    assert_eq!(reader.ports_out[0].capacity, 2);
    assert_eq!(reader.ports_out[0].max_message, 1 << 20);
    assert_eq!(
        reader.ports_out[0].readers,
        vec![PortEnd {
            stage: "smooth".into(),
            port: "slices".into()
        }]
    );
    let smooth = p.stage("smooth").unwrap();
    assert_eq!(smooth.ports_out[0].capacity, DEFAULT_PORT_CAPACITY);
    assert_eq!(smooth.ports_out[0].max_message, DEFAULT_MAX_MESSAGE);
    let assemble = p.stage("assemble").unwrap();
    assert_eq!(assemble.ports_in[0].writers[0].port, "smoothed");
    for s in &p.stages {
        assert_eq!(s.port_peers.len(), 2, "{} runs with the other two", s.name);
        assert!(s.depends_on.is_empty(), "ports are not volume dependencies");
    }
}

#[test]
fn a_port_no_one_writes_is_refused_with_what_is_there() {
    let p = problems(&chain(
        "  - name: extra
    component: {path: stage.wasm}
    ports:
      in: [{name: x, from: reader, port: volumes}, {name: y, from: nobody}, {name: z, from: extra}]
",
    ));
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].contains("[extra] input port 'x' reads port 'volumes' of operator 'reader', which no one writes (its output ports: slices)"), "{p:#?}");
    assert!(p[1].contains("[extra] input port 'y' from unknown operator 'nobody' (operators: assemble, reader, smooth)"), "{p:#?}");
    assert!(
        p[2].contains("[extra] an operator cannot read its own port"),
        "{p:#?}"
    );
}

#[test]
fn two_writers_into_one_port_need_fan_in() {
    let yaml = chain(
        "  - name: other
    component: {path: stage.wasm}
    ports:
      out: [{name: slices}]
  - name: merge
    component: {path: stage.wasm}
    ports:
      in: [{name: all, from: reader, port: slices}, {name: all, from: other, port: slices}]
",
    );
    let p = problems(&yaml);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].contains("[merge] input port 'all' has several writers (reader, other; first at")
            && p[0].contains("declare `fan-in: true`"),
        "{p:#?}"
    );
    let merged = check(&yaml.replace("port: slices}", "port: slices, fan-in: true}"))
        .expect("fan-in declared");
    let merge = merged.stage("merge").unwrap();
    assert_eq!(merge.ports_in.len(), 1);
    assert_eq!(merge.ports_in[0].writers.len(), 2);
    assert_eq!(
        merged.stage("reader").unwrap().ports_out[0].readers.len(),
        2,
        "fan-out: reader's slices go to smooth and merge"
    );
}

#[test]
fn port_types_must_agree() {
    let p = problems(&chain("").replace(
        "{name: slices, from: reader, type: ward/ct-slice-v1}",
        "{name: slices, from: reader, type: ward/mr-slice-v1}",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("[smooth] input port 'slices' expects type 'ward/mr-slice-v1' but reader.slices sends 'ward/ct-slice-v1'"), "{p:#?}");
}

#[test]
fn an_output_port_no_one_reads_is_refused() {
    let p = problems(&chain("").replace(
        "out: [{name: smoothed}]",
        "out: [{name: smoothed}, {name: spare}]",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].contains("[smooth] output port 'spare' is read by no operator"),
        "{p:#?}"
    );
}

#[test]
fn bad_channel_bounds_are_refused_where_written() {
    let p = problems(
        &chain("")
            .replace("capacity: 2", "capacity: 0")
            .replace("max-message: 1Mi", "max-message: 2Gi"),
    );
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].contains("pipeline.yaml:7:") && p[0].contains("port capacity '0' must be"),
        "{p:#?}"
    );
    assert!(
        p[1].contains("max-message '2Gi' must be above 0 and at most 1"),
        "{p:#?}"
    );
}

#[test]
fn port_joined_stages_cannot_wait_for_each_others_volumes() {
    let direct = problems(&chain("").replace(
        "      in: [{name: slices, from: smooth, port: smoothed}]\n",
        "      in: [{name: slices, from: smooth, port: smoothed}]\n    input: [{from: reader, path: /volume}]\n",
    ));
    assert_eq!(direct.len(), 1, "{direct:#?}");
    assert!(
        direct[0].contains("operators 'reader' and 'assemble' are joined by ports and so run at the same time, but 'assemble' reads results that exist only once 'reader' has ended (reader -> assemble)"),
        "{direct:#?}"
    );
    // Through a stage outside the set.
    let indirect = problems(&chain("  - name: between
    component: {path: stage.wasm}
    input: [{from: reader, path: /volume}]
").replace(
        "      in: [{name: slices, from: smooth, port: smoothed}]\n",
        "      in: [{name: slices, from: smooth, port: smoothed}]\n    input: [{from: between, path: /between}]\n",
    ));
    assert_eq!(indirect.len(), 1, "{indirect:#?}");
    assert!(
        indirect[0].contains("(reader -> between -> assemble)"),
        "{indirect:#?}"
    );
}

#[test]
fn a_port_cycle_is_allowed_the_runtime_watches_for_deadlock() {
    let yaml = "api-version: 0.1
name: ring
operators:
  - name: a
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: b, port: out}], out: [{name: out}]}
  - name: b
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: a, port: out}], out: [{name: out}]}
";
    let p = check(yaml).unwrap();
    assert_eq!(p.stages[0].port_peers, vec![1]);
    assert_eq!(p.stages[1].port_peers, vec![0]);
}

/// Two operators joined by one port, `{budget}` written at the top level.
fn pair(budget: &str, out: &str) -> String {
    format!(
        "api-version: 0.1
name: budget
{budget}operators:
  - name: writer
    component: {{path: stage.wasm}}
    ports:
      out: [{out}]
  - name: reader
    component: {{path: stage.wasm}}
    ports:
      in: [{{name: out, from: writer}}]
"
    )
}

#[test]
fn the_channel_budget_defaults_small_and_can_be_set() {
    let p = check(&pair("", "{name: out}")).unwrap();
    assert_eq!(p.ports_budget.bytes, DEFAULT_PORTS_BUDGET);
    assert_eq!(DEFAULT_PORTS_BUDGET, 64 << 20);
    assert!(p.ports_budget.location.is_none());
    let p = check(&pair("ports-budget: 256Mi\n", "{name: out}")).unwrap();
    assert_eq!(p.ports_budget.bytes, 256 << 20);
    assert_eq!(p.ports_budget.location.as_ref().unwrap().line, 3);
}

#[test]
fn a_port_naming_no_max_message_gets_one_that_fits_the_budget() {
    let p = check(&pair("ports-budget: 8Mi\n", "{name: out}")).unwrap();
    assert_eq!(p.stage("writer").unwrap().ports_out[0].max_message, 8 << 20);
}

#[test]
fn a_max_message_over_the_budget_is_refused_with_both_figures() {
    let p = problems(&pair("", "{name: out, capacity: 1024, max-message: 1Gi}"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("pipeline.yaml:7:54: [writer] output port 'out': max-message 1 GiB (1073741824 bytes) is more than the job's channel budget of 64 MiB (67108864 bytes; the default"),
        "{p:#?}"
    );
    let p = problems(&pair(
        "ports-budget: 8Mi\n",
        "{name: out, max-message: 9Mi}",
    ));
    assert!(
        p[0].starts_with("pipeline.yaml:8:38: [writer] output port 'out': max-message 9 MiB (9437184 bytes) is more than the job's channel budget of 8 MiB (8388608 bytes; `ports-budget` at ")
            && p[0].contains("pipeline.yaml:3:15)"),
        "{p:#?}"
    );
}

#[test]
fn channels_that_could_hold_more_than_the_budget_together_are_allowed() {
    // 1024 × 64Mi is far over 64Mi: at run time the budget bounds what they hold.
    let p = check(&pair("", "{name: out, capacity: 1024, max-message: 64Mi}")).unwrap();
    assert_eq!(p.stage("writer").unwrap().ports_out[0].capacity, 1024);
}

#[test]
fn a_bad_budget_is_refused_where_it_is_written() {
    let p = problems(&pair("ports-budget: lots\n", "{name: out}"));
    assert!(
        p[0].starts_with("pipeline.yaml:3:15: ports-budget 'lots' is not a size"),
        "{p:#?}"
    );
    let p = problems(&pair("ports-budget: 0\n", "{name: out}"));
    assert!(
        p[0].starts_with("pipeline.yaml:3:15: ports-budget must be above 0"),
        "{p:#?}"
    );
}
