//! The data-plane faults on cluster nodes, end to end on a real kernel:
//! `squall run` → the sandbox's API → a helper pod pinned to the node → the
//! sandbox's process runtime runs `squall agent …` from that pod inside the
//! lab namespace that plays the node (`--run-image`, `--node-netns`).
//! Skipped, with the reason printed, when not root or without iptables.

mod common;

use std::process::Stdio;

use common::cluster::Cluster;
use common::lab::Node;
use common::{Run, Sandbox, wait_until};
use serde_json::Value;

const IMAGE: &str = "registry.example/squall:test";

/// A sandbox whose node-1 (and node-2, when given) are lab namespaces.
fn lab_cluster(sb: &Sandbox, node1: &Node, node2: Option<&Node>) -> Cluster {
    let image = format!("{IMAGE}={}", env!("CARGO_BIN_EXE_squall"));
    let n1 = format!("node-1={}", node1.name);
    let hosts = sb.path("hosts").display().to_string();
    let mut args = vec![
        "--nodes",
        "2",
        "--run-image",
        &image,
        "--node-netns",
        &n1,
        "--host-root",
        &hosts,
    ];
    let n2 = node2.map(|n| format!("node-2={}", n.name));
    if let Some(n2) = &n2 {
        args.extend(["--node-netns", n2]);
    }
    Cluster::start_with(sb, &args)
}

/// The helper pods squall left in kube-system.
fn helper_pods(cluster: &Cluster) -> Vec<Value> {
    let got = cluster.request(
        "GET",
        "/api/v1/namespaces/kube-system/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dsquall",
        "",
    );
    common::json_body(&got)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn flush_experiment(sb: &Sandbox, pause: u32, ttl: u32) -> String {
    let path = sb.write(
        "flush-node.yaml",
        &format!(
            r#"title: What happens when kube-proxy's rules on a node are flushed?
description: The seed's fault on a cluster node, through a helper pod.
configuration: {{squall_agent_image: "{IMAGE}"}}
method:
  - type: action
    name: flush-nat-on-node-1
    provider: {{type: python, module: squall.dataplane.actions, func: flush_rules,
      arguments: {{mode: nat, node: node-1, ttl_secs: {ttl}, timeout_secs: 30}}}}
    pauses: {{after: {pause}}}
rollbacks:
  - type: action
    name: restore-rules
    provider: {{type: python, module: squall.dataplane.actions, func: restore_rules,
      arguments: {{node: node-1, timeout_secs: 30}}}}
"#
        ),
    );
    path.display().to_string()
}

#[test]
fn a_flush_on_a_node_runs_in_a_helper_pod_and_the_rollback_restores() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, None);
    let mut child = run_until_flushed(&sb, &node, 3, 120);
    let pods = helper_pods(&cluster);
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pod = &pods[0];
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    assert_eq!(pod["spec"]["hostNetwork"], true);
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN", "NET_RAW"])
    );
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(child.wait().unwrap().success(), "{}", sb.read("squall.log"));
    // After the rollback: the rules are back, no helper pod is left.
    assert!(node.has_rules(), "{}", sb.read("squall.log"));
    assert!(helper_pods(&cluster).is_empty());
    let journal = sb.journal();
    assert_eq!(journal["status"], "completed");
    let flush = &journal["run"][0]["output"];
    assert_eq!(flush["nodes"][0]["node"], "node-1");
    assert_eq!(flush["mode"], "nat");
    assert_eq!(
        journal["rollbacks"][0]["output"]["restored"],
        serde_json::json!(["node-1"])
    );
}

#[test]
fn the_ttl_restores_when_squall_is_killed_and_recover_cleans_up() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, None);
    let mut child = run_until_flushed(&sb, &node, 600, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing of squall is alive on this side: the pod's own TTL restores.
    assert!(
        wait_until(20, || node.has_rules()),
        "the TTL did not restore"
    );
    let run: Run = sb.run(&["recover"]);
    run.code(0).has("restore kube-proxy rules on node node-1");
    assert!(node.has_rules());
    assert!(helper_pods(&cluster).is_empty());
}

#[test]
fn recover_after_squall_is_killed_restores_through_a_restore_pod() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, None);
    let mut child = run_until_flushed(&sb, &node, 600, 600);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!node.has_rules());
    let run: Run = sb.run(&["recover"]);
    run.code(0);
    assert!(node.has_rules(), "{}", run.stderr);
    assert!(helper_pods(&cluster).is_empty());
    // A second recover has nothing left to do.
    sb.run(&["recover"])
        .code(0)
        .lacks("restore kube-proxy rules on node");
}

