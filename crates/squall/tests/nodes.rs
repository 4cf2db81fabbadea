//! The book's node experiments (examples/book/node-*.yaml) run by the real
//! binary against `squall sandbox serve --scenario go-demo-8-istio`: a
//! drain refused by the ingress gateway's disruption budget, the uncordon
//! rollback, a drain and a delete that the cluster survives once the
//! gateway has two replicas on three nodes, and a drain interrupted by
//! SIGINT or SIGKILL.

mod common;

use serde_json::{Value, json};

use common::cluster::{Cluster, example, serving_demo, unschedulable};
use common::{Run, Sandbox, wait_until};

/// `sandbox serve --nodes N --scenario go-demo-8-istio`, waiting until the
/// application answers through the Istio gateway; returns INGRESS_HOST.
fn istio_cluster(sb: &Sandbox, nodes: u16) -> (Cluster, String) {
    let n = nodes.to_string();
    serving_demo(sb, &["--nodes", &n, "--scenario", "go-demo-8-istio"])
}

/// The JSON body of a GET on the sandbox's API.
fn get(cluster: &Cluster, path: &str) -> Value {
    common::json_body(&cluster.request("GET", path, ""))
}

/// A JSON merge patch.
fn merge_patch(cluster: &Cluster, path: &str, body: &str) -> String {
    common::http_typed(
        &cluster.server,
        "PATCH",
        path,
        "application/merge-patch+json",
        body,
    )
}

/// (namespace, name, node, ready) of every pod not being deleted.
fn pods(cluster: &Cluster) -> Vec<(String, String, String, bool)> {
    let list = get(cluster, "/api/v1/pods");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            let m = &p["metadata"];
            (
                s(&m["namespace"]),
                s(&m["name"]),
                s(&p["spec"]["nodeName"]),
                ready,
            )
        })
        .collect()
}

/// The book's fix: the gateway's HPA at minReplicas 2 (the simulated HPA
/// holds the Deployment at its minimum, so scaling the Deployment alone
/// would be undone), then wait for two ready replicas.
fn two_gateways(cluster: &Cluster) {
    let hpa = "/apis/autoscaling/v2/namespaces/istio-system/horizontalpodautoscalers/istio-ingressgateway";
    let patched = merge_patch(cluster, hpa, r#"{"spec":{"minReplicas":2}}"#);
    assert!(patched.starts_with("HTTP/1.1 200"), "{patched}");
    let two = wait_until(30, || {
        let ready = pods(cluster)
            .into_iter()
            .filter(|(ns, name, _, ready)| {
                ns == "istio-system" && name.starts_with("istio-ingressgateway-") && *ready
            })
            .count();
        ready == 2
    });
    assert!(
        two,
        "the gateway never had two ready replicas: {:?}",
        pods(cluster)
    );
}

/// The nodes hosting pods whose name starts with `prefix` (once per pod).
fn hosts(cluster: &Cluster, prefix: &str) -> Vec<String> {
    pods(cluster)
        .into_iter()
        .filter(|(_, name, _, _)| name.starts_with(prefix))
        .map(|(_, _, node, _)| node)
        .collect()
}

/// The node with the most gateway replicas. The simulated scheduler does
/// not spread a ReplicaSet's pods (it puts both replicas on one node where a
/// real scheduler would spread them), so draining it exercises the budget:
/// one replica goes at once, the other only after its replacement is ready
/// elsewhere.
/// A node running one of the two gateway replicas, which the sandbox's
/// scheduler spreads over different nodes as kube-scheduler does.
fn gateway_node(cluster: &Cluster) -> String {
    let gateways = hosts(cluster, "istio-ingressgateway-");
    assert_eq!(gateways.len(), 2, "{gateways:?}");
    assert_ne!(gateways[0], gateways[1], "replicas spread: {gateways:?}");
    gateways[0].clone()
}

/// A node running an API replica but not the database: the experiment's
/// NODE_LABEL then points at it, so the run does not depend on where the
/// single MongoDB pod landed (the book warns that losing it fails the
/// experiment).
fn node_without_the_db(cluster: &Cluster) -> String {
    let db = hosts(cluster, "go-demo-8-db-");
    pods(cluster)
        .into_iter()
        .filter(|(ns, name, _, _)| ns == "go-demo-8" && name.starts_with("go-demo-8-"))
        .map(|(_, _, node, _)| node)
        .find(|n| !db.contains(n))
        .unwrap_or_else(|| {
            panic!(
                "every API replica shares the database's node: {:?}",
                pods(cluster)
            )
        })
}

fn run_book(sb: &Sandbox, file: &str, ingress: &str, node_label: &str, timeout: &str) -> Run {
    Run::from(
        sb.cmd()
            .args(["run", &example(file), "--kubeconfig", "kube.yaml"])
            .env("INGRESS_HOST", ingress)
            .env("NODE_LABEL", node_label)
            .env("DRAIN_TIMEOUT", timeout)
            .output()
            .unwrap(),
    )
}

fn pending_undo(sb: &Sandbox) -> usize {
    sb.journal()["squall"]["pending_undo"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn one_gateway_replica_blocks_the_drain_and_the_uncordon_rollback_repairs_it() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb, 1);
    let linux = "kubernetes.io/os=linux";

    let run = run_book(&sb, "node-drain.yaml", &ingress, linux, "6");
    run.code(1)
        .has("Action: drain-node")
        .has("(will retry after 5s)")
        .has("=> failed: Failed to evict pod istio-ingressgateway-")
        .has(r#""reason":"TooManyRequests""#)
        .has("The disruption budget ingressgateway needs 1 healthy pods and has 1 currently")
        .has("No declared rollbacks")
        .has("Experiment ended with status: deviated");
    assert!(
        unschedulable(&cluster, "node-1"),
        "the failed drain leaves the node cordoned"
    );
    assert_eq!(pending_undo(&sb), 1, "its uncordon is pending");

    // As in the book, the cordoned node now breaks the application, so the
    // next run fails its first hypothesis; its rollback uncordons.
    let run = run_book(&sb, "node-uncordon.yaml", &ingress, linux, "6");
    run.code(1)
        .has("Rollback: uncordon-node")
        .has("Experiment ended with status: failed");
    assert!(!unschedulable(&cluster, "node-1"));
    sb.run(&["recover"]).code(0).has("Nothing to recover");
}

#[test]
fn with_three_nodes_and_two_gateway_replicas_the_drain_completes_and_is_rolled_back() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb, 3);
    two_gateways(&cluster);
    let node = gateway_node(&cluster);
    let label = format!("kubernetes.io/hostname={node}");

    // The budget (minAvailable 1) allows one of two replicas to go, so
    // the drain goes through without a refusal.
    let run = run_book(&sb, "node-uncordon.yaml", &ingress, &label, "60");
    run.code(0)
        .has("evicting pod istio-system/istio-ingressgateway-")
        .lacks("error when evicting")
        .has(&format!("node/{node} drained"))
        .has("Rollback: uncordon-node")
        .has("Experiment ended with status: completed");
    let output = &sb.journal()["run"][0]["output"];
    assert_eq!(output["nodes"], json!([node]), "{output}");
    assert!(output["seed"].is_u64(), "{output}");
    assert!(!unschedulable(&cluster, &node));
    assert_eq!(pending_undo(&sb), 0);
    let gateways = hosts(&cluster, "istio-ingressgateway-");
    assert_eq!(gateways.len(), 2, "{gateways:?}");
    assert!(
        !gateways.contains(&node),
        "the drained node's replica moved: {gateways:?}"
    );
}

