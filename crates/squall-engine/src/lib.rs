//! squall's engine: runs validated experiments. It owns the runner (the
//! state machine), the activity registry, the `process` and `http`
//! providers, the undo ledger, recovery, discovery and the run log.
//!
//! Invariants: a mutating activity writes its undo to the ledger before it
//! changes anything; activity failures are data in the journal, only engine
//! failures are Rust errors; time comes from tokio so tests can pause it.

pub mod discover;
pub mod journal_io;
pub mod ledger;
pub mod log;
pub mod providers;
pub mod recover;
pub mod redact;
pub mod registry;
pub mod runner;
