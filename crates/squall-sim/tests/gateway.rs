//! The demo application's data plane: requests on the gateway, routed by Host
//! header through Ingress or Istio objects to the book's applications, with
//! VirtualService faults, retries and timeouts applied as Envoy applies them.
//! Paused tokio clock: delays and timeouts cost no real time.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use squall_sim::scenario::parse_manifest;
use squall_sim::{Scenario, Sim, SimOptions};

const NS: &str = "go-demo-8";

fn sim(scenario: Scenario) -> Sim {
    Sim::start(SimOptions {
        speed: 20.0,
        scenario,
        ..SimOptions::default()
    })
}

async fn get(sim: &Sim, host: &str, path: &str) -> (u16, String) {
    let req = Request::get(path)
        .header("host", host)
        .body(())
        .expect("request");
    let resp = sim.gateway(req).await;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn api(sim: &Sim, method: &str, path: &str, body: &Value) -> u16 {
    let ct = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(Bytes::from(body.to_string()))
        .expect("request");
    sim.handle(req).await.status().as_u16()
}

/// Waits (bounded) until a request answers 200.
async fn until_ok(sim: &Sim, host: &str, path: &str) {
    common::poll(
        "a 200 from the gateway",
        200,
        Duration::from_millis(100),
        || async { (get(sim, host, path).await.0 == 200).then_some(()) },
    )
    .await;
}

fn vs_path(name: &str) -> String {
    format!("/apis/networking.istio.io/v1alpha3/namespaces/{NS}/virtualservices/{name}")
}

/// Replaces the go-demo-8 VirtualService's route with one carrying `fault`.
async fn fault_go_demo_8(sim: &Sim, fault: Value) {
    let patch = json!({ "spec": { "http": [{
        "fault": fault,
        "route": [{ "destination": { "host": "go-demo-8", "subset": "primary", "port": { "number": 80 } } }]
    }] } });
    assert_eq!(api(sim, "PATCH", &vs_path("go-demo-8"), &patch).await, 200);
}

/// Applies one of the book's repeater VirtualService variants from examples/.
async fn repeater_vs(sim: &Sim, yaml: &str) {
    let doc = parse_manifest(yaml).expect("yaml").remove(0);
    let patch = json!({ "spec": doc["spec"] });
    assert_eq!(api(sim, "PATCH", &vs_path("repeater"), &patch).await, 200);
}

const REPEATER: &str = "repeater.acme.com";
const VIA_REPEATER: &str = "/?addr=http://go-demo-8";

#[tokio::test(start_paused = true)]
async fn ingress_routes_by_host_to_go_demo_8() {
    let sim = sim(Scenario::GoDemo8);
    until_ok(&sim, "go-demo-8.acme.com", "/").await;
    let (status, body) = get(&sim, "go-demo-8.acme.com:80", "/").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "Version: 0.0.1; Release: unknown\n")
    );
    assert_eq!(get(&sim, "other.acme.com", "/").await.0, 404);
}

#[tokio::test(start_paused = true)]
async fn person_needs_a_ready_database() {
    let sim = sim(Scenario::GoDemo8);
    until_ok(&sim, "go-demo-8.acme.com", "/demo/person").await;
    let scale = format!("/apis/apps/v1/namespaces/{NS}/deployments/go-demo-8-db");
    assert_eq!(
        api(&sim, "PATCH", &scale, &json!({ "spec": { "replicas": 0 } })).await,
        200
    );
    let clock = sim.clock();
    let (status, body) = common::poll(
        "the database gone",
        100,
        Duration::from_millis(100),
        || async {
            let r = get(&sim, "go-demo-8.acme.com", "/demo/person").await;
            (r.0 != 200).then_some(r)
        },
    )
    .await;
    assert_eq!((status, body.as_str()), (500, "no reachable servers\n"));
    // It waited for a server first (5 s), longer than the book's 3 s probe timeout.
    let start = clock.now();
    assert_eq!(get(&sim, "go-demo-8.acme.com", "/demo/person").await.0, 500);
    assert!(clock.now() - start >= Duration::from_secs(5));
    assert_eq!(
        api(&sim, "PATCH", &scale, &json!({ "spec": { "replicas": 1 } })).await,
        200
    );
    until_ok(&sim, "go-demo-8.acme.com", "/demo/person").await;
}

#[tokio::test(start_paused = true)]
async fn abort_fault_at_100_percent_returns_its_status() {
    let sim = sim(Scenario::GoDemo8Istio);
    until_ok(&sim, REPEATER, VIA_REPEATER).await;
    let (status, body) = get(&sim, REPEATER, VIA_REPEATER).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "Version: 0.0.1; Release: unknown\n")
    );
    fault_go_demo_8(
        &sim,
        json!({ "abort": { "httpStatus": 500, "percentage": { "value": 100 } } }),
    )
    .await;
    let (status, body) = get(&sim, REPEATER, VIA_REPEATER).await;
    assert_eq!((status, body.as_str()), (500, "fault filter abort"));
}

