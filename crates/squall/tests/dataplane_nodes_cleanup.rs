//! Cleanup around helper pods on cluster nodes, end to end (`squall run` →
//! the sandbox → the process runtime running `squall agent` in a lab
//! namespace that plays node-1): a helper pod whose image cannot be pulled
//! fails the action at once with a clear message and leaves nothing; a
//! restore pod whose rollback is cancelled by a second Ctrl-C is deleted
//! rather than left to its deadline; repeated filter flushes on a node leave
//! at most the configured number of snapshots in its state directory; an
//! IPv6 flush on a dual-stack node goes through the pod and is rolled back.
//! Skipped, with the reason printed, when not root or without iptables.

mod common;

use std::process::Stdio;

use common::cluster::Cluster;
use common::lab::Node;
use common::{Sandbox, wait_until};
use serde_json::Value;

const IMAGE: &str = "registry.example/squall:test";
const MISSING: &str = "registry.example/squall:missing";

/// A sandbox whose node-1 is `node`, running IMAGE pods as `exe`.
fn lab_cluster(sb: &Sandbox, node: &Node, exe: &str) -> Cluster {
    let image = format!("{IMAGE}={exe}");
    let n1 = format!("node-1={}", node.name);
    let hosts = sb.path("hosts").display().to_string();
    Cluster::start_with(
        sb,
        &[
            "--nodes",
            "2",
            "--run-image",
            &image,
            "--node-netns",
            &n1,
            "--host-root",
            &hosts,
            "--fail-pull",
            MISSING,
        ],
    )
}

fn helper_pods(cluster: &Cluster) -> Vec<Value> {
    let got = cluster.request(
        "GET",
        "/api/v1/namespaces/kube-system/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dsquall",
        "",
    );
    common::json_body(&got)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn experiment(sb: &Sandbox, image: &str, mode: &str, pause: u32, extra_config: &str) -> String {
    let path = sb.write(
        "flush-node.yaml",
        &format!(
            r#"title: Flush a node's rules through a helper pod
description: cleanup around helper pods
configuration: {{squall_agent_image: "{image}"{extra_config}}}
method:
  - type: action
    name: flush-on-node-1
    provider: {{type: python, module: squall.dataplane.actions, func: flush_rules,
      arguments: {{mode: {mode}, node: node-1, ttl_secs: 600, timeout_secs: 300}}}}
    pauses: {{after: {pause}}}
rollbacks:
  - type: action
    name: restore-rules
    provider: {{type: python, module: squall.dataplane.actions, func: restore_rules,
      arguments: {{node: node-1, timeout_secs: 300}}}}
"#
        ),
    );
    path.display().to_string()
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_flush_at_once_and_leaves_nothing() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, env!("CARGO_BIN_EXE_squall"));
    // timeout_secs is 300: only the ErrImagePull fast path ends this
    // test in seconds, and its message is not the timeout's.
    let exp = experiment(&sb, MISSING, "nat", 0, "");
    // A failed action does not fail the run (Chaos Toolkit semantics).
    sb.run(&["run", &exp, "--kubeconfig", "kube.yaml"]).code(0);
    let log = sb.read("squall.log");
    assert!(
        log.contains("cannot start: ErrImagePull") && log.contains("check the image"),
        "{log}"
    );
    assert!(!log.contains("did not start its work within"), "{log}");
    assert!(
        !log.contains("Cancelled activity"),
        "nothing was cancelled: {log}"
    );
    assert!(node.has_rules(), "nothing was flushed");
    assert!(helper_pods(&cluster).is_empty(), "no helper pod is left");
    let journal = sb.journal();
    assert_eq!(journal["run"][0]["status"], "failed");
    assert!(
        journal["squall"]["pending_undo"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no undo left pending: {}",
        journal["squall"]
    );
}

fn interrupt(child: &std::process::Child) {
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The flush is quick, the restore pod's `recover` sleeps 60 s first: so
/// it is surely in flight when the second Ctrl-C cancels the rollback.
fn slow_recover_image(sb: &Sandbox) -> String {
    let path = sb.write(
        "slow-recover.sh",
        &format!(
            "#!/bin/sh\ncase \" $* \" in *\" recover \"*) sleep 60;; esac\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_squall")
        ),
    );
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .unwrap();
    assert!(chmod.success());
    path.display().to_string()
}

#[test]
fn a_second_ctrl_c_deletes_the_restore_pod_of_the_cancelled_rollback() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, &slow_recover_image(&sb));
    let exp = experiment(&sb, IMAGE, "nat", 600, "");
    let mut child = sb
        .cmd()
        .args(["run", &exp, "--kubeconfig", "kube.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(60, || sb
            .read("squall.log")
            .contains("Pausing after activity")),
        "{}",
        sb.read("squall.log")
    );
    assert!(!node.has_rules(), "flushed");
    interrupt(&child);
    assert!(
        wait_until(30, || sb
            .read("squall.log")
            .contains("running `squall agent dataplane recover` in helper pod")),
        "{}",
        sb.read("squall.log")
    );
    assert!(
        node.has_rules(),
        "the flush pod restored on SIGTERM before the restore pod started"
    );
    let restore_pod = |pods: &[Value]| {
        pods.iter().any(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("squall-restore-")
        })
    };
    assert!(restore_pod(&helper_pods(&cluster)), "the restore pod runs");
    interrupt(&child);
    assert!(child.wait().unwrap().code().is_some());
    let log = sb.read("squall.log");
    assert!(
        log.contains("Cancelled activity: deleted helper pod kube-system/squall-restore-"),
        "{log}"
    );
    // Its recover sleeps a minute: only the deletion ends it this soon.
    assert!(
        wait_until(15, || helper_pods(&cluster).is_empty()),
        "left behind: {:?}",
        helper_pods(&cluster)
    );
}

