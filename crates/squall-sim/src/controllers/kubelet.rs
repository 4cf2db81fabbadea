//! The kubelet model, plus pod garbage collection for deleted nodes.
//!
//! A bound pod goes Pending → Running after `timing.start` and becomes Ready
//! `timing.ready` later (sim time). Terminating pods lose readiness at once and
//! are removed when their deadline passes (`min(grace, timing.shutdown)`).
//! Pods bound to a node that no longer exists are deleted, so controllers
//! recreate them elsewhere; pods on a NotReady node lose readiness.

use crate::store::Ptr;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{condition_true, set_condition};
use crate::error::{ApiError, ApiResult, Subject};
use crate::runtime::ProcessRuntime;
use crate::store::{StoreInner, set_path, str_at};

/// Nodes by name, shared with the store.
type Nodes = HashMap<String, Arc<Value>>;

/// Per-pod timing state.
#[derive(Default)]
pub struct Kubelet {
    /// uid → sim instant at which the pod was first seen bound.
    bound_at: HashMap<String, Duration>,
    /// uids of terminating pods whose containers were already told to stop.
    killing: HashSet<String>,
    /// Pods whose containers really run (see [`crate::runtime`]); the model
    /// leaves them alone.
    runtime: Option<Arc<ProcessRuntime>>,
}

impl Kubelet {
    /// A kubelet model that leaves the pods `runtime` runs to it.
    pub fn leaving_to(runtime: Option<Arc<ProcessRuntime>>) -> Self {
        Self {
            runtime,
            ..Self::default()
        }
    }

    fn external(&self, pod: &Value) -> bool {
        self.runtime.as_ref().is_some_and(|rt| rt.runs(pod))
    }

    /// One pass over the pods that are not in a settled state. Returns the
    /// sim instant of the next time-based transition, if any pod waits for one.
    pub fn sync(&mut self, store: &mut StoreInner) -> Option<Duration> {
        let now = store.clock.now();
        let ts = store.clock.timestamp();
        let nodes: Nodes = store
            .iter("", "nodes", None, None)
            .map(|n| (str_at(n, "/metadata/name").to_string(), n.clone()))
            .collect();
        // Settled pods, and pods waiting for a transition that is not due yet,
        // are skipped without a copy; only pods with work are cloned.
        let work: Vec<Arc<Value>> = store
            .iter("", "pods", None, None)
            .filter(|p| {
                !self.external(p)
                    && !settled(store, p, &nodes, now)
                    && !self.waiting(store, p, &nodes, now)
            })
            .cloned()
            .collect();
        self.bound_at.retain(|uid, _| store.uid_live(uid));
        self.killing.retain(|uid| store.uid_live(uid));
        let gone: Vec<String> = store
            .restarts
            .keys()
            .filter(|uid| !store.uid_live(uid))
            .cloned()
            .collect();
        for uid in gone {
            store.restarts.remove(&uid);
        }
        for pod in work {
            if store.over_budget() {
                return Some(now);
            }
            self.step(store, Arc::unwrap_or_clone(pod), &nodes, now, &ts);
        }
        store
            .iter("", "pods", None, None)
            .filter(|p| !self.external(p))
            .filter_map(|p| self.due(store, p, &nodes, now))
            .min()
    }

    /// Whether an unsettled pod has nothing to do before its next transition:
    /// it is known (bound earlier), not terminating, and the transition is
    /// still ahead. Its current state was written when it was last stepped.
    fn waiting(&self, store: &StoreInner, pod: &Value, nodes: &Nodes, now: Duration) -> bool {
        pod.ptr("/metadata/deletionTimestamp").is_none()
            && self.bound_at.contains_key(str_at(pod, "/metadata/uid"))
            && self.due(store, pod, nodes, now).is_some_and(|at| at > now)
    }

    /// When a pod that is not settled next changes on its own (in the past = now).
    fn due(
        &self,
        store: &StoreInner,
        pod: &Value,
        nodes: &Nodes,
        now: Duration,
    ) -> Option<Duration> {
        if settled(store, pod, nodes, now) {
            return None;
        }
        if !nodes.contains_key(str_at(pod, "/spec/nodeName")) {
            return Some(now);
        }
        if pod.ptr("/metadata/deletionTimestamp").is_some() {
            return Some(
                store
                    .pod_deadlines
                    .get(&crate::store::obj_key(pod))
                    .copied()
                    .unwrap_or(now),
            );
        }
        let uid = str_at(pod, "/metadata/uid");
        let bound = self.bound_at.get(uid).copied().unwrap_or(now);
        let t = store.timing;
        if str_at(pod, "/status/phase") != "Running" {
            return Some(bound + t.start);
        }
        let restart = store
            .restarts
            .get(uid)
            .map_or(Duration::ZERO, |r| *r + t.ready);
        Some((bound + t.start + t.ready).max(restart))
    }

