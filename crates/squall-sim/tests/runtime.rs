//! The process runtime: host-network pods of a configured image run as real
//! processes, with a kubelet's lifecycle (Running, Succeeded/Failed with the
//! exit code, SIGTERM on graceful delete, removal once the process is gone),
//! their output as the pod log, and hostPath volumes as per-node directories;
//! pods on a node without a network namespace do not run; shutdown gives the
//! processes SIGTERM; capabilities are applied with setpriv.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::poll;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::json;
use squall_sim::runtime::ProcessRuntime;
use squall_sim::{Sim, SimOptions};

/// A simulator running `shell:1` pods as `/bin/sh`; with `host_nodes`, in
/// its own network namespace (the scripts are harmless).
fn sim_with(root: &std::path::Path, host_nodes: bool) -> Sim {
    Sim::start(SimOptions {
        nodes: 2,
        runtime: Some(ProcessRuntime {
            images: BTreeMap::from([("shell:1".to_string(), "/bin/sh".into())]),
            netns: BTreeMap::new(),
            host_root: root.to_path_buf(),
            host_nodes,
            fail_pull: ["missing:1".to_string()].into(),
        }),
        ..SimOptions::default()
    })
}

fn sim(root: &std::path::Path) -> Sim {
    sim_with(root, true)
}

/// A host-network pod on node-1 running `sh -c SCRIPT sh /state/FILE`
/// (the script sees the path as `$1`), with a hostPath volume `/var/lib/x`
/// mounted at `/state`.
fn pod(name: &str, script: &str, host_network: bool) -> Pod {
    serde_json::from_value(manifest(name, script, host_network)).unwrap()
}

