//! A process runtime for chosen images: pods of those images run as real
//! processes instead of being simulated, so a helper pod that squall
//! creates on a node really runs on "that node".
//!
//! Only host-network pods are taken (squall's data-plane helper pods are
//! host-network): a node is played by a network namespace, and the pod's
//! container runs inside it (`ip netns exec NODE-NETNS BINARY ARGS…`), as a
//! host-network container shares its node's network namespace. hostPath
//! volumes are per-node directories under `host_root`; because the process
//! has no mount namespace of its own, an argument that starts with a
//! hostPath volume's `mountPath` is rewritten to that directory. The image's
//! configured binary stands in for the container's entrypoint (`command[0]`).
//!
//! The pod's lifecycle follows a kubelet's: Running when the process starts,
//! Succeeded or Failed with its exit code when it ends, SIGTERM on graceful
//! deletion and SIGKILL when the grace period is over, and the object is
//! removed once the process is gone. stdout and stderr are the pod's log.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{oneshot, watch};

use crate::store::{Ptr, Store, StoreInner, str_at};

/// Which images run as processes, and where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessRuntime {
    /// Image → the executable that plays it.
    pub images: BTreeMap<String, PathBuf>,
    /// Node → the network namespace its host-network pods run in. A node
    /// without an entry runs them in the simulator's own namespace.
    pub netns: BTreeMap<String, String>,
    /// hostPath volumes live under `<host_root>/<node>/<path>`.
    pub host_root: PathBuf,
}

impl ProcessRuntime {
    /// Whether this runtime (rather than the kubelet model) runs `pod`.
    pub fn runs(&self, pod: &Value) -> bool {
        pod.ptr("/spec/hostNetwork") == Some(&json!(true))
            && self
                .images
                .contains_key(str_at(pod, "/spec/containers/0/image"))
    }
}

/// Logs of the pods this runtime ran, by pod uid (kept until the pod is gone).
pub type Logs = Arc<Mutex<HashMap<String, String>>>;

/// One started container process.
struct Proc {
    pid: Option<u32>,
    exit: Arc<Mutex<Option<i32>>>,
    kill: Option<oneshot::Sender<()>>,
    /// When SIGTERM was sent, and how long the pod's grace period is.
    terminating: Option<(Instant, Duration)>,
    started_at: String,
}

/// The runtime task: every few milliseconds, start, stop and report on the
/// processes of the pods it runs, until the simulator stops.
pub async fn run(
    store: Store,
    rt: Arc<ProcessRuntime>,
    logs: Logs,
    mut stop: watch::Receiver<bool>,
) {
    let mut procs: HashMap<String, Proc> = HashMap::new();
    loop {
        sync(&store, &rt, &logs, &mut procs);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(25)) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
        }
    }
    for p in procs.values_mut() {
        if let Some(kill) = p.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// One pass over the runtime's pods.
fn sync(store: &Store, rt: &ProcessRuntime, logs: &Logs, procs: &mut HashMap<String, Proc>) {
    let mut guard = store.lock();
    let pods: Vec<Value> = guard
        .iter("", "pods", None, None)
        .filter(|p| rt.runs(p) && !str_at(p, "/spec/nodeName").is_empty())
        .map(|p| Value::clone(p))
        .collect();
    let live: Vec<String> = pods
        .iter()
        .map(|p| str_at(p, "/metadata/uid").to_string())
        .collect();
    // Pods removed behind our back (force delete, node GC): kill at once.
    procs.retain(|uid, p| {
        let keep = live.contains(uid);
        if !keep && let Some(kill) = p.kill.take() {
            let _ = kill.send(());
        }
        keep
    });
    logs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|uid, _| live.contains(uid));
    let mut changed = false;
    for pod in pods {
        changed |= step(&mut guard, rt, logs, procs, pod);
    }
    drop(guard);
    if changed {
        store.poke();
    }
}

