//! `squall.dataplane.*`: kube-proxy rule faults on the node squall runs on
//! (or inside a named network namespace, which is how the test lab plays a
//! node). Flushing snapshots the rules and records the undo in the ledger
//! before touching anything; restoring is verified by a diff against the
//! snapshot, so "recovered" means the live rules equal what was there.
//!
//! Given a node selection (`node`, `label_selector`, `count`, `all_nodes`)
//! the same functions act on cluster nodes instead, through helper pods:
//! that path needs the Kubernetes API, so the Kubernetes provider supplies
//! it as a [`ClusterNodes`] service (`squall_kube::dataplane`), and this
//! crate never depends on kube-rs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use squall_activity::describe::{core, group, optional};
use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, Applied, BoxFuture, Permission, Registered, RunFn,
    Undo, UndoSpec,
};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};

use crate::flush::{FlushMode, UndoRecord, apply_flush, flush_plan, prepare_flush, save_after};
use crate::inspect::{inspect_node, stale_from_json};
use crate::restore::{diff_live, restore_from_undo};
use crate::runner::{CommandRunner, PrefixRunner, TokioRunner};
use crate::snapshot::{IptablesConfig, detect_kube_backend, parse_families, take_snapshot};

const UNDO_KIND: &str = "squall.dataplane.restore_rules";

const GET_LIST: &[&str] = &["get", "list"];
/// The cluster path's helper pods: pick nodes, create the pod, follow it
/// and its log, delete it. (On the local node no API is used.)
pub const HELPER_PODS: &[Permission] = &[
    core("nodes", GET_LIST),
    core("pods", &["create", "get", "delete"]),
    core("pods/log", &["get"]),
];
/// Stale rules across nodes: helper pods, plus what the rules are compared
/// with.
pub const STALE_ON_NODES: &[Permission] = &[
    core("nodes", GET_LIST),
    core("pods", &["create", "get", "delete"]),
    core("pods/log", &["get"]),
    core("services", &["list"]),
    group("discovery.k8s.io", "endpointslices", &["list"]),
];

const NETNS: ArgSpec = optional(
    "netns",
    ArgType::String,
    "null",
    "Run inside this network namespace (`ip netns exec`) instead of the current one.",
);

const NODE: ArgSpec = optional(
    "node",
    ArgType::String,
    "null",
    "Act on this cluster node, through a helper pod, instead of the node squall runs on.",
);
const LABEL_SELECTOR: ArgSpec = optional(
    "label_selector",
    ArgType::String,
    "null",
    "Act on the cluster nodes with these labels (e.g. `pool=blue`), through helper pods.",
);
const COUNT: ArgSpec = optional(
    "count",
    ArgType::Integer,
    "null",
    "Of the selected cluster nodes (every node when neither `node` nor `label_selector` is given), pick this many at random.",
);
const SEED: ArgSpec = optional(
    "seed",
    ArgType::Integer,
    "null",
    "Seed of the random pick: pass the seed a pick reported to replay it.",
);
const IMAGE: ArgSpec = optional(
    "image",
    ArgType::String,
    "null",
    "squall's container image for the helper pods [default: configuration `squall_agent_image`].",
);
const AGENT_NAMESPACE: ArgSpec = optional(
    "agent_namespace",
    ArgType::String,
    "\"kube-system\"",
    "Namespace of the helper pods (host network and NET_ADMIN must be allowed there).",
);
const TIMEOUT_SECS: ArgSpec = optional(
    "timeout_secs",
    ArgType::Integer,
    "120",
    "How long to wait for a helper pod to start and finish its work.",
);
const ALL_NODES: ArgSpec = optional(
    "all_nodes",
    ArgType::Boolean,
    "false",
    "Every cluster node (restore: every node this cluster has a pending flush on).",
);

