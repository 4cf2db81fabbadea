//! The data-plane faults on cluster nodes: `squall.dataplane.*` with a node
//! selection runs squall's agent in a helper pod on each chosen node
//! (see [`crate::helper`]) instead of on the machine squall runs on.
//!
//! A flush on a node is made safe in three layers:
//! 1. the undo (delete the flush pod, then run `squall agent dataplane
//!    recover` in a restore pod on the node) is in squall's ledger before
//!    the flush pod exists;
//! 2. the flush pod itself snapshots the rules and records its own undo in
//!    a ledger on the node before flushing, then stays up with a TTL: it
//!    restores at the deadline, or at once when it is deleted (SIGTERM);
//! 3. the restore pod applies whatever the node ledger still has pending
//!    and checks the live rules equal the snapshot. An undo the flush pod
//!    already applied (after its own clean diff) is not applied again, so
//!    a kube-proxy sync made since is never rolled back.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde_json::{Map, Value, json};
use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, Applied, BoxFuture, RunLog, Undo, UndoSpec,
};
use squall_dataplane::activity::ClusterNodes;
use squall_dataplane::flush::FlushMode;
use squall_dataplane::inspect::stale_from_json;
use squall_dataplane::model::ServiceMap;
use squall_dataplane::snapshot::{Family, families_name, parse_families};

use crate::args::{int_or, opt_int, opt_str, str_or};
use crate::cleanup::PodGuard;
use crate::connect::{Kube, Origin, kube};
use crate::helper::{self, Helper, STATE_DIR};
use crate::node::{NodeQuery, guard, pick_count};
use crate::{api_error, pending_here, settle_failed_write};

const UNDO_KIND: &str = "squall.dataplane.restore_rules_on_node";

/// The undo of a flush on a node.
pub const UNDO_RESTORE_ON_NODE: UndoSpec = UndoSpec {
    kind: UNDO_KIND,
    doc: "Stop the flush helper pod on a node (it restores on SIGTERM), then apply what the node's \
          ledger still has pending in a restore pod, checking the rules equal the snapshot.",
    apply: apply_restore,
    permissions: squall_dataplane::activity::HELPER_PODS,
};

/// The cluster-node half of `squall.dataplane.*`, which the binary offers
/// the data-plane provider as a service once it is connected.
pub fn cluster_nodes() -> ClusterNodes {
    ClusterNodes {
        flush: |ctx, args, mode| Box::pin(flush_on_nodes(ctx, args, mode)),
        restore: |ctx, args| Box::pin(restore_on_nodes(ctx, args)),
        stale: |ctx, args| Box::pin(stale_on_nodes(ctx, args)),
    }
}

/// The helper-pod settings shared by the cluster activities.
struct Agent {
    image: String,
    namespace: String,
    timeout: Duration,
    /// `--keep-snapshots N --max-snapshot-age SECS` for the node's state
    /// directory, from the configuration (see [`prune_args`]).
    prune: Vec<String>,
}

/// Default of configuration `squall_dataplane_keep_snapshots`.
pub const KEEP_SNAPSHOTS: u64 = 10;
/// Default of configuration `squall_dataplane_snapshot_max_age_secs` (a week).
pub const SNAPSHOT_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// How helper pods prune the node's state directory, before a flush and
/// after each verified restore: configuration
/// `squall_dataplane_keep_snapshots` [default 10] and
/// `squall_dataplane_snapshot_max_age_secs` [default 604800, a week]. A
/// snapshot whose undo is still pending is never removed.
fn prune_args(configuration: &Map<String, Value>) -> Result<Vec<String>, ActivityError> {
    let read = |key: &str, default: u64| match configuration.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| {
                ActivityError::failed(format!(
                    "configuration `{key}` must be a whole number >= 0, not {v}"
                ))
            }),
    };
    Ok(vec![
        "--keep-snapshots".into(),
        read("squall_dataplane_keep_snapshots", KEEP_SNAPSHOTS)?.to_string(),
        "--max-snapshot-age".into(),
        read(
            "squall_dataplane_snapshot_max_age_secs",
            SNAPSHOT_MAX_AGE_SECS,
        )?
        .to_string(),
    ])
}

