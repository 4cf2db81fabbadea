//! The Deployment controller: one ReplicaSet per pod template (named
//! `<deployment>-<pod-template-hash>`), rolled with the RollingUpdate
//! arithmetic (maxSurge rounds up, maxUnavailable rounds down) or Recreate,
//! old ReplicaSets pruned to `revisionHistoryLimit`, and status with
//! replicas / updated / ready / available counts, observedGeneration and the
//! Available and Progressing conditions that `kubectl rollout status` reads.

use crate::store::Ptr;
use serde_json::{Value, json};

use super::{int_or_percent, owner_ref, set_condition, template_hash};
use crate::store::{StoreInner, set_path, str_at};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn i(v: &Value, ptr: &str) -> i64 {
    v.ptr(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// Reconciles every Deployment.
pub fn sync(store: &mut StoreInner) {
    for d in store.list_arcs("apps", "deployments", None) {
        if store.over_budget() {
            return;
        }
        if d.ptr("/metadata/deletionTimestamp").is_some()
            || d.ptr("/spec/paused") == Some(&json!(true))
        {
            continue;
        }
        reconcile(store, &d);
    }
}

/// ReplicaSets controlled by `d`, in name order, from the dependents index.
fn owned_sets(store: &StoreInner, d: &Value) -> Vec<Value> {
    let uid = str_at(d, "/metadata/uid");
    store
        .dependents_of(uid, "apps", "replicasets")
        .into_iter()
        .filter(|rs| crate::ops::controller_uid(rs) == Some(uid))
        .filter(|rs| str_at(rs, "/metadata/namespace") == str_at(d, "/metadata/namespace"))
        .map(std::sync::Arc::unwrap_or_clone)
        .collect()
}

fn reconcile(store: &mut StoreInner, d: &Value) {
    let hash = template_hash(&d["spec"]["template"]);
    let mut sets = owned_sets(store, d);
    let new_name = format!("{}-{hash}", str_at(d, "/metadata/name"));
    if !sets
        .iter()
        .any(|rs| str_at(rs, "/metadata/name") == new_name)
    {
        let revision = sets
            .iter()
            .filter_map(|rs| {
                rs.ptr(&format!(
                    "/metadata/annotations/{}",
                    REVISION.replace('/', "~1")
                ))
            })
            .filter_map(|v| v.as_str()?.parse::<i64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        if let Some(rs) = create_set(store, d, &hash, &new_name, revision) {
            sets.push(rs);
        }
    }
    let (new, old): (Vec<Value>, Vec<Value>) = sets
        .into_iter()
        .partition(|rs| str_at(rs, "/metadata/name") == new_name);
    let Some(new) = new.into_iter().next() else {
        return;
    };
    let replicas = i(d, "/spec/replicas");
    if str_at(d, "/spec/strategy/type") == "Recreate" {
        recreate(store, d, replicas, &new, &old);
    } else {
        rolling(store, d, replicas, &new, &old);
    }
    prune(store, d, &old);
    write_status(store, d, &new_name);
}

fn create_set(
    store: &mut StoreInner,
    d: &Value,
    hash: &str,
    name: &str,
    revision: i64,
) -> Option<Value> {
    let mut template = d["spec"]["template"].clone();
    set_path(
        &mut template,
        &["metadata", "labels", "pod-template-hash"],
        json!(hash),
    );
    let mut selector = d["spec"]["selector"].clone();
    set_path(
        &mut selector,
        &["matchLabels", "pod-template-hash"],
        json!(hash),
    );
    let labels = template["metadata"]["labels"].clone();
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": name, "labels": labels, "ownerReferences": [owner_ref(d)],
            "annotations": { REVISION: revision.to_string(), "deployment.kubernetes.io/desired-replicas": i(d, "/spec/replicas").to_string() }
        },
        "spec": { "replicas": 0, "selector": selector, "template": template }
    });
    let def = store.resource("apps", "replicasets")?.clone();
    store
        .create(&def, str_at(d, "/metadata/namespace"), rs, false)
        .ok()
}

fn scale(store: &mut StoreInner, d: &Value, rs: &Value, replicas: i64) {
    let from = i(rs, "/spec/replicas");
    if from == replicas {
        return;
    }
    let (ns, name) = crate::store::obj_key(rs);
    let mut next = store
        .get("apps", "replicasets", &ns, &name)
        .cloned()
        .unwrap_or_else(|| rs.clone());
    set_path(&mut next, &["spec", "replicas"], json!(replicas));
    store.put_arc("apps", "replicasets", next);
    let dir = if replicas > from { "up" } else { "down" };
    let msg = format!("Scaled {dir} replica set {name} from {from} to {replicas}");
    super::events::record(
        store,
        d,
        "Normal",
        "ScalingReplicaSet",
        &msg,
        "deployment-controller",
    );
}

fn recreate(store: &mut StoreInner, d: &Value, replicas: i64, new: &Value, old: &[Value]) {
    for rs in old {
        scale(store, d, rs, 0);
    }
    let old_pods: i64 = old.iter().map(|rs| i(rs, "/status/replicas")).sum();
    if old_pods == 0 {
        scale(store, d, new, replicas);
    }
}

