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

#[test]
fn workload_rows() {
    let template = json!({ "spec": { "containers": [{ "name": "web", "image": "nginx" }] } });
    let rs = json!({
        "metadata": { "name": "web-5d", "creationTimestamp": "T0" },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web" } }, "template": template },
        "status": { "replicas": 3, "readyReplicas": 2 },
    });
    assert_eq!(
        cells(Printer::ReplicaSet, &rs)[1..],
        [
            json!(3),
            json!(3),
            json!(2),
            json!("age(T0)"),
            json!("web"),
            json!("nginx"),
            json!("app=web")
        ]
    );
    let sts = json!({ "metadata": { "name": "db" }, "spec": { "replicas": 2, "template": template },
        "status": { "readyReplicas": 1 } });
    assert_eq!(cells(Printer::StatefulSet, &sts)[1], "1/2");
    assert_eq!(cells(Printer::StatefulSet, &sts).len(), 5);
    let ds = json!({ "metadata": { "name": "agent" }, "spec": { "template": template },
        "status": { "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 3,
            "updatedNumberScheduled": 3, "numberAvailable": 2 } });
    assert_eq!(
        cells(Printer::DaemonSet, &ds)[1..7],
        [
            json!(3),
            json!(3),
            json!(3),
            json!(3),
            json!(2),
            json!("<none>")
        ]
    );
}

