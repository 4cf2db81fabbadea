//! The resource table: which kinds the simulator serves and how.
//!
//! One row per resource (group, versions, kind, plural, scope, short names,
//! subresources) drives routing, discovery documents and error wording. Built-in
//! rows are static; rows for custom resources are added when a
//! CustomResourceDefinition is created, exactly as the apiserver starts serving
//! a CRD's group once it is established.

use crate::store::Ptr;
use serde_json::{Value, json};

/// Verbs for ordinary read-write resources.
const RW_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    /// API group ("" for core).
    pub group: String,
    /// Served versions, preferred first.
    pub versions: Vec<String>,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural, e.g. `deployments`.
    pub plural: String,
    /// Singular, e.g. `deployment`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Whether a `status` subresource exists (status is then ignored on the main endpoint).
    pub has_status: bool,
    /// Whether a `scale` subresource exists.
    pub has_scale: bool,
}

impl ResourceDef {
    fn builtin(
        group: &str,
        versions: &[&str],
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        ResourceDef {
            group: group.to_string(),
            versions: versions.iter().map(ToString::to_string).collect(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: short.iter().map(ToString::to_string).collect(),
            has_status: false,
            has_scale: false,
        }
    }

    fn status(mut self) -> Self {
        self.has_status = true;
        self
    }

    /// `apiVersion` string for a version of this resource.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// `apiVersion` of the preferred version.
    pub fn preferred_api_version(&self) -> String {
        self.api_version(self.versions.first().map_or("v1", String::as_str))
    }

    /// Whether a version is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The `APIResource` entries for discovery (the resource and its subresources).
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": RW_VERBS,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if self.group.is_empty() && self.plural == "namespaces" {
            main["verbs"] = json!([
                "create", "delete", "get", "list", "patch", "update", "watch"
            ]);
        }
        let mut out = vec![main];
        let sub = |name: &str, kind: &str, verbs: &[&str]| json!({ "name": format!("{}/{name}", self.plural), "singularName": "", "namespaced": self.namespaced, "kind": kind, "verbs": verbs });
        if self.has_status {
            out.push(sub("status", &self.kind, &["get", "patch", "update"]));
        }
        if self.has_scale {
            let mut s = sub("scale", "Scale", &["get", "patch", "update"]);
            s["group"] = json!("autoscaling");
            s["version"] = json!("v1");
            out.push(s);
        }
        if self.group.is_empty() && self.plural == "pods" {
            let mut e = sub("eviction", "Eviction", &["create"]);
            e["group"] = json!("policy");
            e["version"] = json!("v1");
            out.push(e);
            out.push(sub("log", "Pod", &["get"]));
        }
        out
    }
}

/// Flag: the resource has a `status` subresource.
const ST: u8 = 1;
/// Flag: the resource has a `scale` subresource.
const SC: u8 = 2;

/// (group, kind, plural, namespaced, short names, flags) of the single-version (v1) built-ins.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    u8,
);

const V1_TABLE: &[Row] = &[
    ("", "Namespace", "namespaces", false, &["ns"], ST),
    ("", "Node", "nodes", false, &["no"], ST),
    ("", "Pod", "pods", true, &["po"], ST),
    ("", "Service", "services", true, &["svc"], ST),
    ("", "Endpoints", "endpoints", true, &["ep"], 0),
    ("", "ConfigMap", "configmaps", true, &["cm"], 0),
    ("", "Secret", "secrets", true, &[], 0),
    ("", "ServiceAccount", "serviceaccounts", true, &["sa"], 0),
    ("", "Event", "events", true, &["ev"], 0),
    ("events.k8s.io", "Event", "events", true, &["ev"], 0),
    (
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
        0,
    ),
    (
        "apps",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        ST | SC,
    ),
    ("apps", "ReplicaSet", "replicasets", true, &["rs"], ST | SC),
    (
        "apps",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        ST | SC,
    ),
    ("apps", "DaemonSet", "daemonsets", true, &["ds"], ST),
    (
        "networking.k8s.io",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        ST,
    ),
    ("batch", "Job", "jobs", true, &[], ST),
    ("batch", "CronJob", "cronjobs", true, &["cj"], ST),
    (
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        ST,
    ),
    ("rbac.authorization.k8s.io", "Role", "roles", true, &[], 0),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        0,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        0,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        0,
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        ST,
    ),
];

/// The built-in resources, including the Istio kinds (served as if their CRDs were installed).
pub fn builtin() -> Vec<ResourceDef> {
    let mut all: Vec<ResourceDef> = V1_TABLE
        .iter()
        .map(|&(group, kind, plural, namespaced, short, flags)| {
            let mut r = ResourceDef::builtin(group, &["v1"], kind, plural, namespaced, short);
            r.has_status = flags & ST != 0;
            r.has_scale = flags & SC != 0;
            r
        })
        .collect();
    let hpa = ResourceDef::builtin(
        "autoscaling",
        &["v2", "v1"],
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
    );
    all.push(hpa.status());
    all.push(istio("VirtualService", "virtualservices", &["vs"]));
    all.push(istio("DestinationRule", "destinationrules", &["dr"]));
    all.push(istio("Gateway", "gateways", &["gw"]));
    all
}