fn rolling(store: &mut StoreInner, d: &Value, replicas: i64, new: &Value, old: &[Value]) {
    let ru = d
        .ptr("/spec/strategy/rollingUpdate")
        .cloned()
        .unwrap_or(json!({}));
    let surge = int_or_percent(ru.get("maxSurge").unwrap_or(&json!("25%")), replicas, true);
    let mut unavailable = int_or_percent(
        ru.get("maxUnavailable").unwrap_or(&json!("25%")),
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let new_replicas = i(new, "/spec/replicas");
    let total: i64 = new_replicas + old.iter().map(|rs| i(rs, "/spec/replicas")).sum::<i64>();
    // Scale up the new ReplicaSet within the surge budget.
    let target = if old.iter().all(|rs| i(rs, "/spec/replicas") == 0) {
        replicas
    } else {
        (new_replicas + (replicas + surge - total).max(0)).min(replicas)
    };
    scale(store, d, new, target);
    // Old pods that are not ready can always go; ready ones only while enough stay available.
    let min_available = replicas - unavailable;
    let available: i64 = i(new, "/status/readyReplicas")
        + old
            .iter()
            .map(|rs| i(rs, "/status/readyReplicas"))
            .sum::<i64>();
    let mut budget = (available - min_available).max(0);
    for rs in old {
        let spec = i(rs, "/spec/replicas");
        let unready = (spec - i(rs, "/status/readyReplicas")).max(0);
        let cut = (unready + budget).min(spec);
        budget -= (cut - unready).max(0);
        scale(store, d, rs, spec - cut);
    }
}

/// Deletes empty old ReplicaSets beyond `revisionHistoryLimit`, oldest first.
fn prune(store: &mut StoreInner, d: &Value, old: &[Value]) {
    let limit = usize::try_from(
        d.ptr("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10),
    )
    .unwrap_or(10);
    let rev = |rs: &Value| {
        rs.ptr(&format!(
            "/metadata/annotations/{}",
            REVISION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0)
    };
    let mut empty: Vec<&Value> = old
        .iter()
        .filter(|rs| i(rs, "/spec/replicas") == 0 && i(rs, "/status/replicas") == 0)
        .collect();
    empty.sort_by_key(|rs| rev(rs));
    let excess = empty.len().saturating_sub(limit);
    for rs in empty.into_iter().take(excess) {
        let (ns, name) = crate::store::obj_key(rs);
        store.remove("apps", "replicasets", &ns, &name);
    }
}

/// Replica counts summed over a Deployment's ReplicaSets.
struct Counts {
    desired: i64,
    total: i64,
    ready: i64,
    updated: i64,
    new_ready: i64,
    max_unavailable: i64,
}

fn write_status(store: &mut StoreInner, d: &Value, new_name: &str) {
    let now = store.clock.timestamp();
    let ns = str_at(d, "/metadata/namespace");
    let Some(mut next) = store
        .get("apps", "deployments", ns, str_at(d, "/metadata/name"))
        .cloned()
    else {
        return;
    };
    let sets = owned_sets(store, d);
    let sum = |ptr: &str| sets.iter().map(|rs| i(rs, ptr)).sum::<i64>();
    let new = sets
        .iter()
        .find(|rs| str_at(rs, "/metadata/name") == new_name);
    let desired = i(d, "/spec/replicas");
    let c = Counts {
        desired,
        total: sum("/status/replicas"),
        ready: sum("/status/readyReplicas"),
        updated: new.map_or(0, |rs| i(rs, "/status/replicas")),
        new_ready: new.map_or(0, |rs| i(rs, "/status/readyReplicas")),
        max_unavailable: int_or_percent(
            d.ptr("/spec/strategy/rollingUpdate/maxUnavailable")
                .unwrap_or(&json!("25%")),
            desired,
            false,
        ),
    };
    if !next["status"].is_object() {
        next["status"] = json!({});
    }
    let s = &mut next["status"];
    s["observedGeneration"] = d["metadata"]["generation"].clone();
    s["replicas"] = json!(c.total);
    s["updatedReplicas"] = json!(c.updated);
    s["readyReplicas"] = json!(c.ready);
    s["availableReplicas"] = json!(c.ready);
    s["unavailableReplicas"] = json!((c.total - c.ready).max(0));
    set_conditions(&mut next, &c, new_name, &now);
    let pointer = format!("/metadata/annotations/{}", REVISION.replace('/', "~1"));
    if let Some(rev) = new.and_then(|rs| rs.ptr(&pointer)).cloned() {
        set_path(&mut next, &["metadata", "annotations", REVISION], rev);
    }
    // Conditions carry lastUpdateTime; only write when something other than it changed.
    let strip = |v: &Value| {
        let mut v = v.clone();
        for c in v
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            c.as_object_mut().map(|m| m.remove("lastUpdateTime"));
        }
        v
    };
    if strip(&next) != strip(d) {
        store.put_arc("apps", "deployments", next);
    }
}

/// The Available and Progressing conditions `kubectl rollout status` reads.
fn set_conditions(next: &mut Value, c: &Counts, new_name: &str, now: &str) {
    let (av, av_reason, av_msg) = if c.ready >= c.desired - c.max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(
        next,
        json!({ "type": "Available", "status": av, "reason": av_reason, "message": av_msg, "lastUpdateTime": now }),
        now,
    );
    let complete = c.updated == c.desired && c.total == c.desired && c.new_ready == c.desired;
    let (p_reason, p_msg) = if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
        )
    };
    set_condition(
        next,
        json!({ "type": "Progressing", "status": "True", "reason": p_reason, "message": p_msg, "lastUpdateTime": now }),
        now,
    );
}
