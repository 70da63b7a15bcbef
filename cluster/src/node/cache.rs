//! The node's copy of the WardJobs, fed by its watch, with an index of the jobs it could
//! claim in claim order, kept up to date per event so that choosing a job never walks every
//! job (a node at scale sees every job's every change).

use crate::lease::Capacity;
use crate::resources::{JobPhase, WardJob};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Orders a tenant's claimable jobs: oldest first, then by name.
type AgeKey = (Option<jiff::Timestamp>, String);

/// Where a claimable job sits in the index.
#[derive(Clone, PartialEq, Eq)]
struct IndexKey {
    priority: Reverse<i32>,
    tenant: String,
    age: AgeKey,
}

/// Whether a job can be claimed, given what this node knows beyond the job itself.
pub(crate) trait Claimability {
    fn is_claimable(&self, job: &WardJob) -> bool;
}

#[derive(Default)]
pub(crate) struct JobCache {
    jobs: HashMap<String, WardJob>,
    /// priority (highest first) → tenant → jobs by age.
    index: BTreeMap<Reverse<i32>, BTreeMap<String, BTreeSet<AgeKey>>>,
    indexed: HashMap<String, IndexKey>,
    /// Jobs held (Claimed or Running) per tenant, cluster-wide: the fairness figure.
    held_by_tenant: HashMap<String, u32>,
    /// Jobs held per node, so a node's expiry finds its jobs without a walk.
    held_by_node: HashMap<String, BTreeSet<String>>,
}

fn name_of(job: &WardJob) -> String {
    job.metadata.name.clone().unwrap_or_default()
}

impl JobCache {
    /// The jobs a node holds, as this cache last saw them.
    pub(crate) fn held_by(&self, node: &str) -> Vec<String> {
        self.held_by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every holder named by a job in the cache.
    pub(crate) fn holders(&self) -> Vec<String> {
        self.held_by_node.keys().cloned().collect()
    }

    /// Puts a job in (or replaces it) and re-files it.
    pub(crate) fn upsert(&mut self, job: WardJob, rules: &impl Claimability) {
        let name = name_of(&job);
        if let Some(old) = self.jobs.remove(&name) {
            self.unfile_held(&name, &old);
        }
        self.file_held(&name, &job);
        self.jobs.insert(name.clone(), job);
        self.refile(&name, rules);
    }

    pub(crate) fn remove(&mut self, name: &str) {
        if let Some(old) = self.jobs.remove(name) {
            self.unfile_held(name, &old);
        }
        self.unindex(name);
    }

    /// Replaces the whole cache with a fresh list.
    pub(crate) fn replace_all(&mut self, jobs: Vec<WardJob>, rules: &impl Claimability) {
        *self = JobCache::default();
        for job in jobs {
            self.upsert(job, rules);
        }
    }

    /// Re-decides whether a job is claimable (after something beyond the job changed).
    pub(crate) fn refile(&mut self, name: &str, rules: &impl Claimability) {
        self.unindex(name);
        let Some(job) = self.jobs.get(name) else {
            return;
        };
        if !rules.is_claimable(job) {
            return;
        }
        let key = IndexKey {
            priority: Reverse(job.spec.priority),
            tenant: job.spec.tenant.clone(),
            age: (
                job.metadata.creation_timestamp.as_ref().map(|t| t.0),
                name.to_string(),
            ),
        };
        self.index
            .entry(key.priority)
            .or_default()
            .entry(key.tenant.clone())
            .or_default()
            .insert(key.age.clone());
        self.indexed.insert(name.to_string(), key);
    }

    fn unindex(&mut self, name: &str) {
        let Some(key) = self.indexed.remove(name) else {
            return;
        };
        if let Some(tenants) = self.index.get_mut(&key.priority) {
            if let Some(ages) = tenants.get_mut(&key.tenant) {
                ages.remove(&key.age);
                if ages.is_empty() {
                    tenants.remove(&key.tenant);
                }
            }
            if tenants.is_empty() {
                self.index.remove(&key.priority);
            }
        }
    }

    fn file_held(&mut self, name: &str, job: &WardJob) {
        if !job.phase().is_held() {
            return;
        }
        *self
            .held_by_tenant
            .entry(job.spec.tenant.clone())
            .or_default() += 1;
        if let Some(node) = job.holder() {
            self.held_by_node
                .entry(node.to_string())
                .or_default()
                .insert(name.to_string());
        }
    }

    fn unfile_held(&mut self, name: &str, job: &WardJob) {
        if !job.phase().is_held() {
            return;
        }
        if let Some(n) = self.held_by_tenant.get_mut(&job.spec.tenant) {
            *n = n.saturating_sub(1);
        }
        if let Some(node) = job.holder() {
            if let Some(set) = self.held_by_node.get_mut(node) {
                set.remove(name);
                if set.is_empty() {
                    self.held_by_node.remove(node);
                }
            }
        }
    }

    /// The first `want` claimable jobs that fit `free`, in claim order: higher priority
    /// first; within a priority the tenant holding fewest jobs cluster-wide (counting the
    /// ones already picked here, so the picks spread over tenants as claims would), then
    /// the oldest job.
    pub(crate) fn candidates(
        &self,
        free: Capacity,
        want: usize,
        skip: &HashSet<String>,
    ) -> Vec<&WardJob> {
        let mut picked = Vec::new();
        for tenants in self.index.values() {
            let mut queues: Vec<(u32, &str, std::collections::btree_set::Iter<'_, AgeKey>)> =
                tenants
                    .iter()
                    .map(|(tenant, ages)| {
                        let held = self.held_by_tenant.get(tenant).copied().unwrap_or(0);
                        (held, tenant.as_str(), ages.iter())
                    })
                    .collect();
            while picked.len() < want && !queues.is_empty() {
                let (at, _) = queues
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (held, tenant, _))| (*held, *tenant))
                    .expect("not empty");
                let queue = &mut queues[at];
                let next = queue.2.by_ref().find_map(|(_, name)| {
                    let job = self.jobs.get(name)?;
                    (!skip.contains(name) && free.fits(&job.spec.requests)).then_some(job)
                });
                match next {
                    Some(job) => {
                        queue.0 += 1;
                        picked.push(job);
                    }
                    None => {
                        drop(queues.swap_remove(at));
                    }
                }
            }
            if picked.len() >= want {
                break;
            }
        }
        picked
    }
}

/// Whether a phase is one a job waits in.
pub(crate) fn is_pending(job: &WardJob) -> bool {
    job.phase() == JobPhase::Pending
}
