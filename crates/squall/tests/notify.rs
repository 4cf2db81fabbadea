//! Notifications end to end: the real binary with a settings file whose
//! `notifications:` point at receivers the test serves on loopback — an
//! HTTP receiver that records every event, a fake Slack Web API that
//! records `chat.postMessage` bodies (and can throttle or refuse), and a
//! receiver that accepts and never answers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Run, Sandbox, wait_until};
use serde_json::Value;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Request {
    line: String,
    /// Lower-cased header lines.
    headers: String,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// What a receiver answers: `None` holds the connection open unanswered.
type Answer = dyn Fn(usize, &Request) -> Option<String> + Send + Sync;

/// A loopback HTTP receiver; a thread per connection, bounded in count.
struct Receiver {
    addr: String,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(answer: Box<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, flag, answer) = (seen.clone(), stop.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for stream in listener.incoming().take(200) {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = stream else { continue };
                let (log, flag, answer) = (log.clone(), flag.clone(), answer.clone());
                std::thread::spawn(move || serve(s, &log, &flag, &**answer));
            }
        });
        Self { addr, seen, stop }
    }

    fn ok() -> Self {
        Self::start(Box::new(|_, _| {
            Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into())
        }))
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .requests()
            .iter()
            .map(|r| r.json()["name"].as_str().unwrap_or("?").to_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(mut s: TcpStream, log: &Mutex<Vec<Request>>, stop: &AtomicBool, answer: &Answer) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut headers = String::new();
    let mut h = String::new();
    while reader.read_line(&mut h).is_ok() && h.trim() != "" {
        headers.push_str(&h.to_ascii_lowercase());
        h.clear();
    }
    let len = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let req = Request {
        line: line.trim().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let n = {
        let mut l = log.lock().unwrap();
        l.push(req.clone());
        l.len()
    };
    match answer(n, &req) {
        Some(resp) => {
            let _ = s.write_all(resp.as_bytes());
        }
        // Accepts and never answers (bounded: until the test ends, 30 s at most).
        None => {
            let _ = wait_until(30, || stop.load(Ordering::SeqCst));
        }
    }
}

/// An experiment whose hypothesis reads a state file that the method sets
/// to `content`, pausing `pause` seconds after.
fn experiment(sb: &Sandbox, initial: &str, content: &str, pause: u32) -> String {
    let state = sb.write("state", initial);
    let exp = format!(
        r#"title: Notify me
description: A state file, a change, a pause.
steady-state-hypothesis:
  title: The state is healthy
  probes:
  - type: probe
    name: healthy
    tolerance: 0
    provider: {{type: process, path: grep, arguments: "-q healthy {s}"}}
method:
- type: action
  name: change
  provider:
    type: python
    module: squall.testing.actions
    func: write_file
    arguments: {{path: "{s}", content: "{content}"}}
  pauses: {{after: {pause}}}
"#,
        s = state.display()
    );
    sb.write("exp.yaml", &exp).display().to_string()
}

fn settings(sb: &Sandbox, yaml: &str) -> String {
    sb.write("settings.yaml", yaml).display().to_string()
}

fn http_settings(url: &str, extra: &str) -> String {
    format!(
        "notifications:\n- type: http\n  url: {url}\n  headers:\n    Authorization: Bearer hdr-s3cret-value\n{extra}"
    )
}

fn run_with(sb: &Sandbox, settings: &str, exp: &str) -> Run {
    sb.run(&["--settings", settings, "run", exp])
}

#[test]
fn a_completed_run_sends_run_started_and_run_completed_in_upstreams_shape() {
    let rx = Receiver::ok();
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "healthy", 0);
    let run = run_with(&sb, &settings(&sb, &http_settings(&rx.url(), "")), &exp);
    run.code(0).lacks("hdr-s3cret-value").lacks("Notification");
    assert_eq!(rx.events(), ["run-completed", "run-started"]);
    let reqs = rx.requests();
    for r in &reqs {
        assert!(r.line.starts_with("POST /hook "), "{}", r.line);
        assert!(r.headers.contains("authorization: bearer hdr-s3cret-value"));
        let e = r.json();
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["name", "payload", "phase", "ts"]);
        assert_eq!(e["phase"], "run");
        assert!(e["ts"].as_f64().unwrap() > 1.7e9);
    }
    let by = |n: &str| {
        reqs.iter()
            .map(Request::json)
            .find(|e| e["name"] == n)
            .unwrap()
    };
    assert_eq!(by("run-started")["payload"]["title"], "Notify me");
    let journal = &by("run-completed")["payload"];
    assert_eq!(journal["status"], "completed");
    assert_eq!(journal["experiment"]["title"], "Notify me");
    assert!(!sb.read("squall.log").contains("hdr-s3cret-value"));
    assert!(!sb.read("journal.json").contains("hdr-s3cret-value"));
}

