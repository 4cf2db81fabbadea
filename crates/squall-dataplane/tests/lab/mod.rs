//! A real-kernel lab for the data-plane integration tests: four network
//! namespaces — a client, a node and two pods — joined by veth pairs that
//! exist only inside them, kube-proxy-style rules in the node's nat table,
//! and a small HTTP server in each pod. Every address is a 10.240.x.y on
//! those veths; nothing touches the host's interfaces, routes or rules
//! (all iptables commands run via `ip netns exec <node>`). The [`Lab`]
//! guard kills its servers and deletes its namespaces on drop, including
//! when a test panics. Names carry the pid and a counter so tests can run
//! in parallel. Without root or the tools, [`Lab::start`] returns a skip
//! reason instead.

#![allow(dead_code)] // each test binary uses a different part of the lab

pub mod ipv6;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use squall_dataplane::hash;
use squall_dataplane::runner::{PrefixRunner, TokioRunner};
use squall_dataplane::snapshot::IptablesConfig;

/// Service port the lab programs.
pub const SERVICE: &str = "lab/web:http";
/// ClusterIP of the lab Service.
pub const CLUSTER_IP: &str = "10.240.100.10";
/// The node's address on the client link; NodePort traffic goes here.
pub const NODE_IP: &str = "10.240.0.1";
/// The NodePort.
pub const NODE_PORT: u16 = 30080;
/// Port the pods listen on.
pub const POD_PORT: u16 = 8080;
/// ClusterIP of a Service without endpoints (Docker-style node only).
pub const EMPTY_CLUSTER_IP: &str = "10.240.100.11";
/// NodePort of that Service.
pub const EMPTY_NODE_PORT: u16 = 30081;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Print a skip reason where the test runner does not hide it: libtest
/// captures `eprintln!` of passing tests, but not writes to the stderr
/// handle itself.
pub fn report_skip(what: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}: {reason}");
}

/// Why the lab cannot run here.
#[derive(Debug)]
pub struct Skip(pub String);

/// The running lab. Dropping it tears everything down.
pub struct Lab {
    pub client: String,
    pub node: String,
    pub pods: [String; 2],
    namespaces: Vec<String>,
    servers: Vec<Child>,
    docroots: Vec<tempfile::TempDir>,
}

