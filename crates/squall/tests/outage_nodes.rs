//! Seed 000's measurement through the cluster path: the sandbox plays a
//! one-node cluster whose node-1 is a Docker-style lab node (FORWARD policy
//! DROP, kube-proxy's filter chains; see the data-plane crate's lab), and
//! `squall run`'s `flush_rules` with `node: node-1` flushes its filter table
//! (`iptables -F`) through a helper pod running `squall agent` in that
//! namespace, while the availability monitor watches the NodePort from the
//! lab's client namespace. With a resync loop (every 2 s, as kube-proxy's
//! sync) the measured outage equals the time from the flush — as the agent
//! in the pod reports it — to the next resync, within ±(interval + 20 ms);
//! without it, the rollback (deleting the pod, then a restore pod) brings
//! back rules and the DROP policy with a clean diff.
//!
//! The sandbox and `squall run` both run inside the client namespace (the
//! monitor must reach the node there, and squall reaches the sandbox's API
//! on that namespace's loopback); the helper pods' processes enter the node
//! namespace. Skipped, with the reason, when not root or tools are missing.

mod common;
#[path = "../../squall-dataplane/tests/lab/mod.rs"]
mod lab;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{Run, Sandbox, wait_until};
use lab::{Lab, NODE_IP, NODE_PORT};

const IMAGE: &str = "registry.example/squall:test";
const INTERVAL_MS: u64 = 50;

/// `squall sandbox serve` inside the lab's client namespace, node-1 played
/// by the lab's node namespace; SIGTERM (then SIGKILL) on drop.
struct ClientCluster(Child);

impl ClientCluster {
    fn start(sb: &Sandbox, lab: &Lab) -> Self {
        let image = format!("{IMAGE}={}", env!("CARGO_BIN_EXE_squall"));
        let node = format!("node-1={}", lab.node);
        let hosts = sb.path("hosts");
        let child = in_client(sb, lab)
            .args(["--log-file", "sandbox.log", "sandbox", "serve"])
            .args(["--kubeconfig", "kube.yaml", "--nodes", "1"])
            .args(["--run-image", &image, "--node-netns", &node])
            .arg("--host-root")
            .arg(&hosts)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_until(20, || sb
            .read("kube.yaml")
            .contains("server: http://127.0.0.1:")));
        Self(child)
    }
}

impl Drop for ClientCluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        if !wait_until(15, || matches!(self.0.try_wait(), Ok(Some(_)))) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `squall …` in the lab's client namespace, in the sandbox directory.
fn in_client(sb: &Sandbox, lab: &Lab) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.client, env!("CARGO_BIN_EXE_squall")])
        .current_dir(sb.dir.path())
        .env("NO_COLOR", "1")
        .env("HOME", sb.dir.path());
    c
}

fn experiment(sb: &Sandbox, pause: f64) -> std::path::PathBuf {
    sb.write(
        "flush-node.yaml",
        &format!(
            r#"title: What happens when a node's filter rules are flushed (iptables -F)?
description: Seed 000, through a helper pod on a cluster node.
configuration: {{squall_agent_image: "{IMAGE}"}}
method:
  - type: probe
    name: nodeport-availability
    background: true
    provider:
      type: python
      module: squall.http.probes
      func: availability
      arguments: {{url: "http://{NODE_IP}:{NODE_PORT}/", interval_ms: {INTERVAL_MS}, timeout_ms: 500}}
  - type: action
    name: flush-filter-on-node-1
    provider: {{type: python, module: squall.dataplane.actions, func: flush_rules,
      arguments: {{mode: filter, node: node-1, ttl_secs: 120, timeout_secs: 30}}}}
    pauses: {{before: 0.5, after: {pause}}}
rollbacks:
  - type: action
    name: restore-rules
    provider: {{type: python, module: squall.dataplane.actions, func: restore_rules,
      arguments: {{node: node-1, timeout_secs: 30}}}}
"#
        ),
    )
}

fn run_experiment(sb: &Sandbox, lab: &Lab, exp: &std::path::Path) -> Run {
    let out = in_client(sb, lab)
        .arg("run")
        .arg(exp)
        .args(["--kubeconfig", "kube.yaml"])
        .output()
        .unwrap();
    Run::from(out)
}

