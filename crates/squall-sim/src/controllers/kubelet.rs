//! The kubelet model, plus pod garbage collection for deleted nodes.
//!
//! A bound pod goes Pending → Running after `timing.start` and becomes Ready
//! `timing.ready` later (sim time). Terminating pods lose readiness at once and
//! are removed when their deadline passes (`min(grace, timing.shutdown)`).
//! Pods bound to a node that no longer exists are deleted, so controllers
//! recreate them elsewhere; pods on a NotReady node lose readiness.
//!
//! A pass looks only at pods with work: those written since it last looked
//! at them (read from the store's event history), those on nodes whose
//! readiness changed, those whose timed transition is due (a queue ordered by
//! due instant, which also gives the next due instant) and terminating pods
//! past their deadline. So a pass costs what its pods' work costs, not a scan
//! of every pod; what a pod needs is still decided from its current state.

use crate::store::Ptr;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{condition_true, set_condition};
use crate::error::{ApiError, ApiResult, Subject};
use crate::runtime::ProcessRuntime;
use crate::store::{EventType, ObjKey, StoreInner, obj_key, set_path, str_at};

/// Nodes by name, shared with the store.
type Nodes = HashMap<String, Arc<Value>>;

/// Per-pod timing state, and which pods have work.
#[derive(Default)]
pub struct Kubelet {
    /// uid → sim instant at which the pod was first seen bound.
    bound_at: HashMap<String, Duration>,
    /// uids of terminating pods whose containers were already told to stop.
    killing: HashSet<String>,
    /// Pods whose containers really run (see [`crate::runtime`]); the model
    /// leaves them alone.
    runtime: Option<Arc<ProcessRuntime>>,
    queue: Queue,
}

/// The pods a pass must look at, so that it looks at no others: pods written
/// since they were last looked at (read from the store's event history),
/// pods on nodes whose readiness changed, pods whose timed transition is due,
/// and terminating pods whose deadline has passed. Looking at a pod decides
/// everything from its current state (level-triggered); the queue only saves
/// looking at pods with nothing to do.
#[derive(Default)]
struct Queue {
    /// Whether the queue follows the store; if not, the next pass looks at
    /// every pod (at the start, and when the event history was lost).
    synced: bool,
    /// resourceVersion up to which the store's events have been read.
    seen: u64,
    /// Pods to look at in the next pass, in (namespace, name) order.
    dirty: BTreeSet<ObjKey>,
    /// Nodes whose existence or readiness changed: all their pods are looked at.
    nodes: BTreeSet<String>,
    /// Pods waiting for a timed transition, by due instant.
    timers: BTreeSet<(Duration, ObjKey)>,
    /// The due instant of each pod in `timers`.
    due: HashMap<ObjKey, Duration>,
    /// Terminating pods on Ready nodes. Their deadline is read from the store
    /// on every pass: a second, shorter deletion moves it without a write.
    terminating: BTreeSet<ObjKey>,
}

/// What a pod waits for, as far as the kubelet model is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Nothing until it (or its node) is written.
    Idle,
    /// Terminating on a Ready node: removed at its deadline.
    Terminating,
    /// A transition at this sim instant (in the past = now).
    At(Duration),
}

impl Queue {
    fn forget(&mut self, key: &ObjKey) {
        if let Some(at) = self.due.remove(key) {
            self.timers.remove(&(at, key.clone()));
        }
        self.terminating.remove(key);
    }

    /// Files a pod that was just looked at under what it waits for.
    fn file(&mut self, key: ObjKey, plan: Plan, now: Duration) {
        match plan {
            Plan::Idle => {}
            Plan::Terminating => {
                self.terminating.insert(key);
            }
            Plan::At(at) if at <= now => {
                self.dirty.insert(key);
            }
            Plan::At(at) => {
                self.due.insert(key.clone(), at);
                self.timers.insert((at, key));
            }
        }
    }

    /// Reads the store's events since the last look; `false` if they are
    /// no longer in its history.
    fn read_events(&mut self, store: &StoreInner, mut gone: impl FnMut(&str)) -> bool {
        let (_, replay) = store.subscribe_since(self.seen);
        self.seen = store.rv();
        let Some(events) = replay else {
            return false;
        };
        for ev in events.iter().filter(|e| e.group.is_empty()) {
            match ev.resource.as_str() {
                "pods" => {
                    self.dirty.insert(obj_key(&ev.object));
                    if ev.kind == EventType::Deleted {
                        gone(str_at(&ev.object, "/metadata/uid"));
                    }
                }
                "nodes" => {
                    let changed = ev.kind != EventType::Modified
                        || ev.old.as_ref().is_none_or(|old| {
                            condition_true(old, "Ready") != condition_true(&ev.object, "Ready")
                        });
                    if changed {
                        self.nodes
                            .insert(str_at(&ev.object, "/metadata/name").to_string());
                    }
                }
                _ => {}
            }
        }
        true
    }

