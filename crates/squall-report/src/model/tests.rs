//! Lenient parsing: what is required, what is optional, and how outcomes
//! and scores come out of a journal.

use serde_json::{Map, Value, json};
use squall_core::config::FixedEnv;

use super::*;

fn parse_value(v: &Value) -> Result<Run, ReportError> {
    let text = serde_json::to_vec(v).unwrap();
    parse("j.json", &text, &Map::new(), &FixedEnv::default())
}

/// A small journal in squall's layout: a gate, one action, one failing
/// after-probe, one rollback and one pending undo.
pub fn journal() -> Value {
    let probe = |met: bool, start: &str| {
        json!({
            "activity": {"type": "probe", "name": "app-responds",
                         "tolerance": "${code}", "provider": {"type": "http", "url": "http://x"}},
            "output": {"status": 200}, "start": start, "status": "succeeded",
            "end": start, "duration": 0.1, "tolerance_met": met
        })
    };
    json!({
        "chaoslib-version": "1.44.0", "platform": "Linux", "node": "ci-1",
        "experiment": {
            "title": "Does ${app} survive?", "description": "desc", "tags": ["k8s"],
            "configuration": {"app": "go-demo-8", "code": 200},
            "steady-state-hypothesis": {"title": "App is up"},
            "method": [{"type": "action", "name": "kill-pod"}, {"type": "action", "name": "never-ran"}],
        },
        "start": "2026-01-01T00:00:00+00:00", "status": "completed", "deviated": true,
        "steady_states": {"before": {"steady_state_met": true, "probes": [probe(true, "2026-01-01T00:00:00.1+00:00")]},
                          "after": {"steady_state_met": false, "probes": [probe(false, "2026-01-01T00:00:09+00:00")]},
                          "during": []},
        "run": [{"activity": {"type": "action", "name": "kill-pod",
                              "provider": {"type": "python", "module": "m", "func": "f"},
                              "pauses": {"after": 5}},
                 "output": null, "start": "2026-01-01T00:00:01+00:00", "status": "failed",
                 "exception": ["Traceback\n", "boom\n"], "end": "2026-01-01T00:00:02+00:00", "duration": 1.0}],
        "rollbacks": [{"activity": {"type": "action", "name": "restore"}, "output": null,
                       "start": "2026-01-01T00:00:10+00:00", "status": "succeeded",
                       "end": "2026-01-01T00:00:11+00:00", "duration": 1.0}],
        "end": "2026-01-01T00:00:11+00:00", "duration": 11.0,
        "squall": {"version": "0.1.0", "run_id": "r-1", "outcome": "deviated", "ledger": "j.ledger.jsonl",
                   "signals": [], "pending_undo": ["restore node-1 rules"]}
    })
}

#[test]
fn reads_a_full_journal() {
    let run = parse_value(&journal()).unwrap();
    assert_eq!(run.title, "Does go-demo-8 survive?");
    assert_eq!(run.outcome, Outcome::Deviated);
    assert_eq!(run.tags, vec!["k8s"]);
    assert_eq!(run.writer, "squall 0.1.0");
    assert_eq!(run.method[0].error.as_deref(), Some("Traceback\nboom"));
    assert_eq!(run.method[0].start, Some(1.0));
    assert_eq!(run.method[0].pause_after, Some(5.0));
    assert_eq!(run.method[0].provider, "python m.f");
    // Tolerances are shown as substituted from the configuration.
    assert_eq!(
        run.before.as_ref().unwrap().probes[0].tolerance,
        Some(json!(200))
    );
    assert_eq!(
        run.not_reached,
        vec![("action".to_owned(), "never-ran".to_owned())]
    );
    assert_eq!(run.pending_undo, vec!["restore node-1 rules"]);
}

#[test]
fn var_overrides_win_over_the_experiment() {
    let mut over = Map::new();
    over.insert("app".into(), json!("shop"));
    let text = serde_json::to_vec(&journal()).unwrap();
    let run = parse("j.json", &text, &over, &FixedEnv::default()).unwrap();
    assert_eq!(run.title, "Does shop survive?");
}

