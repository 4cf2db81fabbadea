//! Naming IPVS virtual servers. IPVS rules carry no Service names, only
//! `VIP:port`, so stale detection on an IPVS node needs the Services
//! themselves (`kubectl get services -A -o json`, a v1 `ServiceList`) to
//! tie each virtual server to its Service port: by ClusterIP / external IP
//! and port, or by NodePort for the per-node-address virtual servers.

use serde::Deserialize;

use crate::endpointslice::Metadata;
use crate::error::{DataplaneError, Result};
use crate::model::{Protocol, ServiceMap, ServicePortName};

/// `spec.ports[]` of a Service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpecPort {
    /// Port name (empty when the Service has a single unnamed port).
    #[serde(default)]
    pub name: String,
    /// Service port.
    pub port: Option<u16>,
    /// `TCP` (default), `UDP`, `SCTP`.
    pub protocol: Option<String>,
    /// NodePort, when allocated.
    pub node_port: Option<u16>,
}

/// The parts of a Service's spec used for naming.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Primary ClusterIP (`None` for headless / ExternalName).
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// All ClusterIPs (dual-stack).
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    /// External IPs.
    #[serde(default, rename = "externalIPs")]
    pub external_ips: Vec<String>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ServiceSpecPort>,
}

/// A v1 Service, reduced.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Service {
    /// Metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// Spec.
    #[serde(default)]
    pub spec: ServiceSpec,
}

impl Service {
    fn addresses(&self) -> impl Iterator<Item = &String> {
        self.spec
            .cluster_ip
            .iter()
            .chain(&self.spec.cluster_ips)
            .chain(&self.spec.external_ips)
            .filter(|ip| !ip.is_empty() && ip.as_str() != "None")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ServiceDoc {
    List { items: Vec<Service> },
    Array(Vec<Service>),
}

/// Decode a `ServiceList` / `List` or a JSON array of Services.
pub fn parse_services(json: &str) -> Result<Vec<Service>> {
    let doc: ServiceDoc = serde_json::from_str(json).map_err(|source| DataplaneError::Json {
        what: "Service JSON",
        source,
    })?;
    Ok(match doc {
        ServiceDoc::List { items } | ServiceDoc::Array(items) => items,
    })
}

/// Give every unnamed entry of `map` the name of the Service port it
/// implements, when the Services say so. Returns how many were named.
pub fn attach_service_names(map: &mut ServiceMap, services: &[Service]) -> usize {
    let mut named = 0;
    for entry in map.services.iter_mut().filter(|e| e.name.is_none()) {
        let (Some(vip), Some(port)) = (entry.cluster_ip.clone(), entry.port) else {
            continue;
        };
        let found = services.iter().find_map(|svc| {
            let by_address = svc.addresses().any(|a| *a == vip);
            svc.spec.ports.iter().find_map(|p| {
                let protocol = p
                    .protocol
                    .as_deref()
                    .map_or(Some(Protocol::Tcp), Protocol::parse)?;
                let hit = protocol == entry.protocol
                    && ((by_address && p.port == Some(port)) || p.node_port == Some(port));
                hit.then_some((svc, p, by_address))
            })
        });
        let Some((svc, p, by_address)) = found else {
            continue;
        };
        entry.name = Some(ServicePortName {
            namespace: svc.metadata.namespace.clone(),
            name: svc.metadata.name.clone(),
            port_name: p.name.clone(),
        });
        if !by_address && !entry.node_ports.contains(&port) {
            entry.node_ports.push(port);
        }
        named += 1;
    }
    map.sort();
    named
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_ipvs;

    const SERVICES: &str = r#"{"apiVersion":"v1","kind":"ServiceList","items":[
      {"metadata":{"name":"web","namespace":"demo"},
       "spec":{"clusterIP":"10.96.120.15","clusterIPs":["10.96.120.15"],
               "ports":[{"name":"http","port":80,"protocol":"TCP","nodePort":30080}]}},
      {"metadata":{"name":"kube-dns","namespace":"kube-system"},
       "spec":{"clusterIP":"10.96.0.10","ports":[{"name":"dns","port":53,"protocol":"UDP"}]}},
      {"metadata":{"name":"headless","namespace":"demo"},"spec":{"clusterIP":"None","ports":[{"port":80}]}}]}"#;

    #[test]
    fn ipvs_virtual_servers_get_service_names() {
        let mut map = parse_ipvs(
            "-A -t 10.96.120.15:80 -s rr\n-A -u 10.96.0.10:53 -s rr\n-A -t 172.18.0.3:30080 -s rr\n-A -t 10.1.1.1:1 -s rr\n",
        );
        let services = parse_services(SERVICES).expect("services");
        assert_eq!(attach_service_names(&mut map, &services), 3);
        let names: Vec<String> = map
            .services
            .iter()
            .map(|s| s.name.as_ref().map_or("-".into(), ToString::to_string))
            .collect();
        assert_eq!(
            names,
            [
                "-",
                "demo/web:http",
                "demo/web:http",
                "kube-system/kube-dns:dns"
            ]
        );
        let np = map
            .services
            .iter()
            .find(|s| s.port == Some(30080))
            .expect("nodeport VS");
        assert_eq!(np.node_ports, [30080]);
    }

    #[test]
    fn bad_service_json_is_an_error() {
        assert!(parse_services("{\"items\": 3}").is_err());
        assert_eq!(parse_services("[]").expect("empty").len(), 0);
    }
}