fn istio(kind: &str, plural: &str, short: &[&str]) -> ResourceDef {
    let mut r = ResourceDef::builtin(
        "networking.istio.io",
        &["v1", "v1beta1", "v1alpha3"],
        kind,
        plural,
        true,
        short,
    );
    r.short_names.clear();
    r.short_names.extend(short.iter().map(ToString::to_string));
    r.has_status = true;
    r
}

/// Builds a row from a CustomResourceDefinition object, if it is well formed.
pub fn from_crd(crd: &Value) -> Option<ResourceDef> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(ToString::to_string);
    let plural = str_of(names, "plural")?;
    let kind = str_of(names, "kind")?;
    let versions: Vec<&Value> = spec
        .get("versions")?
        .as_array()?
        .iter()
        .filter(|v| v["served"] != json!(false))
        .collect();
    // Storage version first, so it becomes the preferred one.
    let mut ordered: Vec<String> = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .filter_map(|v| str_of(v, "name"))
        .collect();
    ordered.extend(
        versions
            .iter()
            .filter(|v| v["storage"] != json!(true))
            .filter_map(|v| str_of(v, "name")),
    );
    if ordered.is_empty() {
        return None;
    }
    let has_status = versions
        .iter()
        .any(|v| v.ptr("/subresources/status").is_some());
    let has_scale = versions
        .iter()
        .any(|v| v.ptr("/subresources/scale").is_some());
    Some(ResourceDef {
        group: str_of(spec, "group")?,
        versions: ordered,
        singular: str_of(names, "singular").unwrap_or_else(|| kind.to_ascii_lowercase()),
        kind,
        plural,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: names
            .get("shortNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(ToString::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        has_status,
        has_scale,
    })
}

/// The CRD object that the simulator reports for a built-in custom kind (Istio).
pub fn crd_for(def: &ResourceDef) -> Value {
    let versions: Vec<Value> = def
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut version = json!({
                "name": v, "served": true, "storage": i == 0,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                "subresources": { "status": {} }
            });
            let columns = printer_columns(&def.plural);
            if !columns.is_empty() {
                version["additionalPrinterColumns"] = json!(columns);
            }
            version
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{}.{}", def.plural, def.group) },
        "spec": {
            "group": def.group,
            "names": { "kind": def.kind, "plural": def.plural, "singular": def.singular, "shortNames": def.short_names, "listKind": format!("{}List", def.kind) },
            "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
            "versions": versions,
        },
        "status": { "conditions": [{ "type": "Established", "status": "True", "reason": "InitialNamesAccepted" }] }
    })
}

/// The `additionalPrinterColumns` Istio's own CRDs declare (every served
/// version has the same), so `kubectl get virtualservices` prints GATEWAYS
/// and HOSTS as on a cluster with Istio installed.
fn printer_columns(plural: &str) -> Vec<Value> {
    let age = json!({ "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC. Populated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata" });
    let column = |name: &str, path: &str, description: &str| json!({ "name": name, "type": "string", "jsonPath": path, "description": description });
    match plural {
        "virtualservices" => vec![
            column(
                "Gateways",
                ".spec.gateways",
                "The names of gateways and sidecars that should apply these routes",
            ),
            column(
                "Hosts",
                ".spec.hosts",
                "The destination hosts to which traffic is being sent",
            ),
            age,
        ],
        "destinationrules" => vec![
            column(
                "Host",
                ".spec.host",
                "The name of a service from the service registry",
            ),
            age,
        ],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_kinds_are_registered_at_three_versions() {
        let t = builtin();
        let vs = t
            .iter()
            .find(|r| r.plural == "virtualservices")
            .expect("virtualservices row");
        assert_eq!(vs.versions, ["v1", "v1beta1", "v1alpha3"]);
        assert_eq!(vs.preferred_api_version(), "networking.istio.io/v1");
    }

    #[test]
    fn pods_advertise_eviction_in_policy_v1() {
        let t = builtin();
        let pods = t.iter().find(|r| r.plural == "pods").expect("pods row");
        let e = pods.discovery_entries();
        let ev = e
            .iter()
            .find(|x| x["name"] == "pods/eviction")
            .expect("eviction entry");
        assert_eq!(ev["group"], "policy");
        assert_eq!(ev["kind"], "Eviction");
    }

    #[test]
    fn crd_round_trips_through_from_crd() {
        let t = builtin();
        let dr = t
            .iter()
            .find(|r| r.plural == "destinationrules")
            .expect("row");
        let back = from_crd(&crd_for(dr)).expect("parse");
        assert_eq!(&back, dr);
    }
}
