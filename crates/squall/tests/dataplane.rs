//! `squall agent dataplane` and the `squall.dataplane.*` activities on a
//! real kernel: rules live in a network namespace this test creates and
//! deletes (the host's own rules, interfaces and routes are never touched).
//! Skipped, with the reason printed, when not root or without `ip` and
//! `iptables`.

mod common;

use common::lab::Node;
use common::{Run, Sandbox, wait_until};
use std::process::Stdio;

fn agent<'a>(node: &'a Node, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["agent", "dataplane", "--netns", node.name.as_str()];
    v.extend_from_slice(rest);
    v
}

#[test]
fn flush_then_recover_restores_and_diff_is_clean() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    sb.run(&agent(
        &node,
        &["flush", "--table", "nat", "--snapshot", "s.json"],
    ))
    .code(0)
    .has("Undo recorded in dataplane.ledger.jsonl");
    assert!(!node.has_rules(), "the nat table is flushed");
    let diff = sb.run(&agent(&node, &["diff", "--from", "s.json"]));
    diff.code(1);
    assert!(diff.stdout.contains("KUBE-SVC-TEST"), "{}", diff.stdout);
    sb.run(&["recover", "--ledger", "dataplane.ledger.jsonl"])
        .code(0)
        .has("Recovered: 1 change(s) undone");
    assert!(node.has_rules());
    sb.run(&agent(&node, &["diff", "--from", "s.json"])).code(0);
    sb.run(&["recover", "--ledger", "dataplane.ledger.jsonl"])
        .code(0)
        .has("Nothing to recover");
    // Restoring again from the snapshot is idempotent.
    sb.run(&agent(&node, &["restore", "--from", "s.json"]))
        .code(0)
        .has("Recovered: the live rules equal the snapshot");
    sb.run(&agent(&node, &["diff", "--from", "s.json"])).code(0);
}

#[test]
fn ttl_restores_by_itself() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let started = std::time::Instant::now();
    sb.run(&agent(
        &node,
        &[
            "flush",
            "--kube-chains",
            "--snapshot",
            "s.json",
            "--ttl",
            "1",
        ],
    ))
    .code(0)
    .has("TTL reached: restoring the rules")
    .has("Recovered nat: the live rules equal the snapshot");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(node.has_rules());
    sb.run(&["recover", "--ledger", "dataplane.ledger.jsonl"])
        .code(0)
        .has("Nothing to recover");
}

#[test]
fn sigkill_after_the_flush_then_recover() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let mut child = sb
        .cmd()
        .args(agent(
            &node,
            &[
                "flush",
                "--table",
                "nat",
                "--snapshot",
                "s.json",
                "--ttl",
                "600",
            ],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(20, || !node.has_rules()
        && sb
            .read("squall.log")
            .contains("Restoring the rules in 600s")));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !node.has_rules(),
        "nothing restored the rules of a killed agent"
    );
    sb.run(&["recover", "--ledger", "dataplane.ledger.jsonl"])
        .code(0);
    sb.run(&agent(&node, &["diff", "--from", "s.json"])).code(0);
}

