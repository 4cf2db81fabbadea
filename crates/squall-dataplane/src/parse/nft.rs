//! kube-proxy's nftables layout (`table ip kube-proxy`, 1.29+) →
//! [`ServiceMap`]. Addresses come from the `service-ips` and
//! `service-nodeports` verdict maps; endpoints from the per-service chains,
//! either `numgen random mod N vmap { i : goto endpoint-… }` plus one
//! `dnat to` per endpoint chain (shape A), or the newer inline
//! `dnat to numgen random mod N map { i : ip . port }` (shape B). Service
//! names are read from the chain names (`service-<H>-ns/svc/proto/port`),
//! which kube-proxy always writes, so no comments are needed.

use std::collections::BTreeMap;

use crate::nftables::brace_delta;

use crate::model::{
    Endpoint, Protocol, RuleSource, ServiceMap, ServicePort, ServicePortName, split_host_port,
};

/// A `chain`/`map`/`set` block of the kube-proxy table, body flattened.
#[derive(Debug)]
struct Block {
    kind: String,
    name: String,
    body: String,
}

/// Parse `nft list ruleset` / `nft list table ip kube-proxy` text. A
/// dual-stack ruleset has an `ip` and an `ip6 kube-proxy` table with the
/// same chain and map names, so each table is parsed on its own and the
/// Service ports of both are listed (one entry per family).
pub fn parse_nft(text: &str) -> ServiceMap {
    let tables = crate::nftables::kube_proxy_tables(text);
    if tables.len() < 2 {
        return parse_table(text);
    }
    let mut map = ServiceMap {
        source: RuleSource::Nftables,
        services: tables
            .iter()
            .flat_map(|(_, table)| parse_table(table).services)
            .collect(),
    };
    map.sort();
    map
}

fn parse_table(text: &str) -> ServiceMap {
    let blocks = kube_proxy_blocks(text);
    // Chains and maps live in separate namespaces in nftables.
    let of_kind = |kind: &str| -> BTreeMap<&str, &Block> {
        blocks
            .iter()
            .filter(|b| b.kind == kind)
            .map(|b| (b.name.as_str(), b))
            .collect()
    };
    let (maps, chains) = (of_kind("map"), of_kind("chain"));
    let mut services: BTreeMap<String, ServicePort> = BTreeMap::new();
    if let Some(map) = maps.get("service-ips") {
        for (key, target) in elements(&map.body) {
            add_service_ip(&mut services, &key, &target);
        }
    }
    if let Some(map) = maps.get("service-nodeports") {
        for (key, target) in elements(&map.body) {
            add_node_port(&mut services, &key, &target);
        }
    }
    for (base, svc) in &mut services {
        fill_endpoints(&chains, base, svc);
    }
    let mut services: Vec<ServicePort> = services.into_values().collect();
    if let Some(map) = maps.get("no-endpoint-services") {
        services.extend(no_endpoint_services(&map.body, &services));
    }
    let mut map = ServiceMap {
        source: RuleSource::Nftables,
        services,
    };
    map.sort();
    map
}

fn kube_proxy_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut depth: i64 = 0;
    let mut in_table = false;
    let mut current: Option<Block> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if depth == 0 {
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            in_table = matches!(
                words.as_slice(),
                ["table", "ip" | "ip6", "kube-proxy", "{", ..]
            );
        } else if depth == 1 && in_table && current.is_none() {
            let mut words = trimmed.split_whitespace();
            if let (Some(kind @ ("chain" | "map" | "set")), Some(name)) =
                (words.next(), words.next())
            {
                current = Some(Block {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    body: String::new(),
                });
            }
        } else if let Some(block) = current.as_mut() {
            block.body.push_str(trimmed);
            block.body.push('\n');
        }
        depth = (depth + brace_delta(trimmed)).max(0);
        if depth <= 1 {
            blocks.extend(current.take());
        }
    }
    blocks
}

/// The text between the first `{` after `marker` and its matching `}`.
fn braced_after<'a>(body: &'a str, marker: &str) -> Option<&'a str> {
    let start = body.find(marker)? + marker.len();
    let rest = &body[start..];
    let open = rest.find('{')?;
    let inner = &rest[open + 1..];
    let mut depth = 1;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&inner[..i]);
                }
            }
            _ => {}
        }
    }
    Some(inner)
}

