//! ReplicaSet, StatefulSet, DaemonSet and HorizontalPodAutoscaler controllers.
//!
//! ReplicaSets keep `spec.replicas` active pods (scale-down removes
//! unscheduled, then unready, then newest pods first). StatefulSets keep
//! ordinal pods `<name>-0..N-1`, created in order under OrderedReady and
//! replaced highest-first on template change. DaemonSets keep one pod per node
//! matching the template's nodeSelector (cordoned nodes included, as DaemonSet
//! pods tolerate `unschedulable`). HPAs, having no metrics, hold their target at
//! `minReplicas` (clamped to `maxReplicas`).

use crate::store::Ptr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{owner_ref, pod_active, pod_ready, template_hash};
use crate::selector::LabelSelector;
use crate::store::{StoreInner, set_path, str_at};

fn i(v: &Value, ptr: &str) -> i64 {
    v.ptr(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// Active pods controlled by `owner`, from the store's dependents index.
fn owned_pods(store: &StoreInner, owner: &Value) -> Vec<Arc<Value>> {
    let uid = str_at(owner, "/metadata/uid");
    let ns = str_at(owner, "/metadata/namespace");
    let mut pods = store.dependents_of(uid, "", "pods");
    pods.retain(|p| {
        crate::ops::controller_uid(p) == Some(uid)
            && str_at(p, "/metadata/namespace") == ns
            && pod_active(p)
    });
    pods
}

/// Creates a pod from `owner`'s template with the given name (or generateName prefix).
fn create_pod(
    store: &mut StoreInner,
    owner: &Value,
    name: Option<String>,
    extra_labels: &Value,
    node: Option<&str>,
) {
    let t = &owner["spec"]["template"];
    let mut meta = t
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or(json!({}));
    meta["ownerReferences"] = json!([owner_ref(owner)]);
    match name {
        Some(n) => meta["name"] = json!(n),
        None => meta["generateName"] = json!(format!("{}-", str_at(owner, "/metadata/name"))),
    }
    for (k, v) in extra_labels.as_object().into_iter().flatten() {
        set_path(&mut meta, &["labels", k], v.clone());
    }
    let mut spec = t
        .get("spec")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or(json!({}));
    if let Some(n) = node {
        // DaemonSet pods: bound directly and never evicted for node conditions.
        spec["nodeName"] = json!(n);
        let mut tolerations = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            tolerations.push(json!({ "key": key, "operator": "Exists", "effect": "NoExecute" }));
        }
        spec["tolerations"] = json!(tolerations);
    }
    let pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec });
    let Some(def) = store.resource("", "pods").cloned() else {
        return;
    };
    match store.create(&def, str_at(owner, "/metadata/namespace"), pod, false) {
        Ok(p) => {
            let msg = format!("Created pod: {}", str_at(&p, "/metadata/name"));
            super::events::record(
                store,
                owner,
                "Normal",
                "SuccessfulCreate",
                &msg,
                &component(owner),
            );
        }
        Err(e) => tracing::debug!(error = %e, "controller could not create a pod"),
    }
}

/// The controller name events are attributed to (`replicaset-controller`, ...).
fn component(owner: &Value) -> String {
    format!("{}-controller", str_at(owner, "/kind").to_ascii_lowercase())
}

/// Deletes a pod on behalf of its controller and records `SuccessfulDelete`.
fn delete_owned(store: &mut StoreInner, owner: &Value, pod: Value) {
    let msg = format!("Deleted pod: {}", str_at(&pod, "/metadata/name"));
    store.delete_pod(pod, None);
    super::events::record(
        store,
        owner,
        "Normal",
        "SuccessfulDelete",
        &msg,
        &component(owner),
    );
}

/// Writes `status` fields if they changed.
fn write_status(store: &mut StoreInner, group: &str, plural: &str, obj: &Value, fields: &Value) {
    let mut next = obj.clone();
    if !next["status"].is_object() {
        next["status"] = json!({});
    }
    for (k, v) in fields.as_object().into_iter().flatten() {
        next["status"][k] = v.clone();
    }
    next["status"]["observedGeneration"] = obj["metadata"]["generation"].clone();
    store.put_arc(group, plural, next);
}

