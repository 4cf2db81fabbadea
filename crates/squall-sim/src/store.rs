//! The object store: every object as JSON, a global resourceVersion counter,
//! a bounded event history for watches and a broadcast channel of changes.
//!
//! The store is deliberately synchronous: API handlers and controllers lock it,
//! do their work and unlock, so every operation is atomic with respect to every
//! other, as if etcd transactions were instantaneous. Higher-level semantics
//! (defaults, validation, graceful deletion) live in [`crate::ops`].
//!
//! Objects are held as `Arc<Value>`: a watch event, the history and a list
//! snapshot share the stored version instead of copying it, so a reader can
//! take what it needs under the lock and serialize after releasing it.
//! [`index`] keeps the secondary indexes controllers and lists use at scale.

mod index;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::clock::Clock;
use crate::resources::{self, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};

pub use index::{ObjRef, foreground_deleting};

/// How many past events a watch can resume from. Every retained event keeps
/// its object version (and a modification its previous one) alive, so this
/// bounds memory: at 10,000 pods, 20,000 events held more pod versions than
/// the store itself. Older versions get 410 Expired and clients re-list.
const HISTORY: usize = 5_000;

/// How many writes a controller step may make before it stops and lets API
/// requests in; the rest of its work happens in the next pass. Controllers are
/// level-triggered, so stopping early is always safe. (500 was tried: the
/// longest waits while 10,000 pods were created did not shrink, because they
/// come from whole-store scans, and convergence took 2.5 times as long.)
pub const WRITE_BUDGET: usize = 2_000;

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
    pub object: Arc<Value>,
    /// The object before the change (modifications only).
    pub old: Option<Arc<Value>>,
    /// resourceVersion of the change.
    pub rv: u64,
}