pub const FLUSH_RULES: Registered = Registered {
    spec: ActivitySpec {
        module: "squall.dataplane.actions",
        func: "flush_rules",
        kind: Kind::Action,
        doc: "Flush kube-proxy's rules on this node, or on cluster nodes through helper pods: `nat` (the whole nat table, as `iptables -t nat -F`), \
              `filter` (the whole filter table, as `iptables -F`; policies stay), `mangle`, `all-tables` (nat, filter and mangle), \
              `kube-chains` (only kube-proxy's chains and the jumps to them), `canary` (delete the \
              KUBE-PROXY-CANARY chains so kube-proxy resyncs) or `nft-services` (empty the nftables \
              services chain). The rules are snapshotted and the undo recorded first.",
        args: &[
            optional(
                "mode",
                ArgType::String,
                "\"nat\"",
                "nat, filter, mangle, all-tables, kube-chains, canary or nft-services.",
            ),
            optional(
                "family",
                ArgType::String,
                "\"ipv4\"",
                "Which rules to flush: ipv4 (iptables), ipv6 (ip6tables) or both (dual-stack). \
                 Snapshots and restores always cover both.",
            ),
            NETNS,
            NODE,
            LABEL_SELECTOR,
            COUNT,
            SEED,
            IMAGE,
            AGENT_NAMESPACE,
            TIMEOUT_SECS,
            optional(
                "ttl_secs",
                ArgType::Integer,
                "300",
                "Cluster nodes: the helper pod restores the rules by itself after this long, \
                      even if squall is gone (a rollback restores them sooner).",
            ),
        ],
        returns: "mapping",
        mutating: true,
    },
    run: flush_rules,
    permissions: HELPER_PODS,
};

pub const RESTORE_RULES: Registered = Registered {
    spec: ActivitySpec {
        module: "squall.dataplane.actions",
        func: "restore_rules",
        kind: Kind::Action,
        doc: "Restore the rules flush_rules snapshotted on this node (or namespace, or the chosen cluster \
              nodes), verify with a diff, and mark the undo done. Restoring twice changes nothing.",
        args: &[NETNS, NODE, LABEL_SELECTOR, ALL_NODES, TIMEOUT_SECS],
        returns: "mapping",
        mutating: false,
    },
    run: restore_rules,
    permissions: HELPER_PODS,
};

pub const STALE_RULES: Registered = Registered {
    spec: ActivitySpec {
        module: "squall.dataplane.probes",
        func: "stale_rules",
        kind: Kind::Probe,
        doc: "Compare kube-proxy's rules (iptables, nftables or IPVS) on this node, or on cluster nodes \
              through read-only helper pods, with EndpointSlices and list every endpoint the rules send to \
              that is not ready or gone, and every ready endpoint missing from the rules. Returns \
              {clean, findings: [...]} (cluster nodes: each finding names its node).",
        args: &[
            optional(
                "endpoints_file",
                ArgType::String,
                "null",
                "This node: a discovery.k8s.io/v1 EndpointSliceList as JSON (`kubectl get endpointslices -A -o json`). \
                      Cluster nodes read them from the API.",
            ),
            optional(
                "services_file",
                ArgType::String,
                "null",
                "A ServiceList as JSON, to name IPVS virtual servers.",
            ),
            NETNS,
            optional(
                "service",
                ArgType::String,
                "null",
                "Cluster nodes: only report this Service (in `namespace`). With it and no other node \
                      selection, every node is checked.",
            ),
            optional(
                "namespace",
                ArgType::String,
                "\"default\"",
                "The namespace of `service`.",
            ),
            NODE,
            LABEL_SELECTOR,
            ALL_NODES,
            IMAGE,
            AGENT_NAMESPACE,
            TIMEOUT_SECS,
        ],
        returns: "mapping",
        mutating: false,
    },
    run: stale_rules,
    permissions: STALE_ON_NODES,
};

pub const UNDO_RESTORE_RULES: UndoSpec = UndoSpec {
    kind: UNDO_KIND,
    doc: "Restore kube-proxy's rules from the snapshot a flush took, and check the diff is clean.",
    apply: apply_restore,
    permissions: &[],
};

/// The cluster-node half of `squall.dataplane.*` (helper pods), which the
/// Kubernetes provider supplies through the run's services when squall is
/// connected to a cluster.
pub struct ClusterNodes {
    pub flush: fn(Arc<ActivityCtx>, Map<String, Value>, FlushMode) -> BoxFuture<ActivityResult>,
    pub restore: RunFn,
    pub stale: RunFn,
}

