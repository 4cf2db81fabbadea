//! Exit codes, in one place: commands return these codes, a run's status
//! maps to one here ([`of_status`]), and `main` ends the process with it.
//! The only other way out is [`abandon`], the third signal's immediate exit.

use squall_core::status::RunStatus;

/// The experiment completed and did not deviate (or a command succeeded).
pub const OK: u8 = 0;
/// The run finished otherwise (deviated, failed, aborted, interrupted), or
/// squall itself failed.
pub const FAILED: u8 = 1;
/// Invalid input: experiment, variables, settings or command line.
pub const INVALID: u8 = 2;
/// Killed by a third signal, as a shell reports a process ended by SIGINT.
pub const ABANDONED: u8 = 130;

/// The exit code of a run that ended with `status`.
pub fn of_status(status: RunStatus) -> u8 {
    if status == RunStatus::Completed {
        OK
    } else {
        FAILED
    }
}

/// Ends the process at once, skipping what is left of the rollbacks; the
/// ledger keeps what `squall recover` needs.
pub fn abandon() -> ! {
    // No grace left: whatever process activities still run get SIGKILL.
    squall_engine::providers::group::terminate_all(false);
    std::process::exit(i32::from(ABANDONED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_completed_run_exits_zero() {
        assert_eq!(of_status(RunStatus::Completed), OK);
        for s in [
            RunStatus::Failed,
            RunStatus::Deviated,
            RunStatus::Aborted,
            RunStatus::Interrupted,
        ] {
            assert_eq!(of_status(s), FAILED, "{s:?}");
        }
    }
}
