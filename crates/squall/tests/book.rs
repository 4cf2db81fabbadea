//! The book's pod and health experiments (chapters 3 and 4) against
//! `squall sandbox serve`, with the outcomes the book shows: exit code,
//! final status and the line that explains it. Each cluster state is set up
//! through the API from the go-demo-8 scenario or an empty cluster, as the
//! book does with `kubectl apply`, `delete` and `scale`.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::cluster::{Cluster, demo_cluster, example};
use common::{Run, Sandbox, wait_until};
use serde_json::{Value, json};

/// The pause-based outcomes depend on the sandbox's pod timings (a new pod
/// is Ready 2.5 s after it is scheduled), so these tests run one at a time
/// rather than competing for the CPU.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const NS: &str = "/api/v1/namespaces/go-demo-8";
const APPS: &str = "/apis/apps/v1/namespaces/go-demo-8";

#[track_caller]
fn ok(resp: &str) -> Value {
    assert!(resp.starts_with("HTTP/1.1 20"), "{resp}");
    common::json_body(resp)
}

fn merge_patch(cluster: &Cluster, path: &str, body: &Value) {
    ok(&common::http_typed(
        &cluster.server,
        "PATCH",
        path,
        "application/merge-patch+json",
        &body.to_string(),
    ));
}

fn post(cluster: &Cluster, path: &str, body: &Value) {
    ok(&cluster.request("POST", path, &body.to_string()));
}

fn delete(cluster: &Cluster, path: &str) {
    ok(&cluster.request("DELETE", path, ""));
}

/// The go-demo-8 API pods, with whether each is Ready; a terminating pod
/// counts as not ready (it still exists, and terminate_pods may pick it).
fn api_pods(cluster: &Cluster) -> Vec<bool> {
    let path = format!("{NS}/pods?labelSelector=app%3Dgo-demo-8");
    let list = ok(&cluster.request("GET", &path, ""));
    let ready = |p: &Value| {
        let conditions = p["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        p["metadata"].get("deletionTimestamp").is_none()
            && conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(ready)
        .collect()
}

/// Waits until exactly `n` API pods exist, all Ready.
#[track_caller]
fn wait_for_ready_pods(cluster: &Cluster, n: usize) {
    let settled = wait_until(60, || {
        let pods = api_pods(cluster);
        pods.len() == n && pods.iter().all(|r| *r)
    });
    assert!(
        settled,
        "expected {n} ready go-demo-8 pods, got {:?}",
        api_pods(cluster)
    );
}

/// `squall run examples/book/NAME` against the sandbox.
fn run(sb: &Sandbox, name: &str, ingress: Option<&str>, extra: &[&str]) -> Run {
    let mut cmd = sb.cmd();
    cmd.args(["run", &example(name), "--kubeconfig", "kube.yaml"])
        .args(extra);
    if let Some(host) = ingress {
        cmd.env("INGRESS_HOST", host);
    }
    Run::from(cmd.output().unwrap())
}

/// The chapter-3 go-demo-8 Deployment (`examples/go-demo-8/app/deployment.yaml`,
/// one replica) as JSON.
fn api_deployment() -> Value {
    let labels = json!({"app": "go-demo-8"});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "go-demo-8", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {"app": "go-demo-8", "release": "primary"}},
                "spec": {"containers": [{
                    "name": "go-demo-8", "image": "vfarcic/go-demo-8:0.0.1",
                    "env": [{"name": "DB", "value": "go-demo-8-db"}, {"name": "VERSION", "value": "0.0.1"}],
                    "ports": [{"containerPort": 8080}],
                }]},
            },
        },
    })
}

/// `examples/go-demo-8/namespace.yaml` as JSON.
fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "go-demo-8"}})
}

/// `examples/go-demo-8/health/hpa.yaml` as JSON.
fn hpa() -> Value {
    let metric = |name: &str| json!({"type": "Resource", "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": 80}}});
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "go-demo-8"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "go-demo-8"},
            "minReplicas": 2, "maxReplicas": 6,
            "metrics": [metric("cpu"), metric("memory")],
        },
    })
}

/// The chapter-4 scenario without its HPA, the API scaled to one replica
/// (`kubectl delete hpa go-demo-8`, `kubectl scale --replicas 1`).
fn one_replica(cluster: &Cluster) {
    delete(
        cluster,
        "/apis/autoscaling/v2/namespaces/go-demo-8/horizontalpodautoscalers/go-demo-8",
    );
    merge_patch(
        cluster,
        &format!("{APPS}/deployments/go-demo-8"),
        &json!({"spec": {"replicas": 1}}),
    );
    wait_for_ready_pods(cluster, 1);
}