#[tokio::test(start_paused = true)]
async fn retries_on_the_repeater_route_hide_a_50_percent_abort() {
    let sim = sim(Scenario::GoDemo8Istio);
    until_ok(&sim, REPEATER, VIA_REPEATER).await;
    fault_go_demo_8(
        &sim,
        json!({ "abort": { "httpStatus": 500, "percentage": { "value": 50 } } }),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&sim, REPEATER, VIA_REPEATER).await.0);
    }
    assert!(
        statuses.contains(&500) && statuses.contains(&200),
        "{statuses:?}"
    );
    repeater_vs(
        &sim,
        include_str!("../../../examples/go-demo-8/network/istio-repeater.yaml"),
    )
    .await;
    for _ in 0..20 {
        assert_eq!(get(&sim, REPEATER, VIA_REPEATER).await.0, 200);
    }
}

#[tokio::test(start_paused = true)]
async fn retries_in_the_faulted_route_itself_do_not_hide_its_aborts() {
    // Envoy's fault filter runs before the router: a route's own retries never
    // see its injected aborts.
    let sim = sim(Scenario::GoDemo8Istio);
    until_ok(&sim, "go-demo-8.acme.com", "/").await;
    let patch = json!({ "spec": { "http": [{
        "fault": { "abort": { "httpStatus": 503, "percentage": { "value": 100 } } },
        "retries": { "attempts": 10, "retryOn": "5xx" },
        "route": [{ "destination": { "host": "go-demo-8" } }]
    }] } });
    assert_eq!(api(&sim, "PATCH", &vs_path("go-demo-8"), &patch).await, 200);
    assert_eq!(
        get(&sim, "go-demo-8.acme.com", "/").await,
        (503, "fault filter abort".into())
    );
}

#[tokio::test(start_paused = true)]
async fn delay_beyond_the_route_timeout_gives_504() {
    let sim = sim(Scenario::GoDemo8Istio);
    until_ok(&sim, REPEATER, VIA_REPEATER).await;
    repeater_vs(
        &sim,
        include_str!("../../../examples/go-demo-8/network/istio-delay.yaml"),
    )
    .await;
    fault_go_demo_8(
        &sim,
        json!({ "delay": { "fixedDelay": "15s", "percentage": { "value": 100 } } }),
    )
    .await;
    let clock = sim.clock();
    let start = clock.now();
    let (status, body) = get(&sim, REPEATER, VIA_REPEATER).await;
    let took = clock.now() - start;
    assert_eq!((status, body.as_str()), (504, "upstream request timeout"));
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn limiter_refuses_after_the_burst_and_cools_down() {
    let sim = sim(Scenario::GoDemo8Istio);
    until_ok(&sim, "go-demo-8.acme.com", "/").await;
    // Two replicas (HPA minimum), round robin: a burst of 10 each.
    common::eventually("two ready replicas", || async {
        let ready = sim
            .list("discovery.k8s.io", "endpointslices", Some(NS))
            .iter()
            .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "go-demo-8")
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (ready == 2).then_some(())
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..22 {
        statuses.push(get(&sim, "go-demo-8.acme.com", "/limiter").await);
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|(s, b)| *s == 200 && b == "Everything is OK\n")
    );
    assert_eq!(statuses[20], (429, "Internal Server Error\n".into()));
    // Tokens come back at 5/s, but the 15 s cool-down still refuses.
    sim.clock().sleep(Duration::from_secs(5)).await;
    assert_eq!(get(&sim, "go-demo-8.acme.com", "/limiter").await.0, 429);
    sim.clock().sleep(Duration::from_secs(16)).await;
    assert_eq!(get(&sim, "go-demo-8.acme.com", "/limiter").await.0, 200);
    // Through the repeater, the limiter's answer comes back as it is.
    let (status, body) = get(&sim, REPEATER, "/?addr=http://go-demo-8.go-demo-8/limiter").await;
    assert_eq!((status, body.as_str()), (200, "Everything is OK\n"));
}

#[tokio::test(start_paused = true)]
async fn services_without_ready_endpoints_answer_503() {
    let sim = sim(Scenario::GoDemo8Istio);
    until_ok(&sim, REPEATER, VIA_REPEATER).await;
    let svc = json!({ "metadata": { "name": "ghost" }, "spec": {
        "selector": { "app": "ghost" }, "ports": [{ "port": 80, "targetPort": 8080 }] } });
    assert_eq!(
        api(
            &sim,
            "POST",
            &format!("/api/v1/namespaces/{NS}/services"),
            &svc
        )
        .await,
        201
    );
    // Repeater → ghost through the sidecar: Envoy's local reply, passed back.
    let (status, body) = get(&sim, REPEATER, "/?addr=http://ghost").await;
    assert_eq!((status, body.as_str()), (503, "no healthy upstream"));
    // An unknown name is a DNS failure inside the repeater.
    let (status, body) = get(&sim, REPEATER, "/?addr=http://nowhere/x").await;
    assert_eq!(status, 500);
    assert!(body.contains("no such host"), "{body}");
    // The same through a plain Ingress: nginx's 503 page.
    let ing = json!({ "metadata": { "name": "ghost" }, "spec": { "rules": [{ "host": "ghost.acme.com",
        "http": { "paths": [{ "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": "ghost", "port": { "number": 80 } } } }] } }] } });
    let path = format!("/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses");
    assert_eq!(api(&sim, "POST", &path, &ing).await, 201);
    let (status, body) = get(&sim, "ghost.acme.com", "/").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("503 Service Temporarily Unavailable"),
        "{body}"
    );
}

