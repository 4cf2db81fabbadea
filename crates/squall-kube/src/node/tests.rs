//! cordon / uncordon against the simulator: the undo is in the ledger
//! before the node changes, uncordon marks it done, and the undo function
//! reconnects through the recorded kubeconfig (the simulator served over
//! HTTP) and is idempotent.

use serde_json::json;
use squall_sim::{Sim, SimOptions};

use super::*;
use crate::testkit::{Bed, MemLedger, args};

fn unschedulable(sim: &Sim, node: &str) -> bool {
    sim.get("", "nodes", "", node)
        .and_then(|n| n["spec"]["unschedulable"].as_bool())
        .unwrap_or(false)
}

/// A bed whose ledger notes, at each record, whether the node was cordoned.
fn watched_bed() -> Bed {
    let sim = Sim::start(SimOptions::default());
    let seen = sim.clone();
    let ledger = MemLedger {
        on_record: Some(Box::new(move |target: &str| {
            let node = target.trim_start_matches("node/");
            json!({"cordoned_at_record": unschedulable(&seen, node)})
        })),
        ..MemLedger::default()
    };
    Bed::on(sim, ledger)
}

#[tokio::test(start_paused = true)]
async fn cordon_records_the_undo_before_patching_and_uncordon_marks_it_done() {
    let bed = watched_bed();
    let ctx = bed.ctx(Default::default());
    let out = (CORDON_NODE.run)(ctx.clone(), args(json!({"name": "node-2"}))).await;
    assert_eq!(out, Ok(json!(["node-2"])));
    assert!(unschedulable(&bed.sim, "node-2"));
    assert!(!unschedulable(&bed.sim, "node-1"));
    let entries = bed.entries();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.pending.target, "node/node-2");
    assert_eq!(e.pending.undo.kind, UNDO_KIND);
    assert_eq!(e.pending.undo.data["node"], "node-2");
    assert_eq!(
        e.seen,
        json!({"cordoned_at_record": false}),
        "undo before harm"
    );
    assert!(!e.done);

    let out = (UNCORDON_NODE.run)(ctx.clone(), args(json!({"name": "node-2"}))).await;
    assert_eq!(out, Ok(json!(["node-2"])));
    assert!(!unschedulable(&bed.sim, "node-2"));
    assert!(bed.entries()[0].done);
    // Again: nothing pending, nothing changes.
    let out = (UNCORDON_NODE.run)(ctx, args(json!({"name": "node-2"}))).await;
    assert_eq!(out, Ok(json!(["node-2"])));
}