/// Whole-table restores of the Docker-style node's rules every 2 s,
/// recording when each finished; stops when told (at most 30 syncs).
fn resync_loop(node: String, stop: Arc<AtomicBool>, syncs: Arc<Mutex<Vec<SystemTime>>>) {
    let rules = Lab::docker_node_rules();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(2));
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &node, "iptables-restore", "-w", "5"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        syncs.lock().unwrap().push(SystemTime::now());
    }
}

fn parse_time(stamp: &str) -> SystemTime {
    let out = Command::new("date")
        .args(["-u", "-d", stamp, "+%s.%N"])
        .output()
        .unwrap();
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
}

#[test]
fn through_a_helper_pod_the_measured_outage_is_the_time_to_the_next_resync() {
    let lab = match Lab::start_docker_style() {
        Ok(l) => l,
        Err(skip) => return lab::report_skip("outage through a cluster node", &skip.0),
    };
    let sb = Sandbox::new();
    let _cluster = ClientCluster::start(&sb, &lab);
    let exp = experiment(&sb, 3.0);
    let stop = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(Mutex::new(Vec::new()));
    let resync = {
        let (node, stop, syncs) = (lab.node.clone(), stop.clone(), syncs.clone());
        std::thread::spawn(move || resync_loop(node, stop, syncs))
    };
    let run = run_experiment(&sb, &lab, &exp);
    stop.store(true, Ordering::SeqCst);
    resync.join().unwrap();
    run.code(0).has("Action: flush-filter-on-node-1");
    let j = sb.journal();
    let monitor = &j["run"][0]["output"];
    let node = &j["run"][1]["output"]["nodes"][0];
    assert_eq!(node["node"], "node-1", "{}", j["run"][1]);
    let flushed_at = parse_time(node["flushed_at"].as_str().unwrap());
    let resynced_at = *syncs
        .lock()
        .unwrap()
        .iter()
        .find(|t| **t > flushed_at)
        .expect("a resync after the flush");
    let expected = resynced_at.duration_since(flushed_at).unwrap().as_millis() as i64;
    let outages = monitor["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "one outage: {monitor}");
    let measured = outages[0]["duration_ms"].as_i64().unwrap();
    let tolerance = INTERVAL_MS as i64 + 20;
    assert!(
        (measured - expected).abs() <= tolerance,
        "measured {measured} ms, expected {expected} ms ± {tolerance} ms: {monitor}"
    );
    println!("filter via helper pod: measured {measured} ms, flush to resync {expected} ms");
    // The resync rewrote the table: the rollback leaves it alone.
    assert_eq!(lab.policy("filter", "FORWARD"), "DROP");
    assert_eq!(lab.probe_node_port(4).1, 0);
}

#[test]
fn through_a_helper_pod_the_rollback_restores_rules_and_the_drop_policy() {
    let lab = match Lab::start_docker_style() {
        Ok(l) => l,
        Err(skip) => return lab::report_skip("rollback through a cluster node", &skip.0),
    };
    let sb = Sandbox::new();
    let _cluster = ClientCluster::start(&sb, &lab);
    let exp = experiment(&sb, 0.5);
    let run = run_experiment(&sb, &lab, &exp);
    run.code(0).has("Rollback: restore-rules");
    let j = sb.journal();
    let monitor = &j["run"][0]["output"];
    assert_eq!(
        monitor["outages"][0]["ongoing"], true,
        "no resync: down until the rollback: {monitor}"
    );
    assert_eq!(
        j["rollbacks"][0]["output"]["restored"],
        serde_json::json!(["node-1"])
    );
    let pod = j["run"][1]["output"]["nodes"][0]["pod"].as_str().unwrap();
    let snapshot = sb.path(&format!(
        "hosts/node-1/var/lib/squall/dataplane/{pod}.snapshot.json"
    ));
    let diff = sb.run(&[
        "agent",
        "dataplane",
        "--netns",
        &lab.node,
        "diff",
        "--from",
        snapshot.to_str().unwrap(),
    ]);
    diff.code(0);
    assert_eq!(lab.policy("filter", "FORWARD"), "DROP");
    assert_eq!(lab.probe_node_port(4).1, 0, "forwarded again");
}