/// Seed 000's `iptables -F` through the agent on a Docker-style node,
/// the agent killed with SIGKILL, then `squall recover`: rules and the
/// FORWARD DROP policy back, diff clean.
#[test]
fn filter_flush_sigkilled_then_recover_restores_rules_and_policies() {
    let Some(node) = Node::docker_style() else {
        return;
    };
    let sb = Sandbox::new();
    let mut child = sb
        .cmd()
        .args(agent(
            &node,
            &[
                "flush",
                "--table",
                "filter",
                "--snapshot",
                "s.json",
                "--ttl",
                "600",
            ],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(20, || sb
        .read("squall.log")
        .contains("Restoring the rules in 600s")));
    child.kill().unwrap();
    child.wait().unwrap();
    let flushed = node.filter();
    assert!(!flushed.contains("-A "), "filter flushed: {flushed}");
    assert!(flushed.contains(":FORWARD DROP"), "policy kept: {flushed}");
    assert!(node.has_rules(), "nat untouched");
    sb.run(&agent(&node, &["diff", "--from", "s.json"])).code(1);
    sb.run(&["recover", "--ledger", "dataplane.ledger.jsonl"])
        .code(0)
        .has("Recovered: 1 change(s) undone");
    assert!(node.forwards_like_docker(), "{}", node.filter());
    sb.run(&agent(&node, &["diff", "--from", "s.json"])).code(0);
}

#[test]
fn all_tables_flush_with_ttl_restores_rules_and_policies_by_itself() {
    let Some(node) = Node::docker_style() else {
        return;
    };
    let sb = Sandbox::new();
    sb.run(&agent(
        &node,
        &[
            "flush",
            "--all-tables",
            "--snapshot",
            "s.json",
            "--ttl",
            "1",
        ],
    ))
    .code(0)
    .has("-t nat -F")
    .has("-t filter -F")
    .has("-t mangle -F")
    .has("TTL reached: restoring the rules")
    .has("Recovered filter, nat: the live rules equal the snapshot");
    assert!(node.forwards_like_docker() && node.has_rules());
    sb.run(&agent(&node, &["diff", "--from", "s.json"])).code(0);
}

/// A dual-stack node: `--family ipv6` flushes only the `ip6tables` nat
/// table, the diff names `ip6:nat`, and `squall recover` restores it.
#[test]
fn ipv6_flush_then_recover_leaves_ipv4_alone_and_restores_ipv6() {
    let Some(node) = Node::new() else { return };
    node.add_ipv6_service();
    let sb = Sandbox::new();
    let args = [
        "flush",
        "--table",
        "nat",
        "--family",
        "ipv6",
        "--snapshot",
        "s.json",
    ];
    sb.run(&agent(&node, &args))
        .code(0)
        .has("Flushed (nat): ip6tables")
        .has(" -t nat -F");
    assert!(!node.has_ipv6_rules(), "IPv6 nat flushed");
    assert!(node.has_rules(), "IPv4 nat untouched");
    let diff = sb.run(&agent(&node, &["diff", "--from", "s.json"]));
    diff.code(1);
    assert!(diff.stdout.contains("\"ip6:nat\""), "{}", diff.stdout);
    sb.run(&["recover", "--ledger", "dataplane.ledger.jsonl"])
        .code(0)
        .has("Recovered: 1 change(s) undone");
    assert!(node.has_ipv6_rules() && node.has_rules());
    sb.run(&agent(&node, &["diff", "--from", "s.json"])).code(0);
}

fn experiment(sb: &Sandbox, node: &Node, pause: u32) -> std::path::PathBuf {
    sb.write(
        "flush.yaml",
        &format!(
            r#"title: What happens when kube-proxy's rules are flushed?
description: The seed's fault, on a lab node.
configuration: {{netns: {ns}}}
method:
  - type: action
    name: flush-nat
    provider: {{type: python, module: squall.dataplane.actions, func: flush_rules, arguments: {{mode: nat, netns: "${{netns}}"}}}}
    pauses: {{after: {pause}}}
rollbacks:
  - type: action
    name: restore-rules
    provider: {{type: python, module: squall.dataplane.actions, func: restore_rules, arguments: {{netns: "${{netns}}"}}}}
"#,
            ns = node.name
        ),
    )
}

/// `flush_rules {family: both}` on this node flushes the IPv4 and the IPv6
/// nat table, and the rollback restores both.
#[test]
fn a_dual_stack_experiment_flushes_both_families_and_rolls_back() {
    let Some(node) = Node::new() else { return };
    node.add_ipv6_service();
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(experiment(&sb, &node, 0))
        .unwrap()
        .replace("mode: nat,", "mode: nat, family: both,");
    let exp = sb.write("flush-both.yaml", &text);
    sb.run(&["run", exp.to_str().unwrap()])
        .code(0)
        .has("Rollback: restore-rules");
    let j = sb.journal();
    let commands: Vec<&str> = j["run"][0]["output"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands[0].starts_with("iptables") && commands[0].ends_with("-t nat -F"));
    assert!(commands[1].starts_with("ip6tables") && commands[1].ends_with("-t nat -F"));
    assert_eq!(j["rollbacks"][0]["output"]["restored"], true);
    assert!(node.has_rules() && node.has_ipv6_rules());
}

#[test]
fn experiment_flushes_and_rolls_back() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let exp = experiment(&sb, &node, 0);
    sb.run(&["run", exp.to_str().unwrap()])
        .code(0)
        .has("Action: flush-nat")
        .has("Rollback: restore-rules");
    assert!(node.has_rules());
    let j = sb.journal();
    assert_eq!(j["run"][0]["output"]["mode"], "nat");
    assert_eq!(j["rollbacks"][0]["output"]["restored"], true);
    assert!(j["squall"]["pending_undo"].as_array().unwrap().is_empty());
}

#[test]
fn dry_run_plans_the_flush_and_touches_nothing() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let exp = experiment(&sb, &node, 0);
    sb.run(&["run", exp.to_str().unwrap(), "--dry"])
        .code(0)
        .has("dry run: would run `iptables")
        .has("-t nat -F");
    assert!(node.has_rules(), "a dry run flushed the rules");
    let j = sb.journal();
    assert_eq!(j["run"][0]["output"]["dry"], true);
    assert!(
        !sb.read("journal.ledger.jsonl")
            .contains("\"op\":\"record\""),
        "a dry run recorded an undo"
    );
}