#[test]
fn a_deviated_run_sends_completed_and_deviated_and_filters_apply() {
    let all = Receiver::ok();
    let filtered = Receiver::ok();
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "broken", 0);
    let yaml = format!(
        "{}- type: http\n  url: {}\n  events: [run-deviated, run-failed]\n",
        http_settings(&all.url(), ""),
        filtered.url()
    );
    run_with(&sb, &settings(&sb, &yaml), &exp).code(1);
    assert_eq!(
        all.events(),
        ["run-completed", "run-deviated", "run-started"]
    );
    assert_eq!(filtered.events(), ["run-deviated"]);
    let e = filtered.requests()[0].json();
    assert_eq!(e["payload"]["deviated"], true);
}

#[test]
fn a_failed_run_sends_run_failed_and_a_get_without_payload_when_asked() {
    let rx = Receiver::ok();
    let bare = Receiver::ok();
    let sb = Sandbox::new();
    let exp = experiment(&sb, "broken", "healthy", 0);
    let yaml = format!(
        "{}- type: http\n  url: {}\n  forward_event_payload: false\n  events: [run-failed]\n",
        http_settings(&rx.url(), "  events: [run-failed, run-completed]\n"),
        bare.url()
    );
    run_with(&sb, &settings(&sb, &yaml), &exp).code(1);
    assert_eq!(rx.events(), ["run-failed"]);
    assert_eq!(rx.requests()[0].json()["payload"]["status"], "failed");
    let get = &bare.requests()[0];
    assert!(get.line.starts_with("GET /hook "), "{}", get.line);
    assert!(get.body.is_empty());
}

#[test]
fn an_interrupted_run_sends_run_failed_with_the_journal() {
    let rx = Receiver::ok();
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "healthy", 60);
    let s = settings(&sb, &http_settings(&rx.url(), ""));
    let child = sb
        .cmd()
        .args(["--settings", &s, "run", &exp])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(20, || sb
        .read("squall.log")
        .contains("Pausing after activity")));
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    Run::from(child.wait_with_output().unwrap()).code(1);
    assert_eq!(rx.events(), ["run-failed", "run-started"]);
    let failed = rx
        .requests()
        .iter()
        .map(Request::json)
        .find(|e| e["name"] == "run-failed");
    assert_eq!(failed.unwrap()["payload"]["status"], "interrupted");
}

#[test]
fn a_receiver_that_never_answers_costs_at_most_its_timeout_and_changes_nothing() {
    let silent = Receiver::start(Box::new(|_, _| None));
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "broken", 0);
    let plain = sb.run(&["--settings", &settings(&sb, "{}"), "run", &exp]);
    let exp = experiment(&sb, "healthy", "broken", 0);
    let yaml = format!(
        "notifications:\n- type: http\n  url: {}\n  timeout: 1\n",
        silent.url()
    );
    let started = Instant::now();
    let run = run_with(&sb, &settings(&sb, &yaml), &exp);
    // Bounded, not timed: a send that held the run would never end.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run.code, plain.code);
    run.has("Notification run-started to http://127.0.0.1:")
        .has("failed: no answer within 1s");
    assert_eq!(sb.journal()["status"], "completed");
    assert_eq!(sb.journal()["deviated"], true);
}

fn slack_settings(extra: &str) -> String {
    format!(
        "notifications:\n- type: plugin\n  module: chaosslack.notification\n  token: xoxb-s3cret-token\n  channel: chaos\n{extra}"
    )
}

