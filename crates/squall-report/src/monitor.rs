//! The availability monitor's measurements (`squall.http.probes.availability`
//! output, see squall-engine's `providers/availability.rs`): recognised by
//! the shape of an activity's output, so a renamed or referenced activity
//! is still drawn.

use serde_json::Value;

use crate::model::Item;
use crate::time::{Instant, parse_time};

/// One outage, in seconds from the monitor's start.
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    pub start: f64,
    pub duration: f64,
    pub ongoing: bool,
}

/// What one monitor measured.
#[derive(Clone, Debug)]
pub struct Monitor {
    pub name: String,
    /// Percent of samples that succeeded.
    pub availability: f64,
    pub requests: u64,
    pub failures: u64,
    pub longest_ms: u64,
    pub recovery_ms: Option<u64>,
    /// Seconds from the run's start to the monitor's first sample.
    pub offset: Option<f64>,
    /// Length of the window measured, in seconds.
    pub window: f64,
    /// Runs of samples: (start s, end s, ok).
    pub spans: Vec<(f64, f64, bool)>,
    pub outages: Vec<Outage>,
}

impl Monitor {
    /// The monitor in an activity's output, if it has one.
    pub fn from_item(item: &Item, run_start: Option<Instant>) -> Option<Self> {
        let o = item.output.as_object()?;
        let availability = o.get("availability")?.as_f64()?;
        let interval = o.get("interval_ms")?.as_f64()? / 1000.0;
        let started = o
            .get("started")
            .and_then(Value::as_str)
            .and_then(parse_time);
        let spans = spans(o.get("timeline")?.as_array()?, interval);
        let outages = o
            .get("outages")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| outage(x, started)).collect())
            .unwrap_or_default();
        let window = match (
            started,
            o.get("ended").and_then(Value::as_str).and_then(parse_time),
        ) {
            (Some(s), Some(e)) => e.seconds_since(s),
            _ => spans.last().map_or(0.0, |s| s.1),
        };
        let u = |k: &str| o.get(k).and_then(Value::as_u64);
        Some(Self {
            name: item.name.clone(),
            availability,
            requests: u("requests").unwrap_or(0),
            failures: u("failures").unwrap_or(0),
            longest_ms: u("longest_outage_ms").unwrap_or(0),
            recovery_ms: u("time_to_recovery_ms"),
            offset: match (started, run_start) {
                (Some(s), Some(r)) => Some(s.seconds_since(r)),
                _ => None,
            },
            window,
            spans,
            outages,
        })
    }
}

/// `[offset_ms, count, "ok"|"fail"]` runs into (start, end, ok) seconds.
fn spans(timeline: &[Value], interval: f64) -> Vec<(f64, f64, bool)> {
    timeline
        .iter()
        .filter_map(|t| {
            let at = t.get(0)?.as_f64()? / 1000.0;
            let n = t.get(1)?.as_f64()?;
            let ok = t.get(2)?.as_str()? == "ok";
            Some((at, at + n * interval, ok))
        })
        .collect()
}

fn outage(v: &Value, started: Option<Instant>) -> Option<Outage> {
    let start = match (
        v.get("start").and_then(Value::as_str).and_then(parse_time),
        started,
    ) {
        (Some(s), Some(m)) => s.seconds_since(m),
        _ => 0.0,
    };
    Some(Outage {
        start,
        duration: v.get("duration_ms")?.as_f64()? / 1000.0,
        ongoing: v.get("ongoing").and_then(Value::as_bool).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(output: Value) -> Item {
        Item {
            name: "watch".into(),
            kind: "probe".into(),
            provider: String::new(),
            background: true,
            status: Some("succeeded".into()),
            error: None,
            start: Some(0.0),
            end: Some(3.0),
            duration: Some(3.0),
            tolerance: None,
            tolerance_met: None,
            pause_before: None,
            pause_after: None,
            output,
        }
    }

    #[test]
    fn reads_the_availability_output() {
        let out = json!({
            "requests": 30, "failures": 10, "availability": 66.7,
            "outages": [{"start": "2026-01-01T00:00:01+00:00", "end": "2026-01-01T00:00:02+00:00",
                         "duration_ms": 1000, "ongoing": false}],
            "longest_outage_ms": 1000, "time_to_recovery_ms": 500, "interval_ms": 100,
            "started": "2026-01-01T00:00:00+00:00", "ended": "2026-01-01T00:00:03+00:00",
            "timeline": [[0, 10, "ok"], [1000, 10, "fail"], [2000, 10, "ok"]],
        });
        let start = parse_time("2025-12-31T23:59:59+00:00");
        let m = Monitor::from_item(&item(out), start).unwrap();
        assert_eq!(
            m.spans,
            vec![(0.0, 1.0, true), (1.0, 2.0, false), (2.0, 3.0, true)]
        );
        assert_eq!(
            m.outages,
            vec![Outage {
                start: 1.0,
                duration: 1.0,
                ongoing: false
            }]
        );
        assert_eq!((m.requests, m.failures, m.longest_ms), (30, 10, 1000));
        assert_eq!(m.recovery_ms, Some(500));
        assert_eq!(m.offset, Some(1.0));
        assert!((m.window - 3.0).abs() < 1e-9);
    }

    #[test]
    fn other_outputs_are_not_monitors() {
        assert!(Monitor::from_item(&item(json!({"status": 200})), None).is_none());
        assert!(Monitor::from_item(&item(Value::Null), None).is_none());
    }
}
