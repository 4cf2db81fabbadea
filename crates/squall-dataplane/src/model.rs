//! The common model every parser produces: a [`ServiceMap`] of Service
//! ports and the endpoints the node's rules send their traffic to. It is
//! deliberately what the *rules* say, not what the API says — the
//! stale-rule detector compares the two.

use serde::{Deserialize, Serialize};

use crate::hash;

/// Transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parse `tcp`/`TCP`/`udp`/`sctp`, or iptables' numeric forms 6/17/132.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Some(Self::Tcp),
            "udp" | "17" => Some(Self::Udp),
            "sctp" | "132" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// Lowercase name, as used in kube-proxy's hash input.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// `namespace/name:port-name` of a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServicePortName {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Name of the port; empty for an unnamed single port.
    pub port_name: String,
}

impl ServicePortName {
    /// Parse `ns/name:port` or `ns/name` (or the old `ns/name:` form).
    pub fn parse(s: &str) -> Option<Self> {
        let (namespace, rest) = s.split_once('/')?;
        let (name, port_name) = rest.split_once(':').unwrap_or((rest, ""));
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        };
        (valid(namespace) && valid(name) && (port_name.is_empty() || valid(port_name))).then(|| {
            Self {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port_name: port_name.to_owned(),
            }
        })
    }

    /// The 16-character kube-proxy chain hash for `protocol`, in both the
    /// current and the legacy rendering of unnamed ports.
    pub fn chain_suffixes(&self, protocol: Protocol) -> [String; 2] {
        [
            hash::service_chain_suffix(
                &hash::service_port_name(&self.namespace, &self.name, &self.port_name),
                protocol.as_str(),
            ),
            hash::service_chain_suffix(
                &hash::service_port_name_legacy(&self.namespace, &self.name, &self.port_name),
                protocol.as_str(),
            ),
        ]
    }
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hash::service_port_name(
            &self.namespace,
            &self.name,
            &self.port_name,
        ))
    }
}

/// One backend as programmed in the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Address, without brackets for IPv6.
    pub ip: String,
    /// Target port.
    pub port: u16,
    /// iptables: the rule's conditional `--probability` (1.0 for the final,
    /// unconditional rule). nftables: 1/N of `numgen random mod N`.
    pub probability: Option<f64>,
    /// IPVS real-server weight.
    pub weight: Option<u32>,
    /// Effective share of new connections, derived from the above.
    pub share: Option<f64>,
}

impl Endpoint {
    /// `ip:port` (`[ip]:port` for IPv6), the form EndpointSlices compare to.
    pub fn address(&self) -> String {
        join_host_port(&self.ip, self.port)
    }
}

/// `ip:port`, bracketing IPv6 addresses like Go's `net.JoinHostPort`.
pub fn join_host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Split `ip:port` / `[ip6]:port` into parts.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// One Service port as the node's rules implement it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Name from rule comments or chain names; `None` when the rules carry
    /// neither (iptables large-cluster mode, IPVS).
    pub name: Option<ServicePortName>,
    /// The rules' own identity: iptables hash suffix (`XRY76EGRC3BSCIIJ`),
    /// nftables service chain, or IPVS `proto/VIP:port`.
    pub chain: Option<String>,
    /// ClusterIP.
    pub cluster_ip: Option<String>,
    /// Other captured addresses (external / load-balancer IPs).
    pub external_ips: Vec<String>,
    /// Service port.
    pub port: Option<u16>,
    /// Protocol.
    pub protocol: Protocol,
    /// NodePorts that lead to this Service port.
    pub node_ports: Vec<u16>,
    /// Endpoints in rule order.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// An empty entry for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            name: None,
            chain: None,
            cluster_ip: None,
            external_ips: Vec::new(),
            port: None,
            protocol,
            node_ports: Vec::new(),
            endpoints: Vec::new(),
        }
    }
}

/// Which kind of dump a map was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// `iptables-save`.
    Iptables,
    /// `nft list ruleset`.
    Nftables,
    /// `ipvsadm -Sn`.
    Ipvs,
}

/// Every Service port found in one dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceMap {
    /// The dump kind.
    pub source: RuleSource,
    /// Service ports, sorted by name then address.
    pub services: Vec<ServicePort>,
}

impl ServiceMap {
    /// The entry for a named Service port, if any.
    pub fn find(&self, name: &ServicePortName) -> Option<&ServicePort> {
        self.services.iter().find(|s| s.name.as_ref() == Some(name))
    }

    /// Total endpoints over all Service ports.
    pub fn endpoint_count(&self) -> usize {
        self.services.iter().map(|s| s.endpoints.len()).sum()
    }

    /// Sort for stable output.
    pub(crate) fn sort(&mut self) {
        self.services.sort_by(|a, b| {
            (&a.name, &a.cluster_ip, a.port, &a.chain).cmp(&(
                &b.name,
                &b.cluster_ip,
                b.port,
                &b.chain,
            ))
        });
    }
}

/// Fill in `share` from conditional probabilities: endpoint i receives
/// p_i × Π_{j<i}(1 − p_j) of new connections.
pub(crate) fn shares_from_probabilities(endpoints: &mut [Endpoint]) {
    let mut remaining = 1.0_f64;
    for ep in endpoints {
        let p = ep.probability.unwrap_or(1.0).clamp(0.0, 1.0);
        ep.share = Some(remaining * p);
        remaining *= 1.0 - p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_port_names_parse_in_all_renderings() {
        let n = ServicePortName::parse("demo/web:http").expect("named");
        assert_eq!(
            (n.namespace.as_str(), n.name.as_str(), n.port_name.as_str()),
            ("demo", "web", "http")
        );
        assert_eq!(n.to_string(), "demo/web:http");
        assert_eq!(
            ServicePortName::parse("default/nginx:")
                .expect("legacy")
                .port_name,
            ""
        );
        assert_eq!(
            ServicePortName::parse("default/nginx")
                .expect("new")
                .to_string(),
            "default/nginx"
        );
        assert!(ServicePortName::parse("kubernetes service portals").is_none());
        assert!(ServicePortName::parse("/x").is_none());
    }

    #[test]
    fn host_ports_round_trip_v4_and_v6() {
        assert_eq!(
            split_host_port("10.0.0.1:80"),
            Some(("10.0.0.1".into(), 80))
        );
        assert_eq!(
            split_host_port("[fd00::1]:443"),
            Some(("fd00::1".into(), 443))
        );
        assert_eq!(join_host_port("fd00::1", 443), "[fd00::1]:443");
        assert_eq!(split_host_port("10.0.0.1"), None);
        assert_eq!(split_host_port(":80"), None);
    }

    #[test]
    fn shares_follow_kube_proxy_probability_chain() {
        let mut eps: Vec<Endpoint> = [Some(1.0 / 3.0), Some(0.5), None]
            .into_iter()
            .map(|p| Endpoint {
                ip: "x".into(),
                port: 1,
                probability: p,
                weight: None,
                share: None,
            })
            .collect();
        shares_from_probabilities(&mut eps);
        for ep in &eps {
            assert!((ep.share.expect("share") - 1.0 / 3.0).abs() < 1e-9);
        }
    }
}