#[test]
fn experiment_killed_after_the_flush_is_recovered() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let exp = experiment(&sb, &node, 600);
    let mut child = sb
        .cmd()
        .arg("run")
        .arg(&exp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(20, || sb
        .read("squall.log")
        .contains("Pausing after activity")));
    assert!(!node.has_rules());
    child.kill().unwrap();
    child.wait().unwrap();
    let run: Run = sb.run(&["recover"]);
    run.code(0)
        .has("Undo: restore kube-proxy rules on dataplane:");
    assert!(node.has_rules());
}

fn count_files(dir: &std::path::Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(suffix)
        })
        .count()
}

/// One flush/restore cycle in `state`: `flush --table nat --ttl 0` with
/// `--keep-snapshots 3`, restored and verified at once.
fn cycle(sb: &Sandbox, node: &Node, state: &std::path::Path, i: usize) {
    let snap = state.join(format!("c{i:02}.snapshot.json"));
    let ledger = state.join(format!("c{i:02}.ledger.jsonl"));
    let (snap, ledger) = (snap.to_str().unwrap(), ledger.to_str().unwrap());
    let args = [
        "flush",
        "--table",
        "nat",
        "--snapshot",
        snap,
        "--ledger",
        ledger,
        "--ttl",
        "0",
        "--keep-snapshots",
        "3",
    ];
    sb.run(&agent(node, &args))
        .code(0)
        .has("the live rules equal the snapshot");
    assert!(node.has_rules(), "cycle {i} restored");
}

/// Repeated scheduled runs on one node (what helper pods do in
/// /var/lib/squall/dataplane): twenty flush/restore cycles leave at most
/// `--keep-snapshots` snapshots and ledgers, while a flush whose undo is
/// still pending keeps its snapshot through every prune and is recovered.
#[test]
fn twenty_cycles_leave_at_most_the_kept_snapshots_and_never_a_pending_one() {
    let Some(node) = Node::new() else { return };
    let sb = Sandbox::new();
    let state = sb.dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let pending_snap = state.join("pending.snapshot.json");
    let pending_ledger = state.join("pending.ledger.jsonl");
    let (snap, ledger) = (
        pending_snap.to_str().unwrap(),
        pending_ledger.to_str().unwrap(),
    );
    // Left pending through every prune (mangle is empty in this lab, so the
    // cycles below are not disturbed).
    let args = [
        "flush",
        "--table",
        "mangle",
        "--snapshot",
        snap,
        "--ledger",
        ledger,
    ];
    sb.run(&agent(&node, &args)).code(0);
    for i in 0..20 {
        cycle(&sb, &node, &state, i);
    }
    let snapshots = count_files(&state, ".snapshot.json");
    assert!(snapshots <= 3, "{snapshots} snapshot files left");
    assert!(count_files(&state, ".ledger.jsonl") <= 3);
    assert!(
        pending_snap.exists(),
        "a snapshot whose undo is pending is never pruned"
    );
    let newest = state.join("c19.snapshot.json");
    assert!(newest.exists());
    sb.run(&agent(&node, &["diff", "--from", newest.to_str().unwrap()]))
        .code(0);
    sb.run(&["recover", "--ledger", ledger])
        .code(0)
        .has("Recovered: 1 change(s) undone");
}

/// Issue 11's reproduction: the agent runs under `ip netns exec NS1`
/// (so its undo names no namespace), then `squall recover` runs under
/// `ip netns exec NS2`. It must refuse, mark nothing done, exit non-zero,
/// and a recover in NS1 must still restore.
#[test]
fn recover_in_another_network_namespace_refuses_and_keeps_the_undo() {
    let (Some(ns1), Some(ns2)) = (Node::new(), Node::empty()) else {
        return;
    };
    let sb = Sandbox::new();
    let bin = env!("CARGO_BIN_EXE_squall");
    let under = |ns: &Node, args: &[&str]| -> Run {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, bin])
            .args(args)
            .current_dir(sb.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        Run::from(out)
    };
    under(
        &ns1,
        &[
            "agent",
            "dataplane",
            "flush",
            "--table",
            "nat",
            "--snapshot",
            "s.json",
        ],
    )
    .code(0);
    assert!(!ns1.has_rules(), "flushed in NS1");
    let refused = under(&ns2, &["recover", "--ledger", "dataplane.ledger.jsonl"]);
    refused
        .code(1)
        .has("refused: the rules were flushed in network namespace net:[")
        .has("still pending");
    assert!(!ns1.has_rules(), "nothing restored anywhere");
    under(&ns1, &["recover", "--ledger", "dataplane.ledger.jsonl"])
        .code(0)
        .has("Recovered: 1 change(s) undone (1 restored)");
    assert!(ns1.has_rules());
}
