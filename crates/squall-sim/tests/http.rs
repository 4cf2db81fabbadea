//! The same API over real HTTP on 127.0.0.1: kube::Client built from a
//! `Config` pointing at the listener (the path kubectl and the CLI use),
//! including discovery and a kube-runtime watcher over a streaming response.

mod common;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};

async fn http_client(sim: &squall_sim::Sim) -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(sim.clone().serve(listener));
    let mut config = Config::new(format!("http://{addr}").parse().expect("url"));
    config.default_retry = false;
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn kube_client_over_http() {
    let sim = common::sim();
    let client = http_client(&sim).await;
    let info = client.apiserver_version().await.expect("version");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );

    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let apps = discovery.get("apps").expect("apps group");
    assert!(
        apps.recommended_resources()
            .iter()
            .any(|(r, _)| r.plural == "deployments")
    );

    // A watcher (list + streaming watch) sees the pods the deployment creates.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut stream = watcher(pods, watcher::Config::default().labels("app=web"))
        .applied_objects()
        .boxed();
    Api::<Deployment>::default_namespaced(client)
        .create(&PostParams::default(), &common::deployment("web", 2))
        .await
        .expect("create");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        if seen.len() == 2 {
            break;
        }
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("event in time");
        let pod = next.expect("stream open").expect("watch ok");
        seen.insert(pod.metadata.name.unwrap_or_default());
    }
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|n| n.starts_with("web-")));
}

#[tokio::test]
async fn generated_kubeconfig_is_loadable() {
    let sim = common::sim();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(sim.clone().serve(listener));
    let text = squall_sim::kubeconfig(&server);
    let kc = kube::config::Kubeconfig::from_yaml(&text).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).expect("client");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .expect("nodes")
            .items
            .len(),
        3
    );
}

#[tokio::test]
async fn serve_until_stops_on_shutdown() {
    let sim = common::sim();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim.serve_until(listener, async {
        let _ = rx.await;
    }));
    tx.send(()).expect("send");
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stopped in time")
        .expect("joined");
    assert!(result.is_ok());
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events() {
    let sim = common::sim();
    let client = common::client(&sim);
    let namespaces: Api<Namespace> = Api::all(client);
    let mut stream = watcher(namespaces, watcher::Config::default().streaming_lists()).boxed();
    let mut names = Vec::new();
    for _ in 0..20 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("ok");
        match ev {
            watcher::Event::InitApply(ns) => names.push(ns.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}
