//! The scheduler: binds pending pods to nodes.
//!
//! A node is feasible when it is Ready, not cordoned (`spec.unschedulable`),
//! its labels satisfy the pod's `nodeSelector`, and the pod tolerates its
//! NoSchedule/NoExecute taints. Among feasible nodes the one running the
//! fewest pods wins (ties by name), which spreads replicas across nodes.
//! Unschedulable pods get `PodScheduled=False` with the scheduler's message.

use serde_json::{Value, json};

use super::{condition_true, pod_active, set_condition};
use crate::store::{StoreInner, str_at};

/// Why a node cannot take a pod, or `None` if it can.
fn unfit(node: &Value, pod: &Value) -> Option<&'static str> {
    if !condition_true(node, "Ready") {
        return Some("node(s) were not ready");
    }
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        return Some("node(s) were unschedulable");
    }
    let labels = node.pointer("/metadata/labels");
    let selector_ok = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    if !selector_ok {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    let taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let untolerated = taints
        .filter(|t| t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
        .any(|t| !tolerates(pod, t));
    if untolerated {
        return Some("node(s) had untolerated taint");
    }
    None
}

/// Whether a pod tolerates a taint.
pub fn tolerates(pod: &Value, taint: &Value) -> bool {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| {
            let key_ok = t
                .get("key")
                .is_none_or(|k| k.is_null() || k == "" || *k == taint["key"]);
            let exists = t["operator"] == "Exists";
            let value_ok = exists
                || t.get("value").unwrap_or(&json!("")) == taint.get("value").unwrap_or(&json!(""));
            let effect_ok = t
                .get("effect")
                .is_none_or(|e| e.is_null() || e == "" || *e == taint["effect"]);
            key_ok && value_ok && effect_ok && (exists || t.get("key").is_some())
        })
}

/// Binds every pending, unbound pod it can.
pub fn sync(store: &mut StoreInner) {
    let nodes = store.list_owned("", "nodes", None);
    let now = store.clock.timestamp();
    let pending: Vec<Value> = store
        .list("", "pods", None)
        .into_iter()
        .filter(|p| str_at(p, "/spec/nodeName").is_empty() && pod_active(p))
        .filter(|p| matches!(str_at(p, "/spec/schedulerName"), "" | "default-scheduler"))
        .cloned()
        .collect();
    for pod in pending {
        let load = |store: &StoreInner, node: &str| {
            store
                .list("", "pods", None)
                .into_iter()
                .filter(|p| str_at(p, "/spec/nodeName") == node && pod_active(p))
                .count()
        };
        let mut reasons: Vec<&str> = Vec::new();
        let mut best: Option<(usize, String)> = None;
        for n in &nodes {
            let name = str_at(n, "/metadata/name");
            match unfit(n, &pod) {
                Some(r) => reasons.push(r),
                None => {
                    let l = load(store, name);
                    if best.as_ref().is_none_or(|(bl, _)| l < *bl) {
                        best = Some((l, name.to_string()));
                    }
                }
            }
        }
        let mut next = pod.clone();
        match best {
            Some((_, node)) => {
                next["spec"]["nodeName"] = json!(node);
                set_condition(
                    &mut next,
                    json!({ "type": "PodScheduled", "status": "True" }),
                    &now,
                );
            }
            None => {
                let msg = unschedulable_message(nodes.len(), &reasons);
                set_condition(
                    &mut next,
                    json!({ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg }),
                    &now,
                );
            }
        }
        let before = pod.pointer("/status/conditions").cloned();
        let changed = next.pointer("/status/conditions").cloned() != before;
        let stored = store.put("", "pods", next);
        if changed {
            scheduling_event(store, &stored);
        }
    }
}

/// `Scheduled` or `FailedScheduling`, as the default scheduler reports them.
fn scheduling_event(store: &mut StoreInner, pod: &Value) {
    let node = str_at(pod, "/spec/nodeName");
    if node.is_empty() {
        let msg = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .to_string();
        super::events::record(
            store,
            pod,
            "Warning",
            "FailedScheduling",
            &msg,
            "default-scheduler",
        );
    } else {
        let msg = format!(
            "Successfully assigned {}/{} to {node}",
            str_at(pod, "/metadata/namespace"),
            str_at(pod, "/metadata/name")
        );
        super::events::record(store, pod, "Normal", "Scheduled", &msg, "default-scheduler");
    }
}

fn unschedulable_message(total: usize, reasons: &[&str]) -> String {
    let mut counts: Vec<(usize, &str)> = Vec::new();
    for r in reasons {
        match counts.iter_mut().find(|(_, x)| x == r) {
            Some(c) => c.0 += 1,
            None => counts.push((1, r)),
        }
    }
    let parts: Vec<String> = counts.iter().map(|(n, r)| format!("{n} {r}")).collect();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cordoned_and_mismatched_nodes_are_unfit() {
        let ready = json!([{ "type": "Ready", "status": "True" }]);
        let node = json!({ "metadata": { "labels": { "disk": "ssd" } }, "status": { "conditions": ready } });
        let pod = json!({ "spec": { "nodeSelector": { "disk": "ssd" } } });
        assert_eq!(unfit(&node, &pod), None);
        let mut cordoned = node.clone();
        cordoned["spec"] = json!({ "unschedulable": true });
        assert_eq!(unfit(&cordoned, &pod), Some("node(s) were unschedulable"));
        let other = json!({ "spec": { "nodeSelector": { "disk": "hdd" } } });
        assert!(unfit(&node, &other).is_some());
        let mut tainted = node.clone();
        tainted["spec"] =
            json!({ "taints": [{ "key": "k", "value": "v", "effect": "NoSchedule" }] });
        assert!(unfit(&tainted, &pod).is_some());
        let tolerant = json!({ "spec": { "tolerations": [{ "key": "k", "operator": "Exists" }] } });
        assert_eq!(unfit(&tainted, &tolerant), None);
        assert_eq!(
            unschedulable_message(3, &["a", "a", "b"]),
            "0/3 nodes are available: 2 a, 1 b."
        );
    }
}
