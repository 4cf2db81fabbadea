//! `chaosk8s.node.actions.cordon_node` / `uncordon_node`, with squall's
//! undo: cordoning records, before each patch, an undo that uncordons the
//! node (`node/<name>` in the ledger), so a rollback or `squall recover`
//! puts it back in service. A node that was already cordoned gets no undo:
//! it was out of service before the experiment and stays so. Uncordoning
//! marks the node's pending undos done. Selection follows chaosk8s: by name
//! (field selector) and/or label selector, every node when neither is
//! given, and `failed to find a node that matches selector` when none match.
//! Cordoning respects `squall.limits` (`max_percent` of the cluster's
//! nodes) and refuses before touching any node; under `--dry` it only says
//! which nodes it would cordon.
//!
//! `drain_nodes` (cordon, then evict like `kubectl drain`) lives in
//! [`drain`] and [`evict`], `delete_nodes` in [`delete`], and the node
//! picking they share (pod filters, seeded `count`) in [`pick`].

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};
use squall_activity::describe::optional;
use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, Applied, BoxFuture, Registered, Undo, UndoSpec,
};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};

use crate::args::opt_str;
use crate::connect::{Kube, Origin, kube};
use crate::{api_error, limits};

mod delete;
mod drain;
mod evict;
mod pick;

pub use delete::DELETE_NODES;
pub use drain::DRAIN_NODES;
pub(crate) use drain::pick_count;
pub(crate) use pick::{NodePick, NodeQuery};

/// The `kind` of the uncordon undo in the ledger.
pub const UNDO_KIND: &str = "chaosk8s.node.uncordon";
const FIELD_MANAGER: &str = "squall";

const ARGS: &[ArgSpec] = &[
    optional("name", ArgType::String, "null", "The node's name."),
    optional(
        "label_selector",
        ArgType::String,
        "null",
        "Label selector of the nodes. With neither name nor label_selector every node is selected, as upstream.",
    ),
];

pub const CORDON_NODE: Registered = Registered {
    spec: ActivitySpec {
        module: "chaosk8s.node.actions",
        func: "cordon_node",
        kind: Kind::Action,
        doc: "Mark nodes unschedulable and return their names. Before each patch an undo that uncordons the node \
              is recorded, so rollbacks and `squall recover` put it back in service; nodes already cordoned are \
              left as they are after rollback. Refuses before any change when the pick exceeds squall.limits. \
              Under --dry it only lists the nodes it would cordon.",
        args: ARGS,
        returns: "list",
        mutating: true,
    },
    run: cordon_node,
    permissions: crate::permissions::CORDON,
};

pub const UNCORDON_NODE: Registered = Registered {
    spec: ActivitySpec {
        module: "chaosk8s.node.actions",
        func: "uncordon_node",
        kind: Kind::Action,
        doc: "Mark nodes schedulable again, return their names, and mark their pending cordon undos done. \
              The usual rollback of cordon_node and drain_nodes; uncordoning twice changes nothing.",
        args: ARGS,
        returns: "list",
        mutating: false,
    },
    run: uncordon_node,
    permissions: crate::permissions::CORDON,
};

pub const UNDO_UNCORDON: UndoSpec = UndoSpec {
    kind: UNDO_KIND,
    doc: "Uncordon a node cordoned by squall (nothing to do if it is schedulable or gone).",
    apply: apply_uncordon,
    permissions: crate::permissions::CORDON,
};

fn target(name: &str) -> String {
    format!("node/{name}")
}

/// The nodes chosen by name and/or label selector.
async fn select_nodes(
    api: &Api<Node>,
    args: &Map<String, Value>,
) -> Result<Vec<String>, ActivityError> {
    let mut params = ListParams::default();
    if let Some(name) = opt_str(args, "name")? {
        params = params.fields(&format!("metadata.name={name}"));
    }
    if let Some(sel) = opt_str(args, "label_selector")? {
        params = params.labels(&sel);
    }
    let nodes = api.list(&params).await.map_err(api_error)?.items;
    if nodes.is_empty() {
        return Err(ActivityError::failed(
            "failed to find a node that matches selector",
        ));
    }
    Ok(nodes.into_iter().filter_map(|n| n.metadata.name).collect())
}

fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

async fn set_unschedulable(api: &Api<Node>, name: &str, value: bool) -> Result<(), kube::Error> {
    let patch = json!({"spec": {"unschedulable": value}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Strategic(&patch))
        .await
        .map(|_| ())
}

fn cordon_node(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let kube = kube(&ctx)?;
        let api: Api<Node> = Api::all(kube.client());
        let names = select_nodes(&api, &args).await?;
        let pick = pick::NodePick::every(names);
        guard(
            &ctx,
            &kube.client(),
            &pick,
            "cordon_node",
            "no node was cordoned",
        )
        .await?;
        if ctx.dry {
            let mut changes = Vec::new();
            for name in &pick.names {
                changes.push(cordon_change(&api, name).await?);
            }
            return ctx.plan(&pick.names, &changes);
        }
        for name in &pick.names {
            cordon_one(&ctx, &kube, &api, name).await?;
        }
        Ok(json!(pick.names))
    })
}

