//! The scheduler: binds pending pods to nodes.
//!
//! A node is feasible when it is Ready, not cordoned (`spec.unschedulable`),
//! its labels satisfy the pod's `nodeSelector`, and the pod tolerates its
//! NoSchedule/NoExecute taints. Among feasible nodes the one running the
//! fewest pods wins (ties by name), which spreads replicas across nodes; a
//! node holding its `allocatable.pods` is full ("Too many pods").
//! Unschedulable pods get `PodScheduled=False` with the scheduler's message.

use crate::store::Ptr;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{condition_true, pod_active, set_condition};
use crate::ops::controller_uid;
use crate::store::{StoreInner, str_at};

/// Why a node cannot take a pod, or `None` if it can.
fn unfit(node: &Value, pod: &Value) -> Option<&'static str> {
    if !condition_true(node, "Ready") {
        return Some("node(s) were not ready");
    }
    if node.ptr("/spec/unschedulable") == Some(&json!(true)) {
        return Some("node(s) were unschedulable");
    }
    let labels = node.ptr("/metadata/labels");
    let selector_ok = pod
        .ptr("/spec/nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    if !selector_ok {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    let taints = node
        .ptr("/spec/taints")
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
    pod.ptr("/spec/tolerations")
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

/// A node's `status.allocatable.pods` (the apiserver's default, 110, if unset).
fn pod_capacity(node: &Value) -> usize {
    node.ptr("/status/allocatable/pods")
        .and_then(|v| match v {
            Value::String(s) => s.parse().ok(),
            other => other.as_u64().and_then(|n| usize::try_from(n).ok()),
        })
        .unwrap_or(110)
}

/// Binds every pending, unbound pod it can. Unbound pods and each node's
/// pods come from the store's node index, and the load of every node is
/// counted once per pass, so a pass costs O(pods + pending × nodes).
pub fn sync(store: &mut StoreInner) {
    let pending: Vec<Arc<Value>> = store
        .pods_on_node("")
        .into_iter()
        .filter(|p| pod_active(p))
        .filter(|p| matches!(str_at(p, "/spec/schedulerName"), "" | "default-scheduler"))
        .collect();
    if pending.is_empty() {
        return;
    }
    let nodes: Vec<Arc<Value>> = store.iter("", "nodes", None, None).cloned().collect();
    let mut load: HashMap<String, usize> = nodes
        .iter()
        .map(|n| {
            let name = str_at(n, "/metadata/name");
            let active = store
                .pods_on_node(name)
                .iter()
                .filter(|p| pod_active(p))
                .count();
            (name.to_string(), active)
        })
        .collect();
    let now = store.clock.timestamp();
    let mut siblings = Siblings::default();
    for pod in pending {
        if store.over_budget() {
            return;
        }
        let owner = controller_uid(&pod).unwrap_or_default().to_string();
        let spread = siblings.on_nodes(store, &owner);
        let choice = choose(&nodes, &load, spread, &pod);
        if let Ok(node) = &choice {
            *load.entry(node.clone()).or_default() += 1;
            *spread.entry(node.clone()).or_default() += 1;
        }
        bind(store, &pod, choice, &now);
    }
}

/// Per controller (ReplicaSet, StatefulSet…), how many of its active pods
/// each node already runs: the default spreading of kube-scheduler puts a
/// controller's replicas on different nodes before it balances total load,
/// which is what lets a budget-protected Deployment of two survive a drain.
/// Counted once per owner per pass from the store's owner index.
#[derive(Default)]
struct Siblings(HashMap<String, HashMap<String, usize>>);

impl Siblings {
    fn on_nodes(&mut self, store: &StoreInner, owner: &str) -> &mut HashMap<String, usize> {
        self.0.entry(owner.to_string()).or_insert_with(|| {
            let mut counts = HashMap::new();
            if owner.is_empty() {
                return counts;
            }
            for p in store.dependents_of(owner, "", "pods") {
                let node = str_at(&p, "/spec/nodeName");
                if !node.is_empty() && pod_active(&p) {
                    *counts.entry(node.to_string()).or_default() += 1;
                }
            }
            counts
        })
    }
}

/// The feasible node with the fewest pods of the same controller, then the
/// fewest pods in all (ties by name), or the scheduler's message.
fn choose(
    nodes: &[Arc<Value>],
    load: &HashMap<String, usize>,
    siblings: &HashMap<String, usize>,
    pod: &Value,
) -> Result<String, String> {
    let mut reasons: Vec<&str> = Vec::new();
    let mut best: Option<((usize, usize), &str)> = None;
    for n in nodes {
        let name = str_at(n, "/metadata/name");
        let l = load.get(name).copied().unwrap_or(0);
        let score = (siblings.get(name).copied().unwrap_or(0), l);
        let why = unfit(n, pod).or((l >= pod_capacity(n)).then_some("Too many pods"));
        match why {
            Some(r) => reasons.push(r),
            None if best.is_none_or(|(bs, _)| score < bs) => best = Some((score, name)),
            None => {}
        }
    }
    best.map(|(_, n)| n.to_string())
        .ok_or_else(|| unschedulable_message(nodes.len(), &reasons))
}

/// Writes the binding (or the Unschedulable condition) and its event.
fn bind(store: &mut StoreInner, pod: &Value, choice: Result<String, String>, now: &str) {
    let mut next = pod.clone();
    match choice {
        Ok(node) => {
            next["spec"]["nodeName"] = json!(node);
            set_condition(
                &mut next,
                json!({ "type": "PodScheduled", "status": "True" }),
                now,
            );
        }
        Err(msg) => {
            set_condition(
                &mut next,
                json!({ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg }),
                now,
            );
        }
    }
    let changed = next.ptr("/status/conditions") != pod.ptr("/status/conditions");
    let stored = store.put_arc("", "pods", next);
    if changed {
        scheduling_event(store, &stored);
    }
}

/// `Scheduled` or `FailedScheduling`, as the default scheduler reports them.
fn scheduling_event(store: &mut StoreInner, pod: &Value) {
    let node = str_at(pod, "/spec/nodeName");
    if node.is_empty() {
        let msg = pod
            .ptr("/status/conditions")
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
        let full = json!({ "metadata": { "name": "n1" }, "status": { "conditions": ready, "allocatable": { "pods": "2" } } });
        let roomy = json!({ "metadata": { "name": "n2" }, "status": { "conditions": ready } });
        let nodes = [Arc::new(full), Arc::new(roomy)];
        let pod = json!({});
        let load = |a, b| HashMap::from([("n1".to_string(), a), ("n2".to_string(), b)]);
        assert_eq!(
            choose(&nodes, &load(1, 5), &HashMap::new(), &pod),
            Ok("n1".to_string()),
            "least loaded"
        );
        assert_eq!(
            choose(&nodes, &load(2, 5), &HashMap::new(), &pod),
            Ok("n2".to_string()),
            "n1 is full"
        );
        assert_eq!(
            choose(&nodes, &load(2, 110), &HashMap::new(), &pod),
            Err("0/2 nodes are available: 2 Too many pods.".to_string())
        );
        // A sibling on the emptier node outweighs total load.
        let siblings = HashMap::from([("n1".to_string(), 1)]);
        let roomy_too = json!({ "metadata": { "name": "n1" }, "status": { "conditions": ready } });
        let two = [Arc::new(roomy_too), nodes[1].clone()];
        assert_eq!(
            choose(&two, &load(0, 5), &siblings, &pod),
            Ok("n2".to_string()),
            "spread the controller's replicas first"
        );
        assert_eq!(
            unschedulable_message(3, &["a", "a", "b"]),
            "0/3 nodes are available: 2 a, 1 b."
        );
    }
}
