//! The deployment functions against the simulator on a paused clock: scale
//! records its undo before the patch and a scale back settles it, the undo
//! is idempotent and reconnects through the recorded kubeconfig, deletes
//! honour the limits, dry mode changes nothing, and the probes and waits
//! follow upstream's rules and messages.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::json;
use squall_core::model::Limits;
use squall_sim::{Sim, SimOptions};

use super::*;
use crate::deployment::workload::defaulted;
use crate::testkit::{Bed, MemLedger, args};

/// Creates a deployment `name` (label app=name) with `replicas` pods; with
/// `schedulable: false` its pods never leave Pending.
async fn make(client: &kube::Client, name: &str, replicas: i32, schedulable: bool) {
    let mut pod_spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
    if !schedulable {
        pod_spec["nodeSelector"] = json!({"nowhere": "true"});
    }
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name, "tier": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

/// web (2 replicas) and api (1 replica), settled.
async fn cluster() -> Bed {
    let bed = Bed::new();
    make(&bed.client, "web", 2, true).await;
    make(&bed.client, "api", 1, true).await;
    settle().await;
    bed
}

async fn settle() {
    tokio::time::sleep(Duration::from_secs(10)).await;
}

fn replicas(sim: &Sim, name: &str) -> Option<i64> {
    sim.get("apps", "deployments", "default", name)
        .and_then(|d| d["spec"]["replicas"].as_i64())
}

fn exists(sim: &Sim, name: &str) -> bool {
    sim.get("apps", "deployments", "default", name).is_some()
}

async fn run(bed: &Bed, r: &Registered, a: Value) -> ActivityResult {
    (r.run)(bed.ctx(Limits::default()), defaulted(r, a)).await
}

/// A bed whose ledger notes the replicas of `web` when an undo is recorded.
fn watched_bed() -> Bed {
    let sim = Sim::start(SimOptions::default());
    let seen = sim.clone();
    let ledger = MemLedger {
        on_record: Some(Box::new(move |_: &str| json!(replicas(&seen, "web")))),
        ..MemLedger::default()
    };
    Bed::on(sim, ledger)
}

#[tokio::test(start_paused = true)]
async fn scale_records_the_undo_before_patching_and_a_scale_back_settles_it() {
    let bed = watched_bed();
    make(&bed.client, "web", 2, true).await;
    settle().await;
    let out = run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 5}),
    )
    .await;
    assert_eq!(out, Ok(Value::Null));
    assert_eq!(replicas(&bed.sim, "web"), Some(5));
    let e = &bed.entries()[0];
    assert_eq!(e.pending.target, "deployment/default/web");
    assert_eq!(e.pending.undo.kind, UNDO_SCALE_KIND);
    assert_eq!(e.pending.undo.data["replicas"], 2);
    assert_eq!(e.seen, json!(2), "undo before harm");
    // A second scale keeps the first undo (it holds the original count).
    run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 1}),
    )
    .await
    .unwrap();
    assert_eq!(bed.entries().len(), 1);
    assert!(!bed.entries()[0].done);
    // Scaling back to the original count is the rollback: the undo is done.
    run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 2}),
    )
    .await
    .unwrap();
    assert_eq!(replicas(&bed.sim, "web"), Some(2));
    assert!(bed.entries()[0].done);
}

