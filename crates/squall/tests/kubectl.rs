//! kubectl conformance: a real kubectl 1.33 drives `squall sandbox serve`
//! through version, get (server-side tables, `-o wide`), apply (with
//! kubectl's default validation, which reads `/openapi/v3`), scale, rollout,
//! cordon, drain (refused by a PodDisruptionBudget, then allowed), delete,
//! patch, logs, `get -w` (Table rows on a watch), an Istio VirtualService
//! and the go-demo-8 example manifests, printer columns of the other kinds
//! (ReplicaSets, HPAs, PDBs, a CRD's `additionalPrinterColumns`), and the
//! typed `kubectl create` generators (protobuf bodies), asserting on what
//! kubectl prints and its exit codes.
//!
//! kubectl comes from `SQUALL_KUBECTL` or `target/tools/kubectl`
//! (`scripts/install-kubectl.sh target/tools` installs it); without it the
//! test prints `SKIPPED: …` and passes. Every kubectl call and every wait is
//! bounded in time, and a failure names the step.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Sandbox;

const NS: &str = "kctl";
const BUDGET_REFUSAL: &str = "Cannot evict pod as it would violate the pod's disruption budget";
/// The longest any single kubectl call may take (rollout status waits 60 s).
const CALL_LIMIT: Duration = Duration::from_secs(90);

const MANIFEST: &str = r"apiVersion: v1
kind: Namespace
metadata:
  name: kctl
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: kctl
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: kctl
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
  namespace: kctl
spec:
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: mongo:7
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: db
  namespace: kctl
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: db}
";

const VIRTUAL_SERVICE: &str = r"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
  namespace: kctl
spec:
  hosts: [web]
  http:
  - route:
    - destination:
        host: web
    retries:
      attempts: 3
";

/// `SQUALL_KUBECTL`, else `target/tools/kubectl` in the workspace.
fn find_kubectl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SQUALL_KUBECTL").map(PathBuf::from)
        && p.is_file()
    {
        return Some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/kubectl");
    p.is_file().then_some(p)
}

/// `squall sandbox serve` on 127.0.0.1, killed when dropped.
struct Cluster {
    sb: Sandbox,
    child: Child,
}

