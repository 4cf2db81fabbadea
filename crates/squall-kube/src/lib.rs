//! squall's Kubernetes provider: native implementations of the
//! chaostoolkit-kubernetes (`chaosk8s`) functions on kube-rs, and the
//! connection they share. The binary connects once ([`Kube::connect`]) and
//! puts the handle into the run's `Services`; every activity takes it from
//! its `ActivityCtx`, so the same code runs against a real cluster or the
//! simulator. The engine lists the `Registered` constants exported here
//! (see [`ACTIVITIES`] and [`UNDOS`]) in its one registry; this crate never
//! depends on the engine.

mod args;
pub mod connect;
pub mod limits;
pub mod node;
pub mod pod;
pub mod select;
#[cfg(test)]
mod testkit;

use squall_activity::{ActivityError, Registered, UndoSpec};

pub use connect::{ConnectError, ConnectOptions, Environment, Kube, Looked, Origin, kube};

/// Every activity of this crate, for the engine's registry.
pub static ACTIVITIES: &[Registered] = &[
    pod::COUNT_PODS,
    pod::PODS_IN_PHASE,
    pod::PODS_NOT_IN_PHASE,
    pod::PODS_IN_CONDITIONS,
    pod::TERMINATE_PODS,
    node::CORDON_NODE,
    node::UNCORDON_NODE,
];

/// Every undo function of this crate, for the engine's registry.
pub static UNDOS: &[UndoSpec] = &[node::UNDO_UNCORDON];

/// A Kubernetes API error as an activity failure (the run goes on).
pub(crate) fn api_error(e: kube::Error) -> ActivityError {
    match e {
        kube::Error::Api(s) => ActivityError::Failed(format!(
            "Kubernetes API error ({}) {}: {}",
            s.code, s.reason, s.message
        )),
        other => ActivityError::Failed(format!("Kubernetes API request failed: {other}")),
    }
}
