//! The `pods/eviction` subresource, following the apiserver's order of checks
//! (pkg/registry/core/pod/storage/eviction.go): terminal, pending or already
//! deleting pods are deleted without a budget check; a pod covered by more
//! than one PodDisruptionBudget is a 500 Status; an unready pod may go when the
//! budget is already met; otherwise the budget must allow a disruption or the
//! answer is 429 `TooManyRequests` with a `DisruptionBudget` cause.

use crate::store::Ptr;
use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};

use super::http::{Body, json_response};
use super::rest::{Ctx, created_status, parse_body};
use crate::controllers::pdb::{Budget, budget};
use crate::error::{ApiError, ApiResult, Subject};
use crate::selector::LabelSelector;
use crate::store::{StoreInner, str_at};

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// What the Eviction body asks for.
struct Request {
    dry_run: bool,
    grace: Option<i64>,
    uid: Option<String>,
}

fn parse_request(ctx: &Ctx<'_>, name: &str, body: &Bytes) -> ApiResult<Request> {
    let eviction = parse_body(body)?;
    let body_name = str_at(&eviction, "/metadata/name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {name} != {body_name}"
        )));
    }
    let opts = eviction
        .get("deleteOptions")
        .cloned()
        .unwrap_or(Value::Null);
    let dry_run = ctx.query.dry_run()
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    Ok(Request {
        dry_run,
        grace: opts.get("gracePeriodSeconds").and_then(Value::as_i64),
        uid: opts
            .ptr("/preconditions/uid")
            .and_then(Value::as_str)
            .map(ToString::to_string),
    })
}

pub fn evict(ctx: &Ctx<'_>, name: &str, body: &Bytes) -> ApiResult<Response<Body>> {
    let Request {
        dry_run,
        grace,
        uid,
    } = parse_request(ctx, name, body)?;
    let subject = Subject {
        group: "",
        resource: "pods",
        name,
    };
    let mut store = ctx.shared.store.lock();
    let pod = store
        .get("", "pods", ctx.ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(subject))?;
    let pod_uid = str_at(&pod, "/metadata/uid");
    if let Some(uid) = uid.filter(|u| u != pod_uid) {
        let why = format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {pod_uid}"
        );
        return Err(ApiError::conflict(subject, &why));
    }
    match decide(&store, &pod)? {
        Decision::Delete => {}
        Decision::DeleteCounting(pdb) => {
            if !dry_run {
                record_disruption(&mut store, &pdb, name);
            }
        }
        Decision::Status(v) => {
            return Ok(json_response(
                v["code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(500),
                &v,
            ));
        }
    }
    if !dry_run {
        let pod = mark_disruption_target(&mut store, pod);
        let gone = store.delete_pod(pod, grace);
        crate::controllers::replace_deleted_pod(&mut store, &gone);
    }
    drop(store);
    ctx.shared.store.poke();
    Ok(json_response(201, &created_status()))
}

enum Decision {
    /// Delete without touching any budget.
    Delete,
    /// Delete and count the disruption against this PDB.
    DeleteCounting(Value),
    /// Answer with this Status object (not an error: the 500 multi-PDB case).
    Status(Value),
}

fn decide(store: &StoreInner, pod: &Value) -> ApiResult<Decision> {
    let phase = str_at(pod, "/status/phase");
    if matches!(phase, "Succeeded" | "Failed" | "Pending")
        || pod.ptr("/metadata/deletionTimestamp").is_some()
    {
        return Ok(Decision::Delete);
    }
    let ns = str_at(pod, "/metadata/namespace");
    let pdbs: Vec<&Value> = store
        .list("policy", "poddisruptionbudgets", Some(ns))
        .into_iter()
        .filter(|p| {
            p.ptr("/spec/selector")
                .and_then(LabelSelector::from_object)
                .is_some_and(|s| s.matches(pod))
        })
        .collect();
    let pdb = match pdbs.as_slice() {
        [] => return Ok(Decision::Delete),
        [one] => (*one).clone(),
        _ => {
            return Ok(Decision::Status(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                "code": 500
            })));
        }
    };
    let b = budget(store, &pdb);
    let pdb_name = str_at(&pdb, "/metadata/name");
    if !crate::controllers::pod_ready(pod) {
        let always = str_at(&pdb, "/spec/unhealthyPodEvictionPolicy") == "AlwaysAllow";
        if always || (b.current_healthy >= b.desired_healthy && b.desired_healthy > 0) {
            return Ok(Decision::Delete);
        }
        return Err(blocked(pdb_name, &b));
    }
    if b.disruptions_allowed <= 0 {
        return Err(blocked(pdb_name, &b));
    }
    Ok(Decision::DeleteCounting(pdb))
}

fn blocked(pdb: &str, b: &Budget) -> ApiError {
    let cause = format!(
        "The disruption budget {pdb} needs {} healthy pods and has {} currently",
        b.desired_healthy, b.current_healthy
    );
    ApiError::too_many_requests(
        VIOLATION,
        json!({ "causes": [{ "reason": "DisruptionBudget", "message": cause }] }),
    )
}

/// Records the eviction in `status.disruptedPods` and lowers `disruptionsAllowed`,
/// as the apiserver's checkAndDecrement does.
fn record_disruption(store: &mut StoreInner, pdb: &Value, pod: &str) {
    let mut next = pdb.clone();
    let ts = store.clock.timestamp();
    if !next["status"].is_object() {
        next["status"] = json!({});
    }
    let allowed = next
        .ptr("/status/disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    next["status"]["disruptionsAllowed"] = json!((allowed - 1).max(0));
    if !next["status"]["disruptedPods"].is_object() {
        next["status"]["disruptedPods"] = json!({});
    }
    next["status"]["disruptedPods"][pod] = json!(ts);
    store.put("policy", "poddisruptionbudgets", next);
}

fn mark_disruption_target(store: &mut StoreInner, mut pod: Value) -> Value {
    let ts = store.clock.timestamp();
    let cond = json!({ "type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting", "lastTransitionTime": ts });
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    match pod["status"]["conditions"].as_array_mut() {
        Some(c) => {
            c.retain(|x| x["type"] != "DisruptionTarget");
            c.push(cond);
        }
        None => pod["status"]["conditions"] = json!([cond]),
    }
    store.put("", "pods", pod)
}
