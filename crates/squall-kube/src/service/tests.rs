//! `service_is_initialized` and `delete_service` against the simulator.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use squall_core::model::Limits;

use super::*;
use crate::deployment::workload::defaulted;
use crate::testkit::Bed;

async fn bed_with_service() -> Bed {
    let bed = Bed::new();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(bed.client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    bed
}

async fn run(bed: &Bed, r: &Registered, a: Value) -> ActivityResult {
    (r.run)(bed.ctx(Limits::default()), defaulted(r, a)).await
}

fn exists(bed: &Bed, name: &str) -> bool {
    bed.sim.get("", "services", "default", name).is_some()
}

#[tokio::test(start_paused = true)]
async fn service_is_initialized_by_name_label_or_both() {
    let bed = bed_with_service().await;
    let init = |a| run(&bed, &SERVICE_IS_INITIALIZED, a);
    assert_eq!(init(json!({"name": "web"})).await, Ok(json!(true)));
    assert_eq!(
        init(json!({"label_selector": "app=web"})).await,
        Ok(json!(true))
    );
    assert_eq!(
        init(json!({"name": "web", "label_selector": "app=db"})).await,
        Err(squall_activity::ActivityError::failed(
            "service 'web' is not initialized"
        ))
    );
    assert_eq!(
        init(json!({"label_selector": "app=db"})).await,
        Err(squall_activity::ActivityError::failed(
            "service 'None' is not initialized"
        ))
    );
    let quiet = json!({"name": "db", "raise_if_service_not_initialized": false});
    assert_eq!(init(quiet).await, Ok(json!(false)));
    // Neither: any Service of the namespace (there is `kubernetes` and web).
    assert_eq!(init(json!({})).await, Ok(json!(true)));
}

#[tokio::test(start_paused = true)]
async fn delete_service_and_its_dry_run() {
    let mut bed = bed_with_service().await;
    bed.dry = true;
    let out = run(&bed, &DELETE_SERVICE, json!({"name": "web"}))
        .await
        .unwrap();
    assert_eq!(out["changes"], json!(["delete service default/web"]));
    assert!(exists(&bed, "web"));
    let missing = run(&bed, &DELETE_SERVICE, json!({"name": "db"})).await;
    assert!(missing.unwrap_err().message().contains("(404)"));
    bed.dry = false;
    assert_eq!(
        run(&bed, &DELETE_SERVICE, json!({"name": "web"})).await,
        Ok(Value::Null)
    );
    assert!(!exists(&bed, "web"));
    assert!(bed.entries().is_empty());
}
