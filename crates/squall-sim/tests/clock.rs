//! The sim clock under tokio's paused time: grace periods and readiness
//! delays elapse in virtual time, and a settled cluster stops writing.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use squall_sim::{Sim, SimOptions, Timing};

#[tokio::test(start_paused = true)]
async fn grace_period_elapses_on_paused_time() {
    // Real-time speed, but a paused tokio clock: the 30 s grace period passes instantly.
    let timing = Timing {
        shutdown: Duration::from_secs(120),
        ..Timing::default()
    };
    let sim = Sim::start(SimOptions {
        nodes: 1,
        speed: 1.0,
        timing,
        ..SimOptions::default()
    });
    let pods: Api<Pod> = Api::default_namespaced(common::client(&sim));
    let p: Pod = serde_json::from_value(json!({ "metadata": { "name": "p" }, "spec": { "containers": [{ "name": "c", "image": "x" }] } })).expect("pod");
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create");
    common::eventually("running", || async {
        (pods.get("p").await.ok()?.status?.phase? == "Running").then_some(())
    })
    .await;

    let clock = sim.clock();
    let start = clock.now();
    pods.delete("p", &DeleteParams::default())
        .await
        .expect("delete");
    let gone = || async { pods.get_opt("p").await.ok()?.is_none().then_some(()) };
    common::poll("removed", 400, Duration::from_millis(100), gone).await;
    let took = clock.now() - start;
    assert!(
        took >= Duration::from_secs(30),
        "removed after the grace period, not the 120 s shutdown: {took:?}"
    );
    assert!(
        took < Duration::from_secs(32),
        "removed promptly after the grace period: {took:?}"
    );
}

#[tokio::test]
async fn settled_cluster_stops_writing() {
    let sim = common::sim();
    let client = common::client(&sim);
    let deploys = Api::<k8s_openapi::api::apps::v1::Deployment>::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &common::deployment("web", 3))
        .await
        .expect("deploy");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    common::eventually("ready", || async {
        let d = deploys.get("web").await.ok()?;
        (d.status?.available_replicas == Some(3)).then_some(())
    })
    .await;
    let rv = |l: kube::core::ObjectList<ConfigMap>| l.metadata.resource_version.unwrap_or_default();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let before = rv(cms.list(&ListParams::default()).await.expect("list"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rv(cms.list(&ListParams::default()).await.expect("list"));
    assert_eq!(
        before, after,
        "controllers keep rewriting objects in steady state"
    );
    assert_eq!(
        pods.list(&ListParams::default())
            .await
            .expect("pods")
            .items
            .len(),
        3
    );
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A 2-node cluster on real-time speed (to run under a paused clock) with a
/// 2-replica `web` deployment whose pods are Ready.
async fn two_ready_pods() -> (Sim, kube::Client) {
    use k8s_openapi::api::apps::v1::Deployment;
    let sim = Sim::start(SimOptions {
        nodes: 2,
        speed: 1.0,
        ..SimOptions::default()
    });
    let client = common::client(&sim);
    Api::<Deployment>::default_namespaced(client.clone())
        .create(&PostParams::default(), &common::deployment("web", 2))
        .await
        .expect("deploy");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    common::poll("2 ready pods", 60, Duration::from_secs(1), || async {
        let l = pods.list(&ListParams::default()).await.ok()?.items;
        (l.len() == 2 && l.iter().all(ready)).then_some(())
    })
    .await;
    (sim, client)
}

#[tokio::test(start_paused = true)]
async fn pods_leave_a_not_ready_node_after_their_toleration() {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let (sim, client) = two_ready_pods().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let every = Duration::from_secs(1);
    let nodes: Api<Node> = Api::all(client.clone());
    let down = json!({ "status": { "conditions": [{ "type": "Ready", "status": "False", "reason": "KubeletStopped" }] } });
    nodes
        .patch_status("node-1", &PatchParams::default(), &Patch::Merge(down))
        .await
        .expect("node down");
    let start = sim.clock().now();
    let taints = common::poll("taints", 30, every, || async {
        nodes.get("node-1").await.ok()?.spec?.taints
    })
    .await;
    assert!(
        taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/not-ready" && t.effect == "NoExecute")
    );

    let moved = common::poll("replacement on node-2", 400, every, || async {
        let l = pods.list(&ListParams::default()).await.ok()?.items;
        let live: Vec<&Pod> = l
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        (live.len() == 2 && live.iter().all(|p| node_of(p) == "node-2" && ready(p))).then_some(l)
    })
    .await;
    let waited = sim.clock().now() - start;
    assert!(
        waited >= Duration::from_secs(300),
        "evicted only after tolerationSeconds: {waited:?}"
    );
    let stuck: Vec<&Pod> = moved
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .collect();
    assert_eq!(
        stuck.len(),
        1,
        "the evicted pod stays Terminating while its node is down"
    );
    assert_eq!(node_of(stuck[0]), "node-1");
}
