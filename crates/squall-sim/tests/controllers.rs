//! Controllers observed through kube::Client: Deployments producing Ready pods
//! spread over nodes, rollout restart, cordon and node deletion rescheduling,
//! StatefulSets, DaemonSets, HPA minimum, Endpoints/EndpointSlices and cascading
//! deletion.

mod common;

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// Active (not terminating) pods with a label selector.
async fn active(client: &Client, labels: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let l = pods
        .list(&ListParams::default().labels(labels))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    l.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn wait_ready(client: &Client, labels: &str, n: usize) -> Vec<Pod> {
    common::eventually(&format!("{n} ready pods for {labels}"), || async {
        let pods = active(client, labels).await;
        (pods.len() == n && pods.iter().all(is_ready)).then_some(pods)
    })
    .await
}

#[tokio::test]
async fn deployment_produces_ready_pods_spread_over_nodes() {
    let sim = common::sim();
    let client = common::client(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &common::deployment("web", 3))
        .await
        .expect("create");
    let pods = wait_ready(&client, "app=web", 3).await;
    let nodes: BTreeSet<String> = pods.iter().map(node_of).collect();
    assert_eq!(nodes.len(), 3, "one pod per node: {nodes:?}");
    assert!(pods.iter().all(|p| {
        p.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("pod-template-hash"))
    }));
    assert!(
        pods.iter()
            .all(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
    );

    let status = common::eventually("deployment available", || async {
        let s = deploys.get("web").await.ok()?.status?;
        (s.available_replicas == Some(3) && s.updated_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.observed_generation, Some(1));
    let conds = status.conditions.unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    );

    // Scaling down removes pods; deleting the deployment cascades to its ReplicaSet and pods.
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
        )
        .await
        .expect("scale");
    wait_ready(&client, "app=web", 1).await;
    deploys
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete");
    let rs: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    common::eventually("cascade", || async {
        let sets = rs.list(&ListParams::default()).await.ok()?.items;
        (sets.is_empty() && active(&client, "app=web").await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn rollout_restart_replaces_every_pod() {
    let sim = common::sim();
    let client = common::client(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &common::deployment("api", 2))
        .await
        .expect("create");
    let before: BTreeSet<String> = wait_ready(&client, "app=api", 2)
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    deploys.restart("api").await.expect("restart");
    let after = common::eventually("new pods ready", || async {
        let pods = active(&client, "app=api").await;
        let names: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        (pods.len() == 2 && pods.iter().all(is_ready) && names.is_disjoint(&before))
            .then_some(names)
    })
    .await;
    assert_eq!(after.len(), 2);
    let d = common::eventually("rollout complete", || async {
        let d = deploys.get("api").await.ok()?;
        let s = d.status.clone()?;
        (s.updated_replicas == Some(2) && s.replicas == Some(2) && s.available_replicas == Some(2))
            .then_some(d)
    })
    .await;
    assert_eq!(
        d.status.and_then(|s| s.observed_generation),
        d.metadata.generation
    );
    let rs: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    assert_eq!(
        rs.list(&ListParams::default().labels("app=api"))
            .await
            .expect("list")
            .items
            .len(),
        2,
        "old set kept for history"
    );
}

#[tokio::test]
async fn cordon_and_node_deletion_reschedule_pods() {
    let sim = common::sim();
    let client = common::client(&sim);
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.cordon("node-1").await.expect("cordon");
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &common::deployment("web", 4))
        .await
        .expect("create");
    let pods = wait_ready(&client, "app=web", 4).await;
    assert!(
        pods.iter().all(|p| node_of(p) != "node-1"),
        "cordoned node gets no pods"
    );

    nodes
        .delete("node-2", &DeleteParams::default())
        .await
        .expect("delete node");
    let pods = common::eventually("pods rescheduled off node-2", || async {
        let pods = active(&client, "app=web").await;
        (pods.len() == 4 && pods.iter().all(|p| is_ready(p) && node_of(p) == "node-3"))
            .then_some(pods)
    })
    .await;
    assert_eq!(pods.len(), 4);

    // With every remaining node cordoned, new pods stay Pending with the scheduler's reason.
    nodes.cordon("node-3").await.expect("cordon");
    let all: Api<Pod> = Api::default_namespaced(client.clone());
    let p: Pod = serde_json::from_value(json!({ "metadata": { "name": "stuck" }, "spec": { "containers": [{ "name": "c", "image": "x" }] } })).expect("pod");
    all.create(&PostParams::default(), &p)
        .await
        .expect("create");
    let msg = common::eventually("unschedulable condition", || async {
        let c = all.get("stuck").await.ok()?.status?.conditions?;
        c.into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
            .message
    })
    .await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 node(s) were unschedulable."
    );
}

#[tokio::test]
async fn statefulset_daemonset_and_hpa() {
    let sim = common::sim();
    let client = common::client(&sim);
    let template = json!({ "metadata": { "labels": { "app": "db" } }, "spec": { "containers": [{ "name": "db", "image": "mongo" }] } });
    let sts: StatefulSet = serde_json::from_value(json!({ "metadata": { "name": "db" }, "spec": { "replicas": 3, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } }, "template": template } })).expect("sts");
    Api::<StatefulSet>::default_namespaced(client.clone())
        .create(&PostParams::default(), &sts)
        .await
        .expect("sts");
    let pods = wait_ready(&client, "app=db", 3).await;
    let names: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"].map(String::from).into());

    let ds: DaemonSet = serde_json::from_value(json!({ "metadata": { "name": "agent" }, "spec": { "selector": { "matchLabels": { "app": "agent" } },
        "template": { "metadata": { "labels": { "app": "agent" } }, "spec": { "containers": [{ "name": "a", "image": "agent" }] } } } })).expect("ds");
    Api::<DaemonSet>::default_namespaced(client.clone())
        .create(&PostParams::default(), &ds)
        .await
        .expect("ds");
    let agents = wait_ready(&client, "app=agent", 3).await;
    assert_eq!(agents.iter().map(node_of).collect::<BTreeSet<_>>().len(), 3);

    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &common::deployment("web", 1))
        .await
        .expect("deploy");
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({ "metadata": { "name": "web" }, "spec": {
        "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" }, "minReplicas": 2, "maxReplicas": 5 } })).expect("hpa");
    Api::<HorizontalPodAutoscaler>::default_namespaced(client.clone())
        .create(&PostParams::default(), &hpa)
        .await
        .expect("hpa");
    wait_ready(&client, "app=web", 2).await;
    assert_eq!(
        deploys
            .get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(2)
    );
}

