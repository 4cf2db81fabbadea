//! The report's own, lenient view of a journal. Journals come from squall
//! and from Chaos Toolkit's `chaos run` (any version), so this reads a
//! `serde_json::Value` field by field: only the few fields without which a
//! file is not a journal at all are required, and anything else that is
//! missing or of an unexpected type just leaves its part of the report out.

use serde_json::{Map, Value};
use squall_core::subst::substitute;

use crate::ReportError;
use crate::monitor::Monitor;
use crate::score::Score;
use crate::series::Series;
use crate::time::{Instant, parse_time};

/// How a run ended, in words a manager reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Deviated,
    Failed,
    Aborted,
    Interrupted,
    Unknown,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Deviated => "deviated",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::Interrupted => "interrupted",
            Self::Unknown => "unknown",
        }
    }

    /// One sentence under the outcome, so the word is never read alone.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Completed => "The system stayed within its steady state.",
            Self::Deviated => "The system did not return to its steady state after the method.",
            Self::Failed => "The run failed: the steady state was not met or a check failed.",
            Self::Aborted => "squall stopped the run because it could not carry on safely.",
            Self::Interrupted => "The run was interrupted by a signal.",
            Self::Unknown => "The journal does not say how the run ended.",
        }
    }

    /// A symbol shown beside the colour, so colour is never the only signal.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Completed => "✔",
            Self::Deviated => "▲",
            Self::Failed | Self::Aborted => "✖",
            Self::Interrupted => "■",
            Self::Unknown => "?",
        }
    }

    fn of(squall_outcome: Option<&str>, status: Option<&str>, deviated: bool) -> Self {
        let word = squall_outcome.or(if deviated { Some("deviated") } else { status });
        match word {
            Some("completed") => Self::Completed,
            Some("deviated") => Self::Deviated,
            Some("failed") => Self::Failed,
            Some("aborted") => Self::Aborted,
            Some("interrupted") => Self::Interrupted,
            _ => Self::Unknown,
        }
    }
}

/// One activity as it ran (a probe of a hypothesis check, a method step or
/// a rollback).
#[derive(Clone, Debug)]
pub struct Item {
    pub name: String,
    /// `action` or `probe`.
    pub kind: String,
    /// What it called, e.g. `python squall.testing.actions.write_file`.
    pub provider: String,
    pub background: bool,
    /// `succeeded`, `failed`, or `None` when the run stopped during it.
    pub status: Option<String>,
    pub error: Option<String>,
    /// Seconds from the run's start, when the journal's times parse.
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub duration: Option<f64>,
    /// The tolerance with the configuration substituted.
    pub tolerance: Option<Value>,
    pub tolerance_met: Option<bool>,
    pub pause_before: Option<f64>,
    pub pause_after: Option<f64>,
    pub output: Value,
}

impl Item {
    /// Did it go wrong: a provider error, or a probe out of tolerance.
    pub fn failed(&self) -> bool {
        self.status.as_deref() == Some("failed") || self.tolerance_met == Some(false)
    }

    /// A word for its result.
    pub fn result(&self) -> &'static str {
        match (self.status.as_deref(), self.tolerance_met) {
            (Some("failed"), _) => "error",
            (_, Some(false)) => "not met",
            (_, Some(true)) => "met",
            (Some("succeeded"), None) => "succeeded",
            (None, _) => "interrupted",
            _ => "unknown",
        }
    }
}

/// One pass of the steady-state hypothesis.
#[derive(Clone, Debug)]
pub struct Check {
    pub met: Option<bool>,
    pub probes: Vec<Item>,
}

/// One journal, ready to render.
#[derive(Clone, Debug)]
pub struct Run {
    /// The file it came from.
    pub source: String,
    pub title: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub outcome: Outcome,
    pub start: Option<Instant>,
    pub start_text: String,
    pub end_text: Option<String>,
    pub duration: Option<f64>,
    pub node: Option<String>,
    pub platform: Option<String>,
    pub writer: String,
    pub run_id: Option<String>,
    pub signals: Vec<String>,
    pub pending_undo: Vec<String>,
    pub ledger: Option<String>,
    pub hypothesis_title: Option<String>,
    pub before: Option<Check>,
    pub during: Vec<Check>,
    pub after: Option<Check>,
    pub method: Vec<Item>,
    pub rollbacks: Vec<Item>,
    /// Method activities the run never reached: (kind, name).
    pub not_reached: Vec<(String, String)>,
    pub monitors: Vec<Monitor>,
    /// Time series (Prometheus range queries) from any activity.
    pub series: Vec<Series>,
    pub score: Score,
}

