//! Controllers: the reconcilers that make the simulated cluster behave.
//!
//! They all run in one tokio task, one pass after another until a pass
//! changes nothing; then the task sleeps until a client writes (the store is
//! poked) or a tick elapses (time-based transitions: readiness, graceful
//! termination). Running them in one place keeps every run deterministic for
//! a given seed.
//!
//! Each controller of a pass is one *step* under the store lock, and a step
//! stops after [`crate::store::WRITE_BUDGET`] writes: between steps the lock
//! is released (and waiting API requests go first), so the API answers while
//! 10,000 pods are being created. Controllers are level-triggered (they
//! compute what to do from the current state, through the store's indexes),
//! so a step that stops early simply continues in the next pass. The kubelet
//! model reads the store's events before every step (their history is
//! bounded), so that its pass looks only at the pods that changed or have a
//! transition due.

mod apps;
pub use apps::replace_deleted_pod;
mod deployment;
mod endpoints;
mod events;
pub mod kubelet;
mod nodes;
pub mod pdb;
mod scheduler;

use crate::store::Ptr;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::runtime::ProcessRuntime;
use crate::store::{ObjRef, Store, StoreInner, str_at};

/// Upper bound on passes per wake-up, so a controller bug cannot spin forever.
const MAX_PASSES: usize = 20;

/// Controller state that lives outside the store.
#[derive(Default)]
pub struct State {
    kubelet: kubelet::Kubelet,
    nodes: nodes::NodeLifecycle,
    endpoints: endpoints::Endpoints,
}

/// One controller step; returns the sim instant of its next timed transition.
type Step = fn(&mut StoreInner, &mut State) -> Option<Duration>;

/// The controllers of one pass, in order.
const STEPS: [Step; 11] = [
    |s, st| st.kubelet.sync(s),
    |s, st| st.nodes.sync(s),
    |s, _| {
        scheduler::sync(s);
        None
    },
    |s, _| {
        deployment::sync(s);
        None
    },
    |s, _| {
        apps::sync_replicasets(s);
        None
    },
    |s, _| {
        apps::sync_statefulsets(s);
        None
    },
    |s, _| {
        apps::sync_daemonsets(s);
        None
    },
    |s, _| {
        apps::sync_hpas(s);
        None
    },
    |s, _| {
        garbage_collect(s);
        None
    },
    |s, st| {
        st.endpoints.sync(s);
        None
    },
    |s, _| {
        pdb::sync(s);
        None
    },
];

