//! The lab made dual-stack: IPv6 addresses on the lab's own veths (inside
//! its namespaces only — never the host's), IPv6 forwarding in the node
//! namespace, an HTTP server on each pod's IPv6 address, and kube-proxy's
//! `ip6tables` layout for the same Service (ClusterIP and NodePort), written
//! through the chosen backend's tools (`ip6tables-legacy-restore` or
//! `ip6tables-nft-restore`), as kube-proxy writes each family separately.

use std::process::{Command, Stdio};
use std::time::Duration;

use squall_dataplane::hash;
use squall_dataplane::snapshot::Backend;

use super::{Lab, NODE_PORT, POD_PORT, SERVICE, Skip, pipe_to, wait_until};

/// The node's IPv6 address on the client link.
pub const NODE_IP6: &str = "fd00:240::1";
/// The lab Service's IPv6 ClusterIP.
pub const CLUSTER_IP6: &str = "fd00:240:100::10";

impl Lab {
    /// [`Lab::start`], then dual-stack, with the IPv6 rules written
    /// through `backend`.
    pub fn start_dual_stack(backend: Backend) -> Result<Self, Skip> {
        let mut lab = Self::start()?;
        lab.wire6();
        lab.start_servers6();
        let restore = match backend {
            Backend::Legacy => "ip6tables-legacy-restore",
            Backend::Nft => "ip6tables-nft-restore",
        };
        let argv = [restore, "-w", "5", "--noflush"];
        pipe_to(&lab.node, &argv, &Self::kube_proxy_rules6());
        Ok(lab)
    }

    /// Pod `i`'s IPv6 address.
    pub fn pod_ip6(i: usize) -> String {
        format!("fd00:240:{}::2", i + 1)
    }

    fn wire6(&self) {
        let (c, n) = (self.client.as_str(), self.node.as_str());
        // `nodad`: usable at once, no duplicate-address wait.
        ip6(c, "addr add fd00:240::2/64 dev eth0 nodad");
        ip6(n, &format!("addr add {NODE_IP6}/64 dev eth-c nodad"));
        ip6(c, "route add default via fd00:240::1");
        self.exec(n, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            .expect("IPv6 forwarding in the node namespace");
        for (i, pod) in self.pods.iter().enumerate() {
            let k = i + 1;
            ip6(
                n,
                &format!("addr add fd00:240:{k}::1/64 dev eth-p{k} nodad"),
            );
            ip6(
                pod,
                &format!("addr add {}/64 dev eth0 nodad", Self::pod_ip6(i)),
            );
            ip6(pod, &format!("route add default via fd00:240:{k}::1"));
        }
    }

    fn start_servers6(&mut self) {
        for i in 0..2 {
            let docroot = self.docroots[i].path().to_path_buf();
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
                .args(["--bind", &Self::pod_ip6(i), "--directory"])
                .arg(docroot)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start IPv6 http server");
            self.servers.push(child);
        }
        for i in 0..2 {
            let url = format!("http://[{}]:{POD_PORT}/", Self::pod_ip6(i));
            let node = self.node.clone();
            let up = wait_until(Duration::from_secs(10), || {
                self.exec(&node, &["curl", "-s", "--max-time", "1", &url])
                    .is_ok()
            });
            assert!(up, "pod{} IPv6 server did not come up", i + 1);
        }
    }

    /// kube-proxy's `ip6tables` layout for the lab Service: the same chain
    /// hashes for the Service port, `[addr]:port` in the endpoint hashes and
    /// DNAT targets, as kube-proxy writes them.
    pub fn kube_proxy_rules6() -> String {
        let spn = hash::service_port_name("lab", "web", "http");
        let h = hash::service_chain_suffix(&spn, "tcp");
        let ep: Vec<String> = (0..2)
            .map(|i| format!("[{}]:{POD_PORT}", Self::pod_ip6(i)))
            .collect();
        let sep: Vec<String> = ep
            .iter()
            .map(|e| hash::endpoint_chain(&spn, "tcp", e))
            .collect();
        let mut r = format!(
            "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n\
:KUBE-MARK-MASQ - [0:0]\n:KUBE-SVC-{h} - [0:0]\n:KUBE-EXT-{h} - [0:0]\n:{s0} - [0:0]\n:{s1} - [0:0]\n\
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE\n\
-A KUBE-SERVICES -d {CLUSTER_IP6}/128 -p tcp -m comment --comment \"{SERVICE} cluster IP\" -m tcp --dport 80 -j KUBE-SVC-{h}\n\
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
                "-A {s} -s {}/128 -m comment --comment \"{SERVICE}\" -j KUBE-MARK-MASQ\n\
-A {s} -p tcp -m comment --comment \"{SERVICE}\" -m tcp -j DNAT --to-destination {e}\n",
                Self::pod_ip6(i)
            ));
        }
        r.push_str("COMMIT\n");
        r
    }

    /// One HTTP GET over IPv6 from the client namespace; the body on
    /// success.
    pub fn get6(&self, host: &str, port: u16) -> Option<String> {
        let url = format!("http://[{host}]:{port}/");
        self.exec(&self.client, &["curl", "-s", "--max-time", "1", &url])
            .ok()
    }

    /// GET the IPv6 NodePort `attempts` times: which pods answered and how
    /// many requests failed.
    pub fn probe_node_port6(&self, attempts: usize) -> (Vec<String>, usize) {
        let mut seen: Vec<String> = Vec::new();
        let mut failures = 0;
        for _ in 0..attempts {
            match self.get6(NODE_IP6, NODE_PORT) {
                Some(body) if !seen.contains(&body.trim().to_owned()) => {
                    seen.push(body.trim().to_owned());
                }
                Some(_) => {}
                None => failures += 1,
            }
        }
        seen.sort();
        (seen, failures)
    }
}

/// `ip -6 -n NS …`; a failure is a broken lab, so panic.
fn ip6(ns: &str, words: &str) {
    let mut argv = vec!["ip", "-6", "-n", ns];
    argv.extend(words.split_whitespace());
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "lab wiring: {}: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