impl Cluster {
    fn start(nodes: u8) -> Self {
        let sb = Sandbox::new();
        let log = std::fs::File::create(sb.path("serve.log")).unwrap();
        let child = sb
            .cmd()
            .args(["sandbox", "serve", "--kubeconfig", "kube.yaml"])
            .args(["--nodes", &nodes.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let cluster = Self { sb, child };
        let ready = common::wait_until(20, || {
            cluster
                .sb
                .read("kube.yaml")
                .contains("server: http://127.0.0.1:")
        });
        assert!(
            ready,
            "the sandbox wrote no kubeconfig in 20 s:\n{}",
            cluster.sb.read("serve.log")
        );
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished kubectl call.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// kubectl with `--kubeconfig` and a private `HOME` (its discovery cache).
/// Command lines are split on whitespace: no argument holds a space.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    /// Runs `kubectl --kubeconfig … ARGS`, killed after `CALL_LIMIT`.
    fn run(&self, step: &str, args: &[&str]) -> Out {
        let shown = args.join(" ");
        let mut child = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("step {step}: cannot start {}: {e}", self.bin.display()));
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let deadline = Instant::now() + CALL_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("step {step}: `kubectl {shown}` ran over {CALL_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Out {
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    /// Runs the command line, asserts exit 0, returns stdout.
    #[track_caller]
    fn ok(&self, step: &str, line: &str) -> String {
        let out = self.run(step, &split(line));
        assert_eq!(
            out.code, 0,
            "step {step}: `kubectl {line}` failed\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Runs the command line, asserts a non-zero exit.
    #[track_caller]
    fn fails(&self, step: &str, line: &str) -> Out {
        let out = self.run(step, &split(line));
        assert_ne!(
            out.code, 0,
            "step {step}: `kubectl {line}` should have failed\nstdout:\n{}",
            out.stdout
        );
        out
    }

    /// `kubectl get WHAT -o jsonpath=TEMPLATE` (the template may hold spaces).
    #[track_caller]
    fn jsonpath(&self, step: &str, what: &str, template: &str) -> String {
        let out = self.run(step, &get_args(what, template));
        assert_eq!(
            out.code, 0,
            "step {step}: `kubectl get {what}` failed:\n{}",
            out.stderr
        );
        out.stdout
    }

    /// Polls `kubectl get WHAT -o jsonpath=TEMPLATE` until `cond` holds on
    /// its output, for at most `secs` seconds.
    #[track_caller]
    fn eventually(
        &self,
        step: &str,
        secs: u64,
        what: &str,
        template: &str,
        cond: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = self.run(step, &get_args(what, template));
            if out.code == 0 && cond(&out.stdout) {
                return;
            }
            last = format!("exit {}\n{}{}", out.code, out.stdout, out.stderr);
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("step {step}: `kubectl get {what}` did not get there in {secs} s; last:\n{last}");
    }
}

fn split(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn get_args<'a>(what: &'a str, template: &'a str) -> Vec<&'a str> {
    let mut args = vec!["get"];
    args.extend(split(what));
    args.extend(["-o", template]);
    args
}

fn read_all(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut text);
        }
        text
    })
}

#[track_caller]
fn has(step: &str, text: &str, needle: &str) {
    assert!(
        text.contains(needle),
        "step {step}: expected {needle:?} in:\n{text}"
    );
}

/// `name nodeName phase` lines, one per pod.
const POD_ROWS: &str =
    "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{\"\\n\"}{end}";

type Pod = (String, String, String);

fn rows(out: &str) -> Vec<Pod> {
    out.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace().map(str::to_owned);
            Some((it.next()?, it.next()?, it.next()?))
        })
        .collect()
}

/// (name, node, phase) of the pods labelled `app=APP`.
fn pods(k: &Kubectl, step: &str, app: &str) -> Vec<Pod> {
    rows(&k.jsonpath(step, &format!("pods -n {NS} -l app={app}"), POD_ROWS))
}

/// Waits until exactly `n` pods of `app` exist, all Running.
fn running(k: &Kubectl, step: &str, app: &str, n: usize) {
    let what = format!("pods -n {NS} -l app={app}");
    k.eventually(step, 30, &what, POD_ROWS, |out| {
        let pods = rows(out);
        pods.len() == n && pods.iter().all(|p| p.2 == "Running")
    });
}

fn version(k: &Kubectl) {
    let step = "version";
    has(step, &k.ok(step, "version"), "Server Version: v1.33.");
    let json: serde_json::Value = serde_json::from_str(&k.ok(step, "version -o json")).unwrap();
    assert_eq!(json["serverVersion"]["major"], "1", "step {step}: {json}");
    assert_eq!(json["serverVersion"]["minor"], "33", "step {step}: {json}");
}

fn get_nodes(k: &Kubectl) {
    let step = "get nodes";
    has(step, &k.ok(step, "get nodes"), "NAME");
    let names = k.ok(step, "get nodes -o name");
    assert_eq!(
        names, "node/node-1\nnode/node-2\nnode/node-3\n",
        "step {step}"
    );
    let ready = r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#;
    k.eventually(step, 20, "nodes", ready, |out| out == "True True True");
    // The server's table: kubectl prints its columns as they come.
    let table = k.ok(step, "get nodes");
    has(step, &table, "NAME     STATUS   ROLES    AGE");
    assert_eq!(column(step, &table, "node-1", 1), "Ready");
    assert_eq!(column(step, &table, "node-1", 4), "v1.33.0");
    let wide = k.ok(step, "get nodes -o wide");
    for header in [
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ] {
        has(step, &wide, header);
    }
}

/// Polls `kubectl LINE` (a table) until `cond` holds on it, for at most
/// 20 seconds; returns that table.
#[track_caller]
fn table_until(k: &Kubectl, step: &str, line: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let table = k.ok(step, line);
        if cond(&table) {
            return table;
        }
        assert!(
            Instant::now() < deadline,
            "step {step}: `kubectl {line}` did not get there in 20 s; last:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The whitespace-separated cell `n` of the table row whose first cell is
/// `name` (cells used here hold no spaces).
#[track_caller]
fn column(step: &str, table: &str, name: &str, n: usize) -> String {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .and_then(|cells| cells.get(n).map(|c| (*c).to_string()))
        .unwrap_or_else(|| panic!("step {step}: no cell {n} for {name} in:\n{table}"))
}

fn apply(k: &Kubectl, cluster: &Cluster) {
    let step = "apply";
    let file = cluster.sb.write("app.yaml", MANIFEST);
    // No --validate=false: kubectl's default validation must pass.
    let line = format!("apply -f {}", file.display());
    let out = k.ok(step, &line);
    for kind in [
        "namespace/kctl",
        "deployment.apps/web",
        "service/web",
        "deployment.apps/db",
    ] {
        has(step, &out, &format!("{kind} created"));
    }
    has(step, &out, "poddisruptionbudget.policy/db created");
    // Applying again changes nothing. (kubectl reports a PDB "configured"
    // every time, against a real apiserver too: its selector's patch
    // strategy is `replace`, so the computed patch is never empty.)
    let again = k.ok(step, &line);
    for kind in [
        "namespace/kctl",
        "deployment.apps/web",
        "service/web",
        "deployment.apps/db",
    ] {
        has(step, &again, &format!("{kind} unchanged"));
    }
    let ip = k.jsonpath(
        step,
        &format!("service web -n {NS}"),
        "jsonpath={.spec.clusterIP}",
    );
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "step {step}: clusterIP {ip:?}"
    );
}

fn get_pods(k: &Kubectl) {
    let step = "get pods";
    running(k, step, "web", 2);
    running(k, step, "db", 1);
    let table = k.ok(step, &format!("get pods -n {NS}"));
    has(step, &table, "NAME");
    let names: Vec<&str> = table.lines().skip(1).collect();
    let count = |prefix: &str| names.iter().filter(|r| r.starts_with(prefix)).count();
    assert_eq!(
        (names.len(), count("web-"), count("db-")),
        (3, 2, 1),
        "step {step}:\n{table}"
    );
    has(step, &table, "NAME");
    // Running comes before Ready (the kubelet model's readiness delay).
    let (pod, node, _) = pods(k, step, "db").remove(0);
    let wide = table_until(k, step, &format!("get pods -n {NS} -o wide"), |t| {
        column(step, t, &pod, 1) == "1/1"
    });
    has(step, &wide, "READY   STATUS    RESTARTS   AGE");
    for header in ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"] {
        has(step, &wide, header);
    }
    assert_eq!(column(step, &wide, &pod, 2), "Running");
    assert_eq!(column(step, &wide, &pod, 3), "0");
    assert!(
        column(step, &wide, &pod, 5)
            .parse::<std::net::Ipv4Addr>()
            .is_ok(),
        "step {step}: no pod IP in\n{wide}"
    );
    assert_eq!(column(step, &wide, &pod, 6), node, "step {step}:\n{wide}");
}

fn scale_and_rollout_status(k: &Kubectl) {
    let step = "scale";
    let out = k.ok(step, &format!("scale deployment web -n {NS} --replicas 3"));
    has(step, &out, "deployment.apps/web scaled");
    running(k, step, "web", 3);
    let step = "rollout status";
    let out = k.ok(
        step,
        &format!("rollout status deployment/web -n {NS} --timeout 60s"),
    );
    has(step, &out, "deployment \"web\" successfully rolled out");
    let ready = k.jsonpath(
        step,
        &format!("deployment web -n {NS}"),
        "jsonpath={.status.readyReplicas}",
    );
    assert_eq!(ready, "3", "step {step}");
    let step = "get deploy";
    let table = k.ok(step, &format!("get deploy -n {NS}"));
    has(step, &table, "NAME   READY   UP-TO-DATE   AVAILABLE   AGE");
    assert_eq!(column(step, &table, "web", 1), "3/3");
    assert_eq!(column(step, &table, "db", 1), "1/1");
    let wide = k.ok(step, &format!("get deploy web -n {NS} -o wide"));
    assert_eq!(column(step, &wide, "web", 5), "web");
    assert_eq!(column(step, &wide, "web", 6), "nginx:1.27");
    assert_eq!(column(step, &wide, "web", 7), "app=web");
}

fn rollout_restart(k: &Kubectl) {
    let step = "rollout restart";
    let before: Vec<String> = pods(k, step, "web").into_iter().map(|p| p.0).collect();
    let out = k.ok(step, &format!("rollout restart deployment/web -n {NS}"));
    has(step, &out, "deployment.apps/web restarted");
    let stamp =
        r"jsonpath={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}";
    let at = k.jsonpath(step, &format!("deployment web -n {NS}"), stamp);
    assert!(at.ends_with('Z'), "step {step}: restartedAt {at:?}");
    let out = k.ok(
        step,
        &format!("rollout status deployment/web -n {NS} --timeout 60s"),
    );
    has(step, &out, "deployment \"web\" successfully rolled out");
    // Every pod is replaced: three Running pods, none from before.
    k.eventually(
        step,
        30,
        &format!("pods -n {NS} -l app=web"),
        POD_ROWS,
        |out| {
            let pods = rows(out);
            pods.len() == 3
                && pods
                    .iter()
                    .all(|p| p.2 == "Running" && !before.contains(&p.0))
        },
    );
}

fn unschedulable(k: &Kubectl, step: &str, node: &str) -> String {
    k.jsonpath(
        step,
        &format!("node {node}"),
        "jsonpath={.spec.unschedulable}",
    )
}

fn cordon_uncordon(k: &Kubectl) {
    let step = "cordon";
    has(step, &k.ok(step, "cordon node-1"), "node/node-1 cordoned");
    assert_eq!(unschedulable(k, step, "node-1"), "true", "step {step}");
    let table = k.ok(step, "get node node-1");
    assert_eq!(
        column(step, &table, "node-1", 1),
        "Ready,SchedulingDisabled"
    );
    let step = "uncordon";
    has(
        step,
        &k.ok(step, "uncordon node-1"),
        "node/node-1 uncordoned",
    );
    let flag = unschedulable(k, step, "node-1");
    assert!(
        flag.is_empty() || flag == "false",
        "step {step}: unschedulable {flag:?}"
    );
    let table = k.ok(step, "get node node-1");
    assert_eq!(column(step, &table, "node-1", 1), "Ready");
}

fn drain(node: &str) -> String {
    format!("drain {node} --ignore-daemonsets --delete-emptydir-data --timeout 20s")
}

/// The single `db` pod is guarded by `minAvailable: 1`: draining its node
/// is refused with the budget's message. Returns that node.
fn drain_refused(k: &Kubectl) -> String {
    let step = "drain refused by the budget";
    let status = "jsonpath={.status.observedGeneration} {.status.disruptionsAllowed}";
    k.eventually(step, 20, &format!("pdb db -n {NS}"), status, |out| {
        out == "1 0"
    });
    let db = pods(k, step, "db");
    assert_eq!(db.len(), 1, "step {step}: {db:?}");
    let (pod, node, _) = db[0].clone();
    let out = k.fails(step, &drain(&node));
    has(step, &out.stderr, BUDGET_REFUSAL);
    has(step, &out.stdout, &format!("node/{node} cordoned"));
    assert_eq!(unschedulable(k, step, &node), "true", "step {step}");
    let still = pods(k, step, "db");
    assert!(
        still.iter().any(|p| p.0 == pod && p.1 == node),
        "step {step}: {still:?}"
    );
    node
}

/// With two `db` replicas on different nodes the budget allows one
/// eviction: the drain succeeds and the node ends up empty.
fn drain_allowed(k: &Kubectl, node: &str) {
    let step = "drain allowed";
    let out = k.ok(step, &format!("scale deployment db -n {NS} --replicas 2"));
    has(step, &out, "deployment.apps/db scaled");
    running(k, step, "db", 2);
    let db = pods(k, step, "db");
    assert_ne!(
        db[0].1, db[1].1,
        "step {step}: the db pods share a node: {db:?}"
    );
    let allowed = "jsonpath={.status.disruptionsAllowed}";
    k.eventually(step, 20, &format!("pdb db -n {NS}"), allowed, |out| {
        out == "1"
    });
    let out = k.ok(step, &drain(node));
    has(step, &out, &format!("node/{node} drained"));
    has(step, &out, "evicted");
    let on_node = format!("pods -A --field-selector spec.nodeName={node}");
    k.eventually(
        step,
        30,
        &on_node,
        "jsonpath={.items[*].metadata.name}",
        str::is_empty,
    );
    running(k, step, "db", 2);
    let db = pods(k, step, "db");
    assert!(db.iter().all(|p| p.1 != node), "step {step}: {db:?}");
}

fn delete_node(k: &Kubectl, node: &str) {
    let step = "delete node";
    has(
        step,
        &k.ok(step, &format!("delete node {node}")),
        &format!("node \"{node}\" deleted"),
    );
    let names = k.ok(step, "get nodes -o name");
    assert_eq!(names.lines().count(), 2, "step {step}:\n{names}");
    assert!(
        !names.lines().any(|n| n == format!("node/{node}")),
        "step {step}:\n{names}"
    );
    has(
        step,
        &k.fails(step, &format!("get node {node}")).stderr,
        "NotFound",
    );
}

fn patch_merge(k: &Kubectl) {
    let step = "patch --type merge";
    let body = r#"{"metadata":{"labels":{"tier":"front"}},"spec":{"replicas":2}}"#;
    let line = format!("patch deployment web -n {NS} --type merge -p {body}");
    has(step, &k.ok(step, &line), "deployment.apps/web patched");
    let fields = "jsonpath={.metadata.labels.tier} {.spec.replicas}";
    assert_eq!(
        k.jsonpath(step, &format!("deployment web -n {NS}"), fields),
        "front 2",
        "step {step}"
    );
    has(
        step,
        &k.ok(step, &line),
        "deployment.apps/web patched (no change)",
    );
    running(k, step, "web", 2);
}

fn logs(k: &Kubectl) {
    let step = "logs";
    let pod = pods(k, step, "web").remove(0).0;
    let text = k.ok(step, &format!("logs -n {NS} {pod}"));
    assert!(!text.trim().is_empty(), "step {step}: no log for {pod}");
    let text = k.ok(step, &format!("logs -n {NS} deployment/web"));
    assert!(
        !text.trim().is_empty(),
        "step {step}: no log for deployment/web"
    );
    has(
        step,
        &k.fails(step, &format!("logs -n {NS} nope")).stderr,
        "not found",
    );
}

fn virtual_service(k: &Kubectl, cluster: &Cluster) {
    let step = "virtualservice";
    let file = cluster.sb.write("vs.yaml", VIRTUAL_SERVICE);
    let out = k.ok(step, &format!("apply -f {}", file.display()));
    has(step, &out, "virtualservice.networking.istio.io/web created");
    let table = k.ok(step, &format!("get virtualservices -n {NS}"));
    // The CRD's additionalPrinterColumns, as Istio's own CRD declares them.
    assert_eq!(header(&table), ["NAME", "GATEWAYS", "HOSTS", "AGE"]);
    // No gateways: a null cell, which kubectl prints blank.
    assert_eq!(column(step, &table, "web", 1), "[\"web\"]");
    let attempts = "jsonpath={.spec.http[0].retries.attempts}";
    assert_eq!(
        k.jsonpath(step, &format!("vs web -n {NS}"), attempts),
        "3",
        "step {step}"
    );
    let crd = k.ok(step, "get crd virtualservices.networking.istio.io -o name");
    has(
        step,
        &crd,
        "customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io",
    );
}

/// The book's manifests apply with kubectl's default validation; a kind the
/// server does not know is still reported as one.
fn apply_examples(k: &Kubectl, cluster: &Cluster) {
    let step = "apply examples";
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/go-demo-8");
    let ns = examples.join("namespace.yaml");
    has(
        step,
        &k.ok(step, &format!("apply -f {}", ns.display())),
        "namespace/go-demo-8 created",
    );
    let app = examples.join("app");
    let out = k.ok(step, &format!("apply -n go-demo-8 -f {}", app.display()));
    for kind in [
        "deployment.apps/go-demo-8",
        "service/go-demo-8",
        "deployment.apps/go-demo-8-db",
    ] {
        has(step, &out, &format!("{kind} created"));
    }
    let hpa = examples.join("health/hpa.yaml");
    let out = k.ok(step, &format!("apply -n go-demo-8 -f {}", hpa.display()));
    has(
        step,
        &out,
        "horizontalpodautoscaler.autoscaling/go-demo-8 created",
    );
    let unknown = "apiVersion: v1\nkind: Gizmo\nmetadata:\n  name: x\n";
    let file = cluster.sb.write("gizmo.yaml", unknown);
    let out = k.fails(step, &format!("apply -f {}", file.display()));
    has(
        step,
        &out.stderr,
        "no matches for kind \"Gizmo\" in version \"v1\"",
    );
}

/// The words of a table's header line (`MIN AVAILABLE` is two words).
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

fn printer_columns(k: &Kubectl) {
    let step = "printer columns";
    let rs = k.ok(step, &format!("get rs -n {NS} -l app=web"));
    assert_eq!(
        header(&rs),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "step {step}:\n{rs}"
    );
    let wide = k.ok(step, &format!("get rs -n {NS} -l app=web -o wide"));
    assert_eq!(header(&wide)[5..], ["CONTAINERS", "IMAGES", "SELECTOR"]);
    let hpa = k.ok(step, "get hpa -n go-demo-8");
    assert_eq!(
        header(&hpa),
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ],
        "step {step}:\n{hpa}"
    );
    assert_eq!(column(step, &hpa, "go-demo-8", 1), "Deployment/go-demo-8");
    let pdb = k.ok(step, "get pdb -A");
    assert_eq!(
        header(&pdb),
        [
            "NAMESPACE",
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ],
        "step {step}:\n{pdb}"
    );
    assert_eq!(column(step, &pdb, NS, 2), "1", "step {step}:\n{pdb}");
    assert_eq!(column(step, &pdb, NS, 3), "N/A", "step {step}:\n{pdb}");
    let ns = k.ok(step, &format!("get ns {NS}"));
    assert_eq!(header(&ns), ["NAME", "STATUS", "AGE"]);
    assert_eq!(column(step, &ns, NS, 1), "Active");
    let ep = k.ok(step, &format!("get endpoints web -n {NS}"));
    assert_eq!(header(&ep), ["NAME", "ENDPOINTS", "AGE"]);
    has(step, &column(step, &ep, "web", 1), ":80");
    let events = k.ok(step, &format!("get events -n {NS}"));
    assert_eq!(
        header(&events),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "step {step}:\n{events}"
    );
}

