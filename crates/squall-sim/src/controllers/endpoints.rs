//! Endpoints and EndpointSlice controllers: for every Service with a selector,
//! the pods it selects become addresses. Ready pods are `addresses` (Endpoints)
//! and `ready: true` (slices); unready ones `notReadyAddresses`; terminating
//! pods appear only in slices, with `serving`/`terminating` conditions, which
//! is what kube-proxy and stale-rule detection read.

use serde_json::{Value, json};

use super::{owner_ref, pod_ready};
use crate::selector::LabelSelector;
use crate::store::{StoreInner, str_at};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// Reconciles Endpoints and EndpointSlices of every selecting Service.
pub fn sync(store: &mut StoreInner) {
    let services = store.list_owned("", "services", None);
    for svc in &services {
        let Some(sel) = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        else {
            continue;
        };
        let sel = LabelSelector::from_map(sel);
        let ns = str_at(svc, "/metadata/namespace");
        let pods: Vec<Value> = store
            .list("", "pods", Some(ns))
            .into_iter()
            .filter(|p| {
                sel.matches(p)
                    && !str_at(p, "/status/podIP").is_empty()
                    && !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
            })
            .cloned()
            .collect();
        endpoints(store, svc, &pods);
        slice(store, svc, &pods);
    }
    // Endpoints of deleted services go too (slices are garbage-collected through ownerReferences).
    for ep in store.list_owned("", "endpoints", None) {
        let (ns, name) = crate::store::obj_key(&ep);
        let managed = ep
            .pointer("/metadata/labels/endpoints.kubernetes.io/managed-by")
            .is_some();
        if managed && store.get("", "services", &ns, &name).is_none() {
            store.remove("", "endpoints", &ns, &name);
        }
    }
}

/// Resolves a service port's targetPort against a pod (named ports look up container ports).
fn target_port(port: &Value, pod: Option<&Value>) -> Value {
    match &port["targetPort"] {
        Value::String(name) => pod
            .and_then(|p| p.pointer("/spec/containers"))
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
    svc.pointer("/spec/ports")
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

fn endpoints(store: &mut StoreInner, svc: &Value, pods: &[Value]) {
    let (ns, name) = crate::store::obj_key(svc);
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
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
            store.put("", "endpoints", ep);
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

fn slice(store: &mut StoreInner, svc: &Value, pods: &[Value]) {
    let (ns, name) = crate::store::obj_key(svc);
    let zone_of = |node: &str| {
        store
            .get("", "nodes", "", node)
            .and_then(|n| n.pointer("/metadata/labels/topology.kubernetes.io~1zone"))
            .cloned()
    };
    let eps: Vec<Value> = pods
        .iter()
        .map(|p| {
            let ready = pod_ready(p);
            let terminating = p.pointer("/metadata/deletionTimestamp").is_some();
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
    let ports = ports(svc, pods.first());
    let existing = store
        .list("discovery.k8s.io", "endpointslices", Some(&ns))
        .into_iter()
        .find(|s| {
            str_at(
                s,
                &format!("/metadata/labels/{}", SERVICE_NAME.replace('/', "~1")),
            ) == name
        })
        .cloned();
    match existing {
        Some(mut s) => {
            s["endpoints"] = json!(eps);
            s["ports"] = json!(ports);
            store.put("discovery.k8s.io", "endpointslices", s);
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
