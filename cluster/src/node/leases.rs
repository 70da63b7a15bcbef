//! Which nodes are gone, judged on this node's own clock: a Lease is expired when its
//! resourceVersion has not changed for its duration as seen here, and a holder with no Lease
//! at all is gone once this node has watched the Lease list for a full lease duration.
//! Remote timestamps (`renewTime`) are never compared, so the nodes' clocks need not agree.

use crate::lease;
use k8s_openapi::api::coordination::v1::Lease;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

struct Seen {
    /// The resourceVersion last seen; `None` for a holder with no Lease.
    resource_version: Option<String>,
    /// When it expires unless it changes again.
    deadline: Instant,
    /// Whether its annotations say it has a free slot.
    has_free: bool,
}

/// What this node knows of the node Leases.
pub(crate) struct LeaseTracker {
    own: String,
    /// The lease duration assumed for a holder without a Lease.
    default_duration: Duration,
    seen: HashMap<String, Seen>,
    deadlines: BTreeSet<(Instant, String)>,
    expired: HashSet<String>,
    /// When the first full list of Leases arrived.
    listed_at: Option<Instant>,
    nodes_with_free: usize,
}

impl LeaseTracker {
    pub(crate) fn new(own: &str, default_duration: Duration) -> Self {
        LeaseTracker {
            own: own.to_string(),
            default_duration,
            seen: HashMap::new(),
            deadlines: BTreeSet::new(),
            expired: HashSet::new(),
            listed_at: None,
            nodes_with_free: 0,
        }
    }

    pub(crate) fn is_expired(&self, node: &str) -> bool {
        self.expired.contains(node)
    }

    /// Live nodes whose Lease says they have a free slot (this one included when it has).
    pub(crate) fn nodes_with_free(&self) -> usize {
        self.nodes_with_free
    }

    fn set_deadline(&mut self, node: &str, deadline: Instant) {
        if let Some(seen) = self.seen.get_mut(node) {
            self.deadlines.remove(&(seen.deadline, node.to_string()));
            seen.deadline = deadline;
        }
        self.deadlines.insert((deadline, node.to_string()));
    }

    fn set_free(&mut self, node: &str, has_free: bool) {
        let live = !self.expired.contains(node);
        if let Some(seen) = self.seen.get_mut(node) {
            if live && seen.has_free && !has_free {
                self.nodes_with_free -= 1;
            } else if live && !seen.has_free && has_free {
                self.nodes_with_free += 1;
            }
            seen.has_free = has_free;
        }
    }

    /// A Lease as the watch delivered it; returns the node if it had been taken for gone and
    /// has now renewed (a node that came back).
    pub(crate) fn observe(&mut self, l: &Lease) -> Option<String> {
        let node = lease::node_of(l)?.to_string();
        let rv = l.metadata.resource_version.clone();
        let duration = Duration::from_secs(lease::duration_of(l).max(1) as u64);
        let has_free = lease::capacity_of(l).is_some_and(|(_, free)| free.slots > 0);
        let changed = self
            .seen
            .get(&node)
            .is_none_or(|s| s.resource_version != rv);
        if !changed {
            return None;
        }
        self.seen.entry(node.clone()).or_insert(Seen {
            resource_version: None,
            deadline: Instant::now(),
            has_free: false,
        });
        self.seen.get_mut(&node).expect("inserted").resource_version = rv;
        self.set_deadline(&node, Instant::now() + duration);
        let revived = self.expired.remove(&node);
        if revived && self.seen[&node].has_free {
            self.nodes_with_free += 1;
        }
        self.set_free(&node, has_free);
        revived.then_some(node)
    }

    /// The first full Lease list has arrived: holders with no Lease start their wait now.
    pub(crate) fn listed(&mut self) {
        if self.listed_at.is_some() {
            return;
        }
        let now = Instant::now();
        self.listed_at = Some(now);
        let missing: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, s)| s.resource_version.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for node in missing {
            self.set_deadline(&node, now + self.default_duration);
        }
    }

    /// A node named as a job's holder: one never seen is given until a lease duration after
    /// the Lease list was seen to show up.
    pub(crate) fn note_holder(&mut self, node: &str) {
        if node == self.own || self.seen.contains_key(node) {
            return;
        }
        let start = self.listed_at.unwrap_or_else(Instant::now);
        self.seen.insert(
            node.to_string(),
            Seen {
                resource_version: None,
                deadline: start + self.default_duration,
                has_free: false,
            },
        );
        self.deadlines
            .insert((start + self.default_duration, node.to_string()));
    }

    /// When the next Lease runs out, if one is counting down.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Nodes whose Lease ran out by now, newly taken for gone.
    pub(crate) fn expire_due(&mut self) -> Vec<String> {
        let now = Instant::now();
        let mut gone = Vec::new();
        while let Some((at, node)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            // A holder without a Lease waits for the list to have been seen at all.
            if self.listed_at.is_none() || node == self.own {
                continue;
            }
            if self.expired.insert(node.clone()) {
                if self.seen.get(&node).is_some_and(|s| s.has_free) {
                    self.nodes_with_free -= 1;
                }
                gone.push(node);
            }
        }
        gone
    }
}
