//! `chaosk8s.deployment.actions` and `chaosk8s.deployment.probes`: scale,
//! delete and restart deployments, and check or wait for their readiness,
//! with upstream's names, arguments and messages (`reference/ctk-plugins.md`
//! §2.7).
//!
//! Scaling records, before the patch, an undo that scales the deployment
//! back to the replica count it had (`deployment/<ns>/<name>` in the
//! ledger), so a rollback or `squall recover` restores it; a later scale back
//! to that count (the usual rollback) marks the undo done. Deleting and
//! restarting cannot be undone (a deleted deployment's pods are gone; a
//! restart replaces every pod), so they record nothing; deletes are checked
//! against `squall.limits` first. The machinery shared with statefulsets is
//! in [`workload`].

pub(crate) mod workload;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};
use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, Applied, BoxFuture, Registered, UndoSpec,
};
use squall_core::catalog::{ArgSpec, ArgType, Kind};

use crate::api_error;
use crate::args::{bool_or, opt_str, str_or};
use crate::args::{required_int, required_str};
use crate::connect::kube;
use crate::pod::verdict;
use crate::{raise, spec};
use squall_activity::describe::arg;
use workload::{Deleted, Scale, Selection};

const ACTIONS: &str = "chaosk8s.deployment.actions";
const PROBES: &str = "chaosk8s.deployment.probes";
/// The `kind` of the scale-back undo in the ledger.
pub const UNDO_SCALE_KIND: &str = "chaosk8s.deployment.scale";

const NAME: ArgSpec = arg("name", ArgType::String, None, "The deployment's name.");
const OPT_NAME: ArgSpec = arg(
    "name",
    ArgType::String,
    Some("null"),
    "The deployment's name.",
);
pub(crate) const NS: ArgSpec = arg("ns", ArgType::String, Some("\"default\""), "The namespace.");
const LABELS: ArgSpec = arg(
    "label_selector",
    ArgType::String,
    Some("null"),
    "Label selector the deployment must also match.",
);
pub(crate) const REPLICAS: ArgSpec = arg(
    "replicas",
    ArgType::Integer,
    None,
    "The replica count to scale to.",
);
pub(crate) const TIMEOUT: ArgSpec = arg(
    "timeout",
    ArgType::Integer,
    Some("30"),
    "Seconds to wait for the state before giving up.",
);

pub const SCALE_DEPLOYMENT: Registered = Registered {
    spec: spec(
        ACTIONS,
        "scale_deployment",
        Kind::Action,
        "Scale a deployment to `replicas`. Before the patch an undo that scales it back to its previous count is \
         recorded, so rollbacks and `squall recover` restore it; scaling back to that count marks the undo done. \
         Dry mode plans the change. Fails with `failed to scale '<name>' to <N> replicas: <error>`.",
        &[NAME, REPLICAS, NS],
    ),
    run: scale_deployment,
    permissions: crate::permissions::PATCH_DEPLOYMENTS,
};

pub const DELETE_DEPLOYMENT: Registered = Registered {
    spec: spec(
        ACTIONS,
        "delete_deployment",
        Kind::Action,
        "Delete the deployment `name`, else those matching `label_selector`, else every deployment in the \
         namespace, with the API's default grace period and propagation. Cannot be undone (no undo is recorded); \
         refuses before deleting anything when the pick exceeds squall.limits.",
        &[OPT_NAME, NS, LABELS],
    ),
    run: delete_deployment,
    permissions: crate::permissions::DELETE_DEPLOYMENTS,
};

pub const ROLLOUT_DEPLOYMENT: Registered = Registered {
    spec: spec(
        ACTIONS,
        "rollout_deployment",
        Kind::Action,
        "Restart a deployment's pods as `kubectl rollout restart` does (sets the \
         kubectl.kubernetes.io/restartedAt annotation of its pod template). Cannot be undone: every pod is replaced.",
        &[OPT_NAME, NS],
    ),
    run: rollout_deployment,
    permissions: crate::permissions::PATCH_DEPLOYMENTS,
};

