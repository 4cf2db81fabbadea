//! `squall run` end to end: the real binary on experiment files, against a
//! local HTTP server and local processes (the book's process and HTTP
//! experiments adapted to loopback targets).

mod common;

use common::{DemoApp, Sandbox};

fn health_http(host_env: bool) -> String {
    let cfg = if host_env {
        "configuration:\n  ingress_host:\n    type: env\n    key: INGRESS_HOST\n"
    } else {
        ""
    };
    format!(
        r#"version: 1.0.0
title: What happens if we terminate an instance of the application?
description: If an instance of the application is terminated, the applications as a whole should still be operational.
tags: [k8s, pod, http]
{cfg}steady-state-hypothesis:
  title: The app is healthy
  probes:
  - name: app-responds-to-requests
    type: probe
    tolerance: 200
    provider:
      type: http
      timeout: 3
      verify_tls: false
      url: http://${{ingress_host}}/demo/person
      headers:
        Host: go-demo-8.acme.com
method:
- type: action
  name: terminate-app-pod
  provider:
    type: http
    url: http://${{ingress_host}}/break
  pauses:
    after: 0.2
"#
    )
}

#[test]
fn http_experiment_deviates_like_the_book() {
    let app = DemoApp::start();
    let sb = Sandbox::new();
    let exp = sb.write("health-http.yaml", &health_http(true));
    let run = sb
        .cmd()
        .arg("run")
        .arg(&exp)
        .env("INGRESS_HOST", &app.addr)
        .output()
        .unwrap();
    let run = common::Run::from(run);
    run.code(1)
        .has("INFO] Validating the experiment's syntax")
        .has("INFO] Experiment looks valid")
        .has("INFO] Running experiment: What happens if we terminate an instance of the application?")
        .has("INFO] Steady state hypothesis: The app is healthy")
        .has("INFO] Probe: app-responds-to-requests")
        .has("INFO] Steady state hypothesis is met!")
        .has("INFO] Action: terminate-app-pod")
        .has("INFO] Pausing after activity for 0.2s...")
        .has("CRITICAL] Steady state probe 'app-responds-to-requests' is not in the given tolerance so failing this experiment")
        .has("INFO] Let's rollback...")
        .has("INFO] No declared rollbacks, let's move on.")
        .has("INFO] Experiment ended with status: deviated")
        .has("INFO] The steady-state has deviated, a weakness may have been discovered");
    let j = sb.journal();
    assert_eq!(j["status"], "completed");
    assert_eq!(j["deviated"], true);
    assert_eq!(j["steady_states"]["before"]["steady_state_met"], true);
    assert_eq!(j["steady_states"]["after"]["steady_state_met"], false);
    assert_eq!(
        j["steady_states"]["after"]["probes"][0]["output"]["status"],
        500
    );
    assert_eq!(
        j["steady_states"]["after"]["probes"][0]["tolerance_met"],
        false
    );
    assert_eq!(j["run"][0]["status"], "succeeded");
    assert_eq!(j["squall"]["outcome"], "deviated");
}

#[test]
fn missing_environment_variable_is_invalid_input_and_var_supplies_it() {
    let app = DemoApp::start();
    let sb = Sandbox::new();
    let exp = sb.write("health-http.yaml", &health_http(true));
    let run = common::Run::from(
        sb.cmd()
            .arg("run")
            .arg(&exp)
            .env_remove("INGRESS_HOST")
            .output()
            .unwrap(),
    );
    run.code(2)
        .has("configuration.ingress_host: Configuration makes reference to an environment key that does not exist: INGRESS_HOST");
    assert!(
        !sb.path("journal.json").exists(),
        "nothing runs on invalid input"
    );
    let host = format!("ingress_host={}", app.addr);
    sb.run(&["run", exp.to_str().unwrap(), "--var", &host])
        .code(1)
        .has("status: deviated");
}

#[test]
fn gate_failure_fails_and_skips_the_method() {
    let app = DemoApp::start();
    let sb = Sandbox::new();
    let exp = sb.write("gate.yaml", &health_http(false));
    // Break the app first: the hypothesis is not met before the method.
    sb.run(&[
        "run",
        exp.to_str().unwrap(),
        "--var",
        &format!("ingress_host={}", app.addr),
    ]);
    let run = sb.run(&[
        "run",
        exp.to_str().unwrap(),
        "--var",
        &format!("ingress_host={}", app.addr),
    ]);
    run.code(1)
        .has("CRITICAL] Steady state probe 'app-responds-to-requests' is not in the given tolerance so failing this experiment")
        .lacks("Action: terminate-app-pod")
        .has("Experiment ended with status: failed");
    let j = sb.journal();
    assert_eq!(j["status"], "failed");
    assert_eq!(j["deviated"], false);
    assert!(j["run"].as_array().unwrap().is_empty());
}

