//! Endpoints and EndpointSlice controllers: for every Service with a selector,
//! the pods it selects become addresses. Ready pods are `addresses` (Endpoints)
//! and `ready: true` (slices); unready ones `notReadyAddresses`; terminating
//! pods appear only in slices, with `serving`/`terminating` conditions, which
//! is what kube-proxy and stale-rule detection read.

use crate::store::Ptr;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{owner_ref, pod_ready};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjKey, StoreInner, str_at};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// The endpoints controller's memory: for each Service, a fingerprint of
/// everything its Endpoints and EndpointSlice are computed from (the
/// Service, its selected pods, the two objects themselves and the nodes'
/// zones, by resourceVersion). A Service whose fingerprint did not change is
/// skipped, so a settled Service costs an index lookup per pass instead of
/// rebuilding and comparing one address per pod.
#[derive(Default)]
pub struct Endpoints {
    seen: HashMap<ObjKey, u64>,
}

impl Endpoints {
    /// Reconciles Endpoints and EndpointSlices of every selecting Service.
    pub fn sync(&mut self, store: &mut StoreInner) {
        let services = store.list_arcs("", "services", None);
        let nodes = fingerprint_nodes(store);
        let mut live = HashSet::new();
        for svc in &services {
            let Some(sel) = svc
                .ptr("/spec/selector")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            else {
                continue;
            };
            if store.over_budget() {
                return;
            }
            let key = crate::store::obj_key(svc);
            live.insert(key.clone());
            let pods = selected_pods(store, svc, &LabelSelector::from_map(sel));
            let print = fingerprint(store, svc, &pods, nodes);
            if self.seen.get(&key) == Some(&print) {
                continue;
            }
            endpoints(store, svc, &pods);
            slice(store, svc, &pods);
            // Fingerprint what was written, so the next pass sees it unchanged.
            let print = fingerprint(store, svc, &pods, nodes);
            self.seen.insert(key, print);
        }
        self.seen.retain(|k, _| live.contains(k));
        remove_orphaned_endpoints(store);
    }
}

/// Pods a Service selects that have an address and are not finished.
fn selected_pods(store: &StoreInner, svc: &Value, sel: &LabelSelector) -> Vec<Arc<Value>> {
    let ns = str_at(svc, "/metadata/namespace");
    let everything = FieldSelector::default();
    store
        .select("", "pods", Some(ns), None, sel, &everything)
        .filter(|p| {
            !str_at(p, "/status/podIP").is_empty()
                && !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
        })
        .cloned()
        .collect()
}

/// Endpoints of deleted services go too (slices are garbage-collected through ownerReferences).
fn remove_orphaned_endpoints(store: &mut StoreInner) {
    let orphaned: Vec<ObjKey> = store
        .iter("", "endpoints", None, None)
        .filter(|ep| {
            ep.ptr("/metadata/labels/endpoints.kubernetes.io~1managed-by")
                .is_some()
        })
        .map(|ep| crate::store::obj_key(ep))
        .filter(|(ns, name)| store.get("", "services", ns, name).is_none())
        .collect();
    for (ns, name) in orphaned {
        store.remove("", "endpoints", &ns, &name);
    }
}

fn rv(o: &Value) -> &str {
    str_at(o, "/metadata/resourceVersion")
}

/// A hash of the nodes' resourceVersions (zones come from node labels).
fn fingerprint_nodes(store: &StoreInner) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for n in store.iter("", "nodes", None, None) {
        rv(n).hash(&mut h);
    }
    h.finish()
}

/// A hash of the inputs and outputs of one Service's endpoints.
fn fingerprint(store: &StoreInner, svc: &Value, pods: &[Arc<Value>], nodes: u64) -> u64 {
    let (ns, name) = crate::store::obj_key(svc);
    let mut h = std::hash::DefaultHasher::new();
    nodes.hash(&mut h);
    rv(svc).hash(&mut h);
    for p in pods {
        (str_at(p, "/metadata/name"), rv(p)).hash(&mut h);
    }
    store.get("", "endpoints", &ns, &name).map(rv).hash(&mut h);
    find_slice(store, svc).as_deref().map(rv).hash(&mut h);
    h.finish()
}

/// The Service's EndpointSlice (owned by it and labelled with its name).
fn find_slice(store: &StoreInner, svc: &Value) -> Option<Arc<Value>> {
    let name = str_at(svc, "/metadata/name");
    let label = format!("/metadata/labels/{}", SERVICE_NAME.replace('/', "~1"));
    let owned = store.dependents_of(
        str_at(svc, "/metadata/uid"),
        "discovery.k8s.io",
        "endpointslices",
    );
    if let Some(s) = owned.into_iter().find(|s| str_at(s, &label) == name) {
        return Some(s);
    }
    // A slice that lost its owner reference is still the Service's, by label.
    store
        .iter(
            "discovery.k8s.io",
            "endpointslices",
            Some(str_at(svc, "/metadata/namespace")),
            None,
        )
        .find(|s| str_at(s, &label) == name)
        .cloned()
}