fn run(argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn preflight(tools: &[&str]) -> Result<(), Skip> {
    let uid = run(&["id", "-u"]).map_err(Skip)?;
    if uid.trim() != "0" {
        return Err(Skip(format!("needs root (uid {})", uid.trim())));
    }
    for tool in tools {
        if run(&["sh", "-c", &format!("command -v {tool}")]).is_err() {
            return Err(Skip(format!(
                "`{tool}` not installed (apt-get install -y iptables nftables iproute2 curl python3)"
            )));
        }
    }
    Ok(())
}

fn unique_id() -> String {
    format!(
        "sq{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One bare network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Create a namespace, or explain why that is not possible here.
    pub fn create(tools: &[&str]) -> Result<Self, Skip> {
        preflight(tools)?;
        let name = format!("{}-bare", unique_id());
        run(&["ip", "netns", "add", &name])
            .map_err(|e| Skip(format!("cannot create network namespaces: {e}")))?;
        Ok(Self { name })
    }

    /// A runner whose commands execute in this namespace.
    pub fn runner(&self) -> PrefixRunner<TokioRunner> {
        PrefixRunner::netns(
            &self.name,
            TokioRunner::with_timeout(Duration::from_secs(30)),
        )
    }
}

impl Netns {
    /// Load an nft script (a fixture) into this namespace.
    pub fn load_nft(&self, fixture: &str) {
        let path = format!(
            "{}/tests/fixtures/nft/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        run(&["ip", "netns", "exec", &self.name, "nft", "-f", &path])
            .unwrap_or_else(|e| panic!("kernel rejected {fixture}: {e}"));
    }

    /// `nft list chain ip kube-proxy <chain>` in this namespace.
    pub fn kube_proxy_chain(&self, chain: &str) -> String {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.name,
            "nft",
            "list",
            "chain",
            "ip",
            "kube-proxy",
            chain,
        ])
        .unwrap_or_else(|e| panic!("list {chain}: {e}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            eprintln!("netns cleanup: {e}");
        }
    }
}

impl Lab {
    /// Build the lab, or explain why it cannot run here. Setup failures
    /// after the preflight are real failures and panic (the guard still
    /// cleans up).
    pub fn start() -> Result<Self, Skip> {
        preflight(&[
            "ip",
            "iptables",
            "iptables-save",
            "iptables-restore",
            "curl",
            "python3",
        ])?;
        let id = unique_id();
        let mut lab = Lab {
            client: format!("{id}-client"),
            node: format!("{id}-node"),
            pods: [format!("{id}-pod1"), format!("{id}-pod2")],
            namespaces: Vec::new(),
            servers: Vec::new(),
            docroots: Vec::new(),
        };
        let first = lab.client.clone();
        if let Err(e) = run(&["ip", "netns", "add", &first]) {
            return Err(Skip(format!("cannot create network namespaces: {e}")));
        }
        lab.namespaces.push(first);
        for ns in [lab.node.clone(), lab.pods[0].clone(), lab.pods[1].clone()] {
            run(&["ip", "netns", "add", &ns]).expect("ip netns add");
            lab.namespaces.push(ns);
        }
        lab.wire();
        lab.start_servers();
        lab.install_kube_proxy_rules();
        Ok(lab)
    }

    /// Run `argv` inside namespace `ns`.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<String, String> {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(argv);
        run(&full)
    }

    fn wire(&self) {
        let (c, n) = (self.client.as_str(), self.node.as_str());
        ip(
            n,
            &format!("link add eth-c type veth peer name eth0 netns {c}"),
        );
        ip(c, "addr add 10.240.0.2/24 dev eth0");
        ip(n, "addr add 10.240.0.1/24 dev eth-c");
        for (ns, dev) in [(c, "eth0"), (c, "lo"), (n, "eth-c"), (n, "lo")] {
            ip(ns, &format!("link set {dev} up"));
        }
        ip(c, "route add default via 10.240.0.1");
        self.exec(n, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .expect("enable forwarding in the node namespace");
        for (i, pod) in self.pods.iter().enumerate() {
            let k = i + 1;
            let p = pod.as_str();
            ip(
                n,
                &format!("link add eth-p{k} type veth peer name eth0 netns {p}"),
            );
            ip(n, &format!("addr add 10.240.{k}.1/24 dev eth-p{k}"));
            ip(p, &format!("addr add 10.240.{k}.2/24 dev eth0"));
            ip(n, &format!("link set eth-p{k} up"));
            ip(p, "link set eth0 up");
            ip(p, "link set lo up");
            ip(p, &format!("route add default via 10.240.{k}.1"));
        }
    }

    /// Address of pod `i` (0 or 1).
    pub fn pod_ip(i: usize) -> String {
        format!("10.240.{}.2", i + 1)
    }

    fn start_servers(&mut self) {
        for i in 0..2 {
            let dir = tempfile::tempdir().expect("docroot");
            std::fs::write(dir.path().join("index.html"), format!("pod{}\n", i + 1))
                .expect("index");
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.pods[i],
                    "python3",
                    "-m",
                    "http.server",
                ])
                .arg(POD_PORT.to_string())
                .args(["--bind", &Self::pod_ip(i), "--directory"])
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start http server");
            self.servers.push(child);
            self.docroots.push(dir);
        }
        for i in 0..2 {
            let url = format!("http://{}:{POD_PORT}/", Self::pod_ip(i));
            let node = self.node.clone();
            let up = wait_until(Duration::from_secs(10), || {
                self.exec(&node, &["curl", "-s", "--max-time", "1", &url])
                    .is_ok()
            });
            assert!(up, "pod{} server did not come up", i + 1);
        }
    }

    /// kube-proxy's layout for one NodePort Service with both pods, with
    /// hashes computed the way kube-proxy computes them.
    pub fn kube_proxy_rules() -> String {
        let spn = hash::service_port_name("lab", "web", "http");
        let h = hash::service_chain_suffix(&spn, "tcp");
        let ep: Vec<String> = (0..2)
            .map(|i| format!("{}:{POD_PORT}", Self::pod_ip(i)))
            .collect();
        let sep: Vec<String> = ep
            .iter()
            .map(|e| hash::endpoint_chain(&spn, "tcp", e))
            .collect();
        let mut r = format!(
            "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n\
:KUBE-MARK-MASQ - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-SVC-{h} - [0:0]\n:KUBE-EXT-{h} - [0:0]\n\
:{s0} - [0:0]\n:{s1} - [0:0]\n\
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE\n\
-A KUBE-SERVICES -d {CLUSTER_IP}/32 -p tcp -m comment --comment \"{SERVICE} cluster IP\" -m tcp --dport 80 -j KUBE-SVC-{h}\n\
-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n\
-A KUBE-NODEPORTS -p tcp -m comment --comment \"{SERVICE}\" -m tcp --dport {NODE_PORT} -j KUBE-EXT-{h}\n\
-A KUBE-EXT-{h} -m comment --comment \"masquerade traffic for {SERVICE} external destinations\" -j KUBE-MARK-MASQ\n\
-A KUBE-EXT-{h} -j KUBE-SVC-{h}\n\
-A KUBE-SVC-{h} -m comment --comment \"{SERVICE} -> {e0}\" -m statistic --mode random --probability 0.5000000000 -j {s0}\n\
-A KUBE-SVC-{h} -m comment --comment \"{SERVICE} -> {e1}\" -j {s1}\n",
            s0 = sep[0],
            s1 = sep[1],
            e0 = ep[0],
            e1 = ep[1],
        );
        for (i, (s, e)) in sep.iter().zip(&ep).enumerate() {
            r.push_str(&format!(
                "-A {s} -s {}/32 -m comment --comment \"{SERVICE}\" -j KUBE-MARK-MASQ\n\
-A {s} -p tcp -m comment --comment \"{SERVICE}\" -m tcp -j DNAT --to-destination {e}\n",
                Self::pod_ip(i)
            ));
        }
        r.push_str("COMMIT\n*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n*filter\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n");
        r
    }

    /// A Docker-era node, as in seed 000: FORWARD policy DROP and the
    /// filter chains kube-proxy (current iptables mode, see
    /// ../shared/reference/dataplane.md §1.1/§1.4) and the kubelet write, so
    /// the node forwards client→pod traffic only while `KUBE-FORWARD`
    /// accepts it (the NodePort path is marked 0x4000 by `KUBE-EXT`; the
    /// replies are ESTABLISHED). A Service without endpoints is rejected by
    /// `KUBE-SERVICES` / `KUBE-EXTERNAL-SERVICES`.
    pub fn docker_filter_rules() -> String {
        let no_ep = "\"lab/empty:http has no endpoints\"";
        format!(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FIREWALL - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n\
:KUBE-PROXY-CANARY - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]\n\
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n\
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
-A INPUT -j KUBE-FIREWALL\n\
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n\
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A OUTPUT -j KUBE-FIREWALL\n\
-A KUBE-NODEPORTS -p tcp -m comment --comment \"lab/local:http health check node port\" -m tcp --dport 32000 -j ACCEPT\n\
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n\
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n\
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n\
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
-A KUBE-SERVICES -d {EMPTY_CLUSTER_IP}/32 -p tcp -m comment --comment {no_ep} -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n\
-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment {no_ep} -m addrtype --dst-type LOCAL -m tcp --dport {EMPTY_NODE_PORT} -j REJECT --reject-with icmp-port-unreachable\n\
COMMIT\n"
        )
    }

    /// Everything a Docker-style node's kube-proxy (and kubelet) wrote:
    /// [`Lab::kube_proxy_rules`]' nat and mangle tables with
    /// [`Lab::docker_filter_rules`] as the filter table. A whole-table
    /// restore of it is what the resync loops in the tests apply.
    pub fn docker_node_rules() -> String {
        let all = Self::kube_proxy_rules();
        let cut = all.find("*filter").expect("filter block");
        format!("{}{}", &all[..cut], Self::docker_filter_rules())
    }

    /// [`Lab::start`], then make the node Docker-style (see
    /// [`Lab::docker_filter_rules`]).
    pub fn start_docker_style() -> Result<Self, Skip> {
        let lab = Self::start()?;
        lab.restore_tables(&Self::docker_node_rules());
        Ok(lab)
    }

    /// Replace the tables in `payload` whole (`iptables-restore` without
    /// `--noflush`), as a kube-proxy full sync does.
    pub fn restore_tables(&self, payload: &str) {
        pipe_to(&self.node, &["iptables-restore", "-w", "5"], payload);
    }

    /// The node's filter table as `iptables-save` prints it.
    pub fn filter_dump(&self) -> String {
        self.exec(&self.node, &["iptables-save", "-t", "filter"])
            .expect("iptables-save")
    }

    /// A built-in chain's policy in the node's `table`.
    pub fn policy(&self, table: &str, chain: &str) -> String {
        let dump = self
            .exec(&self.node, &["iptables-save", "-t", table])
            .expect("iptables-save");
        squall_dataplane::ruleset::parse_save(&dump)
            .get(table)
            .and_then(|t| t.chains.get(chain).cloned())
            .unwrap_or_default()
    }

    fn install_kube_proxy_rules(&self) {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node,
                "iptables-restore",
                "-w",
                "5",
                "--noflush",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iptables-restore");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(Self::kube_proxy_rules().as_bytes())
                .expect("write rules");
        }
        let out = child.wait_with_output().expect("wait iptables-restore");
        assert!(
            out.status.success(),
            "installing rules failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A runner whose commands execute in the node namespace.
    pub fn node_runner(&self) -> PrefixRunner<TokioRunner> {
        PrefixRunner::netns(
            &self.node,
            TokioRunner::with_timeout(Duration::from_secs(30)),
        )
    }

    /// Tool configuration for the node namespace.
    pub fn iptables_config() -> IptablesConfig {
        IptablesConfig {
            with_nft: false,
            ..IptablesConfig::default()
        }
    }

    /// One HTTP GET from the client namespace; the body on success.
    pub fn get(&self, host: &str, port: u16) -> Option<String> {
        let url = format!("http://{host}:{port}/");
        self.exec(&self.client, &["curl", "-s", "--max-time", "1", &url])
            .ok()
    }

    /// GET the NodePort up to `attempts` times; which pods answered and how
    /// many requests failed.
    pub fn probe_node_port(&self, attempts: usize) -> (Vec<String>, usize) {
        let mut seen: Vec<String> = Vec::new();
        let mut failures = 0;
        for _ in 0..attempts {
            match self.get(NODE_IP, NODE_PORT) {
                Some(body) => {
                    let body = body.trim().to_owned();
                    if !seen.contains(&body) {
                        seen.push(body);
                    }
                }
                None => failures += 1,
            }
        }
        seen.sort();
        (seen, failures)
    }

    /// The node's nat table as `iptables-save` prints it.
    pub fn nat_dump(&self) -> String {
        self.exec(&self.node, &["iptables-save", "-t", "nat"])
            .expect("iptables-save")
    }
}