#[test]
fn read_timeout_is_reported_like_the_book_health_db() {
    let app = DemoApp::start();
    let sb = Sandbox::new();
    let exp = sb.write(
        "db.yaml",
        r#"title: What happens if we terminate an instance of the DB?
description: The app should stay up.
configuration: {ingress_host: {type: env, key: INGRESS_HOST}}
steady-state-hypothesis:
  title: The app is healthy
  probes:
  - {name: app-responds-to-requests, type: probe, tolerance: 200, provider: {type: http, timeout: 1, url: "http://${ingress_host}/slow"}}
method: []
"#,
    );
    let run = common::Run::from(
        sb.cmd()
            .arg("run")
            .arg(&exp)
            .env("INGRESS_HOST", &app.addr)
            .output()
            .unwrap(),
    );
    run.code(1)
        .has("ERROR]   => failed: activity took too long to complete")
        .has("WARNING] Probe terminated unexpectedly, so its tolerance could not be validated")
        .has("Experiment ended with status: failed");
    assert_eq!(
        sb.journal()["steady_states"]["before"]["probes"][0]["status"],
        "failed"
    );
}

#[test]
fn process_experiment_completes_and_records_outputs() {
    let app = DemoApp::start();
    let sb = Sandbox::new();
    let exp = sb.write(
        "process.yaml",
        r#"title: Load does not break the app
description: The book's network-dos experiment with a local load loop instead of siege.
configuration:
  url: {type: env, key: APP_URL}
steady-state-hypothesis:
  title: The app is healthy
  probes:
  - {type: probe, name: app-responds-to-requests, tolerance: 200, provider: {type: http, timeout: 5, url: "${url}"}}
  - type: probe
    name: banner-has-a-version
    tolerance: {type: regex, pattern: "Version: [0-9.]+", target: stdout}
    provider: {type: process, path: curl, arguments: ["-s", "${url}"]}
method:
  - type: action
    name: abort-failure
    provider:
      type: process
      path: sh
      arguments: ["-c", "for i in 1 2 3 4 5; do curl -s -o /dev/null $0; done; echo sent", "${url}"]
    pauses: {after: 0.1}
  - type: probe
    name: exit-code-is-data
    provider: {type: process, path: sh, arguments: "-c 'exit 3'"}
"#,
    );
    let run = common::Run::from(
        sb.cmd()
            .arg("run")
            .arg(&exp)
            .env("APP_URL", app.url("/"))
            .output()
            .unwrap(),
    );
    run.code(0)
        .has("Action: abort-failure")
        .has("Probe: exit-code-is-data")
        .has("WARNING] This process returned a non-zero exit code.")
        .has("Experiment ended with status: completed");
    let j = sb.journal();
    assert_eq!(
        j["run"][0]["output"],
        serde_json::json!({"status": 0, "stdout": "sent\n", "stderr": ""})
    );
    assert_eq!(j["run"][1]["output"]["status"], 3);
    assert_eq!(j["run"][1]["status"], "succeeded");
}

#[test]
fn failed_action_keeps_going_and_rollbacks_run() {
    let sb = Sandbox::new();
    let state = sb.write("state", "healthy\n");
    let exp = sb.write(
        "fail.yaml",
        &format!(
            r#"title: t
description: d
method:
  - {{type: action, name: corrupt, provider: {{type: python, module: squall.testing.actions, func: write_file, arguments: {{path: "{p}", content: bad}}}}}}
  - {{type: action, name: unreachable, provider: {{type: http, url: "http://127.0.0.1:9/", timeout: 1}}}}
rollbacks:
  - {{type: action, name: restore, provider: {{type: python, module: squall.testing.actions, func: restore_file, arguments: {{path: "{p}"}}}}}}
"#,
            p = state.display()
        ),
    );
    sb.run(&["run", exp.to_str().unwrap()])
        .code(0)
        .has("ERROR]   => failed: failed to connect to http://127.0.0.1:9/")
        .has("Rollback: restore")
        .has("status: completed");
    assert_eq!(sb.read("state"), "healthy\n");
    let j = sb.journal();
    assert_eq!(j["run"][1]["status"], "failed");
    assert!(
        j["run"][1]["exception"][0]
            .as_str()
            .unwrap()
            .contains("failed to connect")
    );
    assert_eq!(j["rollbacks"][0]["output"]["restored"], true);
    assert!(sb.read("journal.ledger.jsonl").contains("\"op\":\"done\""));
}

