//! squall's pure core: the Chaos Toolkit experiment model, parsing with
//! locations, validation that reports every problem, `${}` substitution,
//! tolerances, journal types and the run-status function.
//!
//! Invariant: nothing in this crate performs IO or needs an async runtime;
//! the outside world reaches it only through [`config::Environment`].

pub mod catalog;
pub mod config;
pub mod diag;
pub mod doc;
pub mod journal;
pub mod model;
pub mod status;
pub mod subst;
pub mod tolerance;
pub mod validate;
