//! nftables-mode kube-proxy on a real kernel, in a bare network namespace:
//! both fixture shapes and the dual-stack ruleset load into the kernel and
//! parse from the kernel's own listing to the same model; the
//! `nft-services` fault empties the `services` chain, the diff names it,
//! and restoring the snapshot (twice) brings the table back intact; on the
//! dual-stack ruleset both families' tables are flushed and come back
//! together. Skips when not root or nft is missing.

mod lab;

use squall_dataplane::flush::{FlushMode, apply_flush, prepare_flush};
use squall_dataplane::inspect::{ProxyMode, inspect_node};
use squall_dataplane::parse::parse_nft;
use squall_dataplane::restore::{diff_live, restore_snapshot};
use squall_dataplane::snapshot::IptablesConfig;

fn config() -> IptablesConfig {
    IptablesConfig {
        with_nft: true,
        ..IptablesConfig::default()
    }
}

#[tokio::test]
async fn real_nft_output_of_both_kube_proxy_shapes_parses_like_the_fixtures() {
    for fixture in [
        "v1.31-shape-a.txt",
        "v1.34-shape-b.txt",
        "v1.33-dual-stack.txt",
    ] {
        let ns = netns_or_skip!(&["ip", "nft"]);
        ns.load_nft(fixture);
        // The kernel re-orders map elements; the parsed model must not care.
        let got = inspect_node(&ns.runner(), &config())
            .await
            .expect("inspect");
        assert_eq!(got.mode, ProxyMode::Nftables, "{fixture}");
        let path = format!(
            "{}/tests/fixtures/nft/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture");
        assert_eq!(got.map, parse_nft(&text), "{fixture}");
        assert!(got.map.endpoint_count() >= 3, "{fixture}: {:?}", got.map);
    }
}

#[tokio::test]
async fn nft_services_flush_and_restore_on_a_real_nftables_table() {
    let ns = netns_or_skip!(&["ip", "nft", "iptables"]);
    ns.load_nft("v1.31-shape-a.txt");
    let (runner, cfg) = (ns.runner(), config());
    assert!(
        ns.kube_proxy_chain("services")
            .contains("vmap @service-ips")
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let prepared = prepare_flush(
        &runner,
        &cfg,
        FlushMode::NftServices,
        &dir.path().join("n.json"),
    )
    .await
    .expect("prepare");
    apply_flush(&runner, &prepared).await.expect("flush");
    assert!(
        !ns.kube_proxy_chain("services").contains("vmap"),
        "services chain emptied"
    );
    let diff = diff_live(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("diff");
    let nft = diff
        .tables
        .iter()
        .find(|t| t.table == "nft ip kube-proxy")
        .expect("nft diff");
    assert_eq!(nft.chains[0].chain, "chain services");
    assert_eq!(nft.chains[0].removed.len(), 2, "{nft:?}");

    let report = restore_snapshot(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("restore");
    assert_eq!(report.nft_tables, ["ip kube-proxy"]);
    assert!(
        ns.kube_proxy_chain("services")
            .contains("vmap @service-ips")
    );
    assert!(
        diff_live(&runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean()
    );
    restore_snapshot(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("restore twice");
    assert!(
        diff_live(&runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean()
    );
    let map = inspect_node(&runner, &cfg).await.expect("inspect").map;
    assert_eq!(
        map.endpoint_count(),
        5,
        "table intact after two restores: {map:?}"
    );
}

/// Dual-stack nftables mode: `nft-services` empties the `services` chain
/// of both `ip` and `ip6 kube-proxy`, the diff names both tables, and one
/// restore brings both back with a clean diff and every endpoint of both
/// families.
#[tokio::test]
async fn nft_services_flush_and_restore_on_a_dual_stack_ruleset() {
    let ns = netns_or_skip!(&["ip", "nft", "iptables"]);
    ns.load_nft("v1.33-dual-stack.txt");
    let (runner, cfg) = (ns.runner(), config());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("n.json");
    let prepared = prepare_flush(&runner, &cfg, FlushMode::NftServices, &path)
        .await
        .expect("prepare");
    let report = apply_flush(&runner, &prepared).await.expect("flush");
    assert_eq!(report.commands.len(), 2, "{report:?}");
    let diff = diff_live(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("diff");
    let mut tables: Vec<&str> = diff.tables.iter().map(|t| t.table.as_str()).collect();
    tables.sort_unstable();
    assert_eq!(tables, ["nft ip kube-proxy", "nft ip6 kube-proxy"]);
    let restored = restore_snapshot(&runner, &cfg, &prepared.snapshot)
        .await
        .expect("restore");
    assert_eq!(restored.nft_tables, ["ip kube-proxy", "ip6 kube-proxy"]);
    assert!(
        diff_live(&runner, &cfg, &prepared.snapshot)
            .await
            .expect("diff")
            .is_clean()
    );
    let map = inspect_node(&runner, &cfg).await.expect("inspect").map;
    assert_eq!(map.endpoint_count(), 4, "{map:?}");
}
