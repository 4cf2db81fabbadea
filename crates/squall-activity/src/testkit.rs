//! Test doubles for provider tests (the `testkit` feature): an in-memory
//! undo ledger, with a hook that observes the world at the moment an undo
//! is recorded (to prove "undo before harm"), a capturing run log, and a
//! plain [`ActivityCtx`] around both.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::{ActivityCtx, Pending, RunLog, Undo, UndoLedger};

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

/// A context with an in-memory ledger and log, no configuration and no
/// services.
pub fn ctx() -> Arc<ActivityCtx> {
    Arc::new(ActivityCtx {
        configuration: Map::new(),
        secrets: Map::new(),
        ledger: Arc::new(MemLedger::default()),
        run_id: "r".into(),
        log: Arc::new(MemLog::default()),
        limits: Default::default(),
        events: Default::default(),
        services: Default::default(),
        dry: false,
    })
}