/// kubectl's typed generators send protobuf; each object is created and
/// prints with its kind's columns, and the Deployment rolls out.
fn create_generators(k: &Kubectl) {
    let step = "kubectl create";
    let made = [
        (
            "deployment made --image=nginx:1.27 --replicas=2",
            "deployment.apps/made",
        ),
        (
            "configmap settings --from-literal=a=1 --from-literal=b=2",
            "configmap/settings",
        ),
        (
            "secret generic token --from-literal=key=value",
            "secret/token",
        ),
        ("service clusterip front --tcp=80:8080", "service/front"),
        ("service nodeport edge --tcp=80:8080", "service/edge"),
        ("job once --image=busybox -- echo hi", "job.batch/once"),
        ("serviceaccount robot", "serviceaccount/robot"),
        (
            "poddisruptionbudget made --selector=app=made --max-unavailable=50%",
            "poddisruptionbudget.policy/made",
        ),
    ];
    for (what, name) in made {
        has(
            step,
            &k.ok(step, &format!("-n {NS} create {what}")),
            &format!("{name} created"),
        );
    }
    has(
        step,
        &k.ok(step, "create namespace scratch"),
        "namespace/scratch created",
    );
    let cron = [
        "create",
        "cronjob",
        "tick",
        "-n",
        NS,
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    ];
    let out = k.run(step, &cron);
    assert_eq!(out.code, 0, "step {step}: {}", out.stderr);
    has(step, &out.stdout, "cronjob.batch/tick created");
    let out = k.ok(
        step,
        &format!("rollout status deployment/made -n {NS} --timeout 60s"),
    );
    has(step, &out, "deployment \"made\" successfully rolled out");
    created_objects_print(k);
    // A kind the decoder has no table for is refused, not half-created.
    let out = k.fails(
        step,
        &format!("create role reader --verb=get --resource=pods -n {NS}"),
    );
    has(step, &out.stderr, "send the object as JSON");
}

