//! The pod probes, `read_pod_logs` and `terminate_pods` (real and dry) run
//! through their `run` functions against the simulator, on a paused clock.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use squall_core::model::Limits;

use super::*;
use crate::deployment::workload::defaulted;
use crate::testkit::Bed;

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
    (r.run)(bed.ctx(limits), defaulted(r, a)).await
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
async fn count_pods_reads_every_page() {
    // More pods than one page (500): the count follows continue tokens.
    let bed = Bed::new();
    for i in 0..520 {
        make_pod(&bed.client, &format!("p-{i}"), "many", i % 2 == 0).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let count = |a| run(&bed, &COUNT_PODS, a);
    assert_eq!(
        count(json!({"label_selector": "app=many"})).await,
        Ok(json!(520))
    );
    assert_eq!(
        count(json!({"label_selector": "app=many", "phase": "Pending"})).await,
        Ok(json!(260))
    );
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
    for r in crate::PROVIDER.activities {
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

#[tokio::test(start_paused = true)]
async fn dry_terminate_plans_the_same_pick_and_deletes_nothing() {
    let mut bed = cluster().await;
    bed.dry = true;
    let a = json!({"label_selector": "app=web", "rand": true, "qty": 2, "grace_period": 0});
    let plan = run(&bed, &TERMINATE_PODS, a.clone()).await.unwrap();
    assert_eq!(plan["dry"], json!(true));
    assert_eq!(alive(&bed), ["db-1", "web-1", "web-2", "web-3"]);
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    let seed = plan["seed"].as_i64().unwrap();
    let logged = bed.log.0.lock().unwrap().clone();
    assert!(
        logged
            .iter()
            .any(|l| l == &format!("INFO dry run: would {}", changes[0].as_str().unwrap()))
    );
    // The real run with the plan's seed terminates exactly the planned pods.
    bed.dry = false;
    let mut replay = a;
    replay["seed"] = json!(seed);
    let real = run(&bed, &TERMINATE_PODS, replay).await.unwrap();
    let planned: Vec<String> = changes
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap()
                .trim_start_matches("terminate pod default/")
                .to_owned()
        })
        .collect();
    assert_eq!(real["pods"], json!(planned));
}

#[tokio::test(start_paused = true)]
async fn dry_terminate_still_checks_the_limits() {
    let mut bed = cluster().await;
    bed.dry = true;
    let limits = Limits {
        max_targets: Some(1),
        max_percent: None,
    };
    let a = json!({"label_selector": "app=web", "all": true});
    let err = run_with(&bed, &TERMINATE_PODS, a, limits)
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("blast radius exceeded"),
        "{err:?}"
    );
    let plan = run(&bed, &TERMINATE_PODS, json!({"label_selector": "app=db"}))
        .await
        .unwrap();
    assert_eq!(plan["targets"], json!(["pod/default/db-1"]));
    assert!(plan.get("seed").is_none());
    assert_eq!(alive(&bed).len(), 4);
}

#[tokio::test(start_paused = true)]
async fn read_pod_logs_returns_each_pods_log_by_name() {
    let bed = cluster().await;
    let out = run(
        &bed,
        &READ_POD_LOGS,
        json!({"label_selector": "app=web", "last": "10 minutes", "container_name": "c"}),
    )
    .await
    .unwrap();
    let logs = out.as_object().unwrap();
    assert_eq!(logs.keys().collect::<Vec<_>>(), ["web-1", "web-2", "web-3"]);
    assert!(
        logs["web-1"]
            .as_str()
            .unwrap()
            .contains("container c of pod default/web-1")
    );
    // Upstream's default selector with a name: pods labelled name=<name>.
    let none = run(&bed, &READ_POD_LOGS, json!({"name": "web"}))
        .await
        .unwrap();
    assert_eq!(none, json!({}));
    // No name: the `{name}` template is dropped and every pod is read.
    let all = run(
        &bed,
        &READ_POD_LOGS,
        json!({"label_selector": "name in ({name})"}),
    )
    .await
    .unwrap();
    assert_eq!(all.as_object().unwrap().len(), 4);
    let bad = run(&bed, &READ_POD_LOGS, json!({"last": "yesterday-ish"})).await;
    assert!(
        bad.unwrap_err()
            .message()
            .starts_with("cannot understand last")
    );
}

#[tokio::test(start_paused = true)]
async fn all_pods_healthy_looks_at_phases_only() {
    let bed = cluster().await;
    let out = run(&bed, &ALL_PODS_HEALTHY, json!({})).await;
    assert_eq!(out, Err(ActivityError::failed("the system is unhealthy")));
    let quiet = json!({"raise_on_any_unhealthy": false});
    assert_eq!(run(&bed, &ALL_PODS_HEALTHY, quiet).await, Ok(json!(false)));
    assert_eq!(
        run(&bed, &ALL_PODS_HEALTHY, json!({"ns": "kube-public"})).await,
        Ok(json!(true))
    );
    run(
        &bed,
        &TERMINATE_PODS,
        json!({"name_pattern": "web-3", "grace_period": 0}),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        run(&bed, &ALL_PODS_HEALTHY, json!({})).await,
        Ok(json!(true))
    );
}

#[tokio::test(start_paused = true)]
async fn pod_is_not_available_and_count_min_pods() {
    let bed = cluster().await;
    let a = json!({"name": "web", "label_selector": "app={name}"});
    assert_eq!(
        run(&bed, &POD_IS_NOT_AVAILABLE, a).await,
        Err(ActivityError::failed("pod 'web' is actually running"))
    );
    let a = json!({"name": "web", "label_selector": "app={name}", "raise_on_is_available": false});
    assert_eq!(run(&bed, &POD_IS_NOT_AVAILABLE, a).await, Ok(json!(false)));
    let a = json!({"name": "ghost", "label_selector": "app={name}"});
    assert_eq!(run(&bed, &POD_IS_NOT_AVAILABLE, a).await, Ok(json!(true)));
    let min = |n: i64| json!({"label_selector": "app=web", "min_count": n});
    assert_eq!(run(&bed, &COUNT_MIN_PODS, min(2)).await, Ok(json!(true)));
    assert_eq!(run(&bed, &COUNT_MIN_PODS, min(3)).await, Ok(json!(false)));
    let pending = json!({"label_selector": "app=web", "phase": "Pending", "min_count": 1});
    assert_eq!(run(&bed, &COUNT_MIN_PODS, pending).await, Ok(json!(true)));
}
