//! A process runtime for chosen images: pods of those images run as real
//! processes instead of being simulated, so a helper pod that squall
//! creates on a node really runs on "that node".
//!
//! Only host-network pods are taken (squall's data-plane helper pods are
//! host-network): a node is played by a network namespace, and the pod's
//! container runs inside it (`ip netns exec NODE-NETNS BINARY ARGS…`), as a
//! host-network container shares its node's network namespace. A pod on a
//! node without a namespace does not run: it fails at once (reason
//! `NoNodeNamespace`, the pod log says why), so a data-plane helper pod
//! never touches the rules of the machine the simulator runs on, unless
//! [`ProcessRuntime::host_nodes`] allows running it in the simulator's own
//! namespace.
//!
//! hostPath volumes are per-node directories under `host_root` (created for
//! `DirectoryOrCreate`; an empty file, with its directory, for
//! `FileOrCreate`). Because the process has no mount namespace of its own,
//! an argument that starts with a hostPath volume's `mountPath`, the value
//! of an argument `--flag=PATH` and an environment variable's value that
//! start with one are rewritten to the node's path. The image's configured
//! binary stands in for the container's entrypoint (`command[0]`).
//!
//! When the container's `securityContext` sets `capabilities` (and it is
//! not privileged), the process gets exactly those: `setpriv` (util-linux)
//! limits its bounding, inheritable and ambient sets, inside the namespace
//! (`ip netns exec NS setpriv … -- BINARY ARGS…`). `drop: [ALL]` starts
//! from none, otherwise from the container runtimes' default set; `add:
//! [ALL]` keeps all the simulator has. Without `setpriv` such a pod fails
//! (reason `NoSetpriv`) rather than run with more privileges.
//!
//! The pod's lifecycle follows a kubelet's: Running when the process starts,
//! Succeeded or Failed with its exit code when it ends (its output is read
//! for at most two more seconds, in case something it left behind holds the
//! pipes), SIGTERM on graceful deletion and SIGKILL when the grace period is
//! over, and the object is removed once the process is gone. Each process
//! leads its own process group, which gets the signals, and whatever is left
//! of the group is killed when the process ends, as with a container's
//! cgroup. stdout and stderr are the pod's log. When the simulator shuts
//! down ([`crate::Sim::shutdown`]), every running process gets SIGTERM and
//! the grace period to exit before SIGKILL, so a data-plane agent restores
//! the rules it changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::store::{Ptr, Store, StoreInner, str_at};

/// Which images run as processes, and where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessRuntime {
    /// Image → the executable that plays it.
    pub images: BTreeMap<String, PathBuf>,
    /// Node → the network namespace its host-network pods run in.
    pub netns: BTreeMap<String, String>,
    /// hostPath volumes live under `<host_root>/<node>/<path>`.
    pub host_root: PathBuf,
    /// Run pods on unmapped nodes in the simulator's own namespace. Off by
    /// default: a pod on a node without an entry in `netns` then fails
    /// without running (for tests whose processes are harmless).
    pub host_nodes: bool,
    /// Images whose pull fails: a pod of one (host network or not) stays
    /// Pending, its container waiting with reason `ErrImagePull`, as a
    /// kubelet leaves it, until it is deleted.
    pub fail_pull: BTreeSet<String>,
}

impl ProcessRuntime {
    /// Whether this runtime (rather than the kubelet model) runs `pod`.
    pub fn runs(&self, pod: &Value) -> bool {
        let image = str_at(pod, "/spec/containers/0/image");
        self.fail_pull.contains(image)
            || (pod.ptr("/spec/hostNetwork") == Some(&json!(true))
                && self.images.contains_key(image))
    }
}

/// Logs of the pods this runtime ran, by pod uid (kept until the pod is gone).
pub type Logs = Arc<Mutex<HashMap<String, String>>>;

/// How long a process's output is still read once it has exited.
const DRAIN: Duration = Duration::from_secs(2);

