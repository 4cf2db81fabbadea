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

/// A raw HTTP/1.1 exchange with a served simulator: the status line's code
/// and the body.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

async fn served() -> (squall_sim::Sim, std::net::SocketAddr) {
    let sim = common::sim();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(sim.clone().serve(listener));
    (sim, addr)
}

#[tokio::test]
async fn a_body_over_the_apiservers_limit_is_refused_with_413() {
    let (_sim, addr) = served().await;
    let big = "x".repeat(squall_sim::MAX_BODY + 1);
    let body = format!(r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{big}"}}}}"#);
    let req = format!(
        "POST {CMS} HTTP/1.1\r\nhost: x\r\ncontent-type: {JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (code, body) = raw(addr, req.as_bytes()).await;
    assert_eq!(code, 413);
    assert!(
        body.contains("Request entity too large: limit is 3145728"),
        "{body}"
    );
    // Still serving.
    let (code, _) = raw(
        addr,
        b"GET /version HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn unknown_methods_get_405_and_a_status_body() {
    let sim = common::sim();
    for (method, uri) in [
        ("FOO", CMS),
        ("FOO", "/version"),
        ("POST", "/version"),
        ("DELETE", "/api"),
    ] {
        let (code, body) = call(&sim, method, uri, JSON, "").await;
        assert_eq!(code, 405, "{method} {uri}");
        assert_eq!(body["kind"], "Status", "{method} {uri}: {body}");
        assert_eq!(body["reason"], "MethodNotAllowed");
    }
}

#[tokio::test]
async fn bad_selectors_get_the_apiservers_400() {
    let sim = common::sim();
    let (code, body) = call(
        &sim,
        "GET",
        &format!("{CMS}?fieldSelector=bogus%3Dx"),
        JSON,
        "",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["message"], "field label not supported: bogus");
    let (code, body) = call(
        &sim,
        "GET",
        &format!("{CMS}?labelSelector=a%3D(b"),
        JSON,
        "",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("a valid label must be an empty string")
    );
    let (code, _) = call(
        &sim,
        "GET",
        &format!("{CMS}?fieldSelector=metadata.name%3Dx"),
        JSON,
        "",
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_huge_watch_timeout_is_clamped_not_a_crash() {
    let (_sim, addr) = served().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {CMS}?watch=true&timeoutSeconds=18446744073709551615 HTTP/1.1\r\nhost: x\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.expect("a response");
    assert_eq!(&head[9..12], b"200");
    let (code, _) = raw(
        addr,
        b"GET /version HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 200, "the sandbox keeps serving");
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed() {
    use tokio::io::AsyncReadExt;
    let (_sim, addr) = served().await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = Vec::new();
    // The paused clock runs ahead to the header timeout; the server closes.
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(120), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the half-open connection was never closed");
}