/// Whether an activity's arguments ask for cluster nodes rather than the
/// local node: a node name, a node label selector, a random count, every
/// node, or (stale_rules) a Service to check on every node.
pub fn on_cluster_nodes(args: &Map<String, Value>) -> bool {
    ["node", "label_selector", "count", "service"]
        .iter()
        .any(|k| {
            args.get(*k)
                .is_some_and(|v| !v.is_null() && *v != json!(""))
        })
        || args.get("all_nodes") == Some(&json!(true))
}

fn cluster_nodes(ctx: &ActivityCtx) -> Result<Arc<ClusterNodes>, ActivityError> {
    ctx.services.get::<ClusterNodes>().ok_or_else(|| {
        ActivityError::failed(
            "this activity names cluster nodes, but squall is not connected to a cluster",
        )
    })
}

/// The command runner for this node, or for a network namespace on it.
pub fn node_runner(netns: Option<&str>) -> Arc<dyn CommandRunner> {
    match netns {
        Some(ns) => Arc::new(PrefixRunner::netns(ns, TokioRunner::default())),
        None => Arc::new(TokioRunner::default()),
    }
}

/// iptables settings matching the backend kube-proxy uses on this node.
pub async fn node_config(runner: &dyn CommandRunner) -> IptablesConfig {
    IptablesConfig {
        backend: detect_kube_backend(runner).await,
        ..IptablesConfig::default()
    }
}

/// Restores from an undo record and proves it with a diff: `Ok` only when
/// the live rules of every table put back equal the snapshot. Tables that
/// someone rewrote after the flush (kube-proxy resynced) are left alone
/// and listed under `superseded`.
pub async fn restore_verified(netns: Option<&str>, record: &UndoRecord) -> Result<Value, String> {
    let runner = node_runner(netns);
    let cfg = node_config(runner.as_ref()).await;
    let (report, restored) = restore_from_undo(runner.as_ref(), &cfg, record)
        .await
        .map_err(|e| e.to_string())?;
    let diff = diff_live(runner.as_ref(), &cfg, &restored)
        .await
        .map_err(|e| e.to_string())?;
    if !diff.is_clean() {
        return Err(format!(
            "rules restored but still differ from the snapshot: {}",
            json!(diff)
        ));
    }
    Ok(json!({
        "tables": report.tables,
        "superseded": report.superseded,
        "snapshot": record.snapshot_path,
        "clean": true
    }))
}

/// What a verified restore did, for `squall recover`'s per-record report.
fn applied_of(out: &Value) -> Applied {
    let list = |k: &str| out[k].as_array().map_or(0, Vec::len);
    match (list("tables"), list("superseded")) {
        (0, 0) => Applied::AlreadyAsItWas,
        (0, _) => Applied::Superseded(restore_summary(out)),
        _ => Applied::Restored,
    }
}