/// The capabilities containerd and CRI-O give a container by default.
const DEFAULT_CAPS: [&str; 14] = [
    "chown",
    "dac_override",
    "fsetid",
    "fowner",
    "mknod",
    "net_raw",
    "setgid",
    "setuid",
    "setfcap",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
    "kill",
    "audit_write",
];

/// One started container process.
struct Proc {
    /// The process's id, which is also its process group's.
    pgid: Option<u32>,
    exit: Arc<Mutex<Option<i32>>>,
    kill: Option<oneshot::Sender<()>>,
    /// When SIGTERM was sent, and how long the pod's grace period is.
    terminating: Option<(Instant, Duration)>,
    started_at: String,
    /// The task that waits for the process and reads its output.
    task: JoinHandle<()>,
}

impl Proc {
    fn exited(&self) -> Option<i32> {
        *self.exit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// SIGKILL for the process group (through the supervising task).
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// A signal to send to a process group once the store lock is released.
type Signal = (u32, &'static str);

/// Why a pod's process was not started: its container's exit code, reason
/// and message.
struct NotStarted {
    code: i32,
    reason: &'static str,
    message: String,
}

impl NotStarted {
    fn new(reason: &'static str, message: String) -> Self {
        NotStarted {
            code: 128,
            reason,
            message,
        }
    }
}

/// The runtime task: every few milliseconds, start, stop and report on the
/// processes of the pods it runs. `stop` says when to stop: a grace period
/// for the running processes (SIGTERM, then SIGKILL once it is over), or
/// none when the simulator is dropped (SIGKILL at once).
pub async fn run(
    store: Store,
    rt: Arc<ProcessRuntime>,
    logs: Logs,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut procs: HashMap<String, Proc> = HashMap::new();
    let grace = loop {
        for (pgid, sig) in sync(&store, &rt, &logs, &mut procs) {
            signal(pgid, sig).await;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(25)) => {}
            r = stop.changed() => match r {
                Err(_) => break Duration::ZERO,
                Ok(()) => if let Some(grace) = *stop.borrow() { break grace },
            },
        }
    };
    stop_all(procs, grace).await;
}

/// SIGTERM to every process still running, up to `grace` for them to exit,
/// SIGKILL for the rest; returns once their supervising tasks are done.
async fn stop_all(mut procs: HashMap<String, Proc>, grace: Duration) {
    if !grace.is_zero() {
        for p in procs.values().filter(|p| p.exited().is_none()) {
            if let Some(pgid) = p.pgid {
                signal(pgid, "TERM").await;
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && procs.values().any(|p| p.exited().is_none()) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    for p in procs.values_mut() {
        p.kill();
    }
    for p in procs.into_values() {
        let _ = tokio::time::timeout(DRAIN * 2, p.task).await;
    }
}

/// One pass over the runtime's pods; returns the signals to send.
fn sync(
    store: &Store,
    rt: &ProcessRuntime,
    logs: &Logs,
    procs: &mut HashMap<String, Proc>,
) -> Vec<Signal> {
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
        if !keep {
            p.kill();
        }
        keep
    });
    logs.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|uid, _| live.contains(uid));
    let mut changed = false;
    let mut signals = Vec::new();
    for pod in pods {
        changed |= step(&mut guard, rt, logs, procs, pod, &mut signals);
    }
    drop(guard);
    if changed {
        store.poke();
    }
    signals
}

/// Moves one pod along; returns whether the store changed.
fn step(
    store: &mut StoreInner,
    rt: &ProcessRuntime,
    logs: &Logs,
    procs: &mut HashMap<String, Proc>,
    pod: Value,
    signals: &mut Vec<Signal>,
) -> bool {
    let uid = str_at(&pod, "/metadata/uid").to_string();
    let node = str_at(&pod, "/spec/nodeName").to_string();
    let (ns, name) = crate::store::obj_key(&pod);
    let deleting = pod.ptr("/metadata/deletionTimestamp").is_some();
    let node_gone = store.get("", "nodes", "", &node).is_none();
    let finished = matches!(str_at(&pod, "/status/phase"), "Succeeded" | "Failed");
    if rt
        .fail_pull
        .contains(str_at(&pod, "/spec/containers/0/image"))
    {
        return pull_fails(store, pod, deleting || node_gone);
    }
    let Some(p) = procs.get_mut(&uid) else {
        if deleting || node_gone {
            store.remove("", "pods", &ns, &name);
            return true;
        }
        if finished {
            return false;
        }
        let ts = store.clock.timestamp();
        let next = match start(rt, logs, &pod, &node, &uid, &ts) {
            Ok(started) => {
                procs.insert(uid, started);
                running(pod, store, &ts)
            }
            Err(why) => {
                append(logs, &uid, &format!("squall-sim: {}\n", why.message));
                not_started(pod, store, &why, &ts)
            }
        };
        store.put("", "pods", next);
        return true;
    };
    match p.exited() {
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
            signals.extend(signal_stop(p, &pod, node_gone));
            false
        }
        None => false,
    }
}

/// SIGTERM once (returned, to send), then SIGKILL when the grace period is
/// over.
fn signal_stop(p: &mut Proc, pod: &Value, now: bool) -> Option<Signal> {
    let grace = pod
        .ptr("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30);
    match p.terminating {
        None if !now && grace > 0 => {
            p.terminating = Some((Instant::now(), Duration::from_secs(grace)));
            p.pgid.map(|pgid| (pgid, "TERM"))
        }
        Some((since, grace)) if since.elapsed() < grace => None,
        _ => {
            p.kill();
            None
        }
    }
}

/// Sends `sig` to the process group `pgid`: tokio can only SIGKILL one
/// process, and `kill -SIG -- -PGID` needs no unsafe code.
async fn signal(pgid: u32, sig: &str) {
    if pgid <= 1 {
        return;
    }
    let _ = tokio::process::Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// Starts the pod's first container as a process, leading its own process
/// group.
fn start(
    rt: &ProcessRuntime,
    logs: &Logs,
    pod: &Value,
    node: &str,
    uid: &str,
    ts: &str,
) -> Result<Proc, NotStarted> {
    let mut cmd = command(rt, pod, node)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        NotStarted::new("StartError", format!("cannot start {program}: {e}"))
    })?;
    let exit = Arc::new(Mutex::new(None));
    let (kill_tx, kill_rx) = oneshot::channel();
    let pgid = child.id();
    let task = tokio::spawn(supervise(
        child,
        kill_rx,
        exit.clone(),
        logs.clone(),
        uid.to_string(),
    ));
    Ok(Proc {
        pgid,
        exit,
        kill: Some(kill_tx),
        terminating: None,
        started_at: ts.to_string(),
        task,
    })
}

/// The process for `pod` on `node` — `[ip netns exec NETNS] [setpriv CAPS
/// --] BINARY ARGS…` — with its environment, or why it must not run.
fn command(
    rt: &ProcessRuntime,
    pod: &Value,
    node: &str,
) -> Result<tokio::process::Command, NotStarted> {
    let netns = rt.netns.get(node);
    if netns.is_none() && !rt.host_nodes {
        return Err(NotStarted::new(
            "NoNodeNamespace",
            format!(
                "node {node} has no network namespace (--node-netns {node}=NETNS): \
                 the pod's process is not run in the simulator's own namespace"
            ),
        ));
    }
    let c = &pod["spec"]["containers"][0];
    let caps = capabilities(c).map_err(|m| NotStarted::new("InvalidCapabilities", m))?;
    if caps.is_some() && !on_path("setpriv") {
        return Err(NotStarted::new(
            "NoSetpriv",
            "the container's securityContext sets capabilities, and setpriv \
             (util-linux) is not installed to apply them: not running it with \
             the simulator's privileges"
                .into(),
        ));
    }
    let mounts = host_mounts(rt, pod, node);
    let mut argv: Vec<String> = Vec::new();
    if let Some(ns) = netns {
        argv.extend(["ip", "netns", "exec", ns].map(String::from));
    }
    if let Some(caps) = &caps {
        argv.push("setpriv".into());
        for set in ["--bounding-set", "--inh-caps", "--ambient-caps"] {
            argv.extend([set.to_string(), caps.clone()]);
        }
        argv.push("--".into());
    }
    argv.extend(command_line(rt, c, &mounts));
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for e in c["env"].as_array().into_iter().flatten() {
        if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
            cmd.env(k, rewrite_path(v, &mounts).unwrap_or_else(|| v.to_string()));
        }
    }
    Ok(cmd)
}