#[tokio::test]
async fn services_get_endpoints_from_ready_pods() {
    let sim = common::sim();
    let client = common::client(&sim);
    Api::<Deployment>::default_namespaced(client.clone())
        .create(&PostParams::default(), &common::deployment("web", 2))
        .await
        .expect("deploy");
    let svc: Service = serde_json::from_value(json!({ "metadata": { "name": "web" }, "spec": { "selector": { "app": "web" }, "ports": [{ "name": "http", "port": 8080, "targetPort": "http" }] } })).expect("svc");
    let created = Api::<Service>::default_namespaced(client.clone())
        .create(&PostParams::default(), &svc)
        .await
        .expect("svc");
    assert!(
        created
            .spec
            .and_then(|s| s.cluster_ip)
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    let pods = wait_ready(&client, "app=web", 2).await;
    let ips: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();

    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());
    let got = common::eventually("endpoints", || async {
        let subsets = eps.get("web").await.ok()?.subsets?;
        let s = subsets.first()?.clone();
        let addrs: BTreeSet<String> = s.addresses.clone()?.into_iter().map(|a| a.ip).collect();
        (addrs == ips).then_some(s)
    })
    .await;
    assert_eq!(
        got.ports.expect("ports")[0].port,
        80,
        "named targetPort resolved to the container port"
    );

    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let slice = common::eventually("endpointslice", || async {
        let l = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .ok()?;
        let s = l.items.into_iter().next()?;
        (s.endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count()
            == 2)
            .then_some(s)
    })
    .await;
    assert_eq!(slice.address_type, "IPv4");
    assert!(
        slice
            .endpoints
            .iter()
            .all(|e| e.zone.as_deref().is_some_and(|z| z.starts_with("zone-")))
    );
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let sim = common::sim();
    let client = common::client(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &common::deployment("fg", 2))
        .await
        .expect("create");
    wait_ready(&client, "app=fg", 2).await;
    let held = deploys
        .delete("fg", &DeleteParams::foreground())
        .await
        .expect("delete")
        .left()
        .expect("owner returned while held");
    assert!(
        held.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut saw_owner_with_pods = false;
    let mut removed = false;
    for _ in 0..250 {
        let owner = deploys.get_opt("fg").await.expect("get");
        let left = pods
            .list(&ListParams::default().labels("app=fg"))
            .await
            .expect("list")
            .items
            .len();
        saw_owner_with_pods |= owner.is_some() && left > 0;
        if owner.is_none() {
            removed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(removed, "deployment removed in time");
    assert!(
        saw_owner_with_pods,
        "the deployment outlived its pods' termination"
    );
    assert!(
        pods.list(&ListParams::default().labels("app=fg"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn components_record_events() {
    use k8s_openapi::api::core::v1::Event;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    let sim = common::sim();
    let client = common::client(&sim);
    Api::<Deployment>::default_namespaced(client.clone())
        .create(&PostParams::default(), &common::deployment("ev", 1))
        .await
        .expect("create");
    let pod = wait_ready(&client, "app=ev", 1).await.remove(0);
    let pod_name = pod.metadata.name.clone().expect("name");
    Api::<Pod>::default_namespaced(client.clone())
        .delete(&pod_name, &DeleteParams::default())
        .await
        .expect("delete");

    let core: Api<Event> = Api::default_namespaced(client.clone());
    let reasons = common::eventually("events recorded", || async {
        let l = core.list(&ListParams::default()).await.ok()?;
        let r: BTreeSet<String> = l.items.into_iter().filter_map(|e| e.reason).collect();
        r.contains("Killing").then_some(r)
    })
    .await;
    for want in [
        "ScalingReplicaSet",
        "SuccessfulCreate",
        "Scheduled",
        "Started",
        "Killing",
    ] {
        assert!(reasons.contains(want), "missing {want}: {reasons:?}");
    }
    let modern: Api<NewEvent> = Api::all(client);
    let scheduled = modern
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("Scheduled"))
        .expect("scheduled event");
    assert_eq!(
        scheduled.reporting_controller.as_deref(),
        Some("default-scheduler")
    );
    assert!(
        scheduled
            .note
            .unwrap_or_default()
            .starts_with("Successfully assigned default/ev-")
    );
}

#[tokio::test]
async fn restarted_containers_count_and_recover() {
    let sim = common::sim();
    let client = common::client(&sim);
    Api::<Deployment>::default_namespaced(client.clone())
        .create(&PostParams::default(), &common::deployment("rs", 1))
        .await
        .expect("create");
    let name = wait_ready(&client, "app=rs", 1)
        .await
        .remove(0)
        .metadata
        .name
        .expect("name");
    let after = sim
        .restart_container("default", &name, Some("app"), 137, "OOMKilled")
        .expect("restart");
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 1);
    assert_eq!(
        after["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "OOMKilled"
    );
    assert!(
        sim.restart_container("default", &name, Some("nope"), 1, "Error")
            .is_err()
    );
    assert_eq!(
        sim.restart_container("default", "missing", None, 1, "Error")
            .expect_err("404")
            .code,
        404
    );

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let p = pods.get(&name).await.expect("pod");
    assert!(!is_ready(&p), "unready right after the restart");
    let p = common::eventually("ready again", || async {
        pods.get(&name).await.ok().filter(is_ready)
    })
    .await;
    let cs = p
        .status
        .and_then(|s| s.container_statuses)
        .expect("statuses");
    assert_eq!(cs[0].restart_count, 1);
    assert_eq!(
        cs[0]
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .map(|t| t.exit_code),
        Some(137)
    );
}

#[tokio::test]
async fn optional_system_pods_and_zones() {
    let sim = squall_sim::Sim::start(squall_sim::SimOptions {
        nodes: 3,
        speed: 20.0,
        system_pods: true,
        ..squall_sim::SimOptions::default()
    });
    let client = common::client(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let ready = common::eventually("kube-system ready", || async {
        let l = pods.list(&ListParams::default()).await.ok()?.items;
        (l.len() == 5 && l.iter().all(is_ready)).then_some(l)
    })
    .await;
    let proxies: Vec<&Pod> = ready
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("k8s-app").map(String::as_str) == Some("kube-proxy"))
        })
        .collect();
    assert_eq!(proxies.len(), 3);
    for p in proxies {
        let s = p.status.as_ref().expect("status");
        assert_eq!(s.pod_ip, s.host_ip, "kube-proxy runs in the host network");
    }
    let nodes: Api<Node> = Api::all(client);
    let zones: BTreeSet<String> = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
        .into_iter()
        .filter_map(|n| {
            n.metadata
                .labels?
                .get("topology.kubernetes.io/zone")
                .cloned()
        })
        .collect();
    assert_eq!(zones.len(), 3);
}

#[tokio::test]
async fn scale_subresource_and_statefulset_rolling_update() {
    let sim = common::sim();
    let client = common::client(&sim);
    let template = json!({ "metadata": { "labels": { "app": "db" } }, "spec": { "containers": [{ "name": "db", "image": "mongo:7" }] } });
    let sts: StatefulSet = serde_json::from_value(json!({ "metadata": { "name": "db" }, "spec": { "replicas": 2, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } }, "template": template } })).expect("sts");
    let api: Api<StatefulSet> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &sts)
        .await
        .expect("create");
    wait_ready(&client, "app=db", 2).await;

    let scale = api
        .patch_scale(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .expect("patch scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(
        api.get_scale("db")
            .await
            .expect("scale")
            .status
            .map(|s| s.selector.unwrap_or_default())
            .as_deref(),
        Some("app=db")
    );
    wait_ready(&client, "app=db", 3).await;

    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "db", "image": "mongo:8" }] } } } });
    api.patch("db", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("new image");
    let pods = common::eventually("all pods on the new image", || async {
        let pods = active(&client, "app=db").await;
        let new = pods
            .iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some("mongo:8"))
            })
            .count();
        (pods.len() == 3 && new == 3 && pods.iter().all(is_ready)).then_some(pods)
    })
    .await;
    let names: BTreeSet<String> = pods.into_iter().filter_map(|p| p.metadata.name).collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"].map(String::from).into());
    let status = common::eventually("sts status", || async {
        let s = api.get("db").await.ok()?.status?;
        (s.updated_replicas == Some(3) && s.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(status.current_revision, status.update_revision);
}
