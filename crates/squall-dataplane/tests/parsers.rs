//! Parser tests over hand-written fixtures of several kube-proxy
//! generations (iptables 1.18-era and current, nftables shapes A and B and
//! a dual-stack ruleset, IPVS), a generated 1,000-endpoint iptables dump without comments, and
//! mangled inputs that must never panic.

use proptest::prelude::*;
use squall_dataplane::hash;
use squall_dataplane::model::{Protocol, RuleSource, ServiceMap, ServicePort, ServicePortName};
use squall_dataplane::parse::{parse_iptables, parse_ipvs, parse_nft};

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

fn spn(s: &str) -> ServicePortName {
    ServicePortName::parse(s).unwrap_or_else(|| panic!("bad name {s}"))
}

fn addresses(map: &ServiceMap, name: &str) -> Vec<String> {
    let sp = map
        .find(&spn(name))
        .unwrap_or_else(|| panic!("{name} missing: {map:#?}"));
    sp.endpoints.iter().map(|e| e.address()).collect()
}

#[test]
fn iptables_current_layout_with_comments() {
    let map = parse_iptables(&fixture("iptables/v1.28-current.txt"));
    assert_eq!(map.source, RuleSource::Iptables);
    let web = map.find(&spn("demo/web:http")).expect("demo/web");
    assert_eq!(web.cluster_ip.as_deref(), Some("10.96.120.15"));
    assert_eq!(web.port, Some(80));
    assert_eq!(web.protocol, Protocol::Tcp);
    assert_eq!(web.node_ports, [30080]);
    assert_eq!(web.chain.as_deref(), Some("XRY76EGRC3BSCIIJ"));
    assert_eq!(
        addresses(&map, "demo/web:http"),
        ["10.244.1.5:8080", "10.244.1.9:8080", "10.244.2.7:8080"]
    );
    for ep in &web.endpoints {
        let share = ep.share.expect("share");
        assert!((share - 1.0 / 3.0).abs() < 1e-6, "{share}");
    }
    assert_eq!(
        addresses(&map, "default/kubernetes:https"),
        ["172.18.0.2:6443"]
    );
    let empty = map
        .find(&spn("demo/empty:http"))
        .expect("no-endpoint service from filter");
    assert!(empty.endpoints.is_empty());
    assert_eq!(empty.cluster_ip.as_deref(), Some("10.96.55.3"));
    assert_eq!(map.services.len(), 3);
}

#[test]
fn iptables_old_layout_xlb_affinity_and_unnamed_port() {
    let map = parse_iptables(&fixture("iptables/v1.18-legacy.txt"));
    let nginx = map.find(&spn("default/nginx:")).expect("unnamed port");
    assert_eq!(nginx.chain.as_deref(), Some("4N57TFCL4MD7ZTDA"));
    assert_eq!(nginx.node_ports, [30000]);
    assert_eq!(
        addresses(&map, "default/nginx:"),
        ["10.244.1.10:80", "10.244.2.11:80"]
    );
    let front = map.find(&spn("shop/front:http")).expect("front");
    assert_eq!(front.node_ports, [31080], "NodePort via KUBE-XLB");
    assert_eq!(front.external_ips, ["192.0.2.80"]);
    // The affinity `recent --rcheck` rules must not double the endpoints.
    assert_eq!(
        addresses(&map, "shop/front:http"),
        ["10.244.1.20:8080", "10.244.2.21:8080"]
    );
    let dns = map.find(&spn("kube-system/kube-dns:dns")).expect("dns");
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(
        addresses(&map, "kube-system/kube-dns:dns"),
        ["10.244.0.3:53"]
    );
    // KUBE-SVC-STALEUNUSEDCHAIN1 is not reachable from KUBE-SERVICES.
    assert_eq!(map.services.len(), 3, "{map:#?}");
}

