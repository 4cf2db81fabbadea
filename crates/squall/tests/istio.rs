//! The book's network experiments (chapter 5) and the Istio fault actions'
//! safety against `squall sandbox serve --scenario go-demo-8-istio`: the
//! real binary, the simulated mesh routing the repeater → go-demo-8 hop
//! through the faulted VirtualService.
//!
//! Outcomes with 50 % faults are random. The sandbox's data plane draws its
//! rolls from a generator seeded by `--seed` (the default here), one draw
//! sequence per request sequence, so each test waits for readiness through
//! the API (never through the gateway) and its runs are repeatable.

mod common;

use common::cluster::{Cluster, example, ingress_host};
use common::{Run, Sandbox, wait_until};
use serde_json::Value;

/// `squall sandbox serve`'s default seed.
const DEFAULT_SEED: &str = "379409";
const VS: &str = "/apis/networking.istio.io/v1alpha3/namespaces/go-demo-8/virtualservices";

/// `squall sandbox serve --scenario go-demo-8-istio`, once every pod of the
/// scenario is ready; returns the cluster and `INGRESS_HOST`.
fn istio_cluster(sb: &Sandbox) -> (Cluster, String) {
    istio_cluster_seeded(sb, DEFAULT_SEED)
}

/// [`istio_cluster`] with the sandbox's `--seed`.
fn istio_cluster_seeded(sb: &Sandbox, seed: &str) -> (Cluster, String) {
    let args = ["--scenario", "go-demo-8-istio", "--seed", seed];
    let cluster = Cluster::start_with(sb, &args);
    let ingress = ingress_host(sb);
    assert!(
        wait_until(60, || all_pods_ready(&cluster)),
        "the scenario's pods never became ready"
    );
    (cluster, ingress)
}

/// The ingress gateway, go-demo-8 (2), its database and the repeater (2).
fn all_pods_ready(cluster: &Cluster) -> bool {
    let pods = common::json_body(&cluster.request("GET", "/api/v1/pods", ""));
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    let ready = |p: &Value| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    items.len() >= 6 && items.iter().all(ready)
}

/// A VirtualService of go-demo-8, as the API returns it.
fn vs(cluster: &Cluster, name: &str) -> Value {
    common::json_body(&cluster.request("GET", &format!("{VS}/{name}"), ""))
}

/// Replaces a VirtualService with the one in `examples/go-demo-8/FILE`, as
/// `kubectl apply` would.
fn apply_vs(cluster: &Cluster, file: &str) {
    let path = format!(
        "{}/../../examples/go-demo-8/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut obj = squall_sim::scenario::parse_manifest(&text)
        .unwrap()
        .remove(0);
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    obj["metadata"]["resourceVersion"] = vs(cluster, &name)["metadata"]["resourceVersion"].clone();
    let put = cluster.request("PUT", &format!("{VS}/{name}"), &obj.to_string());
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
}

fn run(sb: &Sandbox, ingress: &str, args: &[&str]) -> Run {
    let out = sb
        .cmd()
        .args(args)
        .env("INGRESS_HOST", ingress)
        .output()
        .unwrap();
    Run::from(out)
}

fn book(sb: &Sandbox, ingress: &str, name: &str) -> Run {
    run(
        sb,
        ingress,
        &["run", &example(name), "--kubeconfig", "kube.yaml"],
    )
}

#[test]
fn network_deviates_and_leaves_the_fault_until_recover() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb);
    let before = vs(&cluster, "go-demo-8")["spec"].clone();
    book(&sb, &ingress, "network.yaml")
        .code(1)
        .has("Action: abort-failure")
        .has("Pausing after activity for 1s...")
        .has("CRITICAL] Steady state probe 'app-responds-to-requests' is not in the given tolerance so failing this experiment")
        .has("No declared rollbacks, let's move on.")
        .has("Experiment ended with status: deviated")
        .has("still pending undo: restore the spec of VirtualService go-demo-8/go-demo-8");
    let fault = &vs(&cluster, "go-demo-8")["spec"]["http"][0]["fault"];
    assert_eq!(
        fault,
        &serde_json::json!({"abort": {"httpStatus": 500, "percentage": {"value": 50}}}),
        "as in the book, nothing removed the fault"
    );
    // squall's ledger still knows the original.
    run(&sb, &ingress, &["recover"]).code(0).has("Undo:");
    assert_eq!(vs(&cluster, "go-demo-8")["spec"], before);
}

