//! Seed 000's own command on a real kernel: `iptables -F` (squall's
//! `filter` flush) on a Docker-style lab node — FORWARD policy DROP and
//! kube-proxy's filter chains (`lab/mod.rs`, `Lab::start_docker_style`).
//! Each test proves one claim: the filter flush kills the forwarded NodePort
//! traffic while the nat rules stay intact and the DROP policy stays; the
//! undo brings back rules *and* policies with a clean diff; the same flush
//! on a node whose FORWARD policy is ACCEPT does not interrupt traffic (so an
//! outage measured there would be a lie); `all-tables` flushes nat, filter
//! and mangle and comes back clean; a manual restore puts back a policy
//! someone changed after the flush. Skips (with the reason) when not root
//! or the tools are missing.

mod lab;

use squall_dataplane::flush::{FlushMode, apply_flush, prepare_flush, save_after};
use squall_dataplane::restore::{diff_live, restore_from_undo, restore_snapshot};
use squall_dataplane::ruleset::{SavedRuleset, parse_save};
use squall_dataplane::snapshot::take_snapshot;

use lab::{EMPTY_CLUSTER_IP, Lab, NODE_IP, NODE_PORT};

fn node_port_failures(lab: &Lab, attempts: usize) -> usize {
    lab.probe_node_port(attempts).1
}

/// Rules of `chain` in the node's filter table, as saved.
fn filter_rules(lab: &Lab, chain: &str) -> usize {
    parse_save(&lab.filter_dump())
        .get("filter")
        .map_or(0, |t| t.chain_rules(chain).count())
}