impl Event {
    /// Namespace of the object ("" for cluster-scoped).
    pub fn namespace(&self) -> &str {
        self.object
            .ptr("/metadata/namespace")
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
    objects: HashMap<(String, String), BTreeMap<ObjKey, Arc<Value>>>,
    index: index::Index,
    /// Writes since the current controller step began (see [`WRITE_BUDGET`]).
    writes: usize,
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
    /// Threads waiting for the lock; the controllers step aside while any do.
    waiting: Arc<AtomicUsize>,
}

impl Store {
    /// An empty store with the built-in resource table.
    pub fn new(clock: Clock, seed: u64, timing: Timing) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let inner = StoreInner {
            clock,
            rv: 1,
            objects: HashMap::new(),
            index: index::Index::default(),
            writes: 0,
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
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Locks the store. A poisoned lock is recovered: the data is plain JSON and
    /// every write is completed before any code that could panic runs.
    pub fn lock(&self) -> MutexGuard<'_, StoreInner> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// Whether someone is blocked waiting for the lock.
    pub fn contended(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Lets blocked lock waiters (API requests on other threads) go first:
    /// a mutex released and at once re-taken by the same thread would
    /// otherwise starve them. Bounded, so it can never hang the controllers.
    pub async fn step_aside(&self) {
        for _ in 0..10_000 {
            if !self.contended() {
                return;
            }
            tokio::task::yield_now().await;
            std::thread::yield_now();
        }
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
        self.get_arc(group, plural, ns, name).map(|a| &**a)
    }

    /// Reads one object as the shared stored version.
    pub fn get_arc(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(&(group.to_string(), plural.to_string()))?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Lists objects of a resource, optionally in one namespace, ordered by (namespace, name).
    pub fn list(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<&Value> {
        self.iter(group, plural, ns, None).map(|a| &**a).collect()
    }

    /// The shared stored versions of a resource's objects, optionally in one
    /// namespace, in (namespace, name) order, starting after `after`.
    pub fn iter<'a>(
        &'a self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
        after: Option<&ObjKey>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + use<'a> {
        use std::ops::Bound;
        let m = self.objects.get(&(group.to_string(), plural.to_string()));
        let only = ns.map(ToString::to_string);
        let start = ns.map(|ns| (ns.to_string(), String::new()));
        let lower = match (after, start) {
            // A continue key before the namespace starts at the namespace.
            (Some(a), Some(s)) if *a < s => Bound::Included(s),
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(s)) => Bound::Included(s),
            (None, None) => Bound::Unbounded,
        };
        m.into_iter()
            .flat_map(move |m| m.range((lower.clone(), Bound::Unbounded)))
            .take_while(move |((n, _), _)| only.as_ref().is_none_or(|ns| n == ns))
            .map(|(_, v)| v)
    }

    /// Objects of a resource that match both selectors, optionally in one
    /// namespace, in (namespace, name) order after `after`. For pods, an
    /// equality on a label or on `spec.nodeName` is answered from an index,
    /// so a selective list does not look at every pod.
    pub fn select<'a>(
        &'a self,
        group: &str,
        plural: &str,
        ns: Option<&str>,
        after: Option<&ObjKey>,
        labels: &'a LabelSelector,
        fields: &'a FieldSelector,
    ) -> Box<dyn Iterator<Item = &'a Arc<Value>> + 'a> {
        let matches = move |o: &&Arc<Value>| labels.matches(o) && fields.matches(o);
        let candidates = (group.is_empty() && plural == "pods")
            .then(|| self.pod_candidates(labels, fields))
            .flatten();
        let Some(keys) = candidates else {
            return Box::new(self.iter(group, plural, ns, after).filter(matches));
        };
        let only = ns.map(ToString::to_string);
        let after = after.cloned();
        Box::new(
            keys.iter()
                .filter(move |k| after.as_ref().is_none_or(|a| *k > a))
                .filter(move |k| only.as_ref().is_none_or(|ns| k.0 == *ns))
                .filter_map(|(ns, name)| self.get_arc("", "pods", ns, name))
                .filter(matches),
        )
    }

    /// The smallest index set every pod matching the selectors is in, if any.
    fn pod_candidates(
        &self,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Option<&std::collections::BTreeSet<ObjKey>> {
        static EMPTY: std::collections::BTreeSet<ObjKey> = std::collections::BTreeSet::new();
        let by_node = fields
            .required("spec.nodeName")
            .map(|n| self.index.pods_on_set(n).unwrap_or(&EMPTY));
        let by_label = labels
            .equalities()
            .map(|(k, v)| self.index.pods_labelled(k, v).unwrap_or(&EMPTY));
        by_node.into_iter().chain(by_label).min_by_key(|s| s.len())
    }

    /// The secondary indexes.
    pub fn index(&self) -> &index::Index {
        &self.index
    }

    /// Whether an object with this uid exists.
    pub fn uid_live(&self, uid: &str) -> bool {
        self.index.by_uid(uid).is_some()
    }

    /// Resolves an index reference to the stored object.
    pub fn resolve(&self, at: &ObjRef) -> Option<&Arc<Value>> {
        self.get_arc(&at.0, &at.1, &at.2, &at.3)
    }

    /// Objects of one resource that name `owner_uid` as an owner.
    pub fn dependents_of(&self, owner_uid: &str, group: &str, plural: &str) -> Vec<Arc<Value>> {
        self.index
            .dependents(owner_uid)
            .filter(|r| r.0 == group && r.1 == plural)
            .filter_map(|r| self.resolve(r).cloned())
            .collect()
    }

    /// Pods bound to `node` ("" = unbound pods), in (namespace, name) order.
    pub fn pods_on_node(&self, node: &str) -> Vec<Arc<Value>> {
        self.index
            .pods_on(node)
            .filter_map(|(ns, name)| self.get_arc("", "pods", ns, name).cloned())
            .collect()
    }

    /// Starts a controller step: clears `dirty` and the write budget.
    pub fn start_step(&mut self) {
        self.dirty = false;
        self.writes = 0;
    }

    /// Whether the current controller step has used its write budget.
    pub fn over_budget(&self) -> bool {
        self.writes >= WRITE_BUDGET
    }

    /// The shared stored versions of a resource's objects (cheap to take; for
    /// controllers that write while iterating).
    pub fn list_arcs(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.iter(group, plural, ns, None).cloned().collect()
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
        object: Arc<Value>,
        old: Option<Arc<Value>>,
        rv: u64,
    ) {
        self.dirty = true;
        self.writes += 1;
        let ev = Event {
            group: group.to_string(),
            resource: plural.to_string(),
            kind,
            object,
            old: None,
            rv,
        };
        // The history keeps only what a replay needs of the previous version
        // (what selectors look at): a full copy of every replaced object
        // would make the history the biggest thing in memory.
        let kept = Arc::new(Event {
            old: old.as_deref().map(|o| Arc::new(selectable(o))),
            ..ev.clone()
        });
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(kept);
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(Arc::new(Event { old, ..ev }));
    }

    /// Stores a new object as is, stamping uid, creationTimestamp, generation and
    /// resourceVersion. The caller has checked that the name is free. Returns
    /// the stored version (shared, not copied: most callers only read it).
    pub fn insert(&mut self, group: &str, plural: &str, mut obj: Value) -> Arc<Value> {
        let rv = self.next_rv();
        let uid = self.uid();
        let ts = self.clock.timestamp();
        let meta = meta_mut(&mut obj);
        meta.entry("uid").or_insert(json!(uid));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(ts));
        meta.entry("generation").or_insert(json!(1));
        let (stored, _) = self.store_at_key(group, plural, obj);
        self.emit(group, plural, EventType::Added, stored.clone(), None, rv);
        stored
    }

    /// Replaces an existing object, bumping its resourceVersion. Returns the
    /// stored object (shared).
    pub fn replace(&mut self, group: &str, plural: &str, mut obj: Value) -> Arc<Value> {
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let (stored, old) = self.store_at_key(group, plural, obj);
        self.emit(group, plural, EventType::Modified, stored.clone(), old, rv);
        stored
    }

    /// Stores `obj` under its key and keeps the indexes in step; returns the
    /// stored object and the one it replaced.
    fn store_at_key(
        &mut self,
        group: &str,
        plural: &str,
        mut obj: Value,
    ) -> (Arc<Value>, Option<Arc<Value>>) {
        let key = obj_key(&obj);
        tighten(&mut obj);
        let stored = Arc::new(obj);
        let at = (
            group.to_string(),
            plural.to_string(),
            key.0.clone(),
            key.1.clone(),
        );
        let old = self
            .objects
            .entry((group.to_string(), plural.to_string()))
            .or_default()
            .insert(key, stored.clone());
        self.index.update(&at, old.as_deref(), Some(&stored));
        (stored, old)
    }

    /// Removes an object. Returns its last state (with a fresh
    /// resourceVersion), shared with the Deleted event.
    pub fn remove(
        &mut self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let stored = self
            .objects
            .get_mut(&(group.to_string(), plural.to_string()))?
            .remove(&(ns.to_string(), name.to_string()))?;
        let at = (
            group.to_string(),
            plural.to_string(),
            ns.to_string(),
            name.to_string(),
        );
        self.index.update(&at, Some(&stored), None);
        let mut obj = Arc::unwrap_or_clone(stored);
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        if group.is_empty() && plural == "pods" {
            self.pod_deadlines
                .remove(&(ns.to_string(), name.to_string()));
        }
        tighten(&mut obj);
        let obj = Arc::new(obj);
        self.emit(group, plural, EventType::Deleted, obj.clone(), None, rv);
        Some(obj)
    }
}

/// Gives every map and array in `v` exactly the room its entries need.
/// Maps grow by doubling while they are parsed or built, and a clone of a
/// map keeps its spare room, so an object as a controller or a client leaves
/// it holds about half again its size in empty slots; stored objects are
/// most of the simulator's memory (10,000 pods: about 230 MiB as built,
/// 150 MiB compacted), and they are kept for a long time.
pub fn tighten(v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            // Collecting from an exact-size iterator allocates exactly.
            let mut tight: serde_json::Map<String, Value> = std::mem::take(m).into_iter().collect();
            tight.values_mut().for_each(tighten);
            *m = tight;
        }
        Value::Array(a) => {
            a.shrink_to_fit();
            a.iter_mut().for_each(tighten);
        }
        _ => {}
    }
}

