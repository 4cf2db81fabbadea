//! JUnit XML in the dialect Jenkins, GitLab and GitHub's test reporters
//! read (validated against Jenkins' `junit-10.xsd` in the tests): one
//! `testsuite` per journal; a `testcase` per hypothesis probe check and per
//! method activity and rollback; an out-of-tolerance probe is a `failure`,
//! a provider error an `error`, an activity the run never reached is
//! `skipped`; run id, outcome and score are `properties`. Names are made
//! unique within a suite (GitLab keeps only the first of duplicate names)
//! and the experiment's title is the `classname` (which GitLab shows).

use std::fmt::Write;

use crate::escape;
use crate::model::{Item, Run};

/// One test case before it is written.
struct Case {
    name: String,
    time: f64,
    verdict: Verdict,
}

enum Verdict {
    Passed,
    Failure(String),
    Error(String),
    Skipped(String),
}

/// Counts of a suite, as its attributes say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    pub skipped: usize,
}

fn cases(run: &Run) -> Vec<Case> {
    let mut out = Vec::new();
    for (n, (phase, check)) in run.checks().into_iter().enumerate() {
        let phase = if phase == "during" {
            format!("during #{n}")
        } else {
            phase.to_owned()
        };
        for p in &check.probes {
            out.push(case(format!("hypothesis {phase}: {}", p.name), p));
        }
    }
    for (n, i) in run.method.iter().enumerate() {
        out.push(case(format!("method {}: {}", n + 1, i.name), i));
    }
    for (kind, name) in &run.not_reached {
        out.push(Case {
            name: format!("method: {name}"),
            time: 0.0,
            verdict: Verdict::Skipped(format!("{kind} not reached: the run stopped first")),
        });
    }
    for (n, i) in run.rollbacks.iter().enumerate() {
        out.push(case(format!("rollback {}: {}", n + 1, i.name), i));
    }
    unique(&mut out);
    out
}

fn case(name: String, i: &Item) -> Case {
    let verdict = if i.status.as_deref() == Some("failed") {
        Verdict::Error(
            i.error
                .clone()
                .unwrap_or_else(|| "the activity failed".into()),
        )
    } else if i.tolerance_met == Some(false) {
        let tol = i.tolerance.as_ref().map(crate::show).unwrap_or_default();
        Verdict::Failure(format!("tolerance not met: {tol}"))
    } else if i.status.is_none() {
        Verdict::Skipped("interrupted while running".into())
    } else {
        Verdict::Passed
    };
    Case {
        name,
        time: i.duration.unwrap_or(0.0),
        verdict,
    }
}

/// Suffixes repeated names (` (2)`, ` (3)`…).
fn unique(cases: &mut [Case]) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for c in cases {
        let n = seen.entry(c.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            c.name = format!("{} ({n})", c.name);
        }
    }
}

/// The counts a run's suite will carry.
pub fn counts(run: &Run) -> Counts {
    let mut c = Counts::default();
    for case in cases(run) {
        c.tests += 1;
        match case.verdict {
            Verdict::Passed => {}
            Verdict::Failure(_) => c.failures += 1,
            Verdict::Error(_) => c.errors += 1,
            Verdict::Skipped(_) => c.skipped += 1,
        }
    }
    c
}

/// The whole XML document.
pub fn render(runs: &[Run], title: &str) -> String {
    let mut suites = String::new();
    let mut total = Counts::default();
    let mut time = 0.0;
    for (i, run) in runs.iter().enumerate() {
        let c = counts(run);
        total.tests += c.tests;
        total.failures += c.failures;
        total.errors += c.errors;
        total.skipped += c.skipped;
        time += run.duration.unwrap_or(0.0);
        suite(&mut suites, run, i, &c);
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" \
failures=\"{}\" errors=\"{}\" time=\"{time:.3}\">\n{suites}</testsuites>\n",
        escape(title),
        total.tests,
        total.failures,
        total.errors
    )
}