    fn step(&mut self, store: &mut StoreInner, pod: Value, nodes: &Nodes, now: Duration, ts: &str) {
        let key = crate::store::obj_key(&pod);
        let Some(node) = nodes.get(str_at(&pod, "/spec/nodeName")) else {
            // Pod GC: the node is gone, so is the pod (no grace).
            store.remove("", "pods", &key.0, &key.1);
            return;
        };
        if pod.ptr("/metadata/deletionTimestamp").is_some() {
            let due = store.pod_deadlines.get(&key).copied().unwrap_or_default();
            // A kubelet that is down cannot confirm termination: stuck Terminating.
            if !condition_true(node, "Ready") {
                return;
            }
            if now >= due {
                store.remove("", "pods", &key.0, &key.1);
                return;
            }
            if self
                .killing
                .insert(str_at(&pod, "/metadata/uid").to_string())
            {
                container_events(store, &pod, "Killing", "Stopping container");
            }
            store.put("", "pods", not_ready(pod, ts, "PodTerminating"));
            return;
        }
        let uid = str_at(&pod, "/metadata/uid").to_string();
        let bound = *self.bound_at.entry(uid).or_insert(now);
        let was_running = str_at(&pod, "/status/phase") == "Running";
        let next = advance(store, pod, node, now.saturating_sub(bound), ts);
        let stored = store.put("", "pods", next);
        if !was_running && str_at(&stored, "/status/phase") == "Running" {
            container_events(store, &stored, "Started", "Started container");
        }
    }
}

/// Whether the kubelet has nothing to do for a pod until something is written:
/// unscheduled or finished pods, and running pods whose readiness matches
/// their node's and that are not inside a restart window.
fn settled(store: &StoreInner, pod: &Value, nodes: &Nodes, now: Duration) -> bool {
    let node_name = str_at(pod, "/spec/nodeName");
    if node_name.is_empty() || matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed") {
        return true;
    }
    let Some(node) = nodes.get(node_name) else {
        return false;
    };
    if pod.ptr("/metadata/deletionTimestamp").is_some() {
        return !condition_true(node, "Ready");
    }
    if str_at(pod, "/status/phase") != "Running" {
        return false;
    }
    let restarting = store
        .restarts
        .get(str_at(pod, "/metadata/uid"))
        .is_some_and(|at| now < *at + store.timing.ready);
    let has_statuses = pod
        .ptr("/status/containerStatuses")
        .is_some_and(Value::is_array);
    has_statuses && !restarting && condition_true(pod, "Ready") == condition_true(node, "Ready")
}

/// One kubelet event per container (`Started`, `Killing`).
fn container_events(store: &mut StoreInner, pod: &Value, reason: &str, verb: &str) {
    let names: Vec<String> = pod
        .ptr("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(ToString::to_string))
        .collect();
    for c in names {
        super::events::record(
            store,
            pod,
            "Normal",
            reason,
            &format!("{verb} {c}"),
            "kubelet",
        );
    }
}

/// Moves a pod along Pending → Running → Ready according to its age on the node.
fn advance(store: &mut StoreInner, mut pod: Value, node: &Value, age: Duration, ts: &str) -> Value {
    let timing = store.timing;
    if matches!(str_at(&pod, "/status/phase"), "Succeeded" | "Failed") || age < timing.start {
        return pod;
    }
    if str_at(&pod, "/status/phase") != "Running" {
        let host = node
            .ptr("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
            .map_or(json!(""), |a| a["address"].clone());
        // Host-network pods (kube-proxy) share the node's address.
        let ip = if pod.ptr("/spec/hostNetwork") == Some(&json!(true)) {
            host.as_str().unwrap_or_default().to_string()
        } else {
            pod_ip(store, node)
        };
        let s = &mut pod["status"];
        s["phase"] = json!("Running");
        s["hostIP"] = host.clone();
        s["hostIPs"] = json!([{ "ip": host }]);
        s["podIP"] = json!(ip);
        s["podIPs"] = json!([{ "ip": ip }]);
        s["startTime"] = json!(ts);
        set_condition(
            &mut pod,
            json!({ "type": "Initialized", "status": "True" }),
            ts,
        );
    }
    let node_ready = condition_true(node, "Ready");
    let now = store.clock.now();
    let restarted = store
        .restarts
        .get(str_at(&pod, "/metadata/uid"))
        .is_some_and(|at| now < *at + timing.ready);
    let ready = node_ready && age >= timing.start + timing.ready && !restarted;
    let status = if ready { "True" } else { "False" };
    let reason = if ready {
        json!(null)
    } else {
        json!("ContainersNotReady")
    };
    for ty in ["Ready", "ContainersReady"] {
        let mut c = json!({ "type": ty, "status": status });
        if !ready {
            c["reason"] = reason.clone();
        }
        set_condition(&mut pod, c, ts);
    }
    pod["status"]["containerStatuses"] = container_statuses(&pod, ready);
    pod
}

fn container_statuses(pod: &Value, ready: bool) -> Value {
    let started = pod.ptr("/status/startTime").cloned().unwrap_or(Value::Null);
    let previous = pod
        .ptr("/status/containerStatuses")
        .and_then(Value::as_array);
    let statuses: Vec<Value> = pod
        .ptr("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].clone();
            let prev = previous.and_then(|p| p.iter().find(|s| s["name"] == name));
            let restarts = prev.and_then(|s| s["restartCount"].as_i64()).unwrap_or(0);
            let started_at = prev.and_then(|s| s.ptr("/state/running/startedAt")).cloned().unwrap_or_else(|| started.clone());
            let mut status = json!({
                "name": name, "image": c["image"], "imageID": format!("sim://{}", c["image"].as_str().unwrap_or_default()),
                "containerID": format!("containerd://{}", str_at(pod, "/metadata/uid").replace('-', "")),
                "ready": ready, "started": true, "restartCount": restarts,
                "state": { "running": { "startedAt": started_at } }
            });
            if let Some(last) = prev.and_then(|s| s.get("lastState")).filter(|l| !l.is_null()) {
                status["lastState"] = last.clone();
            }
            status
        })
        .collect();
    Value::Array(statuses)
}

/// Marks a pod not ready (terminating pods, pods on NotReady nodes).
fn not_ready(mut pod: Value, ts: &str, reason: &str) -> Value {
    if !condition_true(&pod, "Ready") {
        return pod;
    }
    for ty in ["Ready", "ContainersReady"] {
        set_condition(
            &mut pod,
            json!({ "type": ty, "status": "False", "reason": reason }),
            ts,
        );
    }
    if let Some(cs) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in cs {
            c["ready"] = json!(false);
        }
    }
    pod
}

