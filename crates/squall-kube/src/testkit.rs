//! Test doubles: an in-memory undo ledger (with a hook that observes the
//! cluster at the moment an undo is recorded, to prove "undo before harm"),
//! a capturing run log, and an `ActivityCtx` whose services hold a [`Kube`]
//! on the simulator.

use std::sync::Arc;

use serde_json::{Map, Value};
use squall_activity::ActivityCtx;
use squall_activity::Services;
pub use squall_activity::testkit::{Entry, MemLedger, MemLog};
use squall_core::model::Limits;
use squall_sim::{Sim, SimOptions};

use crate::connect::Kube;

/// A simulator, a client on it, and a context around both.
pub struct Bed {
    pub sim: Sim,
    pub client: kube::Client,
    /// The handle the context offers (by default on `client`).
    pub kube: Kube,
    pub ledger: Arc<MemLedger>,
    pub log: Arc<MemLog>,
    /// Whether contexts are made in `--dry` plan mode.
    pub dry: bool,
}

impl Bed {
    pub fn new() -> Self {
        Self::with_ledger(MemLedger::default())
    }

    pub fn with_ledger(ledger: MemLedger) -> Self {
        let sim = Sim::start(SimOptions {
            nodes: 3,
            ..SimOptions::default()
        });
        Self::on(sim, ledger)
    }

    pub fn on(sim: Sim, ledger: MemLedger) -> Self {
        let client = kube::Client::new(sim.clone(), "default");
        Self {
            sim,
            kube: Kube::from_client(client.clone()),
            client,
            ledger: Arc::new(ledger),
            log: Arc::default(),
            dry: false,
        }
    }

    pub fn ctx(&self, limits: Limits) -> Arc<ActivityCtx> {
        let mut services = Services::default();
        services.insert(Arc::new(self.kube.clone()));
        Arc::new(ActivityCtx {
            configuration: Map::new(),
            secrets: Map::new(),
            ledger: self.ledger.clone(),
            run_id: "run-1".into(),
            log: self.log.clone(),
            limits,
            events: Arc::default(),
            services: Arc::new(services),
            dry: self.dry,
        })
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.ledger.entries.lock().unwrap().clone()
    }
}

pub fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}