/// Moves one pod along; returns whether the store changed.
fn step(
    store: &mut StoreInner,
    rt: &ProcessRuntime,
    logs: &Logs,
    procs: &mut HashMap<String, Proc>,
    pod: Value,
) -> bool {
    let uid = str_at(&pod, "/metadata/uid").to_string();
    let node = str_at(&pod, "/spec/nodeName").to_string();
    let (ns, name) = crate::store::obj_key(&pod);
    let deleting = pod.ptr("/metadata/deletionTimestamp").is_some();
    let node_gone = store.get("", "nodes", "", &node).is_none();
    let finished = matches!(str_at(&pod, "/status/phase"), "Succeeded" | "Failed");
    let Some(p) = procs.get_mut(&uid) else {
        if deleting || node_gone {
            store.remove("", "pods", &ns, &name);
            return true;
        }
        if finished {
            return false;
        }
        let started = start(rt, logs, &pod, &node, &uid, store.clock.timestamp());
        let next = running(pod, store, &started.started_at);
        procs.insert(uid, started);
        store.put("", "pods", next);
        return true;
    };
    let exit = *p
        .exit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match exit {
        Some(_) if deleting || node_gone => {
            store.remove("", "pods", &ns, &name);
            true
        }
        Some(code) if !finished => {
            let next = terminated(pod, code, &p.started_at, &store.clock.timestamp());
            store.put("", "pods", next);
            true
        }
        Some(_) => false,
        None if deleting || node_gone => {
            signal_stop(p, &pod, node_gone);
            false
        }
        None => false,
    }
}

/// SIGTERM once, then SIGKILL when the grace period is over.
fn signal_stop(p: &mut Proc, pod: &Value, now: bool) {
    let grace = pod
        .ptr("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30);
    match p.terminating {
        None if !now && grace > 0 => {
            if let Some(pid) = p.pid {
                // tokio can only SIGKILL; `kill` sends the polite signal
                // without unsafe code.
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            p.terminating = Some((Instant::now(), Duration::from_secs(grace)));
        }
        Some((since, grace)) if since.elapsed() < grace => {}
        _ => {
            if let Some(kill) = p.kill.take() {
                let _ = kill.send(());
            }
        }
    }
}

/// Starts the pod's first container as a process.
fn start(rt: &ProcessRuntime, logs: &Logs, pod: &Value, node: &str, uid: &str, ts: String) -> Proc {
    let exit = Arc::new(Mutex::new(None));
    let (kill_tx, kill_rx) = oneshot::channel();
    let argv = command_line(rt, pod, node);
    let mut cmd = match rt.netns.get(node) {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns]).args(&argv);
            c
        }
        None => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    for e in pod
        .ptr("/spec/containers/0/env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let pid = match cmd.spawn() {
        Ok(child) => {
            let pid = child.id();
            tokio::spawn(supervise(
                child,
                kill_rx,
                exit.clone(),
                logs.clone(),
                uid.to_string(),
            ));
            pid
        }
        Err(e) => {
            append(
                logs,
                uid,
                &format!("squall-sim: cannot start {}: {e}\n", argv[0]),
            );
            *exit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(128);
            None
        }
    };
    Proc {
        pid,
        exit,
        kill: Some(kill_tx),
        terminating: None,
        started_at: ts,
    }
}

/// The executable and its arguments, with hostPath mount paths rewritten to
/// the node's directories (created on the way, as `DirectoryOrCreate` does).
fn command_line(rt: &ProcessRuntime, pod: &Value, node: &str) -> Vec<String> {
    let c = &pod["spec"]["containers"][0];
    let image = c["image"].as_str().unwrap_or_default();
    let mounts = host_mounts(rt, pod, node);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| rewrite(s, &mounts))
            .collect()
    };
    let mut argv = vec![rt.images[image].display().to_string()];
    argv.extend(strings(&c["command"]).into_iter().skip(1));
    argv.extend(strings(&c["args"]));
    argv
}

