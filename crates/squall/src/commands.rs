//! One module per subcommand; each returns the process exit code.

pub mod agent;
pub mod discover;
pub mod recover;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod validate;
