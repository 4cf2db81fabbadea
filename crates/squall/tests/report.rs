//! `squall report` on journals written by real runs: the local demo, the
//! book's experiments in the sandbox (completed, deviated, failed,
//! interrupted with rollbacks, interrupted with undo records left pending,
//! and an outage measured by the availability monitor), and Chaos
//! Toolkit's own `chaos run`. Each format is checked by a real consumer:
//! HTML in headless Chromium, PDF with poppler, JUnit with xmllint against
//! a published schema. Bad input is exit 2 and leaves no file behind.

mod common;
mod report_support;

use std::path::Path;
use std::process::Stdio;

use common::cluster::{Cluster, demo_cluster, example};
use common::{Run, Sandbox, wait_until};
use report_support::{browser, check, expected_counts, have, missing, pdf, root, suite_counts};
use serde_json::{Value, json};

/// `squall report ARGS` in the sandbox directory, with a fixed date.
fn report(sb: &Sandbox, args: &[&str]) -> Run {
    let out = sb
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1795441482")
        .args(["--no-log-file", "report"])
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

fn read_json(sb: &Sandbox, name: &str) -> Value {
    serde_json::from_str(&sb.read(name)).unwrap()
}

/// The local demo (no cluster): deviates, its rollback restores the file.
fn local_journal(sb: &Sandbox, name: &str) {
    let conf = sb.write("app.conf", "mode: healthy\n");
    let exp = root().join("examples/local/config-corruption.yaml");
    let out = sb
        .cmd()
        .env("SQUALL_DEMO_CONFIG", &conf)
        .args(["--no-log-file", "run", exp.to_str().unwrap()])
        .args(["--journal-path", name])
        .output()
        .unwrap();
    Run::from(out).code(1);
}

/// Opens an HTML report in Chromium and checks what every HTML report
/// must be: no request, no console error, charts with text alternatives,
/// tables with headers, no script, usable at phone width.
fn browse(path: &Path, focus: Option<&str>) -> Option<browser::PageReport> {
    let Some(bin) = browser::chromium() else {
        missing("chromium");
        return None;
    };
    let page = browser::open(bin, path, focus);
    assert!(page.requests.is_empty(), "requests: {:?}", page.requests);
    assert!(page.console.is_empty(), "console: {:?}", page.console);
    let f = &page.facts;
    assert_eq!(f["h1"], 1, "{f}");
    assert!(f["svgs"].as_u64().unwrap() >= 1, "{f}");
    assert_eq!(
        f["svgs"], f["svgsWithText"],
        "every chart has a title and desc"
    );
    assert_eq!(
        f["tables"], f["tablesWithHeaders"],
        "every table has headers"
    );
    assert_eq!(f["scripts"], 0);
    assert_eq!(f["openDetails"], 0, "outputs are collapsed");
    assert!(
        page.phone_scroll_width <= 390,
        "no sideways scrolling on a phone: {}",
        page.phone_scroll_width
    );
    assert!(page.screenshot_png.starts_with(b"\x89PNG"));
    Some(page)
}

#[test]
fn the_browser_check_catches_requests_and_console_errors() {
    let Some(bin) = browser::chromium() else {
        missing("chromium");
        return;
    };
    let sb = Sandbox::new();
    let page = sb.write(
        "bad.html",
        "<!DOCTYPE html><html><body><h1>x</h1><img src=\"http://127.0.0.1:9/x.png\" alt=\"\">\
<script>console.error('boom')</script></body></html>",
    );
    let seen = browser::open(bin, &page, None);
    assert!(
        seen.requests.iter().any(|u| u.contains("127.0.0.1:9")),
        "{:?}",
        seen.requests
    );
    assert!(
        seen.console.iter().any(|m| m.contains("boom")),
        "{:?}",
        seen.console
    );
}

#[test]
fn a_local_run_renders_in_every_format() {
    let sb = Sandbox::new();
    local_journal(&sb, "journal.json");
    let j = sb.journal();
    for (file, extra) in [
        ("report.html", vec![]),
        ("report.md", vec![]),
        ("report.pdf", vec![]),
        ("report.xml", vec![]),
        ("report.json", vec![]),
        ("report.txt", vec!["--export-format", "junit"]),
    ] {
        let mut args = extra.clone();
        args.extend(["journal.json", file]);
        report(&sb, &args)
            .code(0)
            .has(&format!("Report generated as '{file}'"));
    }
    let title = "What happens if the demo service's configuration is corrupted?";
    let md = sb.read("report.md");
    assert!(md.starts_with(&format!("# {title}")), "{md}");
    assert!(md.contains("**▲ DEVIATED**"));
    assert!(md.contains("| config-is-healthy | `{\"type\":\"regex\""));
    assert!(md.contains("| action | restore-the-config |"));
    // The JSON summary agrees with the journal.
    let summary = read_json(&sb, "report.json");
    let run = &summary["runs"][0];
    assert_eq!(run["outcome"], "deviated");
    assert_eq!(run["run_id"], j["squall"]["run_id"]);
    assert_eq!(run["hypothesis"]["after"]["met"], false);
    assert_eq!(run["rollbacks"][0]["result"], "succeeded");
    assert_eq!(run["score"]["value"], 64);
    assert_eq!(sb.read("report.txt"), sb.read("report.xml"));
    check_local_junit_and_pdf(&sb, &j, title);
    if let Some(page) = browse(&sb.path("report.html"), None) {
        let text = page.facts["text"].as_str().unwrap();
        assert!(text.contains("▲ deviated"), "{text}");
        assert!(text.contains("Resilience score"));
        save_screenshot("local.png", &page.screenshot_png);
    }
}

/// Keeps a screenshot under target/report-screenshots (docs/reports.md
/// shows one).
fn save_screenshot(name: &str, png: &[u8]) {
    let shots = root().join("target/report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join(name), png).unwrap();
}

fn check_local_junit_and_pdf(sb: &Sandbox, j: &Value, title: &str) {
    if have("xmllint") {
        report_support::validate_junit(&sb.path("report.xml"));
        assert_eq!(
            suite_counts(&sb.read("report.xml")),
            vec![expected_counts(j)]
        );
        assert_eq!(expected_counts(j), (4, 1, 0, 0));
    } else {
        missing("xmllint");
    }
    if have("pdftotext") {
        let (info, text) = pdf(&sb.path("report.pdf"));
        assert!(
            info.contains(&format!("Title:           {title}")),
            "{info}"
        );
        for needle in [
            "DEVIATED",
            "corrupt-the-config",
            "restore-the-config",
            "Resilience score: 64/100",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    } else {
        missing("pdftotext");
    }
}

#[test]
fn title_flag_and_var_files_are_read() {
    let sb = Sandbox::new();
    local_journal(&sb, "journal.json");
    sb.write("vars.yaml", "configuration:\n  service: billing\n");
    report(
        &sb,
        &[
            "--var-file",
            "vars.yaml",
            "--title",
            "Weekly",
            "journal.json",
            "r.md",
        ],
    )
    .code(0);
    let md = sb.read("r.md");
    assert!(md.starts_with("# Weekly\n"), "{md}");
    // squall's journal holds the experiment as run (substituted), so a
    // variable given now changes nothing in it.
    assert!(md.contains("## What happens if the demo service's configuration is corrupted?"));
    sb.write("bad.yaml", "- not a mapping\n");
    report(&sb, &["--var-file", "bad.yaml", "journal.json", "r2.md"])
        .code(2)
        .has("bad.yaml: a var file must be a mapping");
    assert!(!sb.path("r2.md").exists());
}

#[test]
fn bad_input_is_exit_2_and_writes_nothing() {
    let sb = Sandbox::new();
    local_journal(&sb, "good.json");
    let good = sb.read("good.json");
    sb.write("empty.json", "");
    sb.write("truncated.json", &good[..good.len() / 2]);
    sb.write("experiment.json", r#"{"title": "t", "method": []}"#);
    sb.write("nostart.json", r#"{"experiment": {}, "run": []}"#);
    let cases: [(&[&str], &str); 7] = [
        (&["empty.json", "r.html"], "empty.json: the file is empty"),
        (
            &["truncated.json", "r.html"],
            "truncated.json: not valid JSON at line",
        ),
        (
            &["experiment.json", "r.html"],
            "experiment.json: not a journal",
        ),
        (&["nostart.json", "r.html"], "nostart.json: missing `start`"),
        (
            &["good.json", "missing.json", "r.pdf"],
            "missing.json: cannot read",
        ),
        (
            &["good.json", "truncated.json", "r.xml"],
            "truncated.json: not valid JSON",
        ),
        (
            &["good.json", "nodir/r.html"],
            "the directory nodir does not exist",
        ),
    ];
    for (args, message) in cases {
        report(&sb, args).code(2).has(message);
    }
    report(&sb, &["--export-format", "docx", "good.json", "r.docx"])
        .code(2)
        .has("--export-format docx: squall writes html, markdown, pdf, junit or json");
    let mut left: Vec<String> = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("r.") || n.ends_with(".tmp") || n == "nodir")
        .collect();
    left.sort();
    assert!(left.is_empty(), "nothing written: {left:?}");
}

/// `squall run` of the book's experiments against the sandbox, with
/// INGRESS_HOST set; returns the journal's path.
fn book_run(sb: &Sandbox, name: &str, ingress: &str, journal: &str, code: i32) -> String {
    let out = sb
        .cmd()
        .env("INGRESS_HOST", ingress)
        .args([
            "--no-log-file",
            "run",
            &example(name),
            "--kubeconfig",
            "kube.yaml",
        ])
        .args(["--journal-path", journal])
        .output()
        .unwrap();
    Run::from(out).code(code);
    journal.to_owned()
}

/// Scales go-demo-8 down with a long pause, interrupts it with SIGINT
/// during the pause; `extra` may keep the rollback from running.
fn interrupted(sb: &Sandbox, journal: &str, extra: &[&str]) -> String {
    let exp = sb.write(
        "scale.yaml",
        r"title: What happens with one replica fewer?
description: Scale down, hold, and scale back in the rollback.
method:
  - {type: action, name: scale-down, pauses: {after: 600}, provider: {type: python, module: chaosk8s.deployment.actions, func: scale_deployment, arguments: {name: go-demo-8, replicas: 1, ns: go-demo-8}}}
  - {type: probe, name: never-reached, provider: {type: process, path: 'true'}}
rollbacks:
  - {type: action, name: scale-back, provider: {type: python, module: chaosk8s.deployment.actions, func: scale_deployment, arguments: {name: go-demo-8, replicas: 2, ns: go-demo-8}}}
",
    );
    let log = format!("{journal}.log");
    let mut child = sb
        .cmd()
        .args([
            "--log-file",
            &log,
            "run",
            exp.to_str().unwrap(),
            "--kubeconfig",
            "kube.yaml",
        ])
        .args(["--journal-path", journal])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(30, || sb
        .read(&log)
        .contains("Pausing after activity")));
    check("kill", &["-INT", &child.id().to_string()]);
    assert_eq!(child.wait().unwrap().code(), Some(1));
    journal.to_owned()
}

/// One replica behind the gateway, an availability monitor in the
/// background, the pod terminated: the monitor measures the outage until
/// the replacement is ready.
fn outage(sb: &Sandbox, cluster: &Cluster, ingress: &str) -> String {
    let hpa = cluster.request(
        "DELETE",
        "/apis/autoscaling/v2/namespaces/go-demo-8/horizontalpodautoscalers/go-demo-8",
        "",
    );
    assert!(hpa.starts_with("HTTP/1.1 200"), "{hpa}");
    let patch = common::http_typed(
        &cluster.server,
        "PATCH",
        "/apis/apps/v1/namespaces/go-demo-8/deployments/go-demo-8",
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 1}}).to_string(),
    );
    assert!(patch.starts_with("HTTP/1.1 200"), "{patch}");
    assert!(
        wait_until(60, || ready_pods(cluster) == (1, 1)),
        "one ready pod"
    );
    let exp = sb.write(
        "outage.yaml",
        &format!(
            r#"title: How long is go-demo-8 down when its only pod dies?
description: The availability monitor watches the gateway while the pod is replaced.
tags: [availability]
method:
  - type: probe
    name: gateway-availability
    background: true
    provider:
      type: python
      module: squall.http.probes
      func: availability
      arguments: {{url: "http://{ingress}/demo/person", headers: {{Host: go-demo-8.acme.com}}, interval_ms: 50, timeout_ms: 500}}
  - type: action
    name: terminate-the-pod
    provider: {{type: python, module: chaosk8s.pod.actions, func: terminate_pods, arguments: {{label_selector: app=go-demo-8, ns: go-demo-8}}}}
    pauses: {{after: 5}}
"#
        ),
    );
    let out = sb
        .cmd()
        .args([
            "--no-log-file",
            "run",
            exp.to_str().unwrap(),
            "--kubeconfig",
            "kube.yaml",
        ])
        .args(["--journal-path", "outage.json"])
        .output()
        .unwrap();
    Run::from(out).code(0);
    "outage.json".to_owned()
}

