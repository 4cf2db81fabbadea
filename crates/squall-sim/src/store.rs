//! The object store: every object as JSON, a global resourceVersion counter,
//! a bounded event history for watches and a broadcast channel of changes.
//!
//! The store is deliberately synchronous: API handlers and controllers lock it,
//! do their work and unlock, so every operation is atomic with respect to every
//! other, as if etcd transactions were instantaneous. Higher-level semantics
//! (defaults, validation, graceful deletion) live in [`crate::ops`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::clock::Clock;
use crate::resources::{self, ResourceDef};

/// How many past events a watch can resume from.
const HISTORY: usize = 20_000;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// Wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Debug, Clone)]
pub struct Event {
    /// API group of the object.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletes: its last state).
    pub object: Value,
    /// The object before the change (modifications only).
    pub old: Option<Value>,
    /// resourceVersion of the change.
    pub rv: u64,
}

impl Event {
    /// Namespace of the object ("" for cluster-scoped).
    pub fn namespace(&self) -> &str {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// (namespace, name) of an object.
pub type ObjKey = (String, String);

/// The data behind the lock.
pub struct StoreInner {
    /// The simulator clock.
    pub clock: Clock,
    rv: u64,
    objects: HashMap<(String, String), BTreeMap<ObjKey, Value>>,
    resources: Vec<ResourceDef>,
    history: VecDeque<Arc<Event>>,
    tx: broadcast::Sender<Arc<Event>>,
    rng: Xoshiro256PlusPlus,
    /// Sim instants at which terminating pods are removed, keyed by (namespace, name).
    pub pod_deadlines: HashMap<ObjKey, Duration>,
    /// Set by every write; controllers use it to know whether a pass changed anything.
    pub dirty: bool,
    /// Delays of the kubelet model.
    pub timing: Timing,
    /// Watches cannot resume from versions below this one.
    compacted: u64,
    /// Events recorded by the simulator, oldest first (for the event cap).
    pub event_log: VecDeque<ObjKey>,
    /// Sim instant of each pod's last container restart, by pod uid.
    pub restarts: HashMap<String, Duration>,
}

/// Delays of the kubelet model, in sim time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Scheduled → Running.
    pub start: Duration,
    /// Running → Ready.
    pub ready: Duration,
    /// How long a container takes to exit after SIGTERM; a pod is removed after
    /// `min(grace period, shutdown)`.
    pub shutdown: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            start: Duration::from_millis(500),
            ready: Duration::from_secs(2),
            shutdown: Duration::from_secs(1),
        }
    }
}

/// Shared handle to the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<StoreInner>>,
    notify: Arc<Notify>,
}

impl Store {
    /// An empty store with the built-in resource table.
    pub fn new(clock: Clock, seed: u64, timing: Timing) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let inner = StoreInner {
            clock,
            rv: 1,
            objects: HashMap::new(),
            resources: resources::builtin(),
            history: VecDeque::new(),
            tx,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            pod_deadlines: HashMap::new(),
            dirty: false,
            timing,
            compacted: 0,
            event_log: VecDeque::new(),
            restarts: HashMap::new(),
        };
        Store {
            inner: Arc::new(Mutex::new(inner)),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Locks the store. A poisoned lock is recovered: the data is plain JSON and
    /// every write is completed before any code that could panic runs.
    pub fn lock(&self) -> MutexGuard<'_, StoreInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the controllers (called after client writes).
    pub fn poke(&self) {
        self.notify.notify_one();
    }

    /// Waits until [`Store::poke`] is called.
    pub async fn poked(&self) {
        self.notify.notified().await;
    }
}

impl StoreInner {
    /// Current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The resource table.
    pub fn resources(&self) -> &[ResourceDef] {
        &self.resources
    }

