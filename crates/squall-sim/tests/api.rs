//! REST semantics through `kube::Client` on the simulator's tower::Service:
//! selectors, optimistic concurrency, error bodies, patches, watch, discovery,
//! custom resources and graceful deletion.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
    }))
    .expect("valid pod")
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn list_with_label_and_field_selectors() {
    let sim = common::sim();
    let pods: Api<Pod> = Api::namespaced(common::client(&sim), "default");
    let pp = PostParams::default();
    pods.create(&pp, &pod("web-a", json!({ "app": "web", "tier": "fe" })))
        .await
        .expect("create");
    pods.create(&pp, &pod("web-b", json!({ "app": "web", "tier": "be" })))
        .await
        .expect("create");
    pods.create(&pp, &pod("db", json!({ "app": "db" })))
        .await
        .expect("create");

    let l = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(names(&l.items), ["web-a", "web-b"]);
    let l = pods
        .list(&ListParams::default().labels("tier in (fe,x),app notin (db)"))
        .await
        .expect("list");
    assert_eq!(names(&l.items), ["web-a"]);
    let l = pods
        .list(&ListParams::default().labels("!tier"))
        .await
        .expect("list");
    assert_eq!(names(&l.items), ["db"]);
    let l = pods
        .list(&ListParams::default().fields("metadata.name=db"))
        .await
        .expect("list");
    assert_eq!(names(&l.items), ["db"]);

    // Once scheduled, spec.nodeName selects pods per node, as kubectl drain does.
    let node = common::eventually("pod scheduled", || async {
        pods.get("web-a").await.ok()?.spec?.node_name
    })
    .await;
    let on_node = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .expect("list");
    assert!(names(&on_node.items).contains(&"web-a".to_string()));
    assert!(
        on_node
            .items
            .iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()))
    );

    let bad = pods
        .list(&ListParams::default().labels("app in web"))
        .await
        .expect_err("bad selector");
    assert!(
        matches!(bad, kube::Error::Api(ref s) if s.code == 400),
        "{bad:?}"
    );
}

#[tokio::test]
async fn paginated_list_returns_every_item_once() {
    let sim = common::sim();
    let cms: Api<ConfigMap> = Api::namespaced(common::client(&sim), "default");
    for i in 0..7 {
        let cm: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": format!("cm-{i}") } }))
                .expect("cm");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let first = cms
        .list(&ListParams::default().limit(3))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("continue token");
    let second = cms
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 4);
    assert!(second.metadata.continue_.is_none());
}

#[tokio::test]
async fn stale_update_conflicts() {
    let sim = common::sim();
    let cms: Api<ConfigMap> = Api::namespaced(common::client(&sim), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "cfg" }, "data": { "k": "1" } }))
            .expect("cm");
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let mut first = created.clone();
    first.data = Some([("k".to_string(), "2".to_string())].into());
    let updated = cms
        .replace("cfg", &PostParams::default(), &first)
        .await
        .expect("first update");
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );

    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = cms
        .replace("cfg", &PostParams::default(), &stale)
        .await
        .expect_err("stale update");
    let kube::Error::Api(s) = err else {
        panic!("expected an API error")
    };
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    assert_eq!(
        cms.get("cfg")
            .await
            .expect("get")
            .data
            .and_then(|d| d.get("k").cloned())
            .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn errors_are_status_objects() {
    let sim = common::sim();
    let cms: Api<ConfigMap> = Api::namespaced(common::client(&sim), "default");
    let kube::Error::Api(s) = cms.get("missing").await.expect_err("404") else {
        panic!("api error")
    };
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (404, "NotFound", "configmaps \"missing\" not found")
    );

    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "dup" } })).expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let kube::Error::Api(s) = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect_err("409")
    else {
        panic!("api error")
    };
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));

    let bad: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "Bad_Name" } })).expect("cm");
    let kube::Error::Api(s) = cms
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("422")
    else {
        panic!("api error")
    };
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));

    let other: Api<ConfigMap> = Api::namespaced(common::client(&sim), "nope");
    let kube::Error::Api(s) = other
        .create(&PostParams::default(), &cm)
        .await
        .expect_err("no namespace")
    else {
        panic!("api error")
    };
    assert_eq!(s.message, "namespaces \"nope\" not found");

    // Malformed JSON is a 400 Status, not a panic.
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .body(Bytes::from_static(b"{not json"))
        .expect("request");
    let resp = sim.handle(req).await;
    assert_eq!(resp.status(), 400);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let status: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("BadRequest"))
    );
}