/// A line for the log about what a verified restore did.
pub fn restore_summary(out: &Value) -> String {
    let list = |k: &str| -> Vec<String> {
        out[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let (tables, superseded) = (list("tables"), list("superseded"));
    let mut line = if tables.is_empty() {
        "Nothing to put back".to_owned()
    } else {
        format!(
            "Recovered {}: the live rules equal the snapshot",
            tables.join(", ")
        )
    };
    if !superseded.is_empty() {
        line.push_str(&format!(
            "; left alone (rewritten since the flush, e.g. by a kube-proxy sync): {}",
            superseded.join(", ")
        ));
    }
    line
}

fn netns_arg(args: &Map<String, Value>) -> Option<String> {
    args.get("netns").and_then(Value::as_str).map(str::to_owned)
}

/// The ledger target for rules on this node or in a namespace.
pub fn target(netns: Option<&str>) -> String {
    format!("dataplane:{}", netns.unwrap_or("local"))
}

/// Snapshots live next to the ledger, so `squall recover` finds them.
fn snapshot_path(ctx: &ActivityCtx) -> PathBuf {
    let ledger = ctx.ledger.location();
    let dir = Path::new(&ledger)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dir.join(format!("dataplane-{}-{n}.snapshot.json", ctx.run_id))
}

/// The kernel's identity of a network namespace (`net:[4026531840]`): a
/// named one under `/run/netns`, or (`None`) the one this process runs in,
/// as `ip netns exec` leaves it. An undo records it, so a restore never
/// lands in another namespace.
pub fn netns_identity(name: Option<&str>) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    match name {
        None => std::fs::read_link("/proc/self/ns/net")
            .ok()
            .map(|p| p.display().to_string()),
        Some(n) => std::fs::metadata(Path::new("/run/netns").join(n))
            .ok()
            .map(|m| format!("net:[{}]", m.ino())),
    }
}

/// Refuses to restore in a namespace other than the flushed one.
fn same_netns(data: &Value, netns: Option<&str>) -> Result<(), String> {
    let Some(recorded) = data.get("netns_id").and_then(Value::as_str) else {
        return Ok(()); // recorded by an older squall
    };
    let here = netns_identity(netns);
    if here.as_deref() == Some(recorded) {
        return Ok(());
    }
    let here = here.unwrap_or_else(|| "gone".into());
    Err(match netns {
        None => format!(
            "refused: the rules were flushed in network namespace {recorded}, and this recover \
             runs in {here}; run it there (for example `ip netns exec NAME squall recover …`, or \
             on that node)"
        ),
        Some(n) => format!(
            "refused: network namespace {n} is now {here}, not {recorded} where the rules were \
             flushed (deleted and re-created?); nothing was restored"
        ),
    })
}

/// The ledger entry that undoes a flush.
pub fn flush_undo(netns: Option<&str>, record: &UndoRecord) -> Undo {
    Undo {
        kind: UNDO_KIND.into(),
        data: json!({"netns": netns, "netns_id": netns_identity(netns), "record": record}),
        description: format!(
            "restore kube-proxy rules on {} from {}",
            target(netns),
            record.snapshot_path.display()
        ),
    }
}

fn flush_rules(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let mode: FlushMode = args
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("nat")
            .parse::<FlushMode>()
            .map_err(|e| ActivityError::failed(e.to_string()))?;
        if on_cluster_nodes(&args) {
            let cluster = cluster_nodes(&ctx)?;
            return (cluster.flush)(ctx, args, mode).await;
        }
        let netns = netns_arg(&args);
        let runner = node_runner(netns.as_deref());
        let families = parse_families(args.get("family").and_then(Value::as_str))
            .map_err(ActivityError::Failed)?;
        let cfg = IptablesConfig {
            families,
            ..node_config(runner.as_ref()).await
        };
        if ctx.dry {
            return plan_flush(&ctx, runner.as_ref(), &cfg, mode, netns.as_deref()).await;
        }
        let path = snapshot_path(&ctx);
        let prepared = prepare_flush(runner.as_ref(), &cfg, mode, &path)
            .await
            .map_err(|e| ActivityError::failed(format!("cannot snapshot the rules: {e}")))?;
        ctx.record_undo(
            &target(netns.as_deref()),
            flush_undo(netns.as_deref(), &prepared.undo),
        )?;
        let report = apply_flush(runner.as_ref(), &prepared).await.map_err(|e| {
            ActivityError::failed(format!("flush failed part-way (the undo is recorded): {e}"))
        })?;
        // When the rules went: the start of the outage this fault causes
        // (saving the rules as flushed, below, takes a moment more).
        let flushed_at = squall_core::journal::timestamp(unix_micros_now());
        if let Err(e) = save_after(runner.as_ref(), &cfg, &prepared).await {
            ctx.log.warning(&format!(
                "cannot save the rules as flushed ({e}); a restore will put every table back"
            ));
        }
        Ok(json!({
            "mode": report.mode,
            "commands": report.commands,
            "snapshot": path,
            "flushed_at": flushed_at
        }))
    })
}

fn unix_micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `--dry`: read the live rules and say which commands the flush would
/// run; no snapshot file, no undo, no change.
async fn plan_flush(
    ctx: &ActivityCtx,
    runner: &dyn CommandRunner,
    cfg: &IptablesConfig,
    mode: FlushMode,
    netns: Option<&str>,
) -> ActivityResult {
    let snapshot = take_snapshot(runner, cfg)
        .await
        .map_err(|e| ActivityError::failed(format!("cannot read the rules: {e}")))?;
    let plan = flush_plan(mode, &snapshot, cfg)
        .map_err(|e| ActivityError::failed(format!("cannot plan the flush: {e}")))?;
    let changes: Vec<String> = plan
        .iter()
        .map(|c| format!("run `{}`", c.display()))
        .collect();
    ctx.plan(&[target(netns)], &changes)
}