/// The capabilities container `c` asks for, as a `setpriv` list for the
/// bounding, inheritable and ambient sets; `None` when its securityContext
/// sets none, it is privileged, or it adds ALL and drops nothing.
fn capabilities(c: &Value) -> Result<Option<String>, String> {
    let sc = &c["securityContext"];
    let Some(caps) = sc.get("capabilities") else {
        return Ok(None);
    };
    let names = |key: &str| -> Result<BTreeSet<String>, String> {
        caps[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(cap_name)
            .collect()
    };
    let (add, drop) = (names("add")?, names("drop")?);
    if sc["privileged"] == true || (add.is_empty() && drop.is_empty()) {
        return Ok(None);
    }
    if add.contains("all") {
        // Everything the simulator has, less what is dropped.
        let less: Vec<String> = drop
            .iter()
            .filter(|d| *d != "all")
            .map(|d| format!("-{d}"))
            .collect();
        return Ok((!less.is_empty()).then(|| less.join(",")));
    }
    let mut set: BTreeSet<String> = if drop.contains("all") {
        BTreeSet::new()
    } else {
        DEFAULT_CAPS.iter().map(ToString::to_string).collect()
    };
    set.extend(add);
    set.retain(|c| !drop.contains(c));
    let list: Vec<String> = std::iter::once("-all".to_string())
        .chain(set.iter().map(|c| format!("+{c}")))
        .collect();
    Ok(Some(list.join(",")))
}

/// `NET_ADMIN` or `CAP_NET_ADMIN` as setpriv spells it (`net_admin`).
fn cap_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
    if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid capability {name:?}"));
    }
    Ok(bare.to_string())
}

