//! The Kubernetes permissions each of Ward's processes needs: exactly the verbs and
//! resources its [`crate::api::ClusterApi`] calls make, no more. The chart's Roles are
//! compared with these by a test, and the requests the processes really make (recorded by
//! the fake API server) are compared with them by another.

use serde::Serialize;

/// One RBAC rule: the verbs allowed on some resources of an API group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub api_groups: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

/// What `ward node` (the DaemonSet) calls: it watches jobs, claims them and reports on them
/// through their status, reads the pipeline a job names, and holds its own Lease while it
/// watches the others'.
pub const NODE_RULES: &[Rule] = &[
    Rule {
        api_groups: &["ward.dev"],
        resources: &["wardjobs"],
        verbs: &["get", "list", "watch"],
    },
    Rule {
        api_groups: &["ward.dev"],
        resources: &["wardjobs/status"],
        verbs: &["patch", "update"],
    },
    Rule {
        api_groups: &["ward.dev"],
        resources: &["wardpipelines"],
        verbs: &["get"],
    },
    Rule {
        api_groups: &["coordination.k8s.io"],
        resources: &["leases"],
        verbs: &["create", "get", "list", "update", "watch"],
    },
];

/// What `ward serve --cluster` (the control plane) calls: it creates pipelines and jobs,
/// cancels jobs, reads their status back, and reads node Leases for the capacity it shows.
pub const CONTROL_PLANE_RULES: &[Rule] = &[
    Rule {
        api_groups: &["ward.dev"],
        resources: &["wardjobs"],
        verbs: &["create", "get", "list", "patch", "watch"],
    },
    Rule {
        api_groups: &["ward.dev"],
        resources: &["wardpipelines"],
        verbs: &["create", "get"],
    },
    Rule {
        api_groups: &["coordination.k8s.io"],
        resources: &["leases"],
        verbs: &["list", "watch"],
    },
];
