//! The seed's experiment on a real kernel: a lab node serves a NodePort
//! through kube-proxy-style rules; squall, running in the lab's client
//! namespace, watches the NodePort with the availability monitor while it
//! flushes the node's nat table. A resync loop re-applies the rules every
//! 2 s, as kube-proxy does every sync period, and the measured outage must
//! match the time from the flush to the next resync. Without the loop, the
//! rollback restores the rules and the diff against the snapshot is clean.
//!
//! The same twice for seed 000's literal command, `iptables -F` (squall's
//! `filter` flush), on a Docker-style lab node (FORWARD policy DROP): the
//! nat rules stay, the forwarded traffic dies until the resync, and the
//! rollback brings back rules and the DROP policy with a clean diff.
//!
//! Uses the data-plane crate's lab (network namespaces it creates and
//! deletes; only addresses inside them). Skipped, with the reason, when not
//! root or the tools are missing.

mod common;
#[path = "../../squall-dataplane/tests/lab/mod.rs"]
mod lab;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{Run, Sandbox};
use lab::{Lab, NODE_IP, NODE_PORT};

const INTERVAL_MS: u64 = 50;

fn experiment(sb: &Sandbox, lab: &Lab, mode: &str, pause: f64) -> std::path::PathBuf {
    sb.write(
        "flush.yaml",
        &format!(
            r#"title: What happens when a node's kube-proxy rules are flushed?
description: The learnk8s experiment, measured.
configuration: {{node: {node}}}
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
    name: flush-{mode}
    provider: {{type: python, module: squall.dataplane.actions, func: flush_rules, arguments: {{mode: {mode}, netns: "${{node}}"}}}}
    pauses: {{before: 0.5, after: {pause}}}
rollbacks:
  - type: action
    name: restore-rules
    provider: {{type: python, module: squall.dataplane.actions, func: restore_rules, arguments: {{netns: "${{node}}"}}}}
"#,
            node = lab.node
        ),
    )
}

/// Runs squall inside the lab's client namespace.
fn run_in_client(sb: &Sandbox, lab: &Lab, exp: &std::path::Path) -> Run {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.client,
            env!("CARGO_BIN_EXE_squall"),
            "run",
        ])
        .arg(exp)
        .current_dir(sb.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Run::from(out)
}

/// Re-applies the node's rules (`rules`: every table kube-proxy wrote)
/// every 2 s (a whole-table restore, as a full sync does), recording when
/// each sync finished. Stops when told, and after at most 30 syncs.
fn resync_loop(
    node: String,
    rules: String,
    stop: Arc<AtomicBool>,
    syncs: Arc<Mutex<Vec<SystemTime>>>,
) {
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(2));
        if stop.load(Ordering::SeqCst) {
            return;
        }
        restore_nat(&node, rules.as_bytes());
        syncs.lock().unwrap().push(SystemTime::now());
    }
}

/// Loads an `iptables-save` payload into the node's nat table, as a
/// kube-proxy sync does (a whole-table restore).
fn restore_nat(node: &str, payload: &[u8]) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", node, "iptables-restore", "-w", "5"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    assert!(child.wait().unwrap().success());
}

fn parse_time(stamp: &str) -> SystemTime {
    // 2026-11-23T13:44:42.111829+00:00 → seconds since the epoch.
    let out = Command::new("date")
        .args(["-u", "-d", stamp, "+%s.%N"])
        .output()
        .unwrap();
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
}

/// Runs the experiment with a resync loop applying `rules` every 2 s and
/// checks the monitor's one outage equals the time from the flush to the
/// next resync within ±(interval + 20 ms).
fn outage_equals_time_to_resync(lab: &Lab, mode: &str, rules: String) {
    let sb = Sandbox::new();
    let exp = experiment(&sb, lab, mode, 3.0);
    let stop = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(Mutex::new(Vec::new()));
    let resync = {
        let (node, stop, syncs) = (lab.node.clone(), stop.clone(), syncs.clone());
        std::thread::spawn(move || resync_loop(node, rules, stop, syncs))
    };
    let run = run_in_client(&sb, lab, &exp);
    stop.store(true, Ordering::SeqCst);
    resync.join().unwrap();
    run.code(0)
        .has(&format!("Action: flush-{mode}"))
        .has("Probe: nodeport-availability [in background]");
    let j = sb.journal();
    let monitor = &j["run"][0]["output"];
    let flushed_at = parse_time(j["run"][1]["output"]["flushed_at"].as_str().unwrap());
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
    assert!(monitor["failures"].as_u64().unwrap() > 0);
    // The report draws what the monitor measured.
    sb.run(&["--no-log-file", "report", "journal.json", "report.md"])
        .code(0);
    let md = sb.read("report.md");
    assert!(
        md.contains("### Availability: nodeport-availability"),
        "{md}"
    );
    assert!(md.contains(&format!("{}", monitor["requests"])), "{md}");
    assert!(md.contains("- outage 1: from "), "{md}");
    println!("{mode}: measured outage {measured} ms, flush to resync {expected} ms");
}

#[test]
fn measured_outage_is_the_time_to_the_next_resync() {
    let lab = match Lab::start() {
        Ok(l) => l,
        Err(skip) => return lab::report_skip("outage measurement", &skip.0),
    };
    outage_equals_time_to_resync(&lab, "nat", Lab::kube_proxy_rules());
}

#[test]
fn seed_000_filter_flush_outage_on_a_docker_node_is_the_time_to_the_next_resync() {
    let lab = match Lab::start_docker_style() {
        Ok(l) => l,
        Err(skip) => return lab::report_skip("filter outage measurement", &skip.0),
    };
    outage_equals_time_to_resync(&lab, "filter", Lab::docker_node_rules());
}

