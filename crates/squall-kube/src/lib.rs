//! squall's Kubernetes provider: native implementations of the
//! chaostoolkit-kubernetes (`chaosk8s`) functions on kube-rs, and the
//! connection they share. The binary connects once ([`Kube::connect`]) and
//! puts the handle into the run's `Services`; every activity takes it from
//! its `ActivityCtx`, so the same code runs against a real cluster or the
//! simulator. Every function is listed once, in [`PROVIDER`], with the API
//! permissions it needs (`permissions`); the binary composes it into the
//! registry, and this crate never depends on the engine.

mod args;
pub mod cleanup;
pub mod connect;
pub mod dataplane;
pub mod deployment;
pub mod helper;
pub mod istio;
pub mod limits;
pub mod node;
mod permissions;
pub mod pod;
pub mod probes;
pub mod select;
pub mod service;
pub mod statefulset;
#[cfg(test)]
mod testkit;

use squall_activity::{ActivityCtx, ActivityError, Pending, Provider, describe};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};

pub use connect::{ConnectError, ConnectOptions, Environment, Kube, Looked, Origin, kube};

/// The Kubernetes provider: every activity and undo function of this
/// crate, for the binary's registry.
pub static PROVIDER: Provider = Provider {
    name: "kubernetes",
    activities: &[
        pod::COUNT_PODS,
        pod::PODS_IN_PHASE,
        pod::PODS_NOT_IN_PHASE,
        pod::PODS_IN_CONDITIONS,
        pod::TERMINATE_PODS,
        node::CORDON_NODE,
        node::UNCORDON_NODE,
        istio::ADD_ABORT_FAULT,
        istio::ADD_DELAY_FAULT,
        istio::REMOVE_ABORT_FAULT,
        istio::REMOVE_DELAY_FAULT,
        istio::ADD_ABORT_FAULT_RANDOM,
        istio::ADD_DELAY_FAULT_RANDOM,
        istio::RESTORE_VIRTUAL_SERVICES,
        node::DRAIN_NODES,
        node::DELETE_NODES,
        pod::READ_POD_LOGS,
        pod::ALL_PODS_HEALTHY,
        pod::POD_IS_NOT_AVAILABLE,
        pod::COUNT_MIN_PODS,
        deployment::SCALE_DEPLOYMENT,
        deployment::DELETE_DEPLOYMENT,
        deployment::ROLLOUT_DEPLOYMENT,
        deployment::DEPLOYMENT_AVAILABLE_AND_HEALTHY,
        deployment::DEPLOYMENT_PARTIALLY_AVAILABLE,
        deployment::DEPLOYMENT_FULLY_AVAILABLE,
        deployment::DEPLOYMENT_NOT_FULLY_AVAILABLE,
        statefulset::SCALE_STATEFULSET,
        statefulset::REMOVE_STATEFULSET,
        statefulset::STATEFULSET_FULLY_AVAILABLE,
        statefulset::STATEFULSET_NOT_FULLY_AVAILABLE,
        service::SERVICE_IS_INITIALIZED,
        service::DELETE_SERVICE,
        probes::ALL_MICROSERVICES_HEALTHY,
        probes::MICROSERVICE_AVAILABLE_AND_HEALTHY,
        probes::MICROSERVICE_IS_NOT_AVAILABLE,
        probes::SERVICE_ENDPOINT_IS_INITIALIZED,
        probes::DEPLOYMENT_IS_FULLY_AVAILABLE,
        probes::DEPLOYMENT_IS_NOT_FULLY_AVAILABLE,
        probes::READ_MICROSERVICES_LOGS,
        probes::KILL_MICROSERVICE,
        probes::SCALE_MICROSERVICE,
        probes::REMOVE_SERVICE_ENDPOINT,
    ],
    undos: &[
        node::UNDO_UNCORDON,
        istio::UNDO_RESTORE,
        deployment::UNDO_SCALE_DEPLOYMENT,
        statefulset::UNDO_SCALE_STATEFULSET,
        dataplane::UNDO_RESTORE_ON_NODE,
    ],
};

/// The chaosk8s shape of a descriptor: actions return nothing and change
/// the cluster, probes return a boolean.
pub(crate) const fn spec(
    module: &'static str,
    func: &'static str,
    kind: Kind,
    doc: &'static str,
    args: &'static [ArgSpec],
) -> ActivitySpec {
    match kind {
        Kind::Action => describe::action(module, func, doc, args, "null", true),
        Kind::Probe => describe::probe(module, func, doc, args, "boolean"),
    }
}

/// chaosk8s' `raise` flags: fail (true, the default) or return false.
pub(crate) const fn raise(name: &'static str, doc: &'static str) -> ArgSpec {
    describe::arg(name, ArgType::Boolean, Some("true"), doc)
}

/// Pending undos for `target` recorded against the cluster `kube` talks to.
/// The default ledger is shared by every run started in a directory, and
/// the same node or Deployment name exists in many clusters: an undo left
/// by a run against another cluster must neither be settled nor taken as
/// this cluster's.
pub(crate) fn pending_here(
    ctx: &ActivityCtx,
    kube: &Kube,
    target: &str,
) -> Result<Vec<Pending>, ActivityError> {
    let here = serde_json::to_value(kube.origin()).unwrap_or_default();
    Ok(ctx
        .pending_for(target)?
        .into_iter()
        .filter(|p| p.undo.data.get("connection") == Some(&here))
        .collect())
}

/// After a write whose undo was recorded first has failed: only a refusal
/// by the server (a 4xx) proves nothing changed, so only then is the undo
/// marked done. After a transport error (timeout, reset) the write may have
/// landed; the undo stays pending, which is safe because every undo here
/// does nothing when the state already matches.
pub(crate) fn settle_failed_write(
    ctx: &ActivityCtx,
    id: &str,
    error: &kube::Error,
) -> Result<(), ActivityError> {
    // A 5xx (an etcd timeout behind the apiserver) may still have landed.
    if matches!(error, kube::Error::Api(s) if s.code < 500) {
        ctx.mark_done(id)?;
    }
    Ok(())
}

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