#[tokio::test(start_paused = true)]
async fn scaling_to_the_current_count_or_a_missing_deployment_records_nothing() {
    let bed = cluster().await;
    run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 2}),
    )
    .await
    .unwrap();
    assert!(bed.entries().is_empty());
    let out = run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "ghost", "replicas": 3}),
    )
    .await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "failed to scale 'ghost' to 3 replicas: Kubernetes API error (404) NotFound: deployments.apps \"ghost\" not found"
        ))
    );
    assert!(bed.entries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_scale_undo_restores_the_count_and_is_idempotent() {
    let bed = cluster().await;
    run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 0}),
    )
    .await
    .unwrap();
    assert_eq!(replicas(&bed.sim, "web"), Some(0));
    workload::restore_replicas::<Deployment>(&bed.kube, "default", "web", 2)
        .await
        .unwrap();
    assert_eq!(replicas(&bed.sim, "web"), Some(2));
    workload::restore_replicas::<Deployment>(&bed.kube, "default", "web", 2)
        .await
        .unwrap();
    assert_eq!(replicas(&bed.sim, "web"), Some(2));
    // Gone: nothing to do.
    workload::restore_replicas::<Deployment>(&bed.kube, "default", "gone", 2)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_scale_undo_reconnects_through_the_recorded_kubeconfig() {
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
    let env = crate::Environment::default();
    let mut bed = Bed::on(sim, MemLedger::default());
    bed.kube = crate::Kube::connect_in(&opts, &env).await.unwrap();
    make(&bed.client, "web", 2, true).await;
    run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 4}),
    )
    .await
    .unwrap();
    let data = bed.entries()[0].pending.undo.data.clone();
    assert_eq!(data["connection"]["source"], "kubeconfig");
    (UNDO_SCALE_DEPLOYMENT.apply)(data.clone()).await.unwrap();
    assert_eq!(replicas(&bed.sim, "web"), Some(2));
    (UNDO_SCALE_DEPLOYMENT.apply)(data).await.unwrap();
    assert_eq!(replicas(&bed.sim, "web"), Some(2));
    let client_only =
        json!({"ns": "default", "name": "web", "replicas": 2, "connection": {"source": "client"}});
    let err = (UNDO_SCALE_DEPLOYMENT.apply)(client_only)
        .await
        .unwrap_err();
    assert!(
        err.contains("kubectl --namespace default scale deployment web --replicas=2"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn dry_mode_plans_and_changes_nothing() {
    let mut bed = cluster().await;
    bed.dry = true;
    let out = run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 0}),
    )
    .await
    .unwrap();
    assert_eq!(
        out["changes"],
        json!(["scale deployment default/web from 2 to 0 replicas"])
    );
    let out = run(&bed, &DELETE_DEPLOYMENT, json!({})).await.unwrap();
    assert_eq!(
        out["changes"],
        json!([
            "delete deployment default/api",
            "delete deployment default/web"
        ])
    );
    let out = run(&bed, &ROLLOUT_DEPLOYMENT, json!({"name": "web"}))
        .await
        .unwrap();
    assert_eq!(out["targets"], json!(["deployment/default/web"]));
    assert_eq!(replicas(&bed.sim, "web"), Some(2));
    assert!(exists(&bed.sim, "web") && exists(&bed.sim, "api"));
    let template = bed
        .sim
        .get("apps", "deployments", "default", "web")
        .unwrap();
    assert!(template["spec"]["template"]["metadata"]["annotations"].is_null());
    assert!(bed.entries().is_empty());
    let log = bed.log.0.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l == "INFO dry run: would delete deployment default/web")
    );
}

#[tokio::test(start_paused = true)]
async fn delete_by_name_by_label_and_everything_under_the_limits() {
    let bed = cluster().await;
    make(&bed.client, "db", 1, true).await;
    assert_eq!(
        run(&bed, &DELETE_DEPLOYMENT, json!({"name": "api"})).await,
        Ok(Value::Null)
    );
    assert!(!exists(&bed.sim, "api") && exists(&bed.sim, "web"));
    run(
        &bed,
        &DELETE_DEPLOYMENT,
        json!({"label_selector": "app=db"}),
    )
    .await
    .unwrap();
    assert!(!exists(&bed.sim, "db"));
    make(&bed.client, "db", 1, true).await;
    let limits = Limits {
        max_targets: Some(1),
        max_percent: None,
    };
    let out = (DELETE_DEPLOYMENT.run)(bed.ctx(limits), args(json!({}))).await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "blast radius exceeded: delete_deployment picked 2 deployments but squall.limits.max_targets is 1; nothing was deleted"
        ))
    );
    assert!(exists(&bed.sim, "db") && exists(&bed.sim, "web"));
    run(&bed, &DELETE_DEPLOYMENT, json!({})).await.unwrap();
    assert!(!exists(&bed.sim, "db") && !exists(&bed.sim, "web"));
    assert!(bed.entries().is_empty(), "deletes record no undo");
}

