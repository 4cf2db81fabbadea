//! The slice of the `discovery.k8s.io/v1` EndpointSlice API that stale-rule
//! detection needs, decoded with serde from JSON as the API server (or
//! `kubectl get endpointslices -o json`) serves it: an `EndpointSliceList`,
//! a `List`, a bare JSON array of slices, or one slice. Unknown fields are
//! ignored; missing conditions get the API's documented defaults.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{DataplaneError, Result};
use crate::model::Protocol;

/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label the EndpointSlice controller puts on slices of headless Services,
/// which kube-proxy does not program.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Object metadata fields we read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `endpoints[].conditions`. `None` means "unknown"; the API says to treat
/// unknown `ready` as ready, `serving` as `ready`, `terminating` as false.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Conditions {
    /// Ready to receive traffic.
    pub ready: Option<bool>,
    /// Serving (may be terminating).
    pub serving: Option<bool>,
    /// Terminating.
    pub terminating: Option<bool>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceEndpoint {
    /// Addresses (kube-proxy uses the first).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Conditions.
    #[serde(default)]
    pub conditions: Conditions,
    /// Node hosting the endpoint.
    pub node_name: Option<String>,
}

impl SliceEndpoint {
    /// Ready, with the API default.
    pub fn is_ready(&self) -> bool {
        self.conditions.ready.unwrap_or(true)
    }

    /// Serving and terminating: kube-proxy's fallback set when a Service
    /// has no ready endpoint at all.
    pub fn is_serving_terminating(&self) -> bool {
        self.conditions.serving.unwrap_or_else(|| self.is_ready())
            && self.conditions.terminating.unwrap_or(false)
    }
}

/// One port of a slice.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlicePort {
    /// Port name, matched against the Service port name.
    pub name: Option<String>,
    /// Target port number.
    pub port: Option<u16>,
    /// `TCP` (default), `UDP`, `SCTP`.
    pub protocol: Option<String>,
}

impl SlicePort {
    /// Protocol with the API default (TCP).
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
            .as_deref()
            .map_or(Some(Protocol::Tcp), Protocol::parse)
    }
}

/// A `discovery.k8s.io/v1` EndpointSlice.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// Endpoints.
    #[serde(default)]
    pub endpoints: Vec<SliceEndpoint>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<SlicePort>,
}

impl EndpointSlice {
    /// The owning Service's name, from the label.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }

    /// Whether kube-proxy programs this slice at all.
    pub fn is_proxied(&self) -> bool {
        !self.metadata.labels.contains_key(HEADLESS_LABEL)
            && matches!(self.address_type.as_str(), "IPv4" | "IPv6")
            && self.service_name().is_some()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SliceDoc {
    List { items: Vec<EndpointSlice> },
    Array(Vec<EndpointSlice>),
    One(Box<EndpointSlice>),
}

/// Decode EndpointSlices from any of the accepted JSON shapes.
pub fn parse_endpoint_slices(json: &str) -> Result<Vec<EndpointSlice>> {
    let doc: SliceDoc = serde_json::from_str(json).map_err(|source| DataplaneError::Json {
        what: "EndpointSlice JSON",
        source,
    })?;
    Ok(match doc {
        SliceDoc::List { items } => items,
        SliceDoc::Array(items) => items,
        SliceDoc::One(slice) => vec![*slice],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSliceList",
      "metadata":{"resourceVersion":"42"},
      "items":[{"metadata":{"name":"web-x","namespace":"demo",
        "labels":{"kubernetes.io/service-name":"web"}},
        "addressType":"IPv4",
        "endpoints":[{"addresses":["10.244.1.5"],"conditions":{"ready":true},"nodeName":"n1"},
                     {"addresses":["10.244.1.9"],"conditions":{"ready":false,"serving":true,"terminating":true}},
                     {"addresses":["10.244.2.7"]}],
        "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]}"#;

    #[test]
    fn decodes_list_array_and_single_with_defaults() {
        let slices = parse_endpoint_slices(LIST).expect("list");
        assert_eq!(slices.len(), 1);
        let s = &slices[0];
        assert_eq!(s.service_name(), Some("web"));
        assert!(s.is_proxied());
        assert!(s.endpoints[0].is_ready());
        assert!(!s.endpoints[1].is_ready() && s.endpoints[1].is_serving_terminating());
        assert!(s.endpoints[2].is_ready(), "missing ready means ready");
        assert_eq!(s.ports[0].protocol(), Some(Protocol::Tcp));
        let item =
            &LIST[LIST.find("[{\"metadata\"").expect("items")..LIST.rfind('}').expect("end")];
        assert_eq!(parse_endpoint_slices(item).expect("array").len(), 1);
        let one = &item[1..item.len() - 1];
        assert_eq!(parse_endpoint_slices(one).expect("one").len(), 1);
    }

    #[test]
    fn headless_and_fqdn_slices_are_not_proxied_and_bad_json_errors() {
        let mut s = parse_endpoint_slices(LIST).expect("list").remove(0);
        s.metadata
            .labels
            .insert(HEADLESS_LABEL.into(), String::new());
        assert!(!s.is_proxied());
        s.metadata.labels.remove(HEADLESS_LABEL);
        s.address_type = "FQDN".into();
        assert!(!s.is_proxied());
        assert!(parse_endpoint_slices("{not json").is_err());
        assert!(parse_endpoint_slices("42").is_err());
    }
}
