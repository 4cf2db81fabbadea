//! PodDisruptionBudget arithmetic and the disruption controller that keeps
//! `status` (currentHealthy, desiredHealthy, disruptionsAllowed, expectedPods)
//! current. The eviction handler computes the same budget on the spot, so an
//! eviction never sees a stale status.

use crate::store::Ptr;
use std::collections::HashSet;

use serde_json::{Value, json};

use super::{int_or_percent, pod_active, pod_ready, set_condition};
use crate::selector::LabelSelector;
use crate::store::{StoreInner, str_at};

/// A PDB's budget at this moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pods the budget expects (controller scale, or matching pods).
    pub expected: i64,
    /// Ready, non-deleting matching pods.
    pub current_healthy: i64,
    /// Healthy pods the budget requires.
    pub desired_healthy: i64,
    /// `current_healthy - desired_healthy`, floored at 0.
    pub disruptions_allowed: i64,
}

/// Computes the budget of a PDB from the pods and their controllers. In
/// policy/v1 an empty selector selects every pod of the namespace.
pub fn budget(store: &StoreInner, pdb: &Value) -> Budget {
    let ns = str_at(pdb, "/metadata/namespace");
    let Some(sel) = pdb
        .ptr("/spec/selector")
        .and_then(LabelSelector::from_object)
    else {
        return Budget {
            expected: 0,
            current_healthy: 0,
            desired_healthy: 0,
            disruptions_allowed: 0,
        };
    };
    let everything = crate::selector::FieldSelector::default();
    let pods: Vec<&Value> = store
        .select("", "pods", Some(ns), None, &sel, &everything)
        .map(|p| &**p)
        .collect();
    let current_healthy = i64::try_from(
        pods.iter()
            .filter(|p| pod_active(p) && pod_ready(p))
            .count(),
    )
    .unwrap_or(0);
    let scale = controller_scale(store, ns, &pods);
    let (expected, desired) = match (
        pdb.ptr("/spec/minAvailable"),
        pdb.ptr("/spec/maxUnavailable"),
    ) {
        (Some(Value::Number(n)), _) => (
            i64::try_from(pods.len()).unwrap_or(0),
            n.as_i64().unwrap_or(0),
        ),
        (Some(v @ Value::String(_)), _) => (scale, int_or_percent(v, scale, true)),
        (_, Some(v)) if !v.is_null() => (scale, scale - int_or_percent(v, scale, true)),
        _ => (scale, scale),
    };
    Budget {
        expected,
        current_healthy,
        desired_healthy: desired.max(0),
        disruptions_allowed: (current_healthy - desired.max(0)).max(0),
    }
}

/// Sum of `spec.replicas` of the distinct controllers of `pods`; pods without a
/// known controller count as one each.
fn controller_scale(store: &StoreInner, ns: &str, pods: &[&Value]) -> i64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    for p in pods {
        let owner = p
            .ptr("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|r| r.iter().find(|o| o["controller"] == json!(true)));
        let Some(owner) = owner else {
            total += 1;
            continue;
        };
        let uid = owner["uid"].as_str().unwrap_or_default();
        if !seen.insert(uid.to_string()) {
            continue;
        }
        let plural = match owner["kind"].as_str() {
            Some("ReplicaSet") => "replicasets",
            Some("StatefulSet") => "statefulsets",
            Some("Deployment") => "deployments",
            _ => {
                total += 1;
                continue;
            }
        };
        let replicas = store
            .get(
                "apps",
                plural,
                ns,
                owner["name"].as_str().unwrap_or_default(),
            )
            .and_then(|o| o.ptr("/spec/replicas"))
            .and_then(Value::as_i64);
        total += replicas.unwrap_or(1);
    }
    total
}

/// The disruption controller: refreshes every PDB's status.
pub fn sync(store: &mut StoreInner) {
    let now = store.clock.timestamp();
    for pdb in store.list_owned("policy", "poddisruptionbudgets", None) {
        let b = budget(store, &pdb);
        let mut next = pdb.clone();
        let ns = str_at(&pdb, "/metadata/namespace").to_string();
        let disrupted: serde_json::Map<String, Value> = pdb
            .ptr("/status/disruptedPods")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        store
                            .get("", "pods", &ns, k)
                            .is_some_and(|p| p.ptr("/metadata/deletionTimestamp").is_none())
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let allowed = (b.disruptions_allowed - i64::try_from(disrupted.len()).unwrap_or(0)).max(0);
        let status = next["status"]
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        next["status"] = Value::Object(status);
        next["status"]["currentHealthy"] = json!(b.current_healthy);
        next["status"]["desiredHealthy"] = json!(b.desired_healthy);
        next["status"]["expectedPods"] = json!(b.expected);
        next["status"]["disruptionsAllowed"] = json!(allowed);
        next["status"]["observedGeneration"] = pdb["metadata"]["generation"].clone();
        if disrupted.is_empty() {
            if let Some(s) = next["status"].as_object_mut() {
                s.remove("disruptedPods");
            }
        } else {
            next["status"]["disruptedPods"] = Value::Object(disrupted);
        }
        let (st, reason) = if allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        set_condition(
            &mut next,
            json!({ "type": "DisruptionAllowed", "status": st, "reason": reason, "message": "", "observedGeneration": pdb["metadata"]["generation"] }),
            &now,
        );
        store.put_arc("policy", "poddisruptionbudgets", next);
    }
}
