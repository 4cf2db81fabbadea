//! Hostile input: odd JSON shapes, bad content types and malformed requests
//! get Status errors, never a panic, and the controllers keep working after
//! objects with strange shapes were stored.

mod common;

use bytes::Bytes;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

async fn call(
    sim: &squall_sim::Sim,
    method: &str,
    uri: &str,
    ct: &str,
    body: &str,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ct)
        .body(Bytes::from(body.to_string()))
        .expect("request");
    let resp = sim.handle(req).await;
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

/// (method, uri, content type, body, expected code).
const CASES: &[(&str, &str, &str, &str, u16)] = &[
    ("POST", CMS, JSON, "[]", 400),
    ("POST", CMS, JSON, "null", 400),
    ("POST", CMS, JSON, "\"text\"", 400),
    ("POST", CMS, JSON, r#"{"metadata":"x"}"#, 422),
    (
        "POST",
        CMS,
        JSON,
        r#"{"kind":"Secret","metadata":{"name":"a"}}"#,
        400,
    ),
    (
        "POST",
        CMS,
        "application/vnd.kubernetes.protobuf",
        "k8s\0",
        415,
    ),
    (
        "PATCH",
        "/api/v1/namespaces/default/configmaps/none",
        MERGE,
        "{}",
        404,
    ),
    ("PATCH", "/api/v1/nodes/node-1", JSON_PATCH, "{}", 400),
    (
        "PATCH",
        "/api/v1/nodes/node-1",
        JSON_PATCH,
        r#"[{"op":"remove","path":"/nope/x"}]"#,
        422,
    ),
    ("PATCH", "/api/v1/nodes/node-1", "text/plain", "{}", 415),
    ("DELETE", "/api/v1/nodes/node-1", JSON, "{not json", 400),
    (
        "GET",
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion=abc",
        JSON,
        "",
        400,
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods?labelSelector=a%20b",
        JSON,
        "",
        400,
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods?continue=zz",
        JSON,
        "",
        400,
    ),
    ("GET", "/api/v1/widgets", JSON, "", 404),
    ("GET", "/apis/apps/v9/deployments", JSON, "", 404),
    (
        "GET",
        "/api/v1/namespaces/default/nodes/node-1",
        JSON,
        "",
        404,
    ),
    (
        "PUT",
        "/api/v1/namespaces/default/pods/p/eviction",
        JSON,
        "{}",
        405,
    ),
    (
        "POST",
        "/api/v1/namespaces/default/pods/p/eviction",
        JSON,
        r#"{"metadata":{"name":"q"}}"#,
        400,
    ),
];

#[tokio::test]
async fn malformed_requests_get_status_errors() {
    let sim = common::sim();
    for (method, uri, ct, body, want) in CASES {
        let (code, status) = call(&sim, method, uri, ct, body).await;
        assert_eq!(code, *want, "{method} {uri} {body}: {status}");
        assert_eq!(status["kind"], "Status", "{method} {uri}");
        assert_eq!(status["code"], json!(want));
    }
}

#[tokio::test]
async fn odd_shapes_do_not_stop_the_controllers() {
    let sim = common::sim();
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let odd = json!({ "metadata": { "name": "odd", "annotations": "x" }, "spec": {
        "selector": { "matchLabels": "x", "matchExpressions": [{ "key": "app", "operator": "In", "values": ["odd"] }] },
        "template": { "metadata": { "labels": { "app": "odd" } }, "spec": { "containers": [{ "name": "c", "image": "i" }] } } } });
    let (code, _) = call(&sim, "POST", deploys, "application/json", &odd.to_string()).await;
    assert_eq!(code, 201);
    let (code, _) = call(
        &sim,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]},"status":"x"}"#,
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = call(
        &sim,
        "PUT",
        "/api/v1/namespaces/default/pods/p/status",
        "application/json",
        r#"{"status":[1,2]}"#,
    )
    .await;
    assert_eq!(code, 200);

    let client = common::client(&sim);
    Api::<Deployment>::default_namespaced(client.clone())
        .create(&PostParams::default(), &common::deployment("web", 2))
        .await
        .expect("create");
    let pods: Api<Pod> = Api::default_namespaced(client);
    common::eventually("controllers still reconcile", || async {
        let l = pods
            .list(&ListParams::default().labels("app in (web,odd)"))
            .await
            .ok()?;
        let ready = l
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|c| c.iter().all(|c| c.ready))
            })
            .count();
        (ready == 3).then_some(())
    })
    .await;
    let p = pods.get("p").await.expect("pod p");
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"));
}