#[tokio::test]
async fn generate_name_and_patch_types() {
    let sim = common::sim();
    let client = common::client(&sim);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({ "metadata": { "generateName": "gen-" }, "data": { "a": "1", "b": "2" } }),
    )
    .expect("cm");
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let name = created.metadata.name.clone().expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let p = cms
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "a": null, "c": "3" } })),
        )
        .await
        .expect("merge");
    let data = p.data.expect("data");
    assert_eq!(
        (data.get("a"), data.get("c").map(String::as_str)),
        (None, Some("3"))
    );

    let ops: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "replace", "path": "/data/b", "value": "9" }]))
            .expect("ops");
    let p = cms
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .expect("json patch");
    assert_eq!(
        p.data.and_then(|d| d.get("b").cloned()).as_deref(),
        Some("9")
    );

    let nodes: Api<Node> = Api::all(client);
    nodes.cordon("node-1").await.expect("cordon");
    let n = nodes.get("node-1").await.expect("node");
    assert_eq!(n.spec.and_then(|s| s.unschedulable), Some(true));
    nodes.uncordon("node-1").await.expect("uncordon");
    assert_eq!(
        nodes
            .get("node-1")
            .await
            .expect("node")
            .spec
            .and_then(|s| s.unschedulable),
        Some(false)
    );
}

#[tokio::test]
async fn watch_streams_events_from_a_resource_version() {
    let sim = common::sim();
    let cms: Api<ConfigMap> = Api::namespaced(common::client(&sim), "default");
    let list = cms.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    let stream = cms
        .watch(&WatchParams::default().labels("team=a").timeout(5), &rv)
        .await
        .expect("watch");
    let mut stream = stream.boxed();

    let mk = |n: &str, team: &str| {
        serde_json::from_value::<ConfigMap>(
            json!({ "metadata": { "name": n, "labels": { "team": team } } }),
        )
        .expect("cm")
    };
    cms.create(&PostParams::default(), &mk("x", "a"))
        .await
        .expect("create");
    cms.create(&PostParams::default(), &mk("y", "b"))
        .await
        .expect("create other team");
    cms.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "v" } })),
    )
    .await
    .expect("patch");
    cms.delete("x", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    // Three events expected; each wait is bounded by a timeout.
    for _ in 0..3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .expect("stream ok")
            .expect("not ended");
        let (kind, obj) = match ev {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            other => panic!("unexpected {other:?}"),
        };
        seen.push((kind, obj.metadata.name.unwrap_or_default()));
    }
    assert_eq!(
        seen,
        [
            ("ADDED", "x".to_string()),
            ("MODIFIED", "x".to_string()),
            ("DELETED", "x".to_string())
        ]
    );
}

#[tokio::test]
async fn watch_from_expired_version_reports_410() {
    let sim = common::sim();
    let cms: Api<ConfigMap> = Api::namespaced(common::client(&sim), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "later" } })).expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    sim.compact();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch")
        .boxed();
    match stream.try_next().await.expect("ok").expect("one event") {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn istio_virtual_services_are_served() {
    let sim = common::sim();
    let client = common::client(&sim);
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let group = discovery.get("networking.istio.io").expect("istio group");
    let versions: Vec<String> = group.versions().map(ToString::to_string).collect();
    assert_eq!(versions, ["v1", "v1beta1", "v1alpha3"]);

    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "VirtualService");
    let vs: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::from_gvk(&gvk));
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": { "name": "reviews" },
        "spec": { "hosts": ["reviews"], "http": [{ "route": [{ "destination": { "host": "reviews" } }] }] }
    }))
    .expect("vs");
    vs.create(&PostParams::default(), &obj)
        .await
        .expect("create vs");
    let p = vs
        .patch("reviews", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "http": [{ "fault": { "abort": { "httpStatus": 500, "percentage": { "value": 100 } } } }] } })))
        .await
        .expect("merge patch");
    assert_eq!(
        p.data["spec"]["http"][0]["fault"]["abort"]["httpStatus"],
        500
    );
    let kube::Error::Api(s) = vs
        .patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Strategic(json!({})),
        )
        .await
        .expect_err("no SMP on CRDs")
    else {
        panic!("api error")
    };
    assert_eq!(s.code, 415);
}

