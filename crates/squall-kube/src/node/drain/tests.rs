//! drain_nodes, delete_nodes and the dry plans of the node actions, run
//! through their `run` functions against the simulator on a paused clock:
//! what is evicted, skipped and refused, the budget retry, the undo, the
//! seeded pick, and that `--dry` changes nothing.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use squall_core::model::Limits;
use squall_sim::{Sim, SimOptions};

use super::super::{CORDON_NODE, DELETE_NODES, UNCORDON_NODE, UNDO_KIND};
use super::*;
use crate::testkit::{Bed, MemLedger, args};

/// Creates a namespaced object from JSON.
async fn create<K>(bed: &Bed, ns: &str, v: Value)
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize,
{
    let obj: K = serde_json::from_value(v).unwrap();
    Api::<K>::namespaced(bed.client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

fn template(app: &str, node: Option<&str>, empty_dir: bool) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
    if let Some(n) = node {
        spec["nodeSelector"] = json!({"kubernetes.io/hostname": n});
    }
    if empty_dir {
        spec["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
    }
    json!({"metadata": {"labels": {"app": app}}, "spec": spec})
}

async fn deployment(bed: &Bed, name: &str, replicas: u32, node: Option<&str>, empty_dir: bool) {
    use k8s_openapi::api::apps::v1::Deployment;
    let v = json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": template(name, node, empty_dir)},
    });
    create::<Deployment>(bed, "default", v).await;
}

async fn daemonset(bed: &Bed, name: &str) {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let v = json!({
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template(name, None, false)},
    });
    create::<DaemonSet>(bed, "default", v).await;
}

/// A pod bound to `node` without a controller; `mirror` makes it a static
/// pod's mirror.
async fn bare_pod(bed: &Bed, name: &str, node: &str, mirror: bool) {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
    });
    if mirror {
        v["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc"});
    }
    create::<Pod>(bed, "default", v).await;
}

async fn budget(bed: &Bed, app: &str, min_available: u32) {
    let v = json!({
        "metadata": {"name": app},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}},
    });
    create::<PodDisruptionBudget>(bed, "default", v).await;
}

async fn settle() {
    tokio::time::sleep(Duration::from_secs(10)).await;
}

/// (name, uid, node) of every pod not being deleted.
fn alive(sim: &Sim) -> Vec<(String, String, String)> {
    let mut pods: Vec<_> = sim
        .list("", "pods", None)
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .map(|p| {
            let s = |ptr: &str| {
                p.pointer(ptr)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            (s("/metadata/name"), s("/metadata/uid"), s("/spec/nodeName"))
        })
        .collect();
    pods.sort();
    pods
}

fn on_node(sim: &Sim, node: &str, prefix: &str) -> Vec<String> {
    alive(sim)
        .into_iter()
        .filter(|(name, _, n)| n == node && name.starts_with(prefix))
        .map(|(name, _, _)| name)
        .collect()
}

fn cordoned(sim: &Sim, node: &str) -> bool {
    sim.get("", "nodes", "", node)
        .and_then(|n| n["spec"]["unschedulable"].as_bool())
        .unwrap_or(false)
}

fn log_has(bed: &Bed, needle: &str) -> bool {
    bed.log.0.lock().unwrap().iter().any(|l| l.contains(needle))
}

/// A bed whose ledger notes, at each record, whether the node was cordoned,
/// and whose containers take 5 s to stop (so a drain has to wait).
fn watched_bed() -> Bed {
    let sim = Sim::start(SimOptions {
        timing: squall_sim::Timing {
            shutdown: Duration::from_secs(5),
            ..squall_sim::Timing::default()
        },
        ..SimOptions::default()
    });
    let seen = sim.clone();
    let ledger = MemLedger {
        on_record: Some(Box::new(
            move |target: &str| json!({"cordoned_at_record": cordoned(&seen, target.trim_start_matches("node/"))}),
        )),
        ..MemLedger::default()
    };
    Bed::on(sim, ledger)
}

async fn drain(bed: &Bed, a: Value) -> ActivityResult {
    (DRAIN_NODES.run)(bed.ctx(Limits::default()), args(a)).await
}

#[tokio::test(start_paused = true)]
async fn drain_evicts_waits_skips_daemonset_and_mirror_pods_and_records_the_undo_first() {
    let bed = watched_bed();
    deployment(&bed, "web", 3, None, false).await;
    daemonset(&bed, "agent").await;
    bare_pod(&bed, "static-web", "node-1", true).await;
    settle().await;
    let web_before = on_node(&bed.sim, "node-1", "web-");
    assert_eq!(web_before.len(), 1, "{:?}", alive(&bed.sim));
    let agent_before = on_node(&bed.sim, "node-1", "agent-");

    let out = drain(&bed, json!({"name": "node-1"})).await;
    assert_eq!(out, Ok(json!(["node-1"])));
    assert!(cordoned(&bed.sim, "node-1"));
    // Waited: the evicted pod is gone from the store, not just terminating.
    let still = bed.sim.get("", "pods", "default", &web_before[0]);
    assert!(still.is_none(), "{still:?}");
    assert_eq!(on_node(&bed.sim, "node-1", "agent-"), agent_before);
    assert_eq!(on_node(&bed.sim, "node-1", "static-web"), ["static-web"]);
    assert!(log_has(
        &bed,
        &format!("evicting pod default/{}", web_before[0])
    ));
    assert!(log_has(&bed, "waiting for 1 pods to terminate"));
    assert!(log_has(
        &bed,
        "ignoring pod default/static-web: mirror (static) pod"
    ));
    assert!(log_has(
        &bed,
        &format!(
            "ignoring pod default/{}: DaemonSet-managed pod",
            agent_before[0]
        )
    ));
    let entries = bed.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].pending.target, "node/node-1");
    assert_eq!(entries[0].pending.undo.kind, UNDO_KIND);
    assert_eq!(
        entries[0].seen,
        json!({"cordoned_at_record": false}),
        "undo before harm"
    );
    assert!(!entries[0].done, "the rollback's uncordon is still to come");
    // The usual rollback marks it done.
    (UNCORDON_NODE.run)(bed.ctx(Limits::default()), args(json!({"name": "node-1"})))
        .await
        .unwrap();
    assert!(bed.entries()[0].done);
    assert!(!cordoned(&bed.sim, "node-1"));
}