/// The controller task: reconcile, then wait for a poke, a tick or shutdown.
pub async fn run(
    store: Store,
    tick: Duration,
    runtime: Option<Arc<ProcessRuntime>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut state = State {
        kubelet: kubelet::Kubelet::leaving_to(runtime),
        ..State::default()
    };
    loop {
        let due = reconcile_stepwise(&store, &mut state).await;
        let clock = store.lock().clock;
        // Sleep until the next timed transition; an idle cluster only wakes on writes.
        // A transition that is already due but did not happen waits a tick, not a spin.
        let timer = async {
            match due {
                Some(at) if at > clock.now() => {
                    tokio::time::sleep(clock.to_real(at - clock.now())).await
                }
                Some(_) => tokio::time::sleep(tick).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = store.poked() => {}
            () = timer => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

/// Like [`reconcile`], taking the lock once per step. Between steps it lets
/// blocked API requests in, and yields to other tasks after a step that used
/// its whole write budget (a big change is under way), so in-process clients
/// on the same runtime are answered too.
async fn reconcile_stepwise(store: &Store, state: &mut State) -> Option<Duration> {
    for _ in 0..MAX_PASSES {
        let mut dirty = false;
        let mut due: Option<Duration> = None;
        for step in STEPS {
            let (changed, busy, d) = {
                let mut guard = store.lock();
                state.kubelet.observe(&guard);
                guard.start_step();
                let d = step(&mut guard, state);
                (guard.dirty, guard.over_budget(), d)
            };
            dirty |= changed;
            due = due.into_iter().chain(d).min();
            if busy {
                tokio::task::yield_now().await;
            }
            store.step_aside().await;
        }
        if !dirty {
            return due;
        }
    }
    Some(store.lock().clock.now())
}

/// Runs controller passes until nothing changes (at most `MAX_PASSES`).
/// Returns the sim instant of the next time-based transition (now, if the
/// pass limit was hit).
pub fn reconcile(store: &mut StoreInner, state: &mut State) -> Option<Duration> {
    for _ in 0..MAX_PASSES {
        let mut dirty = false;
        let mut due: Option<Duration> = None;
        for step in STEPS {
            state.kubelet.observe(store);
            store.start_step();
            due = due.into_iter().chain(step(store, state)).min();
            dirty |= store.dirty;
        }
        if !dirty {
            return due;
        }
    }
    Some(store.clock.now())
}

/// Deletes objects all of whose owners are gone or being deleted in the
/// foreground, then releases foreground owners that have no dependents left.
/// Only owners named in the dependents index are looked at.
fn garbage_collect(store: &mut StoreInner) {
    let foreground: Vec<ObjRef> = store.index().foreground().cloned().collect();
    let foreground_uids: BTreeSet<String> = foreground
        .iter()
        .filter_map(|r| store.resolve(r))
        .map(|o| str_at(o, "/metadata/uid").to_string())
        .collect();
    let live =
        |store: &StoreInner, uid: &str| store.uid_live(uid) && !foreground_uids.contains(uid);
    let order: HashMap<(String, String), usize> = store
        .resources()
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.group.clone(), d.plural.clone()), i))
        .collect();
    let mut orphans: Vec<(usize, ObjRef)> = Vec::new();
    for owner in store.index().owners().filter(|u| !live(store, u)) {
        for r in store.index().dependents(owner) {
            let Some(o) = store.resolve(r) else { continue };
            if crate::ops::owner_uids(o).all(|u| !live(store, u)) {
                let rank = order
                    .get(&(r.0.clone(), r.1.clone()))
                    .copied()
                    .unwrap_or(usize::MAX);
                orphans.push((rank, r.clone()));
            }
        }
    }
    // In resource-table order, as the collector always went; each once.
    orphans.sort();
    orphans.dedup();
    for (_, r) in orphans {
        if store.over_budget() {
            return;
        }
        collect_orphan(store, &r, &foreground_uids);
    }
    for r in foreground {
        let Some(o) = store.resolve(&r).map(|o| Value::clone(o)) else {
            continue;
        };
        let def = store.resource(&r.0, &r.1).cloned();
        if let Some(def) = def.filter(|_| !store.has_dependents(str_at(&o, "/metadata/uid"))) {
            store.remove_finalizer(&def, &o, crate::ops::FOREGROUND);
        }
    }
}

/// Deletes one object whose owners are all gone; foreground deletion
/// propagates down the ownership chain.
fn collect_orphan(store: &mut StoreInner, r: &ObjRef, foreground_uids: &BTreeSet<String>) {
    let Some(o) = store.resolve(r).map(|o| Value::clone(o)) else {
        return;
    };
    if r.0.is_empty() && r.1 == "pods" {
        store.delete_pod(o, None);
        return;
    }
    let Some(d) = store.resource(&r.0, &r.1).cloned() else {
        return;
    };
    let cascade = crate::ops::owner_uids(&o).any(|u| foreground_uids.contains(u));
    let opts = crate::ops::DeleteOpts {
        propagation: cascade.then(|| "Foreground".to_string()),
        ..crate::ops::DeleteOpts::default()
    };
    let _ = store.delete(&d, &r.2, &r.3, &opts);
}

/// Whether a pod has condition Ready=True.
pub fn pod_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// Whether `status.conditions` has `type` with status "True".
pub fn condition_true(obj: &Value, ty: &str) -> bool {
    obj.ptr("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == ty && c["status"] == "True")
}

/// Whether a pod counts towards its controller: not terminal and not being deleted.
pub fn pod_active(pod: &Value) -> bool {
    let phase = str_at(pod, "/status/phase");
    pod.ptr("/metadata/deletionTimestamp").is_none() && phase != "Succeeded" && phase != "Failed"
}

/// A controller owner reference to `owner`.
pub fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true
    })
}

/// Sets (or replaces) a condition, keeping `lastTransitionTime` when the status is unchanged.
pub fn set_condition(obj: &mut Value, mut cond: Value, now: &str) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let Some(list) = obj["status"]["conditions"].as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c["type"] == cond["type"]) {
        Some(existing) => {
            let keep = existing["status"] == cond["status"];
            let ts = if keep {
                existing["lastTransitionTime"].clone()
            } else {
                json!(now)
            };
            cond["lastTransitionTime"] = ts;
            *existing = cond;
        }
        None => {
            cond["lastTransitionTime"] = json!(now);
            list.push(cond);
        }
    }
}