impl Run {
    /// Every probe of every hypothesis pass, with its phase.
    pub fn checks(&self) -> Vec<(&'static str, &Check)> {
        let mut out = Vec::new();
        if let Some(c) = &self.before {
            out.push(("before", c));
        }
        for c in &self.during {
            out.push(("during", c));
        }
        if let Some(c) = &self.after {
            out.push(("after", c));
        }
        out
    }

    /// The longest outage any monitor saw, in milliseconds.
    pub fn longest_outage_ms(&self) -> Option<u64> {
        self.monitors.iter().map(|m| m.longest_ms).max()
    }
}

/// Parses one journal's text. `source` names the file in errors;
/// `overrides` are `--var`/`--var-file` configuration values.
pub fn parse(
    source: &str,
    text: &[u8],
    overrides: &Map<String, Value>,
    env: &dyn squall_core::config::Environment,
) -> Result<Run, ReportError> {
    let bad = |reason: String| ReportError::Invalid {
        path: source.to_owned(),
        reason,
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the file is empty".into()));
    }
    let value: Value = serde_json::from_slice(text).map_err(|e| {
        // serde_json's message ends with the position; say it once.
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        let what = full
            .strip_suffix(&format!(" at line {line} column {column}"))
            .unwrap_or(&full);
        bad(format!(
            "not valid JSON at line {line} column {column}: {what}"
        ))
    })?;
    let Value::Object(j) = value else {
        return Err(bad(
            "not a journal: the top level is not a JSON object".into()
        ));
    };
    if !j.contains_key("experiment") && !j.contains_key("run") {
        return Err(bad(
            "not a journal: it has neither `experiment` nor `run` (is it an experiment file?)"
                .into(),
        ));
    }
    let experiment = match j.get("experiment") {
        Some(Value::Object(e)) => e,
        Some(_) => return Err(bad("`experiment` must be an object".into())),
        None => return Err(bad("missing `experiment`".into())),
    };
    if !matches!(j.get("run"), Some(Value::Array(_))) {
        return Err(bad("missing `run` (the list of activities run)".into()));
    }
    let Some(start_text) = j.get("start").and_then(Value::as_str) else {
        return Err(bad("missing `start` (when the run began)".into()));
    };
    let config = configuration(experiment, overrides, env);
    Ok(build(source, &j, experiment, start_text, &config))
}

/// The experiment's configuration with the overrides, resolved as a run
/// would; on any problem the raw values are used (a report never fails over
/// a variable). Secrets are never resolved, so they never reach a report.
fn configuration(
    experiment: &Map<String, Value>,
    overrides: &Map<String, Value>,
    env: &dyn squall_core::config::Environment,
) -> Map<String, Value> {
    let decls = experiment
        .get("configuration")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    squall_core::config::resolve_configuration(&decls, overrides, env).unwrap_or_else(|_| {
        let mut m = decls;
        m.extend(overrides.clone());
        m
    })
}

fn build(
    source: &str,
    j: &Map<String, Value>,
    experiment: &Map<String, Value>,
    start_text: &str,
    config: &Map<String, Value>,
) -> Run {
    let start = parse_time(start_text);
    let ctx = Ctx { start, config };
    let squall = j.get("squall").and_then(Value::as_object);
    let sq = |k: &str| squall.and_then(|s| s.get(k));
    let states = j.get("steady_states");
    let method = records(j.get("run"), &ctx);
    let monitors = method
        .iter()
        .filter_map(|i| Monitor::from_item(i, start))
        .collect::<Vec<_>>();
    let mut run = Run {
        source: source.to_owned(),
        title: text(
            experiment
                .get("title")
                .map(|t| substitute(t, config))
                .as_ref(),
        )
        .unwrap_or_else(|| "Untitled experiment".into()),
        description: text(experiment.get("description")),
        tags: strings(experiment.get("tags")),
        outcome: Outcome::of(
            sq("outcome").and_then(Value::as_str),
            j.get("status").and_then(Value::as_str),
            j.get("deviated").and_then(Value::as_bool).unwrap_or(false),
        ),
        start,
        start_text: start_text.to_owned(),
        end_text: text(j.get("end")),
        duration: j.get("duration").and_then(Value::as_f64),
        node: text(j.get("node")),
        platform: text(j.get("platform")),
        writer: writer(j, squall),
        run_id: text(sq("run_id")),
        signals: strings(sq("signals")),
        pending_undo: strings(sq("pending_undo")),
        ledger: text(sq("ledger")),
        hypothesis_title: experiment
            .get("steady-state-hypothesis")
            .and_then(|h| text(h.get("title"))),
        before: states.and_then(|s| check(s.get("before"), &ctx)),
        during: match states.and_then(|s| s.get("during")) {
            Some(Value::Array(a)) => a.iter().filter_map(|c| check(Some(c), &ctx)).collect(),
            _ => Vec::new(),
        },
        after: states.and_then(|s| check(s.get("after"), &ctx)),
        not_reached: not_reached(experiment.get("method"), &method),
        rollbacks: records(j.get("rollbacks"), &ctx),
        method,
        monitors,
        series: Vec::new(),
        score: Score::default(),
    };
    run.series = crate::html::all_items(&run)
        .filter_map(Series::from_item)
        .collect();
    run.score = Score::of(&run);
    run
}