/// Run `argv` in namespace `ns` with `input` on stdin; panic on failure.
fn pipe_to(ns: &str, argv: &[&str], input: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{} failed: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `ip -n NS …` with whitespace-separated words (lab names and
/// addresses never contain spaces); a failure is a broken lab, so panic.
fn ip(ns: &str, words: &str) {
    let mut argv = vec!["ip", "-n", ns];
    argv.extend(words.split_whitespace());
    run(&argv).unwrap_or_else(|e| panic!("lab wiring: {e}"));
}

/// Poll `check` every 100 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace also deletes the veths inside it.
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("lab cleanup: {e}");
            }
        }
    }
}

/// Create a bare namespace or print why not and return from the test.
#[macro_export]
macro_rules! netns_or_skip {
    ($tools:expr) => {
        match lab::Netns::create($tools) {
            Ok(ns) => ns,
            Err(lab::Skip(reason)) => {
                lab::report_skip("network namespace unavailable", &reason);
                return;
            }
        }
    };
}

/// Start a lab or print why not and return from the test.
#[macro_export]
macro_rules! lab_or_skip {
    () => {
        lab_or_skip!(lab::Lab::start())
    };
    ($start:expr) => {
        match $start {
            Ok(lab) => lab,
            Err(lab::Skip(reason)) => {
                lab::report_skip("real-kernel lab unavailable", &reason);
                return;
            }
        }
    };
}