    /// Moves the pods with work now into `dirty`.
    fn collect(&mut self, store: &StoreInner, now: Duration) {
        while let Some((at, key)) = self.timers.first() {
            if *at > now {
                break;
            }
            self.due.remove(key);
            if let Some((_, key)) = self.timers.pop_first() {
                self.dirty.insert(key);
            }
        }
        for key in &self.terminating {
            if deadline(store, key) <= now {
                self.dirty.insert(key.clone());
            }
        }
        for node in std::mem::take(&mut self.nodes) {
            self.dirty.extend(store.index().pods_on(&node).cloned());
        }
    }

    /// The sim instant of the next timed transition.
    fn next_due(&self, store: &StoreInner, now: Duration) -> Option<Duration> {
        if !self.dirty.is_empty() || !self.nodes.is_empty() {
            return Some(now);
        }
        let timer = self.timers.first().map(|(at, _)| *at);
        let removal = self.terminating.iter().map(|k| deadline(store, k)).min();
        timer.into_iter().chain(removal).min()
    }
}

/// When a terminating pod is removed (a pod without a deadline: at once).
fn deadline(store: &StoreInner, key: &ObjKey) -> Duration {
    store.pod_deadlines.get(key).copied().unwrap_or_default()
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

    /// Reads the store's events since the last call, noting which pods to
    /// look at. The controllers call it before every step, so that the
    /// store's bounded event history never runs past it; if it does, the
    /// next pass looks at every pod.
    pub fn observe(&mut self, store: &StoreInner) {
        let q = &mut self.queue;
        if !q.synced || store.rv() == q.seen {
            return;
        }
        let (bound_at, killing) = (&mut self.bound_at, &mut self.killing);
        let kept = q.read_events(store, |uid| {
            bound_at.remove(uid);
            killing.remove(uid);
        });
        q.synced = kept;
    }

    /// Starts over: every pod is looked at in the next pass.
    fn resync(&mut self, store: &StoreInner) {
        self.queue = Queue {
            synced: true,
            seen: store.rv(),
            dirty: store
                .iter("", "pods", None, None)
                .map(|p| obj_key(p))
                .collect(),
            ..Queue::default()
        };
        self.bound_at.retain(|uid, _| store.uid_live(uid));
        self.killing.retain(|uid| store.uid_live(uid));
    }

    /// One pass over the pods with work: those written since they were last
    /// looked at and those whose timed transition is due. Returns the sim
    /// instant of the next time-based transition, if any pod waits for one.
    pub fn sync(&mut self, store: &mut StoreInner) -> Option<Duration> {
        let now = store.clock.now();
        let ts = store.clock.timestamp();
        let nodes: Nodes = store
            .iter("", "nodes", None, None)
            .map(|n| (str_at(n, "/metadata/name").to_string(), n.clone()))
            .collect();
        self.observe(store);
        if !self.queue.synced {
            self.resync(store);
        }
        let gone: Vec<String> = store
            .restarts
            .keys()
            .filter(|uid| !store.uid_live(uid))
            .cloned()
            .collect();
        for uid in gone {
            store.restarts.remove(&uid);
        }
        self.queue.collect(store, now);
        let mut keys = std::mem::take(&mut self.queue.dirty);
        while let Some(key) = keys.pop_first() {
            if store.over_budget() {
                keys.insert(key);
                self.queue.dirty.extend(keys);
                return Some(now);
            }
            self.look(store, key, &nodes, now, &ts);
        }
        self.queue.next_due(store, now)
    }

    /// Looks at one pod: steps it if it has work now, and files it under
    /// what it waits for next.
    fn look(
        &mut self,
        store: &mut StoreInner,
        key: ObjKey,
        nodes: &Nodes,
        now: Duration,
        ts: &str,
    ) {
        self.queue.forget(&key);
        let Some(pod) = store.get_arc("", "pods", &key.0, &key.1).cloned() else {
            return;
        };
        let plan = self.plan(store, &pod, nodes, now);
        let work = match plan {
            Plan::Idle => false,
            Plan::Terminating => true,
            Plan::At(at) => at <= now || !self.bound_at.contains_key(str_at(&pod, "/metadata/uid")),
        };
        if !work {
            self.queue.file(key, plan, now);
            return;
        }
        self.step(store, Arc::unwrap_or_clone(pod), nodes, now, ts);
        if let Some(pod) = store.get_arc("", "pods", &key.0, &key.1).cloned() {
            let plan = self.plan(store, &pod, nodes, now);
            self.queue.file(key, plan, now);
        }
    }

    /// What a pod waits for: nothing (settled, or run by the process
    /// runtime), its removal, or a transition at a sim instant.
    fn plan(&self, store: &StoreInner, pod: &Value, nodes: &Nodes, now: Duration) -> Plan {
        if self.external(pod) || settled(store, pod, nodes, now) {
            return Plan::Idle;
        }
        if !nodes.contains_key(str_at(pod, "/spec/nodeName")) {
            return Plan::At(now);
        }
        if pod.ptr("/metadata/deletionTimestamp").is_some() {
            return Plan::Terminating;
        }
        let uid = str_at(pod, "/metadata/uid");
        let bound = self.bound_at.get(uid).copied().unwrap_or(now);
        let t = store.timing;
        if str_at(pod, "/status/phase") != "Running" {
            return Plan::At(bound + t.start);
        }
        let restart = store
            .restarts
            .get(uid)
            .map_or(Duration::ZERO, |r| *r + t.ready);
        Plan::At((bound + t.start + t.ready).max(restart))
    }

    fn step(&mut self, store: &mut StoreInner, pod: Value, nodes: &Nodes, now: Duration, ts: &str) {
        let key = obj_key(&pod);
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
            store.put_arc("", "pods", not_ready(pod, ts, "PodTerminating"));
            return;
        }
        let uid = str_at(&pod, "/metadata/uid").to_string();
        let bound = *self.bound_at.entry(uid).or_insert(now);
        let was_running = str_at(&pod, "/status/phase") == "Running";
        let next = advance(store, pod, node, now.saturating_sub(bound), ts);
        let stored = store.put_arc("", "pods", next);
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
        let host = internal_ip(node);
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

/// A node's `InternalIP` address (`""` when it has none): the address of
/// its host-network pods.
pub fn internal_ip(node: &Value) -> Value {
    node.ptr("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .map_or(json!(""), |a| a["address"].clone())
}

#[cfg(test)]
mod tests {
    use super::super::{State, pod_ready, reconcile};
    use super::*;
    use crate::clock::Clock;
    use crate::ops::DeleteOpts;
    use crate::store::{Store, Timing};

    fn cluster(shutdown: Duration) -> Store {
        let timing = Timing {
            shutdown,
            ..Timing::default()
        };
        let store = Store::new(Clock::new(1.0), 3, timing);
        let mut g = store.lock();
        crate::cluster::bootstrap(&mut g, 2, false);
        let def = g.resource("apps", "replicasets").cloned().expect("rs");
        let rs = json!({ "metadata": { "name": "web" }, "spec": { "replicas": 4,
            "selector": { "matchLabels": { "a": "b" } },
            "template": { "metadata": { "labels": { "a": "b" } }, "spec": { "containers": [{ "name": "c", "image": "i" }] } } } });
        g.create(&def, "default", rs, false).expect("create");
        drop(g);
        store
    }

    fn pods(g: &StoreInner) -> Vec<Value> {
        g.list_owned("", "pods", Some("default"))
    }

    fn pass(store: &Store, state: &mut State) -> Option<Duration> {
        reconcile(&mut store.lock(), state)
    }

    #[tokio::test(start_paused = true)]
    async fn settled_pods_leave_the_queue_and_a_lost_history_starts_over() {
        let store = cluster(Duration::from_secs(1));
        let mut state = State::default();
        let due = pass(&store, &mut state).expect("pods wait to start");
        assert_eq!(pods(&store.lock()).len(), 4);
        assert_eq!(state.kubelet.queue.timers.len(), 4, "each bound pod waits");
        tokio::time::advance(due + Duration::from_secs(3)).await;
        assert_eq!(pass(&store, &mut state), None, "nothing left to wait for");
        let mut g = store.lock();
        assert!(pods(&g).iter().all(pod_ready));
        let q = &state.kubelet.queue;
        assert!(q.timers.is_empty() && q.dirty.is_empty() && q.terminating.is_empty());
        // A compaction drops the events the queue follows: every pod is looked
        // at again, and nothing changes.
        g.compact();
        let rv = g.rv();
        assert_eq!(reconcile(&mut g, &mut state), None);
        assert_eq!(g.rv(), rv);
        // A node going NotReady is seen through its event.
        let mut node = g.get("", "nodes", "", "node-1").cloned().expect("node");
        node["status"]["conditions"] = json!([{ "type": "Ready", "status": "False" }]);
        g.replace("", "nodes", node);
        reconcile(&mut g, &mut state);
        let on = |g: &StoreInner, ready: bool| {
            pods(g)
                .iter()
                .filter(|p| str_at(p, "/spec/nodeName") == "node-1" && pod_ready(p) == ready)
                .count()
        };
        assert!(on(&g, false) > 0 && on(&g, true) == 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_second_deletion_moves_the_removal_without_a_write() {
        let store = cluster(Duration::from_secs(60));
        let mut state = State::default();
        let due = pass(&store, &mut state).expect("pods wait to start");
        tokio::time::advance(due + Duration::from_secs(3)).await;
        pass(&store, &mut state);
        let name = str_at(&pods(&store.lock())[0], "/metadata/name").to_string();
        let delete = |grace| {
            let mut g = store.lock();
            let def = g.resource("", "pods").cloned().expect("pods");
            let opts = DeleteOpts {
                grace: Some(grace),
                ..DeleteOpts::default()
            };
            g.delete(&def, "default", &name, &opts).expect("delete");
            g.rv()
        };
        delete(30);
        pass(&store, &mut state);
        let rv = store.lock().rv();
        assert_eq!(delete(5), rv, "the second deletion writes nothing");
        pass(&store, &mut state);
        let present = || store.lock().get("", "pods", "default", &name).is_some();
        assert!(present(), "terminating");
        tokio::time::advance(Duration::from_secs(6)).await;
        pass(&store, &mut state);
        assert!(!present(), "removed at the earlier deadline");
    }
}