/// Whether an executable `name` is on the PATH.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The executable and its arguments, with hostPath mount paths rewritten to
/// the node's directories.
fn command_line(rt: &ProcessRuntime, c: &Value, mounts: &[(String, PathBuf)]) -> Vec<String> {
    let image = c["image"].as_str().unwrap_or_default();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| rewrite(s, mounts))
            .collect()
    };
    let mut argv = vec![rt.images[image].display().to_string()];
    argv.extend(strings(&c["command"]).into_iter().skip(1));
    argv.extend(strings(&c["args"]));
    argv
}

/// (mountPath, node path) for each hostPath volume the container mounts,
/// created on the way as `DirectoryOrCreate` and `FileOrCreate` do.
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
        let on_node = rt.host_root.join(node).join(path.trim_start_matches('/'));
        match host["type"].as_str() {
            Some("DirectoryOrCreate") => {
                let _ = std::fs::create_dir_all(&on_node);
            }
            Some("FileOrCreate") => {
                if let Some(dir) = on_node.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&on_node);
            }
            _ => {}
        }
        out.push((at.trim_end_matches('/').to_string(), on_node));
    }
    out
}

/// `arg` with a mount path at its start, or after its first `=`
/// (`--state=/var/lib/x`), rewritten to the node's path.
fn rewrite(arg: &str, mounts: &[(String, PathBuf)]) -> String {
    if let Some(path) = rewrite_path(arg, mounts) {
        return path;
    }
    if let Some((flag, value)) = arg.split_once('=')
        && let Some(path) = rewrite_path(value, mounts)
    {
        return format!("{flag}={path}");
    }
    arg.to_string()
}