#[tokio::test]
async fn pod_deletion_is_graceful() {
    let sim = common::sim();
    let pods: Api<Pod> = Api::namespaced(common::client(&sim), "default");
    pods.create(&PostParams::default(), &pod("slow", json!({})))
        .await
        .expect("create");
    common::eventually("pod running", || async {
        (pods.get("slow").await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let gone = pods
        .delete("slow", &DeleteParams::default())
        .await
        .expect("delete");
    let terminating = gone.left().expect("pod returned while terminating");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    assert!(
        pods.get("slow").await.is_ok(),
        "still present during its grace period"
    );
    common::eventually("pod removed", || async {
        pods.get_opt("slow").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn finalizers_hold_deletion_and_deletecollection_honours_selectors() {
    let sim = common::sim();
    let cms: Api<ConfigMap> = Api::namespaced(common::client(&sim), "default");
    let mk = |n: &str, batch: &str, finalizers: serde_json::Value| {
        let v = json!({ "metadata": { "name": n, "labels": { "batch": batch }, "finalizers": finalizers } });
        serde_json::from_value::<ConfigMap>(v).expect("cm")
    };
    cms.create(
        &PostParams::default(),
        &mk("held", "x", json!(["squall.dev/hold"])),
    )
    .await
    .expect("create");
    cms.create(&PostParams::default(), &mk("a", "x", json!(null)))
        .await
        .expect("create");
    cms.create(&PostParams::default(), &mk("b", "y", json!(null)))
        .await
        .expect("create");

    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let held = cms.get("held").await.expect("still there while finalized");
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .expect("clear finalizers");
    assert!(
        cms.get_opt("held").await.expect("get").is_none(),
        "removed once the last finalizer is gone"
    );

    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=x"),
    )
    .await
    .expect("deletecollection");
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["b"]);
}

#[tokio::test]
async fn services_keep_allocated_ips_and_node_ports_on_replace() {
    use k8s_openapi::api::core::v1::Service;
    let sim = common::sim();
    let svcs: Api<Service> = Api::namespaced(common::client(&sim), "default");
    let svc: Service = serde_json::from_value(json!({ "metadata": { "name": "np" }, "spec": { "type": "NodePort", "selector": { "app": "x" }, "ports": [{ "port": 80 }] } })).expect("svc");
    let created = svcs
        .create(&PostParams::default(), &svc)
        .await
        .expect("create");
    let spec = created.spec.clone().expect("spec");
    let port = spec.ports.clone().expect("ports")[0].clone();
    assert!((30_000..=32_767).contains(&port.node_port.expect("nodePort allocated")));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );

    // A replace that omits the allocated values keeps them.
    let mut again = svc.clone();
    again.metadata.resource_version = created.metadata.resource_version.clone();
    let replaced = svcs
        .replace("np", &PostParams::default(), &again)
        .await
        .expect("replace");
    let rspec = replaced.spec.expect("spec");
    assert_eq!(rspec.cluster_ip, spec.cluster_ip);
    assert_eq!(rspec.ports.expect("ports")[0].node_port, port.node_port);
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let sim = common::sim();
    let cms: Api<ConfigMap> = Api::namespaced(common::client(&sim), "default");
    let pp = PatchParams::apply("squall").force();
    let first = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": { "a": "1" } });
    let created = cms
        .patch("applied", &pp, &Patch::Apply(&first))
        .await
        .expect("apply creates");
    assert!(created.metadata.uid.is_some());
    let second = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": { "b": "2" } });
    let merged = cms
        .patch("applied", &pp, &Patch::Apply(&second))
        .await
        .expect("apply updates");
    let data = merged.data.expect("data");
    assert_eq!(
        (
            data.get("a").map(String::as_str),
            data.get("b").map(String::as_str)
        ),
        (Some("1"), Some("2"))
    );
    assert_eq!(merged.metadata.uid, created.metadata.uid);
}
