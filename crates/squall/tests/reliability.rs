//! Reliability: the reproductions of a hostile review, each run through the
//! real binary. No input crashes a run, a value from a variable is checked
//! like a literal, `recover` never claims what it did not do, nothing
//! squall starts outlives it, and secrets stay out of the log and journal.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Run, Sandbox, wait_until};

/// An experiment that breaks a file, pauses `pause` (YAML text) after it,
/// and restores the file in its rollback; `p` is in its configuration.
fn pausing(sb: &Sandbox, pause: &str) -> std::path::PathBuf {
    sb.write("state", "healthy\n");
    sb.write(
        "exp.yaml",
        &format!(
            r#"title: A pause from a variable
description: The action runs, the pause is bad; the rollback must still play.
configuration: {{p: 5}}
method:
  - type: action
    name: corrupt
    provider: {{type: python, module: squall.testing.actions, func: write_file, arguments: {{path: state, content: broken}}}}
    pauses: {{after: {pause}}}
rollbacks:
  - {{type: action, name: restore, provider: {{type: python, module: squall.testing.actions, func: restore_file, arguments: {{path: state}}}}}}
"#
        ),
    )
}

#[test]
fn a_pause_too_large_for_a_timer_is_refused_by_validate_and_run() {
    let sb = Sandbox::new();
    let exp = pausing(&sb, "\"${p}\"");
    let exp = exp.to_str().unwrap();
    for var in [
        "p:int=9223372036854775807",
        "p:float=1e19",
        "p=abc",
        "p:int=-5",
        "p:int=31536001",
    ] {
        sb.run(&["validate", exp, "--var", var])
            .code(2)
            .has("after pause must be a number of seconds (0 to 31536000)")
            .has("(from ${p})");
        sb.run(&["run", exp, "--var", var])
            .code(2)
            .has("after pause must be a number of seconds");
        assert_eq!(sb.read("state"), "healthy\n", "{var}: nothing may run");
    }
    sb.run(&["validate", exp, "--var", "p:int=0"]).code(0);
}

#[test]
fn a_literal_string_pause_is_refused_with_the_same_words() {
    let sb = Sandbox::new();
    let exp = pausing(&sb, "\"2\"");
    sb.run(&["validate", exp.to_str().unwrap()])
        .code(2)
        .has("after pause must be a number of seconds (0 to 31536000), not 2");
}

#[test]
fn a_bad_pause_known_only_at_run_time_fails_the_run_and_rolls_back() {
    let sb = Sandbox::new();
    // An env configuration value is read at validation too; a secret is
    // not substituted into pauses at validation, so this one reaches the run.
    sb.write("state", "healthy\n");
    let exp = sb.write(
        "exp.yaml",
        r#"title: Run-time pause
description: The pause comes from the environment at run time.
configuration:
  p: {type: env, key: SQUALL_TEST_PAUSE}
method:
  - type: action
    name: corrupt
    provider: {type: python, module: squall.testing.actions, func: write_file, arguments: {path: state, content: broken}}
    pauses: {after: "${p}"}
rollbacks:
  - {type: action, name: restore, provider: {type: python, module: squall.testing.actions, func: restore_file, arguments: {path: state}}}
"#,
    );
    let out = sb
        .cmd()
        .args(["run", exp.to_str().unwrap()])
        .env("SQUALL_TEST_PAUSE", "9223372036854775807")
        .output()
        .unwrap();
    let run = Run::from(out);
    // Either refused before anything ran, or failed and rolled back: never
    // a crash, never a change left behind.
    assert!(
        run.code == 1 || run.code == 2,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    run.lacks("panicked");
    assert_eq!(sb.read("state"), "healthy\n");
}

#[test]
fn recover_from_another_directory_restores_the_file_the_run_meant() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path("work")).unwrap();
    std::fs::write(sb.path("work/app.conf"), "good\n").unwrap();
    let exp = sb.write(
        "work/exp.yaml",
        r#"title: Relative path
description: write_file names a relative path, then squall is killed.
method:
  - type: action
    name: corrupt
    provider: {type: python, module: squall.testing.actions, func: write_file, arguments: {path: app.conf, content: broken}}
    pauses: {after: 60}
"#,
    );
    let mut child = sb
        .cmd()
        .current_dir(sb.path("work"))
        .args(["run", exp.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(20, || sb.read("work/app.conf") == "broken"
        && sb
            .read("work/squall.log")
            .contains("Pausing after activity")));
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::create_dir(sb.path("elsewhere")).unwrap();
    let out = sb
        .cmd()
        .current_dir(sb.path("elsewhere"))
        .args(["recover", "--ledger", "../work/journal.ledger.jsonl"])
        .output()
        .unwrap();
    Run::from(out).code(0).has("Recovered: 1 change(s) undone");
    assert_eq!(sb.read("work/app.conf"), "good\n");
    assert!(
        !sb.path("elsewhere/app.conf").exists(),
        "recover wrote in its own directory"
    );
}

/// A process activity whose grandchild would touch `LATE` after 3 s.
fn lingering(sb: &Sandbox, timeout: &str, pause_after: u32) -> std::path::PathBuf {
    sb.write(
        "exp.yaml",
        &format!(
            r#"title: Lingering children
description: A process activity leaves a grandchild behind.
method:
  - type: action
    name: spawn
    provider:
      type: process
      path: sh
      arguments: ["-c", "(sleep 3; touch LATE) >/dev/null 2>&1 & wait"]
      {timeout}
    pauses: {{after: {pause_after}}}
"#
        ),
    )
}

