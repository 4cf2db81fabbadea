//! Short-lived helper pods: squall's own binary run on a chosen node, in
//! the node's network namespace, to change or read what only the node can
//! (kube-proxy's rules). The pod is pinned by `spec.nodeName` (no scheduler,
//! so it runs on cordoned nodes too), tolerates every taint, uses the host
//! network, and gets only the capabilities the data-plane agent needs —
//! `NET_ADMIN` and `NET_RAW`, everything else dropped, never privileged —
//! plus the node's xtables lock (shared with kube-proxy) and a node-local
//! state directory that survives the pod. It never restarts and carries a
//! deadline, so a forgotten pod ends by itself.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::{Value, json};
use squall_activity::{ActivityError, RunLog};

use crate::api_error;

/// Where helper pods keep state on the node (snapshots, the node ledger).
pub const STATE_DIR: &str = "/var/lib/squall/dataplane";
/// The lock `iptables -w` and kube-proxy take.
pub const XTABLES_LOCK: &str = "/run/xtables.lock";

/// One helper pod to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Helper {
    /// The pod's name (chosen before creation, so an undo can name it).
    pub name: String,
    pub namespace: String,
    pub node: String,
    /// squall's container image.
    pub image: String,
    /// Arguments after `squall`.
    pub args: Vec<String>,
    /// `activeDeadlineSeconds`: the kubelet stops the pod after this long.
    pub deadline_secs: u64,
    pub run_id: String,
}

/// A name for a helper pod: `squall-<purpose>-<node>-<6 hex>`, at most 63
/// characters (a host-network pod's name is also its hostname label).
pub fn pod_name(purpose: &str, node: &str) -> String {
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let node: String = node
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let head = format!("squall-{purpose}-");
    let room = 63 - head.len() - tag.len() - 1;
    let node = node.trim_matches('-');
    let node = &node[..node.len().min(room)];
    format!("{head}{}-{tag}", node.trim_end_matches('-'))
}

/// The pod manifest.
pub fn manifest(h: &Helper) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": h.name,
            "namespace": h.namespace,
            "labels": {
                "app.kubernetes.io/name": "squall-agent",
                "app.kubernetes.io/managed-by": "squall",
            },
            "annotations": {"squall.dev/run-id": h.run_id},
        },
        "spec": {
            "nodeName": h.node,
            "hostNetwork": true,
            // The node's own resolver: cluster DNS goes through the very
            // Service rules a flush removes.
            "dnsPolicy": "Default",
            "restartPolicy": "Never",
            "activeDeadlineSeconds": h.deadline_secs,
            "terminationGracePeriodSeconds": 30,
            "automountServiceAccountToken": false,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "agent",
                "image": h.image,
                "command": ["squall"],
                "args": h.args,
                "securityContext": {
                    "privileged": false,
                    "allowPrivilegeEscalation": false,
                    "runAsUser": 0,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
                },
                // Requests keep it out of BestEffort, the first class the
                // kubelet evicts and the OOM killer picks.
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                "volumeMounts": [
                    {"name": "xtables-lock", "mountPath": XTABLES_LOCK},
                    {"name": "state", "mountPath": STATE_DIR},
                ],
            }],
            "volumes": [
                {"name": "xtables-lock", "hostPath": {"path": XTABLES_LOCK, "type": "FileOrCreate"}},
                {"name": "state", "hostPath": {"path": STATE_DIR, "type": "DirectoryOrCreate"}},
            ],
        },
    });
    // A pod holding a node's rules hostage must be the last to be evicted
    // under node pressure; the API only grants that priority in kube-system.
    if h.namespace == "kube-system" {
        pod["spec"]["priorityClassName"] = json!("system-node-critical");
    }
    pod
}

/// Creates the pod.
pub async fn create(client: &kube::Client, h: &Helper) -> Result<(), kube::Error> {
    let pod: Pod = serde_json::from_value(manifest(h)).map_err(kube::Error::SerdeError)?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &h.namespace);
    api.create(&PostParams::default(), &pod).await.map(|_| ())
}

/// How a helper pod ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub exit_code: i32,
    pub logs: String,
}