pub const DEPLOYMENT_AVAILABLE_AND_HEALTHY: Registered = Registered {
    spec: spec(
        PROBES,
        "deployment_available_and_healthy",
        Kind::Probe,
        "True if the deployment exists and its available replicas equal its desired replicas (a deployment scaled \
         to 0 has no available replicas and counts as unhealthy, as upstream).",
        &[
            NAME,
            NS,
            LABELS,
            raise(
                "raise_on_unavailable",
                "Fail (rather than return false) when it is missing or unhealthy.",
            ),
        ],
    ),
    run: deployment_available_and_healthy,
    permissions: crate::permissions::READ_DEPLOYMENTS,
};

pub const DEPLOYMENT_PARTIALLY_AVAILABLE: Registered = Registered {
    spec: spec(
        PROBES,
        "deployment_partially_available",
        Kind::Probe,
        "True if the deployment exists and has at least one available replica.",
        &[
            NAME,
            NS,
            LABELS,
            raise(
                "raise_on_not_partially_available",
                "Fail (rather than return false) when it is missing or has no available replica.",
            ),
        ],
    ),
    run: deployment_partially_available,
    permissions: crate::permissions::READ_DEPLOYMENTS,
};

pub const DEPLOYMENT_FULLY_AVAILABLE: Registered = Registered {
    spec: spec(
        PROBES,
        "deployment_fully_available",
        Kind::Probe,
        "Wait (on a watch) until the deployment's ready replicas equal its desired replicas; true at once if they \
         already do. Gives up after `timeout` seconds.",
        &[
            NAME,
            NS,
            LABELS,
            TIMEOUT,
            raise(
                "raise_on_not_fully_available",
                "Fail (rather than return false) on timeout.",
            ),
        ],
    ),
    run: workload::fully_available::<Deployment>,
    permissions: crate::permissions::WAIT_DEPLOYMENTS,
};

pub const DEPLOYMENT_NOT_FULLY_AVAILABLE: Registered = Registered {
    spec: spec(
        PROBES,
        "deployment_not_fully_available",
        Kind::Probe,
        "Wait (on a watch) until the deployment's ready replicas differ from its desired replicas; true at once if \
         they already do. Gives up after `timeout` seconds.",
        &[
            NAME,
            NS,
            LABELS,
            TIMEOUT,
            raise(
                "raise_on_fully_available",
                "Fail (rather than return false) on timeout.",
            ),
        ],
    ),
    run: workload::not_fully_available::<Deployment>,
    permissions: crate::permissions::WAIT_DEPLOYMENTS,
};

pub const UNDO_SCALE_DEPLOYMENT: UndoSpec = UndoSpec {
    kind: UNDO_SCALE_KIND,
    doc: "Scale a deployment back to the replica count it had before squall scaled it (nothing to do if it is \
          already there or gone).",
    apply: apply_undo_scale,
    permissions: crate::permissions::PATCH_DEPLOYMENTS,
};

fn scale_deployment(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move { scale(&ctx, &args).await })
}

/// `scale_deployment` (also behind `chaosk8s.actions.scale_microservice`).
pub(crate) async fn scale(ctx: &ActivityCtx, args: &Map<String, Value>) -> ActivityResult {
    let name = required_str(args, "name")?;
    let replicas = required_int(args, "replicas")?;
    let ns = str_or(args, "ns", "default")?;
    let s = Scale {
        ns: &ns,
        name: &name,
        replicas,
        undo_kind: UNDO_SCALE_KIND,
    };
    workload::scale::<Deployment>(ctx, &s).await
}

fn delete_deployment(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let name = opt_str(&args, "name")?;
        let labels = opt_str(&args, "label_selector")?;
        let ns = str_or(&args, "ns", "default")?;
        let sel = Selection {
            ns: &ns,
            name: name.as_deref(),
            label_selector: labels.as_deref(),
            activity: "delete_deployment",
        };
        match workload::delete_selected::<Deployment>(&ctx, &sel).await? {
            Deleted::Planned(plan) => Ok(plan),
            Deleted::Done(names) => {
                ctx.log.debug(&format!(
                    "deleted {} deployment(s) in ns '{ns}'",
                    names.len()
                ));
                Ok(Value::Null)
            }
        }
    })
}