/// Resolves a service port's targetPort against a pod (named ports look up container ports).
fn target_port(port: &Value, pod: Option<&Value>) -> Value {
    match &port["targetPort"] {
        Value::String(name) => pod
            .and_then(|p| p.ptr("/spec/containers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|cp| cp["name"] == name.as_str())
            .map_or(json!(0), |cp| cp["containerPort"].clone()),
        Value::Null => port["port"].clone(),
        other => other.clone(),
    }
}

fn ports(svc: &Value, pod: Option<&Value>) -> Vec<Value> {
    svc.ptr("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let mut out = json!({ "port": target_port(p, pod), "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP")) });
            if let Some(n) = p.get("name").filter(|n| !n.is_null()) {
                out["name"] = n.clone();
            }
            out
        })
        .collect()
}

fn address(pod: &Value) -> Value {
    json!({
        "ip": pod["status"]["podIP"], "nodeName": pod["spec"]["nodeName"],
        "targetRef": { "kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"] }
    })
}

fn endpoints(store: &mut StoreInner, svc: &Value, pods: &[Arc<Value>]) {
    let (ns, name) = crate::store::obj_key(svc);
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| p.ptr("/metadata/deletionTimestamp").is_none())
        .map(|p| &**p)
        .collect();
    let ready: Vec<Value> = live
        .iter()
        .filter(|p| pod_ready(p))
        .map(|p| address(p))
        .collect();
    let unready: Vec<Value> = live
        .iter()
        .filter(|p| !pod_ready(p))
        .map(|p| address(p))
        .collect();
    let mut subset = json!({ "ports": ports(svc, live.first().copied()) });
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !unready.is_empty() {
        subset["notReadyAddresses"] = json!(unready);
    }
    let subsets = if live.is_empty() {
        json!([])
    } else {
        json!([subset])
    };
    match store.get("", "endpoints", &ns, &name).cloned() {
        Some(mut ep) => {
            ep["subsets"] = subsets;
            store.put_arc("", "endpoints", ep);
        }
        None => {
            let ep = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": { "name": name, "namespace": ns, "labels": { "endpoints.kubernetes.io/managed-by": "endpoint-controller" } },
                "subsets": subsets
            });
            if let Some(def) = store.resource("", "endpoints").cloned() {
                let _ = store.create(&def, &ns, ep, false);
            }
        }
    }
}

fn slice(store: &mut StoreInner, svc: &Value, pods: &[Arc<Value>]) {
    let (ns, name) = crate::store::obj_key(svc);
    let zone_of = |node: &str| {
        store
            .get("", "nodes", "", node)
            .and_then(|n| n.ptr("/metadata/labels/topology.kubernetes.io~1zone"))
            .cloned()
    };
    let eps: Vec<Value> = pods
        .iter()
        .map(|p| {
            let ready = pod_ready(p);
            let terminating = p.ptr("/metadata/deletionTimestamp").is_some();
            let mut ep = json!({
                "addresses": [p["status"]["podIP"]],
                "conditions": { "ready": ready && !terminating, "serving": ready || (terminating && str_at(p, "/status/phase") == "Running"), "terminating": terminating },
                "nodeName": p["spec"]["nodeName"],
                "targetRef": { "kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"] }
            });
            if let Some(zone) = zone_of(str_at(p, "/spec/nodeName")) {
                ep["zone"] = zone;
            }
            ep
        })
        .collect();
    let ports = ports(svc, pods.first().map(|p| &**p));
    match find_slice(store, svc).map(Arc::unwrap_or_clone) {
        Some(mut s) => {
            s["endpoints"] = json!(eps);
            s["ports"] = json!(ports);
            store.put_arc("discovery.k8s.io", "endpointslices", s);
        }
        None => {
            let s = json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": { "generateName": format!("{name}-"), "namespace": ns, "ownerReferences": [owner_ref(svc)],
                              "labels": { SERVICE_NAME: name, MANAGED_BY: "endpointslice-controller.k8s.io" } },
                "addressType": "IPv4", "endpoints": eps, "ports": ports
            });
            if let Some(def) = store
                .resource("discovery.k8s.io", "endpointslices")
                .cloned()
            {
                let _ = store.create(&def, &ns, s, false);
            }
        }
    }
}
