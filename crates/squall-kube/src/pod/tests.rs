//! The pod probes and `terminate_pods` run through their `run` functions
//! against the simulator, on a paused clock.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use squall_core::model::Limits;

use super::*;
use crate::testkit::{Bed, args};

/// Creates a pod; an unschedulable one (impossible nodeSelector) stays Pending.
async fn make_pod(client: &kube::Client, name: &str, app: &str, schedulable: bool) {
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
    if !schedulable {
        spec["nodeSelector"] = json!({"nowhere": "true"});
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": spec,
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// web-1, web-2 Running and Ready; web-3 Pending; db-1 Running and Ready.
async fn cluster() -> Bed {
    let bed = Bed::new();
    make_pod(&bed.client, "web-1", "web", true).await;
    make_pod(&bed.client, "web-2", "web", true).await;
    make_pod(&bed.client, "web-3", "web", false).await;
    make_pod(&bed.client, "db-1", "db", true).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    bed
}

async fn run(bed: &Bed, r: &Registered, a: Value) -> ActivityResult {
    run_with(bed, r, a, Limits::default()).await
}

async fn run_with(bed: &Bed, r: &Registered, a: Value, limits: Limits) -> ActivityResult {
    (r.run)(bed.ctx(limits), args(a)).await
}

/// Names of pods that exist and are not being deleted.
fn alive(bed: &Bed) -> Vec<String> {
    bed.sim
        .list("", "pods", Some("default"))
        .iter()
        .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn count_pods_by_selector_and_phase() {
    let bed = cluster().await;
    let count = |a| run(&bed, &COUNT_PODS, a);
    assert_eq!(
        count(json!({"label_selector": "app=web"})).await,
        Ok(json!(3))
    );
    assert_eq!(
        count(json!({"label_selector": "app=web", "phase": "Running"})).await,
        Ok(json!(2))
    );
    assert_eq!(count(json!({"label_selector": ""})).await, Ok(json!(4)));
    assert_eq!(
        count(json!({"label_selector": "app=web", "ns": "kube-public"})).await,
        Ok(json!(0))
    );
}

#[tokio::test(start_paused = true)]
async fn pods_in_phase_messages_name_the_selector() {
    let bed = cluster().await;
    assert_eq!(
        run(&bed, &PODS_IN_PHASE, json!({"label_selector": "app=db"})).await,
        Ok(json!(true))
    );
    assert_eq!(
        run(&bed, &PODS_IN_PHASE, json!({"label_selector": "app=web"})).await,
        Err(ActivityError::failed(
            "pod 'app=web' is in phase 'Pending' but should be 'Running'"
        ))
    );
    let quiet = json!({"label_selector": "app=web", "raise_on_invalid_phase": false});
    assert_eq!(run(&bed, &PODS_IN_PHASE, quiet).await, Ok(json!(false)));
    assert_eq!(
        run(&bed, &PODS_IN_PHASE, json!({"label_selector": "app=none"})).await,
        Err(ActivityError::failed("no pods 'app=none' were found"))
    );
}

#[tokio::test(start_paused = true)]
async fn pods_not_in_phase() {
    let bed = cluster().await;
    assert_eq!(
        run(
            &bed,
            &PODS_NOT_IN_PHASE,
            json!({"label_selector": "app=db"})
        )
        .await,
        Err(ActivityError::failed(
            "pod 'app=db' should not be in phase 'Running'"
        ))
    );
    let pending = json!({"label_selector": "app=db", "phase": "Pending"});
    assert_eq!(
        run(&bed, &PODS_NOT_IN_PHASE, pending).await,
        Ok(json!(true))
    );
    let quiet = json!({"label_selector": "app=none", "raise_on_in_phase": false});
    assert_eq!(run(&bed, &PODS_NOT_IN_PHASE, quiet).await, Ok(json!(false)));
}

#[tokio::test(start_paused = true)]
async fn pods_in_conditions_prints_the_python_dict() {
    let bed = cluster().await;
    let ready = json!([{"type": "Ready", "status": "True"}]);
    let a = json!({"label_selector": "app=db", "conditions": ready});
    assert_eq!(run(&bed, &PODS_IN_CONDITIONS, a).await, Ok(json!(true)));
    let a = json!({"label_selector": "app=web", "conditions": ready});
    assert_eq!(
        run(&bed, &PODS_IN_CONDITIONS, a).await,
        Err(ActivityError::failed(
            "pod web-3 does not match the following given condition: {'type': 'Ready', 'status': 'True'}"
        ))
    );
    // An extra key never matches, as with Python dict equality.
    let extra = json!([{"status": "True", "type": "Ready", "reason": "x"}]);
    let a = json!({"label_selector": "app=db", "conditions": extra, "raise_on_invalid_conditions": false});
    assert_eq!(run(&bed, &PODS_IN_CONDITIONS, a).await, Ok(json!(false)));
}

#[tokio::test(start_paused = true)]
async fn terminate_pods_deletes_the_first_matching_pods() {
    let bed = cluster().await;
    let a = json!({"label_selector": "app=web", "qty": 2, "grace_period": 0});
    assert_eq!(
        run(&bed, &TERMINATE_PODS, a).await,
        Ok(json!(["web-1", "web-2"]))
    );
    assert_eq!(alive(&bed), ["db-1", "web-3"]);
    assert!(bed.entries().is_empty(), "pod deletion records no undo");
    // Zero matches is not an error.
    let a = json!({"label_selector": "app=none", "qty": 2});
    assert_eq!(run(&bed, &TERMINATE_PODS, a).await, Ok(json!([])));
}

#[tokio::test(start_paused = true)]
async fn terminate_pods_name_pattern_all_and_graceful_delete() {
    let bed = cluster().await;
    let a = json!({"name_pattern": "^web-[12]$", "all": true});
    assert_eq!(
        run(&bed, &TERMINATE_PODS, a).await,
        Ok(json!(["web-1", "web-2"]))
    );
    // Default grace period: Terminating first, gone after the kubelet stops it.
    assert_eq!(alive(&bed), ["db-1", "web-3"]);
    assert!(bed.sim.get("", "pods", "default", "web-1").is_some());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(bed.sim.get("", "pods", "default", "web-1").is_none());
}

#[tokio::test(start_paused = true)]
async fn random_pick_reports_its_seed_and_replays() {
    let first = cluster().await;
    let a = json!({"label_selector": "app=web", "rand": true, "qty": 2, "grace_period": 0});
    let out = run(&first, &TERMINATE_PODS, a.clone()).await.unwrap();
    let picked = out["pods"].as_array().unwrap().clone();
    assert_eq!(picked.len(), 2);
    let seed = out["seed"].as_i64().unwrap();
    let second = cluster().await;
    let mut replay = a;
    replay["seed"] = json!(seed);
    let again = run(&second, &TERMINATE_PODS, replay).await.unwrap();
    assert_eq!(again, out);
    assert!(
        first
            .log
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("seed {seed}")))
    );
}

#[tokio::test(start_paused = true)]
async fn no_selector_picks_random_pods_in_the_namespace() {
    let bed = cluster().await;
    let out = run(&bed, &TERMINATE_PODS, json!({"grace_period": 0}))
        .await
        .unwrap();
    let name = out["pods"][0].as_str().unwrap().to_owned();
    assert!(out["seed"].is_u64());
    assert_eq!(alive(&bed).len(), 3);
    assert!(!alive(&bed).contains(&name));
}

#[tokio::test(start_paused = true)]
async fn limits_refuse_before_anything_is_deleted() {
    let bed = cluster().await;
    let limits = Limits {
        max_targets: Some(1),
        max_percent: None,
    };
    let a = json!({"label_selector": "app=web", "qty": 2, "grace_period": 0});
    let err = run_with(&bed, &TERMINATE_PODS, a, limits)
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "blast radius exceeded: terminate_pods picked 2 pods but squall.limits.max_targets is 1; nothing was terminated"
    );
    let limits = Limits {
        max_targets: None,
        max_percent: Some(50.0),
    };
    let a = json!({"label_selector": "app=web", "all": true});
    assert!(run_with(&bed, &TERMINATE_PODS, a, limits).await.is_err());
    assert_eq!(alive(&bed), ["db-1", "web-1", "web-2", "web-3"]);
}

