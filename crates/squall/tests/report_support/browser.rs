//! Opens an HTML report in a real headless Chromium and watches it over the
//! DevTools protocol (a WebSocket on loopback): every network request the
//! page makes, every console message and uncaught exception, facts the
//! page's DOM reports, the page width on a phone-sized screen, and a
//! screenshot. The tests fail on any request or console error.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// What the page did and what it holds.
#[derive(Debug, Default)]
pub struct PageReport {
    /// URLs requested other than the report itself.
    pub requests: Vec<String>,
    /// Console errors and warnings, exceptions, and browser log errors.
    pub console: Vec<String>,
    /// The result of [`FACTS`], evaluated in the page.
    pub facts: Value,
    /// `documentElement.scrollWidth` at a 390-px-wide phone viewport.
    pub phone_scroll_width: i64,
    pub screenshot_png: Vec<u8>,
}

/// Facts about the DOM, gathered in the page.
const FACTS: &str = r#"JSON.stringify({
  h1: document.querySelectorAll('h1').length,
  h2: document.querySelectorAll('h2').length,
  svgs: document.querySelectorAll('svg').length,
  svgsWithText: [...document.querySelectorAll('svg')].filter(s =>
     s.getAttribute('role') === 'img' && s.querySelector('title') && s.querySelector('title').textContent.length > 0
     && s.querySelector('desc') && s.querySelector('desc').textContent.length > 0).length,
  tables: document.querySelectorAll('table').length,
  tablesWithHeaders: [...document.querySelectorAll('table')].filter(t => t.querySelector('th')).length,
  scripts: document.querySelectorAll('script').length,
  details: document.querySelectorAll('details').length,
  openDetails: document.querySelectorAll('details[open]').length,
  alerts: [...document.querySelectorAll('[role=alert]')].map(a => a.textContent),
  text: document.body.innerText,
})"#;

/// Where Chromium is; `None` if it is not installed.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens `file` and reports on it; the screenshot shows the element with
/// id `focus` at the top when given.
pub fn open(binary: &str, file: &Path, focus: Option<&str>) -> PageReport {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let endpoint = devtools_endpoint(&mut child);
    let _browser = Browser {
        child,
        _profile: profile,
    };
    let mut cdp = Cdp::connect(&endpoint);
    cdp.inspect(file, focus)
}

/// The browser's WebSocket address, from its `DevTools listening on` line.
fn devtools_endpoint(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("chromium announced its DevTools endpoint")
}

/// A DevTools protocol session attached to one page.
struct Cdp {
    ws: WebSocket<TcpStream>,
    next: u64,
    session: Option<String>,
    events: Vec<Value>,
}

impl Cdp {
    fn connect(endpoint: &str) -> Self {
        let addr = endpoint
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) = tungstenite::client(endpoint, stream).expect("devtools handshake");
        Self {
            ws,
            next: 0,
            session: None,
            events: Vec::new(),
        }
    }

    /// Sends a command and waits for its result, keeping events seen.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let v = self.read();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn read(&mut self) -> Value {
        loop {
            match self.ws.read().expect("devtools message") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Close(_) => panic!("devtools closed"),
                _ => {}
            }
        }
    }

    /// Waits for an event, up to `secs`.
    fn wait_event(&mut self, method: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.events.iter().any(|e| e["method"] == method) {
            assert!(Instant::now() < deadline, "no {method} event");
            let v = self.read();
            self.events.push(v);
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    fn viewport(&mut self, width: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 1200, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    fn inspect(&mut self, file: &Path, focus: Option<&str>) -> PageReport {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = attached["sessionId"].as_str().map(str::to_owned);
        for domain in ["Network", "Runtime", "Log", "Page"] {
            self.call(&format!("{domain}.enable"), json!({}));
        }
        self.viewport(900, false);
        self.events.clear();
        let url = format!("file://{}", file.canonicalize().unwrap().display());
        self.call("Page.navigate", json!({"url": url}));
        self.wait_event("Page.loadEventFired", 30);
        let facts: Value = serde_json::from_str(self.eval(FACTS).as_str().unwrap()).unwrap();
        if let Some(id) = focus {
            self.eval(&format!("document.getElementById('{id}').scrollIntoView()"));
        }
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        self.viewport(390, true);
        let phone = self
            .eval("document.documentElement.scrollWidth")
            .as_i64()
            .unwrap();
        PageReport {
            requests: self.requests(&url),
            console: self.console(),
            facts,
            phone_scroll_width: phone,
            screenshot_png: png,
        }
    }

    fn requests(&self, own: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str())
            .filter(|u| *u != own)
            .map(str::to_owned)
            .collect()
    }

    fn console(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.events {
            let p = &e["params"];
            match e["method"].as_str() {
                Some("Runtime.consoleAPICalled")
                    if matches!(p["type"].as_str(), Some("error" | "warning" | "assert")) =>
                {
                    out.push(p["args"].to_string());
                }
                Some("Runtime.exceptionThrown") => out.push(p["exceptionDetails"].to_string()),
                Some("Log.entryAdded")
                    if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) =>
                {
                    out.push(p["entry"]["text"].to_string());
                }
                _ => {}
            }
        }
        out
    }
}
