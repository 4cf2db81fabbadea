//! The validated experiment: what the engine runs. Built only by
//! [`crate::validate`], so every value here has already been checked.
//!
//! Each activity keeps its original JSON (`raw`) because the journal records
//! the activity exactly as written, unknown keys included.

use serde_json::{Map, Value};

use crate::catalog::Kind;

/// A validated experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The whole document as written (unknown keys and extensions kept).
    pub raw: Value,
    pub title: String,
    /// Configuration declarations (inline values or `{type: env, ...}`).
    pub configuration: Map<String, Value>,
    /// Secret scopes, each a mapping of declarations.
    pub secrets: Map<String, Value>,
    pub hypothesis: Option<Hypothesis>,
    pub method: Vec<Activity>,
    pub rollbacks: Vec<Activity>,
    pub runtime: Runtime,
    pub limits: Limits,
}

/// The steady-state hypothesis.
#[derive(Clone, Debug)]
pub struct Hypothesis {
    pub title: String,
    pub probes: Vec<Activity>,
}

/// Strategies an experiment may set under `runtime`.
#[derive(Clone, Debug, Default)]
pub struct Runtime {
    pub rollback_strategy: Option<String>,
    pub hypothesis_strategy: Option<String>,
}

/// Blast-radius limits from the experiment's `squall.limits` block: how many
/// targets one action may touch. Providers that pick targets enforce them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub max_targets: Option<u64>,
    pub max_percent: Option<f64>,
}

/// One action or probe, with any `ref` already resolved.
#[derive(Clone, Debug)]
pub struct Activity {
    pub kind: Kind,
    pub name: String,
    pub provider: Provider,
    pub pauses: Pauses,
    pub background: bool,
    /// The tolerance as written (hypothesis probes only).
    pub tolerance: Option<Value>,
    /// Whether the activity declared a `tolerance` key at all; upstream uses
    /// it to silence the "non-zero exit code" and "status above 400" warnings.
    pub has_tolerance: bool,
    /// The activity as written, after `ref` resolution; shared with every
    /// journal record of it rather than copied.
    pub raw: std::sync::Arc<Value>,
    /// The name of the `ref` that pointed here, if any.
    pub via_ref: Option<String>,
}

/// The longest pause or timeout accepted: a year, far beyond any sensible
/// experiment and far below what a timer can represent.
pub const MAX_SECONDS: f64 = 31_536_000.0;

/// The one rule for a pause, however its value arrived (written in the
/// file, or through `${...}` from `configuration`, `--var` or a var
/// file): a JSON number of seconds from 0 to [`MAX_SECONDS`]. Validation
/// and the runner both use it, so a value is refused with the same words
/// wherever it comes from.
pub fn pause_seconds(which: &str, v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(f) if f.is_finite() && (0.0..=MAX_SECONDS).contains(&f) => Ok(f),
        _ => Err(format!(
            "activity {which} pause must be a number of seconds (0 to {MAX_SECONDS}), not {}",
            crate::subst::py_str(v)
        )),
    }
}

/// Pauses around an activity: numbers of seconds or `${...}` strings that
/// substitute to numbers.
#[derive(Clone, Debug, Default)]
pub struct Pauses {
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// How an activity is carried out.
#[derive(Clone, Debug)]
pub enum Provider {
    /// Run a program directly (never through a shell).
    Process {
        path: String,
        /// A list of arguments, a string split like a shell would (without
        /// running one), or the deprecated mapping form.
        arguments: Value,
        timeout: Option<f64>,
        env: Map<String, Value>,
    },
    /// Make one HTTP request.
    Http {
        url: String,
        method: String,
        headers: Map<String, Value>,
        arguments: Option<Value>,
        /// A number, `[connect, read]`, or a `${...}` string.
        timeout: Option<Value>,
        verify_tls: bool,
    },
    /// A native squall function, addressed as `module` + `func` (written as
    /// `type: python` in Chaos Toolkit files).
    Native {
        module: String,
        func: String,
        arguments: Map<String, Value>,
        secrets: Vec<String>,
    },
}