fn manifest(name: &str, script: &str, host_network: bool) -> serde_json::Value {
    json!({
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
    })
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

/// A simulator running pod `agent`: a process that writes "got TERM" to
/// its hostPath file when it gets SIGTERM, once it has started.
async fn running_agent(root: &std::path::Path) -> (Sim, Api<Pod>) {
    let sim = sim(root);
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
    (sim, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_delete_sends_sigterm_and_the_pod_goes_when_the_process_does() {
    let root = tempfile::tempdir().unwrap();
    let (_sim, api) = running_agent(root.path()).await;
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

/// `--fail-pull missing:1`: its pod (host network or not) stays Pending
/// with the container waiting on `ErrImagePull`, runs nothing, and goes at
/// once when deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_image_cannot_be_pulled_waits_with_err_image_pull() {
    let root = tempfile::tempdir().unwrap();
    let sim = sim(root.path());
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    for (name, host) in [("pull-host", true), ("pull-pod", false)] {
        let mut m = manifest(name, "echo ran > \"$1\"", host);
        m["spec"]["containers"][0]["image"] = json!("missing:1");
        let pod: Pod = serde_json::from_value(m).unwrap();
        api.create(&PostParams::default(), &pod).await.unwrap();
        let reason = poll("ErrImagePull", 250, Duration::from_millis(20), || async {
            let p = api.get(name).await.ok()?;
            let s = p.status?;
            let w = s.container_statuses?[0].state.clone()?.waiting?;
            (s.phase.as_deref() == Some("Pending")).then_some(w.reason?)
        })
        .await;
        assert_eq!(reason, "ErrImagePull");
        api.delete(name, &DeleteParams::default()).await.unwrap();
        poll("the pod to go", 250, Duration::from_millis(20), || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    assert!(
        !root.path().join("node-1/var/lib/x/file").exists(),
        "nothing ran"
    );
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

async fn until_finished(api: &Api<Pod>, name: &str) -> Pod {
    poll(
        "the pod to finish",
        750,
        Duration::from_millis(20),
        || async {
            let pod = api.get(name).await.ok()?;
            let phase = pod.status.as_ref()?.phase.clone()?;
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(pod)
        },
    )
    .await
}

fn terminated(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    let statuses = pod.status.clone().unwrap().container_statuses.unwrap();
    statuses[0].state.clone().unwrap().terminated.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_on_a_node_without_a_network_namespace_fails_without_running() {
    let root = tempfile::tempdir().unwrap();
    let sim = sim_with(root.path(), false);
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    api.create(
        &PostParams::default(),
        &pod("flush", "echo ran > \"$1\"", true),
    )
    .await
    .unwrap();
    let got = until_finished(&api, "flush").await;
    assert_eq!(
        got.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    let state = terminated(&got);
    assert_ne!(state.exit_code, 0);
    assert_eq!(state.reason.as_deref(), Some("NoNodeNamespace"));
    let log = api.logs("flush", &LogParams::default()).await.unwrap();
    assert!(log.contains("node-1 has no network namespace"), "{log}");
    assert!(!root.path().join("node-1").exists(), "the process ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_running_processes_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let (sim, _api) = running_agent(root.path()).await;
    sim.shutdown(Duration::from_secs(10)).await;
    let said = std::fs::read_to_string(root.path().join("node-1/var/lib/x/file")).unwrap();
    assert_eq!(said, "got TERM\n", "the process was not asked politely");
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_ends_with_its_process_though_a_descendant_holds_its_output() {
    let root = tempfile::tempdir().unwrap();
    let sim = sim(root.path());
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    // One sleep stays in the process group, one leaves it (setsid; the
    // script waits until it has); both hold stdout and stderr.
    let script = "sleep 60 & echo $! > \"$1\"; \
        setsid sh -c 'echo $$ >> \"$1\"; exec sleep 60' sh \"$1\" & \
        while [ $(wc -l < \"$1\") -lt 2 ]; do sleep 0.01; done; echo bye; exit 4";
    api.create(&PostParams::default(), &pod("job", script, true))
        .await
        .unwrap();
    let got = until_finished(&api, "job").await;
    let pids = std::fs::read_to_string(root.path().join("node-1/var/lib/x/file")).unwrap();
    let pids: Vec<&str> = pids.lines().collect();
    // The sleep outside the group is ours to end.
    let _ = std::process::Command::new("kill").arg(pids[1]).status();
    assert_eq!(terminated(&got).exit_code, 4);
    let log = api.logs("job", &LogParams::default()).await.unwrap();
    assert_eq!(log, "bye\n");
    // The rest of the group went with the process, as with a cgroup.
    poll(
        "the group's sleep to be killed",
        250,
        Duration::from_millis(20),
        || async { gone(pids[0]).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_paths_are_rewritten_in_flag_values_and_environment() {
    let root = tempfile::tempdir().unwrap();
    let sim = sim(root.path());
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    let script = "echo one > \"${1#--out=}\"; echo two > \"$OUT\"; test -f \"$LOCK\"";
    let mut m = manifest("paths", script, true);
    let c = &mut m["spec"]["containers"][0];
    c["args"] = json!(["-c", script, "sh", "--out=/state/one"]);
    c["env"] = json!([
        {"name": "OUT", "value": "/state/two"},
        {"name": "LOCK", "value": "/run/x.lock"}
    ]);
    c["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "lock", "mountPath": "/run/x.lock"}));
    m["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "lock", "hostPath": {"path": "/run/x.lock", "type": "FileOrCreate"}}));
    api.create(&PostParams::default(), &serde_json::from_value(m).unwrap())
        .await
        .unwrap();
    let got = until_finished(&api, "paths").await;
    let log = api.logs("paths", &LogParams::default()).await.unwrap();
    assert_eq!(terminated(&got).exit_code, 0, "{log}");
    let node = root.path().join("node-1");
    let read = |p: &str| std::fs::read_to_string(node.join(p)).unwrap();
    assert_eq!(read("var/lib/x/one"), "one\n");
    assert_eq!(read("var/lib/x/two"), "two\n");
    assert_eq!(read("run/x.lock"), "");
}

/// Whether this test runs as root with setpriv; prints why not.
fn root_with_setpriv() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        eprintln!("skipped: not root (setpriv cannot limit capabilities)");
        return false;
    }
    let setpriv = std::process::Command::new("setpriv")
        .arg("--help")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !setpriv {
        eprintln!("skipped: setpriv (util-linux) is not installed");
    }
    setpriv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_gets_exactly_the_capabilities_of_its_security_context() {
    if !root_with_setpriv() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let sim = sim(root.path());
    let api: Api<Pod> = Api::default_namespaced(kube::Client::new(sim.clone(), "default"));
    let mut m = manifest("caps", "grep CapEff /proc/self/status", true);
    m["spec"]["containers"][0]["securityContext"] = json!({
        "privileged": false,
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    });
    api.create(&PostParams::default(), &serde_json::from_value(m).unwrap())
        .await
        .unwrap();
    let got = until_finished(&api, "caps").await;
    let log = api.logs("caps", &LogParams::default()).await.unwrap();
    assert_eq!(terminated(&got).exit_code, 0, "{log}");
    // CAP_NET_ADMIN is bit 12.
    assert_eq!(log, "CapEff:\t0000000000001000\n");
}
