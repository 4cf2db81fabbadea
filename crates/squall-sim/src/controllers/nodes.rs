//! The node lifecycle controller: a NotReady node gets the
//! `node.kubernetes.io/not-ready` NoSchedule and NoExecute taints, and pods
//! that do not tolerate NoExecute are evicted — at once, or after their
//! `tolerationSeconds` (300 s by default, added to every pod as the
//! DefaultTolerationSeconds admission plugin does). Evicted pods stay
//! Terminating while their node is down, as the kubelet cannot confirm; their
//! controllers replace them elsewhere.

use crate::store::Ptr;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::condition_true;
use super::scheduler::tolerates;
use crate::store::{StoreInner, str_at};

/// The taint key the controller manages.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Per-node state: the sim instant each node was first seen with a NoExecute taint.
#[derive(Default)]
pub struct NodeLifecycle {
    tainted_since: HashMap<String, Duration>,
}

impl NodeLifecycle {
    /// Taints and evicts; returns the sim instant of the next timed eviction.
    pub fn sync(&mut self, store: &mut StoreInner) -> Option<Duration> {
        let now = store.clock.now();
        let ts = store.clock.timestamp();
        let nodes = store.list_arcs("", "nodes", None);
        self.tainted_since
            .retain(|n, _| nodes.iter().any(|x| str_at(x, "/metadata/name") == n));
        let mut next: Option<Duration> = None;
        for node in nodes {
            let name = str_at(&node, "/metadata/name").to_string();
            let ready = condition_true(&node, "Ready");
            let node = if ready && untainted(&node) {
                node
            } else {
                taint(store, Arc::unwrap_or_clone(node), !ready, &ts)
            };
            let no_execute = node
                .ptr("/spec/taints")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|t| t["effect"] == "NoExecute"));
            if no_execute {
                let since = *self.tainted_since.entry(name).or_insert(now);
                let due = evict(store, &node, now.saturating_sub(since)).map(|d| since + d);
                next = next.into_iter().chain(due).min();
            } else {
                self.tainted_since.remove(&name);
            }
        }
        next
    }
}

/// Whether a node has no taints at all (nothing to remove; the usual case,
/// checked without copying the node).
fn untainted(node: &Value) -> bool {
    node.get("spec")
        .and_then(Value::as_object)
        .is_some_and(|spec| !spec.contains_key("taints"))
}

/// Adds or removes the not-ready taints; returns the node as stored.
fn taint(store: &mut StoreInner, mut node: Value, not_ready: bool, ts: &str) -> Arc<Value> {
    let existing: Vec<Value> = node
        .ptr("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let added = existing
        .iter()
        .find(|t| t["key"] == NOT_READY)
        .and_then(|t| t.get("timeAdded"))
        .cloned()
        .unwrap_or(json!(ts));
    let mut taints: Vec<Value> = existing
        .into_iter()
        .filter(|t| t["key"] != NOT_READY)
        .collect();
    if not_ready {
        taints.push(json!({ "key": NOT_READY, "effect": "NoSchedule", "timeAdded": added }));
        taints.push(json!({ "key": NOT_READY, "effect": "NoExecute", "timeAdded": added }));
    }
    if !node["spec"].is_object() {
        node["spec"] = json!({});
    }
    if taints.is_empty() {
        if let Some(spec) = node["spec"].as_object_mut() {
            spec.remove("taints");
        }
    } else {
        node["spec"]["taints"] = json!(taints);
    }
    store.put_arc("", "nodes", node)
}

/// Evicts the node's pods whose toleration of NoExecute taints has run out.
/// Returns the shortest remaining toleration (counted from the taint).
fn evict(store: &mut StoreInner, node: &Value, down_for: Duration) -> Option<Duration> {
    let taints: Vec<Value> = node
        .ptr("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t["effect"] == "NoExecute")
        .cloned()
        .collect();
    let name = str_at(node, "/metadata/name");
    let pods: Vec<Value> = store
        .pods_on_node(name)
        .into_iter()
        .filter(|p| p.ptr("/metadata/deletionTimestamp").is_none())
        .map(Arc::unwrap_or_clone)
        .collect();
    let mut next: Option<Duration> = None;
    for pod in pods {
        let mut allowed = Some(u64::MAX);
        for t in &taints {
            allowed = allowed.min(tolerated_for(&pod, t));
        }
        match allowed {
            None => {
                store.delete_pod(pod, None);
            }
            Some(secs) if down_for >= Duration::from_secs(secs) => {
                store.delete_pod(pod, None);
            }
            Some(u64::MAX) => {}
            Some(secs) => next = next.into_iter().chain([Duration::from_secs(secs)]).min(),
        }
    }
    next
}

/// How long a pod tolerates a NoExecute taint: `None` = not at all,
/// `Some(u64::MAX)` = forever.
fn tolerated_for(pod: &Value, taint: &Value) -> Option<u64> {
    if !tolerates(pod, taint) {
        return None;
    }
    let secs = pod
        .ptr("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| tolerates(&json!({ "spec": { "tolerations": [t] } }), taint))
        .map(|t| {
            t.get("tolerationSeconds")
                .and_then(Value::as_i64)
                .map_or(u64::MAX, |s| u64::try_from(s).unwrap_or(0))
        })
        .max();
    Some(secs.unwrap_or(u64::MAX))
}
