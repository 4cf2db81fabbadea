//! Scale: a cluster of many nodes and Deployments converges (every pod
//! scheduled within node capacity, Running and Ready, every Service's
//! endpoints complete) and selector lists return the right counts. The
//! 100-node, 10,000-pod run is `#[ignore]`d in debug builds;
//! `bench/sim-scale.sh` runs it in release.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use squall_sim::{Sim, SimOptions};

/// Sends one request to the simulator in process and decodes the JSON answer.
async fn call(sim: &Sim, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(bytes)
        .expect("request");
    let resp = sim.handle(req).await;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn deployment(name: &str, replicas: usize) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name, "tier": "scale" } },
                "spec": { "containers": [{ "name": "app", "image": "nginx:1.27", "ports": [{ "name": "http", "containerPort": 80 }] }] } } }
    })
}

fn service(name: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": name },
        "spec": { "selector": { "app": name }, "ports": [{ "port": 80, "targetPort": "http" }] } })
}

/// Creates `deployments` Deployments of `replicas` pods, each behind a Service.
async fn create_workload(sim: &Sim, deployments: usize, replicas: usize) {
    for d in 0..deployments {
        let name = format!("web-{d}");
        let (code, _) = call(
            sim,
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            Some(deployment(&name, replicas)),
        )
        .await;
        assert_eq!(code, 201, "create deployment {name}");
        let (code, _) = call(
            sim,
            "POST",
            "/api/v1/namespaces/default/services",
            Some(service(&name)),
        )
        .await;
        assert_eq!(code, 201, "create service {name}");
    }
}

/// Items of a list answer.
fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map_or(&[], Vec::as_slice)
}

/// Waits (sim time; the clock is paused in these tests) until every
/// Deployment reports all replicas ready and available.
async fn wait_deployments(sim: &Sim, deployments: usize, replicas: usize) {
    for _ in 0..20_000 {
        let ds = sim.list("apps", "deployments", Some("default"));
        let done = ds.len() == deployments
            && ds.iter().all(|d| {
                let s = &d["status"];
                s["readyReplicas"] == json!(replicas)
                    && s["replicas"] == json!(replicas)
                    && s["updatedReplicas"] == json!(replicas)
            });
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deployments did not converge");
}

/// Every pod is scheduled on an existing node, Running and Ready; nodes are
/// filled evenly and within their `pods` allocatable. Returns pods per node.
fn check_pods(sim: &Sim, nodes: usize, total: usize) -> BTreeMap<String, usize> {
    let pods = sim.list("", "pods", Some("default"));
    assert_eq!(pods.len(), total, "pod count");
    let mut per_node: BTreeMap<String, usize> =
        (1..=nodes).map(|i| (format!("node-{i}"), 0)).collect();
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        let slot = per_node
            .get_mut(node)
            .unwrap_or_else(|| panic!("pod on unknown node {node:?}"));
        *slot += 1;
        assert_eq!(p["status"]["phase"], "Running");
        let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        assert!(ready, "pod {} not ready", p["metadata"]["name"]);
        assert!(
            p["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| !ip.is_empty())
        );
    }
    let mut ips: Vec<&str> = pods
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    assert_eq!(ips.len(), total, "pod IPs are unique");
    let capacity: usize =
        sim.get("", "nodes", "", "node-1").expect("node")["status"]["allocatable"]["pods"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .expect("pods allocatable");
    let max = per_node.values().copied().max().unwrap_or(0);
    let min = per_node.values().copied().min().unwrap_or(0);
    assert!(
        max <= capacity,
        "{max} pods on a node of capacity {capacity}"
    );
    assert!(max - min <= 1, "spread unevenly: {min}..{max}");
    per_node
}

/// Every Service's Endpoints list all of its pods as ready addresses.
fn check_endpoints(sim: &Sim, deployments: usize, replicas: usize) {
    for d in 0..deployments {
        let ep = sim
            .get("", "endpoints", "default", &format!("web-{d}"))
            .expect("endpoints");
        let ready = ep["subsets"][0]["addresses"].as_array().map_or(0, Vec::len);
        assert_eq!(ready, replicas, "endpoints of web-{d}");
        assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
    }
}

/// Selector lists through the API: label, field, both, and paging.
async fn check_lists(sim: &Sim, per_node: &BTreeMap<String, usize>, replicas: usize, total: usize) {
    let (code, web7) = call(sim, "GET", "/api/v1/pods?labelSelector=app%3Dweb-7", None).await;
    assert_eq!((code, items(&web7).len()), (200, replicas));
    let on7 = per_node["node-7"];
    let (_, l) = call(
        sim,
        "GET",
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-7",
        None,
    )
    .await;
    assert_eq!(items(&l).len(), on7);
    assert!(items(&l).iter().all(|p| p["spec"]["nodeName"] == "node-7"));
    let (_, l) = call(sim, "GET", "/api/v1/namespaces/default/pods?labelSelector=tier%3Dscale&fieldSelector=spec.nodeName%3Dnode-7", None).await;
    assert_eq!(items(&l).len(), on7);
    let web7_on7 = items(&web7)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "node-7")
        .count();
    let (_, l) = call(
        sim,
        "GET",
        "/api/v1/pods?labelSelector=app%3Dweb-7&fieldSelector=spec.nodeName!%3Dnode-7",
        None,
    )
    .await;
    assert_eq!(items(&l).len(), replicas - web7_on7);
    let (_, l) = call(
        sim,
        "GET",
        "/api/v1/pods?fieldSelector=spec.nodeName%3D",
        None,
    )
    .await;
    assert_eq!(items(&l).len(), 0, "no unscheduled pods");
    // Paging as kubectl does (limit=500 and continue tokens) sees every pod once.
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let uri = format!("/api/v1/pods?limit=500&continue={token}");
        let (code, l) = call(sim, "GET", &uri, None).await;
        assert_eq!(code, 200);
        seen += items(&l).len();
        match l["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => token = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(seen, total);
}

async fn scale(nodes: usize, deployments: usize, replicas: usize) {
    let sim = Sim::start(SimOptions {
        nodes,
        ..SimOptions::default()
    });
    let start = Instant::now();
    create_workload(&sim, deployments, replicas).await;
    let created = start.elapsed();
    wait_deployments(&sim, deployments, replicas).await;
    let converged = start.elapsed();
    let total = deployments * replicas;
    let per_node = check_pods(&sim, nodes, total);
    check_endpoints(&sim, deployments, replicas);
    let t = Instant::now();
    check_lists(&sim, &per_node, replicas, total).await;
    eprintln!(
        "scale {nodes} nodes, {total} pods: created in {created:?}, converged in {converged:?}, lists checked in {:?}",
        t.elapsed()
    );
    // Settled: a further wait writes nothing (controllers stop at a fixed point).
    let before = call(&sim, "GET", "/api/v1/namespaces/default/pods?limit=1", None)
        .await
        .1;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = call(&sim, "GET", "/api/v1/namespaces/default/pods?limit=1", None)
        .await
        .1;
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "a settled cluster stops writing"
    );
}

#[tokio::test(start_paused = true)]
async fn ten_nodes_one_thousand_pods_converge() {
    scale(10, 10, 100).await;
}

#[tokio::test(start_paused = true)]
#[ignore = "10,000 pods: minutes in a debug build; bench/sim-scale.sh runs it in release"]
async fn hundred_nodes_ten_thousand_pods_converge() {
    scale(100, 100, 100).await;
}
