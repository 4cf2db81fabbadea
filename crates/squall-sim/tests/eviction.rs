//! The eviction subresource with PodDisruptionBudgets, through kube::Client:
//! 201 while the budget allows, then the apiserver's exact 429 with a
//! `DisruptionBudget` cause; percentages; and the multi-PDB 500 Status.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, EvictParams, ListParams, PostParams};
use serde_json::json;

fn pdb(name: &str, budget: serde_json::Value) -> PodDisruptionBudget {
    let mut spec = json!({ "selector": { "matchLabels": { "app": "web" } } });
    for (k, v) in budget.as_object().expect("object") {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).expect("pdb")
}

/// Creates `web` with 3 replicas and waits until all are Ready; returns pod names.
async fn ready_web(client: &Client) -> Vec<String> {
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &common::deployment("web", 3))
        .await
        .expect("deployment");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    common::eventually("3 ready web pods", || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let ready = l.items.iter().filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        let names: Vec<String> = ready.filter_map(|p| p.metadata.name.clone()).collect();
        (names.len() == 3).then_some(names)
    })
    .await
}

/// Checks the apiserver's exact PDB refusal: 429, message, `DisruptionBudget` cause.
fn assert_budget_refusal(err: kube::Error, cause_message: &str) {
    let kube::Error::Api(s) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        s.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &s.details.as_ref().expect("details").causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(cause.message, cause_message);
}

#[tokio::test]
async fn eviction_succeeds_until_the_budget_is_spent() {
    let sim = common::sim();
    let client = common::client(&sim);
    let names = ready_web(&client).await;
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
    pdbs.create(
        &PostParams::default(),
        &pdb("web-pdb", json!({ "minAvailable": 2 })),
    )
    .await
    .expect("pdb");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    let ok = pods
        .evict(&names[0], &EvictParams::default())
        .await
        .expect("first eviction allowed");
    assert!(ok.is_success());
    assert_eq!(ok.code, 201);
    let evicted = pods
        .get(&names[0])
        .await
        .expect("terminating pod still there");
    assert!(evicted.metadata.deletion_timestamp.is_some());
    let conds = evicted
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        conds.iter().any(|c| c.type_ == "DisruptionTarget"
            && c.reason.as_deref() == Some("EvictionByEvictionAPI"))
    );

    let err = pods
        .evict(&names[1], &EvictParams::default())
        .await
        .expect_err("budget spent");
    assert_budget_refusal(
        err,
        "The disruption budget web-pdb needs 2 healthy pods and has 2 currently",
    );

    // The PDB status reflects the same arithmetic.
    let status = common::eventually("pdb status", || async {
        let s = pdbs.get("web-pdb").await.ok()?.status?;
        (s.desired_healthy == 2).then_some(s)
    })
    .await;
    assert_eq!(status.disruptions_allowed, 0);

    // A missing pod is a 404, which drain treats as done.
    let kube::Error::Api(s) = pods
        .evict("nope", &EvictParams::default())
        .await
        .expect_err("404")
    else {
        panic!("api error")
    };
    assert_eq!(s.code, 404);
}

#[tokio::test]
async fn max_unavailable_percent_and_multiple_budgets() {
    let sim = common::sim();
    let client = common::client(&sim);
    let names = ready_web(&client).await;
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    // 34% of 3 rounds up to 2 unavailable: two evictions pass, the third is refused.
    pdbs.create(
        &PostParams::default(),
        &pdb("web-pct", json!({ "maxUnavailable": "34%" })),
    )
    .await
    .expect("pdb");
    pods.evict(&names[0], &EvictParams::default())
        .await
        .expect("first");
    pods.evict(&names[1], &EvictParams::default())
        .await
        .expect("second");
    let kube::Error::Api(s) = pods
        .evict(&names[2], &EvictParams::default())
        .await
        .expect_err("third")
    else {
        panic!("api error")
    };
    assert_eq!(s.code, 429);
    assert_eq!(
        s.details.expect("details").causes[0].message,
        "The disruption budget web-pct needs 1 healthy pods and has 1 currently"
    );

    pdbs.create(
        &PostParams::default(),
        &pdb("web-2", json!({ "minAvailable": 0 })),
    )
    .await
    .expect("second pdb");
    let resp = pods.evict(&names[2], &EvictParams::default()).await;
    match resp {
        Err(kube::Error::Api(s)) => assert!(
            s.message.contains("more than one PodDisruptionBudget"),
            "{}",
            s.message
        ),
        Ok(s) => panic!("expected a failure status, got {s:?}"),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}
