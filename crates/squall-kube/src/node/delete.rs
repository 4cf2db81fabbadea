//! `chaosk8s.node.actions.delete_nodes`: remove Node objects from the
//! cluster, as chaosk8s does (no drain first). Deleting a node cannot be
//! undone by squall: the machine behind it must register again, which is
//! the platform's business, so no undo is recorded; the pod garbage
//! collector deletes the node's pods and their controllers recreate them
//! elsewhere. Its safety is the blast-radius check, made before anything
//! is deleted, and `--dry`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams};
use serde_json::{Map, Value, json};
use squall_activity::describe::optional;
use squall_activity::{ActivityCtx, ActivityError, ActivityResult, BoxFuture, Registered};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};

use super::drain::{COUNT, POD_LABEL_SELECTOR, POD_NAMESPACE, SEED, pick_count};
use super::guard;
use super::pick::{NodePick, NodeQuery};
use crate::api_error;
use crate::args::{bool_or, opt_int};
use crate::connect::kube;

const ARGS: &[ArgSpec] = &[
    optional(
        "label_selector",
        ArgType::String,
        "null",
        "Label selector of the nodes; every node when not given.",
    ),
    optional(
        "all",
        ArgType::Boolean,
        "false",
        "Delete every selected node (upstream crashes on this; squall does what it says).",
    ),
    optional(
        "rand",
        ArgType::Boolean,
        "false",
        "Delete one selected node picked at random (count is then 1).",
    ),
    COUNT,
    optional(
        "grace_period_seconds",
        ArgType::Integer,
        "null",
        "The deletion's grace period in seconds; the server's default when null.",
    ),
    POD_LABEL_SELECTOR,
    POD_NAMESPACE,
    SEED,
];

pub const DELETE_NODES: Registered = Registered {
    spec: ActivitySpec {
        module: "chaosk8s.node.actions",
        func: "delete_nodes",
        kind: Kind::Action,
        doc: "Delete Node objects (without draining them) and return their names: every selected node with \
              `all`, one at random with `rand`, `count` at random, else the first one. squall cannot undo this \
              and records no undo: the pod garbage collector removes the node's pods and their controllers \
              recreate them on other nodes; the machine must register again by itself. Refuses before \
              deleting anything when the pick exceeds squall.limits.",
        args: ARGS,
        returns: "list",
        mutating: true,
    },
    run: delete_nodes,
    permissions: crate::permissions::DELETE_NODES,
};

/// Which of the selected nodes go, following upstream's precedence.
fn choose(names: Vec<String>, args: &Map<String, Value>) -> Result<NodePick, ActivityError> {
    let seed = opt_int(args, "seed")?;
    if bool_or(args, "all", false)? {
        return Ok(NodePick::every(names));
    }
    if bool_or(args, "rand", false)? {
        return pick_count(names, Some(1), seed);
    }
    match opt_int(args, "count")? {
        Some(c) if c >= 1 => pick_count(names, Some(c), seed),
        _ => Ok(NodePick::every(names.into_iter().take(1).collect())),
    }
}

fn delete_nodes(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let client = kube(&ctx)?.client();
        let names = NodeQuery::read(&args)?.nodes(&client).await?;
        let pick = choose(names, &args)?;
        guard(&ctx, &client, &pick, "delete_nodes", "no node was deleted").await?;
        if ctx.dry {
            let changes: Vec<String> = pick
                .names
                .iter()
                .map(|n| format!("delete node {n} (squall cannot undo this)"))
                .collect();
            let mut out = ctx.plan(&pick.names, &changes)?;
            if let Some(seed) = pick.seed {
                out["seed"] = json!(seed);
            }
            return Ok(out);
        }
        let grace = opt_int(&args, "grace_period_seconds")?;
        delete_all(&ctx, &client, &pick.names, grace).await?;
        Ok(pick.output())
    })
}

/// Deletes the nodes one after another; the first error stops the loop and
/// the message names the nodes already deleted (they stay deleted).
async fn delete_all(
    ctx: &ActivityCtx,
    client: &kube::Client,
    names: &[String],
    grace: Option<i64>,
) -> Result<(), ActivityError> {
    let api: Api<Node> = Api::all(client.clone());
    let params = match grace.and_then(|g| u32::try_from(g).ok()) {
        Some(secs) => DeleteParams::default().grace_period(secs),
        None => DeleteParams::default(),
    };
    for (i, name) in names.iter().enumerate() {
        ctx.log.info(&format!("deleting node {name}"));
        if let Err(e) = api.delete(name, &params).await {
            let mut msg = format!("Failed to delete node '{name}': {}", api_error(e).message());
            if i > 0 {
                msg = format!("{msg} (already deleted: {})", names[..i].join(", "));
            }
            return Err(ActivityError::Failed(msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["node-1".into(), "node-2".into(), "node-3".into()]
    }

    fn choose_with(v: Value) -> NodePick {
        choose(names(), v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn upstream_precedence_all_then_rand_then_count_else_the_first() {
        assert_eq!(choose_with(json!({})).output(), json!(["node-1"]));
        assert_eq!(choose_with(json!({"count": 0})).output(), json!(["node-1"]));
        assert_eq!(
            choose_with(json!({"all": true, "rand": true, "count": 1})).output(),
            json!(names())
        );
        let one = choose_with(json!({"rand": true, "count": 3}));
        assert_eq!(one.names.len(), 1);
        assert!(one.seed.is_some());
        let two = choose_with(json!({"count": 2, "seed": 11}));
        assert_eq!(two.names.len(), 2);
        assert_eq!(two, choose_with(json!({"count": 2, "seed": 11})));
    }
}
