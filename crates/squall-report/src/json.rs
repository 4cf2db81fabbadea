//! The machine-readable summary: per run the outcome, times, score with its
//! inputs, hypothesis results, failed activities, rollbacks, pending undo
//! records and what the monitors measured — not the raw outputs (the
//! journal has those).

use serde_json::{Value, json};

use crate::html::{all_items, recover_command};
use crate::model::{Check, Item, Run};
use crate::score::FORMULA;

/// The whole summary, pretty-printed.
pub fn render(runs: &[Run], title: &str, generated: &str) -> String {
    let doc = json!({
        "title": title,
        "generated": generated,
        "score_formula": FORMULA,
        "runs": runs.iter().map(run).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

fn run(r: &Run) -> Value {
    json!({
        "journal": r.source,
        "title": r.title,
        "outcome": r.outcome.word(),
        "run_id": r.run_id,
        "written_by": r.writer,
        "start": r.start_text,
        "end": r.end_text,
        "duration": r.duration,
        "tags": r.tags,
        "score": {
            "value": r.score.value,
            "parts": r.score.parts.iter().map(|p| json!({
                "name": p.name, "weight": p.weight, "ratio": p.ratio, "detail": p.detail,
            })).collect::<Vec<_>>(),
        },
        "hypothesis": {
            "before": r.before.as_ref().map(check),
            "during": r.during.iter().map(check).collect::<Vec<_>>(),
            "after": r.after.as_ref().map(check),
        },
        "activities": r.method.iter().map(item).collect::<Vec<_>>(),
        "not_reached": r.not_reached.iter().map(|(_, n)| n).collect::<Vec<_>>(),
        "rollbacks": r.rollbacks.iter().map(item).collect::<Vec<_>>(),
        "failed": all_items(r).filter(|i| i.failed()).map(|i| &i.name).collect::<Vec<_>>(),
        "pending_undo": r.pending_undo,
        "recover_command": (!r.pending_undo.is_empty()).then(|| recover_command(r)),
        "monitors": r.monitors.iter().map(|m| json!({
            "name": m.name,
            "availability": m.availability,
            "requests": m.requests,
            "failures": m.failures,
            "outages": m.outages.len(),
            "longest_outage_ms": m.longest_ms,
            "time_to_recovery_ms": m.recovery_ms,
        })).collect::<Vec<_>>(),
    })
}

fn check(c: &Check) -> Value {
    json!({"met": c.met, "probes": c.probes.iter().map(item).collect::<Vec<_>>()})
}

fn item(i: &Item) -> Value {
    json!({
        "name": i.name,
        "type": i.kind,
        "result": i.result(),
        "duration": i.duration,
        "tolerance": i.tolerance,
        "error": i.error,
    })
}
