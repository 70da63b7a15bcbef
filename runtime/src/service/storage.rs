//! Each tenant's storage, counted against its quota (`quotas.storage`): what is stored
//! (payloads, datasets, the logs and results of its jobs) and what uploads in flight have
//! written so far. An upload reserves every byte before it writes it, so uploads running at
//! once can never together pass the quota; what it reserved becomes stored when it
//! completes, or is given back when it fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone, Copy)]
struct Use {
    stored: u64,
    reserved: u64,
}

/// The per-tenant figures, shared by every upload.
#[derive(Clone, Default)]
pub struct StorageLedger {
    tenants: Arc<Mutex<HashMap<String, Use>>>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "tenant '{tenant}' would store more than its storage quota of {quota} bytes ({stored} stored, {reserved} being written by other uploads)"
)]
pub struct OverQuota {
    pub tenant: String,
    pub quota: u64,
    pub stored: u64,
    pub reserved: u64,
}

impl StorageLedger {
    /// Sets what `tenant` has stored (from the database, when the service opens).
    pub fn set_stored(&self, tenant: &str, bytes: u64) {
        self.lock().entry(tenant.to_string()).or_default().stored = bytes;
    }

    /// Counts `bytes` more as stored by `tenant`, whatever its quota: what a job has
    /// written is there, and counts against its later uploads.
    pub fn add_stored(&self, tenant: &str, bytes: u64) {
        let mut all = self.lock();
        let u = all.entry(tenant.to_string()).or_default();
        u.stored = u.stored.saturating_add(bytes);
    }

    /// Counts `bytes` fewer as stored by `tenant`: what retention removed.
    pub fn remove_stored(&self, tenant: &str, bytes: u64) {
        let mut all = self.lock();
        let u = all.entry(tenant.to_string()).or_default();
        u.stored = u.stored.saturating_sub(bytes);
    }

    /// (stored, reserved) for `tenant`.
    pub fn usage(&self, tenant: &str) -> (u64, u64) {
        let u = self.lock().get(tenant).copied().unwrap_or_default();
        (u.stored, u.reserved)
    }

    /// A reservation of nothing yet, for an upload by `tenant` under `quota`.
    pub fn reserve(&self, tenant: &str, quota: u64) -> Reservation {
        Reservation {
            ledger: self.clone(),
            tenant: tenant.to_string(),
            quota,
            held: 0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Use>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one upload has reserved; given back when dropped unless committed.
pub struct Reservation {
    ledger: StorageLedger,
    tenant: String,
    quota: u64,
    held: u64,
}

impl Reservation {
    /// Reserves `bytes` more, or fails (reserving nothing) when the tenant's stored and
    /// reserved bytes would pass its quota.
    pub fn grow(&mut self, bytes: u64) -> Result<(), OverQuota> {
        let mut all = self.ledger.lock();
        let u = all.entry(self.tenant.clone()).or_default();
        let after = u.stored.saturating_add(u.reserved).saturating_add(bytes);
        if after > self.quota {
            return Err(OverQuota {
                tenant: self.tenant.clone(),
                quota: self.quota,
                stored: u.stored,
                reserved: u.reserved - self.held,
            });
        }
        u.reserved += bytes;
        self.held += bytes;
        Ok(())
    }

    /// Gives back `bytes` of what was reserved (a part that was not kept).
    pub fn shrink(&mut self, bytes: u64) {
        let bytes = bytes.min(self.held);
        let mut all = self.ledger.lock();
        let u = all.entry(self.tenant.clone()).or_default();
        u.reserved -= bytes.min(u.reserved);
        self.held -= bytes;
    }

    pub fn held(&self) -> u64 {
        self.held
    }

    /// The upload is stored: what it reserved now counts as stored.
    pub fn commit(mut self) {
        let mut all = self.ledger.lock();
        let u = all.entry(self.tenant.clone()).or_default();
        u.reserved -= self.held.min(u.reserved);
        u.stored = u.stored.saturating_add(self.held);
        self.held = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held > 0 {
            let held = self.held;
            self.shrink(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_at_once_cannot_together_pass_the_quota() {
        let ledger = StorageLedger::default();
        ledger.set_stored("a", 40);
        let mut one = ledger.reserve("a", 100);
        let mut two = ledger.reserve("a", 100);
        one.grow(30).unwrap();
        let refused = two.grow(31).unwrap_err();
        assert_eq!((refused.stored, refused.reserved), (40, 30));
        two.grow(30).unwrap();
        assert_eq!(ledger.usage("a"), (40, 60));
        drop(two);
        assert_eq!(ledger.usage("a"), (40, 30), "a failed upload gives back");
        one.shrink(10);
        one.commit();
        assert_eq!(ledger.usage("a"), (60, 0));
        // Other tenants are counted apart.
        ledger.reserve("b", 100).grow(100).unwrap();
        ledger.add_stored("a", 50);
        assert!(ledger.reserve("a", 100).grow(1).is_err());
    }
}