#[test]
fn slack_messages_are_posted_retried_after_429_and_read_from_chaostoolkits_settings() {
    let slack = Receiver::start(Box::new(|n, _| {
        Some(if n == 1 {
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n".into()
        } else {
            let body = r#"{"ok": true, "ts": "1.2"}"#;
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        })
    }));
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "broken", 0);
    std::fs::create_dir(sb.path(".chaostoolkit")).unwrap();
    sb.write(
        ".chaostoolkit/settings.yaml",
        &slack_settings("  events: [run-deviated]\n"),
    );
    let run = sb
        .cmd()
        .args(["run", &exp])
        .env("SQUALL_SLACK_API_URL", format!("http://{}/api", slack.addr))
        .output()
        .unwrap();
    Run::from(run)
        .code(1)
        .lacks("xoxb-s3cret-token")
        .lacks("Notification");
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 2, "the 429 then the retry: {reqs:?}");
    for r in &reqs {
        assert!(r.line.starts_with("POST /api/chat.postMessage "));
        assert!(
            r.headers
                .contains("authorization: bearer xoxb-s3cret-token")
        );
    }
    let m = reqs[1].json();
    assert_eq!(m["channel"], "#chaos");
    assert_eq!(m["text"], "New Chaos Experiment Event");
    let a = &m["attachments"];
    assert_eq!(a[0]["fields"][1]["value"], "run-deviated");
    assert_eq!(a[0]["fields"][2]["value"], "Notify me");
    assert_eq!(a[1]["text"], "Steady State");
    assert_eq!(a[1]["fields"][0]["value"], "The state is healthy");
    assert_eq!(a[1]["fields"][2]["value"], "not met");
    assert!(!sb.read("squall.log").contains("xoxb-s3cret-token"));
}

#[test]
fn slack_refusing_with_http_200_is_a_warning_not_a_failure() {
    let slack = Receiver::start(Box::new(|_, _| {
        let body = r#"{"ok": false, "error": "channel_not_found"}"#;
        Some(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
    }));
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "healthy", 0);
    let api = format!(
        "  slack_api_url: http://{}/api\n  events: [run-completed]\n",
        slack.addr
    );
    let run = run_with(&sb, &settings(&sb, &slack_settings(&api)), &exp);
    run.code(0)
        .has("WARNING] Notification run-completed to Slack #chaos failed: Slack answered ok: false (channel_not_found)")
        .lacks("xoxb-s3cret-token");
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn bad_notification_settings_are_invalid_input_before_anything_runs() {
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "broken", 0);
    let yaml = "notifications:\n- type: http\n- type: plugin\n  module: chaosteams.notification\n- type: plugin\n- type: http\n  url: http://127.0.0.1:9/x\n  events: [run-finished]\n";
    let run = run_with(&sb, &settings(&sb, yaml), &exp);
    run.code(2)
        .has("notifications[0]: `url` is required for type http")
        .has("notifications[1]: unknown notification plugin module 'chaosteams.notification'")
        .has("notifications[2]: `module` is required for type plugin")
        .has("notifications[3]: unknown event 'run-finished'");
    assert_eq!(sb.read("state"), "healthy");
    assert!(!sb.path("journal.json").exists());
}

/// The book's `settings-failure.yaml` (chapter 8), as Chaos Toolkit reads
/// it from `~/.chaostoolkit/settings.yaml`, unchanged.
const BOOK_SETTINGS_FAILURE: &str = "notifications:
- type: plugin
  module: chaosslack.notification
  token: xoxb-@102298415591@-@902246554644@-@xa4zDR3lcyvleRymXAFSifLD@
  channel: tests
  events:
  - discover-failed
  - run-failed
  - validate-failed
";

fn ok_slack() -> Receiver {
    Receiver::start(Box::new(|_, _| {
        let body = r#"{"ok": true}"#;
        Some(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
    }))
}

#[test]
fn the_books_failure_only_settings_tell_slack_of_failures_only() {
    let slack = ok_slack();
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path(".chaostoolkit")).unwrap();
    sb.write(".chaostoolkit/settings.yaml", BOOK_SETTINGS_FAILURE);
    let api = format!("http://{}/api", slack.addr);
    let run = |exp: &str| {
        let out = sb
            .cmd()
            .args(["run", exp])
            .env("SQUALL_SLACK_API_URL", &api)
            .output();
        Run::from(out.unwrap())
    };
    run(&experiment(&sb, "healthy", "healthy", 0)).code(0);
    assert!(
        slack.requests().is_empty(),
        "a completed run is not a failure"
    );
    run(&experiment(&sb, "broken", "healthy", 0)).code(1);
    let bad = sb.write("bad.yaml", "title: t\n");
    run(bad.to_str().unwrap()).code(2);
    let events: Vec<Value> = slack.requests().iter().map(Request::json).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let event = |m: &Value| m["attachments"][0]["fields"][1]["value"].clone();
    let mut names = vec![event(&events[0]), event(&events[1])];
    names.sort_by_key(|v| v.to_string());
    assert_eq!(names, ["run-failed", "validate-failed"]);
    assert!(events.iter().all(|m| m["channel"] == "#tests"));
}