#[test]
fn a_dry_run_plans_the_helper_pod_and_changes_nothing() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, None);
    let exp = flush_experiment(&sb, 0, 60);
    let run: Run = sb.run(&["run", &exp, "--kubeconfig", "kube.yaml", "--dry=actions"]);
    run.code(0)
        .has("dry run: would run a helper pod (registry.example/squall:test) on node node-1");
    assert!(node.has_rules());
    assert!(helper_pods(&cluster).is_empty());
}

/// kube-proxy's layout with comments for default/web:http → one endpoint.
fn web_rules(endpoint: &str) -> String {
    format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :KUBE-SERVICES - [0:0]\n:KUBE-SVC-WEB - [0:0]\n:KUBE-SEP-WEB - [0:0]\n\
         -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-WEB\n\
         -A KUBE-SVC-WEB -m comment --comment \"default/web:http -> {endpoint}:8080\" -j KUBE-SEP-WEB\n\
         -A KUBE-SEP-WEB -p tcp -m comment --comment \"default/web:http\" -m tcp -j DNAT --to-destination {endpoint}:8080\n\
         COMMIT\n"
    )
}

/// A selectorless Service `web` and its EndpointSlice with one ready endpoint.
fn create_web(cluster: &Cluster, endpoint: &str) {
    let svc = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},
        "spec":{"clusterIP":"10.96.0.20","ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"}]}}"#;
    let got = cluster.request("POST", "/api/v1/namespaces/default/services", svc);
    assert!(got.starts_with("HTTP/1.1 201"), "{got}");
    let slice = format!(
        r#"{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{{"name":"web-manual","namespace":"default",
        "labels":{{"kubernetes.io/service-name":"web"}}}},"addressType":"IPv4",
        "endpoints":[{{"addresses":["{endpoint}"],"conditions":{{"ready":true}}}}],
        "ports":[{{"name":"http","port":8080,"protocol":"TCP"}}]}}"#
    );
    let got = cluster.request(
        "POST",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        &slice,
    );
    assert!(got.starts_with("HTTP/1.1 201"), "{got}");
}

fn stale_experiment(sb: &Sandbox) -> String {
    let path = sb.write(
        "stale.yaml",
        &format!(
            r#"title: Do the nodes' rules follow the Service's endpoints?
description: Compare kube-proxy's rules on every node with the EndpointSlices.
configuration: {{squall_agent_image: "{IMAGE}"}}
steady-state-hypothesis:
  title: no node sends web's traffic to an endpoint that is gone
  probes:
    - type: probe
      name: no-stale-rules
      tolerance: {{type: jsonpath, path: "$.clean", expect: true}}
      provider: {{type: python, module: squall.dataplane.probes, func: stale_rules,
        arguments: {{service: web, namespace: default, timeout_secs: 30}}}}
method: []
"#
        ),
    );
    path.display().to_string()
}