#[tokio::test(start_paused = true)]
async fn scenarios_load_the_books_objects() {
    let sim = sim(Scenario::GoDemo8);
    for (group, plural, name) in [
        ("apps", "deployments", "go-demo-8"),
        ("apps", "deployments", "go-demo-8-db"),
        ("", "services", "go-demo-8"),
        ("", "services", "go-demo-8-db"),
        ("networking.k8s.io", "ingresses", "go-demo-8"),
        ("autoscaling", "horizontalpodautoscalers", "go-demo-8"),
    ] {
        assert!(
            sim.get(group, plural, NS, name).is_some(),
            "{plural}/{name}"
        );
    }
    assert!(
        sim.get("networking.istio.io", "virtualservices", NS, "repeater")
            .is_none()
    );
    // The HPA holds two replicas of the API.
    common::eventually("two go-demo-8 pods", || async {
        let pods = sim.list("", "pods", Some(NS));
        let api = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "go-demo-8")
            .count();
        (api == 2).then_some(())
    })
    .await;

    let sim = self::sim(Scenario::GoDemo8Istio);
    let pdb = sim
        .get(
            "policy",
            "poddisruptionbudgets",
            "istio-system",
            "ingressgateway",
        )
        .expect("pdb");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let ns = sim.get("", "namespaces", "", NS).expect("namespace");
    assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
    for (plural, name) in [
        ("virtualservices", "repeater"),
        ("gateways", "go-demo-8"),
        ("destinationrules", "go-demo-8"),
    ] {
        assert!(
            sim.get("networking.istio.io", plural, NS, name).is_some(),
            "{plural}/{name}"
        );
    }
}

#[tokio::test]
async fn serves_http_on_loopback_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = Sim::start(SimOptions {
        speed: 50.0,
        scenario: Scenario::GoDemo8,
        ..SimOptions::default()
    });
    let wide = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let refused = sim
        .clone()
        .serve_gateway(wide, std::future::pending())
        .await;
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::InvalidInput)
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim.clone().serve_gateway(listener, async {
        let _ = stopped.await;
    }));
    let mut answer = String::new();
    for _ in 0..100 {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET / HTTP/1.1\r\nHost: go-demo-8.acme.com\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        answer.clear();
        conn.read_to_string(&mut answer).await.expect("read");
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("Version: 0.0.1; Release: unknown\n"),
        "{answer}"
    );
    let _ = stop.send(());
    assert!(server.await.expect("join").is_ok());
}

#[tokio::test(start_paused = true)]
async fn istio_routes_need_a_ready_ingress_gateway_pod() {
    let sim = sim(Scenario::GoDemo8Istio);
    until_ok(&sim, "go-demo-8.acme.com", "/").await;
    let hpa = "/apis/autoscaling/v2/namespaces/istio-system/horizontalpodautoscalers/istio-ingressgateway";
    assert_eq!(api(&sim, "DELETE", hpa, &json!({})).await, 200);
    let deploy = "/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway";
    assert_eq!(
        api(&sim, "PATCH", deploy, &json!({ "spec": { "replicas": 0 } })).await,
        200
    );
    let req = || {
        Request::get("/")
            .header("host", "go-demo-8.acme.com")
            .body(())
    };
    let resp = common::poll(
        "the gateway gone",
        100,
        Duration::from_millis(100),
        || async {
            let resp = sim.gateway(req().expect("request")).await;
            (resp.status() == 503).then_some(resp)
        },
    )
    .await;
    let reason = resp.headers().get("x-squall-sim-reason").expect("reason");
    assert!(
        reason
            .to_str()
            .is_ok_and(|r| r.contains("Gateway go-demo-8/go-demo-8"))
    );
    // Back to one replica: traffic flows again.
    assert_eq!(
        api(&sim, "PATCH", deploy, &json!({ "spec": { "replicas": 1 } })).await,
        200
    );
    until_ok(&sim, "go-demo-8.acme.com", "/").await;
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_fault_outcomes() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = sim(Scenario::GoDemo8Istio);
        until_ok(&sim, REPEATER, VIA_REPEATER).await;
        fault_go_demo_8(
            &sim,
            json!({ "abort": { "httpStatus": 500, "percentage": { "value": 50 } } }),
        )
        .await;
        let mut statuses = Vec::new();
        for _ in 0..16 {
            statuses.push(get(&sim, REPEATER, VIA_REPEATER).await.0);
        }
        runs.push(statuses);
    }
    assert!(
        runs[0].contains(&200) && runs[0].contains(&500),
        "{:?}",
        runs[0]
    );
    assert_eq!(runs[0], runs[1]);
}
