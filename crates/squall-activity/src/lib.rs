//! The contract between squall's engine and its providers. A provider crate
//! (Kubernetes, Istio, the node data plane) depends on this crate only:
//! it describes its functions as [`Registered`] entries and its undo
//! functions as [`UndoSpec`]s, each with the Kubernetes API [`Permission`]s
//! it needs, and exports them once as a [`Provider`]. The binary composes
//! the providers into the engine's registry and supplies the ledger and the
//! log behind the traits here; [`describe`] holds the descriptor builders
//! every provider shares.
//!
//! This keeps the dependency direction of the design: cli → engine and
//! providers → this contract → core, with no provider depending on the
//! engine and the engine depending on no provider.

pub mod describe;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use squall_core::catalog::ActivitySpec;
use squall_core::model::Limits;

/// Why an activity did not produce a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActivityError {
    /// The activity ran and failed: recorded in the journal, the run goes on.
    Failed(String),
    /// squall itself could not carry on (aborts the method).
    Fatal(String),
}

impl ActivityError {
    pub fn failed(msg: impl Into<String>) -> Self {
        Self::Failed(msg.into())
    }
    pub fn message(&self) -> &str {
        match self {
            Self::Failed(m) | Self::Fatal(m) => m,
        }
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub type ActivityResult = Result<Value, ActivityError>;
/// A native activity: its context and (substituted, defaulted) arguments.
pub type RunFn = fn(Arc<ActivityCtx>, Map<String, Value>) -> BoxFuture<ActivityResult>;
/// An undo function: the data recorded in the ledger. `Err` means nothing
/// is known to be undone (refused or failed): the record stays pending.
pub type UndoFn = fn(Value) -> BoxFuture<Result<Applied, String>>;

/// What applying an undo found and did, so `squall recover` can say it per
/// record instead of one success line for all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The recorded state was put back.
    Restored,
    /// The target already was as recorded; nothing was changed.
    AlreadyAsItWas,
    /// Someone changed the target since (named here); it was left alone so
    /// a newer state is not rolled back.
    Superseded(String),
}

impl Applied {
    /// How `squall recover` reports it.
    pub fn describe(&self) -> String {
        match self {
            Self::Restored => "restored".into(),
            Self::AlreadyAsItWas => "already as it was, nothing changed".into(),
            Self::Superseded(by) => format!("superseded, left alone: {by}"),
        }
    }
}

/// A native activity with its implementation.
pub struct Registered {
    pub spec: ActivitySpec,
    pub run: RunFn,
    /// Every Kubernetes API permission the activity may use, including
    /// those of its dry run (`--dry`) and of the undo it records; empty for
    /// activities that never call the API. RBAC is derived from these.
    pub permissions: &'static [Permission],
}

/// An undo function, found by `kind` when rolling back or recovering.
pub struct UndoSpec {
    pub kind: &'static str,
    pub doc: &'static str,
    pub apply: UndoFn,
    /// The API permissions applying this undo needs (see [`Registered`]).
    pub permissions: &'static [Permission],
}

/// One provider family: everything one crate (or module) adds to squall,
/// declared once. The binary's registry is the composition of these.
pub struct Provider {
    /// A short name for messages and docs, e.g. `kubernetes`.
    pub name: &'static str,
    pub activities: &'static [Registered],
    pub undos: &'static [UndoSpec],
}

/// A Kubernetes API permission, as an RBAC `PolicyRule` names it: the API
/// group (`""` for the core group), the resource (with a subresource after
/// a slash, e.g. `pods/eviction`) and the verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
}

impl Permission {
    /// Whether the resource is cluster-scoped (so a ClusterRole must grant
    /// it).
    pub fn cluster_scoped(&self) -> bool {
        const CLUSTER: &[&str] = &[
            "nodes",
            "namespaces",
            "persistentvolumes",
            "customresourcedefinitions",
        ];
        let base = self.resource.split('/').next().unwrap_or_default();
        CLUSTER.contains(&base)
    }
}

/// How to undo one change: the registered undo function and its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Undo {
    /// The `kind` of a registered [`UndoSpec`].
    pub kind: String,
    /// Everything that function needs (for example the snapshot taken).
    pub data: Value,
    /// A human description for logs and `squall recover`.
    pub description: String,
}

/// An undo that has been recorded and not yet marked done.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub id: String,
    pub run_id: String,
    /// What was changed (`file:/tmp/x`, `node/worker-1`).
    pub target: String,
    pub undo: Undo,
}

/// The durable undo ledger, as providers see it.
pub trait UndoLedger: Send + Sync {
    /// Durably records an undo and returns its id.
    fn record(&self, run_id: &str, target: &str, undo: Undo) -> std::io::Result<String>;
    /// Pending undos for one target, oldest first.
    fn pending_for(&self, target: &str) -> std::io::Result<Vec<Pending>>;
    /// Durably marks an undo as applied.
    fn mark_done(&self, id: &str) -> std::io::Result<()>;
    /// Where the ledger lives, for messages.
    fn location(&self) -> String;
}

/// The run log, as providers see it.
pub trait RunLog: Send + Sync {
    fn debug(&self, msg: &str);
    fn info(&self, msg: &str);
    fn warning(&self, msg: &str);
}

