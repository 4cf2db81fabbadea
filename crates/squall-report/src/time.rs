//! Journal timestamps. squall writes RFC 3339 with an offset; Chaos
//! Toolkit's older journals write a naive ISO time in UTC
//! (`datetime.utcnow().isoformat()`), so both are read.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// A point in time from a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(Timestamp);

impl Instant {
    /// Seconds from `earlier` to this instant (negative if before).
    pub fn seconds_since(self, earlier: Instant) -> f64 {
        let d = self.0.as_microsecond() - earlier.0.as_microsecond();
        d as f64 / 1e6
    }

    /// `2026-11-23 14:49:25 UTC`, the form the report shows.
    pub fn display(self) -> String {
        self.0.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

/// Parses a journal time; `None` if it is not one.
pub fn parse_time(s: &str) -> Option<Instant> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(Instant(t));
    }
    let civil: DateTime = s.parse().ok()?;
    civil
        .to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| Instant(z.timestamp()))
}

/// A duration in words: `850 ms`, `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "—".into();
    }
    if secs < 1.0 {
        return format!("{:.0} ms", secs * 1000.0);
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let total = secs.round() as u64;
    if total < 3600 {
        return format!("{} min {:02} s", total / 60, total % 60);
    }
    format!("{} h {:02} min", total / 3600, (total % 3600) / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_journal_time_forms() {
        let a = parse_time("2026-11-23T13:44:42.111829+00:00").unwrap();
        let b = parse_time("2026-11-23T13:44:43.111829").unwrap();
        assert!((b.seconds_since(a) - 1.0).abs() < 1e-9);
        assert_eq!(a.display(), "2026-11-23 13:44:42 UTC");
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human_duration(0.25), "250 ms");
        assert_eq!(human_duration(12.34), "12.3 s");
        assert_eq!(human_duration(245.0), "4 min 05 s");
        assert_eq!(human_duration(3720.0), "1 h 02 min");
        assert_eq!(human_duration(-1.0), "—");
    }
}