#[tokio::test(start_paused = true)]
async fn selection_by_label_and_no_match() {
    let bed = Bed::new();
    let ctx = bed.ctx(Default::default());
    let a = json!({"label_selector": "kubernetes.io/hostname in (node-1,node-3)"});
    let out = (CORDON_NODE.run)(ctx.clone(), args(a)).await;
    assert_eq!(out, Ok(json!(["node-1", "node-3"])));
    assert_eq!(bed.entries().len(), 2);
    let out = (CORDON_NODE.run)(ctx, args(json!({"name": "node-9"}))).await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "failed to find a node that matches selector"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn an_already_cordoned_node_gets_no_undo() {
    let bed = Bed::new();
    let ctx = bed.ctx(Default::default());
    let a = || args(json!({"name": "node-1"}));
    (CORDON_NODE.run)(ctx.clone(), a()).await.unwrap();
    (CORDON_NODE.run)(ctx, a()).await.unwrap();
    assert_eq!(bed.entries().len(), 1, "the second cordon changed nothing");
}

#[tokio::test(start_paused = true)]
async fn an_unwritable_ledger_leaves_the_node_alone() {
    let sim = Sim::start(SimOptions::default());
    let bed = Bed::on(
        sim,
        MemLedger {
            broken: true,
            ..MemLedger::default()
        },
    );
    let out = (CORDON_NODE.run)(bed.ctx(Default::default()), args(json!({"name": "node-1"}))).await;
    assert!(matches!(out, Err(ActivityError::Fatal(_))), "{out:?}");
    assert!(!unschedulable(&bed.sim, "node-1"));
}

#[tokio::test]
async fn the_undo_reconnects_through_the_recorded_kubeconfig_and_is_idempotent() {
    let sim = Sim::start(SimOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, squall_sim::kubeconfig(&server)).unwrap();
    let opts = crate::ConnectOptions {
        kubeconfig: Some(path),
        context: None,
    };
    let kube = Kube::connect_in(&opts, &crate::Environment::default())
        .await
        .unwrap();
    let mut bed = Bed::on(sim, MemLedger::default());
    bed.kube = kube;
    let ctx = bed.ctx(Default::default());
    (CORDON_NODE.run)(ctx, args(json!({"name": "node-3"})))
        .await
        .unwrap();
    assert!(unschedulable(&bed.sim, "node-3"));
    let data = bed.entries()[0].pending.undo.data.clone();
    assert_eq!(data["connection"]["source"], "kubeconfig");
    (UNDO_UNCORDON.apply)(data.clone()).await.unwrap();
    assert!(!unschedulable(&bed.sim, "node-3"));
    (UNDO_UNCORDON.apply)(data.clone()).await.unwrap();
    assert!(!unschedulable(&bed.sim, "node-3"));
    // A node that is gone needs nothing.
    let mut gone = data;
    gone["node"] = json!("node-42");
    (UNDO_UNCORDON.apply)(gone).await.unwrap();
}

#[tokio::test]
async fn an_undo_without_connection_details_says_what_to_do() {
    let data = json!({"node": "n1", "connection": {"source": "client"}});
    let err = (UNDO_UNCORDON.apply)(data).await.unwrap_err();
    assert!(err.contains("kubectl uncordon n1"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn cordoning_every_node_is_refused_by_the_limits() {
    let bed = Bed::new();
    let limits = squall_core::model::Limits {
        max_targets: None,
        max_percent: Some(50.0),
    };
    let out = (CORDON_NODE.run)(bed.ctx(limits), args(json!({}))).await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "blast radius exceeded: cordon_node picked 3 of 3 nodes in the cluster (100.0%) but squall.limits.max_percent is 50; no node was cordoned"
        ))
    );
    assert!(bed.entries().is_empty());
    for n in ["node-1", "node-2", "node-3"] {
        assert!(!unschedulable(&bed.sim, n));
    }
    // Without limits every node is cordoned, as upstream.
    let out = (CORDON_NODE.run)(bed.ctx(Default::default()), args(json!({}))).await;
    assert_eq!(out, Ok(json!(["node-1", "node-2", "node-3"])));
}

#[tokio::test(start_paused = true)]
async fn uncordon_leaves_another_clusters_undo_pending() {
    // A killed run against another cluster left "uncordon node-1" behind in
    // the shared ledger; uncordoning node-1 here must not settle it.
    let bed = Bed::new();
    let ctx = bed.ctx(Default::default());
    let elsewhere = Undo {
        kind: UNDO_KIND.into(),
        data: json!({"node": "node-1", "connection": {"kubeconfig": "/elsewhere", "context": "prod"}}),
        description: "uncordon node node-1".into(),
    };
    ctx.record_undo("node/node-1", elsewhere).unwrap();
    (CORDON_NODE.run)(ctx.clone(), args(json!({"name": "node-1"})))
        .await
        .unwrap();
    (UNCORDON_NODE.run)(ctx, args(json!({"name": "node-1"})))
        .await
        .unwrap();
    let entries = bed.entries();
    assert_eq!(entries.len(), 2);
    assert!(!entries[0].done, "another cluster's undo was settled");
    assert!(entries[1].done, "this cluster's undo stays pending");
}
