//! The activity registry: the composition of the providers' lists of
//! native activities (their descriptions and async functions) and of undo
//! functions.
//!
//! Each provider family exports one [`Provider`]; the binary composes them
//! (`squall/src/providers.rs`), so the engine depends on the provider
//! contract only. `discover`, argument validation and the reference docs
//! are all generated from the registry, so a function cannot exist without
//! being documented and checked.

use serde_json::{Map, Value};
use squall_core::catalog::{ActivitySpec, Catalog};

pub use squall_activity::{
    ActivityError, ActivityResult, Applied, BoxFuture, Provider, Registered, RunFn, UndoFn,
    UndoSpec,
};

/// Every native activity and undo function of the providers it was built
/// from, in their order.
pub struct Registry {
    activities: Vec<&'static Registered>,
    undos: Vec<&'static UndoSpec>,
}

/// A registry that cannot be built: two providers claim one name.
#[derive(Debug, PartialEq, Eq)]
pub struct Duplicates(pub Vec<String>);

impl Registry {
    /// The composition of `providers`; a `module.func` or undo kind
    /// registered twice is an error naming each duplicate.
    pub fn new(providers: &[&'static Provider]) -> Result<Self, Duplicates> {
        let activities: Vec<&'static Registered> =
            providers.iter().flat_map(|p| p.activities.iter()).collect();
        let undos: Vec<&'static UndoSpec> = providers.iter().flat_map(|p| p.undos.iter()).collect();
        let mut names: Vec<String> = activities.iter().map(|r| r.spec.qualified()).collect();
        names.extend(undos.iter().map(|u| format!("undo {}", u.kind)));
        names.sort();
        let mut dups: Vec<String> = names
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0].clone())
            .collect();
        dups.dedup();
        if dups.is_empty() {
            Ok(Self { activities, undos })
        } else {
            Err(Duplicates(dups))
        }
    }

    /// A registry that lives as long as the program, as the runner's
    /// background tasks need.
    pub fn leak(providers: &[&'static Provider]) -> Result<&'static Self, Duplicates> {
        Self::new(providers).map(|r| &*Box::leak(Box::new(r)))
    }

    /// Every activity, in provider order.
    pub fn activities(&self) -> impl Iterator<Item = &'static Registered> + '_ {
        self.activities.iter().copied()
    }

    /// Every undo function, in provider order.
    pub fn undos(&self) -> impl Iterator<Item = &'static UndoSpec> + '_ {
        self.undos.iter().copied()
    }

    /// The implementation of `module.func`.
    pub fn find(&self, module: &str, func: &str) -> Option<&'static Registered> {
        self.activities()
            .find(|r| r.spec.module == module && r.spec.func == func)
    }

    /// The undo function of a ledger record.
    pub fn undo_fn(&self, kind: &str) -> Option<&'static UndoSpec> {
        self.undos().find(|u| u.kind == kind)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Registry({} activities, {} undos)",
            self.activities.len(),
            self.undos.len()
        )
    }
}

impl Catalog for Registry {
    fn specs(&self) -> Vec<&ActivitySpec> {
        self.activities.iter().map(|r| &r.spec).collect()
    }
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

/// The registry of the engine's own native module (`squall.testing`), for
/// the engine's tests.
#[cfg(test)]
pub(crate) fn for_tests() -> &'static Registry {
    static REG: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(|| {
        Registry::new(&[&crate::providers::testing::PROVIDER]).expect("one provider")
    });
    &REG
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing;

    static TWICE: Provider = Provider {
        name: "twice",
        activities: testing::PROVIDER.activities,
        undos: &[],
    };

    #[test]
    fn a_name_registered_twice_is_refused() {
        let err = Registry::new(&[&testing::PROVIDER, &TWICE]).err().unwrap();
        assert!(
            err.0
                .contains(&"squall.testing.actions.write_file".to_owned()),
            "{err:?}"
        );
    }

    #[test]
    fn activities_and_undos_are_found() {
        let reg = for_tests();
        assert!(reg.find("squall.testing.actions", "write_file").is_some());
        assert!(reg.find("squall.testing.actions", "nope").is_none());
        assert!(reg.undo_fn("squall.testing.restore_file").is_some());
        assert!(reg.undo_fn("nope").is_none());
    }

    #[test]
    fn defaults_are_filled_in() {
        let spec = &for_tests()
            .find("squall.testing.actions", "write_file")
            .unwrap()
            .spec;
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