/// `key : value` pairs of an `elements = { … }` or inline map.
fn pairs(inner: &str) -> Vec<(String, String)> {
    inner
        .split(',')
        .filter_map(|e| {
            let (k, v) = e.split_once(" : ")?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

fn elements(body: &str) -> Vec<(String, String)> {
    braced_after(body, "elements =")
        .map(pairs)
        .unwrap_or_default()
}

/// `goto service-…` / `jump …` → the chain name.
fn verdict_chain(target: &str) -> Option<&str> {
    let mut words = target.split_whitespace();
    match (words.next(), words.next()) {
        (Some("goto" | "jump"), Some(chain)) => Some(chain),
        _ => None,
    }
}

/// `service-H-ns/svc/proto/port` → (`ns/svc/proto/port`, name, protocol).
fn chain_identity(chain: &str) -> Option<(String, ServicePortName, Protocol)> {
    let rest = ["service-", "local-", "external-", "firewall-"]
        .iter()
        .find_map(|p| chain.strip_prefix(p))?;
    let base = rest.get(9..)?;
    let base = base.split("__").next().unwrap_or(base);
    let parts: Vec<&str> = base.split('/').collect();
    let [ns, name, proto, port] = parts.as_slice() else {
        return None;
    };
    let spn = ServicePortName::parse(&format!("{ns}/{name}:{port}"))?;
    Some((base.to_owned(), spn, Protocol::parse(proto)?))
}

fn entry<'a>(
    services: &'a mut BTreeMap<String, ServicePort>,
    chain: &str,
) -> Option<&'a mut ServicePort> {
    let (base, name, protocol) = chain_identity(chain)?;
    Some(services.entry(base.clone()).or_insert_with(|| {
        let mut sp = ServicePort::new(protocol);
        sp.name = Some(name);
        sp.chain = Some(base);
        sp
    }))
}

fn add_service_ip(services: &mut BTreeMap<String, ServicePort>, key: &str, target: &str) {
    let Some(chain) = verdict_chain(target) else {
        return;
    };
    let fields: Vec<&str> = key.split(" . ").map(str::trim).collect();
    let [ip, _proto, port] = fields.as_slice() else {
        return;
    };
    let Some(sp) = entry(services, chain) else {
        return;
    };
    sp.port = sp.port.or_else(|| port.parse().ok());
    let ip = (*ip).to_owned();
    // kube-proxy jumps ClusterIPs to `service-…`; external and LB IPs to
    // `external-…`/`firewall-…`.
    if chain.starts_with("service-") || chain.starts_with("local-") {
        sp.cluster_ip.get_or_insert(ip);
    } else if !sp.external_ips.contains(&ip) {
        sp.external_ips.push(ip);
    }
}

fn add_node_port(services: &mut BTreeMap<String, ServicePort>, key: &str, target: &str) {
    let Some(chain) = verdict_chain(target) else {
        return;
    };
    let Some(np) = key
        .split(" . ")
        .nth(1)
        .and_then(|p| p.trim().parse::<u16>().ok())
    else {
        return;
    };
    // The external chain's name identifies the service, so a NodePort-only
    // entry is still named.
    if let Some(sp) = entry(services, chain)
        && !sp.node_ports.contains(&np)
    {
        sp.node_ports.push(np);
    }
}

/// The address after `dnat … to` in a rule body.
fn dnat_target(body: &str) -> Option<(String, u16)> {
    let line = body
        .lines()
        .find(|l| l.contains("dnat ") && !l.contains("numgen"))?;
    let mut words = line.split_whitespace().skip_while(|w| *w != "to");
    words.next()?;
    split_host_port(words.next()?)
}

fn fill_endpoints(blocks: &BTreeMap<&str, &Block>, base: &str, svc: &mut ServicePort) {
    let chain = blocks
        .keys()
        .find(|name| {
            (name.starts_with("service-") || name.starts_with("local-"))
                && chain_identity(name).is_some_and(|(b, _, _)| b == base)
        })
        .and_then(|name| blocks.get(name));
    let Some(chain) = chain else {
        return;
    };
    let mut eps: Vec<(String, u16)> = Vec::new();
    if let Some(inner) = braced_after(&chain.body, "vmap") {
        for (_, target) in pairs(inner) {
            let ep = verdict_chain(&target)
                .and_then(|c| blocks.get(c))
                .and_then(|b| dnat_target(&b.body));
            eps.extend(ep);
        }
    } else if chain.body.contains("numgen") {
        // Shape B: `… dnat ip to numgen random mod N map { 0 : ip . port }`.
        for (_, value) in braced_after(&chain.body, " map")
            .map(pairs)
            .unwrap_or_default()
        {
            if let Some((ip, port)) = value.split_once(" . ")
                && let Ok(port) = port.trim().parse()
            {
                eps.push((ip.trim().to_owned(), port));
            }
        }
    } else {
        // A single endpoint may be written as a plain goto/dnat.
        eps.extend(dnat_target(&chain.body));
    }
    let n = eps.len();
    svc.endpoints = eps
        .into_iter()
        .map(|(ip, port)| Endpoint {
            ip,
            port,
            probability: Some(1.0 / n as f64),
            weight: None,
            share: Some(1.0 / n as f64),
        })
        .collect();
}

fn no_endpoint_services(body: &str, known: &[ServicePort]) -> Vec<ServicePort> {
    let mut out: Vec<ServicePort> = Vec::new();
    for (key, _) in elements(body) {
        let Some((addr, comment)) = key.split_once(" comment ") else {
            continue;
        };
        let Some(name) = ServicePortName::parse(comment.trim().trim_matches('"')) else {
            continue;
        };
        let seen = |s: &ServicePort| s.name.as_ref() == Some(&name);
        if known.iter().any(seen) || out.iter().any(seen) {
            continue;
        }
        let fields: Vec<&str> = addr.split(" . ").map(str::trim).collect();
        let [ip, proto, port] = fields.as_slice() else {
            continue;
        };
        let mut sp = ServicePort::new(Protocol::parse(proto).unwrap_or(Protocol::Tcp));
        sp.cluster_ip = Some((*ip).to_owned());
        sp.port = port.parse().ok();
        sp.name = Some(name);
        out.push(sp);
    }
    out
}
