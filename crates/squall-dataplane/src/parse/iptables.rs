//! kube-proxy's iptables layout → [`ServiceMap`]. The walk starts where
//! packets start — `KUBE-SERVICES` and `KUBE-NODEPORTS` in the nat table —
//! and follows jumps: capture rule → `KUBE-FW/EXT/SVC/SVL-<hash>` →
//! `KUBE-SEP-<hash>` → `DNAT --to-destination`. Chains nobody jumps to are
//! ignored (kube-proxy garbage-collects them lazily, so they are not stale).
//! Names come from comments when present; in large-cluster mode (>1,000
//! endpoints) SEP comments are absent and the chain hash still ties the
//! endpoints to their service. Also understands the older `KUBE-XLB-` chains
//! and the filter table's "has no endpoints" REJECT rules.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    Endpoint, Protocol, RuleSource, ServiceMap, ServicePort, ServicePortName,
    shares_from_probabilities, split_host_port,
};
use crate::ruleset::{SavedRule, SavedTable, arg_after, parse_save};

const SERVICE_PREFIXES: [&str; 5] = [
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-EXT-",
    "KUBE-FW-",
    "KUBE-XLB-",
];

/// Parse `iptables-save` output (all tables or just nat).
pub fn parse_iptables(text: &str) -> ServiceMap {
    let tables = parse_save(text);
    let mut by_hash: BTreeMap<String, ServicePort> = BTreeMap::new();
    if let Some(nat) = tables.get("nat") {
        walk_nat(nat, &mut by_hash);
    }
    let mut services: Vec<ServicePort> = by_hash.into_values().collect();
    if let Some(filter) = tables.get("filter") {
        services.extend(no_endpoint_services(filter, &services));
    }
    let mut map = ServiceMap {
        source: RuleSource::Iptables,
        services,
    };
    map.sort();
    map
}

/// `KUBE-SVC-ABC…` → (`KUBE-SVC-`, `ABC…`).
fn split_service_chain(chain: &str) -> Option<(&'static str, &str)> {
    SERVICE_PREFIXES
        .iter()
        .find_map(|p| chain.strip_prefix(p).map(|h| (*p, h)))
        .filter(|(_, h)| !h.is_empty())
}

/// The Service port name at the start of a kube-proxy comment.
fn comment_name(rule: &SavedRule) -> Option<ServicePortName> {
    let comment = arg_after(&rule.args, &["--comment"])?;
    ServicePortName::parse(comment.split_whitespace().next()?)
}

fn comment_text(rule: &SavedRule) -> &str {
    arg_after(&rule.args, &["--comment"]).unwrap_or_default()
}

fn protocol_of(rule: &SavedRule) -> Option<Protocol> {
    arg_after(&rule.args, &["-p", "--protocol"]).and_then(Protocol::parse)
}

fn strip_mask(addr: &str) -> String {
    addr.split('/').next().unwrap_or(addr).to_owned()
}

fn walk_nat(nat: &SavedTable, out: &mut BTreeMap<String, ServicePort>) {
    for rule in nat.chain_rules("KUBE-SERVICES") {
        let Some((_, hash)) = rule.target().and_then(split_service_chain) else {
            continue;
        };
        let entry = entry_for(out, hash, rule);
        let dest = arg_after(&rule.args, &["-d", "--destination"]).map(strip_mask);
        entry.port = entry.port.or_else(|| dport(rule));
        if let Some(ip) = dest {
            let external = ["external IP", "loadbalancer IP"]
                .iter()
                .any(|k| comment_text(rule).contains(k));
            if external || entry.cluster_ip.is_some() {
                if !entry.external_ips.contains(&ip) && entry.cluster_ip.as_ref() != Some(&ip) {
                    entry.external_ips.push(ip);
                }
            } else {
                entry.cluster_ip = Some(ip);
            }
        }
    }
    for rule in nat.chain_rules("KUBE-NODEPORTS") {
        let Some((_, hash)) = rule.target().and_then(split_service_chain) else {
            continue;
        };
        let np = dport(rule);
        let entry = entry_for(out, hash, rule);
        if let Some(np) = np.filter(|p| !entry.node_ports.contains(p)) {
            entry.node_ports.push(np);
        }
    }
    let seps = endpoint_chains(nat);
    for (hash, svc) in out.iter_mut() {
        fill_endpoints(nat, hash, svc, &seps);
    }
}

