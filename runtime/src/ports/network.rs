//! The channels of one job and the blocking `send` / `recv` on them.

use super::deadlock::deadlocked;
use super::stats::{BudgetStats, PortStats};
use crate::pipeline::Pipeline;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Why a port operation did not go through.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortOpError {
    /// `send`: the port was closed, or every reader has ended.
    #[error("the port is closed")]
    Closed,
    /// The message is over the port's `max-message` (or, which validation rules out, over the
    /// job's whole channel budget): the limit.
    #[error("the message is over the port's limit of {0} bytes (max-message)")]
    TooLarge(u64),
    /// A stage on the other end failed: its name and reason.
    #[error("{0}")]
    PeerFailed(String),
    /// This stage and others wait on each other and none can go on: the host ends them.
    #[error("{0}")]
    Deadlock(String),
}

/// How one end of a channel stands.
#[derive(Debug, Clone, PartialEq)]
enum End {
    Open,
    /// Closed by a stage that went on (or succeeded).
    Closed,
    /// The stage on that end failed; its reason.
    Failed(String),
}

/// One channel: an output port to one input port.
struct Edge {
    writer: usize,
    reader: usize,
    capacity: usize,
    queue: VecDeque<Arc<Vec<u8>>>,
    queued_bytes: u64,
    writer_end: End,
    reader_end: End,
    stats: PortStats,
}

/// A declared port of one stage and the channels behind it.
pub struct PortDecl {
    pub name: String,
    edges: Vec<usize>,
    pub peers: Vec<String>,
    pub message_type: Option<String>,
    pub max_message: u64,
    pub capacity: u32,
}

/// A stage's ports, inputs and outputs.
#[derive(Default)]
pub struct StagePortDecls {
    pub inputs: Vec<PortDecl>,
    pub outputs: Vec<PortDecl>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    Send,
    Recv,
}

/// What a blocked stage waits for.
struct Wait {
    direction: Direction,
    port: String,
    /// For a send, the full channels; for a receive, every channel of the port.
    edges: Vec<usize>,
    /// For a send whose channels have room but the job's channel budget has not: the bytes
    /// it needs there.
    budget: Option<u64>,
    since: Instant,
}

/// The job's channel budget: every byte buffered in its channels, together.
struct Budget {
    limit: u64,
    /// Bytes of the messages in the channels, each counted once however many channels hold it.
    held: u64,
    /// Bytes set aside for messages being copied out of their writers.
    reserved: u64,
    peak: u64,
    /// Seconds writers waited for room in the budget, all together.
    blocked_s: f64,
}

impl Budget {
    fn fits(&self, len: u64) -> bool {
        self.held + self.reserved + len <= self.limit
    }
}

#[derive(Default)]
struct Member {
    blocked: Option<Wait>,
    /// Budget bytes this stage has set aside for the message it is copying now.
    reserved: u64,
    /// Set when the host found this stage deadlocked: why.
    deadlock: Option<String>,
    /// The first peer failure this stage was told of.
    peer_failure: Option<String>,
}

struct State {
    edges: Vec<Edge>,
    members: Vec<Member>,
    budget: Budget,
}

/// Every port channel of one job.
pub struct PortNetwork {
    names: Vec<String>,
    decls: Vec<StagePortDecls>,
    state: Mutex<State>,
    /// One per stage: a stage blocks in at most one port call at a time, so a single
    /// stored permit never loses a wake-up.
    wake: Vec<Notify>,
}

