//! Shared helpers for the integration tests: a fast simulator, a kube client on
//! its tower::Service, and a bounded polling helper.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use serde_json::json;
use squall_sim::{Sim, SimOptions};

/// A 3-node cluster whose clock runs 20× faster than real time.
pub fn sim() -> Sim {
    Sim::start(SimOptions {
        nodes: 3,
        speed: 20.0,
        ..SimOptions::default()
    })
}

/// A kube client that talks to the simulator in-process.
pub fn client(sim: &Sim) -> Client {
    Client::new(sim.clone(), "default")
}

/// Polls `check` every 20 ms, at most 250 times (5 s), until it returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, 250, Duration::from_millis(20), check).await
}

/// Polls `check` every `every`, at most `tries` times, until it returns `Some`.
pub async fn poll<T, F, Fut>(what: &str, tries: usize, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(every).await;
    }
    panic!("timed out waiting for {what}");
}

/// A Deployment of `replicas` pods labelled `app=<name>`.
pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "nginx:1.27", "ports": [{ "name": "http", "containerPort": 80 }] }] }
            }
        }
    }))
    .expect("valid deployment")
}
