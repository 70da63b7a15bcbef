//! The port network on its own: each stage is a thread with a runtime of its own, as when
//! stages run.

use super::*;
use crate::pipeline::{parse, Pipeline};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

fn pipeline(operators: &str) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stage.wasm"), b"\0asm").unwrap();
    let yaml = format!("api-version: 0.1\nname: t\noperators:\n{operators}");
    parse(&dir.path().join("pipeline.yaml"), &yaml).unwrap()
}

fn index(p: &Pipeline, name: &str) -> usize {
    p.stages.iter().position(|s| s.name == name).unwrap()
}

/// Runs `f` on a thread of its own, as a stage does.
fn stage<T: Send + 'static>(
    f: impl Future<Output = T> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    })
}

const PAIR: &str = "  - name: w
    component: {path: stage.wasm}
    ports: {out: [{name: out, capacity: 2, max-message: 1Ki}]}
  - name: r
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: w, port: out}]}
";

#[test]
fn a_full_channel_holds_the_writer_until_the_reader_takes_a_message() {
    let p = pipeline(PAIR);
    let (w, r) = (index(&p, "w"), index(&p, "r"));
    let net = PortNetwork::new(&p).unwrap();
    let writer = {
        let net = net.clone();
        stage(async move {
            for i in 0..10u8 {
                net.send(w, 0, vec![i; 100]).await.unwrap();
            }
            net.close_output(w, 0);
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let stats = net.stats();
    assert_eq!(stats[0].messages, 2, "the writer stops at the capacity");
    let reader = {
        let net = net.clone();
        stage(async move {
            let mut cursor = 0;
            let mut got = Vec::new();
            while let Some(m) = net.recv(r, 0, &mut cursor).await.unwrap() {
                got.push(m[0]);
            }
            got
        })
    };
    assert_eq!(reader.join().unwrap(), (0..10).collect::<Vec<u8>>());
    writer.join().unwrap();
    let stats = net.stats();
    assert_eq!((stats[0].messages, stats[0].bytes), (10, 1000));
    assert_eq!(stats[0].peak_buffered_messages, 2);
    assert_eq!(stats[0].peak_buffered_bytes, 200);
    assert!(stats[0].writer_blocked_s >= 0.15, "{stats:?}");
}

#[test]
fn a_message_over_the_limit_is_refused_with_the_limit() {
    let p = pipeline(PAIR);
    let net = PortNetwork::new(&p).unwrap();
    let w = index(&p, "w");
    let sent = stage(async move { net.send(w, 0, vec![0; 1025]).await });
    assert_eq!(sent.join().unwrap(), Err(PortOpError::TooLarge(1024)));
}

#[test]
fn every_reader_of_a_fanned_out_port_gets_every_message_and_fan_in_ends_with_its_last_writer() {
    let p = pipeline(
        "  - name: a
    component: {path: stage.wasm}
    ports: {out: [{name: out}]}
  - name: b
    component: {path: stage.wasm}
    ports: {out: [{name: out}]}
  - name: x
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: a, port: out}]}
  - name: y
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: a, port: out, fan-in: true}, {name: in, from: b, port: out, fan-in: true}]}
",
    );
    let net = PortNetwork::new(&p).unwrap();
    let (a, b, x, y) = (
        index(&p, "a"),
        index(&p, "b"),
        index(&p, "x"),
        index(&p, "y"),
    );
    let readers: Vec<_> = [x, y]
        .into_iter()
        .map(|s| {
            let net = net.clone();
            stage(async move {
                let mut cursor = 0;
                let mut got = Vec::new();
                while let Some(m) = net.recv(s, 0, &mut cursor).await.unwrap() {
                    got.push(m);
                }
                got
            })
        })
        .collect();
    let writers: Vec<_> = [(a, 1u8), (b, 2u8)]
        .into_iter()
        .map(|(s, tag)| {
            let net = net.clone();
            stage(async move {
                for i in 0..20u8 {
                    net.send(s, 0, vec![tag, i]).await.unwrap();
                }
                net.finish(s, None);
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut got: Vec<Vec<Vec<u8>>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(got[0], (0..20).map(|i| vec![1, i]).collect::<Vec<_>>());
    assert_eq!(got[1].len(), 40, "fan-in gets both writers' messages");
    got[1].sort();
    let mut expected: Vec<Vec<u8>> = (0..20).flat_map(|i| [vec![1, i], vec![2, i]]).collect();
    expected.sort();
    assert_eq!(got[1], expected);
}

#[test]
fn a_failed_writer_is_reported_after_what_it_sent() {
    let p = pipeline(PAIR);
    let (w, r) = (index(&p, "w"), index(&p, "r"));
    let net = PortNetwork::new(&p).unwrap();
    {
        let net = net.clone();
        stage(async move {
            net.send(w, 0, vec![1]).await.unwrap();
            net.send(w, 0, vec![2]).await.unwrap();
            net.finish(w, Some("trap: unreachable"));
        })
        .join()
        .unwrap();
    }
    let got = stage({
        let net = net.clone();
        async move {
            let mut cursor = 0;
            let mut got = Vec::new();
            loop {
                match net.recv(r, 0, &mut cursor).await {
                    Ok(Some(m)) => got.push(Ok(m)),
                    other => {
                        got.push(Err(other));
                        break got;
                    }
                }
            }
        }
    })
    .join()
    .unwrap();
    assert_eq!(got[..2], [Ok(vec![1]), Ok(vec![2])]);
    assert_eq!(
        got[2],
        Err(Err(PortOpError::PeerFailed(
            "stage 'w' failed: trap: unreachable".into()
        )))
    );
    assert!(net.peer_failure_seen(r).is_some());
    assert!(net.peer_failure_seen(w).is_none());
}

#[test]
fn a_writer_whose_only_reader_ended_is_told_the_port_is_closed() {
    let p = pipeline(PAIR);
    let (w, r) = (index(&p, "w"), index(&p, "r"));
    let net = PortNetwork::new(&p).unwrap();
    net.finish(r, None);
    let sent = stage(async move { net.send(w, 0, vec![1]).await });
    assert_eq!(sent.join().unwrap(), Err(PortOpError::Closed));
}

#[test]
fn stages_receiving_from_each_other_are_ended_as_deadlocked_with_their_names() {
    let p = pipeline(
        "  - name: a
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: b, port: out}], out: [{name: out}]}
  - name: b
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: a, port: out}], out: [{name: out}]}
",
    );
    let net = PortNetwork::new(&p).unwrap();
    let both: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let s = index(&p, name);
            let net: Arc<PortNetwork> = net.clone();
            stage(async move { net.recv(s, 0, &mut 0).await })
        })
        .collect();
    for ended in both {
        match ended.join().unwrap() {
            Err(PortOpError::Deadlock(why)) => {
                assert!(
                    why.contains("'a' waits to receive on 'in' from b")
                        && why.contains("'b' waits to receive on 'in' from a"),
                    "{why}"
                );
            }
            other => panic!("expected a deadlock, got {other:?}"),
        }
    }
}
