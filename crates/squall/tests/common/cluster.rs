//! A `squall sandbox serve` child process for CLI tests against the
//! simulator, and the book's experiment files.

use std::process::Child;

use super::{Sandbox, http, http_with_host, start_sandbox, wait_until};

/// A running `squall sandbox serve`, stopped on drop.
pub struct Cluster {
    pub child: Child,
    pub server: String,
}

impl Cluster {
    pub fn start(sb: &Sandbox) -> Self {
        Self::start_with(sb, &[])
    }

    /// `squall sandbox serve` with more options.
    pub fn start_with(sb: &Sandbox, extra: &[&str]) -> Self {
        let mut args = vec![
            "--log-file",
            "sandbox.log",
            "sandbox",
            "serve",
            "--kubeconfig",
            "kube.yaml",
        ];
        args.extend_from_slice(extra);
        let (child, server) = start_sandbox(sb, &args);
        Self { child, server }
    }

    pub fn request(&self, method: &str, path: &str, body: &str) -> String {
        http(&self.server, method, path, body)
    }

    pub fn create_pod(&self) {
        let ns = self.request(
            "POST",
            "/api/v1/namespaces",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"go-demo-8"}}"#,
        );
        assert!(
            ns.starts_with("HTTP/1.1 201") || ns.contains("AlreadyExists"),
            "{ns}"
        );
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"go-demo-8","labels":{"app":"go-demo-8"}},
            "spec":{"containers":[{"name":"go-demo-8","image":"vfarcic/go-demo-8:0.0.1"}]}}"#;
        let created = self.request("POST", "/api/v1/namespaces/go-demo-8/pods", pod);
        assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    }

    pub fn pod_is_gone_or_terminating(&self) -> bool {
        let got = self.request("GET", "/api/v1/namespaces/go-demo-8/pods/go-demo-8", "");
        got.starts_with("HTTP/1.1 404") || got.contains("deletionTimestamp")
    }
}

impl Drop for Cluster {
    /// SIGTERM first, as a user's Ctrl-C would: the sandbox stops the pods
    /// it runs as processes gracefully (a data-plane agent restores its
    /// rules); SIGKILL if it has not gone within 15 s.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn example(name: &str) -> String {
    format!("{}/../../examples/book/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `squall sandbox serve --scenario go-demo-8`, waiting until the demo
/// application answers through the gateway; returns the cluster and
/// `INGRESS_HOST`.
pub fn demo_cluster(sb: &Sandbox) -> (Cluster, String) {
    serving_demo(sb, &["--scenario", "go-demo-8"])
}

/// `squall sandbox serve EXTRA…` with a demo scenario, waiting until
/// `/demo/person` answers through the gateway; returns `INGRESS_HOST`.
pub fn serving_demo(sb: &Sandbox, extra: &[&str]) -> (Cluster, String) {
    let cluster = Cluster::start_with(sb, extra);
    let ingress = ingress_host(sb);
    let ready = wait_until(60, || {
        let addr = format!("http://{ingress}");
        http_with_host(&addr, "/demo/person", "go-demo-8.acme.com").starts_with("HTTP/1.1 200")
    });
    assert!(ready, "the demo application never became ready");
    (cluster, ingress)
}

/// The gateway address the sandbox announced in its log (`INGRESS_HOST`).
pub fn ingress_host(sb: &Sandbox) -> String {
    let marker = "Demo application gateway on http://";
    assert!(wait_until(30, || sb.read("sandbox.log").contains(marker)));
    let log = sb.read("sandbox.log");
    let tail = log.split(marker).nth(1).unwrap();
    tail.split_whitespace().next().unwrap().to_owned()
}

pub fn unschedulable(cluster: &Cluster, node: &str) -> bool {
    let got = cluster.request("GET", &format!("/api/v1/nodes/{node}"), "");
    got.contains("\"unschedulable\":true")
}

/// Starts `squall run EXP --kubeconfig kube.yaml` in the background and
/// waits until it pauses after an activity (the fault is in place), for
/// the interrupt tests.
pub fn run_until_paused(sb: &Sandbox, exp: &std::path::Path) -> Child {
    let child = sb
        .cmd()
        .args(["run", exp.to_str().unwrap(), "--kubeconfig", "kube.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(30, || sb
            .read("squall.log")
            .contains("Pausing after activity")),
        "the run never reached its pause"
    );
    child
}