#[test]
fn squall_validate_sends_the_validate_events() {
    let rx = Receiver::ok();
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "healthy", 0);
    let s = settings(
        &sb,
        &format!("notifications:\n- type: http\n  url: {}\n", rx.url()),
    );
    sb.run(&["--settings", &s, "validate", &exp]).code(0);
    assert_eq!(rx.events(), ["validate-completed", "validate-started"]);
    let e = rx.requests()[0].json();
    assert_eq!(e["phase"], "validate");
    assert_eq!(e["payload"]["title"], "Notify me");
    let bad = sb.write("bad.yaml", "title: t\n");
    sb.run(&["--settings", &s, "validate", bad.to_str().unwrap()])
        .code(2);
    let failed = rx
        .requests()
        .iter()
        .map(Request::json)
        .find(|e| e["name"] == "validate-failed");
    let failed = failed.expect("validate-failed sent");
    assert!(
        failed["error"].as_str().unwrap().contains("description"),
        "{failed}"
    );
}

#[test]
fn squall_discover_sends_the_discovery_events() {
    let rx = Receiver::ok();
    let sb = Sandbox::new();
    let s = settings(
        &sb,
        &format!("notifications:\n- type: http\n  url: {}\n", rx.url()),
    );
    sb.run(&["--settings", &s, "discover", "chaosprometheus"])
        .code(0);
    assert_eq!(rx.events(), ["discovery-completed", "discovery-started"]);
    let by = |n: &str| {
        rx.requests()
            .iter()
            .map(Request::json)
            .find(|e| e["name"] == n)
    };
    assert_eq!(
        by("discovery-started").unwrap()["payload"],
        "chaosprometheus"
    );
    let done = by("discovery-completed").unwrap();
    assert_eq!(done["phase"], "discovery");
    assert!(
        done["payload"]["activities"]
            .as_array()
            .is_some_and(|a| a.len() == 4),
        "{done}"
    );
    sb.run(&["--settings", &s, "discover", "nosuchpkg"]).code(2);
    let failed = by("discovery-failed").expect("discovery-failed sent");
    assert_eq!(failed["payload"], "nosuchpkg");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("nosuchpkg not found")
    );
}

#[test]
fn a_server_error_is_retried_until_the_receiver_takes_the_event() {
    let rx = Receiver::start(Box::new(|n, _| {
        Some(if n == 1 {
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".into()
        } else {
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()
        })
    }));
    let sb = Sandbox::new();
    let exp = experiment(&sb, "healthy", "healthy", 0);
    let yaml = format!(
        "notifications:\n- type: http\n  url: {}\n  events: [run-completed]\n",
        rx.url()
    );
    run_with(&sb, &settings(&sb, &yaml), &exp)
        .code(0)
        .lacks("Notification");
    assert_eq!(rx.events(), ["run-completed", "run-completed"]);
}

#[test]
fn secrets_in_the_experiment_and_its_outputs_reach_no_receiver() {
    let rx = Receiver::ok();
    let sb = Sandbox::new();
    let exp = sb.write(
        "exp.yaml",
        r#"title: Secret
description: d
secrets:
  app:
    password: pa55-w0rd-s3cret
method:
- type: action
  name: leak
  provider: {type: process, path: echo, arguments: "${password}", secrets: [app]}
"#,
    );
    let s = settings(
        &sb,
        &format!("notifications:\n- type: http\n  url: {}\n", rx.url()),
    );
    sb.run(&["--settings", &s, "run", exp.to_str().unwrap()])
        .code(0);
    assert_eq!(rx.events(), ["run-completed", "run-started"]);
    for r in rx.requests() {
        assert!(!r.body.contains("pa55-w0rd-s3cret"), "{}", r.body);
        assert!(r.body.contains("***"), "{}", r.body);
    }
}