impl Agent {
    fn read(ctx: &ActivityCtx, args: &Map<String, Value>) -> Result<Self, ActivityError> {
        let image = match opt_str(args, "image")? {
            Some(i) => i,
            None => ctx
                .configuration
                .get("squall_agent_image")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    ActivityError::failed(
                        "the helper pod needs squall's container image: set `squall_agent_image` in \
                         the experiment's configuration (or the `image` argument)",
                    )
                })?,
        };
        let timeout = int_or(args, "timeout_secs", 120)?.max(1).unsigned_abs();
        Ok(Self {
            image,
            namespace: str_or(args, "agent_namespace", "kube-system")?,
            timeout: Duration::from_secs(timeout),
            prune: prune_args(&ctx.configuration)?,
        })
    }

    fn helper(
        &self,
        ctx: &ActivityCtx,
        purpose: &str,
        node: &str,
        args: Vec<String>,
        deadline: u64,
    ) -> Helper {
        Helper {
            name: helper::pod_name(purpose, node),
            namespace: self.namespace.clone(),
            node: node.to_owned(),
            image: self.image.clone(),
            args,
            deadline_secs: deadline,
            run_id: ctx.run_id.clone(),
        }
    }
}

/// The ledger target of the rules on a cluster node.
fn target(node: &str) -> String {
    format!("dataplane:node/{node}")
}

/// The nodes named by `node` / `label_selector` (every node when neither
/// is given), narrowed to `count` at random.
async fn chosen_nodes(
    client: &kube::Client,
    args: &Map<String, Value>,
) -> Result<crate::node::NodePick, ActivityError> {
    let query = NodeQuery {
        name: opt_str(args, "node")?,
        label_selector: opt_str(args, "label_selector")?,
        ..NodeQuery::default()
    };
    let names = query.nodes(client).await?;
    pick_count(names, opt_int(args, "count")?, opt_int(args, "seed")?)
}

/// What a flush pod does: the mode, on which address families.
type Fault<'a> = (FlushMode, &'a [Family]);

fn agent_flush_args(fault: Fault<'_>, name: &str, ttl: u64, prune: &[String]) -> Vec<String> {
    let (mode, families) = fault;
    let mut args = agent_args(&["flush"]);
    args.extend(mode.agent_args().iter().map(|a| (*a).to_owned()));
    if families != [Family::Ipv4] {
        args.extend(["--family".into(), families_name(families).into()]);
    }
    args.extend_from_slice(prune);
    args.extend([
        "--snapshot".into(),
        format!("{STATE_DIR}/{name}.snapshot.json"),
        "--ledger".into(),
        node_ledger(name),
        "--ttl".into(),
        ttl.to_string(),
    ]);
    args
}

/// `squall agent dataplane REST…`, logging only to the pod's log (a log
/// file in the container would be lost with it, or land in the working
/// directory of whatever runs the container).
fn agent_args(rest: &[&str]) -> Vec<String> {
    ["--no-log-file", "agent", "dataplane"]
        .iter()
        .chain(rest)
        .map(|s| (*s).to_owned())
        .collect()
}

fn node_ledger(flush_pod: &str) -> String {
    format!("{STATE_DIR}/{flush_pod}.ledger.jsonl")
}

/// `flush_rules` on cluster nodes.
pub async fn flush_on_nodes(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
    mode: FlushMode,
) -> ActivityResult {
    let kube = kube(&ctx)?;
    let client = kube.client();
    let agent = Agent::read(&ctx, &args)?;
    let ttl = int_or(&args, "ttl_secs", 300)?.max(1).unsigned_abs();
    let families =
        parse_families(opt_str(&args, "family")?.as_deref()).map_err(ActivityError::Failed)?;
    let fault = (mode, families.as_slice());
    let pick = chosen_nodes(&client, &args).await?;
    guard(&ctx, &client, &pick, "flush_rules", "no rules were flushed").await?;
    if ctx.dry {
        let changes: Vec<String> = pick
            .names
            .iter()
            .map(|n| {
                format!(
                    "run a helper pod ({}) on node {n} in {}: `squall {}` (restores by itself after {ttl}s)",
                    agent.image,
                    agent.namespace,
                    agent_flush_args(fault, "<pod>", ttl, &agent.prune).join(" ")
                )
            })
            .collect();
        let targets: Vec<String> = pick.names.iter().map(|n| target(n)).collect();
        return ctx.plan(&targets, &changes);
    }
    let mut started = Vec::new();
    let out = match flush_all(&ctx, &kube, &agent, &pick.names, (fault, ttl), &mut started).await {
        Ok(out) => out,
        Err(e) => {
            // All or nothing: a flush that failed on one node (or whose pod
            // never started) is undone at once everywhere it began, so no
            // pod flushes a node later, after squall has given up.
            undo_started(&ctx, &kube, &started).await;
            return Err(e);
        }
    };
    let mut result = json!({"mode": mode.as_str(), "nodes": out});
    if let Some(seed) = pick.seed {
        result["seed"] = json!(seed);
    }
    Ok(result)
}

