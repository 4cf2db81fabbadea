//! `chaosk8s.statefulset.actions` (`scale_statefulset`,
//! `remove_statefulset`) and `chaosk8s.statefulset.probes`
//! (`statefulset_fully_available`, `statefulset_not_fully_available`), with
//! upstream's arguments and messages (`reference/ctk-plugins.md` §2.8).
//!
//! As for deployments, scaling records an undo that scales back to the
//! previous count before it patches, and removal (which cannot be undone:
//! the pods go, their volumes stay) is checked against `squall.limits`. The
//! shared machinery is `deployment::workload`.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::{Map, Value};
use squall_activity::{ActivityCtx, ActivityResult, Applied, BoxFuture, Registered, UndoSpec};
use squall_core::catalog::{ArgSpec, ArgType, Kind};

use crate::args::{opt_str, str_or};
use crate::args::{required_int, required_str};
use crate::deployment::workload::{self, Deleted, Scale, Selection};
use crate::deployment::{NS, REPLICAS, TIMEOUT};
use crate::spec;
use squall_activity::describe::arg;

const ACTIONS: &str = "chaosk8s.statefulset.actions";
const PROBES: &str = "chaosk8s.statefulset.probes";
/// The `kind` of the scale-back undo in the ledger.
pub const UNDO_SCALE_KIND: &str = "chaosk8s.statefulset.scale";

const NAME: ArgSpec = arg("name", ArgType::String, None, "The statefulset's name.");
const LABELS: ArgSpec = arg(
    "label_selector",
    ArgType::String,
    Some("null"),
    "Label selector the statefulset must also match (`{name}` is replaced by the name).",
);

pub const SCALE_STATEFULSET: Registered = Registered {
    spec: spec(
        ACTIONS,
        "scale_statefulset",
        Kind::Action,
        "Scale a statefulset to `replicas`. Before the patch an undo that scales it back to its previous count is \
         recorded, so rollbacks and `squall recover` restore it; scaling back to that count marks the undo done. \
         Dry mode plans the change. Fails with `failed to scale '<name>' to <N> replicas: <error>`.",
        &[NAME, REPLICAS, NS],
    ),
    run: scale_statefulset,
    permissions: crate::permissions::PATCH_STATEFULSETS,
};

pub const REMOVE_STATEFULSET: Registered = Registered {
    spec: spec(
        ACTIONS,
        "remove_statefulset",
        Kind::Action,
        "Delete the statefulset `name`, else those matching `label_selector`, else every statefulset in the \
         namespace. Cannot be undone (no undo is recorded); refuses before deleting anything when the pick exceeds \
         squall.limits.",
        &[
            arg(
                "name",
                ArgType::String,
                Some("null"),
                "The statefulset's name.",
            ),
            NS,
            arg(
                "label_selector",
                ArgType::String,
                Some("null"),
                "Label selector of the statefulsets (used when no name is given).",
            ),
        ],
    ),
    run: remove_statefulset,
    permissions: crate::permissions::DELETE_STATEFULSETS,
};

pub const STATEFULSET_FULLY_AVAILABLE: Registered = Registered {
    spec: spec(
        PROBES,
        "statefulset_fully_available",
        Kind::Probe,
        "Wait (on a watch) until the statefulset's ready replicas equal its desired replicas; true at once if they \
         already do. Gives up after `timeout` seconds with `microservice '<name>' failed to recover within <t>s`.",
        &[
            NAME,
            NS,
            LABELS,
            TIMEOUT,
            arg(
                "raise_on_not_fully_available",
                ArgType::Boolean,
                Some("true"),
                "Fail (rather than return false) on timeout.",
            ),
        ],
    ),
    run: workload::fully_available::<StatefulSet>,
    permissions: crate::permissions::WAIT_STATEFULSETS,
};

pub const STATEFULSET_NOT_FULLY_AVAILABLE: Registered = Registered {
    spec: spec(
        PROBES,
        "statefulset_not_fully_available",
        Kind::Probe,
        "Wait (on a watch) until the statefulset's ready replicas differ from its desired replicas; true at once if \
         they already do. Gives up after `timeout` seconds.",
        &[
            NAME,
            NS,
            LABELS,
            TIMEOUT,
            arg(
                "raise_on_fully_available",
                ArgType::Boolean,
                Some("true"),
                "Fail (rather than return false) on timeout.",
            ),
        ],
    ),
    run: workload::not_fully_available::<StatefulSet>,
    permissions: crate::permissions::WAIT_STATEFULSETS,
};

pub const UNDO_SCALE_STATEFULSET: UndoSpec = UndoSpec {
    kind: UNDO_SCALE_KIND,
    doc: "Scale a statefulset back to the replica count it had before squall scaled it (nothing to do if it is \
          already there or gone).",
    apply: apply_undo_scale,
    permissions: crate::permissions::PATCH_STATEFULSETS,
};

fn scale_statefulset(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let name = required_str(&args, "name")?;
        let replicas = required_int(&args, "replicas")?;
        let ns = str_or(&args, "ns", "default")?;
        let s = Scale {
            ns: &ns,
            name: &name,
            replicas,
            undo_kind: UNDO_SCALE_KIND,
        };
        workload::scale::<StatefulSet>(&ctx, &s).await
    })
}

fn remove_statefulset(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let name = opt_str(&args, "name")?;
        let labels = opt_str(&args, "label_selector")?;
        let ns = str_or(&args, "ns", "default")?;
        let sel = Selection {
            ns: &ns,
            name: name.as_deref(),
            label_selector: labels.as_deref(),
            activity: "remove_statefulset",
        };
        match workload::delete_selected::<StatefulSet>(&ctx, &sel).await? {
            Deleted::Planned(plan) => Ok(plan),
            Deleted::Done(_) => Ok(Value::Null),
        }
    })
}

fn apply_undo_scale(data: Value) -> BoxFuture<Result<Applied, String>> {
    Box::pin(async move {
        workload::undo_scale::<StatefulSet>(data)
            .await
            .map(|()| Applied::Restored)
    })
}

#[cfg(test)]
mod tests;