impl PortNetwork {
    /// The channels of `pipeline`, or none when no stage declares a port.
    pub fn new(pipeline: &Pipeline) -> Option<Arc<PortNetwork>> {
        let stages = &pipeline.stages;
        if stages.iter().all(|s| s.ports_out.is_empty()) {
            return None;
        }
        let index = |name: &str| stages.iter().position(|s| s.name == name);
        let mut decls: Vec<StagePortDecls> =
            stages.iter().map(|_| StagePortDecls::default()).collect();
        let mut edges = Vec::new();
        for (w, stage) in stages.iter().enumerate() {
            for out in &stage.ports_out {
                let mut out_edges = Vec::new();
                for reader in &out.readers {
                    let r = index(&reader.stage).expect("validated reader");
                    out_edges.push(edges.len());
                    edges.push(Edge {
                        writer: w,
                        reader: r,
                        capacity: out.capacity as usize,
                        queue: VecDeque::new(),
                        queued_bytes: 0,
                        writer_end: End::Open,
                        reader_end: End::Open,
                        stats: PortStats {
                            writer: format!("{}.{}", stage.name, out.name),
                            reader: reader.to_string(),
                            capacity: out.capacity,
                            max_message: out.max_message,
                            ..PortStats::default()
                        },
                    });
                }
                decls[w].outputs.push(PortDecl {
                    name: out.name.clone(),
                    edges: out_edges,
                    peers: out.readers.iter().map(|r| r.stage.clone()).collect(),
                    message_type: out.message_type.clone(),
                    max_message: out.max_message,
                    capacity: out.capacity,
                });
            }
        }
        for (r, stage) in stages.iter().enumerate() {
            for input in &stage.ports_in {
                let mine: Vec<usize> = (0..edges.len())
                    .filter(|&e| {
                        edges[e].reader == r
                            && edges[e].stats.reader == format!("{}.{}", stage.name, input.name)
                    })
                    .collect();
                decls[r].inputs.push(PortDecl {
                    name: input.name.clone(),
                    max_message: mine
                        .iter()
                        .map(|&e| edges[e].stats.max_message)
                        .max()
                        .unwrap_or(0),
                    capacity: mine
                        .iter()
                        .map(|&e| edges[e].stats.capacity)
                        .max()
                        .unwrap_or(0),
                    edges: mine,
                    peers: input.writers.iter().map(|w| w.stage.clone()).collect(),
                    message_type: input.message_type.clone(),
                });
            }
        }
        Some(Arc::new(PortNetwork {
            names: stages.iter().map(|s| s.name.clone()).collect(),
            state: Mutex::new(State {
                edges,
                members: stages.iter().map(|_| Member::default()).collect(),
                budget: Budget {
                    limit: pipeline.ports_budget.bytes,
                    held: 0,
                    reserved: 0,
                    peak: 0,
                    blocked_s: 0.0,
                },
            }),
            wake: stages.iter().map(|_| Notify::new()).collect(),
            decls,
        }))
    }

