//! A real-kernel lab node for data-plane tests: a network namespace this
//! test creates (and deletes on drop) with kube-proxy-shaped nat rules.
//! The host's own rules, interfaces and routes are never touched.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace with kube-proxy-shaped nat rules; deleted on drop.
pub struct Node {
    pub name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Node {
    /// A lab node with a small kube-proxy-shaped nat table (a Service
    /// 10.96.0.10:80 DNATed to 10.240.0.2:8080).
    pub fn new() -> Option<Self> {
        let node = Self::empty()?;
        for rule in [
            "-t nat -N KUBE-SERVICES",
            "-t nat -N KUBE-SVC-TEST",
            "-t nat -A PREROUTING -j KUBE-SERVICES",
            "-t nat -A OUTPUT -j KUBE-SERVICES",
            "-t nat -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp --dport 80 -j KUBE-SVC-TEST",
            "-t nat -A KUBE-SVC-TEST -p tcp -j DNAT --to-destination 10.240.0.2:8080",
        ] {
            let mut argv = vec!["ip", "netns", "exec", &node.name, "iptables"];
            argv.extend(rule.split(' '));
            sh(&argv);
        }
        Some(node)
    }

    /// [`Node::new`] plus a Docker-era filter table (seed 000's nodes):
    /// FORWARD policy DROP and kube-proxy's `KUBE-FORWARD` accepting marked
    /// and established traffic.
    pub fn docker_style() -> Option<Self> {
        let node = Self::new()?;
        node.load_nat(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:KUBE-FORWARD - [0:0]\n\
-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n\
-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT\n\
-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n",
        );
        Some(node)
    }

    /// Adds an `ip6tables` nat rule for an IPv6 Service (a dual-stack node).
    pub fn add_ipv6_service(&self) {
        for rule in [
            "-t nat -N KUBE-SVC-TEST6",
            "-t nat -N KUBE-SERVICES",
            "-t nat -A PREROUTING -j KUBE-SERVICES",
            "-t nat -A KUBE-SERVICES -d fd00:96::10/128 -p tcp --dport 80 -j KUBE-SVC-TEST6",
            "-t nat -A KUBE-SVC-TEST6 -p tcp -j DNAT --to-destination [fd00:240::2]:8080",
        ] {
            let mut argv = vec!["ip", "netns", "exec", &self.name, "ip6tables"];
            argv.extend(rule.split(' '));
            sh(&argv);
        }
    }

    /// Whether the IPv6 Service rule of [`Node::add_ipv6_service`] is there.
    pub fn has_ipv6_rules(&self) -> bool {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "ip6tables-save", "-t", "nat"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("-A KUBE-SVC-TEST6")
    }

    /// The filter table as `iptables-save` prints it.
    pub fn filter(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables-save", "-t", "filter"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether kube-proxy's forwarding rules are in place, under a FORWARD
    /// policy of DROP.
    pub fn forwards_like_docker(&self) -> bool {
        let f = self.filter();
        f.contains(":FORWARD DROP") && f.contains("-A FORWARD ") && f.contains("-A KUBE-FORWARD ")
    }

    /// A lab node with no rules yet (skipped, with the reason printed, when
    /// the machine cannot run the lab).
    pub fn empty() -> Option<Self> {
        if let Some(why) = unavailable() {
            eprintln!("SKIPPED: real-kernel test unavailable: {why}");
            return None;
        }
        let name = format!(
            "sq-cli-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        Some(Self { name })
    }

    /// Replaces the tables in `text` (`iptables-restore` input) whole.
    pub fn load_nat(&self, text: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables-restore"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "iptables-restore failed");
    }

    pub fn nat(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables-save", "-t", "nat"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn has_rules(&self) -> bool {
        self.nat().contains("-A KUBE-SVC-TEST")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("needs root".into());
    }
    for tool in ["ip", "iptables", "iptables-save"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .ok()?
            .success()
        {
            return Some(format!("`{tool}` not installed"));
        }
    }
    None
}

pub fn sh(argv: &[&str]) {
    let ok = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
    assert!(ok.success(), "{argv:?}");
}
