//! One pass of the steady-state hypothesis: run each probe, judge its output
//! against its tolerance, stop at the first probe that fails or is out of
//! tolerance.

use std::sync::Arc;

use serde_json::Value;
use squall_core::config::Environment;
use squall_core::journal::State;
use squall_core::model::{Activity, Hypothesis};
use squall_core::status::Check;
use squall_core::subst::substitute;
use squall_core::tolerance::{Tolerance, truthy};
use squall_core::validate::tolerance_probe;
use tokio_util::sync::CancellationToken;

use super::activity::{Ended, call_provider, execute};
use super::{Dry, Shared};

/// The result of one hypothesis pass.
pub(crate) struct Pass {
    pub state: State,
    pub check: Check,
    /// The probe that was not met, for the CRITICAL line.
    pub culprit: Option<String>,
    pub interrupted: bool,
}

/// Runs the hypothesis once.
pub(crate) async fn run_pass(sh: &Arc<Shared>, h: &Hypothesis, cancel: &CancellationToken) -> Pass {
    sh.log
        .info(&format!("Steady state hypothesis: {}", h.title));
    let mut pass = Pass {
        state: State {
            steady_state_met: false,
            probes: Vec::new(),
        },
        check: Check::Met,
        culprit: None,
        interrupted: false,
    };
    for probe in &h.probes {
        let mut ex = execute(sh, probe, cancel).await;
        if ex.ended == Ended::Interrupted {
            pass.state.probes.push(ex.record);
            pass.interrupted = true;
            pass.check = Check::NotRun;
            return pass;
        }
        let met = if ex.ended == Ended::Succeeded {
            judge(sh, probe, &ex.record.output).await
        } else {
            sh.log
                .warning("Probe terminated unexpectedly, so its tolerance could not be validated");
            None
        };
        ex.record.tolerance_met = Some(met == Some(true));
        pass.state.probes.push(ex.record);
        if met != Some(true) {
            pass.check = Check::NotMet {
                probe_failed: met.is_none(),
            };
            pass.culprit = Some(probe.name.clone());
            return pass;
        }
    }
    pass.state.steady_state_met = true;
    sh.log.info("Steady state hypothesis is met!");
    pass
}

/// Whether `output` is within the probe's tolerance. `None` means the
/// tolerance could not be applied at all (counted as a failed probe).
async fn judge(sh: &Arc<Shared>, probe: &Activity, output: &Value) -> Option<bool> {
    if matches!(sh.dry, Some(Dry::Probes | Dry::Activities)) {
        return Some(true);
    }
    let raw = probe.tolerance.as_ref()?;
    // String tolerances are substituted first and may change type
    // (`"${expected}"` with `expected: 3` becomes an integer tolerance).
    let is_probe = raw.get("type").and_then(Value::as_str) == Some("probe");
    let raw = if is_probe {
        raw.clone()
    } else {
        substitute(raw, &sh.lookup())
    };
    let tolerance = match Tolerance::parse(&raw) {
        Ok(t) => t,
        Err(msg) => {
            sh.log
                .error(&format!("  => tolerance cannot be used: {msg}"));
            return None;
        }
    };
    let result = match tolerance {
        Tolerance::Probe(def) => probe_tolerance(sh, &def, output).await,
        other => other.check(output),
    };
    match result {
        Ok(met) => Some(met),
        Err(msg) => {
            sh.log
                .error(&format!("  => tolerance could not be evaluated: {msg}"));
            None
        }
    }
}

/// Runs a probe tolerance with the judged output as its `value`.
async fn probe_tolerance(sh: &Arc<Shared>, def: &Value, output: &Value) -> Result<bool, String> {
    let activity = tolerance_probe(def, sh.registry, &NoEnv)
        .ok_or("the tolerance probe is not a valid activity")?;
    let is_process = matches!(
        activity.provider,
        squall_core::model::Provider::Process { .. }
    );
    let is_http = matches!(activity.provider, squall_core::model::Provider::Http { .. });
    match call_provider(sh, &activity, Some(output.clone())).await {
        // A process tolerance passes when it exits 0, an HTTP one when it
        // answers below 400: a dict result is always truthy upstream, which
        // would make such tolerances meaningless.
        Ok(v) if is_process => Ok(v.get("status").and_then(Value::as_i64) == Some(0)),
        Ok(v) if is_http => Ok(v
            .get("status")
            .and_then(Value::as_i64)
            .is_some_and(|s| s < 400)),
        Ok(v) => Ok(truthy(&v)),
        Err(_) => Ok(false),
    }
}

/// The tolerance probe was validated with the experiment; re-parsing it
/// needs no environment.
struct NoEnv;

impl Environment for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
    fn executable_exists(&self, _: &str) -> bool {
        true
    }
}
