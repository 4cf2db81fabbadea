//! The deprecated `chaosk8s.probes` / `chaosk8s.actions` aliases against the
//! simulator: each warns as upstream does and behaves like the function it
//! stands for, with the documented fixes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::PostParams;
use serde_json::json;
use squall_core::model::Limits;
use squall_sim::Sim;

use super::*;
use crate::deployment::workload::defaulted;
use crate::testkit::Bed;

/// Deployment `web` (2 replicas, pods labelled `name=web`) and its Service.
async fn cluster() -> Bed {
    let bed = Bed::new();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"name": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"name": "web"}},
            "template": {
                "metadata": {"labels": {"name": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(bed.client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"name": "web"}},
        "spec": {"selector": {"name": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(bed.client.clone(), "default")
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    bed
}

async fn run(bed: &Bed, r: &Registered, a: Value) -> ActivityResult {
    (r.run)(bed.ctx(Limits::default()), defaulted(r, a)).await
}

fn warned(bed: &Bed, name: &str, alt: &str) -> bool {
    let line = format!(
        "WARNING {name} function is DEPRECATED and will be removed in the next         releases, please use {alt} instead"
    );
    bed.log.0.lock().unwrap().contains(&line)
}

fn pods(sim: &Sim) -> usize {
    sim.list("", "pods", Some("default"))
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .count()
}

#[tokio::test(start_paused = true)]
async fn health_aliases_warn_and_answer() {
    let bed = cluster().await;
    let ok = run(&bed, &ALL_MICROSERVICES_HEALTHY, json!({})).await;
    assert_eq!(ok, Ok(json!(true)));
    assert!(warned(
        &bed,
        "all_microservices_healthy",
        "all_pods_healthy"
    ));
    let a = json!({"name": "web"});
    let out = run(&bed, &MICROSERVICE_AVAILABLE_AND_HEALTHY, a).await;
    assert_eq!(out, Ok(json!(true)), "true, not upstream's None");
    assert!(warned(
        &bed,
        "microservice_available_and_healthy",
        "deployment_available_and_healthy"
    ));
    let out = run(
        &bed,
        &MICROSERVICE_AVAILABLE_AND_HEALTHY,
        json!({"name": "db"}),
    )
    .await;
    assert_eq!(
        out,
        Err(ActivityError::failed("Deployment 'db' was not found"))
    );
    let out = run(&bed, &MICROSERVICE_IS_NOT_AVAILABLE, json!({"name": "web"})).await;
    assert_eq!(
        out,
        Err(ActivityError::failed("pod 'web' is actually running"))
    );
    let out = run(&bed, &MICROSERVICE_IS_NOT_AVAILABLE, json!({"name": "db"})).await;
    assert_eq!(out, Ok(json!(true)));
    // `{name}` is filled in (upstream sends it literally: an invalid selector).
    let out = run(
        &bed,
        &SERVICE_ENDPOINT_IS_INITIALIZED,
        json!({"name": "web"}),
    )
    .await;
    assert_eq!(out, Ok(json!(true)));
    let out = run(
        &bed,
        &SERVICE_ENDPOINT_IS_INITIALIZED,
        json!({"name": "db"}),
    )
    .await;
    assert_eq!(
        out,
        Err(ActivityError::failed("service 'db' is not initialized"))
    );
}

#[tokio::test(start_paused = true)]
async fn all_microservices_healthy_fails_on_a_pending_pod() {
    let bed = cluster().await;
    run(
        &bed,
        &SCALE_MICROSERVICE,
        json!({"name": "web", "replicas": 3}),
    )
    .await
    .unwrap();
    assert!(warned(&bed, "scale_microservice", "scale_deployment"));
    assert_eq!(
        bed.entries()[0].pending.undo.kind,
        deployment::UNDO_SCALE_KIND
    );
    let out = run(&bed, &ALL_MICROSERVICES_HEALTHY, json!({})).await;
    assert_eq!(out, Err(ActivityError::failed("the system is unhealthy")));
    let a = json!({"name": "web", "timeout": 30});
    assert_eq!(
        run(&bed, &DEPLOYMENT_IS_FULLY_AVAILABLE, a).await,
        Ok(json!(true))
    );
    assert_eq!(
        run(&bed, &ALL_MICROSERVICES_HEALTHY, json!({})).await,
        Ok(json!(true))
    );
    let a = json!({"name": "web", "timeout": 2});
    assert_eq!(
        run(&bed, &DEPLOYMENT_IS_NOT_FULLY_AVAILABLE, a).await,
        Err(ActivityError::failed(
            "deployment 'web' failed to stop running within 2s"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn read_microservices_logs_reads_the_named_pods() {
    let bed = cluster().await;
    let out = run(&bed, &READ_MICROSERVICES_LOGS, json!({"name": "web"}))
        .await
        .unwrap();
    let logs = out.as_object().unwrap();
    assert_eq!(logs.len(), 2);
    assert!(logs.keys().all(|k| k.starts_with("web-")));
    assert!(!warned(&bed, "read_microservices_logs", "read_pod_logs"));
}

#[tokio::test(start_paused = true)]
async fn kill_microservice_deletes_deployment_replica_sets_and_pods() {
    let mut bed = cluster().await;
    bed.dry = true;
    let plan = run(&bed, &KILL_MICROSERVICE, json!({"name": "web"}))
        .await
        .unwrap();
    let changes: Vec<String> = serde_json::from_value(plan["changes"].clone()).unwrap();
    assert_eq!(changes[0], "delete deployment default/web");
    assert!(changes[1].starts_with("delete replicaset default/web-"));
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.starts_with("delete pod"))
            .count(),
        2
    );
    assert_eq!(pods(&bed.sim), 2, "dry mode deletes nothing");
    bed.dry = false;
    let limits = Limits {
        max_targets: Some(1),
        max_percent: None,
    };
    let refused = (KILL_MICROSERVICE.run)(
        bed.ctx(limits),
        defaulted(&KILL_MICROSERVICE, json!({"name": "web"})),
    )
    .await;
    assert!(
        refused
            .unwrap_err()
            .message()
            .starts_with("blast radius exceeded: kill_microservice picked 2 pods")
    );
    assert_eq!(
        run(&bed, &KILL_MICROSERVICE, json!({"name": "web"})).await,
        Ok(Value::Null)
    );
    assert!(warned(&bed, "kill_microservice", "delete_deployment"));
    assert!(
        bed.sim
            .get("apps", "deployments", "default", "web")
            .is_none()
    );
    assert!(
        bed.sim
            .list("apps", "replicasets", Some("default"))
            .is_empty()
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(pods(&bed.sim), 0, "nothing recreates them");
}

#[tokio::test(start_paused = true)]
async fn kill_microservice_counts_the_deployment_against_the_limits() {
    let bed = cluster().await;
    // A selector that matches no pod still deletes the Deployment, whose
    // pods go with it: the Deployment itself counts against the limits.
    let refused = (KILL_MICROSERVICE.run)(
        bed.ctx(Limits {
            max_targets: None,
            max_percent: Some(50.0),
        }),
        defaulted(
            &KILL_MICROSERVICE,
            json!({"name": "web", "label_selector": "app=nothing"}),
        ),
    )
    .await;
    assert!(
        refused
            .unwrap_err()
            .message()
            .starts_with("blast radius exceeded: kill_microservice picked 1 of 1 deployments")
    );
    assert_eq!(pods(&bed.sim), 2, "the refusal deleted nothing");
}

#[tokio::test(start_paused = true)]
async fn remove_service_endpoint_deletes_the_service() {
    let bed = cluster().await;
    let out = run(&bed, &REMOVE_SERVICE_ENDPOINT, json!({"name": "web"})).await;
    assert_eq!(out, Ok(Value::Null));
    assert!(warned(&bed, "remove_service_endpoint", "delete_service"));
    assert!(bed.sim.get("", "services", "default", "web").is_none());
}
