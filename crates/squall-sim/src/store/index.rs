//! Secondary indexes of the store, kept current by every write: objects by
//! uid, dependents by owner uid, pods by node (unbound pods under ""), pods
//! by label, and objects being deleted in the foreground.
//!
//! They exist so that controllers and selector lists touch only the objects
//! they need: without them a ReplicaSet finds its pods by scanning every pod,
//! the scheduler counts a node's pods by scanning every pod, and a cluster of
//! 10,000 pods spends its time in passes that grow with the square of its
//! size. Ordered maps keep every walk in (namespace, name) order, so runs stay
//! deterministic for a given seed.

use super::Ptr;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::{ObjKey, str_at};

/// (group, plural, namespace, name): where an object lives in the store.
pub type ObjRef = (String, String, String, String);

/// What the indexes record about one object; equal keys mean no index change.
#[derive(Debug, PartialEq, Eq)]
struct Keys {
    uid: String,
    owners: Vec<String>,
    /// `Some(node)` for pods ("" when unbound), `None` for other kinds.
    node: Option<String>,
    /// Labels, for pods only.
    labels: Vec<(String, String)>,
    foreground: bool,
}

fn keys(group: &str, plural: &str, obj: &Value) -> Keys {
    let pod = group.is_empty() && plural == "pods";
    let labels = if pod {
        obj.ptr("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    } else {
        Vec::new()
    };
    Keys {
        uid: str_at(obj, "/metadata/uid").to_string(),
        owners: crate::ops::owner_uids(obj)
            .map(ToString::to_string)
            .collect(),
        node: pod.then(|| str_at(obj, "/spec/nodeName").to_string()),
        labels,
        foreground: foreground_deleting(obj),
    }
}

/// Whether an object is being deleted in the foreground (deletionTimestamp
/// plus the `foregroundDeletion` finalizer).
pub fn foreground_deleting(o: &Value) -> bool {
    o.ptr("/metadata/deletionTimestamp").is_some()
        && o.ptr("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == crate::ops::FOREGROUND))
}

/// The indexes.
#[derive(Default)]
pub struct Index {
    uids: HashMap<String, ObjRef>,
    dependents: BTreeMap<String, BTreeSet<ObjRef>>,
    pods_by_node: BTreeMap<String, BTreeSet<ObjKey>>,
    pods_by_label: BTreeMap<(String, String), BTreeSet<ObjKey>>,
    foreground: BTreeSet<ObjRef>,
}

impl Index {
    /// Records a write of the object at `at`: `old` is its previous state
    /// (None on create), `new` the next one (None on delete).
    pub fn update(&mut self, at: &ObjRef, old: Option<&Value>, new: Option<&Value>) {
        let old = old.map(|o| keys(&at.0, &at.1, o));
        let new = new.map(|o| keys(&at.0, &at.1, o));
        if old == new {
            return;
        }
        if let Some(k) = old {
            self.remove(at, k);
        }
        if let Some(k) = new {
            self.add(at, k);
        }
    }

    fn add(&mut self, at: &ObjRef, k: Keys) {
        let key: ObjKey = (at.2.clone(), at.3.clone());
        if !k.uid.is_empty() {
            self.uids.insert(k.uid, at.clone());
        }
        for o in k.owners {
            self.dependents.entry(o).or_default().insert(at.clone());
        }
        if let Some(node) = k.node {
            self.pods_by_node
                .entry(node)
                .or_default()
                .insert(key.clone());
        }
        for l in k.labels {
            self.pods_by_label.entry(l).or_default().insert(key.clone());
        }
        if k.foreground {
            self.foreground.insert(at.clone());
        }
    }

    fn remove(&mut self, at: &ObjRef, k: Keys) {
        let key: ObjKey = (at.2.clone(), at.3.clone());
        if self.uids.get(&k.uid) == Some(at) {
            self.uids.remove(&k.uid);
        }
        for o in k.owners {
            remove_from(&mut self.dependents, &o, at);
        }
        if let Some(node) = k.node {
            remove_from(&mut self.pods_by_node, &node, &key);
        }
        for l in k.labels {
            remove_from(&mut self.pods_by_label, &l, &key);
        }
        self.foreground.remove(at);
    }

    /// Where the object with this uid lives, if it exists.
    pub fn by_uid(&self, uid: &str) -> Option<&ObjRef> {
        self.uids.get(uid)
    }

    /// Objects naming `uid` in their ownerReferences, in (group, plural, ns, name) order.
    pub fn dependents(&self, uid: &str) -> impl Iterator<Item = &ObjRef> {
        self.dependents.get(uid).into_iter().flatten()
    }

    /// Every uid some object names as an owner.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        self.dependents.keys().map(String::as_str)
    }

    /// Pods bound to `node` ("" = unbound), in (namespace, name) order.
    pub fn pods_on(&self, node: &str) -> impl Iterator<Item = &ObjKey> {
        self.pods_by_node.get(node).into_iter().flatten()
    }

    /// The set of pods bound to `node`, if any.
    pub fn pods_on_set(&self, node: &str) -> Option<&BTreeSet<ObjKey>> {
        self.pods_by_node.get(node)
    }

    /// Pods labelled `key=value`.
    pub fn pods_labelled(&self, key: &str, value: &str) -> Option<&BTreeSet<ObjKey>> {
        self.pods_by_label
            .get(&(key.to_string(), value.to_string()))
    }

    /// Objects being deleted in the foreground.
    pub fn foreground(&self) -> impl Iterator<Item = &ObjRef> {
        self.foreground.iter()
    }
}

/// Removes `item` from the set at `key`, dropping the set when it empties.
fn remove_from<K: Ord, T: Ord>(map: &mut BTreeMap<K, BTreeSet<T>>, key: &K, item: &T) {
    if let Some(set) = map.get_mut(key) {
        set.remove(item);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