/// A flush pod created, with its undo.
struct Started {
    helper: Helper,
    undo_id: String,
    undo: Value,
    /// Deletes the pod (it then restores) if the activity is cancelled
    /// before the flush is confirmed; disarmed once it is.
    guard: Option<PodGuard>,
}

/// Starts a flush pod on every node, then waits until each has flushed.
async fn flush_all(
    ctx: &ActivityCtx,
    kube: &Kube,
    agent: &Agent,
    nodes: &[String],
    (fault, ttl): (Fault<'_>, u64),
    started: &mut Vec<Started>,
) -> Result<Vec<Value>, ActivityError> {
    for node in nodes {
        started.push(start_flush(ctx, kube, agent, node, fault, ttl).await?);
    }
    let mut out = Vec::new();
    for s in started.iter() {
        let h = &s.helper;
        let logs = helper::wait_for_log(
            &kube.client(),
            h,
            "Flushed (",
            agent.timeout,
            ctx.log.as_ref(),
        )
        .await?;
        ctx.log.info(&format!(
            "node/{}: rules flushed ({}, {}) by helper pod {}/{}; it restores them in {ttl}s unless rolled back first",
            h.node,
            fault.0,
            families_name(fault.1),
            h.namespace,
            h.name
        ));
        out.push(
            json!({"node": h.node, "pod": h.name, "namespace": h.namespace,
            "snapshot": format!("{STATE_DIR}/{}.snapshot.json", h.name), "ttl_secs": ttl,
            "flushed_at": flushed_at(&logs)}),
        );
    }
    // Every node flushed: the pods stay up to restore at their TTL.
    for s in started.iter_mut() {
        if let Some(guard) = s.guard.take() {
            guard.disarm();
        }
    }
    Ok(out)
}

/// When the agent says the rules went (`"flushed_at": "…"` in the report
/// it prints after flushing): the start of the outage on that node, by the
/// node's clock. `null` from an agent too old to say.
fn flushed_at(logs: &str) -> Value {
    logs.lines()
        .find_map(|l| l.trim().strip_prefix("\"flushed_at\": "))
        .and_then(|v| serde_json::from_str::<String>(v.trim_end_matches(',')).ok())
        .map_or(Value::Null, Value::String)
}

/// Undoes the flushes that began, marking each undo done once it worked.
async fn undo_started(ctx: &ActivityCtx, kube: &Kube, started: &[Started]) {
    for s in started.iter().rev() {
        match restore_node(kube, &s.undo, ctx.log.as_ref(), None).await {
            Ok(()) => {
                ctx.log.warning(&format!("node/{}: flush undone", s.helper.node));
                let _ = ctx.mark_done(&s.undo_id);
            }
            Err(e) => ctx.log.warning(&format!(
                "node/{}: could not undo the flush ({e}); it stays pending for the rollback or `squall recover`",
                s.helper.node
            )),
        }
    }
}

/// Records the undo, then creates the flush pod on `node`.
async fn start_flush(
    ctx: &ActivityCtx,
    kube: &Kube,
    agent: &Agent,
    node: &str,
    fault: Fault<'_>,
    ttl: u64,
) -> Result<Started, ActivityError> {
    // The deadline leaves room for the image pull and a restore on SIGTERM.
    let deadline = ttl + agent.timeout.as_secs() + 60;
    let mut h = agent.helper(ctx, "flush", node, Vec::new(), deadline);
    h.args = agent_flush_args(fault, &h.name, ttl, &agent.prune);
    let undo = Undo {
        kind: UNDO_KIND.into(),
        data: json!({
            "connection": kube.origin(),
            "node": node,
            "namespace": h.namespace,
            "pod": h.name,
            "image": h.image,
            "ledger": node_ledger(&h.name),
            "timeout_secs": agent.timeout.as_secs(),
            "prune": agent.prune,
        }),
        description: format!(
            "restore kube-proxy rules on node {node}: delete helper pod {}/{}, then `squall agent dataplane recover` there",
            h.namespace, h.name
        ),
    };
    let data = undo.data.clone();
    let id = ctx.record_undo(&target(node), undo)?;
    if let Err(e) = helper::create(&kube.client(), &h).await {
        settle_failed_write(ctx, &id, &e)?;
        return Err(api_error(e));
    }
    let guard = Some(PodGuard::new(&kube.client(), &h.namespace, &h.name));
    Ok(Started {
        helper: h,
        undo_id: id,
        undo: data,
        guard,
    })
}

/// `restore_rules` on cluster nodes: applies this cluster's pending undos
/// for the chosen nodes (`all_nodes`: every node), newest first (so
/// stacked flushes unwind in reverse), going on past a node that fails.
pub async fn restore_on_nodes(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> ActivityResult {
    let kube = kube(&ctx)?;
    let client = kube.client();
    let timeout =
        opt_int(&args, "timeout_secs")?.map(|t| Duration::from_secs(t.max(1).unsigned_abs()));
    // Without `node` / `label_selector` (`all_nodes`), every node.
    let names = chosen_nodes(&client, &args).await?.names;
    let mut restored = Vec::new();
    let mut failures = Vec::new();
    for node in &names {
        for pending in pending_here(&ctx, &kube, &target(node))?.into_iter().rev() {
            ctx.log
                .info(&format!("node/{node}: {}", pending.undo.description));
            match restore_node(&kube, &pending.undo.data, ctx.log.as_ref(), timeout).await {
                Ok(()) => {
                    ctx.mark_done(&pending.id)?;
                    restored.push(node.clone());
                }
                Err(e) => failures.push(e),
            }
        }
    }
    if !failures.is_empty() {
        return Err(ActivityError::Failed(format!(
            "{} restore(s) failed and stay pending (the rollback, `squall recover` or the helper pods' TTL finish them): {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    Ok(json!({"restored": restored, "clean": true}))
}

fn apply_restore(data: Value) -> BoxFuture<Result<Applied, String>> {
    Box::pin(async move {
        let origin: Origin =
            serde_json::from_value(data.get("connection").cloned().unwrap_or_default())
                .map_err(|e| format!("undo data has no usable connection: {e}"))?;
        let kube = Kube::reconnect(&origin).await.map_err(|e| e.to_string())?;
        restore_node(&kube, &data, &Console, None)
            .await
            .map(|()| Applied::Restored)
    })
}

/// Progress of an undo applied by `squall recover` or the engine's undo
/// pass, which hand undo functions no run log: straight to the console.
struct Console;

impl RunLog for Console {
    fn debug(&self, _: &str) {}
    fn info(&self, msg: &str) {
        eprintln!("  ... {msg}");
    }
    fn warning(&self, msg: &str) {
        eprintln!("  ... {msg}");
    }
}

/// Deletes the flush pod (it restores on SIGTERM), then runs the node
/// ledger's pending undos in a restore pod; `Ok` only when it exits 0,
/// which it does when the rules equal the snapshot (or nothing was flushed).
async fn restore_node(
    kube: &Kube,
    data: &Value,
    log: &dyn RunLog,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let field = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(format!("undo data has no {k}"))
    };
    let (node, namespace, pod) = (field("node")?, field("namespace")?, field("pod")?);
    let timeout = timeout.unwrap_or(Duration::from_secs(
        data.get("timeout_secs")
            .and_then(Value::as_u64)
            .unwrap_or(120),
    ));
    let client = kube.client();
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes
        .get_opt(&node)
        .await
        .map_err(|e| api_error(e).message().to_owned())?
        .is_none()
    {
        log.warning(&format!(
            "node {node} no longer exists: its rules went with it"
        ));
        return Ok(());
    }
    let never_ran = helper::never_started(&client, &namespace, &pod)
        .await
        .map_err(|e| e.message().to_owned())?;
    log.info(&format!(
        "deleting helper pod {namespace}/{pod} (it restores the rules on SIGTERM)"
    ));
    helper::delete_and_wait(&client, &namespace, &pod, Duration::from_secs(90))
        .await
        .map_err(|e| e.message().to_owned())?;
    if never_ran {
        log.info(&format!(
            "helper pod {pod} never started: nothing was flushed on node {node}"
        ));
        return Ok(());
    }
    let h = Helper {
        name: helper::pod_name("restore", &node),
        namespace,
        node: node.clone(),
        image: field("image")?,
        args: recover_args(&field("ledger")?, data),
        deadline_secs: timeout.as_secs() + 60,
        run_id: "squall-restore".into(),
    };
    run_restore_pod(&client, &h, timeout, log).await
}

/// `squall agent dataplane recover` for a restore pod, pruning the node's
/// state directory afterwards as the flush pod did (undo data recorded
/// before pruning existed has no `prune`: nothing is pruned).
fn recover_args(ledger: &str, data: &Value) -> Vec<String> {
    let mut args = agent_args(&["recover", "--ledger", ledger]);
    let prune = data.get("prune").and_then(Value::as_array);
    args.extend(
        prune
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned),
    );
    args
}

/// Runs the restore pod to its end and deletes it; `Ok` on exit code 0.
async fn run_restore_pod(
    client: &kube::Client,
    h: &Helper,
    timeout: Duration,
    log: &dyn RunLog,
) -> Result<(), String> {
    log.info(&format!(
        "running `squall agent dataplane recover` in helper pod {}/{} on node {}",
        h.namespace, h.name, h.node
    ));
    helper::create(client, h)
        .await
        .map_err(|e| api_error(e).message().to_owned())?;
    let guard = PodGuard::new(client, &h.namespace, &h.name);
    let ended = helper::wait_to_end(client, h, timeout, log).await;
    // The restore pod's job is done (or failed): never leave it behind.
    let _ = helper::delete_and_wait(client, &h.namespace, &h.name, Duration::from_secs(60)).await;
    guard.disarm();
    let ended = ended.map_err(|e| e.message().to_owned())?;
    if ended.exit_code != 0 {
        return Err(format!(
            "restoring the rules on node {} failed (helper pod {} exit code {}): {}",
            h.node,
            h.name,
            ended.exit_code,
            helper::tail(&ended.logs)
        ));
    }
    log.info(&format!("node/{}: {}", h.node, helper::tail(&ended.logs)));
    Ok(())
}

/// `stale_rules` across cluster nodes: reads each chosen node's rules in a
/// helper pod (`squall agent dataplane inspect`, read-only) and compares
/// them with the EndpointSlices and Services from the API.
pub async fn stale_on_nodes(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> ActivityResult {
    let kube = kube(&ctx)?;
    let client = kube.client();
    let agent = Agent::read(&ctx, &args)?;
    // Without `node` / `label_selector`, every node.
    let names = chosen_nodes(&client, &args).await?.names;
    let slices = list_json::<EndpointSlice>(&client).await?;
    let services = list_json::<Service>(&client).await?;
    let service = opt_str(&args, "service")?.map(|s| {
        format!(
            "{}/{s}:",
            str_or(&args, "namespace", "default").unwrap_or_default()
        )
    });
    let mut per_node = Map::new();
    let mut findings = Vec::new();
    for node in &names {
        let map = inspect_node(&ctx, &client, &agent, node).await?;
        let mut report = stale_from_json(map, &slices, Some(&services))
            .map_err(|e| ActivityError::failed(format!("node {node}: {e}")))?;
        if let Some(prefix) = &service {
            report
                .findings
                .retain(|f| f.service.starts_with(prefix.as_str()));
        }
        for f in &report.findings {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            v["node"] = json!(node);
            findings.push(v);
        }
        per_node.insert(
            node.clone(),
            json!({"clean": report.findings.is_empty(), "report": report}),
        );
    }
    Ok(json!({"clean": findings.is_empty(), "findings": findings, "nodes": per_node}))
}

async fn list_json<K>(client: &kube::Client) -> Result<String, ActivityError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api.list(&ListParams::default()).await.map_err(api_error)?;
    Ok(json!({"items": list.items}).to_string())
}

/// Runs `squall agent dataplane inspect` on `node` and parses its output.
async fn inspect_node(
    ctx: &ActivityCtx,
    client: &kube::Client,
    agent: &Agent,
    node: &str,
) -> Result<ServiceMap, ActivityError> {
    let h = agent.helper(
        ctx,
        "inspect",
        node,
        agent_args(&["inspect"]),
        agent.timeout.as_secs() + 60,
    );
    helper::create(client, &h).await.map_err(api_error)?;
    let guard = PodGuard::new(client, &h.namespace, &h.name);
    let ended = helper::wait_to_end(client, &h, agent.timeout, ctx.log.as_ref()).await;
    let _ = helper::delete_and_wait(client, &h.namespace, &h.name, Duration::from_secs(60)).await;
    guard.disarm();
    let ended = ended?;
    if ended.exit_code != 0 {
        return Err(ActivityError::Failed(format!(
            "reading the rules on node {node} failed (exit code {}): {}",
            ended.exit_code,
            helper::tail(&ended.logs)
        )));
    }
    parse_inspect(&ended.logs).map_err(|e| ActivityError::failed(format!("node {node}: {e}")))
}

/// The JSON document in an inspect pod's log (stdout and stderr are one
/// stream there, so the log lines around it are skipped).
fn parse_inspect(logs: &str) -> Result<ServiceMap, String> {
    let start = logs
        .find("\n{\n")
        .map(|i| i + 1)
        .or_else(|| logs.starts_with("{\n").then_some(0))
        .ok_or("the agent printed no JSON")?;
    let end = logs[start..]
        .find("\n}\n")
        .map(|i| start + i + 2)
        .or_else(|| logs.ends_with("\n}").then_some(logs.len()))
        .ok_or("the agent's JSON is cut short")?;
    serde_json::from_str(&logs[start..end])
        .map_err(|e| format!("cannot parse the agent's output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flush_pod_snapshots_and_records_on_the_node_with_a_ttl() {
        let prune = prune_args(&Map::new()).unwrap();
        let v4 = [Family::Ipv4];
        let args = agent_flush_args(
            (FlushMode::KubeChains, &v4),
            "squall-flush-n1-abc",
            90,
            &prune,
        );
        assert_eq!(
            args.join(" "),
            "--no-log-file agent dataplane flush --kube-chains \
             --keep-snapshots 10 --max-snapshot-age 604800 \
             --snapshot /var/lib/squall/dataplane/squall-flush-n1-abc.snapshot.json \
             --ledger /var/lib/squall/dataplane/squall-flush-n1-abc.ledger.jsonl --ttl 90"
        );
        assert_eq!(
            agent_flush_args((FlushMode::Nat, &v4), "p", 1, &[])[4..6],
            ["--table", "nat"]
        );
        assert_eq!(
            agent_flush_args((FlushMode::Filter, &v4), "p", 1, &[])[4..6],
            ["--table", "filter"]
        );
        assert_eq!(
            agent_flush_args((FlushMode::AllTables, &v4), "p", 1, &[])[4],
            "--all-tables"
        );
        let dual = [Family::Ipv4, Family::Ipv6];
        assert_eq!(
            agent_flush_args((FlushMode::Filter, &dual), "p", 1, &[])[4..8],
            ["--table", "filter", "--family", "both"]
        );
    }

    #[test]
    fn prune_settings_come_from_the_configuration_and_reach_the_restore_pod() {
        let config: Map<String, Value> = serde_json::from_value(json!({
            "squall_dataplane_keep_snapshots": 3,
            "squall_dataplane_snapshot_max_age_secs": "60"
        }))
        .unwrap();
        let prune = prune_args(&config).unwrap();
        assert_eq!(prune, ["--keep-snapshots", "3", "--max-snapshot-age", "60"]);
        let bad: Map<String, Value> =
            serde_json::from_value(json!({"squall_dataplane_keep_snapshots": -1})).unwrap();
        assert!(prune_args(&bad).is_err());
        let with = recover_args("/l.jsonl", &json!({"prune": prune}));
        assert_eq!(
            with.join(" "),
            "--no-log-file agent dataplane recover --ledger /l.jsonl --keep-snapshots 3 --max-snapshot-age 60"
        );
        let old = recover_args("/l.jsonl", &json!({}));
        assert_eq!(old.len(), 6, "older undo data: no pruning flags");
    }

    #[test]
    fn the_flush_time_is_read_from_the_agent_report() {
        let logs = "[INFO] Flushed (filter): iptables -w 5 -t filter -F\n{\n  \"mode\": \"filter\",\n  \
                    \"flushed_at\": \"2026-12-03T07:00:00.123456+00:00\"\n}\n";
        assert_eq!(flushed_at(logs), json!("2026-12-03T07:00:00.123456+00:00"));
        assert_eq!(flushed_at("[INFO] Flushed (nat)\n"), Value::Null);
    }

    #[test]
    fn inspect_output_is_found_between_log_lines() {
        let map = json!({"source": "iptables", "services": []});
        let pretty = serde_json::to_string_pretty(&map).unwrap();
        let logs = format!("[INFO] reading rules\n{pretty}\n[INFO] done\n");
        let parsed = parse_inspect(&logs).unwrap();
        assert!(parsed.services.is_empty());
        assert_eq!(serde_json::to_value(parsed.source).unwrap(), "iptables");
        assert_eq!(
            parse_inspect("no json here\n"),
            Err("the agent printed no JSON".into())
        );
    }
}
