//! The resilience score: one number per run, with its formula and every
//! input printed beside it, unlike the opaque scores of other tools.
//!
//! score = 100 × Σ(weight × ratio) / Σ(weight), over the parts the journal
//! measured (a part with nothing to measure is left out, not counted as
//! perfect):
//! - steady state, weight 50: hypothesis probe checks within tolerance ÷
//!   checks made (before, during and after);
//! - availability, weight 30: the monitors' mean availability;
//! - recovery, weight 20: rollbacks that succeeded ÷ (rollbacks + undo
//!   records left pending).

use crate::model::Run;

/// The formula, as printed in every report.
pub const FORMULA: &str = "score = 100 × Σ(weight × ratio) ÷ Σ(weight), over the parts measured: \
steady state (weight 50) = probe checks within tolerance ÷ checks; availability (weight 30) = \
monitors' mean availability; recovery (weight 20) = rollbacks succeeded ÷ (rollbacks + pending \
undos)";

/// One input of the score.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub name: &'static str,
    pub weight: u32,
    pub ratio: f64,
    /// The counts behind the ratio, in words.
    pub detail: String,
}

/// A run's score and how it was made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    /// 0–100; `None` when the journal measured nothing the score uses.
    pub value: Option<u32>,
    pub parts: Vec<Part>,
}

impl Score {
    pub fn of(run: &Run) -> Self {
        let mut parts = Vec::new();
        let probes: Vec<_> = run
            .checks()
            .into_iter()
            .flat_map(|(_, c)| c.probes.iter())
            .collect();
        if !probes.is_empty() {
            let met = probes
                .iter()
                .filter(|p| p.tolerance_met == Some(true) && !p.failed())
                .count();
            parts.push(Part {
                name: "steady state",
                weight: 50,
                ratio: met as f64 / probes.len() as f64,
                detail: format!("{met} of {} probe checks within tolerance", probes.len()),
            });
        }
        if !run.monitors.is_empty() {
            let mean = run.monitors.iter().map(|m| m.availability).sum::<f64>()
                / run.monitors.len() as f64;
            parts.push(Part {
                name: "availability",
                weight: 30,
                ratio: (mean / 100.0).clamp(0.0, 1.0),
                detail: format!("{mean:.2}% mean over {} monitor(s)", run.monitors.len()),
            });
        }
        let total = run.rollbacks.len() + run.pending_undo.len();
        if total > 0 {
            let ok = run
                .rollbacks
                .iter()
                .filter(|r| r.status.as_deref() == Some("succeeded"))
                .count();
            parts.push(Part {
                name: "recovery",
                weight: 20,
                ratio: ok as f64 / total as f64,
                detail: format!(
                    "{ok} of {} rollbacks succeeded, {} undo record(s) pending",
                    run.rollbacks.len(),
                    run.pending_undo.len()
                ),
            });
        }
        let weights: u32 = parts.iter().map(|p| p.weight).sum();
        let value = (weights > 0).then(|| {
            let sum: f64 = parts.iter().map(|p| f64::from(p.weight) * p.ratio).sum();
            (100.0 * sum / f64::from(weights)).round() as u32
        });
        Self { value, parts }
    }

    /// `87/100` or `n/a`.
    pub fn text(&self) -> String {
        self.value
            .map_or_else(|| "n/a".into(), |v| format!("{v}/100"))
    }
}
