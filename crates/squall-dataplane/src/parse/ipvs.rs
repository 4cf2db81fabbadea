//! `ipvsadm -Sn` (save format) → [`ServiceMap`]. IPVS knows nothing of
//! Service names: each virtual server is an address:port with real servers
//! and weights, so entries are keyed `proto/VIP:port` and carry no name.
//! Weight 0 is kept (not dropped): it marks an endpoint that is draining —
//! or, when it never goes away, the stale rule of the 2018 bug.

use std::collections::BTreeMap;

use crate::model::{Endpoint, Protocol, RuleSource, ServiceMap, ServicePort, split_host_port};

/// Parse `ipvsadm -S -n` output.
pub fn parse_ipvs(text: &str) -> ServiceMap {
    let mut services: BTreeMap<String, ServicePort> = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((cmd, rest)) = words.split_first() else {
            continue;
        };
        let Some((protocol, vip)) = virtual_service(rest) else {
            continue;
        };
        let Some((ip, port)) = split_host_port(vip) else {
            continue;
        };
        let key = format!("{}/{vip}", protocol.as_str());
        match *cmd {
            "-A" | "--add-service" => {
                services.entry(key.clone()).or_insert_with(|| {
                    let mut sp = ServicePort::new(protocol);
                    sp.chain = Some(key);
                    sp.cluster_ip = Some(ip);
                    sp.port = Some(port);
                    sp
                });
            }
            "-a" | "--add-server" => {
                let Some(sp) = services.get_mut(&key) else {
                    continue;
                };
                let Some((rip, rport)) =
                    flag(rest, &["-r", "--real-server"]).and_then(split_host_port)
                else {
                    continue;
                };
                let weight = flag(rest, &["-w", "--weight"])
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(1);
                sp.endpoints.push(Endpoint {
                    ip: rip,
                    port: rport,
                    probability: None,
                    weight: Some(weight),
                    share: None,
                });
            }
            _ => {}
        }
    }
    let mut services: Vec<ServicePort> = services.into_values().collect();
    services.iter_mut().for_each(shares_from_weights);
    let mut map = ServiceMap {
        source: RuleSource::Ipvs,
        services,
    };
    map.sort();
    map
}

/// IPVS `rr`/`wrr` send each real server weight / Σweights of new
/// connections; a weight-0 server gets none.
fn shares_from_weights(sp: &mut ServicePort) {
    let total: u32 = sp.endpoints.iter().filter_map(|e| e.weight).sum();
    for ep in &mut sp.endpoints {
        ep.share = Some(if total == 0 {
            0.0
        } else {
            f64::from(ep.weight.unwrap_or(0)) / f64::from(total)
        });
    }
}

fn flag<'a>(words: &[&'a str], names: &[&str]) -> Option<&'a str> {
    let i = words.iter().position(|w| names.contains(w))?;
    words.get(i + 1).copied()
}

fn virtual_service<'a>(words: &[&'a str]) -> Option<(Protocol, &'a str)> {
    [
        (["-t", "--tcp-service"], Protocol::Tcp),
        (["-u", "--udp-service"], Protocol::Udp),
        (["--sctp-service", "--sctp-service"], Protocol::Sctp),
    ]
    .iter()
    .find_map(|(names, proto)| flag(words, names).map(|v| (*proto, v)))
}