#[test]
fn score_prints_its_inputs() {
    let run = parse_value(&journal()).unwrap();
    // steady state 1 of 2 (weight 50), recovery 1 of 2 (weight 20):
    // 100 × (25 + 10) / 70 = 50.
    assert_eq!(run.score.value, Some(50));
    let names: Vec<_> = run.score.parts.iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["steady state", "recovery"]);
    assert_eq!(
        run.score.parts[0].detail,
        "1 of 2 probe checks within tolerance"
    );
}

#[test]
fn outcome_falls_back_to_status_and_deviated() {
    let mut j = journal();
    j.as_object_mut().unwrap().remove("squall");
    assert_eq!(parse_value(&j).unwrap().outcome, Outcome::Deviated);
    j["deviated"] = json!(false);
    j["status"] = json!("interrupted");
    let run = parse_value(&j).unwrap();
    assert_eq!(run.outcome, Outcome::Interrupted);
    assert_eq!(run.writer, "Chaos Toolkit (chaoslib 1.44.0)");
    assert!(run.pending_undo.is_empty());
}

#[test]
fn optional_fields_may_be_missing_or_odd() {
    let j = json!({"experiment": {}, "run": [{"activity": 3}, 7, {}], "start": "not a time",
                   "steady_states": "weird", "rollbacks": {"x": 1}, "duration": "long"});
    let run = parse_value(&j).unwrap();
    assert_eq!(run.title, "Untitled experiment");
    assert_eq!(run.outcome, Outcome::Unknown);
    assert_eq!(run.method.len(), 2);
    assert_eq!(run.method[0].name, "(unnamed)");
    assert!(run.start.is_none() && run.duration.is_none() && run.before.is_none());
    assert_eq!(run.score.value, None);
}

#[test]
fn bad_input_is_named() {
    let err = |text: &[u8]| {
        parse("bad.json", text, &Map::new(), &FixedEnv::default())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(err(b"  \n"), "bad.json: the file is empty");
    assert!(err(b"{\"experiment\": {").starts_with("bad.json: not valid JSON at line 1"));
    assert!(err(b"[1]").contains("not a journal"));
    assert!(err(b"{\"title\": \"x\", \"method\": []}").contains("neither `experiment` nor `run`"));
    assert!(err(b"{\"experiment\": {}, \"start\": \"x\"}").contains("missing `run`"));
    assert!(err(b"{\"experiment\": {}, \"run\": []}").contains("missing `start`"));
    assert!(err(b"{\"experiment\": 1, \"run\": []}").contains("`experiment` must be an object"));
}

#[test]
fn prometheus_range_queries_become_charts() {
    let mut j = journal();
    j["run"].as_array_mut().unwrap().push(json!({
        "activity": {"type": "probe", "name": "error-rate",
                     "provider": {"type": "python", "module": "chaosprometheus.probes", "func": "query_interval"}},
        "output": {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"job": "api"}, "values": [[1.0, "0.1"], [2.0, "0.7"], [3.0, "0.2"]]}]}},
        "start": "2026-01-01T00:00:03+00:00", "status": "succeeded",
        "end": "2026-01-01T00:00:04+00:00", "duration": 1.0
    }));
    let run = parse_value(&j).unwrap();
    assert_eq!(run.series.len(), 1);
    assert_eq!(run.series[0].name, "error-rate");
    let html = crate::html::render(std::slice::from_ref(&run), "t", "now");
    assert!(html.contains("<h3>Metrics: error-rate</h3>"));
    assert!(html.contains("<title id=\"ts-0-0-t\">Metrics: error-rate</title>"));
    assert!(
        html.contains("<polyline points=\"130.0,150.0 455.0,20.0 780.0,128.3\""),
        "{html}"
    );
    let md = crate::markdown::render(&[run], "t", "now");
    assert!(md.contains("| job=api | 3 | 0.1 | 0.7 | 0.2 |"), "{md}");
}
