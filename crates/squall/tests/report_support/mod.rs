//! Helpers for the report tests: the external checkers (Chromium, poppler,
//! xmllint, Chaos Toolkit), required under CI and skipped with a reason
//! elsewhere, and checks of each output format.

#![allow(dead_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace's root directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether a checker may be missing: only outside CI, where the test then
/// says it skipped. `.ci/run` installs every one of them.
pub fn missing(tool: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{tool} is required under CI=true (.ci/run installs it)"
    );
    eprintln!("SKIPPED: {tool} is not installed");
    true
}

pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty())
}

/// Runs a checker, returning stdout; panics with its stderr on failure.
pub fn check(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pdfinfo` fields and `pdftotext` text of a PDF.
pub fn pdf(path: &Path) -> (String, String) {
    let p = path.to_str().unwrap();
    (
        check("pdfinfo", &[p]),
        check("pdftotext", &["-layout", p, "-"]),
    )
}

/// The number of pages `pdfinfo` reports.
pub fn pages(info: &str) -> usize {
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Validates JUnit XML against Jenkins' junit-10.xsd.
pub fn validate_junit(path: &Path) {
    let xsd = root().join("crates/squall-report/tests/junit-10.xsd");
    check(
        "xmllint",
        &[
            "--noout",
            "--schema",
            xsd.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    );
}

/// Test counts a journal implies: (tests, failures, errors, skipped).
/// Hypothesis probes out of tolerance are failures, failed activities
/// errors, interrupted ones skipped; method steps never reached skipped.
pub fn expected_counts(j: &Value) -> (usize, usize, usize, usize) {
    let mut records: Vec<&Value> = Vec::new();
    let ss = &j["steady_states"];
    for phase in [&ss["before"], &ss["after"]] {
        records.extend(phase["probes"].as_array().into_iter().flatten());
    }
    for during in ss["during"].as_array().into_iter().flatten() {
        records.extend(during["probes"].as_array().into_iter().flatten());
    }
    let run = j["run"].as_array().unwrap();
    records.extend(run);
    records.extend(j["rollbacks"].as_array().into_iter().flatten());
    let mut c = (records.len(), 0, 0, 0);
    for r in &records {
        if r["status"] == "failed" {
            c.2 += 1;
        } else if r["tolerance_met"] == false {
            c.1 += 1;
        } else if r.get("status").is_none_or(Value::is_null) {
            c.3 += 1;
        }
    }
    let steps = j["experiment"]["method"].as_array().map_or(0, Vec::len);
    let reached = steps.min(run.len());
    c.0 += steps - reached;
    c.3 += steps - reached;
    c
}

/// The `(tests, failures, errors, skipped)` attributes of each testsuite.
pub fn suite_counts(xml: &str) -> Vec<(usize, usize, usize, usize)> {
    xml.split("<testsuite ")
        .skip(1)
        .map(|s| {
            let head = s.split('>').next().unwrap();
            let attr = |name: &str| -> usize {
                let key = format!(" {name}=\"");
                let start = head.find(&key).unwrap() + key.len();
                head[start..].split('"').next().unwrap().parse().unwrap()
            };
            (
                attr("tests"),
                attr("failures"),
                attr("errors"),
                attr("skipped"),
            )
        })
        .collect()
}