    /// Finds a resource by group and plural.
    pub fn resource(&self, group: &str, plural: &str) -> Option<&ResourceDef> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural)
    }

    /// Adds or replaces a resource row (CRD registration).
    pub fn register(&mut self, def: ResourceDef) {
        self.resources
            .retain(|r| !(r.group == def.group && r.plural == def.plural));
        self.resources.push(def);
    }

    /// Removes a resource row and all its objects (CRD deletion).
    pub fn unregister(&mut self, group: &str, plural: &str) {
        self.resources
            .retain(|r| !(r.group == group && r.plural == plural));
        let names: Vec<ObjKey> = self
            .objects
            .get(&(group.to_string(), plural.to_string()))
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in names {
            self.remove(group, plural, &ns, &name);
        }
    }

    /// Subscribes to events and returns the history after `since` (exclusive).
    /// `None` means `since` is older than the retained history.
    pub fn subscribe_since(
        &self,
        since: u64,
    ) -> (broadcast::Receiver<Arc<Event>>, Option<Vec<Arc<Event>>>) {
        let rx = self.tx.subscribe();
        let oldest = self
            .history
            .front()
            .map_or(self.rv, |e| e.rv.saturating_sub(1))
            .max(self.compacted);
        if since < oldest {
            return (rx, None);
        }
        let replay = self
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        (rx, Some(replay))
    }

    /// Drops the watch history, like an etcd compaction: watches from older
    /// versions then get 410 Expired and clients must re-list.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// A random lowercase alphanumeric suffix, like the apiserver's generateName.
    pub fn suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len)
            .map(|_| {
                let i = usize::try_from(self.rng.next_u64() % ALPHABET.len() as u64).unwrap_or(0);
                char::from(ALPHABET[i])
            })
            .collect()
    }

    /// A random RFC 4122 v4 UID.
    pub fn uid(&mut self) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// A random number below `n` (n > 0), from the seeded generator.
    pub fn random_below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rng.next_u64() % n }
    }

    /// Reads one object.
    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(group.to_string(), plural.to_string()))?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Lists objects of a resource, optionally in one namespace, ordered by (namespace, name).
    pub fn list(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<&Value> {
        let Some(m) = self.objects.get(&(group.to_string(), plural.to_string())) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .collect(),
            None => m.values().collect(),
        }
    }

    /// Clones the objects of a resource (for controllers that mutate while iterating).
    pub fn list_owned(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        self.list(group, plural, ns).into_iter().cloned().collect()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(
        &mut self,
        group: &str,
        plural: &str,
        kind: EventType,
        object: Value,
        old: Option<Value>,
        rv: u64,
    ) {
        self.dirty = true;
        let ev = Arc::new(Event {
            group: group.to_string(),
            resource: plural.to_string(),
            kind,
            object,
            old,
            rv,
        });
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Stores a new object as is, stamping uid, creationTimestamp, generation and
    /// resourceVersion. The caller has checked that the name is free.
    pub fn insert(&mut self, group: &str, plural: &str, mut obj: Value) -> Value {
        let rv = self.next_rv();
        let uid = self.uid();
        let ts = self.clock.timestamp();
        let meta = meta_mut(&mut obj);
        meta.entry("uid").or_insert(json!(uid));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(ts));
        meta.entry("generation").or_insert(json!(1));
        let key = obj_key(&obj);
        self.objects
            .entry((group.to_string(), plural.to_string()))
            .or_default()
            .insert(key, obj.clone());
        self.emit(group, plural, EventType::Added, obj.clone(), None, rv);
        obj
    }

    /// Replaces an existing object, bumping its resourceVersion. Returns the stored object.
    pub fn replace(&mut self, group: &str, plural: &str, mut obj: Value) -> Value {
        let key = obj_key(&obj);
        let old = self
            .objects
            .get(&(group.to_string(), plural.to_string()))
            .and_then(|m| m.get(&key))
            .cloned();
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.objects
            .entry((group.to_string(), plural.to_string()))
            .or_default()
            .insert(key, obj.clone());
        self.emit(group, plural, EventType::Modified, obj.clone(), old, rv);
        obj
    }

    /// Removes an object. Returns its last state (with a fresh resourceVersion).
    pub fn remove(&mut self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(&(group.to_string(), plural.to_string()))?
            .remove(&(ns.to_string(), name.to_string()))?;
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        if group.is_empty() && plural == "pods" {
            self.pod_deadlines
                .remove(&(ns.to_string(), name.to_string()));
        }
        self.emit(group, plural, EventType::Deleted, obj.clone(), None, rv);
        Some(obj)
    }
}

