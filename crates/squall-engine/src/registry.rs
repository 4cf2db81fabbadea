//! The activity registry: the one static list of native activities (their
//! descriptions and async functions) and of undo functions.
//!
//! `discover`, argument validation and the reference docs are all generated
//! from this list, so a function cannot exist without being documented and
//! checked. Later providers (Kubernetes, Istio, data plane) add their
//! entries here.

use serde_json::{Map, Value};
use squall_core::catalog::{ActivitySpec, Catalog};

use crate::providers::{availability, dataplane, testing};
use squall_kube::{node, pod};

pub use squall_activity::{
    ActivityError, ActivityResult, BoxFuture, Registered, RunFn, UndoFn, UndoSpec,
};

/// Every native activity squall has.
pub static ACTIVITIES: &[Registered] = &[
    testing::WRITE_FILE,
    testing::RESTORE_FILE,
    dataplane::FLUSH_RULES,
    dataplane::RESTORE_RULES,
    dataplane::STALE_RULES,
    availability::AVAILABILITY,
    pod::COUNT_PODS,
    pod::PODS_IN_PHASE,
    pod::PODS_NOT_IN_PHASE,
    pod::PODS_IN_CONDITIONS,
    pod::TERMINATE_PODS,
    node::CORDON_NODE,
    node::UNCORDON_NODE,
    node::DRAIN_NODES,
    node::DELETE_NODES,
    squall_kube::istio::ADD_ABORT_FAULT,
    squall_kube::istio::ADD_DELAY_FAULT,
    squall_kube::istio::REMOVE_ABORT_FAULT,
    squall_kube::istio::REMOVE_DELAY_FAULT,
    squall_kube::istio::ADD_ABORT_FAULT_RANDOM,
    squall_kube::istio::ADD_DELAY_FAULT_RANDOM,
    squall_kube::istio::RESTORE_VIRTUAL_SERVICES,
    squall_kube::pod::READ_POD_LOGS,
    squall_kube::pod::ALL_PODS_HEALTHY,
    squall_kube::pod::POD_IS_NOT_AVAILABLE,
    squall_kube::pod::COUNT_MIN_PODS,
    squall_kube::deployment::SCALE_DEPLOYMENT,
    squall_kube::deployment::DELETE_DEPLOYMENT,
    squall_kube::deployment::ROLLOUT_DEPLOYMENT,
    squall_kube::deployment::DEPLOYMENT_AVAILABLE_AND_HEALTHY,
    squall_kube::deployment::DEPLOYMENT_PARTIALLY_AVAILABLE,
    squall_kube::deployment::DEPLOYMENT_FULLY_AVAILABLE,
    squall_kube::deployment::DEPLOYMENT_NOT_FULLY_AVAILABLE,
    squall_kube::statefulset::SCALE_STATEFULSET,
    squall_kube::statefulset::REMOVE_STATEFULSET,
    squall_kube::statefulset::STATEFULSET_FULLY_AVAILABLE,
    squall_kube::statefulset::STATEFULSET_NOT_FULLY_AVAILABLE,
    squall_kube::service::SERVICE_IS_INITIALIZED,
    squall_kube::service::DELETE_SERVICE,
    squall_kube::probes::ALL_MICROSERVICES_HEALTHY,
    squall_kube::probes::MICROSERVICE_AVAILABLE_AND_HEALTHY,
    squall_kube::probes::MICROSERVICE_IS_NOT_AVAILABLE,
    squall_kube::probes::SERVICE_ENDPOINT_IS_INITIALIZED,
    squall_kube::probes::DEPLOYMENT_IS_FULLY_AVAILABLE,
    squall_kube::probes::DEPLOYMENT_IS_NOT_FULLY_AVAILABLE,
    squall_kube::probes::READ_MICROSERVICES_LOGS,
    squall_kube::probes::KILL_MICROSERVICE,
    squall_kube::probes::SCALE_MICROSERVICE,
    squall_kube::probes::REMOVE_SERVICE_ENDPOINT,
];

/// Every undo function squall has.
pub static UNDOS: &[UndoSpec] = &[
    testing::UNDO_RESTORE_FILE,
    dataplane::UNDO_RESTORE_RULES,
    node::UNDO_UNCORDON,
    squall_kube::istio::UNDO_RESTORE,
    squall_kube::deployment::UNDO_SCALE_DEPLOYMENT,
    squall_kube::statefulset::UNDO_SCALE_STATEFULSET,
    squall_kube::dataplane::UNDO_RESTORE_ON_NODE,
];

/// The registry as a [`Catalog`] for validation and discovery.
pub struct Registry;

impl Catalog for Registry {
    fn specs(&self) -> Vec<&ActivitySpec> {
        ACTIVITIES.iter().map(|r| &r.spec).collect()
    }
}

/// The implementation of `module.func`.
pub fn find(module: &str, func: &str) -> Option<&'static Registered> {
    ACTIVITIES
        .iter()
        .find(|r| r.spec.module == module && r.spec.func == func)
}

/// The undo function of a ledger record.
pub fn undo_fn(kind: &str) -> Option<&'static UndoSpec> {
    UNDOS.iter().find(|u| u.kind == kind)
}

/// Fills in defaults for arguments the experiment left out.
pub fn with_defaults(spec: &ActivitySpec, mut args: Map<String, Value>) -> Map<String, Value> {
    for arg in spec.args {
        if let (false, Some(d)) = (args.contains_key(arg.name), arg.default_value()) {
            args.insert(arg.name.to_owned(), d);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kubernetes_activity_and_undo_is_registered() {
        for r in squall_kube::ACTIVITIES {
            assert!(
                find(r.spec.module, r.spec.func).is_some(),
                "{} is missing from the registry",
                r.spec.qualified()
            );
        }
        for u in squall_kube::UNDOS {
            assert!(undo_fn(u.kind).is_some(), "undo {} is missing", u.kind);
        }
    }

    #[test]
    fn every_entry_is_unique_and_documented() {
        let mut names: Vec<String> = ACTIVITIES.iter().map(|r| r.spec.qualified()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate registry entries");
        for r in ACTIVITIES {
            assert!(!r.spec.doc.is_empty(), "{} has no doc", r.spec.qualified());
            for a in r.spec.args {
                assert!(
                    !a.doc.is_empty(),
                    "{}:{} has no doc",
                    r.spec.qualified(),
                    a.name
                );
                if let Some(d) = a.default {
                    assert!(serde_json::from_str::<Value>(d).is_ok(), "bad default {d}");
                }
            }
        }
        assert!(undo_fn("squall.testing.restore_file").is_some());
    }

    #[test]
    fn defaults_are_filled_in() {
        let spec = &find("squall.testing.actions", "write_file").unwrap().spec;
        let args = with_defaults(
            spec,
            serde_json::json!({"path": "/x"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(args["content"], "");
        assert!(args["undo_log"].is_null());
    }
}