/// After `iptables -F` on the Docker-style node: no filter rule, the DROP
/// policy kept, the nat table untouched, and the forwarded NodePort dead.
fn assert_seed_000_state(lab: &Lab, nat_before: &SavedRuleset) {
    assert_eq!(filter_rules(lab, "FORWARD"), 0, "every filter rule is gone");
    assert_eq!(filter_rules(lab, "KUBE-FORWARD"), 0);
    assert_eq!(
        lab.policy("filter", "FORWARD"),
        "DROP",
        "`iptables -F` flushes rules, not policies"
    );
    assert_eq!(
        parse_save(&lab.nat_dump()),
        *nat_before,
        "the nat rules are untouched: the outage is the filter table's"
    );
    assert_eq!(
        node_port_failures(lab, 3),
        3,
        "with FORWARD DROP and no KUBE-FORWARD, the forwarded NodePort dies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_flush_drops_forwarded_traffic_and_the_undo_brings_rules_and_policy_back() {
    let lab = lab_or_skip!(Lab::start_docker_style());
    let runner = lab.node_runner();
    let cfg = Lab::iptables_config();
    assert_eq!(node_port_failures(&lab, 10), 0, "the NodePort is forwarded");
    assert!(
        lab.get(EMPTY_CLUSTER_IP, 80).is_none(),
        "KUBE-SERVICES rejects the Service without endpoints"
    );
    assert_eq!(lab.policy("filter", "FORWARD"), "DROP");
    let nat_before = parse_save(&lab.nat_dump());

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.snapshot.json");
    let prepared = prepare_flush(&runner, &cfg, FlushMode::Filter, &path)
        .await
        .expect("prepare");
    let report = apply_flush(&runner, &prepared).await.expect("flush");
    save_after(&runner, &cfg, &prepared).await.expect("after");
    assert_eq!(report.commands, ["iptables -w 5 -t filter -F"]);

    assert_seed_000_state(&lab, &nat_before);

    let (restored, subset) = restore_from_undo(&runner, &cfg, &prepared.undo)
        .await
        .expect("undo");
    assert_eq!(
        restored.tables,
        ["filter"],
        "only the flushed table goes back"
    );
    assert!(
        diff_live(&runner, &cfg, &subset)
            .await
            .expect("diff")
            .is_clean()
    );
    assert!(
        diff_live(&runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean(),
        "every table equals the snapshot, policies included"
    );
    assert_eq!(lab.policy("filter", "FORWARD"), "DROP");
    assert_eq!(filter_rules(&lab, "KUBE-FORWARD"), 3);
    assert_eq!(node_port_failures(&lab, 10), 0, "forwarding is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_accept_node_the_filter_flush_does_not_interrupt_the_node_port() {
    let lab = lab_or_skip!(Lab::start_docker_style());
    lab.exec(
        &lab.node,
        &["iptables", "-w", "5", "-P", "FORWARD", "ACCEPT"],
    )
    .expect("policy");
    let runner = lab.node_runner();
    let cfg = Lab::iptables_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let prepared = prepare_flush(&runner, &cfg, FlushMode::Filter, &dir.path().join("s.json"))
        .await
        .expect("prepare");
    apply_flush(&runner, &prepared).await.expect("flush");
    assert_eq!(filter_rules(&lab, "FORWARD"), 0);
    assert_eq!(
        node_port_failures(&lab, 10),
        0,
        "nat intact and FORWARD ACCEPT: `iptables -F` alone causes no outage here"
    );
    assert!(
        lab.get(EMPTY_CLUSTER_IP, 80).is_none(),
        "still no answer from a Service without endpoints (nothing listens)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_tables_flushes_every_kube_proxy_table_and_comes_back_clean() {
    let lab = lab_or_skip!(Lab::start_docker_style());
    let runner = lab.node_runner();
    let cfg = Lab::iptables_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.snapshot.json");
    let prepared = prepare_flush(&runner, &cfg, FlushMode::AllTables, &path)
        .await
        .expect("prepare");
    apply_flush(&runner, &prepared).await.expect("flush");
    save_after(&runner, &cfg, &prepared).await.expect("after");
    let live = take_snapshot(&runner, &cfg).await.expect("live");
    for table in ["nat", "filter"] {
        let parsed = parse_save(&live.tables[table]);
        assert!(
            parsed[table].rules.is_empty(),
            "{table} still has rules: {}",
            live.tables[table]
        );
    }
    assert_eq!(lab.policy("filter", "FORWARD"), "DROP");
    assert_eq!(node_port_failures(&lab, 3), 3);
    let (restored, _) = restore_from_undo(&runner, &cfg, &prepared.undo)
        .await
        .expect("undo");
    assert_eq!(
        restored.tables,
        ["filter", "nat"],
        "mangle had no rules to lose"
    );
    assert!(
        diff_live(&runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean()
    );
    assert_eq!(node_port_failures(&lab, 10), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_restore_puts_back_a_policy_changed_after_the_flush() {
    let lab = lab_or_skip!(Lab::start_docker_style());
    let runner = lab.node_runner();
    let cfg = Lab::iptables_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.snapshot.json");
    let prepared = prepare_flush(&runner, &cfg, FlushMode::Filter, &path)
        .await
        .expect("prepare");
    apply_flush(&runner, &prepared).await.expect("flush");
    save_after(&runner, &cfg, &prepared).await.expect("after");
    // An operator "fixes" the node by opening FORWARD.
    lab.exec(
        &lab.node,
        &["iptables", "-w", "5", "-P", "FORWARD", "ACCEPT"],
    )
    .expect("policy");
    let diff = diff_live(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("diff");
    let filter = diff
        .tables
        .iter()
        .find(|t| t.table == "filter")
        .expect("filter differs");
    assert_eq!(
        filter.policy_changes,
        [("FORWARD".to_owned(), "DROP".to_owned(), "ACCEPT".to_owned())],
        "the diff names the changed policy"
    );
    // The undo leaves a table someone changed since the flush alone...
    let (undo, _) = restore_from_undo(&runner, &cfg, &prepared.undo)
        .await
        .expect("undo");
    assert_eq!(undo.superseded, ["filter"]);
    assert_eq!(lab.policy("filter", "FORWARD"), "ACCEPT");
    // ...and the explicit whole-snapshot restore puts it back exactly.
    restore_snapshot(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("restore");
    assert_eq!(lab.policy("filter", "FORWARD"), "DROP");
    assert!(
        diff_live(&runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean()
    );
    assert!(lab.get(NODE_IP, NODE_PORT).is_some());
}