fn suite(out: &mut String, run: &Run, i: usize, c: &Counts) {
    let _ = write!(
        out,
        "  <testsuite name=\"{}\" id=\"{i}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" \
skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\" hostname=\"{}\">\n    <properties>\n",
        escape(&run.title),
        c.tests,
        c.failures,
        c.errors,
        c.skipped,
        run.duration.unwrap_or(0.0),
        escape(&run.start_text),
        escape(run.node.as_deref().unwrap_or("unknown"))
    );
    let props = [
        ("outcome", run.outcome.word().to_owned()),
        ("run_id", run.run_id.clone().unwrap_or_default()),
        (
            "score",
            run.score.value.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("journal", run.source.clone()),
        ("pending_undo", run.pending_undo.len().to_string()),
    ];
    for (k, v) in props.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(
            out,
            "      <property name=\"{k}\" value=\"{}\"/>",
            escape(v)
        );
    }
    out.push_str("    </properties>\n");
    for case in cases(run) {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(&run.title),
            escape(&case.name),
            case.time
        );
        match case.verdict {
            Verdict::Passed => out.push_str("/>\n"),
            Verdict::Failure(m) => element(out, "failure", &m),
            Verdict::Error(m) => element(out, "error", &m),
            Verdict::Skipped(m) => element(out, "skipped", &m),
        }
    }
    out.push_str("  </testsuite>\n");
}

fn element(out: &mut String, tag: &str, message: &str) {
    let first = message.lines().next().unwrap_or_default();
    let _ = write!(
        out,
        ">\n      <{tag} message=\"{}\">{}</{tag}>\n    </testcase>\n",
        escape(first),
        escape(message)
    );
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};
    use squall_core::config::FixedEnv;

    use super::*;

    fn run(j: &serde_json::Value) -> Run {
        let text = serde_json::to_vec(j).unwrap();
        crate::model::parse("j.json", &text, &Map::new(), &FixedEnv::default()).unwrap()
    }

    #[test]
    fn duplicate_names_are_made_unique_and_markup_escaped() {
        let r = run(&json!({
            "experiment": {"title": "A <b> & \"c\"", "method": [
                {"type": "action", "name": "x"}, {"type": "action", "name": "x"}]},
            "run": [], "start": "2026-01-01T00:00:00+00:00", "status": "interrupted"
        }));
        let xml = render(&[r], "t");
        assert!(xml.contains("name=\"method: x\""), "{xml}");
        assert!(xml.contains("name=\"method: x (2)\""), "{xml}");
        assert!(
            xml.contains("classname=\"A &lt;b&gt; &amp; &quot;c&quot;\""),
            "{xml}"
        );
        assert!(
            xml.contains("tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"2\""),
            "{xml}"
        );
    }

    #[test]
    fn errors_failures_and_skips_are_told_apart() {
        let rec = |name: &str, status: Option<&str>, met: Option<bool>| {
            let mut r = json!({"activity": {"type": "probe", "name": name, "tolerance": 200},
                               "output": null, "start": "s", "end": "e", "duration": 0.5,
                               "exception": ["boom\n", "detail\n"]});
            if let Some(s) = status {
                r["status"] = json!(s);
            }
            if let Some(m) = met {
                r["tolerance_met"] = json!(m);
            }
            r
        };
        let r = run(&json!({
            "experiment": {"title": "t"}, "start": "s",
            "steady_states": {"before": {"steady_state_met": false, "probes": [
                rec("out-of-tolerance", Some("succeeded"), Some(false))]}},
            "run": [rec("provider-error", Some("failed"), None), rec("cut-short", None, None)],
        }));
        assert_eq!(
            counts(&r),
            Counts {
                tests: 3,
                failures: 1,
                errors: 1,
                skipped: 1
            }
        );
        let xml = render(&[r], "t");
        assert!(
            xml.contains("<failure message=\"tolerance not met: 200\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<error message=\"boom\">boom\ndetail</error>"),
            "{xml}"
        );
        assert!(
            xml.contains("<skipped message=\"interrupted while running\">"),
            "{xml}"
        );
    }
}