/// A free pod IP in the node's pod CIDR (10.244.<node index>.x).
fn pod_ip(store: &mut StoreInner, node: &Value) -> String {
    let cidr = str_at(node, "/spec/podCIDR");
    let prefix = cidr
        .rsplit_once('.')
        .map_or("10.244.0", |(p, _)| p)
        .to_string();
    let start = store.random_below(200);
    // Addresses in this node's CIDR belong to pods bound to this node.
    let on_node = store.pods_on_node(str_at(node, "/metadata/name"));
    let used: HashSet<&str> = on_node.iter().map(|p| str_at(p, "/status/podIP")).collect();
    (0..253u64)
        .map(|i| format!("{prefix}.{}", (start + i) % 253 + 2))
        .find(|ip| !used.contains(ip.as_str()))
        .unwrap_or_else(|| format!("{prefix}.254"))
}

/// Kills and restarts containers of a running pod (all, or the named one):
/// `restartCount` goes up, `lastState.terminated` records the exit, and the
/// pod is unready until the readiness delay has passed again.
pub fn restart_container(
    store: &mut StoreInner,
    ns: &str,
    name: &str,
    container: Option<&str>,
    exit_code: i64,
    reason: &str,
) -> ApiResult<Value> {
    let subject = Subject {
        group: "",
        resource: "pods",
        name,
    };
    let mut pod = store
        .get("", "pods", ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(subject))?;
    if str_at(&pod, "/status/phase") != "Running"
        || pod.ptr("/metadata/deletionTimestamp").is_some()
    {
        return Err(ApiError::conflict(subject, "the pod is not running"));
    }
    let ts = store.clock.timestamp();
    let hit = restart_statuses(&mut pod, container, exit_code, reason, &ts);
    if hit.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container {} is not valid for pod {name}",
            container.unwrap_or("<any>")
        )));
    }
    let uid = str_at(&pod, "/metadata/uid").to_string();
    store.restarts.insert(uid, store.clock.now());
    for ty in ["Ready", "ContainersReady"] {
        set_condition(
            &mut pod,
            json!({ "type": ty, "status": "False", "reason": "ContainersNotReady" }),
            &ts,
        );
    }
    let stored = store.put("", "pods", pod);
    for c in hit {
        super::events::record(
            store,
            &stored,
            "Normal",
            "Started",
            &format!("Started container {c}"),
            "kubelet",
        );
    }
    Ok(stored)
}

/// Marks the selected container statuses restarted; returns their names.
fn restart_statuses(
    pod: &mut Value,
    container: Option<&str>,
    exit_code: i64,
    reason: &str,
    ts: &str,
) -> Vec<String> {
    let mut hit = Vec::new();
    for cs in pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let cname = cs["name"].as_str().unwrap_or_default().to_string();
        if container.is_some_and(|c| c != cname) {
            continue;
        }
        let started = cs
            .ptr("/state/running/startedAt")
            .cloned()
            .unwrap_or(Value::Null);
        let count = cs["restartCount"].as_i64().unwrap_or(0) + 1;
        set_path(cs, &["restartCount"], json!(count));
        set_path(
            cs,
            &["lastState"],
            json!({ "terminated": { "exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": ts } }),
        );
        set_path(cs, &["state"], json!({ "running": { "startedAt": ts } }));
        set_path(cs, &["ready"], json!(false));
        hit.push(cname);
    }
    hit
}
