//! Models the host loads once and shares between stages and jobs, keyed by the digest of
//! the model file and where it runs.

use crate::model::{Model, Target};
use crate::NnError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelKey {
    /// `sha256:…` of the model file.
    pub digest: String,
    pub target: Target,
}

type Slot = Arc<Mutex<Option<Arc<Model>>>>;

/// The shared models. A model is loaded by the first stage that asks for it; a stage asking
/// meanwhile waits for that load instead of loading it again. A failed load is not kept.
#[derive(Default)]
pub struct ModelCache {
    slots: Mutex<HashMap<ModelKey, Slot>>,
    loads: AtomicU64,
}

impl ModelCache {
    pub fn new() -> ModelCache {
        ModelCache::default()
    }

    pub fn get_or_load(
        &self,
        key: ModelKey,
        load: impl FnOnce() -> Result<Model, NnError>,
    ) -> Result<Arc<Model>, NnError> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = held.as_ref() {
            return Ok(model.clone());
        }
        let model = Arc::new(load()?);
        self.loads.fetch_add(1, Ordering::Relaxed);
        *held = Some(model.clone());
        Ok(model)
    }

    /// How many models were loaded into the cache so far.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Bytes of the model files held (what the shared sessions' weights take, at least).
    pub fn held_bytes(&self) -> u64 {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .values()
            .filter_map(|s| s.try_lock().ok().and_then(|m| m.as_ref().map(|m| m.bytes)))
            .sum()
    }
}