#[tokio::test(start_paused = true)]
async fn unmanaged_and_empty_dir_pods_stop_the_node_before_any_eviction() {
    let bed = Bed::new();
    deployment(&bed, "web", 1, Some("node-1"), false).await;
    bare_pod(&bed, "bare", "node-1", false).await;
    deployment(&bed, "cache", 1, Some("node-2"), true).await;
    settle().await;
    let before = alive(&bed.sim);

    let out = drain(&bed, json!({"name": "node-1"})).await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "Pod 'bare' on node 'node-1' is unmanaged, cannot drain this node. Delete it manually first?"
        ))
    );
    let out = drain(&bed, json!({"name": "node-2"})).await.unwrap_err();
    assert!(out.message().starts_with("Pod 'cache-"), "{out:?}");
    assert!(
        out.message()
            .contains("on node 'node-2' has local storage (emptyDir)"),
        "{out:?}"
    );
    assert_eq!(alive(&bed.sim), before, "nothing was evicted");
    // Both nodes stay cordoned with their undo pending.
    assert!(cordoned(&bed.sim, "node-1") && cordoned(&bed.sim, "node-2"));
    assert!(bed.entries().iter().all(|e| !e.done));

    let out = drain(
        &bed,
        json!({"name": "node-2", "delete_pods_with_local_storage": true}),
    )
    .await;
    assert_eq!(out, Ok(json!(["node-2"])));
    assert!(on_node(&bed.sim, "node-2", "cache-").is_empty());
    assert_eq!(
        bed.entries().len(),
        2,
        "the node was already cordoned: no second undo"
    );
}

#[test]
fn verdicts_follow_kubectl_where_upstream_is_wrong() {
    let pod = |v: Value| -> Pod { serde_json::from_value(v).unwrap() };
    let ds_owner = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]);
    let ds_with_scratch = pod(json!({
        "metadata": {"name": "d-1", "ownerReferences": ds_owner},
        "spec": {"containers": [], "volumes": [{"name": "v", "emptyDir": {}}]},
    }));
    // Upstream evicts this one when local storage is allowed; its DaemonSet
    // would only put it back on the same node.
    assert_eq!(
        verdict(&ds_with_scratch, "n", true),
        Verdict::Skip("DaemonSet-managed pod")
    );
    let finished = pod(json!({
        "metadata": {"name": "job-1"},
        "spec": {"containers": [], "volumes": [{"name": "v", "emptyDir": {}}]},
        "status": {"phase": "Succeeded"},
    }));
    assert_eq!(verdict(&finished, "n", false), Verdict::Evict);
    let bare = pod(json!({"metadata": {"name": "b"}, "spec": {"containers": []}}));
    assert!(matches!(verdict(&bare, "n", true), Verdict::Refuse(m) if m.contains("is unmanaged")));
}