fn count_ready(pods: &[Arc<Value>]) -> i64 {
    i64::try_from(pods.iter().filter(|p| pod_ready(p)).count()).unwrap_or(0)
}

/// Keeps every ReplicaSet at its replica count.
pub fn sync_replicasets(store: &mut StoreInner) {
    for rs in store.list_arcs("apps", "replicasets", None) {
        if rs.ptr("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        if store.over_budget() {
            return;
        }
        sync_replicaset(store, &rs);
    }
}

/// The ReplicaSet controller's reaction to one of its pods being deleted,
/// run in the same write: kube-controller-manager sees the deletion on its
/// watch and creates the replacement within milliseconds, before a client
/// can look again. (The controller task would also get there, but a fast
/// client's next request can win that race, which a real cluster's
/// controller practically never loses.) Costs one ReplicaSet's pods.
pub fn replace_deleted_pod(store: &mut StoreInner, pod: &Value) {
    let Some(uid) = crate::ops::controller_uid(pod) else {
        return;
    };
    let Some(at) = store.index().by_uid(uid).cloned() else {
        return;
    };
    if at.0 != "apps" || at.1 != "replicasets" {
        return;
    }
    if let Some(rs) = store.resolve(&at).cloned()
        && rs.ptr("/metadata/deletionTimestamp").is_none()
    {
        sync_replicaset(store, &rs);
    }
}

fn sync_replicaset(store: &mut StoreInner, rs: &Arc<Value>) {
    let mut pods = owned_pods(store, rs);
    let want = i(rs, "/spec/replicas");
    let have = i64::try_from(pods.len()).unwrap_or(0);
    for _ in have..want {
        if store.over_budget() {
            break;
        }
        create_pod(store, rs, None, &json!({}), None);
    }
    if have > want {
        // Least valuable first: unscheduled, then unready, then newest.
        pods.sort_by_key(|p| {
            (
                !str_at(p, "/spec/nodeName").is_empty(),
                pod_ready(p),
                std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()),
            )
        });
        for p in pods.drain(..usize::try_from(have - want).unwrap_or(0)) {
            delete_owned(store, rs, Value::clone(&p));
        }
    }
    let pods = owned_pods(store, rs);
    let sel = rs
        .ptr("/spec/selector")
        .and_then(LabelSelector::from_object)
        .unwrap_or_default();
    let labeled = pods.iter().filter(|p| sel.matches(p)).count();
    let ready = count_ready(&pods);
    write_status(
        store,
        "apps",
        "replicasets",
        rs,
        &json!({
            "replicas": pods.len(), "fullyLabeledReplicas": labeled, "readyReplicas": ready, "availableReplicas": ready
        }),
    );
}