/// `metadata` of an object as a mutable map, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let m = obj.as_object_mut().expect("just made an object");
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("just made an object")
}

/// Sets `v[path[0]][path[1]]… = val`, turning anything on the way that is not
/// an object into one. Unlike `v["a"]["b"] = …` it never panics, whatever
/// shape a client gave the object.
pub fn set_path(v: &mut Value, path: &[&str], val: Value) {
    let mut cur = v;
    for key in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Value::Object(m) = cur else { return };
        cur = m.entry((*key).to_string()).or_insert(Value::Null);
    }
    *cur = val;
}

/// (namespace, name) of an object.
pub fn obj_key(obj: &Value) -> ObjKey {
    (
        str_at(obj, "/metadata/namespace").to_string(),
        str_at(obj, "/metadata/name").to_string(),
    )
}

/// A string at a JSON pointer, or "".
pub fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(Clock::new(1.0), 7, Timing::default())
    }

    #[tokio::test]
    async fn insert_replace_remove_bump_rv_and_emit() {
        let s = store();
        let mut g = s.lock();
        let start = g.rv();
        let (mut rx, replay) = g.subscribe_since(start);
        assert_eq!(replay.map(|r| r.len()), Some(0));
        let o = g.insert(
            "",
            "configmaps",
            json!({ "metadata": { "name": "a", "namespace": "d" } }),
        );
        assert_eq!(
            o["metadata"]["resourceVersion"],
            json!((start + 1).to_string())
        );
        assert_eq!(o["metadata"]["uid"].as_str().map(str::len), Some(36));
        g.replace("", "configmaps", o.clone());
        assert!(g.remove("", "configmaps", "d", "a").is_some());
        assert!(g.get("", "configmaps", "d", "a").is_none());
        let kinds: Vec<EventType> = (0..3).map(|_| rx.try_recv().expect("event").kind).collect();
        assert_eq!(
            kinds,
            [EventType::Added, EventType::Modified, EventType::Deleted]
        );
        let (_, replay) = g.subscribe_since(start + 1);
        assert_eq!(replay.map(|r| r.len()), Some(2));
    }

    #[tokio::test]
    async fn list_filters_by_namespace_in_name_order() {
        let s = store();
        let mut g = s.lock();
        for (ns, n) in [("b", "z"), ("a", "y"), ("b", "x"), ("bb", "w")] {
            g.insert(
                "",
                "configmaps",
                json!({ "metadata": { "name": n, "namespace": ns } }),
            );
        }
        let names: Vec<&str> = g
            .list("", "configmaps", Some("b"))
            .iter()
            .map(|o| str_at(o, "/metadata/name"))
            .collect();
        assert_eq!(names, ["x", "z"]);
        assert_eq!(g.list("", "configmaps", None).len(), 4);
    }

    #[test]
    fn set_path_coerces_non_objects() {
        let mut v = json!({ "a": "text", "b": [1] });
        set_path(&mut v, &["a", "x", "y"], json!(1));
        set_path(&mut v, &["b", "z"], json!(2));
        assert_eq!(v, json!({ "a": { "x": { "y": 1 } }, "b": { "z": 2 } }));
    }

    #[tokio::test]
    async fn seeded_ids_are_repeatable() {
        let a = store().lock().uid();
        let b = store().lock().uid();
        assert_eq!(a, b);
        assert_eq!(&a[14..15], "4");
    }
}