/// What the run tells long-running activities (such as a background
/// availability monitor) about its progress.
#[derive(Debug, Default)]
pub struct RunEvents {
    method_ended: AtomicBool,
    /// Unix milliseconds when the last method action ended (0: none yet).
    last_action_end_ms: AtomicU64,
}

impl RunEvents {
    /// Whether the method (and so the window a background probe watches)
    /// is over.
    pub fn method_ended(&self) -> bool {
        self.method_ended.load(Ordering::SeqCst)
    }
    pub fn end_method(&self) {
        self.method_ended.store(true, Ordering::SeqCst);
    }
    /// When the last action of the method ended, in Unix milliseconds.
    pub fn last_action_end_ms(&self) -> Option<u64> {
        Some(self.last_action_end_ms.load(Ordering::SeqCst)).filter(|ms| *ms > 0)
    }
    pub fn action_ended(&self, unix_ms: u64) {
        self.last_action_end_ms.store(unix_ms, Ordering::SeqCst);
    }
}

/// Connections the run offers to providers, by type: a provider crate
/// defines its handle type (for example a Kubernetes client factory), the
/// binary inserts one, and tests insert one built on the simulator. This is
/// the seam that lets provider code run unchanged against a real cluster
/// or a simulated one.
#[derive(Default)]
pub struct Services(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl Services {
    pub fn insert<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        self.0.insert(TypeId::of::<T>(), value);
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Services({} entries)", self.0.len())
    }
}

/// The context one activity runs in.
pub struct ActivityCtx {
    pub configuration: Map<String, Value>,
    /// The secret scopes the provider asked for, merged in list order.
    pub secrets: Map<String, Value>,
    pub ledger: Arc<dyn UndoLedger>,
    pub run_id: String,
    pub log: Arc<dyn RunLog>,
    pub limits: Limits,
    pub events: Arc<RunEvents>,
    pub services: Arc<Services>,
    /// `--dry` on a mutating native action: resolve the targets (read-only
    /// calls only), check the limits, and return [`ActivityCtx::plan`]
    /// instead of changing anything.
    pub dry: bool,
}

impl ActivityCtx {
    /// The result of a dry run: logs each change the action would make and
    /// returns `{"dry": true, "targets": [...], "changes": [...]}`, so the
    /// journal shows what a real run would have touched.
    pub fn plan(&self, targets: &[String], changes: &[String]) -> ActivityResult {
        for change in changes {
            self.log.info(&format!("dry run: would {change}"));
        }
        Ok(serde_json::json!({"dry": true, "targets": targets, "changes": changes}))
    }

    /// Records how to undo a change, durably, before the change is made.
    /// An activity that cannot record its undo must not act.
    pub fn record_undo(&self, target: &str, undo: Undo) -> Result<String, ActivityError> {
        self.log.debug(&format!(
            "ledger: recording undo for {target}: {}",
            undo.description
        ));
        self.ledger.record(&self.run_id, target, undo).map_err(|e| {
            ActivityError::Fatal(format!(
                "could not write the undo ledger {}: {e}",
                self.ledger.location()
            ))
        })
    }

    /// Undos still pending for `target`, oldest first.
    pub fn pending_for(&self, target: &str) -> Result<Vec<Pending>, ActivityError> {
        self.ledger
            .pending_for(target)
            .map_err(|e| ActivityError::Fatal(format!("could not read the undo ledger: {e}")))
    }

    /// Marks an undo as applied.
    pub fn mark_done(&self, id: &str) -> Result<(), ActivityError> {
        self.ledger
            .mark_done(id)
            .map_err(|e| ActivityError::Fatal(format!("could not write the undo ledger: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;
    impl UndoLedger for Broken {
        fn record(&self, _: &str, _: &str, _: Undo) -> std::io::Result<String> {
            Err(std::io::Error::other("disk full"))
        }
        fn pending_for(&self, _: &str) -> std::io::Result<Vec<Pending>> {
            Ok(Vec::new())
        }
        fn mark_done(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn location(&self) -> String {
            "/ledger".into()
        }
    }
    struct Quiet;
    impl RunLog for Quiet {
        fn debug(&self, _: &str) {}
        fn info(&self, _: &str) {}
        fn warning(&self, _: &str) {}
    }

    #[test]
    fn services_are_found_by_type() {
        let mut s = Services::default();
        s.insert(Arc::new(42u32));
        assert_eq!(s.get::<u32>().as_deref(), Some(&42));
        assert!(s.get::<String>().is_none());
    }

    #[test]
    fn an_unwritable_ledger_is_fatal_so_the_activity_does_not_act() {
        let ctx = ActivityCtx {
            configuration: Map::new(),
            secrets: Map::new(),
            ledger: Arc::new(Broken),
            run_id: "r".into(),
            log: Arc::new(Quiet),
            limits: Limits::default(),
            events: Arc::default(),
            services: Arc::default(),
            dry: false,
        };
        let undo = Undo {
            kind: "k".into(),
            data: Value::Null,
            description: "d".into(),
        };
        let err = ctx.record_undo("t", undo).unwrap_err();
        assert_eq!(
            err,
            ActivityError::Fatal("could not write the undo ledger /ledger: disk full".into())
        );
    }
}