/// go-demo-8's API pods: (how many, how many Ready and not terminating).
fn ready_pods(cluster: &Cluster) -> (usize, usize) {
    let list = common::json_body(&cluster.request(
        "GET",
        "/api/v1/namespaces/go-demo-8/pods?labelSelector=app%3Dgo-demo-8",
        "",
    ));
    let pods = list["items"].as_array().cloned().unwrap_or_default();
    let ready = pods
        .iter()
        .filter(|p| {
            p["metadata"].get("deletionTimestamp").is_none()
                && p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count();
    (pods.len(), ready)
}

#[test]
fn the_book_in_the_sandbox_renders_every_outcome() {
    let sb = Sandbox::new();
    let (cluster, ingress) = demo_cluster(&sb);
    let journals = [
        book_run(&sb, "health-http.yaml", &ingress, "completed.json", 0),
        book_run(&sb, "health.yaml", &ingress, "deviated.json", 1),
        book_run(&sb, "health-http.yaml", "127.0.0.1:9", "failed.json", 1),
        interrupted(&sb, "interrupted.json", &[]),
        interrupted(&sb, "pending.json", &["--rollback-strategy", "never"]),
        outage(&sb, &cluster, &ingress),
    ];
    let outcomes: Vec<Value> = journals
        .iter()
        .map(|j| read_json(&sb, j)["squall"]["outcome"].clone())
        .collect();
    assert_eq!(
        outcomes,
        [
            "completed",
            "deviated",
            "failed",
            "interrupted",
            "interrupted",
            "completed"
        ]
    );
    let pending = read_json(&sb, "pending.json");
    assert!(
        !pending["squall"]["pending_undo"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let names: Vec<&str> = journals.iter().map(String::as_str).collect();
    for out in ["book.html", "book.md", "book.pdf", "book.xml", "book.json"] {
        let mut args = names.clone();
        args.push(out);
        report(&sb, &args).code(0);
    }
    check_book_summary(&sb);
    check_book_junit(&sb, &names);
    check_book_pdf(&sb);
    check_book_html(&sb);
}

fn check_book_summary(sb: &Sandbox) {
    let summary = read_json(sb, "book.json");
    let runs = summary["runs"].as_array().unwrap();
    let words: Vec<&str> = runs
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        words,
        [
            "completed",
            "deviated",
            "failed",
            "interrupted",
            "interrupted",
            "completed"
        ]
    );
    // Interrupted during the pause: the rollback ran, the probe after the
    // pause was never reached.
    assert_eq!(runs[3]["rollbacks"][0]["name"], "scale-back");
    assert_eq!(runs[3]["not_reached"], json!(["never-reached"]));
    assert!(runs[3]["pending_undo"].as_array().unwrap().is_empty());
    assert_eq!(runs[4]["rollbacks"], json!([]));
    let recover = runs[4]["recover_command"].as_str().unwrap();
    assert!(recover.starts_with("squall recover --ledger "), "{recover}");
    let monitor = &runs[5]["monitors"][0];
    assert!(monitor["outages"].as_u64().unwrap() >= 1, "{monitor}");
    assert!(
        monitor["longest_outage_ms"].as_u64().unwrap() > 0,
        "{monitor}"
    );
    assert!(
        monitor["availability"].as_f64().unwrap() < 100.0,
        "{monitor}"
    );
    let md = sb.read("book.md");
    assert!(md.contains("## Runs compared"));
    assert!(md.contains("### Trend: What happens if we terminate an instance of the application?"));
    assert!(md.contains("> [!WARNING]"));
}

fn check_book_junit(sb: &Sandbox, journals: &[&str]) {
    if !have("xmllint") {
        missing("xmllint");
        return;
    }
    report_support::validate_junit(&sb.path("book.xml"));
    let expected: Vec<_> = journals
        .iter()
        .map(|j| expected_counts(&read_json(sb, j)))
        .collect();
    assert_eq!(suite_counts(&sb.read("book.xml")), expected);
    // The failed gate and the deviation are probe errors (no answer, an
    // unhealthy pod), the unreached probe is skipped.
    assert!(
        expected[2].2 >= 1 && expected[1].2 >= 1 && expected[3].3 >= 1,
        "{expected:?}"
    );
}

fn check_book_pdf(sb: &Sandbox) {
    if !have("pdftotext") {
        missing("pdftotext");
        return;
    }
    let (info, text) = pdf(&sb.path("book.pdf"));
    assert!(
        info.contains("Title:           Chaos Engineering Report"),
        "{info}"
    );
    assert!(report_support::pages(&info) >= 7, "{info}");
    for needle in [
        "COMPLETED",
        "DEVIATED",
        "FAILED",
        "INTERRUPTED",
        "WARNING: 1 change(s) were not undone",
        "squall recover --ledger",
        "terminate-app-pod",
        "Availability: gateway-availability",
    ] {
        assert!(text.contains(needle), "{needle} in the PDF text");
    }
}

fn check_book_html(sb: &Sandbox) {
    let Some(page) = browse(&sb.path("book.html"), Some("av-5-0-h")) else {
        return;
    };
    let text = page.facts["text"].as_str().unwrap();
    for needle in [
        "Runs compared",
        "Trend: What happens",
        "✖ failed",
        "■ interrupted",
        "outage",
    ] {
        assert!(text.contains(needle), "{needle} in the page");
    }
    let alerts = page.facts["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "one pending-undo warning: {alerts:?}");
    assert!(
        alerts[0]
            .as_str()
            .unwrap()
            .contains("squall recover --ledger")
    );
    // 6 timelines, 1 monitor chart, 2 trends (health-http and the scale
    // experiment ran twice each).
    assert_eq!(page.facts["svgs"], 9);
    let html = sb.read("book.html");
    assert!(
        html.contains("outage 1: "),
        "the outage is labelled on the chart"
    );
    save_screenshot("outage.png", &page.screenshot_png);
}

/// A process-only experiment Chaos Toolkit runs anywhere; its tolerance
/// refers to the configuration, which the journal keeps unsubstituted.
fn ctk_experiment() -> Value {
    json!({
        "title": "Does the service answer?",
        "configuration": {"code": 0},
        "description": "Chaos Toolkit runs this, squall reports on it.",
        "tags": ["ctk"],
        "steady-state-hypothesis": {"title": "It answers", "probes": [
            {"type": "probe", "name": "says-hello", "tolerance": "${code}",
             "provider": {"type": "process", "path": "echo", "arguments": "hello"}}]},
        "method": [
            {"type": "action", "name": "break-it",
             "provider": {"type": "process", "path": "sh", "arguments": "-c 'exit 3'"}},
            {"type": "probe", "name": "look", "provider": {"type": "process", "path": "true"}}],
        "rollbacks": [{"type": "action", "name": "mend-it",
                       "provider": {"type": "process", "path": "true"}}]
    })
}

/// Chaos Toolkit's `chaos`, installed by `.ci/run` in target/ctk-venv.
fn chaos() -> Option<std::path::PathBuf> {
    let bin = root().join("target/ctk-venv/bin/chaos");
    bin.exists().then_some(bin)
}

#[test]
fn a_chaos_toolkit_journal_renders() {
    let Some(chaos) = chaos() else {
        missing("chaostoolkit (target/ctk-venv)");
        return;
    };
    let sb = Sandbox::new();
    let exp = sb.write("exp.json", &ctk_experiment().to_string());
    let out = std::process::Command::new(chaos)
        .current_dir(sb.dir.path())
        .args([
            "--no-log-file",
            "run",
            "--journal-path",
            "ctk.json",
            "--rollback-strategy",
            "always",
        ])
        .arg(&exp)
        .output()
        .unwrap();
    assert!(
        sb.path("ctk.json").exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["ctk.html", "ctk.md", "ctk.pdf", "ctk.xml"] {
        report(&sb, &["ctk.json", file]).code(0);
    }
    // Chaos Toolkit journals hold activities as written (`${code}`): the
    // report substitutes, with --var winning over the experiment's value.
    report(&sb, &["--var", "code:int=7", "ctk.json", "seven.md"]).code(0);
    assert!(sb.read("seven.md").contains("| says-hello | `7` | ✔ met |"));
    let md = sb.read("ctk.md");
    for needle in [
        "# Does the service answer?",
        "Chaos Toolkit (chaoslib",
        "| says-hello | `0` | ✔ met |",
        "| action | break-it |",
        "mend-it",
    ] {
        assert!(md.contains(needle), "{needle} in {md}");
    }
    if have("xmllint") {
        report_support::validate_junit(&sb.path("ctk.xml"));
        let j = read_json(&sb, "ctk.json");
        assert_eq!(suite_counts(&sb.read("ctk.xml")), vec![expected_counts(&j)]);
    }
    browse(&sb.path("ctk.html"), None);
}