#[tokio::test(start_paused = true)]
async fn a_budget_refusal_is_retried_until_the_timeout_and_then_fails_with_it() {
    let bed = Bed::new();
    deployment(&bed, "gw", 1, Some("node-1"), false).await;
    budget(&bed, "gw", 1).await;
    settle().await;
    let gw = on_node(&bed.sim, "node-1", "gw-");

    let err = drain(&bed, json!({"name": "node-1", "timeout": 20}))
        .await
        .unwrap_err();
    let msg = err.message();
    assert!(
        msg.starts_with(&format!("Failed to evict pod {}: {{", gw[0])),
        "{msg}"
    );
    assert!(msg.contains(r#""reason":"DisruptionBudget""#), "{msg}");
    assert!(
        msg.contains("The disruption budget gw needs 1 healthy pods and has 1 currently"),
        "{msg}"
    );
    assert!(msg.contains("node node-1 stays cordoned"), "{msg}");
    assert!(log_has(
        &bed,
        &format!(
            "WARNING error when evicting pods/\"{}\" -n \"default\" (will retry after 5s)",
            gw[0]
        )
    ));
    assert!(log_has(&bed, "DEBUG error when evicting pods/"), "retried");
    assert_eq!(on_node(&bed.sim, "node-1", "gw-"), gw, "the pod stays");
    assert!(cordoned(&bed.sim, "node-1"));
    let entries = bed.entries();
    assert_eq!(entries.len(), 1);
    assert!(!entries[0].done, "the undo is pending");
}

#[tokio::test(start_paused = true)]
async fn a_refused_eviction_goes_through_once_the_budget_allows_it() {
    let bed = Bed::new();
    deployment(&bed, "gw", 1, Some("node-1"), false).await;
    budget(&bed, "gw", 1).await;
    settle().await;
    let client = bed.client.clone();
    let relax = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(7)).await;
        let api: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
        let patch = json!({"spec": {"minAvailable": 0}});
        api.patch("gw", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    });
    let out = drain(&bed, json!({"name": "node-1", "timeout": 60})).await;
    relax.await.unwrap();
    assert_eq!(out, Ok(json!(["node-1"])));
    assert!(log_has(&bed, "will retry after 5s"));
    assert!(on_node(&bed.sim, "node-1", "gw-").is_empty());
}