#[test]
fn without_resync_the_filter_rollback_restores_rules_and_the_drop_policy() {
    let lab = match Lab::start_docker_style() {
        Ok(l) => l,
        Err(skip) => return lab::report_skip("filter rollback", &skip.0),
    };
    let sb = Sandbox::new();
    let exp = experiment(&sb, &lab, "filter", 0.5);
    let run = run_in_client(&sb, &lab, &exp);
    run.code(0).has("Rollback: restore-rules");
    let j = sb.journal();
    let monitor = &j["run"][0]["output"];
    assert_eq!(monitor["outages"][0]["ongoing"], true, "{monitor}");
    assert_eq!(j["run"][1]["output"]["mode"], "filter");
    assert_eq!(j["rollbacks"][0]["output"]["restored"], true);
    let snapshot = j["run"][1]["output"]["snapshot"].as_str().unwrap();
    sb.run(&[
        "agent",
        "dataplane",
        "--netns",
        &lab.node,
        "diff",
        "--from",
        snapshot,
    ])
    .code(0);
    assert_eq!(lab.policy("filter", "FORWARD"), "DROP");
    assert_eq!(
        lab.probe_node_port(4).1,
        0,
        "the NodePort is forwarded again"
    );
}

#[test]
fn without_resync_the_rollback_restores_and_the_diff_is_clean() {
    let lab = match Lab::start() {
        Ok(l) => l,
        Err(skip) => return lab::report_skip("rollback restores", &skip.0),
    };
    let sb = Sandbox::new();
    let exp = experiment(&sb, &lab, "nat", 0.5);
    let run = run_in_client(&sb, &lab, &exp);
    run.code(0).has("Rollback: restore-rules");
    let j = sb.journal();
    let monitor = &j["run"][0]["output"];
    assert_eq!(
        monitor["outages"][0]["ongoing"], true,
        "nothing resynced during the method: {monitor}"
    );
    assert_eq!(j["rollbacks"][0]["output"]["restored"], true);
    let snapshot = j["run"][1]["output"]["snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    let diff = sb.run(&[
        "agent",
        "dataplane",
        "--netns",
        &lab.node,
        "diff",
        "--from",
        &snapshot,
    ]);
    diff.code(0);
    let (_, failures) = lab.probe_node_port(4);
    assert_eq!(failures, 0, "the NodePort answers again");
}

/// One accuracy sample: squall's monitor at `interval_ms` and a curl loop
/// once a second (the seeds' method) watch the NodePort while this thread
/// flushes the nat table and restores it exactly `outage` later.
fn accuracy_sample(lab: &Lab, interval_ms: u64, outage: Duration) -> (i64, i64, i64) {
    let sb = Sandbox::new();
    let exp = sb.write(
        "monitor.yaml",
        &format!(
            r#"title: monitor
description: accuracy
method:
  - type: probe
    name: watch
    provider:
      type: python
      module: squall.http.probes
      func: availability
      arguments: {{url: "http://{NODE_IP}:{NODE_PORT}/", interval_ms: {interval_ms}, timeout_ms: 500, duration_secs: 8}}
"#
        ),
    );
    let node = lab.node.clone();
    let fault = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let flush = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &node])
                .args(args)
                .status()
                .unwrap()
        };
        let saved = Command::new("ip")
            .args(["netns", "exec", &node, "iptables-save", "-t", "nat"])
            .output()
            .unwrap();
        let start = SystemTime::now();
        flush(&["iptables", "-w", "5", "-t", "nat", "-F"]);
        std::thread::sleep(outage);
        restore_nat(&node, &saved.stdout);
        SystemTime::now().duration_since(start).unwrap().as_millis() as i64
    });
    let curl = curl_loop(lab, 8);
    let run = run_in_client(&sb, lab, &exp);
    let actual = fault.join().unwrap();
    let curl_failures = curl.join().unwrap();
    run.code(0);
    let measured = sb.journal()["run"][0]["output"]["longest_outage_ms"]
        .as_i64()
        .unwrap();
    (actual, measured, curl_failures * 1000)
}

/// The seeds' method: one curl a second for `secs` seconds, in the
/// background; the thread returns how many failed.
fn curl_loop(lab: &Lab, secs: u64) -> std::thread::JoinHandle<i64> {
    let (client, url) = (lab.client.clone(), format!("http://{NODE_IP}:{NODE_PORT}/"));
    std::thread::spawn(move || {
        let mut failures = 0;
        for _ in 0..secs {
            let t = std::time::Instant::now();
            let ok = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &client,
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "0.5",
                    &url,
                ])
                .status()
                .is_ok_and(|s| s.success());
            failures += i64::from(!ok);
            std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
        }
        failures
    })
}

/// `cargo test -p squall --test outage -- --ignored --nocapture`: prints
/// the table in docs/performance.md. Not run by CI (it takes a minute).
#[test]
#[ignore = "benchmark: run explicitly"]
fn monitor_accuracy_table() {
    let lab = match Lab::start() {
        Ok(l) => l,
        Err(skip) => return lab::report_skip("monitor accuracy", &skip.0),
    };
    println!(
        "| interval | true outage (ms) | squall monitor (ms) | error (ms) | curl once a second (ms) | error (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    for interval in [10, 100, 1000] {
        for outage_ms in [1500u64, 2700] {
            let (actual, measured, curl) =
                accuracy_sample(&lab, interval, Duration::from_millis(outage_ms));
            println!(
                "| {interval} ms | {actual} | {measured} | {:+} | {curl} | {:+} |",
                measured - actual,
                curl - actual
            );
        }
    }
}
