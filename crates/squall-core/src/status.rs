//! The one pure function that decides how a run ended.
//!
//! Everything the runner observed is summarised in [`Facts`]; [`verdict`]
//! turns it into the status shown to the user, the upstream-compatible
//! journal `status` string and the `deviated` flag. Only `main` turns a
//! verdict into an exit code.

/// How a steady-state check went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Check {
    /// Not run (strategy, no hypothesis, or the run stopped before it).
    #[default]
    NotRun,
    Met,
    /// Not met; `probe_failed` when a probe errored rather than being out of
    /// tolerance.
    NotMet {
        probe_failed: bool,
    },
}

/// What happened during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// A signal (or a second one) stopped the run.
    pub interrupted: bool,
    /// The engine could not carry on (an error that is not an activity
    /// failure, such as an unknown native function at run time).
    pub aborted: bool,
    /// The hypothesis before the method.
    pub gate: Check,
    /// The hypothesis after the method.
    pub after: Check,
    /// A continuous check failed and `--fail-fast` stopped the method.
    pub failed_fast: bool,
}

/// The run's overall status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Completed,
    Failed,
    Deviated,
    Aborted,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Deviated => "deviated",
            Self::Aborted => "aborted",
            Self::Interrupted => "interrupted",
        }
    }
}

/// The status plus its journal spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: RunStatus,
    /// `completed|failed|aborted|interrupted`, as upstream journals say it.
    pub journal_status: &'static str,
    pub deviated: bool,
}

/// Decides the outcome of a run from what happened.
pub fn verdict(f: &Facts) -> Verdict {
    let deviated = matches!(f.after, Check::NotMet { .. }) && !f.interrupted && !f.aborted;
    let status = if f.interrupted {
        RunStatus::Interrupted
    } else if f.aborted {
        RunStatus::Aborted
    } else if matches!(f.gate, Check::NotMet { .. }) {
        RunStatus::Failed
    } else if deviated {
        RunStatus::Deviated
    } else if f.failed_fast {
        RunStatus::Failed
    } else {
        RunStatus::Completed
    };
    let journal_status = match status {
        RunStatus::Deviated if f.after == (Check::NotMet { probe_failed: true }) => "failed",
        RunStatus::Deviated => "completed",
        other => other.as_str(),
    };
    Verdict {
        status,
        journal_status,
        deviated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(f: Facts) -> (RunStatus, &'static str, bool) {
        let r = verdict(&f);
        (r.status, r.journal_status, r.deviated)
    }

    #[test]
    fn all_met_is_completed() {
        let f = Facts {
            gate: Check::Met,
            after: Check::Met,
            ..Facts::default()
        };
        assert_eq!(v(f), (RunStatus::Completed, "completed", false));
        assert_eq!(
            v(Facts::default()),
            (RunStatus::Completed, "completed", false)
        );
    }

    #[test]
    fn gate_not_met_is_failed_either_way() {
        for probe_failed in [true, false] {
            let f = Facts {
                gate: Check::NotMet { probe_failed },
                ..Facts::default()
            };
            assert_eq!(v(f), (RunStatus::Failed, "failed", false));
        }
    }

    #[test]
    fn after_not_met_is_deviated() {
        let f = Facts {
            gate: Check::Met,
            after: Check::NotMet {
                probe_failed: false,
            },
            ..Facts::default()
        };
        assert_eq!(v(f), (RunStatus::Deviated, "completed", true));
        let f = Facts {
            gate: Check::Met,
            after: Check::NotMet { probe_failed: true },
            ..Facts::default()
        };
        assert_eq!(v(f), (RunStatus::Deviated, "failed", true));
    }

    #[test]
    fn interruption_and_abort_win() {
        let f = Facts {
            interrupted: true,
            aborted: true,
            gate: Check::Met,
            ..Facts::default()
        };
        assert_eq!(v(f), (RunStatus::Interrupted, "interrupted", false));
        let f = Facts {
            aborted: true,
            gate: Check::Met,
            ..Facts::default()
        };
        assert_eq!(v(f), (RunStatus::Aborted, "aborted", false));
    }

    #[test]
    fn fail_fast_fails_unless_the_after_check_deviates() {
        let f = Facts {
            failed_fast: true,
            after: Check::Met,
            ..Facts::default()
        };
        assert_eq!(v(f), (RunStatus::Failed, "failed", false));
        let f = Facts {
            failed_fast: true,
            after: Check::NotMet {
                probe_failed: false,
            },
            ..Facts::default()
        };
        assert_eq!(v(f), (RunStatus::Deviated, "completed", true));
    }
}