fn rollout_deployment(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let name = opt_str(&args, "name")?;
        let ns = str_or(&args, "ns", "default")?;
        let shown = name.clone().unwrap_or_else(|| "None".into());
        let failed = |e: String| {
            ActivityError::Failed(format!(
                "failed to rollout the deployment '{shown}'! Error: {e}"
            ))
        };
        let name = name.ok_or_else(|| failed("a deployment name is required".into()))?;
        let api: Api<Deployment> = Api::namespaced(kube(&ctx)?.client(), &ns);
        if ctx.dry {
            api.get(&name)
                .await
                .map_err(|e| failed(api_error(e).message().into()))?;
            let key = workload::target::<Deployment>(&ns, &name);
            return ctx.plan(&[key], &[format!("restart deployment {ns}/{name}")]);
        }
        // kubectl's format (RFC 3339, UTC); upstream's Python value ends in
        // "+00:00Z", which is not a valid timestamp. Any new value restarts.
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": now
        }}}}});
        let params = PatchParams {
            field_manager: Some("squall".into()),
            ..PatchParams::default()
        };
        api.patch(&name, &params, &Patch::Strategic(&patch))
            .await
            .map_err(|e| failed(api_error(e).message().into()))?;
        Ok(Value::Null)
    })
}

/// The deployments named `name` (and matching `label_selector`) in `ns`.
async fn named(
    ctx: &ActivityCtx,
    name: &str,
    ns: &str,
    labels: Option<&str>,
) -> Result<Vec<Deployment>, ActivityError> {
    let api: Api<Deployment> = Api::namespaced(kube(ctx)?.client(), ns);
    let mut params = ListParams::default().fields(&format!("metadata.name={name}"));
    if let Some(l) = labels {
        params = params.labels(l);
    }
    let found = api.list(&params).await.map_err(api_error)?.items;
    ctx.log.debug(&format!(
        "Found {} deployment(s) named '{name}' in ns '{ns}'",
        found.len()
    ));
    Ok(found)
}

fn available(d: &Deployment) -> Option<i32> {
    d.status.as_ref().and_then(|s| s.available_replicas)
}

/// `deployment_available_and_healthy` (also behind
/// `chaosk8s.probes.microservice_available_and_healthy`).
pub(crate) async fn available_and_healthy(
    ctx: &ActivityCtx,
    args: &Map<String, Value>,
    raise: bool,
) -> ActivityResult {
    let name = required_str(args, "name")?;
    let ns = str_or(args, "ns", "default")?;
    let labels = opt_str(args, "label_selector")?;
    let found = named(ctx, &name, &ns, labels.as_deref()).await?;
    if found.is_empty() {
        return verdict(raise, format!("Deployment '{name}' was not found"));
    }
    // Python compares `None` (no available replica) with the count, so a
    // deployment scaled to 0 is "not healthy": kept as upstream.
    if found
        .iter()
        .any(|d| available(d) != workload::Workload::desired(d))
    {
        return verdict(raise, format!("Deployment '{name}' is not healthy"));
    }
    Ok(Value::Bool(true))
}

fn deployment_available_and_healthy(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let raise = bool_or(&args, "raise_on_unavailable", true)?;
        available_and_healthy(&ctx, &args, raise).await
    })
}

fn deployment_partially_available(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let name = required_str(&args, "name")?;
        let ns = str_or(&args, "ns", "default")?;
        let labels = opt_str(&args, "label_selector")?;
        let raise = bool_or(&args, "raise_on_not_partially_available", true)?;
        let found = named(&ctx, &name, &ns, labels.as_deref()).await?;
        let Some(first) = found.first() else {
            return verdict(raise, format!("Deployment '{name}' was not found"));
        };
        // Upstream looks at the first match only; with no available replica
        // it crashes on `None >= 1`, squall says "not healthy".
        if available(first).unwrap_or(0) >= 1 {
            return Ok(Value::Bool(true));
        }
        verdict(raise, format!("Deployment '{name}' is not healthy"))
    })
}

fn apply_undo_scale(data: Value) -> BoxFuture<Result<Applied, String>> {
    Box::pin(async move {
        workload::undo_scale::<Deployment>(data)
            .await
            .map(|()| Applied::Restored)
    })
}

#[cfg(test)]
mod tests;
