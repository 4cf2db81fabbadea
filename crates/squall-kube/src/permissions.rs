//! The Kubernetes API permissions each function of this crate uses, as
//! RBAC names them, including those of its `--dry` plan (reads) and of the
//! undo it records. Registry entries point at these sets, and in-cluster
//! RBAC is derived from them, so a function's list must grow with every
//! API call it gains.

use squall_activity::Permission;
use squall_activity::describe::{core, group};

const LIST: &[&str] = &["list"];
const GET_LIST: &[&str] = &["get", "list"];
const LIST_DELETE: &[&str] = &["list", "delete"];
const GET_LIST_PATCH: &[&str] = &["get", "list", "patch"];
/// kube-rs' `await_condition` lists, then watches.
const LIST_WATCH: &[&str] = &["list", "watch"];

/// Pod probes that list pods of a namespace.
pub const LIST_PODS: &[Permission] = &[core("pods", LIST)];
/// `terminate_pods`: pick from a listing, then delete.
pub const DELETE_PODS: &[Permission] = &[core("pods", LIST_DELETE)];
/// Log readers: find the pods, then read each one's log.
pub const READ_LOGS: &[Permission] = &[core("pods", LIST), core("pods/log", &["get"])];
/// cordon / uncordon (and the uncordon undo): read nodes, patch
/// `spec.unschedulable`.
pub const CORDON: &[Permission] = &[core("nodes", GET_LIST_PATCH)];
/// `drain_nodes`: cordon (with its undo), list the node's pods in every
/// namespace, evict them, and wait until each is gone.
pub const DRAIN: &[Permission] = &[
    core("nodes", GET_LIST_PATCH),
    core("pods", GET_LIST),
    core("pods/eviction", &["create"]),
];
/// `delete_nodes`: pick nodes (optionally by the pods they host), delete.
pub const DELETE_NODES: &[Permission] = &[core("nodes", LIST_DELETE), core("pods", LIST)];
/// Deployment availability probes.
pub const READ_DEPLOYMENTS: &[Permission] = &[group("apps", "deployments", LIST)];
/// Deployment waits (`await_condition`).
pub const WAIT_DEPLOYMENTS: &[Permission] = &[group("apps", "deployments", LIST_WATCH)];
/// scale / rollout of a Deployment, and the scale-back undo.
pub const PATCH_DEPLOYMENTS: &[Permission] = &[group("apps", "deployments", GET_LIST_PATCH)];
/// `delete_deployment`.
pub const DELETE_DEPLOYMENTS: &[Permission] = &[group("apps", "deployments", LIST_DELETE)];
/// StatefulSet waits.
pub const WAIT_STATEFULSETS: &[Permission] = &[group("apps", "statefulsets", LIST_WATCH)];
/// scale of a StatefulSet, and its undo.
pub const PATCH_STATEFULSETS: &[Permission] = &[group("apps", "statefulsets", GET_LIST_PATCH)];
/// `remove_statefulset`.
pub const DELETE_STATEFULSETS: &[Permission] = &[group("apps", "statefulsets", LIST_DELETE)];
/// Service probes.
pub const LIST_SERVICES: &[Permission] = &[core("services", LIST)];
/// `delete_service`: read it, then delete it.
pub const DELETE_SERVICE: &[Permission] = &[core("services", &["get", "delete"])];
/// `kill_microservice`: the Deployment, its ReplicaSets and its pods.
pub const KILL_MICROSERVICE: &[Permission] = &[
    group("apps", "deployments", LIST_DELETE),
    group("apps", "replicasets", LIST_DELETE),
    core("pods", LIST_DELETE),
];
/// Istio faults and their restore-the-spec undo.
pub const VIRTUAL_SERVICES: &[Permission] = &[group(
    "networking.istio.io",
    "virtualservices",
    GET_LIST_PATCH,
)];