#[test]
fn deleting_one_of_three_nodes_completes_without_an_undo() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb, 3);
    two_gateways(&cluster);
    let node = node_without_the_db(&cluster);
    let label = format!("kubernetes.io/hostname={node}");

    let run = run_book(&sb, "node-delete.yaml", &ingress, &label, "6");
    run.code(0)
        .has(&format!("deleting node {node}"))
        .has("Experiment ended with status: completed");
    let gone = cluster.request("GET", &format!("/api/v1/nodes/{node}"), "");
    assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
    assert_eq!(pending_undo(&sb), 0);
    sb.run(&["recover"]).code(0).has("Nothing to recover");
}

/// Drain node-2, pause, uncordon in the rollback.
const PAUSED_DRAIN: &str = r#"title: Drain a node and hold it
description: drain, pause, uncordon in the rollback
method:
  - type: action
    name: drain
    provider: {type: python, module: chaosk8s.node.actions, func: drain_nodes, arguments: {name: node-2, timeout: 30}}
    pauses: {after: 600}
rollbacks:
  - type: action
    name: uncordon
    provider: {type: python, module: chaosk8s.node.actions, func: uncordon_node, arguments: {name: node-2}}
"#;

fn start_paused_drain(sb: &Sandbox) -> std::process::Child {
    common::cluster::run_until_paused(sb, &sb.write("drain.yaml", PAUSED_DRAIN))
}

#[test]
fn sigint_during_a_drain_experiments_pause_rolls_back() {
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    let child = start_paused_drain(&sb);
    assert!(unschedulable(&cluster, "node-2"));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.code(1)
        .has("node/node-2 drained")
        .has("Rollback: uncordon")
        .has("status: interrupted");
    assert!(!unschedulable(&cluster, "node-2"));
    assert_eq!(pending_undo(&sb), 0);
}

#[test]
fn a_killed_drain_is_undone_by_recover_once() {
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    let mut child = start_paused_drain(&sb);
    assert!(unschedulable(&cluster, "node-2"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        unschedulable(&cluster, "node-2"),
        "nothing rolled back a killed run"
    );
    sb.run(&["recover"])
        .code(0)
        .has("Undo:")
        .has("uncordon node node-2");
    assert!(!unschedulable(&cluster, "node-2"));
    sb.run(&["recover"]).code(0).has("Nothing to recover");
    assert!(!unschedulable(&cluster, "node-2"));
}

#[test]
fn a_dry_drain_names_what_it_would_do_and_changes_nothing() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb, 1);
    let before: Vec<_> = pods(&cluster)
        .into_iter()
        .map(|(_, name, _, _)| name)
        .collect();
    assert!(before.len() > 5, "{before:?}");
    let run = Run::from(
        sb.cmd()
            .args([
                "run",
                &example("node-uncordon.yaml"),
                "--kubeconfig",
                "kube.yaml",
                "--dry",
            ])
            .env("INGRESS_HOST", &ingress)
            .env("NODE_LABEL", "kubernetes.io/os=linux")
            .output()
            .unwrap(),
    );
    run.code(0)
        .has("dry run: would cordon node node-1")
        .has("dry run: would evict pod istio-system/istio-ingressgateway-")
        .has("dry run: would evict pod go-demo-8/go-demo-8-db-")
        .lacks("node/node-1 cordoned");
    assert!(!unschedulable(&cluster, "node-1"));
    let after: Vec<_> = pods(&cluster)
        .into_iter()
        .map(|(_, name, _, _)| name)
        .collect();
    assert_eq!(before, after, "a dry run evicted pods");
    sb.run(&["recover"]).code(0).has("Nothing to recover");
}
