//! Flush and recovery on a real kernel. Each test builds its own lab
//! (client, node and two pod namespaces; see `lab/mod.rs`) and proves one
//! claim end to end: flushing the node's nat table breaks the NodePort and
//! restoring the snapshot repairs it with a clean diff; restore is
//! idempotent; the TTL watchdog restores by itself; the kube-chains and
//! canary modes remove exactly what they promise; and stale detection names
//! an endpoint that moved while the rules stayed put. Skips (with the
//! reason) when not root or the tools are missing.

mod lab;

use std::sync::Arc;
use std::time::Duration;

use squall_dataplane::endpointslice::parse_endpoint_slices;
use squall_dataplane::flush::{FlushMode, apply_flush, prepare_flush};
use squall_dataplane::inspect::{ProxyMode, inspect_node};
use squall_dataplane::parse::parse_iptables;
use squall_dataplane::restore::{diff_live, restore_from_undo, restore_snapshot};
use squall_dataplane::ruleset::parse_save;
use squall_dataplane::runner::CommandRunner;
use squall_dataplane::snapshot::{
    IptablesConfig, Snapshot, detect_backend, detect_kube_backend, take_snapshot,
};
use squall_dataplane::stale::{FindingKind, detect_stale};
use squall_dataplane::watchdog::{TtlWatchdog, WatchdogOutcome};

use lab::Lab;

fn assert_serves_both_pods(lab: &Lab) {
    let (seen, failures) = lab.probe_node_port(30);
    assert_eq!(failures, 0, "NodePort must answer every request");
    assert_eq!(
        seen,
        ["pod1", "pod2"],
        "statistic rule must spread load over both pods"
    );
}

fn assert_node_port_down(lab: &Lab) {
    let (seen, failures) = lab.probe_node_port(3);
    assert!(seen.is_empty(), "NodePort still answered from {seen:?}");
    assert_eq!(failures, 3);
}