fn corrupt_experiment(sb: &Sandbox, extra: &str) -> std::path::PathBuf {
    let state = sb.write("state", "healthy\n");
    sb.write(
        "corrupt.yaml",
        &format!(
            r#"title: Corrupt the config
description: d
configuration: {{state: "{p}"}}
steady-state-hypothesis:
  title: config is healthy
  probes:
  - {{type: probe, name: healthy, tolerance: {{type: regex, pattern: "^healthy", target: stdout}}, provider: {{type: process, path: cat, arguments: ["${{state}}"]}}}}
method:
  - {{type: action, name: corrupt, provider: {{type: python, module: squall.testing.actions, func: write_file, arguments: {{path: "${{state}}", content: bad}}}}{extra}}}
rollbacks:
  - {{type: action, name: restore, provider: {{type: python, module: squall.testing.actions, func: restore_file, arguments: {{path: "${{state}}"}}}}}}
"#,
            p = state.display()
        ),
    )
}

#[test]
fn rollback_strategies() {
    let sb = Sandbox::new();
    let exp = corrupt_experiment(&sb, "");
    let e = exp.to_str().unwrap();
    sb.run(&["run", e, "--rollback-strategy", "never"])
        .code(1)
        .has("WARNING] Rollbacks were explicitly requested to not be played")
        .lacks("Let's rollback");
    assert_eq!(sb.read("state"), "bad");
    assert_eq!(
        sb.journal()["squall"]["pending_undo"][0],
        format!("restore {}", sb.path("state").display())
    );
    sb.run(&["recover"]).code(0).has("Undo: restore");
    assert_eq!(sb.read("state"), "healthy\n");
    sb.run(&["run", e, "--rollback-strategy", "deviated"])
        .code(1)
        .has("Rollbacks will be played only because the experiment deviated")
        .has("Rollback: restore");
    assert_eq!(sb.read("state"), "healthy\n");
    sb.run(&["run", e, "--rollback-strategy", "always"])
        .code(1)
        .has("Rollbacks were explicitly requested to be played");
    assert_eq!(sb.read("state"), "healthy\n");
}

