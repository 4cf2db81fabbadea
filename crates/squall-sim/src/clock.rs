//! The simulator's clock.
//!
//! Controllers measure every delay (readiness, graceful termination) in *sim
//! time*. Sim time runs `speed` times faster than tokio time, and tokio time can
//! itself be paused by tests, so a test can make a 30 s grace period take 30 ms
//! without changing any controller code. Wall-clock timestamps written into
//! objects are `wall origin + sim elapsed`, so they stay consistent with delays.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A scalable clock. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: tokio::time::Instant,
    wall_origin: SystemTime,
    speed: f64,
}

impl Clock {
    /// A clock starting now that runs `speed` times faster than tokio time.
    /// Non-positive or non-finite speeds fall back to 1.
    pub fn new(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Clock {
            origin: tokio::time::Instant::now(),
            wall_origin: SystemTime::now(),
            speed,
        }
    }

    /// Sim time elapsed since the clock started.
    pub fn now(&self) -> Duration {
        self.origin.elapsed().mul_f64(self.speed)
    }

    /// How much tokio time a sim-time duration takes.
    pub fn to_real(&self, sim: Duration) -> Duration {
        sim.div_f64(self.speed)
    }

    /// Sleep for a sim-time duration.
    pub async fn sleep(&self, sim: Duration) {
        tokio::time::sleep(self.to_real(sim)).await;
    }

    /// The wall-clock time at a sim instant.
    pub fn wall_at(&self, sim: Duration) -> SystemTime {
        self.wall_origin + sim
    }

    /// RFC 3339 timestamp (second precision, `Z`) of the current sim time.
    pub fn timestamp(&self) -> String {
        rfc3339(self.wall_at(self.now()))
    }

    /// RFC 3339 timestamp of a sim instant.
    pub fn timestamp_at(&self, sim: Duration) -> String {
        rfc3339(self.wall_at(sim))
    }

    /// RFC 3339 timestamp with microseconds, as used by `MicroTime` fields.
    pub fn micro_timestamp(&self) -> String {
        let t = self.wall_at(self.now());
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let base = rfc3339(t);
        format!("{}.{:06}Z", base.trim_end_matches('Z'), d.subsec_micros())
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (what metav1.Time serialises to).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // leap-year Feb 29
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[tokio::test(start_paused = true)]
    async fn speed_scales_elapsed_time() {
        let c = Clock::new(10.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(c.now().as_secs(), 10);
        assert_eq!(c.to_real(Duration::from_secs(30)), Duration::from_secs(3));
        assert!(c.micro_timestamp().ends_with('Z'));
    }
}
