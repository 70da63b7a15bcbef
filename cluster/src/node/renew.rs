//! The node's own Lease: taken (or created) at start, then renewed every `renew_every` with
//! the capacity the node has free, until the node stops renewing it.

use super::NodeConfig;
use crate::api::{ApiError, ClusterApi};
use crate::lease::{self, Capacity};
use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;

fn our_lease(config: &NodeConfig, free: Capacity) -> Lease {
    lease::node_lease(
        &config.name,
        &config.namespace,
        i32::try_from(config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
        config.capacity,
        free,
        jiff::Timestamp::now(),
    )
}

/// Writes the Lease once: replaces the one there (under the resourceVersion last seen,
/// reading it again after a conflict) or creates it. Returns its new resourceVersion.
pub(crate) async fn write_lease<A: ClusterApi>(
    api: &A,
    config: &NodeConfig,
    free: Capacity,
    last_version: Option<String>,
) -> Result<String, ApiError> {
    let name = lease::lease_name(&config.name);
    let mut version = last_version;
    for _ in 0..3 {
        if version.is_none() {
            version = api
                .get_lease(&name)
                .await?
                .and_then(|l| l.metadata.resource_version);
        }
        let mut lease = our_lease(config, free);
        let answer = match &version {
            None => api.create_lease(&lease).await,
            Some(v) => {
                lease.metadata.resource_version = Some(v.clone());
                api.replace_lease(&lease).await
            }
        };
        match answer {
            Ok(l) => return Ok(l.metadata.resource_version.unwrap_or_default()),
            // Another writer (an earlier run of this node) got there: read it and go again.
            Err(ApiError::Conflict(_))
            | Err(ApiError::AlreadyExists(_))
            | Err(ApiError::NotFound(_)) => {
                version = None;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Other(format!(
        "lease {name} kept changing while it was renewed"
    )))
}

/// Renews the Lease every `renew_every` until dropped (the node stops renewing by dropping
/// this task).
pub(crate) async fn renew_forever<A: ClusterApi>(
    api: A,
    config: NodeConfig,
    free: watch::Receiver<Capacity>,
    mut version: String,
) {
    let mut tick = tokio::time::interval(config.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now_free = *free.borrow();
        match write_lease(&api, &config, now_free, Some(version.clone())).await {
            Ok(v) => version = v,
            Err(e) => tracing::warn!(error = %e, "renewing the node's Lease failed"),
        }
    }
}
