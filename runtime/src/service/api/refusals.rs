//! Refused requests (401, 403) and requests without a valid token reach the audit trail
//! without one row each: the first from a source (address, tenant, principal, status) is
//! recorded at once, the ones that follow within a minute are counted and recorded together
//! (`auth.refused`, with how many) when the minute is over. A flood of bad requests costs a
//! row a minute per source, while `/metrics` counts every one.

use crate::service::Service;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one record per source in this time.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How often the counted refusals whose minute is over are recorded.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Sources tracked at once; refusals from further ones are counted under one shared source
/// (address 0.0.0.0), so the table stays bounded however many addresses a flood comes from.
const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub address: IpAddr,
    /// `-` without a valid token.
    pub tenant: String,
    /// `anonymous` without a valid token.
    pub principal: String,
    pub status: u16,
}

struct Window {
    opened: Instant,
    /// Refusals since the last record.
    pending: u64,
    /// The last request refused ("GET /v1/jobs").
    last: String,
}

#[derive(Default)]
pub struct Refusals {
    windows: Mutex<HashMap<Source, Window>>,
}

/// A record due in the audit trail.
pub struct Due {
    source: Source,
    count: u64,
    last: String,
}

impl Due {
    pub fn record(&self, service: &Service) {
        let s = &self.source;
        service.audit(
            &s.tenant,
            &s.principal,
            "auth.refused",
            &s.address.to_string(),
            &format!(
                "{} refused ({}) since the last record; the last: {}",
                self.count, s.status, self.last
            ),
        );
    }
}

impl Refusals {
    /// Counts one refused request; returns the record to write now, if one is due.
    pub fn refused(&self, mut source: Source, request: &str, now: Instant) -> Option<Due> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if !windows.contains_key(&source) && windows.len() >= MAX_SOURCES {
            source.address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        }
        match windows.get_mut(&source) {
            None => {
                windows.insert(
                    source.clone(),
                    Window {
                        opened: now,
                        pending: 0,
                        last: request.to_string(),
                    },
                );
                Some(Due {
                    source,
                    count: 1,
                    last: request.to_string(),
                })
            }
            Some(w) if now.duration_since(w.opened) >= WINDOW => {
                let count = w.pending + 1;
                w.opened = now;
                w.pending = 0;
                w.last = request.to_string();
                Some(Due {
                    source,
                    count,
                    last: request.to_string(),
                })
            }
            Some(w) => {
                w.pending += 1;
                w.last = request.to_string();
                None
            }
        }
    }

    /// The records due for sources whose minute is over with refusals counted; sources quiet
    /// for a whole minute are forgotten.
    pub fn due(&self, now: Instant) -> Vec<Due> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        windows.retain(|source, w| {
            if now.duration_since(w.opened) < WINDOW {
                return true;
            }
            if w.pending == 0 {
                return false;
            }
            due.push(Due {
                source: source.clone(),
                count: w.pending,
                last: w.last.clone(),
            });
            w.opened = now;
            w.pending = 0;
            true
        });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(address: [u8; 4]) -> Source {
        Source {
            address: IpAddr::from(address),
            tenant: "-".into(),
            principal: "anonymous".into(),
            status: 401,
        }
    }

    #[test]
    fn one_record_a_minute_per_source_carrying_the_count() {
        let r = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(
            r.refused(source([10, 0, 0, 1]), "GET /", t0).unwrap().count,
            1
        );
        for i in 0..999 {
            assert!(r
                .refused(
                    source([10, 0, 0, 1]),
                    "GET /",
                    t0 + Duration::from_millis(i)
                )
                .is_none());
        }
        assert!(r.due(t0 + Duration::from_secs(30)).is_empty());
        let due = r.due(t0 + WINDOW);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 999);
        // Quiet for a minute: forgotten, so the next one is recorded at once.
        assert!(r.due(t0 + 2 * WINDOW).is_empty());
        assert_eq!(r.windows.lock().unwrap().len(), 0);
        assert!(r
            .refused(source([10, 0, 0, 1]), "GET /", t0 + 3 * WINDOW)
            .is_some());
    }

    #[test]
    fn many_addresses_share_one_source_past_the_bound() {
        let r = Refusals::default();
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 1000) {
            r.refused(source((i + 1).to_be_bytes()), "GET /", t0);
        }
        assert_eq!(r.windows.lock().unwrap().len(), MAX_SOURCES + 1);
    }
}
