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
/// A time outside years -9999..=9999 is clamped to that range.
pub fn timestamp(unix_micros: i64) -> String {
    let t = jiff::Timestamp::from_microsecond(unix_micros).unwrap_or(if unix_micros < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    let fmt = if t.subsec_microsecond() == 0 {
        "%Y-%m-%dT%H:%M:%S+00:00"
    } else {
        "%Y-%m-%dT%H:%M:%S.%6f+00:00"
    };
    t.strftime(fmt).to_string()
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, as Kubernetes writes
/// times (clamped like [`timestamp`]).
pub fn rfc3339_secs(unix_secs: u64) -> String {
    let secs = i64::try_from(unix_secs).unwrap_or(i64::MAX);
    let t = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::MAX);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_secs(1_795_430_063), "2026-11-23T10:34:23Z");
        assert!(rfc3339_secs(u64::MAX).starts_with("9999-12-30T"));
    }

    #[test]
    fn timestamps_match_upstream_format() {
        // Out of range clamps instead of failing.
        assert!(timestamp(i64::MAX).starts_with("9999-12-30T"));
        assert!(timestamp(i64::MIN).starts_with("-9999-01-02T"));
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