/// (mountPath, node directory) for each hostPath volume the container mounts.
fn host_mounts(rt: &ProcessRuntime, pod: &Value, node: &str) -> Vec<(String, PathBuf)> {
    let volumes: HashMap<&str, &Value> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v.get("hostPath")?)))
        .collect();
    let mut out = Vec::new();
    for m in pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (Some(name), Some(at)) = (m["name"].as_str(), m["mountPath"].as_str()) else {
            continue;
        };
        let Some(host) = volumes.get(name) else {
            continue;
        };
        let path = host["path"].as_str().unwrap_or_default();
        let dir = rt.host_root.join(node).join(path.trim_start_matches('/'));
        if host["type"] == "DirectoryOrCreate" {
            let _ = std::fs::create_dir_all(&dir);
        }
        out.push((at.trim_end_matches('/').to_string(), dir));
    }
    out
}

fn rewrite(arg: &str, mounts: &[(String, PathBuf)]) -> String {
    for (at, dir) in mounts {
        if let Some(rest) = arg.strip_prefix(at.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{}{rest}", dir.display());
        }
    }
    arg.to_string()
}

/// Waits for the process (or a kill order), collecting its output.
async fn supervise(
    mut child: tokio::process::Child,
    kill: oneshot::Receiver<()>,
    exit: Arc<Mutex<Option<i32>>>,
    logs: Logs,
    uid: String,
) {
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(collect(o, logs.clone(), uid.clone())));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(collect(e, logs.clone(), uid.clone())));
    let status = tokio::select! {
        s = child.wait() => s,
        _ = kill => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    let code = status.ok().and_then(|s| {
        use std::os::unix::process::ExitStatusExt;
        s.code().or_else(|| s.signal().map(|n| 128 + n))
    });
    *exit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(code.unwrap_or(128));
}

async fn collect(mut r: impl AsyncRead + Unpin, logs: Logs, uid: String) {
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        append(&logs, &uid, &String::from_utf8_lossy(&buf[..n]));
    }
}

fn append(logs: &Logs, uid: &str, text: &str) {
    logs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(uid.to_string())
        .or_default()
        .push_str(text);
}

/// The pod once its process runs: Running, on its node's address, not Ready
/// (helper pods have no readiness probe; Ready follows the container).
fn running(mut pod: Value, store: &StoreInner, ts: &str) -> Value {
    let host = store
        .get("", "nodes", "", str_at(&pod, "/spec/nodeName"))
        .and_then(|n| n.ptr("/status/addresses"))
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .map_or(json!(""), |a| a["address"].clone());
    let name = pod["spec"]["containers"][0]["name"].clone();
    let image = pod["spec"]["containers"][0]["image"].clone();
    pod["status"] = json!({
        "phase": "Running",
        "hostIP": host, "hostIPs": [{"ip": host}],
        "podIP": host, "podIPs": [{"ip": host}],
        "startTime": ts,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": ts},
            {"type": "Ready", "status": "True", "lastTransitionTime": ts},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": ts},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts}
        ],
        "containerStatuses": [{
            "name": name, "image": image, "imageID": "", "ready": true, "started": true,
            "restartCount": 0, "state": {"running": {"startedAt": ts}}
        }]
    });
    pod
}

/// The pod once its process ended with `code`.
fn terminated(mut pod: Value, code: i32, started: &str, ts: &str) -> Value {
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let reason = if code == 0 { "Completed" } else { "Error" };
    pod["status"]["phase"] = json!(phase);
    for c in pod["status"]["conditions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
            c["status"] = json!("False");
            c["reason"] = json!("PodCompleted");
            c["lastTransitionTime"] = json!(ts);
        }
    }
    let s = &mut pod["status"]["containerStatuses"][0];
    s["ready"] = json!(false);
    s["started"] = json!(false);
    s["state"] = json!({"terminated": {
        "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": ts
    }});
    pod
}

/// The log of a pod this runtime ran, if any.
pub fn log_of(logs: &Logs, uid: &str) -> Option<String> {
    logs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(uid)
        .cloned()
}
