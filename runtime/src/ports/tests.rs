//! The port network on its own: each stage is a thread with a runtime of its own, as when
//! stages run.

use super::*;
use crate::pipeline::{parse, Pipeline};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

fn pipeline(operators: &str) -> Pipeline {
    with_budget("", operators)
}

/// A pipeline whose top level also holds `top` (e.g. `ports-budget: 2Ki`).
fn with_budget(top: &str, operators: &str) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stage.wasm"), b"\0asm").unwrap();
    let yaml = format!("api-version: 0.1\nname: t\n{top}operators:\n{operators}");
    parse(&dir.path().join("pipeline.yaml"), &yaml).unwrap()
}

/// Waits (up to 60 s) until `done` holds for the network's channel figures.
fn until(net: &PortNetwork, done: impl Fn(&[PortStats]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done(&net.stats()) {
        assert!(std::time::Instant::now() < deadline, "{:?}", net.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
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

/// A writer and a reader whose channel could hold 100 messages, in a job whose channel budget
/// holds 3 of them.
const BUDGETED: &str = "  - name: w
    component: {path: stage.wasm}
    ports: {out: [{name: out, capacity: 100, max-message: 1000}]}
  - name: r
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: w, port: out}]}
";

fn receive_all(net: Arc<PortNetwork>, r: usize) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    stage(async move {
        let mut cursor = 0;
        let mut got = Vec::new();
        while let Some(m) = net.recv(r, 0, &mut cursor).await.unwrap() {
            got.push(m);
        }
        got
    })
}

#[test]
fn a_full_channel_budget_holds_the_writer_like_a_full_channel() {
    let p = with_budget("ports-budget: 3000\n", BUDGETED);
    let (w, r) = (index(&p, "w"), index(&p, "r"));
    let net = PortNetwork::new(&p).unwrap();
    let writer = {
        let net = net.clone();
        stage(async move {
            for i in 0..10u8 {
                net.send(w, 0, vec![i; 1000]).await.unwrap();
            }
            net.finish(w, None);
        })
    };
    until(&net, |s| s[0].messages == 3);
    let got = receive_all(net.clone(), r).join().unwrap();
    writer.join().unwrap();
    assert_eq!(got, (0..10u8).map(|i| vec![i; 1000]).collect::<Vec<_>>());
    let channel = &net.stats()[0];
    assert!(
        channel.peak_buffered_bytes <= 3000 && channel.peak_buffered_messages == 3,
        "the budget, not the capacity of 100, held the writer: {channel:?}"
    );
    let budget = net.budget_stats();
    assert_eq!(budget.budget_bytes, 3000);
    assert_eq!(budget.peak_buffered_bytes, 3000, "{budget:?}");
}

#[test]
fn a_message_shared_by_several_readers_counts_once_and_leaves_with_the_last() {
    let p = with_budget(
        "ports-budget: 2000\n",
        "  - name: w
    component: {path: stage.wasm}
    ports: {out: [{name: out, capacity: 10, max-message: 1000}]}
  - name: x
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: w, port: out}]}
  - name: y
    component: {path: stage.wasm}
    ports: {in: [{name: in, from: w, port: out}]}
",
    );
    let (w, x, y) = (index(&p, "w"), index(&p, "x"), index(&p, "y"));
    let net = PortNetwork::new(&p).unwrap();
    let send = |n: u8| {
        let net = net.clone();
        stage(async move {
            for i in 0..n {
                net.send(w, 0, vec![i; 1000]).await.unwrap();
            }
        })
    };
    // Two messages for two readers fill the budget of 2000 only once.
    send(2).join().unwrap();
    assert_eq!(net.budget_stats().peak_buffered_bytes, 2000);
    let take = |s: usize| {
        let net = net.clone();
        stage(async move { net.recv(s, 0, &mut 0).await.unwrap().unwrap() })
    };
    assert_eq!(take(x).join().unwrap(), vec![0; 1000]);
    assert_eq!(take(x).join().unwrap(), vec![1; 1000]);
    // y still holds both, so the budget is still full: the writer waits for y.
    let more = send(2);
    until(&net, |_| net.waits_on_budget(w));
    assert_eq!(take(y).join().unwrap(), vec![0; 1000]);
    assert_eq!(take(y).join().unwrap(), vec![1; 1000]);
    more.join().unwrap();
    assert_eq!(net.stats()[0].messages, 4);
    assert_eq!(net.budget_stats().peak_buffered_bytes, 2000);
}

#[test]
fn a_writer_waiting_on_the_budget_for_a_reader_waiting_on_it_is_deadlocked() {
    // `a` fills the budget on p1 while `b` waits for p2: neither can go on.
    let p = with_budget(
        "ports-budget: 2Ki\n",
        "  - name: a
    component: {path: stage.wasm}
    ports: {out: [{name: p1, capacity: 10, max-message: 1Ki}, {name: p2, max-message: 1Ki}]}
  - name: b
    component: {path: stage.wasm}
    ports: {in: [{name: p1, from: a}, {name: p2, from: a}]}
",
    );
    let (a, b) = (index(&p, "a"), index(&p, "b"));
    let net = PortNetwork::new(&p).unwrap();
    let writer = {
        let net = net.clone();
        stage(async move {
            for i in 0..3u8 {
                net.send(a, 0, vec![i; 1024]).await?;
            }
            Ok::<(), PortOpError>(())
        })
    };
    let reader = {
        let net = net.clone();
        stage(async move { net.recv(b, 1, &mut 0).await.map(|_| ()) })
    };
    for ended in [writer.join().unwrap(), reader.join().unwrap()] {
        match ended {
            Err(PortOpError::Deadlock(why)) => assert!(
                why.contains("'a' waits to send on 'p1' for room in the job's channel budget of 2048 bytes (ports-budget), full of messages for b")
                    && why.contains("'b' waits to receive on 'p2' from a"),
                "{why}"
            ),
            other => panic!("expected a deadlock, got {other:?}"),
        }
    }
}

#[test]
fn a_writer_waiting_on_the_budget_for_a_busy_reader_waits_and_is_told_when_it_ends() {
    let p = with_budget("ports-budget: 1000\n", BUDGETED);
    let (w, r) = (index(&p, "w"), index(&p, "r"));
    let net = PortNetwork::new(&p).unwrap();
    let writer = {
        let net = net.clone();
        stage(async move {
            net.send(w, 0, vec![1; 1000]).await?;
            net.send(w, 0, vec![2; 1000]).await
        })
    };
    // The reader computes and never receives: not a deadlock, the writer waits until the
    // reader ends.
    until(&net, |_| net.waits_on_budget(w));
    net.finish(r, None);
    assert_eq!(writer.join().unwrap(), Err(PortOpError::Closed));
    net.finish(w, None);
    let budget = net.budget_stats();
    assert!(budget.writer_blocked_s > 0.0, "{budget:?}");
    assert_eq!(budget.peak_buffered_bytes, 1000);
}

#[test]
fn a_reservation_given_up_frees_its_bytes() {
    let p = with_budget("ports-budget: 1000\n", BUDGETED);
    let (w, r) = (index(&p, "w"), index(&p, "r"));
    let net = PortNetwork::new(&p).unwrap();
    let sent = {
        let net = net.clone();
        stage(async move {
            drop(net.reserve(w, 0, 1000).await?);
            net.send(w, 0, vec![7; 1000]).await
        })
    };
    assert_eq!(sent.join().unwrap(), Ok(()));
    net.close_output(w, 0);
    assert_eq!(receive_all(net, r).join().unwrap(), vec![vec![7; 1000]]);
}
