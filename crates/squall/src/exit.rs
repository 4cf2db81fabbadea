//! Exit codes, in one place. `main` is the only code that exits.

/// The experiment completed and did not deviate (or a command succeeded).
pub const OK: u8 = 0;
/// The run finished otherwise (deviated, failed, aborted, interrupted), or
/// squall itself failed.
pub const FAILED: u8 = 1;
/// Invalid input: experiment, variables, settings or command line.
pub const INVALID: u8 = 2;
