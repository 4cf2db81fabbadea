//! Stale-rule detection on the seed scenarios, from fixtures: the 2018
//! IPVS graceful-termination bug (a real server left at weight 1 for a pod
//! that is gone, next to a legitimately draining weight-0 one) and an
//! iptables node in large-cluster mode, where rules have no comments and
//! are tied to their Service only through the chain hash.

use squall_dataplane::endpointslice::parse_endpoint_slices;
use squall_dataplane::hash;
use squall_dataplane::inspect::{ProxyMode, parse_dump, stale_from_json};
use squall_dataplane::parse::parse_iptables;
use squall_dataplane::stale::{FindingKind, detect_stale};

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

const SERVICES: &str = r#"{"kind":"ServiceList","apiVersion":"v1","items":[
  {"metadata":{"name":"kubernetes","namespace":"default"},
   "spec":{"clusterIP":"10.96.0.1","ports":[{"name":"https","port":443,"protocol":"TCP"}]}},
  {"metadata":{"name":"web","namespace":"demo"},
   "spec":{"clusterIP":"10.96.120.15","ports":[{"name":"http","port":80,"protocol":"TCP"}]}},
  {"metadata":{"name":"kube-dns","namespace":"kube-system"},
   "spec":{"clusterIP":"10.96.0.10","ports":[{"name":"dns","port":53,"protocol":"UDP"}]}}]}"#;

fn slice(ns: &str, svc: &str, port: &str, number: u16, proto: &str, ips: &[&str]) -> String {
    let eps: Vec<String> = ips
        .iter()
        .map(|ip| format!(r#"{{"addresses":["{ip}"]}}"#))
        .collect();
    format!(
        r#"{{"metadata":{{"name":"{svc}-x","namespace":"{ns}","labels":{{"kubernetes.io/service-name":"{svc}"}}}},
        "addressType":"IPv4","endpoints":[{}],"ports":[{{"name":"{port}","port":{number},"protocol":"{proto}"}}]}}"#,
        eps.join(",")
    )
}

#[test]
fn ipvs_2018_bug_leaves_a_weight_one_server_for_a_dead_pod() {
    let map = parse_dump(ProxyMode::Ipvs, &fixture("ipvs/v1.12-weight0.txt"));
    // 10.244.1.9 was removed and drains at weight 0 (legitimate); the pod
    // behind 10.244.2.7 was replaced by 10.244.2.8 but IPVS still has it.
    let slices = format!(
        "[{},{},{}]",
        slice(
            "default",
            "kubernetes",
            "https",
            6443,
            "TCP",
            &["172.18.0.2"]
        ),
        slice(
            "demo",
            "web",
            "http",
            8080,
            "TCP",
            &["10.244.1.5", "10.244.2.8"]
        ),
        slice("kube-system", "kube-dns", "dns", 53, "UDP", &["10.244.0.3"]),
    );
    let report = stale_from_json(map, &slices, Some(SERVICES)).expect("report");
    let found: Vec<(FindingKind, &str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.kind, f.service.as_str(), f.endpoint.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (FindingKind::Gone, "demo/web:http", "10.244.2.7:8080"),
            (FindingKind::Missing, "demo/web:http", "10.244.2.8:8080"),
        ]
    );
    assert!(report.unmatched_rules.is_empty(), "{report:?}");
    let json = serde_json::to_string(&report).expect("serialisable");
    assert!(json.contains("\"kind\":\"gone\""));
}

#[test]
fn iptables_large_cluster_stale_endpoint_found_through_chain_hash() {
    let spn = hash::service_port_name("big", "api", "grpc");
    let svc = format!("KUBE-SVC-{}", hash::service_chain_suffix(&spn, "tcp"));
    let mut dump = format!(":KUBE-SERVICES - [0:0]\n:{svc} - [0:0]\n");
    dump.push_str(&format!(
        "-A KUBE-SERVICES -d 10.96.7.7/32 -p tcp -m tcp --dport 9000 -j {svc}\n"
    ));
    let ips: Vec<String> = (0..1200)
        .map(|i| format!("10.50.{}.{}", i / 256, i % 256))
        .collect();
    for (i, ip) in ips.iter().enumerate() {
        let sep = hash::endpoint_chain(&spn, "tcp", &format!("{ip}:9000"));
        let p = 1.0 / (ips.len() - i) as f64;
        dump.push_str(&format!(
            ":{sep} - [0:0]\n-A {svc} -m statistic --mode random --probability {p:.11} -j {sep}\n"
        ));
        dump.push_str(&format!(
            "-A {sep} -p tcp -m tcp -j DNAT --to-destination {ip}:9000\n"
        ));
    }
    let map = parse_iptables(&format!("*nat\n{dump}COMMIT\n"));
    assert!(map.services[0].name.is_none());
    // The API has every endpoint but the 100th, which became not ready.
    let eps: Vec<String> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            format!(
                r#"{{"addresses":["{ip}"],"conditions":{{"ready":{}}}}}"#,
                i != 100
            )
        })
        .collect();
    let json = format!(
        r#"[{{"metadata":{{"name":"api-1","namespace":"big","labels":{{"kubernetes.io/service-name":"api"}}}},
        "addressType":"IPv4","endpoints":[{}],"ports":[{{"name":"grpc","port":9000}}]}}]"#,
        eps.join(",")
    );
    let slices = parse_endpoint_slices(&json).expect("slices");
    let report = detect_stale(&map, &slices);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::NotReady);
    assert_eq!(report.findings[0].service, "big/api:grpc");
    assert_eq!(report.findings[0].endpoint, "10.50.0.100:9000");
}
