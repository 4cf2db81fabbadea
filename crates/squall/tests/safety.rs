//! Safety end to end: signals roll back, a second signal skips the rest,
//! and SIGKILL leaves a ledger that `squall recover` applies exactly once.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Run, Sandbox, wait_until};

fn experiment(sb: &Sandbox, pause: u32) -> std::path::PathBuf {
    let state = sb.write("state", "healthy\n");
    let undo_log = sb.path("undo.log");
    sb.write(
        "exp.yaml",
        &format!(
            r#"title: Interrupt me
description: A change, a long pause, then a rollback.
configuration: {{state: "{s}", undo_log: "{u}"}}
method:
  - type: action
    name: corrupt
    provider:
      type: python
      module: squall.testing.actions
      func: write_file
      arguments: {{path: "${{state}}", content: "broken", undo_log: "${{undo_log}}"}}
    pauses: {{after: {pause}}}
rollbacks:
  - {{type: action, name: restore, provider: {{type: python, module: squall.testing.actions, func: restore_file, arguments: {{path: "${{state}}"}}}}}}
"#,
            s = state.display(),
            u = undo_log.display()
        ),
    )
}

fn spawn(sb: &Sandbox, exp: &std::path::Path) -> Child {
    sb.cmd()
        .arg("run")
        .arg(exp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits until the change is made and the run is pausing.
fn wait_for_pause(sb: &Sandbox) {
    assert!(wait_until(20, || sb.read("state") == "broken"
        && sb.read("squall.log").contains("Pausing after activity")));
}

#[test]
fn sigint_during_a_pause_rolls_back() {
    let sb = Sandbox::new();
    let exp = experiment(&sb, 60);
    let child = spawn(&sb, &exp);
    wait_for_pause(&sb);
    signal(&child, "INT");
    let run = Run::from(child.wait_with_output().unwrap());
    run.code(1)
        .has("Received SIGINT: stopping the experiment and rolling back")
        .has("Rollback: restore")
        .has("Experiment ended with status: interrupted");
    assert_eq!(sb.read("state"), "healthy\n");
    let j = sb.journal();
    assert_eq!(j["status"], "interrupted");
    assert_eq!(j["squall"]["signals"][0], "SIGINT");
    assert_eq!(j["rollbacks"][0]["status"], "succeeded");
    assert!(j["squall"]["pending_undo"].as_array().unwrap().is_empty());
}

#[test]
fn sigterm_rolls_back_too() {
    let sb = Sandbox::new();
    let exp = experiment(&sb, 60);
    let child = spawn(&sb, &exp);
    wait_for_pause(&sb);
    signal(&child, "TERM");
    let run = Run::from(child.wait_with_output().unwrap());
    run.code(1)
        .has("Received SIGTERM")
        .has("status: interrupted");
    assert_eq!(sb.read("state"), "healthy\n");
}

#[test]
fn sigkill_then_recover_undoes_exactly_once() {
    let sb = Sandbox::new();
    let exp = experiment(&sb, 60);
    let mut child = spawn(&sb, &exp);
    wait_for_pause(&sb);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        sb.read("state"),
        "broken",
        "nothing could roll back a killed run"
    );
    // The journal written after the gate is there even though the run died.
    assert!(sb.journal()["status"].is_null());
    sb.run(&["recover"])
        .code(0)
        .has("Undo: restore")
        .has("Recovered: 1 change(s) undone");
    assert_eq!(sb.read("state"), "healthy\n");
    assert_eq!(sb.read("undo.log").lines().count(), 1);
    sb.run(&["recover"]).code(0).has("Nothing to recover");
    assert_eq!(
        sb.read("undo.log").lines().count(),
        1,
        "the undo ran exactly once"
    );
    assert_eq!(sb.read("state"), "healthy\n");
}

#[test]
fn second_signal_skips_rollbacks_and_leaves_the_ledger_pending() {
    let sb = Sandbox::new();
    // A rollback that takes long enough to be interrupted.
    let state = sb.write("state", "healthy\n");
    let exp = sb.write(
        "exp.yaml",
        &format!(
            r#"title: t
description: d
method:
  - {{type: action, name: corrupt, pauses: {{after: 60}}, provider: {{type: python, module: squall.testing.actions, func: write_file, arguments: {{path: "{s}", content: broken}}}}}}
rollbacks:
  - {{type: action, name: slow-first, provider: {{type: process, path: sleep, arguments: ["60"]}}}}
  - {{type: action, name: restore, provider: {{type: python, module: squall.testing.actions, func: restore_file, arguments: {{path: "{s}"}}}}}}
"#,
            s = state.display()
        ),
    );
    let child = spawn(&sb, &exp);
    wait_for_pause(&sb);
    signal(&child, "INT");
    assert!(wait_until(20, || sb
        .read("squall.log")
        .contains("Action: slow-first")));
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "INT");
    let run = Run::from(child.wait_with_output().unwrap());
    run.code(1)
        .has("Received a second signal (SIGINT): skipping the remaining rollbacks")
        .lacks("Rollback: restore")
        .has("still pending undo")
        .has("squall recover --ledger journal.ledger.jsonl");
    assert_eq!(sb.read("state"), "broken");
    sb.run(&["recover", "--ledger", "journal.ledger.jsonl"])
        .code(0);
    assert_eq!(sb.read("state"), "healthy\n");
}

#[test]
fn recover_with_a_mistyped_ledger_says_so() {
    let sb = Sandbox::new();
    sb.run(&["recover", "--ledger", "typo.jsonl"])
        .code(1)
        .has("no undo ledger at typo.jsonl");
    assert!(!sb.path("typo.jsonl").exists(), "recover creates nothing");
}
