//! The process runtime: host-network pods of a configured image run as real
//! processes, with a kubelet's lifecycle (Running, Succeeded/Failed with the
//! exit code, SIGTERM on graceful delete, removal once the process is gone),
//! their output as the pod log, and hostPath volumes as per-node directories.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::poll;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::json;
use squall_sim::runtime::ProcessRuntime;
use squall_sim::{Sim, SimOptions};

fn sim(root: &std::path::Path) -> Sim {
    Sim::start(SimOptions {
        nodes: 2,
        runtime: Some(ProcessRuntime {
            images: BTreeMap::from([("shell:1".to_string(), "/bin/sh".into())]),
            netns: BTreeMap::new(),
            host_root: root.to_path_buf(),
        }),
        ..SimOptions::default()
    })
}

/// A host-network pod on node-1 running `sh -c SCRIPT sh /state/FILE`
/// (the script sees the path as `$1`), with a hostPath volume `/var/lib/x`
/// mounted at `/state`.
fn pod(name: &str, script: &str, host_network: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": "node-1",
            "hostNetwork": host_network,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "c", "image": "shell:1", "command": ["sh"], "args": ["-c", script, "sh", "/state/file"],
                "volumeMounts": [{"name": "state", "mountPath": "/state"}]
            }],
            "volumes": [{"name": "state", "hostPath": {"path": "/var/lib/x", "type": "DirectoryOrCreate"}}]
        }
    }))
    .unwrap()
}

async fn phase(api: &Api<Pod>, name: &str) -> Option<String> {
    api.get_opt(name)
        .await
        .unwrap()
        .and_then(|p| p.status?.phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_to_completion_with_its_exit_code_log_and_host_path() {
    let root = tempfile::tempdir().unwrap();
    let sim = sim(root.path());
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    let script = "echo hello; echo saved > \"$1\"; exit 3";
    api.create(&PostParams::default(), &pod("job", script, true))
        .await
        .unwrap();
    poll(
        "the pod to fail",
        250,
        Duration::from_millis(20),
        || async { (phase(&api, "job").await.as_deref() == Some("Failed")).then_some(()) },
    )
    .await;
    let got = api.get("job").await.unwrap();
    let state = got.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap();
    assert_eq!(state.terminated.unwrap().exit_code, 3);
    let log = api.logs("job", &LogParams::default()).await.unwrap();
    assert_eq!(log, "hello\n");
    let saved = root.path().join("node-1/var/lib/x/file");
    assert_eq!(std::fs::read_to_string(saved).unwrap(), "saved\n");
    // A finished pod is deleted at once.
    api.delete("job", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("job").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_delete_sends_sigterm_and_the_pod_goes_when_the_process_does() {
    let root = tempfile::tempdir().unwrap();
    let sim = sim(root.path());
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    let script = "trap 'echo got TERM > \"$1\"; exit 0' TERM; echo up; while :; do sleep 0.1; done";
    api.create(&PostParams::default(), &pod("agent", script, true))
        .await
        .unwrap();
    poll(
        "the process to start",
        250,
        Duration::from_millis(20),
        || async {
            let log = api.logs("agent", &LogParams::default()).await.ok()?;
            log.contains("up").then_some(())
        },
    )
    .await;
    assert_eq!(phase(&api, "agent").await.as_deref(), Some("Running"));
    api.delete("agent", &DeleteParams::default()).await.unwrap();
    // Terminating while the process handles SIGTERM, then gone.
    poll("the pod to go", 250, Duration::from_millis(20), || async {
        api.get_opt("agent").await.unwrap().is_none().then_some(())
    })
    .await;
    let said = std::fs::read_to_string(root.path().join("node-1/var/lib/x/file")).unwrap();
    assert_eq!(said, "got TERM\n", "the process was not asked politely");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_without_host_network_stay_simulated() {
    let root = tempfile::tempdir().unwrap();
    let sim = sim(root.path());
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    api.create(
        &PostParams::default(),
        &pod("web", "echo never; exit 1", false),
    )
    .await
    .unwrap();
    poll(
        "the simulated pod to run",
        250,
        Duration::from_millis(20),
        || async { (phase(&api, "web").await.as_deref() == Some("Running")).then_some(()) },
    )
    .await;
    let log = api.logs("web", &LogParams::default()).await.unwrap();
    assert!(log.starts_with("squall-sim: container c"), "{log}");
    assert!(!root.path().join("node-1/var/lib/x").exists());
}
