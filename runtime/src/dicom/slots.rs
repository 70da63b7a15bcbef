//! Connection slots of the SCP. A connection is first *pending* (it has not yet sent its
//! whole A-ASSOCIATE-RQ) and holds one of a few pending slots for a short time; only once
//! its request has arrived does it take one of the association slots (`max-associations`).
//! Each source address may hold only so many connections, pending and associated together,
//! so one host that opens sockets and never speaks cannot keep the others out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The limits, from the adapter configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// Associations at once (`max-associations`).
    pub max_associations: usize,
    /// Connections that have not yet requested their association
    /// (`max-pending-connections`).
    pub max_pending: usize,
    /// Connections from one source address, pending and associated
    /// (`max-connections-per-address`).
    pub max_per_address: usize,
    /// How long a connection may take to send its whole A-ASSOCIATE-RQ (`request-timeout`).
    pub request_timeout: Duration,
}

/// Why a new connection is closed at once.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("connection closed: {max} connections are already waiting to associate (max-pending-connections)")]
    Pending { max: usize },
    #[error("connection closed: its address already holds {max} connections (max-connections-per-address)")]
    Address { max: usize },
}

#[derive(Default)]
struct Counts {
    pending: usize,
    associations: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// The SCP's slots.
pub struct Slots {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Pending,
    Associated,
}

/// A connection's hold on its slots; dropping it gives them back.
pub struct Connection {
    slots: Arc<Slots>,
    peer: IpAddr,
    stage: Stage,
}

impl Slots {
    pub fn new(limits: ConnectionLimits) -> Arc<Slots> {
        Arc::new(Slots {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pending slot for a new connection from `peer`, or why there is none. Never blocks.
    pub fn connect(self: &Arc<Self>, peer: IpAddr) -> Result<Connection, Refusal> {
        let mut counts = self.counts();
        if counts.pending >= self.limits.max_pending {
            return Err(Refusal::Pending {
                max: self.limits.max_pending,
            });
        }
        let from_peer = counts.per_address.entry(peer).or_insert(0);
        if *from_peer >= self.limits.max_per_address {
            return Err(Refusal::Address {
                max: self.limits.max_per_address,
            });
        }
        *from_peer += 1;
        counts.pending += 1;
        Ok(Connection {
            slots: self.clone(),
            peer,
            stage: Stage::Pending,
        })
    }

    /// (pending, associations) now.
    pub fn in_use(&self) -> (usize, usize) {
        let counts = self.counts();
        (counts.pending, counts.associations)
    }
}

impl Connection {
    /// The request has arrived: the connection moves to an association slot, or stays
    /// pending (false) when all of them are taken.
    pub fn associate(&mut self) -> bool {
        if self.stage == Stage::Associated {
            return true;
        }
        let mut counts = self.slots.counts();
        if counts.associations >= self.slots.limits.max_associations {
            return false;
        }
        counts.associations += 1;
        counts.pending -= 1;
        self.stage = Stage::Associated;
        true
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut counts = self.slots.counts();
        match self.stage {
            Stage::Pending => counts.pending -= 1,
            Stage::Associated => counts.associations -= 1,
        }
        if let Some(n) = counts.per_address.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(pending: usize, per_address: usize, associations: usize) -> Arc<Slots> {
        Slots::new(ConnectionLimits {
            max_associations: associations,
            max_pending: pending,
            max_per_address: per_address,
            request_timeout: Duration::from_secs(10),
        })
    }

    #[test]
    fn pending_and_per_address_limits_refuse_and_give_back() {
        let s = slots(3, 2, 1);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = s.connect(a).unwrap();
        let _a2 = s.connect(a).unwrap();
        assert_eq!(s.connect(a).err(), Some(Refusal::Address { max: 2 }));
        let _b1 = s.connect(b).unwrap();
        assert_eq!(s.connect(b).err(), Some(Refusal::Pending { max: 3 }));
        drop(a1);
        let mut b2 = s.connect(b).unwrap();
        assert!(b2.associate());
        assert_eq!(s.in_use(), (2, 1));
        // Associated connections still count against their address.
        assert_eq!(s.connect(b).err(), Some(Refusal::Address { max: 2 }));
        drop(b2);
        assert_eq!(s.in_use(), (2, 0));
    }

    #[test]
    fn association_slots_are_separate_from_pending_ones() {
        let s = slots(4, 4, 1);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut first = s.connect(ip).unwrap();
        let mut second = s.connect(ip).unwrap();
        assert!(first.associate());
        assert!(!second.associate(), "the one association slot is taken");
        assert_eq!(s.in_use(), (1, 1));
        drop(first);
        assert!(second.associate());
        drop(second);
        assert_eq!(s.in_use(), (0, 0));
        assert!(s.counts().per_address.is_empty());
    }
}