/// `a == b`, without hashing when two objects list their keys in the same
/// order (the usual case: one is a modified copy of the other). Map
/// equality looks every key up in the other map, which made comparing a pod
/// with its next version most of a controller write's cost.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            if x.keys().zip(y.keys()).all(|(p, q)| p == q) {
                x.values().zip(y.values()).all(|(p, q)| same(p, q))
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

/// Field paths the apiserver's field selectors accept (pods, nodes,
/// events, secrets, every kind's metadata), plus node conditions (whether a
/// node was Ready): the part of an old object a watch replay consults.
const SELECTABLE: &[&[&str]] = &[
    &["spec", "nodeName"],
    &["spec", "unschedulable"],
    &["spec", "restartPolicy"],
    &["spec", "schedulerName"],
    &["spec", "serviceAccountName"],
    &["spec", "hostNetwork"],
    &["status", "phase"],
    &["status", "podIP"],
    &["status", "nominatedNodeName"],
    &["status", "conditions"],
    &["involvedObject"],
    &["reason"],
    &["reportingComponent"],
    &["source"],
    &["type"],
];

/// The metadata (name, namespace, labels, uid) and [`SELECTABLE`] fields of
/// an object.
pub fn selectable(obj: &Value) -> Value {
    let mut out = json!({});
    let meta = &obj["metadata"];
    for k in ["name", "namespace", "labels", "uid", "resourceVersion"] {
        if let Some(v) = meta.get(k) {
            out["metadata"][k] = v.clone();
        }
    }
    for path in SELECTABLE {
        let mut cur = obj;
        let found = path.iter().all(|p| match cur.get(*p) {
            Some(next) => {
                cur = next;
                true
            }
            None => false,
        });
        if found {
            set_path(&mut out, path, cur.clone());
        }
    }
    out
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
    obj.ptr(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// JSON-pointer lookup that allocates nothing. `Value::pointer` unescapes
/// every segment into a new `String`; controllers resolve pointers on every
/// pod of every pass, where those allocations were most of the time spent.
pub trait Ptr {
    /// Same result as `serde_json::Value::pointer`.
    fn ptr(&self, pointer: &str) -> Option<&Value>;
}

impl Ptr for Value {
    fn ptr(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut cur = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            cur = if token.contains('~') {
                child(cur, &token.replace("~1", "/").replace("~0", "~"))?
            } else {
                child(cur, token)?
            };
        }
        Some(cur)
    }
}

fn child<'a>(v: &'a Value, token: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(token),
        // As serde_json: no sign, no leading zeros.
        Value::Array(a) if !token.starts_with('+') && (token == "0" || !token.starts_with('0')) => {
            a.get(token.parse::<usize>().ok()?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_only_what_selectors_see_of_an_old_version() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "d", "labels": {"app": "a"}, "uid": "u",
                         "annotations": {"big": "x"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [{}]}
        });
        let kept = selectable(&pod);
        assert_eq!(
            kept,
            json!({
                "metadata": {"name": "p", "namespace": "d", "labels": {"app": "a"}, "uid": "u"},
                "spec": {"nodeName": "node-1"},
                "status": {"phase": "Running", "podIP": "10.0.0.1"}
            })
        );
        let store = store();
        let mut s = store.lock();
        let start = s.rv();
        s.insert("", "pods", pod.clone());
        let mut next = pod.clone();
        next["status"]["phase"] = json!("Succeeded");
        s.replace("", "pods", next);
        let (_, replay) = s.subscribe_since(start);
        let replay = replay.expect("within the history");
        let old = replay
            .last()
            .and_then(|e| e.old.clone())
            .expect("an old version");
        assert_eq!(old["status"]["phase"], "Running");
        assert!(old["spec"].get("containers").is_none());
    }

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
        g.replace("", "configmaps", Value::clone(&o));
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

    fn pod(name: &str, node: &str, app: &str, owner: &str) -> Value {
        json!({ "metadata": { "name": name, "namespace": "d", "labels": { "app": app },
            "ownerReferences": [{ "uid": owner, "controller": true }] }, "spec": { "nodeName": node } })
    }

    fn names(v: &[Arc<Value>]) -> Vec<&str> {
        v.iter().map(|o| str_at(o, "/metadata/name")).collect()
    }

    #[tokio::test]
    async fn indexes_follow_every_write() {
        let s = store();
        let mut g = s.lock();
        g.insert("", "pods", pod("a", "", "web", "rs-1"));
        let b = g.insert("", "pods", pod("b", "node-1", "web", "rs-1"));
        g.insert("", "pods", pod("c", "node-1", "db", "rs-2"));
        assert_eq!(names(&g.pods_on_node("")), ["a"]);
        assert_eq!(names(&g.pods_on_node("node-1")), ["b", "c"]);
        assert_eq!(names(&g.dependents_of("rs-1", "", "pods")), ["a", "b"]);
        assert!(g.uid_live(str_at(&b, "/metadata/uid")));
        // A bind and a relabel move the pod between index entries.
        let mut a = g.get("", "pods", "d", "a").cloned().expect("a");
        a["spec"]["nodeName"] = json!("node-2");
        a["metadata"]["labels"]["app"] = json!("db");
        g.replace("", "pods", a);
        assert!(g.pods_on_node("").is_empty());
        assert_eq!(names(&g.pods_on_node("node-2")), ["a"]);
        assert_eq!(
            g.index().pods_labelled("app", "web").map(|s| s.len()),
            Some(1)
        );
        assert_eq!(
            g.index().pods_labelled("app", "db").map(|s| s.len()),
            Some(2)
        );
        g.remove("", "pods", "d", "b");
        assert!(!g.uid_live(str_at(&b, "/metadata/uid")));
        assert_eq!(names(&g.dependents_of("rs-1", "", "pods")), ["a"]);
        assert!(g.index().pods_labelled("app", "web").is_none());
        // Foreground deletion is indexed while the finalizer is on.
        let mut cm = Value::clone(&g.insert(
            "",
            "configmaps",
            json!({ "metadata": { "name": "o", "namespace": "d" } }),
        ));
        assert_eq!(g.index().foreground().count(), 0);
        cm["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        cm["metadata"]["finalizers"] = json!([crate::ops::FOREGROUND]);
        g.replace("", "configmaps", cm);
        assert_eq!(g.index().foreground().count(), 1);
        g.remove("", "configmaps", "d", "o");
        assert_eq!(g.index().foreground().count(), 0);
    }

    #[tokio::test]
    async fn select_through_indexes_agrees_with_a_scan() {
        let s = store();
        let mut g = s.lock();
        for i in 0..60 {
            let mut p = pod(
                &format!("p{i:02}"),
                &format!("node-{}", i % 4),
                &format!("a{}", i % 3),
                "o",
            );
            p["metadata"]["namespace"] = json!(if i % 5 == 0 { "x" } else { "d" });
            g.insert("", "pods", p);
        }
        let after = ("d".to_string(), "p30".to_string());
        for (l, f, ns, from) in [
            ("app=a1", "", None, None),
            ("app=a1", "spec.nodeName=node-2", None, None),
            ("", "spec.nodeName=node-3", Some("d"), None),
            ("app=a2,app!=a1", "spec.nodeName=node-1", Some("x"), None),
            ("app=a0", "", Some("d"), Some(&after)),
            ("app=none", "", None, None),
            (
                "app in (a0,a1)",
                "spec.nodeName!=node-0",
                None,
                Some(&after),
            ),
        ] {
            let labels = LabelSelector::parse(l).expect("labels");
            let fields = FieldSelector::parse(f).expect("fields");
            let got: Vec<Arc<Value>> = g
                .select("", "pods", ns, from, &labels, &fields)
                .cloned()
                .collect();
            let want: Vec<Arc<Value>> = g
                .iter("", "pods", ns, from)
                .filter(|o| labels.matches(o) && fields.matches(o))
                .cloned()
                .collect();
            assert_eq!(names(&got), names(&want), "{l} {f} {ns:?}");
        }
    }

    #[tokio::test]
    async fn write_budget_counts_writes_per_step() {
        let s = store();
        let mut g = s.lock();
        g.start_step();
        for i in 0..WRITE_BUDGET {
            assert!(!g.over_budget());
            g.insert(
                "",
                "configmaps",
                json!({ "metadata": { "name": format!("c{i}"), "namespace": "d" } }),
            );
        }
        assert!(g.over_budget() && g.dirty);
        g.start_step();
        assert!(!g.over_budget() && !g.dirty);
    }

    #[test]
    fn lock_waiters_are_counted() {
        let s = Store::new(Clock::new(1.0), 7, Timing::default());
        let guard = s.lock();
        let other = s.clone();
        let waiter = std::thread::spawn(move || drop(other.lock()));
        // The waiter shows up as contention while the lock is held.
        while !s.contended() {
            std::thread::yield_now();
        }
        drop(guard);
        waiter.join().expect("waiter");
        assert!(!s.contended());
    }

    #[test]
    fn ptr_agrees_with_pointer() {
        let v = json!({ "a": { "b/c": [1, { "d~e": 2 }], "": 3 }, "0": 4 });
        for p in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a/",
            "/0",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/9",
            "a",
            "/x/y",
        ] {
            assert_eq!(v.ptr(p), v.pointer(p), "{p}");
        }
    }

    #[test]
    fn same_agrees_with_eq_and_tighten_keeps_the_value() {
        let a = json!({ "m": { "x": 1, "y": [1, { "z": "s" }] }, "k": "v", "e": {} });
        let reordered = json!({ "k": "v", "e": {}, "m": { "y": [1, { "z": "s" }], "x": 1 } });
        let changed = json!({ "m": { "x": 2, "y": [1, { "z": "s" }] }, "k": "v", "e": {} });
        for b in [&a, &reordered, &changed, &json!([a.clone()]), &json!(null)] {
            assert_eq!(same(&a, b), a == *b, "{b}");
            assert_eq!(same(b, &a), *b == a, "{b}");
        }
        let mut t = a.clone();
        tighten(&mut t);
        assert_eq!(t, a);
        // Key order is kept: serialization is unchanged.
        assert_eq!(t.to_string(), a.to_string());
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