/// Who wrote the journal: squall or Chaos Toolkit, with the version.
fn writer(j: &Map<String, Value>, squall: Option<&Map<String, Value>>) -> String {
    match squall
        .and_then(|s| s.get("version"))
        .and_then(Value::as_str)
    {
        Some(v) => format!("squall {v}"),
        None => match j.get("chaoslib-version").and_then(Value::as_str) {
            Some(v) => format!("Chaos Toolkit (chaoslib {v})"),
            None => "unknown".into(),
        },
    }
}

struct Ctx<'a> {
    start: Option<Instant>,
    config: &'a Map<String, Value>,
}

/// A string field, or a number shown as text; `None` for anything else.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| text(Some(x))).collect(),
        _ => Vec::new(),
    }
}

fn check(v: Option<&Value>, ctx: &Ctx) -> Option<Check> {
    let v = v?.as_object()?;
    Some(Check {
        met: v.get("steady_state_met").and_then(Value::as_bool),
        probes: records(v.get("probes"), ctx),
    })
}

fn records(v: Option<&Value>, ctx: &Ctx) -> Vec<Item> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|r| item(r, ctx)).collect(),
        _ => Vec::new(),
    }
}

fn item(r: &Value, ctx: &Ctx) -> Option<Item> {
    let r = r.as_object()?;
    let empty = Map::new();
    let a = r
        .get("activity")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let offset = |k: &str| {
        let t = parse_time(r.get(k)?.as_str()?)?;
        Some(t.seconds_since(ctx.start?))
    };
    let pause = |k: &str| {
        let p = a.get("pauses")?.get(k)?;
        p.as_f64().or_else(|| substitute(p, ctx.config).as_f64())
    };
    Some(Item {
        name: text(a.get("name")).unwrap_or_else(|| "(unnamed)".into()),
        kind: text(a.get("type")).unwrap_or_else(|| "activity".into()),
        provider: provider(a.get("provider")),
        background: a.get("background").and_then(Value::as_bool) == Some(true),
        status: text(r.get("status")),
        error: exception(r.get("exception")),
        start: offset("start"),
        end: offset("end"),
        duration: r.get("duration").and_then(Value::as_f64),
        tolerance: a.get("tolerance").map(|t| substitute(t, ctx.config)),
        tolerance_met: r.get("tolerance_met").and_then(Value::as_bool),
        pause_before: pause("before"),
        pause_after: pause("after"),
        output: r.get("output").cloned().unwrap_or(Value::Null),
    })
}

/// The exception lines (a traceback upstream) joined, trimmed.
fn exception(v: Option<&Value>) -> Option<String> {
    let joined = match v? {
        Value::Array(lines) => lines
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .concat(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let trimmed = joined.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn provider(v: Option<&Value>) -> String {
    let Some(p) = v.and_then(Value::as_object) else {
        return String::new();
    };
    let get = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    match get("type") {
        "python" => format!("python {}.{}", get("module"), get("func")),
        "process" => format!("process {}", get("path")),
        "http" => format!("http {}", get("url")),
        other => other.to_owned(),
    }
}

/// Method entries with no record of their own: the run stopped first.
/// Matched by name, in order, so a repeated name counts once per run.
fn not_reached(method: Option<&Value>, ran: &[Item]) -> Vec<(String, String)> {
    let Some(Value::Array(steps)) = method else {
        return Vec::new();
    };
    let mut ran: Vec<&str> = ran.iter().map(|i| i.name.as_str()).collect();
    let mut out = Vec::new();
    for step in steps {
        let name = text(step.get("name")).unwrap_or_else(|| "(unnamed)".into());
        // `ref` entries point at an activity elsewhere; their record carries
        // the referenced name.
        let name = text(step.get("ref")).unwrap_or(name);
        match ran.iter().position(|n| *n == name) {
            Some(i) => {
                ran.remove(i);
            }
            None => out.push((
                text(step.get("type")).unwrap_or_else(|| "activity".into()),
                name,
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests;
