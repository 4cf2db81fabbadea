//! Tests of Table negotiation, the printers' cells and ages, and Table
//! answers through the API entry point.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::columns::Printer;
use super::{age, human, parse_time, wanted};
use crate::sim::{Sim, SimOptions};

const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn accept(v: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::ACCEPT, HeaderValue::from_str(v).unwrap());
    h
}

#[test]
fn negotiates_tables_like_the_apiserver() {
    assert_eq!(wanted(&accept(KUBECTL_ACCEPT)), Some("v1"));
    assert_eq!(
        wanted(&accept("application/json;as=Table;v=v1beta1;g=meta.k8s.io")),
        Some("v1beta1")
    );
    assert_eq!(wanted(&accept("application/json, */*")), None);
    assert_eq!(wanted(&HeaderMap::new()), None);
    // A plain type listed first wins; a Table in protobuf is skipped.
    assert_eq!(
        wanted(&accept(
            "application/json,application/json;as=Table;v=v1;g=meta.k8s.io"
        )),
        None
    );
    assert_eq!(
        wanted(&accept(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io"
        )),
        Some("v1")
    );
}

#[test]
fn ages_read_as_human_durations() {
    let cases = [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (185, "3m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 120, "3h2m"),
        (10 * 3600, "10h"),
        (50 * 3600, "2d2h"),
        (9 * 86_400, "9d"),
        (800 * 86_400, "2y70d"),
        (3000 * 86_400, "8y"),
    ];
    for (secs, text) in cases {
        assert_eq!(human(secs), text, "{secs} s");
    }
    let t = parse_time("2024-02-29T23:59:59Z").unwrap();
    assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_709_251_199));
    assert_eq!(parse_time("2024-02-29T23:59:59.123456Z"), Some(t));
    assert_eq!(parse_time("yesterday"), None);
    assert_eq!(age(t + Duration::from_secs(65), t), "65s");
    assert_eq!(age(t, t + Duration::from_secs(1)), "0s");
    assert_eq!(age(t, t + Duration::from_secs(60)), "<invalid>");
}

fn cells(printer: Printer, o: &Value) -> Vec<Value> {
    printer.cells(o, &|at: &str| format!("age({at})"))
}

fn pod(status: Value) -> Value {
    json!({
        "metadata": { "name": "web-1", "creationTimestamp": "T0" },
        "spec": { "nodeName": "node-2", "containers": [{ "name": "a" }, { "name": "b" }] },
        "status": status,
    })
}

fn running(ready: bool) -> Value {
    json!({ "ready": ready, "restartCount": 0, "state": { "running": {} } })
}

