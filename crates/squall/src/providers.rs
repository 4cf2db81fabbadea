//! Where the binary is wired: the provider families squall ships, composed
//! into the engine's one registry. Adding a provider family means adding
//! its `PROVIDER` here; adding a function to a family touches only that
//! family's module (ARCHITECTURE.md walks through it).

use std::sync::LazyLock;

use squall_activity::Provider;
use squall_engine::registry::Registry;

/// Every provider family, in the order `discover` lists packages.
pub static PROVIDERS: &[&Provider] = &[
    &squall_engine::providers::testing::PROVIDER,
    &squall_dataplane::PROVIDER,
    &squall_kube::PROVIDER,
    &squall_prometheus::PROVIDER,
];

/// The registry of everything squall can run.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| match Registry::new(PROVIDERS) {
        Ok(r) => r,
        // Two families claiming one name is a build mistake, caught by the
        // test below before any release.
        Err(d) => panic!("activities registered twice: {}", d.0.join(", ")),
    });
    &REGISTRY
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Modules whose functions call the Kubernetes API.
    const KUBERNETES_MODULES: &[&str] = &[
        "chaosk8s.",
        "chaosistio.",
        "squall.istio.",
        "squall.dataplane.",
    ];

    #[test]
    fn every_name_is_registered_once() {
        assert!(Registry::new(PROVIDERS).is_ok());
    }

    #[test]
    fn every_entry_is_documented_with_valid_defaults() {
        for r in registry().activities() {
            let name = r.spec.qualified();
            assert!(!r.spec.doc.is_empty(), "{name} has no doc");
            for a in r.spec.args {
                assert!(!a.doc.is_empty(), "{name}:{} has no doc", a.name);
                if let Some(d) = a.default {
                    assert!(
                        serde_json::from_str::<Value>(d).is_ok(),
                        "{name}: bad default {d}"
                    );
                }
            }
        }
        for u in registry().undos() {
            assert!(!u.doc.is_empty(), "undo {} has no doc", u.kind);
        }
    }

    #[test]
    fn every_kubernetes_function_and_undo_declares_its_permissions() {
        for r in registry().activities() {
            let kube = KUBERNETES_MODULES
                .iter()
                .any(|m| r.spec.module.starts_with(m));
            assert_eq!(
                !r.permissions.is_empty(),
                kube,
                "{}: API permissions declared iff it can call the API",
                r.spec.qualified()
            );
        }
        // The two undos that act on this machine only.
        let local = [
            "squall.testing.restore_file",
            "squall.dataplane.restore_rules",
        ];
        for u in registry().undos() {
            let kube = !local.contains(&u.kind);
            assert_eq!(!u.permissions.is_empty(), kube, "undo {}", u.kind);
        }
    }

    #[test]
    fn no_permission_is_a_wildcard() {
        let all = registry()
            .activities()
            .flat_map(|r| r.permissions)
            .chain(registry().undos().flat_map(|u| u.permissions));
        for p in all {
            assert!(!p.resource.is_empty() && !p.verbs.is_empty(), "{p:?}");
            assert!(
                ![p.group, p.resource].contains(&"*") && !p.verbs.contains(&"*"),
                "wildcard in {p:?}"
            );
        }
    }
}