#[tokio::test(start_paused = true)]
async fn count_picks_nodes_hosting_the_namespace_at_random_and_the_seed_replays_it() {
    let bed = Bed::new();
    let out = drain(&bed, json!({"count": 2})).await.unwrap();
    let seed = out["seed"].as_i64().expect("the seed is in the output");
    let first = out["nodes"].clone();
    assert_eq!(first.as_array().unwrap().len(), 2);
    assert!(log_has(&bed, &format!("with seed {seed}")));
    (UNCORDON_NODE.run)(bed.ctx(Limits::default()), args(json!({})))
        .await
        .unwrap();
    let again = drain(&bed, json!({"count": 2, "seed": seed}))
        .await
        .unwrap();
    assert_eq!(again["nodes"], first);

    // pod_namespace alone narrows the nodes (upstream ignores it); dry
    // runs, so the pod stays where it is between picks.
    let mut bed = Bed::new();
    deployment(&bed, "web", 1, Some("node-3"), false).await;
    settle().await;
    bed.dry = true;
    for _ in 0..3 {
        let out = drain(&bed, json!({"count": 1, "pod_namespace": "default"})).await;
        assert_eq!(out.unwrap()["targets"], json!(["node-3"]));
    }
    let none = drain(&bed, json!({"pod_namespace": "kube-public"})).await;
    assert_eq!(
        none,
        Err(ActivityError::failed(
            "failed to find a node that matches selector"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn draining_too_many_nodes_is_refused_before_anything_changes() {
    let bed = Bed::new();
    let limits = Limits {
        max_targets: Some(1),
        max_percent: None,
    };
    let out = (DRAIN_NODES.run)(bed.ctx(limits), args(json!({}))).await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "blast radius exceeded: drain_nodes picked 3 nodes but squall.limits.max_targets is 1; no node was cordoned or drained"
        ))
    );
    assert!(bed.entries().is_empty());
    assert!(!cordoned(&bed.sim, "node-1"));
}

/// Every node's spec and every pod (name, uid, node), to compare before
/// and after a dry run.
fn snapshot(sim: &Sim) -> (Vec<Value>, Vec<(String, String, String)>) {
    let nodes = sim
        .list("", "nodes", None)
        .iter()
        .map(|n| n["spec"].clone())
        .collect();
    (nodes, alive(sim))
}

#[tokio::test(start_paused = true)]
async fn dry_runs_plan_and_change_nothing() {
    let mut bed = Bed::new();
    deployment(&bed, "web", 3, None, false).await;
    daemonset(&bed, "agent").await;
    bare_pod(&bed, "bare", "node-2", false).await;
    settle().await;
    let web1 = on_node(&bed.sim, "node-1", "web-");
    let before = snapshot(&bed.sim);
    bed.dry = true;
    let ctx = bed.ctx(Limits::default());

    let out = (DRAIN_NODES.run)(ctx.clone(), args(json!({})))
        .await
        .unwrap();
    assert_eq!(out["dry"], json!(true));
    assert_eq!(out["targets"], json!(["node-1", "node-2", "node-3"]));
    let changes: Vec<&str> = out["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(changes.contains(&"cordon node node-1"), "{changes:?}");
    assert!(
        changes.contains(&format!("evict pod default/{}", web1[0]).as_str()),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("fail to drain node node-2: Pod 'bare'")),
        "{changes:?}"
    );
    // Like a real drain, the plan cordons all three nodes and stops at the
    // first node it cannot drain: node-3 is cordoned but not drained.
    assert!(changes.contains(&"cordon node node-3"), "{changes:?}");
    assert_eq!(
        changes.last(),
        Some(&"stop: the remaining nodes stay cordoned, not drained")
    );
    let evicts_on_3 = |p: &String| changes.contains(&format!("evict pod default/{p}").as_str());
    assert!(!on_node(&bed.sim, "node-3", "web-").iter().any(evicts_on_3));
    assert_eq!(
        out["skipped"].as_array().unwrap().len(),
        2,
        "the agents of the two nodes planned: {out}"
    );
    assert!(log_has(&bed, "dry run: would evict pod default/"));
    assert!(log_has(&bed, "dry run: would skip pod default/agent-"));

    let out = (CORDON_NODE.run)(ctx.clone(), args(json!({"name": "node-3"})))
        .await
        .unwrap();
    assert_eq!(out["changes"], json!(["cordon node node-3"]));
    let out = (DELETE_NODES.run)(ctx, args(json!({"count": 1})))
        .await
        .unwrap();
    assert_eq!(out["targets"].as_array().unwrap().len(), 1);
    assert!(out["seed"].is_u64(), "{out}");

    settle().await;
    assert_eq!(snapshot(&bed.sim), before, "a dry run changed the cluster");
    assert!(bed.entries().is_empty(), "a dry run recorded an undo");
}

#[tokio::test(start_paused = true)]
async fn delete_nodes_removes_the_node_and_its_pods_come_back_elsewhere_without_an_undo() {
    let bed = Bed::new();
    deployment(&bed, "web", 3, None, false).await;
    settle().await;
    let out = (DELETE_NODES.run)(bed.ctx(Limits::default()), args(json!({"rand": true})))
        .await
        .unwrap();
    let gone = out["nodes"][0].as_str().unwrap().to_owned();
    assert!(out["seed"].is_u64(), "{out}");
    assert!(bed.sim.get("", "nodes", "", &gone).is_none());
    assert!(log_has(&bed, &format!("deleting node {gone}")));
    assert!(
        bed.entries().is_empty(),
        "squall cannot undo a node deletion"
    );
    settle().await;
    let web: Vec<_> = alive(&bed.sim)
        .into_iter()
        .filter(|(n, _, _)| n.starts_with("web-"))
        .collect();
    assert_eq!(web.len(), 3, "{web:?}");
    assert!(web.iter().all(|(_, _, node)| *node != gone), "{web:?}");

    let out = (DELETE_NODES.run)(
        bed.ctx(Limits::default()),
        args(json!({"label_selector": "kubernetes.io/hostname=nope"})),
    )
    .await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "failed to find a node that matches selector"
        ))
    );
}
