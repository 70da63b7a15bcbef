//! Ward on Kubernetes, on a node: the executor that runs the `WardJob`s a node runtime
//! (`ward_cluster::node`) claims with Ward's own job runner, on shared storage.

mod executor;
mod progress;
mod shared;

pub use executor::{RegistryAccess, RunnerExecutor};
pub use progress::StageProgress;
pub use shared::{SharedPathError, SharedRoot};