fn restore_rules(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        if on_cluster_nodes(&args) {
            let cluster = cluster_nodes(&ctx)?;
            return (cluster.restore)(ctx, args).await;
        }
        let netns = netns_arg(&args);
        let pending = ctx.pending_for(&target(netns.as_deref()))?;
        let Some(first) = pending.first() else {
            return Ok(json!({"restored": false}));
        };
        apply_restore(first.undo.data.clone())
            .await
            .map_err(ActivityError::Failed)?;
        for p in &pending {
            ctx.mark_done(&p.id)?;
        }
        Ok(json!({"restored": true, "clean": true}))
    })
}

fn apply_restore(data: Value) -> BoxFuture<Result<Applied, String>> {
    Box::pin(async move {
        let record: UndoRecord =
            serde_json::from_value(data.get("record").cloned().unwrap_or(Value::Null))
                .map_err(|e| format!("undo data is not a data-plane undo record: {e}"))?;
        let netns = data.get("netns").and_then(Value::as_str);
        same_netns(&data, netns)?;
        restore_verified(netns, &record)
            .await
            .map(|out| applied_of(&out))
    })
}

fn stale_rules(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        if on_cluster_nodes(&args) {
            let cluster = cluster_nodes(&ctx)?;
            return (cluster.stale)(ctx, args).await;
        }
        let read = |key: &str| -> Result<Option<String>, ActivityError> {
            match args.get(key).and_then(Value::as_str) {
                None => Ok(None),
                Some(p) => std::fs::read_to_string(p)
                    .map(Some)
                    .map_err(|e| ActivityError::failed(format!("cannot read {p}: {e}"))),
            }
        };
        let slices = read("endpoints_file")?.ok_or_else(|| {
            ActivityError::failed(
                "give `endpoints_file` (`kubectl get endpointslices -A -o json`) to check this node, \
                 or `service` / `node` / `label_selector` / `all_nodes` to check cluster nodes",
            )
        })?;
        let services = read("services_file")?;
        let netns = netns_arg(&args);
        let runner = node_runner(netns.as_deref());
        let cfg = node_config(runner.as_ref()).await;
        let inspection = inspect_node(runner.as_ref(), &cfg)
            .await
            .map_err(|e| ActivityError::failed(format!("cannot read the rules: {e}")))?;
        let report = stale_from_json(inspection.map, &slices, services.as_deref())
            .map_err(|e| ActivityError::failed(e.to_string()))?;
        Ok(json!({"clean": report.is_clean(), "mode": inspection.mode, "report": report}))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_is_refused_in_another_network_namespace() {
        let here = netns_identity(None).expect("/proc/self/ns/net");
        assert!(here.starts_with("net:["), "{here}");
        assert_eq!(same_netns(&json!({"netns_id": here}), None), Ok(()));
        assert_eq!(
            same_netns(&json!({}), None),
            Ok(()),
            "older records restore as before"
        );
        let err = same_netns(&json!({"netns_id": "net:[1]"}), None).unwrap_err();
        assert!(
            err.starts_with("refused: the rules were flushed in network namespace net:[1]"),
            "{err}"
        );
        let gone =
            same_netns(&json!({"netns_id": "net:[1]"}), Some("squall-no-such-ns")).unwrap_err();
        assert!(gone.contains("is now gone"), "{gone}");
    }

    #[test]
    fn cluster_mode_is_chosen_by_node_arguments() {
        let a = |v: Value| v.as_object().cloned().unwrap();
        assert!(!on_cluster_nodes(&a(
            json!({"mode": "nat", "netns": "x", "node": null})
        )));
        assert!(on_cluster_nodes(&a(json!({"node": "node-1"}))));
        assert!(on_cluster_nodes(&a(json!({"label_selector": "pool=a"}))));
        assert!(on_cluster_nodes(&a(json!({"count": 1}))));
        assert!(on_cluster_nodes(&a(json!({"all_nodes": true}))));
        assert!(on_cluster_nodes(&a(json!({"service": "web"}))));
        assert!(!on_cluster_nodes(&a(
            json!({"all_nodes": false, "label_selector": ""})
        )));
    }
}