#[tokio::test(start_paused = true)]
async fn oldest_order_and_validation() {
    let bed = Bed::new();
    make_pod(&bed.client, "z-old", "x", true).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    make_pod(&bed.client, "a-new", "x", true).await;
    let a = json!({"label_selector": "app=x", "order": "oldest", "grace_period": 0});
    assert_eq!(run(&bed, &TERMINATE_PODS, a).await, Ok(json!(["z-old"])));
    let a = json!({"label_selector": "app=x", "order": "newest"});
    assert_eq!(
        run(&bed, &TERMINATE_PODS, a).await,
        Err(ActivityError::failed(
            "Cannot select pods. Order 'newest' is invalid."
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn api_errors_fail_the_activity() {
    let bed = Bed::new();
    let err = run(&bed, &COUNT_PODS, json!({"label_selector": "a in (b"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ActivityError::Failed(ref m) if m.starts_with("Kubernetes API error (400)")),
        "{err:?}"
    );
}

#[test]
fn every_argument_is_documented_and_defaults_parse() {
    for r in crate::ACTIVITIES {
        assert!(!r.spec.doc.is_empty());
        for a in r.spec.args {
            assert!(!a.doc.is_empty(), "{}: {}", r.spec.func, a.name);
            if let Some(d) = a.default {
                assert!(serde_json::from_str::<Value>(d).is_ok(), "{d}");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_delete_stops_and_names_what_was_already_terminated() {
    let bed = cluster().await;
    let ctx = bed.ctx(Limits::default());
    let names = ["web-1".to_owned(), "ghost".to_owned(), "web-2".to_owned()];
    let err = delete_pods(&ctx, "default", &names, 0).await.unwrap_err();
    assert_eq!(
        err.message(),
        "Kubernetes API error (404) NotFound: pods \"ghost\" not found (already terminated: web-1)"
    );
    assert_eq!(alive(&bed), ["db-1", "web-2", "web-3"]);
}