#[test]
fn pod_rows_follow_kubectls_status_rules() {
    let ok = pod(json!({ "phase": "Running", "podIP": "10.0.0.7",
        "containerStatuses": [running(true), running(true)] }));
    assert_eq!(
        cells(Printer::Pod, &ok),
        json!([
            "web-1", "2/2", "Running", "0", "age(T0)", "10.0.0.7", "node-2", "<none>", "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let status = |p: &Value| cells(Printer::Pod, p)[2].clone();
    let creating = pod(json!({ "phase": "Pending", "containerStatuses": [
        { "ready": false, "restartCount": 0, "state": { "waiting": { "reason": "ContainerCreating" } } }] }));
    assert_eq!(status(&creating), "ContainerCreating");
    assert_eq!(status(&pod(json!({ "phase": "Pending" }))), "Pending");
    let crash = pod(
        json!({ "phase": "Running", "containerStatuses": [running(true),
        { "ready": false, "restartCount": 4, "state": { "waiting": { "reason": "CrashLoopBackOff" } },
          "lastState": { "terminated": { "finishedAt": "T9" } } }] }),
    );
    assert_eq!(status(&crash), "CrashLoopBackOff");
    assert_eq!(cells(Printer::Pod, &crash)[1], "1/2");
    assert_eq!(cells(Printer::Pod, &crash)[3], "4 (age(T9) ago)");
    let done = pod(json!({ "phase": "Succeeded", "containerStatuses": [
        { "ready": false, "restartCount": 0, "state": { "terminated": { "reason": "Completed", "exitCode": 0 } } }] }));
    assert_eq!(status(&done), "Completed");
    let failed = pod(json!({ "phase": "Failed", "containerStatuses": [
        { "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": 3 } } }] }));
    assert_eq!(status(&failed), "ExitCode:3");
    let init = pod(json!({ "phase": "Pending", "initContainerStatuses": [
        { "restartCount": 0, "state": { "waiting": { "reason": "PodInitializing" } } }] }));
    assert_eq!(status(&init), "Init:0/0");
    let mut leaving = ok.clone();
    leaving["metadata"]["deletionTimestamp"] = json!("T5");
    assert_eq!(status(&leaving), "Terminating");
}

#[test]
fn node_rows() {
    let mut node = json!({
        "metadata": { "name": "node-1", "creationTimestamp": "T0",
            "labels": { "node-role.kubernetes.io/control-plane": "" } },
        "spec": {},
        "status": { "conditions": [{ "type": "Ready", "status": "True" }],
            "addresses": [{ "type": "InternalIP", "address": "172.18.0.2" }],
            "nodeInfo": { "kubeletVersion": "v1.33.0", "osImage": "sim" } },
    });
    let row = cells(Printer::Node, &node);
    assert_eq!(
        row[1..5],
        [
            json!("Ready"),
            json!("control-plane"),
            json!("age(T0)"),
            json!("v1.33.0")
        ]
    );
    assert_eq!(
        row[5..],
        [
            json!("172.18.0.2"),
            json!("<none>"),
            json!("sim"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );
    node["spec"]["unschedulable"] = json!(true);
    node["status"]["conditions"][0]["status"] = json!("Unknown");
    assert_eq!(cells(Printer::Node, &node)[1], "Unknown,SchedulingDisabled");
}

#[test]
fn deployment_rows() {
    let deploy = json!({
        "metadata": { "name": "web", "creationTimestamp": "T0" },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web" },
            "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["a", "b"] }] },
            "template": { "spec": { "containers": [{ "name": "web", "image": "nginx" }, { "name": "log", "image": "busybox" }] } } },
        "status": { "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2 },
    });
    assert_eq!(
        cells(Printer::Deployment, &deploy)[1..],
        [
            json!("2/3"),
            json!(3),
            json!(2),
            json!("age(T0)"),
            json!("web,log"),
            json!("nginx,busybox"),
            json!("app=web,tier in (a,b)")
        ]
    );
}

#[test]
fn service_and_default_rows() {
    let svc = json!({
        "metadata": { "name": "web", "creationTimestamp": "T0" },
        "spec": { "type": "NodePort", "clusterIP": "10.96.0.9", "selector": { "app": "web" },
            "ports": [{ "port": 80, "nodePort": 30080 }, { "port": 53, "protocol": "UDP" }] },
    });
    assert_eq!(
        cells(Printer::Service, &svc)[1..],
        [
            json!("NodePort"),
            json!("10.96.0.9"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("age(T0)"),
            json!("app=web")
        ]
    );
    let lb = json!({ "metadata": { "name": "lb" }, "spec": { "type": "LoadBalancer" } });
    assert_eq!(cells(Printer::Service, &lb)[3], "<pending>");
    let other = json!({ "metadata": { "name": "cm", "creationTimestamp": "T0" } });
    assert_eq!(
        cells(Printer::Default, &other),
        [json!("cm"), json!("age(T0)")]
    );
}

#[test]
fn pod_columns_hide_the_wide_ones_by_priority() {
    let names: Vec<Value> = Printer::Pod
        .columns()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        names[..5],
        [
            json!("Name"),
            json!("Ready"),
            json!("Status"),
            json!("Restarts"),
            json!("Age")
        ]
    );
    let wide: Vec<Value> = Printer::Pod
        .columns()
        .into_iter()
        .filter(|c| c["priority"] == 1)
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        wide,
        [
            json!("IP"),
            json!("Node"),
            json!("Nominated Node"),
            json!("Readiness Gates")
        ]
    );
}

async fn get(sim: &Sim, path: &str, accept: &str) -> (u16, Value) {
    let req = Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Bytes::new())
        .unwrap();
    let resp = crate::api::handle(sim.shared(), req).await;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn lists_and_gets_answer_tables_with_the_requested_objects() {
    let sim = Sim::start(SimOptions {
        nodes: 2,
        ..SimOptions::default()
    });
    let (code, t) = get(&sim, "/api/v1/nodes?limit=1", KUBECTL_ACCEPT).await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    assert_eq!(t["columnDefinitions"][1]["name"], "Status");
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    assert!(t["metadata"]["continue"].is_string(), "{t}");
    let row = &t["rows"][0];
    assert_eq!(row["cells"][0], "node-1");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["name"], "node-1");
    assert!(row["object"].get("spec").is_none());

    let (_, t) = get(
        &sim,
        "/api/v1/nodes/node-2?includeObject=Object",
        KUBECTL_ACCEPT,
    )
    .await;
    assert_eq!(t["rows"][0]["object"]["kind"], "Node");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "v1");
    let (_, t) = get(
        &sim,
        "/api/v1/nodes/node-2?includeObject=None",
        KUBECTL_ACCEPT,
    )
    .await;
    assert!(t["rows"][0].get("object").is_none(), "{t}");
    let (code, t) = get(&sim, "/api/v1/nodes?includeObject=All", KUBECTL_ACCEPT).await;
    assert_eq!((code, t["kind"].as_str()), (400, Some("Status")));

    let (_, plain) = get(&sim, "/api/v1/nodes", "application/json").await;
    assert_eq!(plain["kind"], "NodeList");
    let (code, _) = get(&sim, "/api/v1/nodes/nope", KUBECTL_ACCEPT).await;
    assert_eq!(code, 404);
}
