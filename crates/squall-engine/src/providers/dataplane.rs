//! `squall.dataplane.*`: kube-proxy rule faults on the node squall runs on
//! (or inside a named network namespace, which is how the test lab plays a
//! node). Flushing snapshots the rules and records the undo in the ledger
//! before touching anything; restoring is verified by a diff against the
//! snapshot, so "recovered" means the live rules equal what was there.
//!
//! Given a node selection (`node`, `label_selector`, `count`, `all_nodes`)
//! the same functions act on cluster nodes instead, through helper pods
//! (`squall_kube::dataplane`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, BoxFuture, Registered, Undo, UndoSpec,
};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};
use squall_dataplane::flush::{
    FlushMode, UndoRecord, apply_flush, flush_plan, prepare_flush, save_after,
};
use squall_dataplane::inspect::{inspect_node, stale_from_json};
use squall_dataplane::restore::{diff_live, restore_from_undo};
use squall_dataplane::runner::{CommandRunner, PrefixRunner, TokioRunner};
use squall_dataplane::snapshot::{
    IptablesConfig, detect_kube_backend, parse_families, take_snapshot,
};
use squall_kube::dataplane;

const UNDO_KIND: &str = "squall.dataplane.restore_rules";

const NETNS: ArgSpec = ArgSpec {
    name: "netns",
    ty: ArgType::String,
    default: Some("null"),
    doc: "Run inside this network namespace (`ip netns exec`) instead of the current one.",
};

const NODE: ArgSpec = ArgSpec {
    name: "node",
    ty: ArgType::String,
    default: Some("null"),
    doc: "Act on this cluster node, through a helper pod, instead of the node squall runs on.",
};
const LABEL_SELECTOR: ArgSpec = ArgSpec {
    name: "label_selector",
    ty: ArgType::String,
    default: Some("null"),
    doc: "Act on the cluster nodes with these labels (e.g. `pool=blue`), through helper pods.",
};
const COUNT: ArgSpec = ArgSpec {
    name: "count",
    ty: ArgType::Integer,
    default: Some("null"),
    doc: "Of the selected cluster nodes (every node when neither `node` nor `label_selector` is given), pick this many at random.",
};
const SEED: ArgSpec = ArgSpec {
    name: "seed",
    ty: ArgType::Integer,
    default: Some("null"),
    doc: "Seed of the random pick: pass the seed a pick reported to replay it.",
};
const IMAGE: ArgSpec = ArgSpec {
    name: "image",
    ty: ArgType::String,
    default: Some("null"),
    doc: "squall's container image for the helper pods [default: configuration `squall_agent_image`].",
};
const AGENT_NAMESPACE: ArgSpec = ArgSpec {
    name: "agent_namespace",
    ty: ArgType::String,
    default: Some("\"kube-system\""),
    doc: "Namespace of the helper pods (host network and NET_ADMIN must be allowed there).",
};
const TIMEOUT_SECS: ArgSpec = ArgSpec {
    name: "timeout_secs",
    ty: ArgType::Integer,
    default: Some("120"),
    doc: "How long to wait for a helper pod to start and finish its work.",
};
const ALL_NODES: ArgSpec = ArgSpec {
    name: "all_nodes",
    ty: ArgType::Boolean,
    default: Some("false"),
    doc: "Every cluster node (restore: every node this cluster has a pending flush on).",
};

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
            ArgSpec {
                name: "mode",
                ty: ArgType::String,
                default: Some("\"nat\""),
                doc: "nat, filter, mangle, all-tables, kube-chains, canary or nft-services.",
            },
            ArgSpec {
                name: "family",
                ty: ArgType::String,
                default: Some("\"ipv4\""),
                doc: "Which rules to flush: ipv4 (iptables), ipv6 (ip6tables) or both (dual-stack). \
                      Snapshots and restores always cover both.",
            },
            NETNS,
            NODE,
            LABEL_SELECTOR,
            COUNT,
            SEED,
            IMAGE,
            AGENT_NAMESPACE,
            TIMEOUT_SECS,
            ArgSpec {
                name: "ttl_secs",
                ty: ArgType::Integer,
                default: Some("300"),
                doc: "Cluster nodes: the helper pod restores the rules by itself after this long, \
                      even if squall is gone (a rollback restores them sooner).",
            },
        ],
        returns: "mapping",
        mutating: true,
    },
    run: flush_rules,
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
            ArgSpec {
                name: "endpoints_file",
                ty: ArgType::String,
                default: Some("null"),
                doc: "This node: a discovery.k8s.io/v1 EndpointSliceList as JSON (`kubectl get endpointslices -A -o json`). \
                      Cluster nodes read them from the API.",
            },
            ArgSpec {
                name: "services_file",
                ty: ArgType::String,
                default: Some("null"),
                doc: "A ServiceList as JSON, to name IPVS virtual servers.",
            },
            NETNS,
            ArgSpec {
                name: "service",
                ty: ArgType::String,
                default: Some("null"),
                doc: "Cluster nodes: only report this Service (in `namespace`). With it and no other node \
                      selection, every node is checked.",
            },
            ArgSpec {
                name: "namespace",
                ty: ArgType::String,
                default: Some("\"default\""),
                doc: "The namespace of `service`.",
            },
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
};

pub const UNDO_RESTORE_RULES: UndoSpec = UndoSpec {
    kind: UNDO_KIND,
    doc: "Restore kube-proxy's rules from the snapshot a flush took, and check the diff is clean.",
    apply: apply_restore,
};

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

/// The ledger entry that undoes a flush.
pub fn flush_undo(netns: Option<&str>, record: &UndoRecord) -> Undo {
    Undo {
        kind: UNDO_KIND.into(),
        data: json!({"netns": netns, "record": record}),
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
        if dataplane::on_cluster_nodes(&args) {
            return dataplane::flush_on_nodes(ctx, args, mode).await;
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
        if dataplane::on_cluster_nodes(&args) {
            return dataplane::restore_on_nodes(ctx, args).await;
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

fn apply_restore(data: Value) -> BoxFuture<Result<(), String>> {
    Box::pin(async move {
        let record: UndoRecord =
            serde_json::from_value(data.get("record").cloned().unwrap_or(Value::Null))
                .map_err(|e| format!("undo data is not a data-plane undo record: {e}"))?;
        let netns = data.get("netns").and_then(Value::as_str);
        restore_verified(netns, &record).await.map(|_| ())
    })
}

fn stale_rules(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        if dataplane::on_cluster_nodes(&args) {
            return dataplane::stale_on_nodes(ctx, args).await;
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