#[test]
fn terminate_pod_pause_deviates_once_the_pod_is_gone() {
    let _serial = serial();
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    cluster.create_pod();
    wait_for_ready_pods(&cluster, 1);
    run(&sb, "terminate-pod-pause.yaml", None, &[])
        .code(1)
        .has("Action: terminate-pod")
        .has("Pausing after activity for 10s...")
        .has("CRITICAL] Steady state probe 'pod-exists' is not in the given tolerance so failing this experiment")
        .has("Experiment ended with status: deviated")
        .has("The steady-state has deviated, a weakness may have been discovered");
    assert!(api_pods(&cluster).is_empty(), "a bare pod is not recreated");
}

/// The sandbox does not crash-loop go-demo-8 without its database (see
/// squall-sim's README), so the pod is made unready the other way the
/// kubelet reports it: its node stops being Ready. The probes see what the
/// book shows: a Running pod whose Ready condition is False.
#[test]
fn terminate_pod_phase_fails_on_the_ready_condition_when_the_pod_is_not_ready() {
    let _serial = serial();
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    post(&cluster, "/api/v1/namespaces", &namespace());
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "go-demo-8", "labels": {"app": "go-demo-8"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": "node-1"},
            "containers": [{"name": "go-demo-8", "image": "vfarcic/go-demo-8:0.0.1",
                            "env": [{"name": "DB", "value": "go-demo-8-db"}]}],
        },
    });
    post(&cluster, &format!("{NS}/pods"), &pod);
    wait_for_ready_pods(&cluster, 1);
    let down = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletStopped"}]}});
    merge_patch(&cluster, "/api/v1/nodes/node-1/status", &down);
    assert!(
        wait_until(30, || api_pods(&cluster) == [false]),
        "the pod never became unready"
    );
    run(&sb, "terminate-pod-phase.yaml", None, &[])
        .code(1)
        .has("Probe: pod-in-phase")
        .has("ERROR]   => failed: pod go-demo-8 does not match the following given condition: {'type': 'Ready', 'status': 'True'}")
        .has("WARNING] Probe terminated unexpectedly, so its tolerance could not be validated")
        .has("CRITICAL] Steady state probe 'pod-in-conditions' is not in the given tolerance so failing this experiment")
        .has("Experiment ended with status: failed")
        .lacks("Action: terminate-pod");
    assert_eq!(api_pods(&cluster), [false], "nothing was terminated");
}

#[test]
fn terminate_pod_phase_deviates_for_a_bare_pod_and_completes_for_a_deployment() {
    let _serial = serial();
    let sb = Sandbox::new();
    let (cluster, _ingress) = demo_cluster(&sb);
    // Chapter 3 with the database: the API as a bare Pod.
    delete(
        &cluster,
        "/apis/autoscaling/v2/namespaces/go-demo-8/horizontalpodautoscalers/go-demo-8",
    );
    delete(&cluster, &format!("{APPS}/deployments/go-demo-8"));
    assert!(
        wait_until(60, || api_pods(&cluster).is_empty()),
        "{:?}",
        api_pods(&cluster)
    );
    cluster.create_pod();
    wait_for_ready_pods(&cluster, 1);
    run(&sb, "terminate-pod-phase.yaml", None, &[])
        .code(1)
        .has("Probe: pod-in-conditions")
        .has("Steady state hypothesis is met!")
        .has("Action: terminate-pod")
        .has("Pausing after activity for 10s...")
        .has("is not in the given tolerance so failing this experiment")
        .has("Experiment ended with status: deviated");
    // Then as a Deployment: the pod comes back within the pause.
    assert!(wait_until(30, || api_pods(&cluster).is_empty()));
    post(&cluster, &format!("{APPS}/deployments"), &api_deployment());
    wait_for_ready_pods(&cluster, 1);
    let done = run(&sb, "terminate-pod-phase.yaml", None, &[]);
    done.code(0)
        .has("Action: terminate-pod")
        .lacks("=> failed")
        .has("Experiment ended with status: completed");
    assert_eq!(
        done.stderr
            .matches("Steady state hypothesis is met!")
            .count(),
        2
    );
}

#[test]
fn health_deviates_without_a_pause_and_completes_with_one() {
    let _serial = serial();
    let sb = Sandbox::new();
    let (cluster, _ingress) = demo_cluster(&sb);
    // The ReplicaSet replaces the deleted pod at once (as a real controller
    // does, within milliseconds), so the after-probe sees it Pending.
    wait_for_ready_pods(&cluster, 2);
    run(&sb, "health.yaml", None, &[])
        .code(1)
        .has("function is DEPRECATED")
        .has("Action: terminate-app-pod")
        .has("ERROR]   => failed: the system is unhealthy")
        .has("CRITICAL] Steady state probe 'all-apps-are-healthy' is not in the given tolerance so failing this experiment")
        .has("Experiment ended with status: deviated");
    wait_for_ready_pods(&cluster, 2);
    let done = run(&sb, "health-pause.yaml", None, &[]);
    done.code(0)
        .has("Pausing after activity for 10s...")
        .has("Experiment ended with status: completed");
    assert_eq!(
        done.stderr
            .matches("Steady state hypothesis is met!")
            .count(),
        2
    );
}