/// What `create_generators` made prints with its kind's columns.
fn created_objects_print(k: &Kubectl) {
    let step = "kubectl create";
    let cm = k.ok(step, &format!("get configmap settings -n {NS}"));
    assert_eq!(column(step, &cm, "settings", 1), "2");
    let secret = k.ok(step, &format!("get secret token -n {NS}"));
    assert_eq!(header(&secret), ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(column(step, &secret, "token", 1), "Opaque");
    let value = k.jsonpath(
        step,
        &format!("secret token -n {NS}"),
        "jsonpath={.data.key}",
    );
    assert_eq!(value, "dmFsdWU=", "step {step}");
    let svc = k.ok(step, &format!("get svc edge -n {NS}"));
    has(step, &column(step, &svc, "edge", 4), "80:3");
    let sa = k.ok(step, &format!("get sa robot -n {NS}"));
    assert_eq!(header(&sa), ["NAME", "SECRETS", "AGE"]);
    let pdb = k.ok(step, &format!("get pdb made -n {NS}"));
    assert_eq!(column(step, &pdb, "made", 2), "50%");
    let cj = k.ok(step, &format!("get cronjob tick -n {NS}"));
    assert_eq!(
        header(&cj),
        [
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"
        ],
        "step {step}:\n{cj}"
    );
    assert_eq!(column(step, &cj, "tick", 7), "False", "step {step}:\n{cj}");
    let job = k.ok(step, &format!("get job once -n {NS}"));
    assert_eq!(
        header(&job),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
}

/// `kubectl get pods -w --watch-only` prints the server's Table rows for
/// the changes a deletion causes; stopped once they appear (at most 30 s).
fn watch_pods(k: &Kubectl) {
    let step = "get -w";
    let mut child = Command::new(&k.bin)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args([
            "get",
            "pods",
            "-n",
            NS,
            "-l",
            "app=web",
            "-w",
            "--watch-only",
        ])
        .env("HOME", &k.home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = Arc::clone(&seen);
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };
    let pod = pods(k, step, "web").remove(0).0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = |t: &str| t.starts_with("NAME") && t.lines().any(|l| l.starts_with(&pod));
    loop {
        // Delete until the watch (which may still be connecting) saw it.
        if !done(&seen.lock().unwrap()) {
            k.run(step, &["delete", "pod", &pod, "-n", NS, "--wait=false"]);
        }
        std::thread::sleep(Duration::from_millis(500));
        if done(&seen.lock().unwrap()) || Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let text = seen.lock().unwrap().clone();
    assert!(done(&text), "step {step}: no row for {pod} in:\n{text}");
    assert_eq!(
        header(&text),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    running(k, step, "web", 2);
}

/// Runs one step and prints how long it took.
fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    println!("step {name}: ok in {:.1?}", started.elapsed());
    out
}

#[test]
fn kubectl_drives_the_sandbox() {
    let Some(bin) = find_kubectl() else {
        println!("SKIPPED: kubectl not installed (run scripts/install-kubectl.sh target/tools)");
        return;
    };
    let started = Instant::now();
    let cluster = Cluster::start(3);
    let k = Kubectl {
        bin,
        kubeconfig: cluster.sb.path("kube.yaml"),
        home: cluster.sb.dir.path().to_owned(),
    };
    timed("version", || version(&k));
    timed("get nodes", || get_nodes(&k));
    timed("apply", || apply(&k, &cluster));
    timed("get pods", || get_pods(&k));
    timed("scale + rollout status", || scale_and_rollout_status(&k));
    timed("rollout restart", || rollout_restart(&k));
    timed("cordon / uncordon", || cordon_uncordon(&k));
    let node = timed("drain refused", || drain_refused(&k));
    timed("drain allowed", || drain_allowed(&k, &node));
    timed("delete node", || delete_node(&k, &node));
    timed("patch --type merge", || patch_merge(&k));
    timed("logs", || logs(&k));
    timed("get -w", || watch_pods(&k));
    timed("virtualservice", || virtual_service(&k, &cluster));
    timed("apply examples", || apply_examples(&k, &cluster));
    timed("printer columns", || printer_columns(&k));
    timed("kubectl create", || create_generators(&k));
    println!("kubectl conformance passed in {:.1?}", started.elapsed());
}
