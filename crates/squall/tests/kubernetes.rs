//! Kubernetes experiments from the book against `squall sandbox serve`:
//! the real binary, connected through the kubeconfig the sandbox writes.

mod common;

use common::cluster::{Cluster, demo_cluster, example, unschedulable};
use common::{Run, Sandbox};

#[test]
fn terminate_pod_completes_and_the_pod_is_gone() {
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    cluster.create_pod();
    let run: Run = sb.run(&[
        "run",
        &example("terminate-pod.yaml"),
        "--kubeconfig",
        "kube.yaml",
    ]);
    run.code(0)
        .has("Using Kubernetes context 'squall-sim'")
        .has("Action: terminate-pod")
        .has("Experiment ended with status: completed");
    assert!(cluster.pod_is_gone_or_terminating());
    let seed = &sb.journal()["run"][0]["output"]["seed"];
    assert!(seed.is_u64(), "a random pick records its seed: {seed}");
}

#[test]
fn max_targets_on_the_command_line_refuses_before_deleting() {
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    cluster.create_pod();
    let run: Run = sb.run(&[
        "run",
        &example("terminate-pod.yaml"),
        "--kubeconfig",
        "kube.yaml",
        "--max-targets",
        "0",
    ]);
    run.code(0).has(
        "blast radius exceeded: terminate_pods picked 1 pods but squall.limits.max_targets is 0",
    );
    assert!(
        !cluster.pod_is_gone_or_terminating(),
        "the pod was deleted despite --max-targets 0"
    );
}

#[test]
fn terminate_pod_ssh_fails_without_a_pod_and_completes_with_one() {
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    let exp = example("terminate-pod-ssh.yaml");
    let run = sb.run(&["run", &exp, "--kubeconfig", "kube.yaml"]);
    run.code(1)
        .has("CRITICAL] Steady state probe 'pod-exists' is not in the given tolerance so failing this experiment")
        .has("Experiment ended with status: failed");
    cluster.create_pod();
    sb.run(&["run", &exp, "--kubeconfig", "kube.yaml"])
        .code(0)
        .has("Experiment ended with status: completed");
}

#[test]
fn no_cluster_found_says_where_squall_looked() {
    let sb = Sandbox::new();
    let run = common::Run::from(
        sb.cmd()
            .args(["run", &example("terminate-pod.yaml")])
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("CHAOSTOOLKIT_IN_POD")
            .output()
            .unwrap(),
    );
    run.code(2)
        .has(".kube/config")
        .lacks("Action: terminate-pod");
}

#[test]
fn health_http_with_two_replicas_completes_and_health_db_deviates() {
    let sb = Sandbox::new();
    let (_cluster, ingress) = demo_cluster(&sb);
    let run = Run::from(
        sb.cmd()
            .args([
                "run",
                &example("health-http.yaml"),
                "--kubeconfig",
                "kube.yaml",
            ])
            .env("INGRESS_HOST", &ingress)
            .output()
            .unwrap(),
    );
    run.code(0)
        .has("Action: terminate-app-pod")
        .has("Experiment ended with status: completed");
    let run = Run::from(
        sb.cmd()
            .args([
                "run",
                &example("health-db.yaml"),
                "--kubeconfig",
                "kube.yaml",
            ])
            .env("INGRESS_HOST", &ingress)
            .output()
            .unwrap(),
    );
    run.code(1)
        .has("ERROR]   => failed: activity took too long to complete")
        .has("Experiment ended with status: deviated");
}

#[test]
fn cordon_killed_mid_experiment_is_undone_by_recover() {
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    let exp = sb.write(
        "cordon.yaml",
        r#"title: What happens if a node is cordoned?
description: Cordon, pause, uncordon in the rollback.
method:
  - type: action
    name: cordon
    provider: {type: python, module: chaosk8s.node.actions, func: cordon_node, arguments: {name: node-2}}
    pauses: {after: 600}
rollbacks:
  - type: action
    name: uncordon
    provider: {type: python, module: chaosk8s.node.actions, func: uncordon_node, arguments: {name: node-2}}
"#,
    );
    let mut child = sb
        .cmd()
        .args(["run", exp.to_str().unwrap(), "--kubeconfig", "kube.yaml"])
        .spawn()
        .unwrap();
    assert!(common::wait_until(20, || sb
        .read("squall.log")
        .contains("Pausing after activity")));
    assert!(unschedulable(&cluster, "node-2"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        unschedulable(&cluster, "node-2"),
        "nothing rolled back a killed run"
    );
    sb.run(&["recover"]).code(0).has("Undo:");
    assert!(
        !unschedulable(&cluster, "node-2"),
        "recover uncordoned the node"
    );
    sb.run(&["recover"]).code(0).has("Nothing to recover");
}

#[test]
fn cordon_rolls_back_on_sigint() {
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    let exp = sb.write(
        "cordon.yaml",
        r#"title: t
description: d
method:
  - {type: action, name: cordon, provider: {type: python, module: chaosk8s.node.actions, func: cordon_node, arguments: {name: node-1}}, pauses: {after: 600}}
rollbacks:
  - {type: action, name: uncordon, provider: {type: python, module: chaosk8s.node.actions, func: uncordon_node, arguments: {name: node-1}}}
"#,
    );
    let child = common::cluster::run_until_paused(&sb, &exp);
    assert!(unschedulable(&cluster, "node-1"));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.code(1)
        .has("Rollback: uncordon")
        .has("status: interrupted");
    assert!(!unschedulable(&cluster, "node-1"));
    assert!(
        sb.journal()["squall"]["pending_undo"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