#[test]
fn job_and_cronjob_rows() {
    let job = json!({
        "metadata": { "name": "pi", "creationTimestamp": "T0" },
        "spec": { "completions": 1, "parallelism": 1, "template": { "spec": { "containers": [] } } },
        "status": { "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:42Z",
            "succeeded": 1, "conditions": [{ "type": "Complete", "status": "True" }] },
    });
    assert_eq!(
        cells(Printer::Job, &job)[1..5],
        [
            json!("Complete"),
            json!("1/1"),
            json!("42s"),
            json!("age(T0)")
        ]
    );
    let running = json!({ "metadata": { "name": "x" }, "spec": { "parallelism": 3 },
        "status": { "startTime": "T1" } });
    assert_eq!(
        cells(Printer::Job, &running)[1..4],
        [json!("Running"), json!("0/1 of 3"), json!("age(T1)")]
    );
    let cj = json!({
        "metadata": { "name": "tick", "creationTimestamp": "T0" },
        "spec": { "schedule": "*/1 * * * *", "suspend": false,
            "jobTemplate": { "spec": { "template": { "spec": { "containers": [{ "name": "t", "image": "busybox" }] } } } } },
    });
    assert_eq!(
        cells(Printer::CronJob, &cj)[1..9],
        [
            json!("*/1 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(0),
            json!("<none>"),
            json!("age(T0)"),
            json!("t"),
            json!("busybox")
        ]
    );
}

#[test]
fn hpa_and_pdb_rows() {
    let hpa = json!({
        "metadata": { "name": "api", "creationTimestamp": "T0" },
        "spec": { "scaleTargetRef": { "kind": "Deployment", "name": "api" }, "minReplicas": 2, "maxReplicas": 6,
            "metrics": [
                { "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } } },
                { "type": "Resource", "resource": { "name": "memory", "target": { "type": "AverageValue", "averageValue": "100Mi" } } } ] },
        "status": { "currentReplicas": 2 },
    });
    assert_eq!(
        cells(Printer::Hpa, &hpa)[1..],
        [
            json!("Deployment/api"),
            json!("cpu: <unknown>/80%, memory: <unknown>/100Mi"),
            json!("2"),
            json!(6),
            json!(2),
            json!("age(T0)")
        ]
    );
    let v1 = json!({ "metadata": { "name": "old" }, "spec": { "scaleTargetRef": { "kind": "Deployment", "name": "x" },
        "maxReplicas": 3, "targetCPUUtilizationPercentage": 50 }, "status": { "currentCPUUtilizationPercentage": 10 } });
    assert_eq!(cells(Printer::Hpa, &v1)[2], "cpu: 10%/50%");
    assert_eq!(cells(Printer::Hpa, &v1)[3], "<unset>");
    let pdb = json!({ "metadata": { "name": "db", "creationTimestamp": "T0" },
        "spec": { "minAvailable": "50%" }, "status": { "disruptionsAllowed": 1 } });
    assert_eq!(
        cells(Printer::Pdb, &pdb)[1..],
        [json!("50%"), json!("N/A"), json!(1), json!("age(T0)")]
    );
}

#[test]
fn core_rows() {
    let meta = json!({ "name": "x", "creationTimestamp": "T0" });
    let ns = json!({ "metadata": meta, "status": { "phase": "Active" } });
    assert_eq!(
        cells(Printer::Namespace, &ns),
        [json!("x"), json!("Active"), json!("age(T0)")]
    );
    let cm = json!({ "metadata": meta, "data": { "a": "1", "b": "2" }, "binaryData": { "c": "" } });
    assert_eq!(cells(Printer::ConfigMap, &cm)[1], 3);
    let secret = json!({ "metadata": meta, "type": "Opaque", "data": { "k": "dg==" } });
    assert_eq!(
        cells(Printer::Secret, &secret)[1..3],
        [json!("Opaque"), json!(1)]
    );
    let sa = json!({ "metadata": meta });
    assert_eq!(cells(Printer::ServiceAccount, &sa)[1], 0);
    let ep = json!({ "metadata": meta, "subsets": [{
        "addresses": [{ "ip": "10.0.0.1" }, { "ip": "10.0.0.2" }, { "ip": "10.0.0.3" }],
        "ports": [{ "port": 80 }, { "port": 443 }] }] });
    assert_eq!(
        cells(Printer::Endpoints, &ep)[1],
        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 3 more..."
    );
    assert_eq!(
        cells(Printer::Endpoints, &json!({ "metadata": meta }))[1],
        "<none>"
    );
}

#[test]
fn events_put_name_last_and_wide() {
    let names: Vec<(Value, Value)> = Printer::Event
        .columns()
        .iter()
        .map(|c| (c["name"].clone(), c["priority"].clone()))
        .collect();
    assert_eq!(names[0], (json!("Last Seen"), json!(0)));
    assert_eq!(names[9], (json!("Name"), json!(1)));
    assert_eq!(Printer::Event.columns()[9]["format"], "name");
    let core = json!({
        "metadata": { "name": "web.1" }, "type": "Normal", "reason": "Scheduled",
        "involvedObject": { "kind": "Pod", "name": "web" }, "message": "done ",
        "source": { "component": "default-scheduler" },
        "firstTimestamp": "T1", "lastTimestamp": "T2", "count": 2,
    });
    assert_eq!(
        cells(Printer::Event, &core),
        [
            json!("age(T2)"),
            json!("Normal"),
            json!("Scheduled"),
            json!("pod/web"),
            json!(""),
            json!("default-scheduler"),
            json!("done"),
            json!("age(T1)"),
            json!(2),
            json!("web.1")
        ]
    );
    let modern = json!({
        "metadata": { "name": "web.1" }, "type": "Normal", "reason": "Scheduled",
        "regarding": { "kind": "Pod", "name": "web" }, "note": "done",
        "reportingController": "default-scheduler", "reportingInstance": "sim",
        "eventTime": "T3",
    });
    let row = cells(Printer::Event, &modern);
    assert_eq!(
        (row[0].clone(), row[5].clone(), row[8].clone()),
        (json!("age(T3)"), json!("default-scheduler, sim"), json!(1))
    );
}

/// The first `n` lines of a streaming answer.
async fn lines(resp: http::Response<crate::api::Body>, n: usize) -> Vec<Value> {
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame.unwrap().into_data() {
            buf.extend_from_slice(&data);
        }
        while let Some(at) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=at).collect();
            out.push(serde_json::from_slice(&line).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn watches_answer_table_rows_with_columns_first() {
    let sim = Sim::start(SimOptions {
        nodes: 2,
        ..SimOptions::default()
    });
    let req = Request::get("/api/v1/nodes?watch=true&timeoutSeconds=30")
        .header(http::header::ACCEPT, KUBECTL_ACCEPT)
        .body(Bytes::new())
        .unwrap();
    let resp = crate::api::handle(sim.shared(), req).await;
    assert_eq!(resp.status(), 200);
    let events = lines(resp, 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let first = &events[0];
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "Table");
    assert_eq!(first["object"]["columnDefinitions"][1]["name"], "Status");
    assert_eq!(first["object"]["rows"][0]["cells"][0], "node-1");
    assert_eq!(
        first["object"]["rows"][0]["object"]["kind"],
        "PartialObjectMetadata"
    );
    assert!(first["object"]["metadata"]["resourceVersion"].is_string());
    let second = &events[1];
    assert!(second["object"]["columnDefinitions"].is_null(), "{second}");
    assert_eq!(second["object"]["rows"][0]["cells"][0], "node-2");

    // Without a Table in Accept, the events carry the objects.
    let req = Request::get("/api/v1/nodes?watch=true&timeoutSeconds=30")
        .body(Bytes::new())
        .unwrap();
    let plain = lines(crate::api::handle(sim.shared(), req).await, 1).await;
    assert_eq!(plain[0]["object"]["kind"], "Node");
}

#[tokio::test]
async fn custom_resources_print_their_crd_columns() {
    let sim = Sim::start(SimOptions {
        nodes: 1,
        ..SimOptions::default()
    });
    let vs = json!({ "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "hosts": ["web"], "gateways": ["mesh"] } });
    let req = Request::post("/apis/networking.istio.io/v1/namespaces/default/virtualservices")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(vs.to_string()))
        .unwrap();
    let resp = crate::api::handle(sim.shared(), req).await;
    assert_eq!(resp.status(), 201);
    let (code, t) = get(
        &sim,
        "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
        KUBECTL_ACCEPT,
    )
    .await;
    assert_eq!(code, 200, "{t}");
    let names: Vec<Value> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            json!("Name"),
            json!("Gateways"),
            json!("Hosts"),
            json!("Age")
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(
        (cells[0].clone(), cells[1].clone(), cells[2].clone()),
        (json!("web"), json!("[\"mesh\"]"), json!("[\"web\"]"))
    );
}
