//! IPv6 on a real kernel: the lab made dual-stack (IPv6 addresses only on
//! the lab's own veths, inside its namespaces; see `lab/ipv6.rs`), with
//! kube-proxy's `ip6tables` rules written through the legacy and through
//! the nf_tables backend. For each backend: an IPv6 flush breaks the IPv6
//! NodePort and leaves IPv4 alone, the undo puts back only `ip6:nat` with a
//! clean diff (policies included) and the IPv6 NodePort answers from both
//! pods again; stale-rule detection on the dual-stack Service names only the
//! IPv6 endpoint that moved. Skips (with the reason) when not root or the
//! tools are missing.

mod lab;

use squall_dataplane::endpointslice::parse_endpoint_slices;
use squall_dataplane::flush::{FlushMode, PreparedFlush, apply_flush, prepare_flush, save_after};
use squall_dataplane::inspect::inspect_node;
use squall_dataplane::restore::{diff_live, restore_from_undo};
use squall_dataplane::snapshot::{Backend, Family, IptablesConfig};
use squall_dataplane::stale::{FindingKind, detect_stale};

use lab::{Lab, NODE_IP, NODE_PORT};

fn config(backend: Backend, families: Vec<Family>) -> IptablesConfig {
    IptablesConfig {
        backend: Some(backend),
        families,
        ..Lab::iptables_config()
    }
}

async fn ipv6_flush_and_undo(backend: Backend) {
    let lab = lab_or_skip!(Lab::start_dual_stack(backend));
    let runner = lab.node_runner();
    let cfg = config(backend, vec![Family::Ipv6]);
    let (seen, failures) = lab.probe_node_port6(20);
    assert_eq!(
        (failures, seen.len()),
        (0, 2),
        "{backend}: both pods over IPv6"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.snapshot.json");
    let prepared = prepare_flush(&runner, &cfg, FlushMode::Nat, &path)
        .await
        .expect("prepare");
    assert!(prepared.snapshot.tables6.contains_key("nat"), "{backend}");
    let report = apply_flush(&runner, &prepared).await.expect("flush");
    save_after(&runner, &cfg, &prepared).await.expect("after");
    let flush6 = match backend {
        Backend::Legacy => "ip6tables-legacy -w 5 -t nat -F",
        Backend::Nft => "ip6tables-nft -w 5 -t nat -F",
    };
    assert_eq!(report.commands, [flush6]);
    assert_eq!(
        lab.probe_node_port6(3).1,
        3,
        "{backend}: IPv6 NodePort down"
    );
    assert!(
        lab.get(NODE_IP, NODE_PORT).is_some(),
        "{backend}: IPv4 untouched"
    );
    let diff = diff_live(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("diff");
    assert_eq!(
        diff.tables
            .iter()
            .map(|t| t.table.as_str())
            .collect::<Vec<_>>(),
        ["ip6:nat"],
        "{backend}: the diff names the IPv6 table"
    );

    undo_restores_ipv6(&lab, &cfg, &prepared, backend).await;
}

/// The undo puts back `ip6:nat` alone, both families then equal the
/// snapshot, and the IPv6 NodePort answers from both pods.
async fn undo_restores_ipv6(
    lab: &Lab,
    cfg: &IptablesConfig,
    prepared: &PreparedFlush,
    backend: Backend,
) {
    let runner = lab.node_runner();
    let (restored, subset) = restore_from_undo(&runner, cfg, &prepared.undo)
        .await
        .expect("undo");
    assert_eq!(restored.tables, ["ip6:nat"], "{backend}");
    assert!(
        diff_live(&runner, cfg, &subset)
            .await
            .expect("diff")
            .is_clean()
    );
    assert!(
        diff_live(&runner, cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean(),
        "{backend}: both families equal the snapshot"
    );
    let (seen, failures) = lab.probe_node_port6(20);
    assert_eq!((failures, seen.len()), (0, 2), "{backend}: back on IPv6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_flush_and_undo_with_the_nf_tables_backend() {
    ipv6_flush_and_undo(Backend::Nft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_flush_and_undo_with_the_legacy_backend() {
    ipv6_flush_and_undo(Backend::Legacy).await;
}

/// EndpointSlices of the dual-stack `lab/web`: the IPv4 pods as the rules
/// have them, and IPv6 pod2 moved to `fd00:240:2::9`.
fn moved_slices() -> String {
    let slice = |name: &str, family: &str, addrs: [String; 2]| {
        format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"lab","labels":{{"kubernetes.io/service-name":"web"}}}},
            "addressType":"{family}","endpoints":[{{"addresses":["{}"]}},{{"addresses":["{}"]}}],
            "ports":[{{"name":"http","port":8080,"protocol":"TCP"}}]}}"#,
            addrs[0], addrs[1]
        )
    };
    format!(
        "[{},{}]",
        slice("web-4", "IPv4", [Lab::pod_ip(0), Lab::pod_ip(1)]),
        slice("web-6", "IPv6", [Lab::pod_ip6(0), "fd00:240:2::9".into()])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_rules_on_the_dual_stack_service_name_the_moved_ipv6_endpoint() {
    let lab = lab_or_skip!(Lab::start_dual_stack(Backend::Nft));
    let cfg = config(Backend::Nft, vec![Family::Ipv4]);
    let inspection = inspect_node(&lab.node_runner(), &cfg)
        .await
        .expect("inspect");
    let slices = parse_endpoint_slices(&moved_slices()).expect("slices");
    let report = detect_stale(&inspection.map, &slices);
    let found: Vec<(FindingKind, &str)> = report
        .findings
        .iter()
        .map(|f| (f.kind, f.endpoint.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (FindingKind::Gone, "[fd00:240:2::2]:8080"),
            (FindingKind::Missing, "[fd00:240:2::9]:8080"),
        ],
        "{report:?}"
    );
}