/// FNV-1a of a JSON value, rendered in the apiserver's "safe" alphabet.
pub fn template_hash(v: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in serde_json::to_vec(v).unwrap_or_default() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = String::new();
    while out.len() < 10 {
        out.push(char::from(ALPHABET[usize::try_from(h % 27).unwrap_or(0)]));
        h /= 27;
    }
    out
}

/// Resolves an int-or-percent against a total; `round_up` as the apiserver does.
pub fn int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<i64>().ok())
        {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_stops_at_its_write_budget_and_the_next_pass_continues() {
        let store = Store::new(
            crate::clock::Clock::new(1.0),
            1,
            crate::store::Timing::default(),
        );
        let mut g = store.lock();
        crate::cluster::bootstrap(&mut g, 10, false);
        let def = g.resource("apps", "replicasets").cloned().expect("rs");
        let rs = json!({ "metadata": { "name": "big" }, "spec": { "replicas": 1000,
            "selector": { "matchLabels": { "a": "b" } },
            "template": { "metadata": { "labels": { "a": "b" } }, "spec": { "containers": [{ "name": "c", "image": "i" }] } } } });
        g.create(&def, "default", rs, false).expect("create");
        let pods = |g: &StoreInner| g.list("", "pods", Some("default")).len();
        g.start_step();
        apps::sync_replicasets(&mut g);
        let first = pods(&g);
        assert!(first > 0 && first < 1000, "one step created {first}");
        assert!(g.over_budget());
        let mut state = State::default();
        reconcile(&mut g, &mut state);
        assert_eq!(pods(&g), 1000);
        let on = |n: &str| g.index().pods_on(n).count();
        assert_eq!(on(""), 0, "all bound");
        assert!((1..=10).all(|i| on(&format!("node-{i}")) == 100), "spread");
    }

    #[tokio::test]
    async fn a_deleted_replica_is_replaced_in_the_same_write() {
        let store = Store::new(
            crate::clock::Clock::new(1.0),
            1,
            crate::store::Timing::default(),
        );
        let mut g = store.lock();
        crate::cluster::bootstrap(&mut g, 2, false);
        let def = g.resource("apps", "replicasets").cloned().expect("rs");
        let rs = json!({ "metadata": { "name": "web" }, "spec": { "replicas": 2,
            "selector": { "matchLabels": { "a": "b" } },
            "template": { "metadata": { "labels": { "a": "b" } }, "spec": { "containers": [{ "name": "c", "image": "i" }] } } } });
        g.create(&def, "default", rs, false).expect("create");
        let mut state = State::default();
        reconcile(&mut g, &mut state);
        let pods = g.list("", "pods", Some("default"));
        assert_eq!(pods.len(), 2);
        let victim = pods[0].clone();
        // No controller pass between the deletion and the next look.
        let gone = g.delete_pod(victim, None);
        replace_deleted_pod(&mut g, &gone);
        let pods = g.list("", "pods", Some("default"));
        let active = pods
            .iter()
            .filter(|p| {
                p.get("metadata")
                    .and_then(|m| m.get("deletionTimestamp"))
                    .is_none()
            })
            .count();
        assert_eq!(pods.len(), 3, "the terminating pod and its replacement");
        assert_eq!(active, 2);
    }

    #[test]
    fn int_or_percent_rounding() {
        assert_eq!(int_or_percent(&json!("25%"), 3, true), 1);
        assert_eq!(int_or_percent(&json!("25%"), 3, false), 0);
        assert_eq!(int_or_percent(&json!(2), 10, false), 2);
        assert_eq!(int_or_percent(&json!("50%"), 5, true), 3);
    }

    #[test]
    fn hashes_are_stable_and_distinct() {
        let a = template_hash(&json!({ "spec": { "containers": [{ "image": "a" }] } }));
        assert_eq!(
            a,
            template_hash(&json!({ "spec": { "containers": [{ "image": "a" }] } }))
        );
        assert_ne!(
            a,
            template_hash(&json!({ "spec": { "containers": [{ "image": "b" }] } }))
        );
        assert_eq!(a.len(), 10);
    }
}
