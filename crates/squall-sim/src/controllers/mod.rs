//! Controllers: the reconcilers that make the simulated cluster behave.
//!
//! They all run in one tokio task, synchronously, under the store lock, one
//! pass after another until a pass changes nothing; then the task sleeps until
//! a client writes (the store is poked) or a tick elapses (time-based
//! transitions: readiness, graceful termination). Running them in one place
//! under one lock keeps every run deterministic for a given seed.

mod apps;
mod deployment;
mod endpoints;
mod events;
pub mod kubelet;
mod nodes;
pub mod pdb;
mod scheduler;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::resources::ResourceDef;
use crate::store::{Store, StoreInner, str_at};

/// Upper bound on passes per wake-up, so a controller bug cannot spin forever.
const MAX_PASSES: usize = 20;

/// Controller state that lives outside the store.
#[derive(Default)]
pub struct State {
    kubelet: kubelet::Kubelet,
    nodes: nodes::NodeLifecycle,
}

/// The controller task: reconcile, then wait for a poke, a tick or shutdown.
pub async fn run(store: Store, tick: Duration, mut stop: watch::Receiver<bool>) {
    let mut state = State::default();
    loop {
        let (due, clock) = {
            let mut guard = store.lock();
            (reconcile(&mut guard, &mut state), guard.clock)
        };
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

/// Runs controller passes until nothing changes (at most `MAX_PASSES`).
/// Returns the sim instant of the next time-based transition (now, if the
/// pass limit was hit).
pub fn reconcile(store: &mut StoreInner, state: &mut State) -> Option<Duration> {
    for _ in 0..MAX_PASSES {
        store.dirty = false;
        let due = [state.kubelet.sync(store), state.nodes.sync(store)]
            .into_iter()
            .flatten()
            .min();
        scheduler::sync(store);
        deployment::sync(store);
        apps::sync_replicasets(store);
        apps::sync_statefulsets(store);
        apps::sync_daemonsets(store);
        apps::sync_hpas(store);
        garbage_collect(store);
        endpoints::sync(store);
        pdb::sync(store);
        if !store.dirty {
            return due;
        }
    }
    Some(store.clock.now())
}

/// Deletes objects all of whose owners are gone or being deleted in the
/// foreground, then releases foreground owners that have no dependents left.
fn garbage_collect(store: &mut StoreInner) {
    let defs: Vec<ResourceDef> = store.resources().to_vec();
    let mut live: HashSet<String> = HashSet::new();
    let mut foreground: Vec<(ResourceDef, Value)> = Vec::new();
    for d in &defs {
        for o in store.list(&d.group, &d.plural, None) {
            if is_foreground_deleting(o) {
                foreground.push((d.clone(), o.clone()));
            } else {
                live.insert(str_at(o, "/metadata/uid").to_string());
            }
        }
    }
    let foreground_uids: HashSet<String> = foreground
        .iter()
        .map(|(_, o)| str_at(o, "/metadata/uid").to_string())
        .collect();
    for d in &defs {
        let orphans: Vec<Value> = store
            .list(&d.group, &d.plural, None)
            .into_iter()
            .filter(|o| {
                let mut owners = crate::ops::owner_uids(o).peekable();
                owners.peek().is_some() && owners.all(|u| !live.contains(u))
            })
            .cloned()
            .collect();
        for o in orphans {
            let (ns, name) = crate::store::obj_key(&o);
            if d.group.is_empty() && d.plural == "pods" {
                store.delete_pod(o, None);
                continue;
            }
            // Foreground deletion propagates down the ownership chain.
            let cascade = crate::ops::owner_uids(&o).any(|u| foreground_uids.contains(u));
            let opts = crate::ops::DeleteOpts {
                propagation: cascade.then(|| "Foreground".to_string()),
                ..crate::ops::DeleteOpts::default()
            };
            let _ = store.delete(d, &ns, &name, &opts);
        }
    }
    for (d, o) in foreground {
        if !store.has_dependents(str_at(&o, "/metadata/uid")) {
            store.remove_finalizer(&d, &o, crate::ops::FOREGROUND);
        }
    }
}

fn is_foreground_deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
        && o.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == crate::ops::FOREGROUND))
}

/// Whether a pod has condition Ready=True.
pub fn pod_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// Whether `status.conditions` has `type` with status "True".
pub fn condition_true(obj: &Value, ty: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == ty && c["status"] == "True")
}

/// Whether a pod counts towards its controller: not terminal and not being deleted.
pub fn pod_active(pod: &Value) -> bool {
    let phase = str_at(pod, "/status/phase");
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && phase != "Succeeded"
        && phase != "Failed"
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