    /// The ports declared for stage `stage`.
    pub fn declared(&self, stage: usize) -> &StagePortDecls {
        &self.decls[stage]
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state: each change is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `message` on output port `port` of `stage` to every reader still there,
    /// waiting while any of their channels is full or the job's channel budget cannot take it.
    pub async fn send(
        &self,
        stage: usize,
        port: usize,
        message: Vec<u8>,
    ) -> Result<(), PortOpError> {
        self.reserve(stage, port, message.len() as u64)
            .await?
            .commit(message)
    }

    /// Waits until a message of `len` bytes can be sent on output port `port` of `stage`
    /// (every reader's channel has room, and so has the job's channel budget), and sets its
    /// bytes aside in the budget: the caller copies the message out of the stage only then,
    /// so what the host holds for the job's ports never passes the budget.
    pub async fn reserve(
        &self,
        stage: usize,
        port: usize,
        len: u64,
    ) -> Result<Reservation<'_>, PortOpError> {
        let decl = &self.decls[stage].outputs[port];
        if len > decl.max_message {
            return Err(PortOpError::TooLarge(decl.max_message));
        }
        loop {
            {
                let mut st = self.lock();
                if len > st.budget.limit {
                    // Validation keeps every max-message within the budget.
                    return Err(PortOpError::TooLarge(st.budget.limit));
                }
                if let Some(why) = &st.members[stage].deadlock {
                    return Err(PortOpError::Deadlock(why.clone()));
                }
                let live = match self.live_readers(&mut st, stage, port) {
                    Ok(live) => live,
                    Err(e) => {
                        self.unblock(&mut st, stage);
                        return Err(e);
                    }
                };
                let full: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&e| st.edges[e].queue.len() >= st.edges[e].capacity)
                    .collect();
                if !full.is_empty() {
                    self.block(&mut st, stage, Direction::Send, &decl.name, full, None);
                } else if !st.budget.fits(len) {
                    self.block(
                        &mut st,
                        stage,
                        Direction::Send,
                        &decl.name,
                        Vec::new(),
                        Some(len),
                    );
                } else {
                    self.unblock(&mut st, stage);
                    st.budget.reserved += len;
                    st.members[stage].reserved += len;
                    st.budget.peak = st.budget.peak.max(st.budget.held + st.budget.reserved);
                    return Ok(Reservation {
                        network: self,
                        stage,
                        port,
                        len,
                        done: false,
                    });
                }
            }
            self.wake[stage].notified().await;
        }
    }

    /// The channels of output `port` of `stage` whose readers are still there; an error when
    /// a reader failed or none is left.
    fn live_readers(
        &self,
        st: &mut State,
        stage: usize,
        port: usize,
    ) -> Result<Vec<usize>, PortOpError> {
        let decl = &self.decls[stage].outputs[port];
        let live: Vec<usize> = decl
            .edges
            .iter()
            .copied()
            .filter(|&e| st.edges[e].reader_end != End::Closed)
            .collect();
        if let Some(&e) = live
            .iter()
            .find(|&&e| matches!(st.edges[e].reader_end, End::Failed(_)))
        {
            let failure = self.peer_failure(&st.edges[e].reader_end, st.edges[e].reader);
            st.members[stage]
                .peer_failure
                .get_or_insert(failure.clone());
            return Err(PortOpError::PeerFailed(failure));
        }
        if live.is_empty() || st.edges[decl.edges[0]].writer_end != End::Open {
            return Err(PortOpError::Closed);
        }
        Ok(live)
    }

    /// Gives back `len` budget bytes set aside by `stage`.
    fn release(&self, st: &mut State, stage: usize, len: u64) {
        st.budget.reserved -= len;
        st.members[stage].reserved -= len;
    }

    /// Something left the budget: writers waiting for room in it look again.
    fn budget_freed(&self, st: &State) {
        for (i, m) in st.members.iter().enumerate() {
            if m.blocked.as_ref().is_some_and(|w| w.budget.is_some()) {
                self.wake[i].notify_one();
            }
        }
    }

    /// Drops what channel `e` still holds (its reader is gone); a message no other channel
    /// shares leaves the budget.
    fn discard_queue(&self, st: &mut State, e: usize) {
        let queue = std::mem::take(&mut st.edges[e].queue);
        st.edges[e].queued_bytes = 0;
        let mut freed = false;
        for message in queue {
            if Arc::strong_count(&message) == 1 {
                st.budget.held -= message.len() as u64;
                freed = true;
            }
        }
        if freed {
            self.budget_freed(st);
        }
    }

    /// The next message on input port `port` of `stage`, or none once every writer has
    /// closed. `cursor` rotates over a fan-in port's writers so none is starved.
    pub async fn recv(
        &self,
        stage: usize,
        port: usize,
        cursor: &mut usize,
    ) -> Result<Option<Vec<u8>>, PortOpError> {
        let decl = &self.decls[stage].inputs[port];
        let n = decl.edges.len();
        loop {
            {
                let mut st = self.lock();
                if let Some(why) = &st.members[stage].deadlock {
                    return Err(PortOpError::Deadlock(why.clone()));
                }
                for k in 0..n {
                    let e = decl.edges[(*cursor + k) % n];
                    if let Some(message) = st.edges[e].queue.pop_front() {
                        *cursor = (*cursor + k + 1) % n;
                        self.unblock(&mut st, stage);
                        // Queues hold the only references to a message: the last one taken
                        // leaves the budget.
                        if Arc::strong_count(&message) == 1 {
                            st.budget.held -= message.len() as u64;
                            self.budget_freed(&st);
                        }
                        let edge = &mut st.edges[e];
                        edge.queued_bytes -= message.len() as u64;
                        self.wake[edge.writer].notify_one();
                        // The last holder takes the bytes; a fan-out sibling still queued
                        // elsewhere makes this a copy.
                        return Ok(Some(
                            Arc::try_unwrap(message).unwrap_or_else(|m| (*m).clone()),
                        ));
                    }
                }
                // Nothing queued: a failed writer is reported after what it sent.
                if let Some(&e) = decl
                    .edges
                    .iter()
                    .find(|&&e| matches!(st.edges[e].writer_end, End::Failed(_)))
                {
                    let failure = self.peer_failure(&st.edges[e].writer_end, st.edges[e].writer);
                    self.unblock(&mut st, stage);
                    st.members[stage]
                        .peer_failure
                        .get_or_insert(failure.clone());
                    return Err(PortOpError::PeerFailed(failure));
                }
                if decl
                    .edges
                    .iter()
                    .all(|&e| st.edges[e].writer_end == End::Closed)
                {
                    self.unblock(&mut st, stage);
                    return Ok(None);
                }
                let edges = decl.edges.clone();
                self.block(&mut st, stage, Direction::Recv, &decl.name, edges, None);
            }
            self.wake[stage].notified().await;
        }
    }

    /// Ends the stream of output port `port` for its readers.
    pub fn close_output(&self, stage: usize, port: usize) {
        let mut st = self.lock();
        for &e in &self.decls[stage].outputs[port].edges {
            let edge = &mut st.edges[e];
            if edge.writer_end == End::Open {
                edge.writer_end = End::Closed;
                self.wake[edge.reader].notify_one();
            }
        }
    }

    /// Stage `stage` reads input port `port` no more: its writers stop sending to it.
    pub fn close_input(&self, stage: usize, port: usize) {
        let mut st = self.lock();
        for &e in &self.decls[stage].inputs[port].edges {
            let edge = &mut st.edges[e];
            if edge.reader_end == End::Open {
                edge.reader_end = End::Closed;
                self.wake[edge.writer].notify_one();
                self.discard_queue(&mut st, e);
            }
        }
    }

    /// Stage `stage` ended: its ports still open are closed, or, when it failed
    /// (`failure` is its reason), marked failed so that its peers are told.
    pub fn finish(&self, stage: usize, failure: Option<&str>) {
        let mut st = self.lock();
        self.unblock(&mut st, stage);
        let end = match failure {
            None => End::Closed,
            Some(why) => End::Failed(why.to_string()),
        };
        for e in 0..st.edges.len() {
            let edge = &mut st.edges[e];
            if edge.writer == stage && edge.writer_end == End::Open {
                edge.writer_end = end.clone();
                self.wake[edge.reader].notify_one();
            }
            if edge.reader == stage && edge.reader_end == End::Open {
                edge.reader_end = end.clone();
                self.wake[edge.writer].notify_one();
                self.discard_queue(&mut st, e);
            }
        }
    }

    /// The peer failure stage `stage` was told of, if any: its own failure may follow from it.
    pub fn peer_failure_seen(&self, stage: usize) -> Option<String> {
        self.lock().members[stage].peer_failure.clone()
    }

    /// What every channel carried so far.
    pub fn stats(&self) -> Vec<PortStats> {
        self.lock().edges.iter().map(|e| e.stats.clone()).collect()
    }

    /// Whether `stage` waits for room in the channel budget now.
    #[cfg(test)]
    pub(super) fn waits_on_budget(&self, stage: usize) -> bool {
        self.lock().members[stage]
            .blocked
            .as_ref()
            .is_some_and(|w| w.budget.is_some())
    }

    /// The job's channel budget and what it held so far.
    pub fn budget_stats(&self) -> BudgetStats {
        let st = self.lock();
        BudgetStats {
            budget_bytes: st.budget.limit,
            peak_buffered_bytes: st.budget.peak,
            writer_blocked_s: st.budget.blocked_s,
        }
    }

    fn peer_failure(&self, end: &End, peer: usize) -> String {
        match end {
            End::Failed(why) => format!("stage '{}' failed: {why}", self.names[peer]),
            _ => format!("stage '{}' failed", self.names[peer]),
        }
    }

    /// Records that `stage` waits, then looks for stages that can never go on.
    fn block(
        &self,
        st: &mut State,
        stage: usize,
        direction: Direction,
        port: &str,
        edges: Vec<usize>,
        budget: Option<u64>,
    ) {
        // A wait that changes from full channels to the budget (or back) is counted apart.
        let same = st.members[stage]
            .blocked
            .as_ref()
            .is_some_and(|w| w.budget.is_some() == budget.is_some());
        if !same {
            self.unblock(st, stage);
        }
        let since = st.members[stage]
            .blocked
            .as_ref()
            .map_or_else(Instant::now, |w| w.since);
        st.members[stage].blocked = Some(Wait {
            direction,
            port: port.to_string(),
            edges,
            budget,
            since,
        });
        let waits: Vec<Option<Vec<usize>>> = st
            .members
            .iter()
            .map(|m| m.blocked.as_ref().and_then(|w| self.wakers(st, w)))
            .collect();
        let stuck = deadlocked(&waits);
        if stuck.is_empty() {
            return;
        }
        let story: Vec<String> = stuck
            .iter()
            .map(|&s| {
                let w = st.members[s]
                    .blocked
                    .as_ref()
                    .expect("stuck stages are blocked");
                let mut peers: Vec<&str> = self
                    .wakers(st, w)
                    .unwrap_or_default()
                    .iter()
                    .map(|&p| self.names[p].as_str())
                    .collect();
                peers.dedup();
                match w.direction {
                    Direction::Send if w.budget.is_some() => format!(
                        "'{}' waits to send on '{}' for room in the job's channel budget of {} bytes (ports-budget), full of messages for {}",
                        self.names[s],
                        w.port,
                        st.budget.limit,
                        peers.join(", ")
                    ),
                    Direction::Send => format!(
                        "'{}' waits to send on '{}' to {}",
                        self.names[s],
                        w.port,
                        peers.join(", ")
                    ),
                    Direction::Recv => format!(
                        "'{}' waits to receive on '{}' from {}",
                        self.names[s],
                        w.port,
                        peers.join(", ")
                    ),
                }
            })
            .collect();
        let why = format!(
            "deadlock: stages wait on each other through ports and none can go on: {}",
            story.join("; ")
        );
        for &s in &stuck {
            st.members[s].deadlock = Some(why.clone());
            self.wake[s].notify_one();
        }
    }

    /// The stages that could wake a stage waiting as `w`; none when what it waits for has
    /// already happened (it was woken and has not run yet), so it is not stuck.
    fn wakers(&self, st: &State, w: &Wait) -> Option<Vec<usize>> {
        if let Some(need) = w.budget {
            // Room comes when a reader takes a buffered message or goes away. A writer copying
            // its message in now is running, and its message will reach a reader: it can
            // lead to room too.
            if st.budget.fits(need) {
                return None;
            }
            let mut peers: Vec<usize> = st
                .edges
                .iter()
                .filter(|e| !e.queue.is_empty() && e.reader_end == End::Open)
                .map(|e| e.reader)
                .chain(
                    st.members
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| m.reserved > 0)
                        .map(|(i, _)| i),
                )
                .collect();
            peers.sort_unstable();
            peers.dedup();
            return Some(peers);
        }
        let edges = w.edges.iter().map(|&e| &st.edges[e]);
        match w.direction {
            Direction::Recv => {
                let ready = edges
                    .clone()
                    .any(|e| !e.queue.is_empty() || matches!(e.writer_end, End::Failed(_)))
                    || edges.clone().all(|e| e.writer_end == End::Closed);
                (!ready).then(|| {
                    edges
                        .filter(|e| e.writer_end == End::Open)
                        .map(|e| e.writer)
                        .collect()
                })
            }
            Direction::Send => {
                let full: Vec<usize> = edges
                    .filter(|e| e.reader_end == End::Open && e.queue.len() >= e.capacity)
                    .map(|e| e.reader)
                    .collect();
                (!full.is_empty()).then_some(full)
            }
        }
    }

    /// `stage` no longer waits: the time it waited is added to its channels' figures.
    fn unblock(&self, st: &mut State, stage: usize) {
        let Some(w) = st.members[stage].blocked.take() else {
            return;
        };
        let waited: Duration = w.since.elapsed();
        if w.budget.is_some() {
            st.budget.blocked_s += waited.as_secs_f64();
            return;
        }
        for &e in &w.edges {
            let stats = &mut st.edges[e].stats;
            match w.direction {
                Direction::Send => stats.writer_blocked_s += waited.as_secs_f64(),
                Direction::Recv => stats.reader_blocked_s += waited.as_secs_f64(),
            }
        }
    }
}

