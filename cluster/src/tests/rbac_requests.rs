//! The requests `ward node` and `ward serve --cluster` make through [`crate::KubeApi`],
//! recorded by the FAKE API server's HTTP front, are exactly what their RBAC rules grant.

use super::fake_http::{kube_api, start};
use super::kube_api_requests::step;
use super::{job, lease, status};
use crate::api::{ClusterApi, Event};
use crate::rbac::{Rule, CONTROL_PLANE_RULES, NODE_RULES};
use crate::resources::{JobPhase, WardPipeline, WardPipelineSpec};
use std::collections::BTreeSet;

fn granted(rules: &[Rule]) -> BTreeSet<(String, String)> {
    rules
        .iter()
        .flat_map(|rule| {
            rule.resources.iter().flat_map(move |resource| {
                rule.verbs
                    .iter()
                    .map(move |verb| (verb.to_string(), resource.to_string()))
            })
        })
        .collect()
}

async fn until_init_done<K>(
    stream: &mut futures_util::stream::BoxStream<'static, Result<Event<K>, crate::ApiError>>,
) {
    while !matches!(step(stream).await, Ok(Event::InitDone)) {}
}

async fn until_applied<K: kube::Resource>(
    stream: &mut futures_util::stream::BoxStream<'static, Result<Event<K>, crate::ApiError>>,
    name: &str,
) {
    loop {
        if let Ok(Event::Apply(k)) = step(stream).await {
            if k.meta().name.as_deref() == Some(name) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn each_process_uses_exactly_the_verbs_its_rules_grant() {
    let (server, url) = start().await;
    let control = kube_api(&url, "control-plane").await;
    let node = kube_api(&url, "node").await;

    // The control plane stores a pipeline and watches jobs and node Leases.
    let pipeline = WardPipeline::new(
        "liver-v1",
        WardPipelineSpec {
            tenant: "tenant-a".into(),
            name: "liver".into(),
            version: 1,
            document: "api-version: 0.4.0\n".into(),
            components_dir: "/shared/components".into(),
            components: vec![],
        },
    );
    control.create_pipeline(&pipeline).await.unwrap();
    control.get_pipeline("liver-v1").await.unwrap();
    let mut control_jobs = control.watch_jobs();
    until_init_done(&mut control_jobs).await;
    let mut control_leases = control.watch_leases();
    until_init_done(&mut control_leases).await;

    // The node watches jobs and Leases, and holds its own.
    let mut node_jobs = node.watch_jobs();
    until_init_done(&mut node_jobs).await;
    let mut node_leases = node.watch_leases();
    until_init_done(&mut node_leases).await;
    assert!(node.get_lease("ward-node-a").await.unwrap().is_none());
    let held = node.create_lease(&lease("a")).await.unwrap();
    node.replace_lease(&held).await.unwrap();
    until_applied(&mut node_leases, "ward-node-a").await;
    until_applied(&mut control_leases, "ward-node-a").await;

    // A job: submitted, claimed, run, cancelled.
    control.create_job(&job("j1")).await.unwrap();
    until_applied(&mut node_jobs, "j1").await;
    until_applied(&mut control_jobs, "j1").await;
    let mut claim = node.get_job("j1").await.unwrap();
    node.get_pipeline("liver-v1").await.unwrap();
    claim.status = Some(status(JobPhase::Claimed, "a"));
    let claimed = node.replace_job_status(&claim).await.unwrap();
    node.patch_job_status(
        "j1",
        claimed.metadata.resource_version.as_deref().unwrap(),
        &status(JobPhase::Running, "a"),
    )
    .await
    .unwrap();
    control.get_job("j1").await.unwrap();
    control.cancel_job("j1").await.unwrap();

    let used = server.requests().verbs;
    assert_eq!(used.get("node"), Some(&granted(NODE_RULES)), "ward node");
    assert_eq!(
        used.get("control-plane"),
        Some(&granted(CONTROL_PLANE_RULES)),
        "ward serve --cluster"
    );
}
