//! `squall-dataplane`: the node data-plane half of squall. It snapshots,
//! flushes, restores and diffs kube-proxy's packet-filter rules on a node,
//! parses iptables / nftables / IPVS dumps into one [`model::ServiceMap`],
//! and finds stale rules by comparing that map with EndpointSlices. Every
//! external program runs through a [`runner::CommandRunner`], so the same
//! code drives a real node, a network namespace in the test lab, or a
//! recording fake in unit tests.
//!
//! It is also a provider: [`PROVIDER`] registers the `squall.dataplane.*`
//! activities ([`activity`]) and the availability monitor
//! `squall.http.probes.availability` ([`availability`]), which measures the
//! outages these faults cause.

pub mod activity;
pub mod availability;
pub mod endpointslice;
pub mod error;
pub mod flush;
pub mod hash;
pub mod inspect;
pub mod model;
pub mod nftables;
pub mod parse;
pub mod prune;
pub mod restore;
pub mod ruleset;
pub mod runner;
pub mod services;
pub mod snapshot;
pub mod stale;
pub mod watchdog;

pub use error::{DataplaneError, Result};

use squall_activity::Provider;

/// The data-plane provider: kube-proxy rule faults and the availability
/// monitor.
pub static PROVIDER: Provider = Provider {
    name: "dataplane",
    activities: &[
        activity::FLUSH_RULES,
        activity::RESTORE_RULES,
        activity::STALE_RULES,
        availability::AVAILABILITY,
    ],
    undos: &[activity::UNDO_RESTORE_RULES],
};
