//! Test doubles: an in-memory undo ledger (with a hook that observes the
//! cluster at the moment an undo is recorded, to prove "undo before harm"),
//! a capturing run log, and an `ActivityCtx` whose services hold a [`Kube`]
//! on the simulator.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use squall_activity::{ActivityCtx, Pending, RunLog, Services, Undo, UndoLedger};
use squall_core::model::Limits;
use squall_sim::{Sim, SimOptions};

use crate::connect::Kube;

type Hook = Box<dyn Fn(&str) -> Value + Send + Sync>;

/// One ledger entry: the pending record, whether it is done, and what the
/// hook saw when it was recorded.
#[derive(Clone, Debug)]
pub struct Entry {
    pub pending: Pending,
    pub done: bool,
    pub seen: Value,
}

#[derive(Default)]
pub struct MemLedger {
    pub entries: Mutex<Vec<Entry>>,
    pub on_record: Option<Hook>,
    pub broken: bool,
}

impl UndoLedger for MemLedger {
    fn record(&self, run_id: &str, target: &str, undo: Undo) -> std::io::Result<String> {
        if self.broken {
            return Err(std::io::Error::other("disk full"));
        }
        let seen = self.on_record.as_ref().map_or(Value::Null, |h| h(target));
        let mut entries = self.entries.lock().unwrap();
        let id = format!("u{}", entries.len() + 1);
        entries.push(Entry {
            pending: Pending {
                id: id.clone(),
                run_id: run_id.into(),
                target: target.into(),
                undo,
            },
            done: false,
            seen,
        });
        Ok(id)
    }
    fn pending_for(&self, target: &str) -> std::io::Result<Vec<Pending>> {
        let entries = self.entries.lock().unwrap();
        Ok(entries
            .iter()
            .filter(|e| !e.done && e.pending.target == target)
            .map(|e| e.pending.clone())
            .collect())
    }
    fn mark_done(&self, id: &str) -> std::io::Result<()> {
        let mut entries = self.entries.lock().unwrap();
        for e in entries.iter_mut().filter(|e| e.pending.id == id) {
            e.done = true;
        }
        Ok(())
    }
    fn location(&self) -> String {
        "memory".into()
    }
}

#[derive(Default)]
pub struct MemLog(pub Mutex<Vec<String>>);

impl RunLog for MemLog {
    fn debug(&self, msg: &str) {
        self.0.lock().unwrap().push(format!("DEBUG {msg}"));
    }
    fn info(&self, msg: &str) {
        self.0.lock().unwrap().push(format!("INFO {msg}"));
    }
    fn warning(&self, msg: &str) {
        self.0.lock().unwrap().push(format!("WARNING {msg}"));
    }
}

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