#[tokio::test(start_paused = true)]
async fn rollout_restart_replaces_the_pods() {
    let bed = cluster().await;
    let pods = |sim: &Sim| -> Vec<String> {
        sim.list("", "pods", Some("default"))
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "api")
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = pods(&bed.sim);
    assert_eq!(
        run(&bed, &ROLLOUT_DEPLOYMENT, json!({"name": "api"})).await,
        Ok(Value::Null)
    );
    let d = bed
        .sim
        .get("apps", "deployments", "default", "api")
        .unwrap();
    let at = d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(at.ends_with('Z') && at.len() == 20, "{at}");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = pods(&bed.sim);
    assert_eq!(after.len(), 1);
    assert!(!before.contains(&after[0]), "{before:?} → {after:?}");
    let out = run(&bed, &ROLLOUT_DEPLOYMENT, json!({})).await;
    assert_eq!(
        out,
        Err(ActivityError::failed(
            "failed to rollout the deployment 'None'! Error: a deployment name is required"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn available_and_healthy_and_partially_available() {
    let bed = cluster().await;
    make(&bed.client, "stuck", 2, false).await;
    settle().await;
    let healthy = |a| run(&bed, &DEPLOYMENT_AVAILABLE_AND_HEALTHY, a);
    assert_eq!(healthy(json!({"name": "web"})).await, Ok(json!(true)));
    assert_eq!(
        healthy(json!({"name": "stuck"})).await,
        Err(ActivityError::failed("Deployment 'stuck' is not healthy"))
    );
    assert_eq!(
        healthy(json!({"name": "web", "label_selector": "tier=db"})).await,
        Err(ActivityError::failed("Deployment 'web' was not found"))
    );
    let quiet = json!({"name": "nope", "raise_on_unavailable": false});
    assert_eq!(healthy(quiet).await, Ok(json!(false)));
    let partial = |a| run(&bed, &DEPLOYMENT_PARTIALLY_AVAILABLE, a);
    assert_eq!(partial(json!({"name": "web"})).await, Ok(json!(true)));
    assert_eq!(
        partial(json!({"name": "stuck"})).await,
        Err(ActivityError::failed("Deployment 'stuck' is not healthy"))
    );
    let quiet = json!({"name": "stuck", "raise_on_not_partially_available": false});
    assert_eq!(partial(quiet).await, Ok(json!(false)));
}

#[tokio::test(start_paused = true)]
async fn fully_available_waits_for_the_new_pods() {
    let bed = cluster().await;
    run(
        &bed,
        &SCALE_DEPLOYMENT,
        json!({"name": "web", "replicas": 4}),
    )
    .await
    .unwrap();
    // Right after the scale not every replica is ready...
    let not = json!({"name": "web", "timeout": 5});
    assert_eq!(
        run(&bed, &DEPLOYMENT_NOT_FULLY_AVAILABLE, not).await,
        Ok(json!(true))
    );
    // ...and the wait returns once they are.
    let fully = json!({"name": "web", "timeout": 30});
    assert_eq!(
        run(&bed, &DEPLOYMENT_FULLY_AVAILABLE, fully).await,
        Ok(json!(true))
    );
    let ready = bed
        .sim
        .get("apps", "deployments", "default", "web")
        .unwrap();
    assert_eq!(ready["status"]["readyReplicas"], 4);
    // Settled: it never stops running within the timeout.
    let not = json!({"name": "web", "timeout": 5});
    assert_eq!(
        run(&bed, &DEPLOYMENT_NOT_FULLY_AVAILABLE, not).await,
        Err(ActivityError::failed(
            "deployment 'web' failed to stop running within 5s"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn fully_available_gives_up_after_the_timeout() {
    let bed = Bed::new();
    make(&bed.client, "stuck", 1, false).await;
    settle().await;
    let a = json!({"name": "stuck", "timeout": 3});
    assert_eq!(
        run(&bed, &DEPLOYMENT_FULLY_AVAILABLE, a).await,
        Err(ActivityError::failed(
            "deployment 'stuck' failed to recover within 3s"
        ))
    );
    let quiet = json!({"name": "stuck", "timeout": 3, "raise_on_not_fully_available": false});
    assert_eq!(
        run(&bed, &DEPLOYMENT_FULLY_AVAILABLE, quiet).await,
        Ok(json!(false))
    );
    // A label selector that excludes the deployment: no event, so the wait runs out.
    make(&bed.client, "ok", 1, true).await;
    settle().await;
    let a = json!({"name": "ok", "label_selector": "app={name}", "timeout": 3});
    assert_eq!(
        run(&bed, &DEPLOYMENT_FULLY_AVAILABLE, a).await,
        Ok(json!(true))
    );
    let a = json!({"name": "ok", "label_selector": "app=other", "timeout": 3, "raise_on_not_fully_available": false});
    assert_eq!(
        run(&bed, &DEPLOYMENT_FULLY_AVAILABLE, a).await,
        Ok(json!(false))
    );
}
