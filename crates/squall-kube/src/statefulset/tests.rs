//! The statefulset functions against the simulator on a paused clock.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, PostParams};
use serde_json::json;
use squall_core::model::Limits;
use squall_sim::Sim;

use super::*;
use crate::deployment::workload::defaulted;
use crate::testkit::{Bed, args};

async fn make(client: &kube::Client, name: &str, replicas: i32) {
    let s: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "mongo"}]},
            },
        },
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

async fn cluster() -> Bed {
    let bed = Bed::new();
    make(&bed.client, "db", 2).await;
    make(&bed.client, "cache", 1).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    bed
}

fn replicas(sim: &Sim, name: &str) -> Option<i64> {
    sim.get("apps", "statefulsets", "default", name)
        .and_then(|d| d["spec"]["replicas"].as_i64())
}

async fn run(bed: &Bed, r: &Registered, a: Value) -> ActivityResult {
    (r.run)(bed.ctx(Limits::default()), defaulted(r, a)).await
}

#[tokio::test(start_paused = true)]
async fn scale_records_an_undo_that_scales_back() {
    let bed = cluster().await;
    let out = run(
        &bed,
        &SCALE_STATEFULSET,
        json!({"name": "db", "replicas": 0}),
    )
    .await;
    assert_eq!(out, Ok(Value::Null));
    assert_eq!(replicas(&bed.sim, "db"), Some(0));
    let e = &bed.entries()[0];
    assert_eq!(e.pending.target, "statefulset/default/db");
    assert_eq!(e.pending.undo.kind, UNDO_SCALE_KIND);
    assert_eq!(e.pending.undo.data["replicas"], 2);
    workload::restore_replicas::<StatefulSet>(&bed.kube, "default", "db", 2)
        .await
        .unwrap();
    assert_eq!(replicas(&bed.sim, "db"), Some(2));
    let out = run(
        &bed,
        &SCALE_STATEFULSET,
        json!({"name": "nope", "replicas": 1}),
    )
    .await;
    assert_eq!(
        out,
        Err(squall_activity::ActivityError::failed(
            "failed to scale 'nope' to 1 replicas: Kubernetes API error (404) NotFound: statefulsets.apps \"nope\" not found"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn remove_by_name_and_dry_mode() {
    let mut bed = cluster().await;
    bed.dry = true;
    let out = run(&bed, &REMOVE_STATEFULSET, json!({})).await.unwrap();
    assert_eq!(
        out["changes"],
        json!([
            "delete statefulset default/cache",
            "delete statefulset default/db"
        ])
    );
    let out = run(
        &bed,
        &SCALE_STATEFULSET,
        json!({"name": "db", "replicas": 5}),
    )
    .await
    .unwrap();
    assert_eq!(
        out["changes"],
        json!(["scale statefulset default/db from 2 to 5 replicas"])
    );
    assert_eq!(replicas(&bed.sim, "db"), Some(2));
    assert!(bed.entries().is_empty());
    bed.dry = false;
    run(&bed, &REMOVE_STATEFULSET, json!({"name": "cache"}))
        .await
        .unwrap();
    assert!(replicas(&bed.sim, "cache").is_none());
    assert_eq!(replicas(&bed.sim, "db"), Some(2));
    let limits = Limits {
        max_targets: None,
        max_percent: Some(50.0),
    };
    make(&bed.client, "cache", 1).await;
    let out = (REMOVE_STATEFULSET.run)(bed.ctx(limits), args(json!({}))).await;
    assert!(
        out.unwrap_err()
            .message()
            .contains("squall.limits.max_percent is 50; nothing was deleted")
    );
    assert_eq!(replicas(&bed.sim, "cache"), Some(1));
}

#[tokio::test(start_paused = true)]
async fn readiness_waits_use_the_microservice_messages() {
    let bed = cluster().await;
    let a = json!({"name": "db", "timeout": 5});
    assert_eq!(
        run(&bed, &STATEFULSET_FULLY_AVAILABLE, a).await,
        Ok(json!(true))
    );
    let a = json!({"name": "db", "timeout": 5});
    assert_eq!(
        run(&bed, &STATEFULSET_NOT_FULLY_AVAILABLE, a).await,
        Err(squall_activity::ActivityError::failed(
            "microservice 'db' failed to stop running within 5s"
        ))
    );
    run(
        &bed,
        &SCALE_STATEFULSET,
        json!({"name": "db", "replicas": 3}),
    )
    .await
    .unwrap();
    let a = json!({"name": "db", "timeout": 5});
    assert_eq!(
        run(&bed, &STATEFULSET_NOT_FULLY_AVAILABLE, a).await,
        Ok(json!(true))
    );
    let a = json!({"name": "db", "timeout": 60});
    assert_eq!(
        run(&bed, &STATEFULSET_FULLY_AVAILABLE, a).await,
        Ok(json!(true))
    );
    let a = json!({"name": "missing", "timeout": 2});
    assert_eq!(
        run(&bed, &STATEFULSET_FULLY_AVAILABLE, a).await,
        Err(squall_activity::ActivityError::failed(
            "microservice 'missing' failed to recover within 2s"
        ))
    );
}
