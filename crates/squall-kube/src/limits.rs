//! The blast-radius check: an action that picks targets compares its pick
//! with the experiment's `squall.limits` (`max_targets`, `max_percent` of
//! the pool it picked from) and refuses *before* changing anything, saying
//! what it would have hit and that nothing was touched.

use squall_activity::ActivityError;
use squall_core::model::Limits;

/// A pick about to be acted on, described for the refusal message.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a> {
    /// The activity (`terminate_pods`).
    pub activity: &'a str,
    /// What was picked, plural (`pods`).
    pub noun: &'a str,
    /// What the percentage is taken of (`candidate pods`).
    pub pool: &'a str,
    /// What the refusal leaves unchanged (`nothing was terminated`).
    pub untouched: &'a str,
    pub picked: usize,
    pub out_of: usize,
}

/// Refuses a pick larger than `limits` allows.
pub fn check(limits: &Limits, t: &Targets<'_>) -> Result<(), ActivityError> {
    let n = t.picked as u64;
    if let Some(max) = limits.max_targets.filter(|max| n > *max) {
        return Err(ActivityError::Failed(format!(
            "blast radius exceeded: {} picked {n} {} but squall.limits.max_targets is {max}; {}",
            t.activity, t.noun, t.untouched
        )));
    }
    if t.out_of == 0 {
        return Ok(());
    }
    let percent = t.picked as f64 * 100.0 / t.out_of as f64;
    if let Some(max) = limits.max_percent.filter(|max| percent > *max) {
        return Err(ActivityError::Failed(format!(
            "blast radius exceeded: {} picked {n} of {} {} ({percent:.1}%) but squall.limits.max_percent is {max}; {}",
            t.activity, t.out_of, t.pool, t.untouched
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(picked: usize, out_of: usize) -> Targets<'static> {
        Targets {
            activity: "terminate_pods",
            noun: "pods",
            pool: "candidate pods",
            untouched: "nothing was terminated",
            picked,
            out_of,
        }
    }

    #[test]
    fn limits_refuse_too_many_targets() {
        let limits = Limits {
            max_targets: Some(2),
            max_percent: Some(50.0),
        };
        assert!(check(&limits, &pods(2, 4)).is_ok());
        let e = check(&limits, &pods(3, 10)).unwrap_err();
        assert_eq!(
            e.message(),
            "blast radius exceeded: terminate_pods picked 3 pods but squall.limits.max_targets is 2; nothing was terminated"
        );
        let e = check(&limits, &pods(2, 3)).unwrap_err();
        assert_eq!(
            e.message(),
            "blast radius exceeded: terminate_pods picked 2 of 3 candidate pods (66.7%) but squall.limits.max_percent is 50; nothing was terminated"
        );
        assert!(check(&limits, &pods(0, 0)).is_ok());
        assert!(check(&Limits::default(), &pods(100, 100)).is_ok());
    }
}
