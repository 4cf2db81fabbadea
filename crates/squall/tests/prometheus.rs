//! `chaosprometheus.probes` end to end: the real binary against a real
//! Prometheus (Debian's `prometheus`, installed by `.ci/run`) that the test
//! starts on loopback, scraping a tiny exporter the test serves; and a
//! fake Prometheus on loopback for what a real one will not do on demand
//! (`status: error` with HTTP 200, checking the auth header).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Sandbox, wait_until};

/// A one-thread HTTP server on loopback: `answer(request head)` gives the
/// status and body of each response. Stops with the test.
struct Server {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            // Bounded in count; a scrape a second for a few seconds is far less.
            for stream in listener.incoming().take(5000) {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = stream {
                    reply(s, &answer);
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn reply(mut stream: TcpStream, answer: &dyn Fn(&str) -> (u16, String)) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok() && line.trim() != "" {
        head.push_str(&line);
        line.clear();
    }
    let (status, body) = answer(&head);
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes());
}

/// The exporter Prometheus scrapes: `demo_errors` is 0 until `/break`.
fn exporter() -> (Server, Arc<AtomicU64>) {
    let errors = Arc::new(AtomicU64::new(0));
    let e = errors.clone();
    let server = Server::start(move |head| {
        if head.starts_with("GET /break") {
            e.store(5, Ordering::SeqCst);
            return (200, "broken\n".into());
        }
        let n = e.load(Ordering::SeqCst);
        (
            200,
            format!("# TYPE demo_errors gauge\ndemo_errors {n}\n# TYPE demo_up gauge\ndemo_up 1\n"),
        )
    });
    (server, errors)
}

/// A real Prometheus on a free loopback port, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Starts Prometheus scraping `target` every second and waits (bounded)
/// until it has a sample of `demo_up`.
fn prometheus(target: &str) -> Prometheus {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: demo\n  static_configs:\n  - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            data.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the `prometheus` binary (Debian's package; .ci/run installs it)");
    let prom = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _data: data,
    };
    assert!(
        wait_until(60, || get(&prom.url, "/api/v1/query?query=demo_up")
            .contains("\"value\"")),
        "Prometheus did not scrape the exporter in time"
    );
    prom
}

fn errors_hypothesis(base_config: &str, exporter: &str) -> String {
    format!(
        r#"version: 1.0.0
title: Errors stay at zero
description: The exporter's error gauge, read through Prometheus.
configuration:
  prometheus_base_url: {base_config}
steady-state-hypothesis:
  title: No errors
  probes:
  - type: probe
    name: errors-are-zero
    tolerance:
      type: jsonpath
      path: $.data.result[0].value[1]
      expect: "0"
    provider:
      type: python
      module: chaosprometheus.probes
      func: query
      arguments:
        query: demo_errors
        when: now
method:
- type: action
  name: break-it
  provider:
    type: http
    url: http://{exporter}/break
  pauses:
    after: 4
"#
    )
}

#[test]
fn a_prometheus_hypothesis_holds_then_deviates_after_the_fault() {
    let (exp, _errors) = exporter();
    let prom = prometheus(&exp.addr);
    let sb = Sandbox::new();
    let file = sb.write("exp.yaml", &errors_hypothesis(&prom.url, &exp.addr));
    let run = sb.run(&["run", file.to_str().unwrap()]);
    run.code(1)
        .has("Steady state hypothesis is met!")
        .has("Steady state probe 'errors-are-zero' is not in the given tolerance");
    let j = sb.journal();
    let before = &j["steady_states"]["before"]["probes"][0]["output"];
    assert_eq!(before["status"], "success");
    assert_eq!(before["data"]["resultType"], "vector");
    assert_eq!(before["data"]["result"][0]["value"][1], "0");
    let after = &j["steady_states"]["after"]["probes"][0]["output"];
    assert_eq!(after["data"]["result"][0]["value"][1], "5");
    assert_eq!(j["deviated"], true);
}

fn probes_experiment(prom: &str) -> String {
    let p = |name: &str, func: &str, args: &str| {
        format!(
            "- type: probe\n  name: {name}\n  provider:\n    type: python\n    module: chaosprometheus.probes\n    func: {func}\n    arguments: {args}\n"
        )
    };
    let method = [
        p(
            "range",
            "query_interval",
            "{query: demo_up, start: 1 minute ago, end: now, step: 1}",
        ),
        p("mean", "compute_mean", "{query: demo_up, window: 1m}"),
        p("bad-promql", "query", "{query: 'sum(demo_up'}"),
        p(
            "nowhere",
            "query",
            "{query: demo_up, prometheus_base_url: 'http://prometheus.invalid:9090'}",
        ),
        p(
            "bad-when",
            "query",
            "{query: demo_up, when: 'next blue moon'}",
        ),
    ]
    .concat();
    format!(
        "version: 1.0.0\ntitle: Prometheus probes\ndescription: d\nconfiguration:\n  prometheus_base_url: {prom}/\nmethod:\n{method}"
    )
}

#[test]
fn range_queries_means_and_clear_failures_against_a_real_prometheus() {
    let (exp, _errors) = exporter();
    let prom = prometheus(&exp.addr);
    let sb = Sandbox::new();
    let file = sb.write("exp.yaml", &probes_experiment(&prom.url));
    let run = sb.run(&["run", file.to_str().unwrap()]);
    run.code(0);
    let j = sb.journal();
    let item = |i: usize| j["run"][i].clone();
    let range = item(0);
    assert_eq!(range["status"], "succeeded", "{range}");
    assert_eq!(range["output"]["data"]["resultType"], "matrix");
    let values = range["output"]["data"]["result"][0]["values"]
        .as_array()
        .unwrap();
    assert!(!values.is_empty());
    assert_eq!(values[0][1], "1");
    let mean = item(1);
    assert_eq!(mean["status"], "succeeded", "{mean}");
    assert_eq!(mean["output"], 1.0);
    let text = |i: usize| item(i)["exception"].to_string();
    assert_eq!(item(2)["status"], "failed");
    assert!(text(2).contains("HTTP 400: bad_data:"), "{}", text(2));
    assert!(text(2).contains("parse error"), "{}", text(2));
    assert_eq!(item(3)["status"], "failed");
    assert!(
        text(3).contains("cannot reach Prometheus at http://prometheus.invalid:9090"),
        "{}",
        text(3)
    );
    assert!(
        text(4).contains("failed to parse 'next blue moon'"),
        "{}",
        text(4)
    );
}

/// Two probes against a fake Prometheus: a bearer token and basic auth.
fn auth_experiment(addr: &str) -> String {
    format!(
        r#"version: 1.0.0
title: t
description: d
secrets:
  prom:
    prometheus_token: s3cr3t-t0ken
  basic:
    prometheus_username: ops
    prometheus_password: hunter2
method:
- type: probe
  name: bearer
  provider:
    type: python
    module: chaosprometheus.probes
    func: query
    secrets: [prom]
    arguments: {{query: up, prometheus_base_url: 'http://{addr}'}}
- type: probe
  name: basic
  provider:
    type: python
    module: chaosprometheus.probes
    func: query_interval
    secrets: [basic]
    arguments: {{query: up, start: 1700000000, end: '2023-11-14T22:15:00Z', prometheus_base_url: 'http://{addr}'}}
"#,
    )
}

#[test]
fn status_error_with_http_200_fails_and_secrets_authenticate() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let fake = Server::start(move |head| {
        log.lock().unwrap().push(head.to_owned());
        (
            200,
            r#"{"status":"error","errorType":"execution","error":"query timed out"}"#.into(),
        )
    });
    let sb = Sandbox::new();
    let file = sb.write("exp.yaml", &auth_experiment(&fake.addr));
    let run = sb.run(&["run", file.to_str().unwrap()]);
    run.code(0).lacks("s3cr3t-t0ken").lacks("hunter2");
    let j = sb.journal();
    assert_eq!(j["run"][0]["status"], "failed");
    assert!(
        j["run"][0]["exception"]
            .to_string()
            .contains("failed: execution: query timed out")
    );
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    let lower: Vec<String> = heads.iter().map(|h| h.to_ascii_lowercase()).collect();
    assert!(
        lower[0].starts_with("get /api/v1/query?query=up "),
        "{}",
        heads[0]
    );
    assert!(lower[0].contains("authorization: bearer s3cr3t-t0ken"));
    // ops:hunter2 in base64.
    assert!(lower[1].contains("authorization: basic b3bzomh1bnrlcji="));
    assert!(lower[1].contains("start=1700000000.000"), "{}", heads[1]);
    assert!(lower[1].contains("end=1700000100.000"), "{}", heads[1]);
    assert!(!sb.read("journal.json").contains("s3cr3t-t0ken"));
}
