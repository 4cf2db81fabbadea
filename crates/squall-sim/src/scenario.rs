//! Scenarios: sets of objects a simulator starts with, so the book's
//! experiments run against the state the book's chapters leave behind.
//!
//! The objects are the manifests under `examples/go-demo-8/` (written for the
//! sandbox from the book's descriptions), embedded at build time, so
//! `kubectl apply -f examples/go-demo-8/...` and `--scenario` give the same
//! cluster. Objects without a namespace go to `go-demo-8`, as the book applies
//! them with `--namespace go-demo-8`.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::ApiError;
use crate::sim::Sim;
use crate::store::{StoreInner, str_at};

/// The namespace the book's manifests are applied to.
pub const NAMESPACE: &str = "go-demo-8";

macro_rules! manifest {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!("../../../examples/go-demo-8/", $path)),
        )
    };
}

/// Chapter 4 ("Experimenting With Application Availability"): the API (two
/// replicas through the HPA), MongoDB, the Service and the nginx Ingress for
/// `go-demo-8.acme.com`.
const CHAPTER_4: &[(&str, &str)] = &[
    manifest!("namespace.yaml"),
    manifest!("app/deployment.yaml"),
    manifest!("app/db.yaml"),
    manifest!("app/service.yaml"),
    manifest!("health/ingress.yaml"),
    manifest!("health/hpa.yaml"),
];

/// Chapters 5 and 6 (network, nodes): the meshed namespace, the Istio ingress
/// gateway in istio-system (one replica, PDB minAvailable 1), the API and
/// MongoDB, go-demo-8's Gateway / VirtualService / DestinationRule and the
/// repeater with its own.
const CHAPTER_5: &[(&str, &str)] = &[
    manifest!("namespace-istio.yaml"),
    manifest!("istio-system/ingressgateway.yaml"),
    manifest!("app/deployment.yaml"),
    manifest!("app/db.yaml"),
    manifest!("app/service.yaml"),
    manifest!("health/hpa.yaml"),
    manifest!("network/go-demo-8-gateway.yaml"),
    manifest!("network/repeater.yaml"),
];

/// What a simulator starts with besides the default cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scenario {
    /// Nothing: the default namespaces, nodes and the `kubernetes` Service.
    #[default]
    Empty,
    /// `go-demo-8`: the book's chapter-4 state (no service mesh).
    GoDemo8,
    /// `go-demo-8-istio`: the chapter-5/6 state (Istio, the repeater).
    GoDemo8Istio,
}

impl Scenario {
    /// Every scenario, in the order `--help` should list them.
    pub const ALL: [Scenario; 3] = [Scenario::Empty, Scenario::GoDemo8, Scenario::GoDemo8Istio];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Empty => "empty",
            Scenario::GoDemo8 => "go-demo-8",
            Scenario::GoDemo8Istio => "go-demo-8-istio",
        }
    }

    /// The manifests (path under `examples/go-demo-8/`, YAML text) it applies.
    pub fn manifests(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scenario::Empty => &[],
            Scenario::GoDemo8 => CHAPTER_4,
            Scenario::GoDemo8Istio => CHAPTER_5,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scenario name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario `{0}` (known: empty, go-demo-8, go-demo-8-istio)")]
pub struct UnknownScenario(pub String);

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScenario(s.to_string()))
    }
}

/// Parses a multi-document YAML manifest into objects (empty documents skipped).
pub fn parse_manifest(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(Value::is_object).collect())
}

/// Creates one object the way `kubectl apply` would (namespace defaulted to
/// `go-demo-8`, existing objects kept).
fn create(store: &mut StoreInner, obj: Value) -> Result<(), ApiError> {
    let api_version = str_at(&obj, "/apiVersion");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = str_at(&obj, "/kind");
    let def = store
        .resources()
        .iter()
        .find(|r| r.group == group && r.kind == kind)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("no resource for {api_version} {kind}")))?;
    let ns = match str_at(&obj, "/metadata/namespace") {
        _ if !def.namespaced => "",
        "" => NAMESPACE,
        ns => ns,
    }
    .to_string();
    match store.create(&def, &ns, obj, false) {
        Err(e) if e.code == 409 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Loads a scenario's objects into the store (called at start).
pub(crate) fn load(store: &mut StoreInner, scenario: Scenario) {
    if let Err(e) = load_checked(store, scenario) {
        tracing::warn!(error = %e, %scenario, "scenario object rejected");
    }
}

fn load_checked(store: &mut StoreInner, scenario: Scenario) -> Result<(), ApiError> {
    for (path, text) in scenario.manifests() {
        let objs =
            parse_manifest(text).map_err(|e| ApiError::bad_request(format!("{path}: {e}")))?;
        for obj in objs {
            create(store, obj)?;
        }
    }
    Ok(())
}

impl Sim {
    /// Applies a scenario's objects to a running simulator (objects that
    /// already exist are left alone).
    pub fn load_scenario(&self, scenario: Scenario) -> Result<(), ApiError> {
        let out = load_checked(&mut self.shared().store.lock(), scenario);
        self.shared().store.poke();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_parses_into_kinds() {
        for sc in Scenario::ALL {
            for (path, text) in sc.manifests() {
                let objs = parse_manifest(text).unwrap_or_else(|e| panic!("{path}: {e}"));
                assert!(!objs.is_empty(), "{path}");
                assert!(
                    objs.iter().all(|o| !str_at(o, "/kind").is_empty()),
                    "{path}"
                );
            }
        }
        assert_eq!("go-demo-8".parse(), Ok(Scenario::GoDemo8));
        assert!("go-demo-9".parse::<Scenario>().is_err());
    }
}