#[test]
fn network_rollback_restores_the_spec_and_retries_make_it_complete() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb);
    let before = vs(&cluster, "go-demo-8")["spec"].clone();
    book(&sb, &ingress, "network-rollback.yaml")
        .code(1)
        .has("Rollback: remove-abort-failure")
        .has("Experiment ended with status: deviated");
    assert_eq!(vs(&cluster, "go-demo-8")["spec"], before);
    assert!(
        sb.journal()["squall"]["pending_undo"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    apply_vs(&cluster, "network/istio-repeater.yaml");
    book(&sb, &ingress, "network-rollback.yaml")
        .code(0)
        .has("Action: abort-failure")
        .has("Steady state hypothesis is met!")
        .has("Action: remove-abort-failure")
        .has("Experiment ended with status: completed");
    assert_eq!(vs(&cluster, "go-demo-8")["spec"], before);
}

/// With istio-delay.yaml a probe fails only when five tries in a row hit
/// the 50 % delay (each cut at 2 s, 10 s in all): 1 in 32, so the book's
/// five probes all pass about 85 % of the time, as the book warns ("it
/// survived in my case, and yours might be different"). The sandbox is
/// seeded, so a run is repeatable: seed 1 gives the book's outcome, the
/// default seed one of the other 15 %.
#[test]
fn network_delay_deviates_until_the_route_times_out_and_retries() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster_seeded(&sb, "1");
    let before = vs(&cluster, "go-demo-8")["spec"].clone();
    book(&sb, &ingress, "network-delay.yaml")
        .code(1)
        .has("Action: delay")
        .has("Rollback: remove-delay")
        .has("Experiment ended with status: deviated");
    assert_eq!(vs(&cluster, "go-demo-8")["spec"], before);

    apply_vs(&cluster, "network/istio-delay.yaml");
    book(&sb, &ingress, "network-delay.yaml")
        .code(0)
        .has("Steady state hypothesis is met!")
        .has("Action: remove-delay")
        .has("Experiment ended with status: completed");
    assert_eq!(vs(&cluster, "go-demo-8")["spec"], before);
}

#[test]
fn network_abort_100_deviates_even_with_retries() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb);
    let before = vs(&cluster, "go-demo-8")["spec"].clone();
    apply_vs(&cluster, "network/istio-delay.yaml");
    book(&sb, &ingress, "network-abort-100.yaml")
        .code(1)
        .has("CRITICAL] Steady state probe 'app-responds-to-requests' is not in the given tolerance so failing this experiment")
        .has("Rollback: remove-abort-failure")
        .has("Experiment ended with status: deviated");
    assert_eq!(vs(&cluster, "go-demo-8")["spec"], before);
}

#[test]
fn dry_run_plans_the_fault_and_changes_nothing() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb);
    let before = vs(&cluster, "go-demo-8");
    run(&sb, &ingress, &["run", &example("network-rollback.yaml"), "--kubeconfig", "kube.yaml", "--dry=actions"])
        .has("dry run: would add abort fault {\"httpStatus\":500,\"percentage\":{\"value\":50}} to http route(s) 0 of VirtualService go-demo-8/go-demo-8")
        .has("dry run: would remove the abort fault from the matching http routes of VirtualService go-demo-8/go-demo-8");
    let after = vs(&cluster, "go-demo-8");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
}

/// An abort fault held for 600 s, with the book's rollback.
const HELD: &str = r#"title: Abort, hold, roll back
description: The fault stays until the run is stopped.
method:
  - type: action
    name: abort-failure
    provider:
      type: python
      module: chaosistio.fault.actions
      func: add_abort_fault
      arguments: {virtual_service_name: go-demo-8, http_status: 500, percentage: 50, ns: go-demo-8,
                  routes: [{destination: {host: go-demo-8, subset: primary}}]}
    pauses: {after: 600}
rollbacks:
  - type: action
    name: remove-abort-failure
    provider:
      type: python
      module: chaosistio.fault.actions
      func: remove_abort_fault
      arguments: {virtual_service_name: go-demo-8, ns: go-demo-8,
                  routes: [{destination: {host: go-demo-8, subset: primary}}]}
"#;

/// Starts the held experiment and waits until the fault is in place.
fn start_held(sb: &Sandbox, cluster: &Cluster) -> std::process::Child {
    let child = common::cluster::run_until_paused(sb, &sb.write("held.yaml", HELD));
    assert!(vs(cluster, "go-demo-8")["spec"]["http"][0]["fault"].is_object());
    child
}

#[test]
fn sigint_during_the_fault_rolls_back_to_the_same_spec() {
    let sb = Sandbox::new();
    let (cluster, _) = istio_cluster(&sb);
    let before = vs(&cluster, "go-demo-8")["spec"].clone();
    let child = start_held(&sb, &cluster);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    Run::from(child.wait_with_output().unwrap())
        .code(1)
        .has("Rollback: remove-abort-failure")
        .has("status: interrupted");
    assert_eq!(vs(&cluster, "go-demo-8")["spec"], before);
    assert!(
        sb.journal()["squall"]["pending_undo"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn sigkill_then_recover_restores_the_spec_once() {
    let sb = Sandbox::new();
    let (cluster, ingress) = istio_cluster(&sb);
    let before = vs(&cluster, "go-demo-8")["spec"].clone();
    let mut child = start_held(&sb, &cluster);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(
        vs(&cluster, "go-demo-8")["spec"],
        before,
        "a killed run rolls nothing back"
    );
    run(&sb, &ingress, &["recover"])
        .code(0)
        .has("Undo:")
        .has("restore the spec of VirtualService go-demo-8/go-demo-8");
    let restored = vs(&cluster, "go-demo-8");
    assert_eq!(restored["spec"], before);
    run(&sb, &ingress, &["recover"])
        .code(0)
        .has("Nothing to recover");
    assert_eq!(
        vs(&cluster, "go-demo-8")["metadata"]["resourceVersion"],
        restored["metadata"]["resourceVersion"],
        "the second recover changed nothing"
    );
}
