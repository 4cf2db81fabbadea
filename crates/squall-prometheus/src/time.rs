//! The moments and windows the Prometheus probes accept, parsed the way
//! upstream's users write them: RFC 3339, Unix epoch seconds, `now`, and
//! relative forms such as `"5 minutes ago"` or `"in 2 hours"` (upstream
//! uses `dateparser`; these are the forms its docs and users write), plus
//! Prometheus durations (`5m`, `1d`) for `compute_mean`'s window.

use jiff::{SignedDuration, Timestamp};

/// Why a moment or a window could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failed to parse '{0}'")]
pub struct ParseError(pub String);

/// Reads `text` as a moment relative to `now`.
pub fn parse_moment(text: &str, now: Timestamp) -> Result<Timestamp, ParseError> {
    let err = || ParseError(text.to_owned());
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if lower == "now" {
        return Ok(now);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(secs) = t.parse::<f64>() {
        return epoch(secs).ok_or_else(err);
    }
    if let Some(rest) = lower.strip_suffix(" ago") {
        let d = relative(rest).ok_or_else(err)?;
        return now.checked_sub(d).map_err(|_| err());
    }
    if let Some(rest) = lower.strip_prefix("in ") {
        let d = relative(rest).ok_or_else(err)?;
        return now.checked_add(d).map_err(|_| err());
    }
    Err(err())
}

fn epoch(secs: f64) -> Option<Timestamp> {
    if !secs.is_finite() {
        return None;
    }
    let d = SignedDuration::try_from_secs_f64(secs).ok()?;
    Timestamp::from_duration(d).ok()
}

/// `"5 minutes"`, `"1 hour"`, `"an hour"`, `"30s"`: a span of time.
fn relative(text: &str) -> Option<SignedDuration> {
    let text = text.trim();
    let (count, unit) = match text.split_once(char::is_whitespace) {
        Some((n, u)) => {
            let n = match n {
                "a" | "an" => 1.0,
                n => n.parse::<f64>().ok()?,
            };
            (n, u.trim())
        }
        None => return window(text),
    };
    let unit = unit_seconds(unit)?;
    SignedDuration::try_from_secs_f64(count * unit).ok()
}

fn unit_seconds(unit: &str) -> Option<f64> {
    // `s` is itself a unit; otherwise a plural `s` is dropped.
    let unit = match unit.strip_suffix('s') {
        Some(one) if unit.len() > 1 => one,
        _ => unit,
    };
    Some(match unit {
        "second" | "sec" | "s" => 1.0,
        "minute" | "min" | "m" => 60.0,
        "hour" | "hr" | "h" => 3600.0,
        "day" | "d" => 86_400.0,
        "week" | "w" => 604_800.0,
        _ => return None,
    })
}

/// A Prometheus duration (`30s`, `5m`, `1h`, `1d`, `1w`, `1h30m`).
pub fn window(text: &str) -> Option<SignedDuration> {
    let mut total = 0.0;
    let mut digits = String::new();
    let mut seen = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            digits.push(c);
            continue;
        }
        let n: f64 = digits.parse().ok()?;
        digits.clear();
        total += n * unit_seconds(&c.to_string())?;
        seen = true;
    }
    if !digits.is_empty() || !seen || total <= 0.0 {
        return None;
    }
    SignedDuration::try_from_secs_f64(total).ok()
}

/// The Unix time Prometheus takes for `time`, `start` and `end`.
pub fn prom_time(ts: Timestamp) -> String {
    let secs = ts.as_millisecond() as f64 / 1000.0;
    format!("{secs:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-03T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn reads_every_form_users_write() {
        let at = |s| parse_moment(s, now()).unwrap().to_string();
        assert_eq!(at("now"), "2026-12-03T08:00:00Z");
        assert_eq!(at("NOW"), "2026-12-03T08:00:00Z");
        assert_eq!(at("2026-12-03T09:00:00+01:00"), "2026-12-03T08:00:00Z");
        assert_eq!(at("1764748800"), "2025-12-03T08:00:00Z");
        assert_eq!(at("5 minutes ago"), "2026-12-03T07:55:00Z");
        assert_eq!(at("1 minute ago"), "2026-12-03T07:59:00Z");
        assert_eq!(at("an hour ago"), "2026-12-03T07:00:00Z");
        assert_eq!(at("2 days ago"), "2026-12-01T08:00:00Z");
        assert_eq!(at("30s ago"), "2026-12-03T07:59:30Z");
        assert_eq!(at("in 10 seconds"), "2026-12-03T08:00:10Z");
    }

    #[test]
    fn refuses_what_it_cannot_read_with_upstreams_message() {
        for bad in ["yesterday-ish", "5 fortnights ago", "", "NaN"] {
            let e = parse_moment(bad, now()).unwrap_err();
            assert_eq!(e.to_string(), format!("failed to parse '{bad}'"));
        }
    }

    #[test]
    fn windows_are_prometheus_durations() {
        assert_eq!(window("1d"), Some(SignedDuration::from_hours(24)));
        assert_eq!(window("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(window("15s"), Some(SignedDuration::from_secs(15)));
        assert_eq!(window("5"), None);
        assert_eq!(window("0m"), None);
        assert_eq!(window("5x"), None);
    }

    #[test]
    fn times_are_sent_as_unix_seconds() {
        assert_eq!(prom_time(now()), "1796284800.000");
    }
}