#[test]
fn hypothesis_strategies() {
    let sb = Sandbox::new();
    let exp = corrupt_experiment(&sb, ", pauses: {after: 0.6}");
    let e = exp.to_str().unwrap();
    let run = sb.run(&["run", e, "--hypothesis-strategy", "before-method-only"]);
    run.code(0).has("Experiment ended with status: completed");
    assert_eq!(
        run.stderr
            .matches("Steady state hypothesis: config is healthy")
            .count(),
        1
    );
    let run = sb.run(&["run", e, "--hypothesis-strategy", "after-method-only"]);
    run.code(1).has("status: deviated");
    assert!(sb.journal()["steady_states"]["before"].is_null());
    // During the method only: the check fails but never marks deviation.
    let run = sb.run(&[
        "run",
        e,
        "--hypothesis-strategy",
        "during-method",
        "--hypothesis-frequency",
        "0.2",
    ]);
    run.code(0)
        .has("Executing the steady-state hypothesis continuously every 0.2 seconds")
        .has("Continuous steady state probe 'healthy' is not in the given tolerance");
    assert!(
        !sb.journal()["steady_states"]["during"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // With --fail-fast the first failing check stops the method and fails
    // the run (during-method never deviates, so only fail-fast can fail it).
    let text = std::fs::read_to_string(&exp).unwrap().replace(
        "rollbacks:",
        "  - {type: action, name: never-reached, provider: {type: process, path: \"true\"}}\nrollbacks:",
    );
    let twice = sb.write("twice.yaml", &text);
    let args = [
        "run",
        twice.to_str().unwrap(),
        "--hypothesis-strategy",
        "during-method",
    ];
    let run = sb.run(&[&args[..], &["--hypothesis-frequency", "0.1", "--fail-fast"]].concat());
    run.code(1)
        .has("Terminating immediately the experiment after")
        .lacks("Action: never-reached")
        .has("status: failed");
    assert_eq!(sb.journal()["status"], "failed");
}

#[test]
fn dry_runs_touch_nothing() {
    let sb = Sandbox::new();
    let exp = corrupt_experiment(&sb, ", pauses: {after: 30}");
    let started = std::time::Instant::now();
    let run = sb.run(&["run", exp.to_str().unwrap(), "--dry"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "a dry run does not sleep its pauses"
    );
    run.code(0)
        .has("WARNING] Running experiment with dry activities")
        .has("Pausing after activity for 30s...")
        .has("dry run: would write 3 bytes to");
    assert_eq!(sb.read("state"), "healthy\n");
    let j = sb.journal();
    assert_eq!(j["experiment"]["dry"], "activities");
    // The mutating native action planned instead of acting; the probe and
    // the process-free rollback were skipped as upstream skips them.
    assert_eq!(j["run"][0]["output"]["dry"], true);
    assert!(j["steady_states"]["before"]["probes"][0]["output"].is_null());
    assert!(
        !sb.read("journal.ledger.jsonl")
            .contains("\"op\":\"record\""),
        "a dry run recorded an undo"
    );
}

#[test]
fn blast_radius_options_are_checked() {
    let sb = Sandbox::new();
    let exp = corrupt_experiment(&sb, "");
    sb.run(&["run", exp.to_str().unwrap(), "--max-percent", "150"])
        .code(2)
        .has("--max-percent must be between 0 and 100, not 150");
    assert_eq!(sb.read("state"), "healthy\n");
    let help = sb.run(&["run", "--help"]);
    help.code(0);
    assert!(help.stdout.contains("--max-targets <N>"), "{}", help.stdout);
    assert!(help.stdout.contains("--max-percent <PERCENT>"));
}

#[test]
fn refs_background_and_extensions() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "bg.yaml",
        r#"title: t
description: d
extensions: [{name: mine, data: {kept: true}}]
steady-state-hypothesis:
  title: h
  probes:
  - {type: probe, name: echo-ok, tolerance: 0, provider: {type: process, path: "true"}}
method:
  - {type: action, name: slow-in-background, background: true, provider: {type: process, path: sleep, arguments: ["0.5"]}}
  - {type: action, name: quick, provider: {type: process, path: "true"}}
  - ref: echo-ok
"#,
    );
    let run = sb.run(&["run", exp.to_str().unwrap()]);
    run.code(0)
        .has("Action: slow-in-background [in background]")
        .has("Probe: echo-ok");
    let j = sb.journal();
    let names: Vec<_> = j["run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["activity"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["slow-in-background", "quick", "echo-ok"]);
    assert!(j["run"][0]["duration"].as_f64().unwrap() >= 0.45);
    // The quick action started before the background one ended.
    assert!(j["run"][1]["start"].as_str().unwrap() < j["run"][0]["end"].as_str().unwrap());
    assert_eq!(j["experiment"]["extensions"][0]["data"]["kept"], true);
}

#[test]
fn json_experiments_run_too() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "e.json",
        r#"{"title": "json", "description": "d", "method": [{"type": "probe", "name": "p", "provider": {"type": "process", "path": "echo", "arguments": ["hi"]}}]}"#,
    );
    sb.run(&["run", exp.to_str().unwrap(), "--journal-path", "out/j.json"])
        .code(2)
        .has("out/j.json: directory")
        .has("does not exist");
    std::fs::create_dir(sb.path("out")).unwrap();
    sb.run(&["run", exp.to_str().unwrap(), "--journal-path", "out/j.json"])
        .code(0);
    let j: serde_json::Value = serde_json::from_str(&sb.read("out/j.json")).unwrap();
    assert_eq!(j["run"][0]["output"]["stdout"], "hi\n");
    assert!(
        sb.path("out/j.ledger.jsonl").exists(),
        "the ledger sits next to the journal"
    );
}

#[test]
fn a_url_that_does_not_resolve_is_a_recorded_failure() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "dns.yaml",
        r#"title: t
description: d
method:
  - {type: probe, name: nowhere, provider: {type: http, url: "http://squall-no-such-host.invalid/", timeout: 3}}
"#,
    );
    sb.run(&["run", exp.to_str().unwrap()])
        .code(0)
        .has("ERROR]   => failed: failed to connect to http://squall-no-such-host.invalid/");
    assert_eq!(sb.journal()["run"][0]["status"], "failed");
}

#[test]
fn dotenv_values_reach_child_processes() {
    let sb = Sandbox::new();
    let env = sb.write("vars.env", "SQUALL_FROM_DOTENV=hello\n");
    let exp = sb.write(
        "env.yaml",
        r#"title: t
description: d
method:
  - {type: probe, name: echo, provider: {type: process, path: sh, arguments: ["-c", "echo $SQUALL_FROM_DOTENV"]}}
"#,
    );
    sb.run(&[
        "run",
        exp.to_str().unwrap(),
        "--var-file",
        env.to_str().unwrap(),
    ])
    .code(0);
    assert_eq!(sb.journal()["run"][0]["output"]["stdout"], "hello\n");
}

#[test]
fn huge_pauses_are_invalid_input() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "huge.yaml",
        "title: t\ndescription: d\nmethod:\n  - {type: action, name: a, provider: {type: process, path: \"true\"}, pauses: {after: 1e300}}\n",
    );
    sb.run(&["run", exp.to_str().unwrap()])
        .code(2)
        .has("method[0].pauses.after")
        .lacks("panicked");
}