#[test]
fn stale_rules_across_nodes_name_the_node_and_the_endpoint() {
    let Some(node1) = Node::empty() else { return };
    let Some(node2) = Node::empty() else { return };
    // The endpoint moved to .3: node-2 has synced, node-1 still sends to .2.
    node1.load_nat(&web_rules("10.240.0.2"));
    node2.load_nat(&web_rules("10.240.0.3"));
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node1, Some(&node2));
    create_web(&cluster, "10.240.0.3");
    let exp = stale_experiment(&sb);
    let run: Run = sb.run(&["run", &exp, "--kubeconfig", "kube.yaml"]);
    run.code(1);
    let journal = sb.journal();
    assert_eq!(journal["status"], "failed", "{}", run.stderr);
    let out = &journal["steady_states"]["before"]["probes"][0]["output"];
    assert_eq!(out["clean"], false);
    assert_eq!(out["nodes"]["node-2"]["clean"], true, "{out}");
    let findings = out["findings"].as_array().unwrap();
    let on_node1: Vec<(String, String)> = findings
        .iter()
        .map(|f| {
            assert_eq!(f["node"], "node-1", "{f}");
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["endpoint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        on_node1.contains(&("gone".into(), "10.240.0.2:8080".into())),
        "{on_node1:?}"
    );
    assert!(
        on_node1.contains(&("missing".into(), "10.240.0.3:8080".into())),
        "{on_node1:?}"
    );
    assert!(helper_pods(&cluster).is_empty());
    // After node-1 syncs, every node is clean.
    node1.load_nat(&web_rules("10.240.0.3"));
    sb.run(&["run", &exp, "--kubeconfig", "kube.yaml"]).code(0);
    assert_eq!(sb.journal()["status"], "completed");
}

#[test]
fn a_random_pick_of_nodes_is_flushed_and_all_nodes_are_restored() {
    let Some(node1) = Node::new() else { return };
    let Some(node2) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node1, Some(&node2));
    let exp = sb.write(
        "flush-random.yaml",
        &format!(
            r#"title: Two nodes lose kube-proxy's chains
description: A random pick of two nodes, restored on every node by the rollback.
configuration: {{squall_agent_image: "{IMAGE}"}}
method:
  - type: action
    name: flush-kube-chains
    provider: {{type: python, module: squall.dataplane.actions, func: flush_rules,
      arguments: {{mode: kube-chains, count: 2, ttl_secs: 120, timeout_secs: 30}}}}
    pauses: {{after: 3}}
rollbacks:
  - type: action
    name: restore-everywhere
    provider: {{type: python, module: squall.dataplane.actions, func: restore_rules,
      arguments: {{all_nodes: true, timeout_secs: 30}}}}
"#
        ),
    );
    let mut child = sb
        .cmd()
        .args(["run", exp.to_str().unwrap(), "--kubeconfig", "kube.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(30, || !node1.has_rules() && !node2.has_rules()));
    assert_eq!(helper_pods(&cluster).len(), 2);
    assert!(child.wait().unwrap().success(), "{}", sb.read("squall.log"));
    assert!(node1.has_rules() && node2.has_rules());
    assert!(helper_pods(&cluster).is_empty());
    let journal = sb.journal();
    let out = &journal["run"][0]["output"];
    assert!(out["seed"].is_i64() || out["seed"].is_u64(), "{out}");
    let mut restored: Vec<String> =
        serde_json::from_value(journal["rollbacks"][0]["output"]["restored"].clone()).unwrap();
    restored.sort();
    assert_eq!(restored, ["node-1", "node-2"]);
}

/// Starts `squall run` on the flush experiment and waits until node-1's
/// rules are gone and squall has seen the flush done.
fn run_until_flushed(sb: &Sandbox, node: &Node, pause: u32, ttl: u32) -> std::process::Child {
    let exp = flush_experiment(sb, pause, ttl);
    let child = sb
        .cmd()
        .args(["run", &exp, "--kubeconfig", "kube.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(30, || !node.has_rules()), "not flushed");
    // The agent saves the rules as flushed just after flushing; squall
    // reports the flush once that is done.
    assert!(wait_until(30, || sb
        .read("squall.log")
        .contains("rules flushed (")));
    child
}

#[test]
fn an_agent_killed_without_restoring_is_restored_by_the_restore_pod() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let cluster = lab_cluster(&sb, &node, None);
    let mut run = run_until_flushed(&sb, &node, 600, 600);
    // SIGKILL the flush pod's agent (its paths are under this test's
    // host root): no SIGTERM restore, the node ledger keeps its undo.
    let hosts = sb.path("hosts").display().to_string();
    let killed = std::process::Command::new("pkill")
        .args(["-KILL", "-f", "--", &format!("--ledger {hosts}")])
        .status()
        .unwrap();
    assert!(killed.success(), "no agent process found");
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(!node.has_rules());
    let recover: Run = sb.run(&["recover"]);
    recover.code(0);
    assert!(node.has_rules(), "{}", recover.stderr);
    assert!(helper_pods(&cluster).is_empty());
}

#[test]
fn rules_rewritten_after_the_flush_are_not_rolled_back() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let _cluster = lab_cluster(&sb, &node, None);
    let mut run = run_until_flushed(&sb, &node, 3, 120);
    // kube-proxy resyncs with a newer endpoint while the fault is on.
    node.load_nat(&web_rules("10.240.0.9"));
    assert!(run.wait().unwrap().success(), "{}", sb.read("squall.log"));
    let nat = node.nat();
    assert!(
        nat.contains("10.240.0.9:8080"),
        "the newer rules were rolled back:\n{nat}"
    );
    assert!(!node.has_rules(), "the old snapshot was put back:\n{nat}");
}