/// A dump as kube-proxy writes it in large-cluster mode: one service with
/// `n` endpoints and no comments anywhere.
fn large_cluster_dump(n: usize) -> String {
    let name = hash::service_port_name("big", "web", "http");
    let svc = format!("KUBE-SVC-{}", hash::service_chain_suffix(&name, "tcp"));
    let mut decls = vec![
        ":KUBE-SERVICES - [0:0]".to_owned(),
        format!(":{svc} - [0:0]"),
    ];
    let mut rules = vec![format!(
        "-A KUBE-SERVICES -d 10.96.9.9/32 -p tcp -m tcp --dport 80 -j {svc}"
    )];
    let mut sep_rules = Vec::new();
    for i in 0..n {
        let ep = format!(
            "10.{}.{}.{}:8080",
            100 + i / 65_536,
            (i / 256) % 256,
            i % 256
        );
        let sep = hash::endpoint_chain(&name, "tcp", &ep);
        decls.push(format!(":{sep} - [0:0]"));
        let stat = if i + 1 < n {
            format!(
                "-m statistic --mode random --probability {:.11} ",
                1.0 / (n - i) as f64
            )
        } else {
            String::new()
        };
        rules.push(format!("-A {svc} {stat}-j {sep}"));
        sep_rules.push(format!(
            "-A {sep} -p tcp -m tcp -j DNAT --to-destination {ep}"
        ));
    }
    format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n{}\n{}\n{}\nCOMMIT\n",
        decls.join("\n"),
        rules.join("\n"),
        sep_rules.join("\n")
    )
}

#[test]
fn iptables_large_cluster_without_comments_maps_through_chains() {
    let dump = large_cluster_dump(1000);
    assert!(!dump.contains("--comment"));
    let map = parse_iptables(&dump);
    assert_eq!(map.services.len(), 1);
    let sp = &map.services[0];
    assert!(sp.name.is_none(), "no comment, no name");
    let want = spn("big/web:http").chain_suffixes(Protocol::Tcp);
    assert_eq!(
        sp.chain.as_deref(),
        Some(want[0].as_str()),
        "identity via hash"
    );
    assert_eq!(sp.endpoints.len(), 1000);
    assert_eq!(sp.endpoints[999].address(), "10.100.3.231:8080");
    let total: f64 = sp.endpoints.iter().filter_map(|e| e.share).sum();
    assert!((total - 1.0).abs() < 1e-6, "shares sum to {total}");
    let max = sp
        .endpoints
        .iter()
        .filter_map(|e| e.share)
        .fold(0.0, f64::max);
    assert!(max < 0.0011, "each endpoint gets ~1/1000, max {max}");
}

#[test]
fn nft_shape_a_vmap_and_endpoint_chains() {
    let map = parse_nft(&fixture("nft/v1.31-shape-a.txt"));
    assert_eq!(map.source, RuleSource::Nftables);
    let web = map.find(&spn("demo/web:http")).expect("web");
    assert_eq!(web.cluster_ip.as_deref(), Some("10.96.120.15"));
    assert_eq!(web.external_ips, ["192.0.2.10"]);
    assert_eq!(web.node_ports, [30080]);
    assert_eq!(
        addresses(&map, "demo/web:http"),
        ["10.244.1.5:8080", "10.244.1.9:8080", "10.244.2.7:8080"]
    );
    let dns = map.find(&spn("kube-system/kube-dns:dns")).expect("dns");
    assert_eq!((dns.protocol, dns.port), (Protocol::Udp, Some(53)));
    assert_eq!(
        addresses(&map, "kube-system/kube-dns:dns"),
        ["10.244.0.3:53"]
    );
    assert!(
        map.find(&spn("demo/empty:http"))
            .expect("no endpoints")
            .endpoints
            .is_empty()
    );
    assert_eq!(map.services.len(), 4);
}

#[test]
fn nft_shape_b_inline_dnat_map() {
    let map = parse_nft(&fixture("nft/v1.34-shape-b.txt"));
    assert_eq!(
        addresses(&map, "default/kubernetes:https"),
        ["192.168.0.231:6443"]
    );
    assert_eq!(
        addresses(&map, "demo/web:http"),
        ["10.244.1.5:8080", "10.244.2.7:8080"]
    );
    let web = map.find(&spn("demo/web:http")).expect("web");
    assert_eq!(web.node_ports, [30080]);
    assert_eq!(web.endpoints[0].share, Some(0.5));
}

