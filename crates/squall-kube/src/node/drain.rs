//! `chaosk8s.node.actions.drain_nodes`, done the way `kubectl drain` does it:
//! cordon every chosen node first (recording the same uncordon undo as
//! `cordon_node`, so a rollback or `squall recover` puts them back in
//! service), then drain the nodes one after another. On each node,
//! DaemonSet and mirror pods are skipped, finished pods are evicted, and a
//! pod kubectl would refuse (no controller; `emptyDir` without
//! `delete_pods_with_local_storage`) stops that node before anything on it
//! is evicted. Evictions run concurrently and a disruption budget refusal is
//! retried until `timeout` (see [`super::evict`]). A drain that cannot
//! finish fails and leaves its node cordoned, its undo pending.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::{Map, Value, json};
use squall_activity::describe::optional;
use squall_activity::{ActivityCtx, ActivityError, ActivityResult, BoxFuture, Registered};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};

use super::evict::{Victim, evict_all};
use super::pick::{NodePick, NodeQuery};
use super::{cordon_change, cordon_one, guard};
use crate::api_error;
use crate::args::{bool_or, int_or, opt_int};
use crate::connect::kube;

/// The node-picking arguments `drain_nodes` and `delete_nodes` share.
pub(super) const COUNT: ArgSpec = optional(
    "count",
    ArgType::Integer,
    "null",
    "Pick this many of the selected nodes at random (never the same node twice); the output then is \
     {\"nodes\": [...], \"seed\": N}.",
);
pub(super) const POD_LABEL_SELECTOR: ArgSpec = optional(
    "pod_label_selector",
    ArgType::String,
    "null",
    "Keep only nodes running a pod with these labels (in pod_namespace if given, else anywhere).",
);
pub(super) const POD_NAMESPACE: ArgSpec = optional(
    "pod_namespace",
    ArgType::String,
    "null",
    "Keep only nodes running a pod in this namespace (matching pod_label_selector if given).",
);
pub(super) const SEED: ArgSpec = optional(
    "seed",
    ArgType::Integer,
    "null",
    "Seed of the random pick (squall only): pass the seed a random pick reported to replay it.",
);

const ARGS: &[ArgSpec] = &[
    optional("name", ArgType::String, "null", "The node's name."),
    optional(
        "label_selector",
        ArgType::String,
        "null",
        "Label selector of the nodes. With neither name nor label_selector every node is selected, as upstream.",
    ),
    optional(
        "delete_pods_with_local_storage",
        ArgType::Boolean,
        "false",
        "Also evict pods with emptyDir volumes (their data is lost); without it such a pod stops the drain of its node, as kubectl does.",
    ),
    optional(
        "timeout",
        ArgType::Integer,
        "120",
        "Seconds each node's drain may take, refused evictions retried every 5 s included.",
    ),
    COUNT,
    POD_LABEL_SELECTOR,
    POD_NAMESPACE,
    SEED,
];

pub const DRAIN_NODES: Registered = Registered {
    spec: ActivitySpec {
        module: "chaosk8s.node.actions",
        func: "drain_nodes",
        kind: Kind::Action,
        doc: "Drain nodes like `kubectl drain --ignore-daemonsets`: cordon every chosen node (recording an undo \
              that uncordons it), then on each node evict its pods concurrently, skipping DaemonSet and mirror \
              pods and refusing unmanaged pods and, unless allowed, pods with emptyDir volumes. A disruption \
              budget refusal is retried every 5 s until the timeout; a drain that cannot finish fails with the \
              refusal and leaves the node cordoned for the rollback (uncordon_node) or `squall recover`. \
              Returns the node names. Refuses before any change when the pick exceeds squall.limits.",
        args: ARGS,
        returns: "list",
        mutating: true,
    },
    run: drain_nodes,
    permissions: crate::permissions::DRAIN,
};

struct DrainArgs {
    query: NodeQuery,
    local_storage: bool,
    timeout: Duration,
    count: Option<i64>,
    seed: Option<i64>,
}

impl DrainArgs {
    fn read(args: &Map<String, Value>) -> Result<Self, ActivityError> {
        let timeout = int_or(args, "timeout", 120)?;
        Ok(Self {
            query: NodeQuery::read(args)?,
            local_storage: bool_or(args, "delete_pods_with_local_storage", false)?,
            timeout: Duration::from_secs(u64::try_from(timeout).unwrap_or(0)),
            count: opt_int(args, "count")?,
            seed: opt_int(args, "seed")?,
        })
    }
}

/// Every selected node, or `count` of them at random.
pub(crate) fn pick_count(
    names: Vec<String>,
    count: Option<i64>,
    seed: Option<i64>,
) -> Result<NodePick, ActivityError> {
    match count {
        None => Ok(NodePick::every(names)),
        Some(c) if c < 0 => Err(ActivityError::Failed(format!(
            "Cannot select nodes. Count '{c}' is negative."
        ))),
        Some(c) => Ok(NodePick::random(&names, c.unsigned_abs(), seed)),
    }
}