/// Polls a helper pod, with a progress line every few seconds.
struct Watch<'a> {
    api: Api<Pod>,
    name: &'a str,
    node: &'a str,
    log: &'a dyn RunLog,
    started: Instant,
    told: Instant,
}

impl<'a> Watch<'a> {
    fn new(
        client: &kube::Client,
        ns: &str,
        name: &'a str,
        node: &'a str,
        log: &'a dyn RunLog,
    ) -> Self {
        let now = Instant::now();
        Self {
            api: Api::namespaced(client.clone(), ns),
            name,
            node,
            log,
            started: now,
            told: now,
        }
    }

    async fn pod(&self) -> Result<Option<Pod>, ActivityError> {
        self.api.get_opt(self.name).await.map_err(api_error)
    }

    async fn logs(&self) -> String {
        self.api
            .logs(self.name, &LogParams::default())
            .await
            .unwrap_or_default()
    }

    /// Sleeps a poll interval; says what the pod is doing every 5 s, and
    /// gives up after `timeout`.
    async fn tick(
        &mut self,
        pod: &Pod,
        timeout: Duration,
        waiting_for: &str,
    ) -> Result<(), ActivityError> {
        let state = describe(pod);
        if let Some(reason) = waiting_reason(pod).filter(|r| HOPELESS.contains(&r.as_str())) {
            return Err(ActivityError::Failed(format!(
                "helper pod {} on node {} cannot start: {reason} ({state}); check the image \
                 (configuration `squall_agent_image`)",
                self.name, self.node
            )));
        }
        if self.started.elapsed() >= timeout {
            return Err(ActivityError::Failed(format!(
                "helper pod {} on node {} did not {waiting_for} within {}s ({state})",
                self.name,
                self.node,
                timeout.as_secs()
            )));
        }
        if self.told.elapsed() >= Duration::from_secs(5) {
            self.told = Instant::now();
            self.log.info(&format!(
                "waiting for helper pod {} on node {} to {waiting_for}: {state} ({}s)",
                self.name,
                self.node,
                self.started.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }
}

/// Waits until the running pod's log contains `marker` (the agent says it
/// is done with the harmful part). Fails when the pod ends first, with its
/// exit code and the end of its log.
pub async fn wait_for_log(
    client: &kube::Client,
    h: &Helper,
    marker: &str,
    timeout: Duration,
    log: &dyn RunLog,
) -> Result<String, ActivityError> {
    let mut w = Watch::new(client, &h.namespace, &h.name, &h.node, log);
    loop {
        let Some(pod) = w.pod().await? else {
            return Err(ActivityError::Failed(format!(
                "helper pod {} on node {} disappeared",
                h.name, h.node
            )));
        };
        let phase = phase(&pod);
        if phase != "Pending" {
            let logs = w.logs().await;
            if logs.contains(marker) {
                return Ok(logs);
            }
            if matches!(phase.as_str(), "Succeeded" | "Failed") {
                return Err(ended_early(h, &pod, &logs));
            }
        }
        w.tick(&pod, timeout, "start its work").await?;
    }
}

/// Waits until the pod has ended, and returns its exit code and log.
pub async fn wait_to_end(
    client: &kube::Client,
    h: &Helper,
    timeout: Duration,
    log: &dyn RunLog,
) -> Result<Finished, ActivityError> {
    let mut w = Watch::new(client, &h.namespace, &h.name, &h.node, log);
    loop {
        let Some(pod) = w.pod().await? else {
            return Err(ActivityError::Failed(format!(
                "helper pod {} on node {} disappeared before it ended",
                h.name, h.node
            )));
        };
        if matches!(phase(&pod).as_str(), "Succeeded" | "Failed") {
            return Ok(Finished {
                exit_code: exit_code(&pod).unwrap_or(-1),
                logs: w.logs().await,
            });
        }
        w.tick(&pod, timeout, "finish").await?;
    }
}

/// Deletes a pod (gracefully: the agent restores on SIGTERM) and waits
/// until it is gone. A pod already gone is fine.
pub async fn delete_and_wait(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), ActivityError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(api_error(e)),
    }
    let started = Instant::now();
    while api.get_opt(name).await.map_err(api_error)?.is_some() {
        if started.elapsed() >= timeout {
            return Err(ActivityError::Failed(format!(
                "helper pod {namespace}/{name} is still terminating after {}s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into())
}

fn exit_code(pod: &Pod) -> Option<i32> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    Some(status.state.as_ref()?.terminated.as_ref()?.exit_code)
}

/// Reasons a container waits that do not go away by waiting.
const HOPELESS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

fn waiting_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    status.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

/// The phase, why a pending container waits (ImagePullBackOff, …) and why
/// the kubelet ended the pod (DeadlineExceeded, OutOfpods, …).
fn describe(pod: &Pod) -> String {
    let mut out = phase(pod);
    if let Some(reason) = waiting_reason(pod) {
        out.push_str(&format!(", {reason}"));
    }
    let status = pod.status.as_ref();
    if let Some(reason) = status.and_then(|s| s.reason.as_ref()) {
        out.push_str(&format!(", {reason}"));
    }
    if let Some(message) = status.and_then(|s| s.message.as_ref()) {
        out.push_str(&format!(": {message}"));
    }
    out
}

/// Whether a helper pod exists and its container has never run (so it
/// cannot have changed anything). A pod that is gone counts as "ran": its
/// effects, if any, are unknown.
pub async fn never_started(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<bool, ActivityError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Some(pod) = api.get_opt(name).await.map_err(api_error)? else {
        return Ok(false);
    };
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    Ok(match status {
        None => phase(&pod) == "Pending",
        Some(c) => {
            c.last_state
                .as_ref()
                .is_none_or(|l| l.running.is_none() && l.terminated.is_none())
                && c.state.as_ref().is_some_and(|s| s.waiting.is_some())
        }
    })
}

fn ended_early(h: &Helper, pod: &Pod, logs: &str) -> ActivityError {
    ActivityError::Failed(format!(
        "helper pod {} on node {} ended ({}, exit code {}) before it was done: {}",
        h.name,
        h.node,
        describe(pod),
        exit_code(pod).map_or_else(|| "unknown".into(), |c| c.to_string()),
        tail(logs)
    ))
}

/// The last lines of a log, for error messages.
pub fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(5);
    lines[from..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> Helper {
        Helper {
            name: pod_name("flush", "node-1"),
            namespace: "kube-system".into(),
            node: "node-1".into(),
            image: "ghcr.io/example/squall:1".into(),
            args: vec!["agent".into(), "dataplane".into(), "inspect".into()],
            deadline_secs: 360,
            run_id: "r1".into(),
        }
    }

    #[test]
    fn the_pod_is_pinned_host_network_and_only_gets_net_admin_and_net_raw() {
        let m = manifest(&helper());
        let spec = &m["spec"];
        assert_eq!(spec["nodeName"], "node-1");
        assert_eq!(spec["hostNetwork"], true);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["activeDeadlineSeconds"], 360);
        let c = &spec["containers"][0];
        assert_eq!(c["image"], "ghcr.io/example/squall:1");
        assert_eq!(c["command"], json!(["squall"]));
        assert_eq!(c["args"], json!(["agent", "dataplane", "inspect"]));
        let sc = &c["securityContext"];
        assert_eq!(sc["privileged"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["capabilities"]["add"], json!(["NET_ADMIN", "NET_RAW"]));
        let lock = &spec["volumes"][0]["hostPath"];
        assert_eq!(lock["path"], XTABLES_LOCK);
        assert_eq!(c["volumeMounts"][0]["mountPath"], XTABLES_LOCK);
        // The manifest is a valid Pod for the typed client.
        let _: Pod = serde_json::from_value(m).unwrap();
    }

    #[test]
    fn pod_names_fit_a_hostname_label_and_differ() {
        let long = "a".repeat(80);
        let name = pod_name("restore", &format!("{long}.Example.COM"));
        assert!(name.len() <= 63, "{name}");
        assert!(name.starts_with("squall-restore-aaa"));
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        let names: std::collections::HashSet<String> =
            (0..50).map(|_| pod_name("flush", "node-1")).collect();
        assert!(names.len() > 45, "{names:?}");
    }

    #[test]
    fn tail_keeps_the_last_five_lines() {
        let logs = "1\n2\n\n3\n4\n5\n6\n7\n";
        assert_eq!(tail(logs), "3 | 4 | 5 | 6 | 7");
    }
}