/// Keeps StatefulSet ordinal pods.
pub fn sync_statefulsets(store: &mut StoreInner) {
    for sts in store.list_arcs("apps", "statefulsets", None) {
        if sts.ptr("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let name = str_at(&sts, "/metadata/name").to_string();
        let revision = format!("{name}-{}", template_hash(&sts["spec"]["template"]));
        let ordered = str_at(&sts, "/spec/podManagementPolicy") != "Parallel";
        let want = usize::try_from(i(&sts, "/spec/replicas")).unwrap_or(0);
        let pods = owned_pods(store, &sts);
        let find = |ord: usize| {
            pods.iter()
                .find(|p| str_at(p, "/metadata/name") == format!("{name}-{ord}"))
        };
        // Creation, in order: under OrderedReady stop at the first missing or unready pod.
        for ord in 0..want {
            match find(ord) {
                Some(p) if !ordered || pod_ready(p) => {}
                Some(_) => break,
                None => {
                    let labels = json!({ "statefulset.kubernetes.io/pod-name": format!("{name}-{ord}"), "apps.kubernetes.io/pod-index": ord.to_string(), "controller-revision-hash": revision });
                    create_pod(store, &sts, Some(format!("{name}-{ord}")), &labels, None);
                    if ordered {
                        break;
                    }
                }
            }
        }
        // Scale-down and rolling update, highest ordinal first, one at a time.
        let all_ready = pods.iter().all(|p| pod_ready(p));
        let mut victims: Vec<&Arc<Value>> = pods
            .iter()
            .filter(|p| ordinal(p, &name).is_none_or(|o| o >= want))
            .collect();
        if victims.is_empty() && all_ready && pods.len() == want {
            victims = pods
                .iter()
                .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") != revision)
                .collect();
        }
        victims.sort_by_key(|p| std::cmp::Reverse(ordinal(p, &name)));
        if let Some(v) = victims.first() {
            delete_owned(store, &sts, Value::clone(v));
        }
        let pods = owned_pods(store, &sts);
        let updated = pods
            .iter()
            .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") == revision)
            .count();
        let ready = count_ready(&pods);
        write_status(
            store,
            "apps",
            "statefulsets",
            &sts,
            &json!({
                "replicas": pods.len(), "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": updated,
                "updatedReplicas": updated, "currentRevision": revision, "updateRevision": revision
            }),
        );
    }
}

fn ordinal(pod: &Value, set: &str) -> Option<usize> {
    str_at(pod, "/metadata/name")
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// Keeps one DaemonSet pod per matching node.
pub fn sync_daemonsets(store: &mut StoreInner) {
    let nodes = store.list_arcs("", "nodes", None);
    for ds in store.list_arcs("apps", "daemonsets", None) {
        if ds.ptr("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let hash = template_hash(&ds["spec"]["template"]);
        let selector = ds
            .ptr("/spec/template/spec/nodeSelector")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let eligible: Vec<&str> = nodes
            .iter()
            .filter(|n| {
                selector
                    .iter()
                    .all(|(k, v)| n.ptr("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
            })
            .map(|n| str_at(n, "/metadata/name"))
            .collect();
        let pods = owned_pods(store, &ds);
        for node in &eligible {
            if !pods.iter().any(|p| str_at(p, "/spec/nodeName") == *node) {
                create_pod(
                    store,
                    &ds,
                    None,
                    &json!({ "controller-revision-hash": hash }),
                    Some(node),
                );
            }
        }
        let stale = pods.iter().find(|p| {
            !eligible.contains(&str_at(p, "/spec/nodeName"))
                || str_at(p, "/metadata/labels/controller-revision-hash") != hash
        });
        if let Some(p) = stale.filter(|_| pods.iter().all(|p| pod_ready(p))) {
            delete_owned(store, &ds, Value::clone(p));
        }
        let pods = owned_pods(store, &ds);
        let updated = pods
            .iter()
            .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") == hash)
            .count();
        let ready = count_ready(&pods);
        write_status(
            store,
            "apps",
            "daemonsets",
            &ds,
            &json!({
                "desiredNumberScheduled": eligible.len(), "currentNumberScheduled": pods.len(), "numberReady": ready,
                "numberAvailable": ready, "updatedNumberScheduled": updated, "numberMisscheduled": 0,
                "numberUnavailable": (i64::try_from(eligible.len()).unwrap_or(0) - ready).max(0)
            }),
        );
    }
}

/// Holds every HPA's target at `minReplicas` (no metrics are simulated).
pub fn sync_hpas(store: &mut StoreInner) {
    for hpa in store.list_owned("autoscaling", "horizontalpodautoscalers", None) {
        let ns = str_at(&hpa, "/metadata/namespace").to_string();
        let plural = match str_at(&hpa, "/spec/scaleTargetRef/kind") {
            "Deployment" => "deployments",
            "StatefulSet" => "statefulsets",
            "ReplicaSet" => "replicasets",
            _ => continue,
        };
        let min = hpa
            .ptr("/spec/minReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let max = hpa
            .ptr("/spec/maxReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(min)
            .max(1);
        let desired = min.min(max);
        let Some(mut target) = store
            .get(
                "apps",
                plural,
                &ns,
                str_at(&hpa, "/spec/scaleTargetRef/name"),
            )
            .cloned()
        else {
            continue;
        };
        let current = i(&target, "/spec/replicas");
        if current != desired {
            set_path(&mut target, &["spec", "replicas"], json!(desired));
            let bumped = i(&target, "/metadata/generation") + 1;
            set_path(&mut target, &["metadata", "generation"], json!(bumped));
            store.put_arc("apps", plural, target);
        }
        write_status(
            store,
            "autoscaling",
            "horizontalpodautoscalers",
            &hpa,
            &json!({ "currentReplicas": current, "desiredReplicas": desired }),
        );
    }
}