/// The node's state directory as the sandbox keeps it for node-1.
fn state_dir(sb: &Sandbox) -> std::path::PathBuf {
    sb.path("hosts/node-1/var/lib/squall/dataplane")
}

fn count(dir: &std::path::Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn repeated_filter_flushes_on_a_node_keep_at_most_the_configured_snapshots() {
    let Some(node) = Node::docker_style() else {
        return;
    };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, env!("CARGO_BIN_EXE_squall"));
    let keep = ", squall_dataplane_keep_snapshots: 2";
    let exp = experiment(&sb, IMAGE, "filter", 0, keep);
    for i in 0..4 {
        sb.run(&["run", &exp, "--kubeconfig", "kube.yaml"])
            .code(0)
            .has("Rollback: restore-rules");
        let journal = sb.journal();
        assert_eq!(journal["run"][0]["output"]["mode"], "filter");
        assert!(
            journal["run"][0]["output"]["nodes"][0]["flushed_at"].is_string(),
            "{}",
            journal["run"][0]["output"]
        );
        assert!(node.forwards_like_docker(), "run {i}: {}", node.filter());
    }
    let dir = state_dir(&sb);
    assert!(
        count(&dir, ".snapshot.json") <= 2,
        "{:?}",
        std::fs::read_dir(&dir)
    );
    assert!(count(&dir, ".ledger.jsonl") <= 2);
    assert!(count(&dir, ".snapshot.json") >= 1, "the newest stays");
    assert!(helper_pods(&cluster).is_empty());
}

/// A dual-stack node through a helper pod: `family: ipv6` flushes only the
/// node's IPv6 nat table (the pod runs `flush --family ipv6`), and the
/// rollback's restore pod puts it back.
#[test]
fn an_ipv6_flush_through_a_helper_pod_is_rolled_back() {
    let Some(node) = Node::new() else { return };
    node.add_ipv6_service();
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, env!("CARGO_BIN_EXE_squall"));
    let exp = experiment(&sb, IMAGE, "nat, family: ipv6", 600, "");
    let mut child = sb
        .cmd()
        .args(["run", &exp, "--kubeconfig", "kube.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(60, || sb
            .read("squall.log")
            .contains("Pausing after activity")),
        "{}",
        sb.read("squall.log")
    );
    assert!(!node.has_ipv6_rules(), "IPv6 nat flushed on node-1");
    assert!(node.has_rules(), "IPv4 nat untouched");
    let pods = helper_pods(&cluster);
    let args = pods[0]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains(r#""--family","ipv6""#), "{args}");
    interrupt(&child);
    assert!(child.wait().unwrap().code().is_some());
    assert!(
        node.has_ipv6_rules() && node.has_rules(),
        "{}",
        sb.read("squall.log")
    );
    assert!(sb.read("squall.log").contains("flushed (nat, ipv6)"));
    assert!(wait_until(15, || helper_pods(&cluster).is_empty()));
}