/// The blast-radius check for a pick of nodes, against every node in the
/// cluster; a random pick's seed is logged first, so even a refused pick
/// can be replayed.
pub(crate) async fn guard(
    ctx: &ActivityCtx,
    client: &kube::Client,
    pick: &pick::NodePick,
    activity: &str,
    untouched: &str,
) -> Result<(), ActivityError> {
    let api: Api<Node> = Api::all(client.clone());
    let all = api.list(&ListParams::default()).await.map_err(api_error)?;
    if let Some(seed) = pick.seed {
        ctx.log.info(&format!(
            "{activity}: random pick of {} nodes ({}) with seed {seed}",
            pick.names.len(),
            pick.names.join(", ")
        ));
    }
    let targets = limits::Targets {
        activity,
        noun: "nodes",
        pool: "nodes in the cluster",
        untouched,
        picked: pick.names.len(),
        out_of: all.items.len(),
    };
    limits::check(&ctx.limits, &targets)
}

/// What cordoning `name` would do, for a dry run (a read-only call).
async fn cordon_change(api: &Api<Node>, name: &str) -> Result<String, ActivityError> {
    let node = api.get(name).await.map_err(api_error)?;
    Ok(if is_cordoned(&node) {
        format!("leave node {name} cordoned (it already is; no undo recorded)")
    } else {
        format!("cordon node {name}")
    })
}

/// Records the undo (unless the node is already cordoned), then patches.
async fn cordon_one(
    ctx: &ActivityCtx,
    kube: &Kube,
    api: &Api<Node>,
    name: &str,
) -> Result<(), ActivityError> {
    let failed = |e: kube::Error| {
        ActivityError::Failed(format!(
            "Failed to unschedule node '{name}': {}",
            api_error(e).message()
        ))
    };
    let node = api.get(name).await.map_err(failed)?;
    if is_cordoned(&node) {
        ctx.log.info(&format!(
            "node {name} is already cordoned; no undo recorded, it stays cordoned after rollback"
        ));
        return set_unschedulable(api, name, true).await.map_err(failed);
    }
    let undo = Undo {
        kind: UNDO_KIND.into(),
        data: json!({"node": name, "connection": kube.origin()}),
        description: format!("uncordon node {name}"),
    };
    let id = ctx.record_undo(&target(name), undo)?;
    if let Err(e) = set_unschedulable(api, name, true).await {
        // Refused: nothing changed, so the undo must not uncordon later.
        crate::settle_failed_write(ctx, &id, &e)?;
        return Err(failed(e));
    }
    Ok(())
}

fn uncordon_node(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let kube = kube(&ctx)?;
        let api: Api<Node> = Api::all(kube.client());
        let names = select_nodes(&api, &args).await?;
        for name in &names {
            set_unschedulable(&api, name, false).await.map_err(|e| {
                ActivityError::Failed(format!(
                    "Failed to schedule node '{name}': {}",
                    api_error(e).message()
                ))
            })?;
            for pending in crate::pending_here(&ctx, &kube, &target(name))? {
                ctx.mark_done(&pending.id)?;
            }
        }
        Ok(json!(names))
    })
}

/// The undo: reconnect to the recorded cluster and uncordon the node if it
/// is still cordoned. A node that no longer exists needs nothing.
fn apply_uncordon(data: Value) -> BoxFuture<Result<Applied, String>> {
    Box::pin(async move {
        let name = data
            .get("node")
            .and_then(Value::as_str)
            .ok_or("undo data has no node")?
            .to_owned();
        let origin: Origin =
            serde_json::from_value(data.get("connection").cloned().unwrap_or_default())
                .map_err(|e| format!("undo data has no usable connection: {e}"))?;
        let kube = Kube::reconnect(&origin)
            .await
            .map_err(|e| format!("{e}; run `kubectl uncordon {name}` by hand"))?;
        uncordon_if_cordoned(&kube, &name).await
    })
}

/// Uncordons `name` if it exists and is cordoned (idempotent).
pub async fn uncordon_if_cordoned(kube: &Kube, name: &str) -> Result<Applied, String> {
    let api: Api<Node> = Api::all(kube.client());
    let node = match api.get_opt(name).await {
        Ok(Some(node)) => node,
        Ok(None) => return Ok(Applied::Superseded(format!("node {name} no longer exists"))),
        Err(e) => return Err(format!("cannot read node {name}: {e}")),
    };
    if !is_cordoned(&node) {
        return Ok(Applied::AlreadyAsItWas);
    }
    set_unschedulable(&api, name, false)
        .await
        .map(|()| Applied::Restored)
        .map_err(|e| format!("Failed to schedule node '{name}': {e}"))
}

#[cfg(test)]
mod tests;