fn dport(rule: &SavedRule) -> Option<u16> {
    arg_after(&rule.args, &["--dport", "--destination-port"]).and_then(|p| p.parse().ok())
}

fn entry_for<'a>(
    out: &'a mut BTreeMap<String, ServicePort>,
    hash: &str,
    rule: &SavedRule,
) -> &'a mut ServicePort {
    let entry = out.entry(hash.to_owned()).or_insert_with(|| {
        let mut sp = ServicePort::new(protocol_of(rule).unwrap_or(Protocol::Tcp));
        sp.chain = Some(hash.to_owned());
        sp
    });
    if entry.name.is_none() {
        entry.name = comment_name(rule);
    }
    entry
}

/// SEP chain → (endpoint address, name from its comment).
fn endpoint_chains(nat: &SavedTable) -> BTreeMap<&str, (String, u16, Option<ServicePortName>)> {
    let mut seps = BTreeMap::new();
    for rule in &nat.rules {
        if !rule.chain.starts_with("KUBE-SEP-") || rule.target() != Some("DNAT") {
            continue;
        }
        let dest = arg_after(&rule.args, &["--to-destination"]).unwrap_or_default();
        if let Some((ip, port)) = split_host_port(dest) {
            seps.insert(rule.chain.as_str(), (ip, port, comment_name(rule)));
        }
    }
    seps
}

/// The chain holding the endpoint-selection rules for `hash`: Cluster
/// policy (`SVC`) first, then Local (`SVL`, older `XLB`).
fn selection_chain(nat: &SavedTable, hash: &str) -> Option<String> {
    ["KUBE-SVC-", "KUBE-SVL-", "KUBE-XLB-"]
        .iter()
        .map(|p| format!("{p}{hash}"))
        .find(|c| nat.chains.contains_key(c))
}

fn fill_endpoints(
    nat: &SavedTable,
    hash: &str,
    svc: &mut ServicePort,
    seps: &BTreeMap<&str, (String, u16, Option<ServicePortName>)>,
) {
    let Some(chain) = selection_chain(nat, hash) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for rule in nat.chain_rules(&chain) {
        let Some(target) = rule.target().filter(|t| t.starts_with("KUBE-SEP-")) else {
            continue;
        };
        // ClientIP affinity adds a `recent --rcheck` rule per endpoint
        // before the random ones; count each endpoint once.
        if rule.args.iter().any(|a| a == "--rcheck") || !seen.insert(target.to_owned()) {
            continue;
        }
        let Some((ip, port, sep_name)) = seps.get(target) else {
            continue;
        };
        if svc.name.is_none() {
            svc.name = comment_name(rule).or_else(|| sep_name.clone());
        }
        let probability = arg_after(&rule.args, &["--probability"])
            .and_then(|p| p.parse::<f64>().ok())
            .or(Some(1.0));
        svc.endpoints.push(Endpoint {
            ip: ip.clone(),
            port: *port,
            probability,
            weight: None,
            share: None,
        });
    }
    shares_from_probabilities(&mut svc.endpoints);
}

/// Service ports that the filter table REJECTs because they have no
/// endpoints, unless already known from nat.
fn no_endpoint_services(filter: &SavedTable, known: &[ServicePort]) -> Vec<ServicePort> {
    let mut out: Vec<ServicePort> = Vec::new();
    for rule in &filter.rules {
        if rule.chain != "KUBE-SERVICES" || !comment_text(rule).ends_with("has no endpoints") {
            continue;
        }
        let Some(name) = comment_name(rule) else {
            continue;
        };
        let seen = |s: &ServicePort| s.name.as_ref() == Some(&name);
        if known.iter().any(seen) || out.iter().any(seen) {
            continue;
        }
        let mut sp = ServicePort::new(protocol_of(rule).unwrap_or(Protocol::Tcp));
        sp.cluster_ip = arg_after(&rule.args, &["-d", "--destination"]).map(strip_mask);
        sp.port = dport(rule);
        sp.name = Some(name);
        out.push(sp);
    }
    out
}
