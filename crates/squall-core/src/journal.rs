//! Journal types in the Chaos Toolkit layout (key order included), so
//! upstream report tooling reads squall journals, plus squall's own fields
//! under the `squall` key.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole journal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    #[serde(rename = "chaoslib-version")]
    pub chaoslib_version: String,
    pub platform: String,
    pub node: String,
    pub experiment: Value,
    pub start: String,
    pub status: Option<String>,
    pub deviated: bool,
    pub steady_states: SteadyStates,
    pub run: Vec<Record>,
    pub rollbacks: Vec<Record>,
    pub end: Option<String>,
    pub duration: Option<f64>,
    /// squall's own fields; upstream readers ignore unknown keys.
    pub squall: SquallInfo,
}

/// Steady-state checks before, during and after the method.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SteadyStates {
    pub before: Option<State>,
    pub after: Option<State>,
    pub during: Vec<State>,
}

/// One pass of the hypothesis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub steady_state_met: bool,
    pub probes: Vec<Record>,
}

/// One activity run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The activity as run (shared with the experiment's copy).
    pub activity: std::sync::Arc<Value>,
    pub output: Value,
    pub start: String,
    /// `succeeded` or `failed`; absent when the run was interrupted while
    /// the activity was running.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exception: Option<Vec<String>>,
    pub end: String,
    pub duration: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tolerance_met: Option<bool>,
}

/// squall-specific journal fields.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SquallInfo {
    pub version: String,
    pub run_id: String,
    /// The run status including `deviated`, as shown on the console.
    pub outcome: Option<String>,
    pub ledger: Option<String>,
    pub rollback_strategy: String,
    pub hypothesis_strategy: String,
    /// Signals received, in order (`SIGINT`, `SIGTERM`).
    pub signals: Vec<String>,
    /// Undo records still pending in the ledger when the run ended.
    pub pending_undo: Vec<String>,
}

/// Formats a time as upstream does: UTC with an offset and microseconds,
/// the microseconds dropped when zero (`2026-11-23T13:44:42.111829+00:00`).
pub fn timestamp(unix_micros: i64) -> String {
    let secs = unix_micros.div_euclid(1_000_000);
    let micros = unix_micros.rem_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let frac = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{frac}+00:00")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_upstream_format() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            timestamp(1_795_441_482_111_829),
            "2026-11-23T13:44:42.111829+00:00"
        );
        assert_eq!(
            timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001+00:00"
        );
    }

    #[test]
    fn record_omits_absent_status() {
        let r = Record {
            activity: std::sync::Arc::new(serde_json::json!({"name": "a"})),
            output: Value::Null,
            start: "s".into(),
            status: None,
            exception: None,
            end: "e".into(),
            duration: 0.5,
            tolerance_met: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"activity":{"name":"a"},"output":null,"start":"s","end":"e","duration":0.5}"#
        );
    }
}