#[test]
fn a_timed_out_process_leaves_no_descendant() {
    let sb = Sandbox::new();
    let exp = lingering(&sb, "timeout: 1", 0);
    sb.run(&["run", exp.to_str().unwrap()])
        .has("process activity took too long to complete");
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !sb.path("LATE").exists(),
        "a grandchild outlived its activity"
    );
}

#[test]
fn sigint_during_a_process_leaves_no_descendant() {
    let sb = Sandbox::new();
    let exp = lingering(&sb, "", 0);
    let child = sb
        .cmd()
        .args(["run", exp.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(10, || sb
        .read("squall.log")
        .contains("Action: spawn")));
    std::thread::sleep(Duration::from_millis(300));
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    Run::from(child.wait_with_output().unwrap())
        .code(1)
        .has("status: interrupted");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!sb.path("LATE").exists(), "a grandchild outlived squall");
    let j = sb.journal();
    assert_eq!(j["run"][0]["status"], "interrupted");
}

#[test]
fn a_finished_process_leaves_no_descendant_once_squall_exits() {
    let sb = Sandbox::new();
    sb.write(
        "exp.yaml",
        r#"title: Detached grandchild
description: The child exits at once; its grandchild lives on.
method:
  - type: action
    name: detach
    provider: {type: process, path: sh, arguments: ["-c", "(sleep 3; touch LATE) >/dev/null 2>&1 & exit 0"]}
"#,
    );
    sb.run(&["run", "exp.yaml"]).code(0);
    std::thread::sleep(Duration::from_secs(4));
    assert!(!sb.path("LATE").exists(), "a grandchild outlived squall");
}

#[test]
fn secrets_reach_neither_the_log_nor_the_journal() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "exp.yaml",
        r#"title: Secrets
description: A secret in a URL, an inline secret, a sensitive variable.
secrets:
  api:
    token: inline-s3cr3t-value
method:
  - type: probe
    name: call
    provider:
      type: http
      url: "http://127.0.0.1:9/x?api_key=${api_key}&token=${token}"
      timeout: 1
      secrets: [api]
"#,
    );
    let run = sb.run(&[
        "run",
        exp.to_str().unwrap(),
        "--var",
        "api_key=var-s3cr3t-value",
        "--verbose",
    ]);
    for text in [
        run.stderr.clone(),
        sb.read("squall.log"),
        sb.read("journal.json"),
    ] {
        assert!(
            !text.contains("inline-s3cr3t-value"),
            "inline secret leaked:\n{text}"
        );
        assert!(
            !text.contains("var-s3cr3t-value"),
            "--var value leaked:\n{text}"
        );
    }
    assert!(sb.read("squall.log").contains("api_key=***"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sb.path("squall.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the log is only its owner's");
}

#[test]
fn an_http_probe_without_timeout_does_not_wait_forever() {
    // A server that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let sb = Sandbox::new();
    let exp = sb.write(
        "exp.yaml",
        &format!(
            "title: Silent\ndescription: d\nmethod:\n  - type: probe\n    name: hang\n    provider: {{type: http, url: \"http://{addr}/\"}}\n"
        ),
    );
    let run = sb.run(&["run", exp.to_str().unwrap()]);
    run.has("sets no timeout; squall gives it 30 s");
    run.has("activity took too long to complete");
    drop(held);
}

#[test]
fn a_huge_process_output_is_kept_as_head_and_tail() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "exp.yaml",
        r#"title: Loud
description: A probe prints 20 MB.
method:
  - type: probe
    name: loud
    provider: {type: process, path: sh, arguments: ["-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo END"]}
"#,
    );
    sb.run(&["run", exp.to_str().unwrap()]).code(0);
    let journal = std::fs::metadata(sb.path("journal.json")).unwrap().len();
    assert!(journal < 3_000_000, "journal is {journal} bytes");
    let out = sb.journal()["run"][0]["output"]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        out.contains("bytes left out]") && out.trim_end().ends_with("END"),
        "{}",
        &out[..200]
    );
    let leftovers: Vec<_> = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_process_path_from_a_variable_is_accepted_when_the_variable_is_given() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "exp.yaml",
        "title: t\ndescription: d\nconfiguration: {bin: \"true\"}\nmethod:\n  - {type: action, name: a, provider: {type: process, path: \"${bin}\"}}\n",
    );
    sb.run(&["validate", exp.to_str().unwrap()]).code(0);
    sb.run(&["run", exp.to_str().unwrap()]).code(0);
    sb.run(&[
        "validate",
        exp.to_str().unwrap(),
        "--var",
        "bin=no-such-program-squall",
    ])
    .code(2)
    .has("path 'no-such-program-squall' cannot be found");
}

#[test]
fn native_argument_ranges_are_checked_by_validate_for_literals_and_variables() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "exp.yaml",
        r#"title: Ranges
description: The availability monitor with a zero interval.
configuration: {every: 50}
method:
  - type: probe
    name: watch
    provider:
      type: python
      module: squall.http.probes
      func: availability
      arguments: {url: "http://127.0.0.1:9/", interval_ms: "${every}", duration_secs: 0.1}
"#,
    );
    let exp = exp.to_str().unwrap();
    sb.run(&["validate", exp]).code(0);
    sb.run(&["validate", exp, "--var", "every:int=0"])
        .code(2)
        .has("argument 'interval_ms' must be from 10 to 3600000, got 0 (from \"${every}\")");
    let literal = sb.write(
        "lit.yaml",
        "title: t\ndescription: d\nmethod:\n  - {type: probe, name: w, provider: {type: python, module: squall.http.probes, func: availability, arguments: {url: \"http://127.0.0.1:9/\", interval_ms: 0}}}\n",
    );
    sb.run(&["validate", literal.to_str().unwrap()])
        .code(2)
        .has("argument 'interval_ms' must be from 10 to 3600000, got 0");
}