/// Find kube-proxy's backend like iptables-wrapper does and use that
/// backend's explicit binaries (`iptables-nft-save`, …) from then on.
async fn kube_backend_config<R: CommandRunner>(runner: &R) -> IptablesConfig {
    let (default_backend, _) = detect_backend(runner, &Lab::iptables_config())
        .await
        .expect("backend");
    let kube_backend = detect_kube_backend(runner).await;
    assert_eq!(
        kube_backend,
        Some(default_backend),
        "rules were installed via the default"
    );
    IptablesConfig {
        backend: kube_backend,
        ..Lab::iptables_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_flush_breaks_node_port_and_restore_recovers_idempotently() {
    let lab = lab_or_skip!();
    let runner = lab.node_runner();
    let cfg = kube_backend_config(&runner).await;
    assert_serves_both_pods(&lab);
    assert!(
        lab.get(lab::CLUSTER_IP, 80).is_some(),
        "ClusterIP works from the client via the node"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let snap_path = dir.path().join("snapshot.json");
    let prepared = prepare_flush(&runner, &cfg, FlushMode::Nat, &snap_path)
        .await
        .expect("prepare");
    assert!(
        snap_path.exists(),
        "undo snapshot persisted before the flush"
    );
    let on_disk = Snapshot::load(&snap_path).await.expect("load");
    assert!(on_disk.tables["nat"].contains("KUBE-SVC-"));
    assert_serves_both_pods(&lab); // prepare changed nothing

    apply_flush(&runner, &prepared).await.expect("flush");
    let flushed = parse_save(&lab.nat_dump());
    assert!(
        flushed["nat"].rules.is_empty(),
        "nat rules flushed (chains stay declared)"
    );
    assert_node_port_down(&lab);
    let diff = diff_live(&runner, &cfg, &on_disk).await.expect("diff");
    assert!(!diff.is_clean());
    assert!(
        diff.rule_changes() >= 10,
        "every kube rule reported: {diff:?}"
    );

    restore_from_undo(&runner, &cfg, &prepared.undo)
        .await
        .expect("restore");
    assert_serves_both_pods(&lab);
    assert!(
        diff_live(&runner, &cfg, &on_disk)
            .await
            .expect("diff")
            .is_clean()
    );

    let first = parse_save(&lab.nat_dump());
    restore_snapshot(&runner, &cfg, &on_disk)
        .await
        .expect("restore again");
    assert_eq!(
        parse_save(&lab.nat_dump()),
        first,
        "restoring twice gives the same rules"
    );
    assert!(
        diff_live(&runner, &cfg, &on_disk)
            .await
            .expect("diff")
            .is_clean()
    );
    assert_serves_both_pods(&lab);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_watchdog_restores_by_itself() {
    let lab = lab_or_skip!();
    let runner = Arc::new(lab.node_runner());
    let cfg = Lab::iptables_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let prepared = prepare_flush(&*runner, &cfg, FlushMode::Nat, &dir.path().join("s.json"))
        .await
        .expect("prepare");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let dog = TtlWatchdog::spawn(
        runner.clone(),
        cfg.clone(),
        prepared.snapshot.clone(),
        deadline,
    );
    apply_flush(&*runner, &prepared).await.expect("flush");
    assert_node_port_down(&lab);
    let outcome = tokio::time::timeout(Duration::from_secs(30), dog.wait())
        .await
        .expect("watchdog finishes");
    assert!(
        matches!(outcome, WatchdogOutcome::Restored(_)),
        "{outcome:?}"
    );
    assert_serves_both_pods(&lab);
    assert!(
        diff_live(&*runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_chains_and_canary_modes_remove_what_they_promise() {
    let lab = lab_or_skip!();
    let runner = lab.node_runner();
    let cfg = Lab::iptables_config();
    let dir = tempfile::tempdir().expect("tempdir");

    let prepared = prepare_flush(
        &runner,
        &cfg,
        FlushMode::KubeChains,
        &dir.path().join("k.json"),
    )
    .await
    .expect("prepare kube-chains");
    apply_flush(&runner, &prepared).await.expect("kube-chains");
    let nat = parse_save(&lab.nat_dump());
    let nat = nat.get("nat").expect("nat table");
    assert!(
        nat.chains.keys().all(|c| !c.starts_with("KUBE-")),
        "{nat:?}"
    );
    assert!(
        nat.rules.is_empty(),
        "jumps into KUBE-* removed too: {:?}",
        nat.rules
    );
    assert_node_port_down(&lab);
    restore_snapshot(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("restore");
    assert_serves_both_pods(&lab);

    let prepared = prepare_flush(&runner, &cfg, FlushMode::Canary, &dir.path().join("c.json"))
        .await
        .expect("prepare canary");
    let report = apply_flush(&runner, &prepared).await.expect("canary");
    assert_eq!(
        report.commands.len(),
        6,
        "mangle, nat and filter canaries: {report:?}"
    );
    let mangle = lab
        .exec(&lab.node, &["iptables-save", "-t", "mangle"])
        .expect("mangle");
    assert!(!mangle.contains("KUBE-PROXY-CANARY"));
    assert_serves_both_pods(&lab); // only the canary went; service rules intact
    let diff = diff_live(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("diff");
    assert_eq!(
        diff.tables.len(),
        3,
        "canary missing in three tables: {diff:?}"
    );
    restore_snapshot(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("restore");
    assert!(
        diff_live(&runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean()
    );
}

fn slices_json(ips: &[&str]) -> String {
    let eps: Vec<String> = ips
        .iter()
        .map(|ip| format!(r#"{{"addresses":["{ip}"],"conditions":{{"ready":true}}}}"#))
        .collect();
    format!(
        r#"{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSliceList","items":[{{
        "metadata":{{"name":"web-abc","namespace":"lab","labels":{{"kubernetes.io/service-name":"web"}}}},
        "addressType":"IPv4","endpoints":[{}],"ports":[{{"name":"http","port":8080,"protocol":"TCP"}}]}}]}}"#,
        eps.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_detection_names_an_endpoint_that_moved() {
    let lab = lab_or_skip!();
    let runner = lab.node_runner();
    let inspected = inspect_node(&runner, &Lab::iptables_config())
        .await
        .expect("inspect");
    assert_eq!(inspected.mode, ProxyMode::Iptables);
    let before = inspected.map;
    let web = &before.services[0];
    assert_eq!(
        web.name.as_ref().map(ToString::to_string).as_deref(),
        Some(lab::SERVICE)
    );
    assert_eq!(web.cluster_ip.as_deref(), Some(lab::CLUSTER_IP));
    assert_eq!(web.node_ports, [lab::NODE_PORT]);
    let in_sync =
        parse_endpoint_slices(&slices_json(&["10.240.1.2", "10.240.2.2"])).expect("slices");
    assert!(detect_stale(&before, &in_sync).is_clean());

    // pod2 is "rescheduled": same pod, new address; kube-proxy never ran.
    let pod2 = lab.pods[1].clone();
    lab.exec(
        &pod2,
        &["ip", "addr", "replace", "10.240.2.3/24", "dev", "eth0"],
    )
    .expect("add new ip");
    lab.exec(
        &pod2,
        &["ip", "addr", "del", "10.240.2.2/24", "dev", "eth0"],
    )
    .expect("drop old ip");
    let moved = parse_endpoint_slices(&slices_json(&["10.240.1.2", "10.240.2.3"])).expect("slices");

    let snap = take_snapshot(&runner, &Lab::iptables_config())
        .await
        .expect("snapshot");
    let rules = parse_iptables(&snap.tables["nat"]);
    let report = detect_stale(&rules, &moved);
    let found: Vec<(FindingKind, &str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.kind, f.service.as_str(), f.endpoint.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (FindingKind::Gone, lab::SERVICE, "10.240.2.2:8080"),
            (FindingKind::Missing, lab::SERVICE, "10.240.2.3:8080"),
        ]
    );
    // And the stale rule really blackholes part of the traffic.
    let (_, failures) = lab.probe_node_port(20);
    assert!(
        failures > 0,
        "half the new connections go to the vanished address"
    );
}

#[test]
fn lab_guard_deletes_its_namespaces_even_when_a_test_panics() {
    let names = std::sync::Mutex::new(Vec::<String>::new());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = match Lab::start() {
            Ok(lab) => lab,
            Err(lab::Skip(reason)) => {
                lab::report_skip("real-kernel lab unavailable", &reason);
                return false;
            }
        };
        let mut n = names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        n.extend([
            lab.client.clone(),
            lab.node.clone(),
            lab.pods[0].clone(),
            lab.pods[1].clone(),
        ]);
        drop(n);
        panic!("simulated test failure while the lab is up");
    }));
    if matches!(result, Ok(false)) {
        return; // skipped
    }
    assert!(result.is_err(), "the closure panicked");
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let names = names
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(names.len(), 4);
    for ns in &names {
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns)),
            "{ns} left behind"
        );
    }
}