fn drain_nodes(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let a = DrainArgs::read(&args)?;
        let kube = kube(&ctx)?;
        let client = kube.client();
        let names = a.query.nodes(&client).await?;
        let pick = pick_count(names, a.count, a.seed)?;
        guard(
            &ctx,
            &client,
            &pick,
            "drain_nodes",
            "no node was cordoned or drained",
        )
        .await?;
        if ctx.dry {
            return plan(&ctx, &client, &pick, a.local_storage).await;
        }
        let api: Api<Node> = Api::all(client.clone());
        for name in &pick.names {
            cordon_one(&ctx, &kube, &api, name).await?;
            ctx.log.info(&format!("node/{name} cordoned"));
        }
        for name in &pick.names {
            drain_one(&ctx, &client, name, &a).await?;
            ctx.log.info(&format!("node/{name} drained"));
        }
        Ok(pick.output())
    })
}

/// Drains one (already cordoned) node.
async fn drain_one(
    ctx: &Arc<ActivityCtx>,
    client: &kube::Client,
    node: &str,
    a: &DrainArgs,
) -> Result<(), ActivityError> {
    let pods = pods_on(client, node).await?;
    let sorted = Sorted::of(&pods, node, a.local_storage);
    for (pod, why) in &sorted.skipped {
        ctx.log.info(&format!("ignoring pod {pod}: {why}"));
    }
    if !sorted.refused.is_empty() {
        return Err(ActivityError::Failed(sorted.refused.join("\n")));
    }
    evict_all(client, &ctx.log, sorted.evict, a.timeout)
        .await
        .map_err(|msg| {
            ActivityError::Failed(format!(
                "{msg}\nnode {node} stays cordoned until the rollback (uncordon_node) or `squall recover`"
            ))
        })
}

/// The pods bound to `node`, in every namespace.
async fn pods_on(client: &kube::Client, node: &str) -> Result<Vec<Pod>, ActivityError> {
    let api: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(api.list(&params).await.map_err(api_error)?.items)
}

/// What happens to one pod when its node is drained.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Evict,
    Skip(&'static str),
    Refuse(String),
}

/// kubectl drain's filters, in its order: DaemonSet and mirror pods are
/// skipped (`--ignore-daemonsets`), finished pods always go, a pod with an
/// `emptyDir` needs `delete_pods_with_local_storage`, and a pod without a
/// controller is refused (there is no `--force`).
fn verdict(pod: &Pod, node: &str, local_storage: bool) -> Verdict {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    let controller = owners.iter().find(|o| o.controller == Some(true));
    if controller.is_some_and(|o| o.kind == "DaemonSet") {
        return Verdict::Skip("DaemonSet-managed pod");
    }
    let annotations = pod.metadata.annotations.as_ref();
    if annotations.is_some_and(|a| a.contains_key("kubernetes.io/config.mirror")) {
        return Verdict::Skip("mirror (static) pod");
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Verdict::Evict;
    }
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
    let empty_dir = volumes
        .unwrap_or_default()
        .iter()
        .any(|v| v.empty_dir.is_some());
    if empty_dir && !local_storage {
        return Verdict::Refuse(format!(
            "Pod '{name}' on node '{node}' has local storage (emptyDir), cannot drain this node. \
             Set delete_pods_with_local_storage to evict it."
        ));
    }
    if controller.is_none() {
        return Verdict::Refuse(format!(
            "Pod '{name}' on node '{node}' is unmanaged, cannot drain this node. Delete it manually first?"
        ));
    }
    Verdict::Evict
}

/// One node's pods, sorted by verdict.
#[derive(Debug, Default)]
struct Sorted {
    evict: Vec<Victim>,
    skipped: Vec<(String, &'static str)>,
    refused: Vec<String>,
}

impl Sorted {
    fn of(pods: &[Pod], node: &str, local_storage: bool) -> Self {
        let mut s = Self::default();
        for pod in pods {
            let v = Victim::of(pod);
            match verdict(pod, node, local_storage) {
                Verdict::Evict => s.evict.push(v),
                Verdict::Skip(why) => s.skipped.push((v.path(), why)),
                Verdict::Refuse(msg) => s.refused.push(msg),
            }
        }
        s
    }
}

/// `--dry`: what a drain would cordon, evict, skip and refuse, from
/// read-only calls.
async fn plan(
    ctx: &ActivityCtx,
    client: &kube::Client,
    pick: &NodePick,
    local_storage: bool,
) -> ActivityResult {
    let api: Api<Node> = Api::all(client.clone());
    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    // As a real drain: every node is cordoned first, then drained in turn,
    // stopping at the first node whose pods kubectl would refuse.
    for node in &pick.names {
        changes.push(cordon_change(&api, node).await?);
    }
    for node in &pick.names {
        let sorted = Sorted::of(&pods_on(client, node).await?, node, local_storage);
        for (pod, why) in sorted.skipped {
            ctx.log
                .info(&format!("dry run: would skip pod {pod} ({why})"));
            skipped.push(json!({"pod": pod, "why": why}));
        }
        if sorted.refused.is_empty() {
            changes.extend(
                sorted
                    .evict
                    .iter()
                    .map(|v| format!("evict pod {}", v.path())),
            );
        } else {
            changes.extend(
                sorted
                    .refused
                    .iter()
                    .map(|r| format!("fail to drain node {node}: {r}")),
            );
            changes.push("stop: the remaining nodes stay cordoned, not drained".into());
            break;
        }
    }
    let mut out = ctx.plan(&pick.names, &changes)?;
    out["skipped"] = json!(skipped);
    if let Some(seed) = pick.seed {
        out["seed"] = json!(seed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