#[test]
fn health_http_deviates_with_one_replica_and_completes_with_the_hpa() {
    let _serial = serial();
    let sb = Sandbox::new();
    let (cluster, ingress) = demo_cluster(&sb);
    one_replica(&cluster);
    run(&sb, "health-http.yaml", Some(&ingress), &[])
        .code(1)
        .has("Pausing after activity for 2s...")
        .has("CRITICAL] Steady state probe 'app-responds-to-requests' is not in the given tolerance so failing this experiment")
        .has("Experiment ended with status: deviated");
    wait_for_ready_pods(&cluster, 1);
    post(
        &cluster,
        "/apis/autoscaling/v2/namespaces/go-demo-8/horizontalpodautoscalers",
        &hpa(),
    );
    wait_for_ready_pods(&cluster, 2);
    run(&sb, "health-http.yaml", Some(&ingress), &[])
        .code(0)
        .has("Action: terminate-app-pod")
        .has("Experiment ended with status: completed");
}

#[test]
fn a_dry_run_names_the_pod_it_would_terminate_and_leaves_it() {
    let _serial = serial();
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    cluster.create_pod();
    let dry = run(&sb, "terminate-pod.yaml", None, &["--dry"]);
    dry.code(0)
        .has("Action: terminate-pod")
        .has("dry run: would terminate pod go-demo-8/go-demo-8")
        .has("Experiment ended with status: completed");
    assert!(
        !cluster.pod_is_gone_or_terminating(),
        "the pod is still there"
    );
    let plan = &sb.journal()["run"][0]["output"];
    assert_eq!(plan["dry"], true);
    assert_eq!(plan["targets"], json!(["pod/go-demo-8/go-demo-8"]));
    assert!(
        plan["seed"].is_u64(),
        "the random pick's seed is in the journal: {plan}"
    );
}

fn replicas(cluster: &Cluster) -> i64 {
    let d = ok(&cluster.request("GET", &format!("{APPS}/deployments/go-demo-8"), ""));
    d["spec"]["replicas"].as_i64().unwrap()
}

#[test]
fn a_scale_killed_mid_experiment_is_undone_by_recover() {
    let _serial = serial();
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    post(&cluster, "/api/v1/namespaces", &namespace());
    let mut deployment = api_deployment();
    deployment["spec"]["replicas"] = json!(2);
    post(&cluster, &format!("{APPS}/deployments"), &deployment);
    let exp = sb.write(
        "scale.yaml",
        r"title: Scale down and hold
description: Killed during the pause.
method:
  - {type: action, name: scale-down, pauses: {after: 600}, provider: {type: python, module: chaosk8s.deployment.actions, func: scale_deployment, arguments: {name: go-demo-8, replicas: 1, ns: go-demo-8}}}
",
    );
    let mut child = common::cluster::run_until_paused(&sb, &exp);
    assert_eq!(replicas(&cluster), 1);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(replicas(&cluster), 1, "nothing rolled back a killed run");
    sb.run(&["recover"]).code(0).has("Undo:");
    assert_eq!(replicas(&cluster), 2);
    sb.run(&["recover"]).code(0).has("Nothing to recover");
}

#[test]
fn a_scaled_deployment_is_scaled_back_by_the_rollback_or_by_recover() {
    let _serial = serial();
    let sb = Sandbox::new();
    let cluster = Cluster::start(&sb);
    post(&cluster, "/api/v1/namespaces", &namespace());
    let mut deployment = api_deployment();
    deployment["spec"]["replicas"] = json!(2);
    post(&cluster, &format!("{APPS}/deployments"), &deployment);
    let exp = sb.write(
        "scale.yaml",
        r"title: What happens with one replica fewer?
description: Scale down, then back in the rollback.
method:
  - {type: action, name: scale-down, provider: {type: python, module: chaosk8s.deployment.actions, func: scale_deployment, arguments: {name: go-demo-8, replicas: 1, ns: go-demo-8}}}
rollbacks:
  - {type: action, name: scale-back, provider: {type: python, module: chaosk8s.deployment.actions, func: scale_deployment, arguments: {name: go-demo-8, replicas: 2, ns: go-demo-8}}}
",
    );
    let exp = exp.to_str().unwrap();
    sb.run(&["run", exp, "--kubeconfig", "kube.yaml"])
        .code(0)
        .has("Rollback: scale-back")
        .lacks("still pending undo");
    assert_eq!(replicas(&cluster), 2);
    // Without rollbacks the ledger still knows how to scale it back.
    sb.run(&[
        "run",
        exp,
        "--kubeconfig",
        "kube.yaml",
        "--rollback-strategy",
        "never",
    ])
    .code(0)
    .has("still pending undo");
    assert_eq!(replicas(&cluster), 1);
    sb.run(&["recover"]).code(0).has("Undo:");
    assert_eq!(replicas(&cluster), 2);
    sb.run(&["recover"]).code(0).has("Nothing to recover");
}
