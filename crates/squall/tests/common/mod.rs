//! Helpers for CLI tests: run the real `squall` binary in a temporary
//! directory, and a tiny local HTTP server that plays the book's demo
//! application on loopback only.

#![allow(dead_code)]

pub mod cluster;
pub mod lab;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A temporary working directory with the binary ready to run.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_squall"));
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("HOME", self.dir.path());
        c
    }

    /// Runs `squall ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd().args(args).output().unwrap();
        Run::from(out)
    }

    pub fn journal(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path("journal.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

/// A finished run: exit code and the console log.
pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub stdout: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        }
    }
}

impl Run {
    /// Asserts a console line contains `needle`.
    #[track_caller]
    pub fn has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stderr.contains(needle),
            "did not expect {needle:?} in:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; log:\n{}", self.stderr);
        self
    }
}

/// The demo app on loopback: `/` answers the go-demo-8 banner,
/// `/demo/person` answers 200 until `/break` is called (then 500),
/// `/slow` answers after 3 s, `/json` answers a JSON document.
pub struct DemoApp {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl DemoApp {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            // Bounded: at most 2,000 connections, and it stops with the test.
            for stream in listener.incoming().take(2000) {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let broken = broken.clone();
                std::thread::spawn(move || serve(stream, &broken));
            }
        });
        Self { addr, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(mut stream: TcpStream, broken: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok() && line.trim() != "" {
        line.clear();
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (status, ctype, body) = match path.split('?').next().unwrap_or("/") {
        "/" => (
            200,
            "text/plain",
            "Version: 0.0.1; Release: unknown\n".to_owned(),
        ),
        "/demo/person" if broken.load(Ordering::SeqCst) => {
            (500, "text/plain", "db down\n".to_owned())
        }
        "/demo/person" => (200, "text/plain", "[]\n".to_owned()),
        "/break" => {
            broken.store(true, Ordering::SeqCst);
            (200, "text/plain", "broken\n".to_owned())
        }
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            (200, "text/plain", "late\n".to_owned())
        }
        "/json" => (
            200,
            "application/json",
            "{\"replicas\": 3, \"ready\": true}".to_owned(),
        ),
        _ => (404, "text/plain", "not found\n".to_owned()),
    };
    let reason = if status == 200 { "OK" } else { "Error" };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes());
}

/// Polls `cond` every 50 ms for at most `secs` seconds.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Starts `squall <args>` (a `sandbox serve --kubeconfig kube.yaml …`),
/// waits for the kubeconfig and returns the child and the API URL.
pub fn start_sandbox(sb: &Sandbox, args: &[&str]) -> (std::process::Child, String) {
    let child = sb
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(20, || sb
        .read("kube.yaml")
        .contains("server: http://127.0.0.1:")));
    let config = sb.read("kube.yaml");
    let server = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_owned();
    (child, server)
}

/// One HTTP/1.1 request to a loopback server; the raw response.
pub fn http(server: &str, method: &str, path: &str, body: &str) -> String {
    http_typed(server, method, path, "application/json", body)
}

/// [`http`] with a chosen content type (a PATCH needs
/// `application/merge-patch+json` or another patch type).
pub fn http_typed(server: &str, method: &str, path: &str, ctype: &str, body: &str) -> String {
    use std::io::Read;
    let addr = server.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The JSON body of a raw response (the sandbox streams lists chunked);
/// `null` when there is none.
pub fn json_body(resp: &str) -> serde_json::Value {
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or_default();
    let text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// The payload of a chunked HTTP/1.1 body (`<hex size>\r\n<data>\r\n` … `0`).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// A GET with a chosen Host header (for the sandbox gateway).
pub fn http_with_host(server: &str, path: &str, host: &str) -> String {
    use std::io::Read;
    let addr = server.trim_start_matches("http://");
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