#[test]
fn nft_dual_stack_lists_each_family_of_a_service_port() {
    let map = parse_nft(&fixture("nft/v1.33-dual-stack.txt"));
    let web: Vec<&ServicePort> = map
        .services
        .iter()
        .filter(|s| s.name == Some(spn("demo/web:http")))
        .collect();
    assert_eq!(web.len(), 2, "one entry per family: {map:?}");
    let mut ips: Vec<&str> = web.iter().filter_map(|s| s.cluster_ip.as_deref()).collect();
    ips.sort_unstable();
    assert_eq!(ips, ["10.96.120.15", "fd00:10:96::c0a8"]);
    assert!(web.iter().all(|s| s.node_ports == [30080]));
    let mut eps: Vec<String> = web
        .iter()
        .flat_map(|s| s.endpoints.iter().map(|e| e.address()))
        .collect();
    eps.sort();
    assert_eq!(
        eps,
        [
            "10.244.1.5:8080",
            "10.244.2.7:8080",
            "[fd00:10:244:1::5]:8080",
            "[fd00:10:244:2::7]:8080"
        ]
    );
}

#[test]
fn nft_ignores_other_tables() {
    let map = parse_nft("table ip nat {\n\tchain service-AAAAAAAA-a/b/tcp/p {\n\t}\n}\n");
    assert!(map.services.is_empty());
}

#[test]
fn ipvs_weights_and_drain() {
    let map = parse_ipvs(&fixture("ipvs/v1.12-weight0.txt"));
    assert_eq!(map.source, RuleSource::Ipvs);
    assert_eq!(map.services.len(), 3);
    let web = map
        .services
        .iter()
        .find(|s| s.chain.as_deref() == Some("tcp/10.96.120.15:80"))
        .expect("web VS");
    let weights: Vec<_> = web
        .endpoints
        .iter()
        .map(|e| (e.address(), e.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("10.244.1.5:8080".to_owned(), Some(1)),
            ("10.244.1.9:8080".to_owned(), Some(0)),
            ("10.244.2.7:8080".to_owned(), Some(1)),
        ]
    );
    assert_eq!(web.endpoints[1].share, Some(0.0));
    assert!(web.name.is_none());
}

#[test]
fn ipvs_affinity_ipv6_and_fwmark() {
    let map = parse_ipvs(&fixture("ipvs/v1.30-affinity.txt"));
    assert_eq!(map.services.len(), 3, "fwmark service skipped: {map:#?}");
    let dns = map
        .services
        .iter()
        .find(|s| s.protocol == Protocol::Udp)
        .expect("v6 dns");
    assert_eq!(dns.cluster_ip.as_deref(), Some("fd00:10:96::a"));
    assert_eq!(dns.endpoints[0].address(), "[fd00:10:244::3]:53");
    assert_eq!(map.endpoint_count(), 5);
}

/// Deterministic mangling: truncations, dropped and duplicated lines,
/// swapped characters. None may panic.
#[test]
fn mangled_fixtures_never_panic() {
    let inputs = [
        fixture("iptables/v1.28-current.txt"),
        fixture("iptables/v1.18-legacy.txt"),
        fixture("nft/v1.31-shape-a.txt"),
        fixture("nft/v1.34-shape-b.txt"),
        fixture("nft/v1.33-dual-stack.txt"),
        fixture("ipvs/v1.12-weight0.txt"),
    ];
    let mut parsed = 0;
    for text in &inputs {
        let chars: Vec<char> = text.chars().collect();
        for cut in (0..chars.len()).step_by(7) {
            let truncated: String = chars[..cut].iter().collect();
            let mut swapped = chars.clone();
            swapped.swap(cut, chars.len() - 1 - cut % chars.len().max(1));
            let swapped: String = swapped.into_iter().collect();
            for variant in [truncated, swapped] {
                let _ = parse_iptables(&variant);
                let _ = parse_nft(&variant);
                let _ = parse_ipvs(&variant);
                parsed += 1;
            }
        }
        let doubled: String = text
            .lines()
            .flat_map(|l| [l, l])
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!parse_iptables(&doubled).services.is_empty() || !text.contains("*nat"));
    }
    assert!(parsed > 1000, "exercised {parsed} variants");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        let _ = parse_iptables(&s);
        let _ = parse_nft(&s);
        let _ = parse_ipvs(&s);
    }

    #[test]
    fn rule_like_lines_never_panic(lines in proptest::collection::vec(
        "(-A|:|\\*|COMMIT|-a|-A -t|table ip kube-proxy \\{|chain|\\}|elements = \\{)[ a-zA-Z0-9:./\\[\\]{}\",-]{0,60}", 0..40)) {
        let text = lines.join("\n");
        let _ = parse_iptables(&text);
        let _ = parse_nft(&text);
        let _ = parse_ipvs(&text);
    }
}