/// Budget bytes set aside for one message while it is copied out of its writer; given back
/// unless the message is committed.
pub struct Reservation<'a> {
    network: &'a PortNetwork,
    stage: usize,
    port: usize,
    len: u64,
    done: bool,
}

impl Reservation<'_> {
    /// Puts `message` (of the reserved length) into the channel of every reader still there.
    /// Nothing waits here: only this writer adds to its channels, so they still have room.
    pub fn commit(mut self, message: Vec<u8>) -> Result<(), PortOpError> {
        self.done = true;
        let net = self.network;
        let (stage, len) = (self.stage, self.len);
        assert_eq!(
            message.len() as u64,
            len,
            "a message of the reserved length"
        );
        let mut st = net.lock();
        net.release(&mut st, stage, len);
        let live = match net.live_readers(&mut st, stage, self.port) {
            Ok(live) => live,
            Err(e) => {
                net.budget_freed(&st);
                return Err(e);
            }
        };
        let message = Arc::new(message);
        for &e in &live {
            let edge = &mut st.edges[e];
            edge.queue.push_back(message.clone());
            edge.queued_bytes += len;
            edge.stats.messages += 1;
            edge.stats.bytes += len;
            edge.stats.peak_buffered_bytes = edge.stats.peak_buffered_bytes.max(edge.queued_bytes);
            edge.stats.peak_buffered_messages = edge
                .stats
                .peak_buffered_messages
                .max(edge.queue.len() as u64);
            net.wake[edge.reader].notify_one();
        }
        // The channels now hold the only references: the last reader to take it frees it.
        drop(message);
        st.budget.held += len;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = self.network.lock();
            self.network.release(&mut st, self.stage, self.len);
            self.network.budget_freed(&st);
        }
    }
}