/// `path` on the node when it starts with a mount path.
fn rewrite_path(path: &str, mounts: &[(String, PathBuf)]) -> Option<String> {
    mounts.iter().find_map(|(at, on_node)| {
        let rest = path.strip_prefix(at.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{}{rest}", on_node.display()))
    })
}

/// Waits for the process (or a kill order) and collects its output; the
/// exit code is recorded once the output is read, at most [`DRAIN`] after
/// the process ended.
async fn supervise(
    mut child: tokio::process::Child,
    kill: oneshot::Receiver<()>,
    exit: Arc<Mutex<Option<i32>>>,
    logs: Logs,
    uid: String,
) {
    let pgid = child.id();
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(collect(out, logs.clone(), uid.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(collect(err, logs.clone(), uid.clone())));
    }
    let status = tokio::select! {
        s = child.wait() => s,
        _ = kill => {
            if let Some(pgid) = pgid {
                signal(pgid, "KILL").await;
            }
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let code = status.ok().and_then(|s| {
        use std::os::unix::process::ExitStatusExt;
        s.code().or_else(|| s.signal().map(|n| 128 + n))
    });
    // What the process left behind in its group goes with it, as with a
    // container's cgroup; something that left the group may still hold the
    // pipes, so the output is read for a short while only.
    if let Some(pgid) = pgid {
        signal(pgid, "KILL").await;
    }
    let drained = async {
        for r in &mut readers {
            let _ = r.await;
        }
    };
    let _ = tokio::time::timeout(DRAIN, drained).await;
    for r in readers {
        r.abort();
    }
    *exit.lock().unwrap_or_else(PoisonError::into_inner) = Some(code.unwrap_or(128));
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
        .unwrap_or_else(PoisonError::into_inner)
        .entry(uid.to_string())
        .or_default()
        .push_str(text);
}

/// The pod once its process runs: Running and Ready (helper pods have no
/// readiness probe, so Ready follows the container), on its node's address.
fn running(mut pod: Value, store: &StoreInner, ts: &str) -> Value {
    let host = store
        .get("", "nodes", "", str_at(&pod, "/spec/nodeName"))
        .map_or(json!(""), crate::controllers::kubelet::internal_ip);
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

/// A pod whose image cannot be pulled: Pending with its container waiting
/// (`ErrImagePull`), as a kubelet reports it; removed at once when deleted
/// (no process ever ran). Returns whether the store changed.
fn pull_fails(store: &mut StoreInner, mut pod: Value, gone: bool) -> bool {
    if gone {
        let (ns, name) = crate::store::obj_key(&pod);
        store.remove("", "pods", &ns, &name);
        return true;
    }
    let waiting = "/status/containerStatuses/0/state/waiting/reason";
    if str_at(&pod, waiting) == "ErrImagePull" {
        return false;
    }
    let ts = store.clock.timestamp();
    let name = pod["spec"]["containers"][0]["name"].clone();
    let image = pod["spec"]["containers"][0]["image"].clone();
    let message = format!(
        "failed to pull image {}: not found (squall sandbox --fail-pull)",
        image.as_str().unwrap_or_default()
    );
    pod["status"] = json!({
        "phase": "Pending",
        "startTime": ts,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": ts}
        ],
        "containerStatuses": [{
            "name": name, "image": image, "imageID": "", "ready": false, "started": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": message}}
        }]
    });
    store.put("", "pods", pod);
    true
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

/// The pod whose process was not started: Failed at once, its container
/// terminated with `why`'s exit code, reason and message.
fn not_started(pod: Value, store: &StoreInner, why: &NotStarted, ts: &str) -> Value {
    let mut pod = terminated(running(pod, store, ts), why.code, ts, ts);
    let state = &mut pod["status"]["containerStatuses"][0]["state"]["terminated"];
    state["reason"] = json!(why.reason);
    state["message"] = json!(why.message);
    pod
}
