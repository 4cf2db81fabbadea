//! What a native activity gets to work with: resolved configuration and
//! secrets, the undo ledger, the run's identity and the log.
//!
//! Providers reach the outside world only through what is here, which is
//! the seam tests use to point them at local files, a local HTTP server or
//! the simulator.

use std::sync::Arc;

use serde_json::{Map, Value};
use squall_core::model::Limits;

use crate::ledger::{Ledger, Pending, Undo};
use crate::log::Logger;
use crate::registry::ActivityError;

/// The context one activity runs in.
pub struct ActivityCtx {
    pub configuration: Map<String, Value>,
    /// The secret scopes the provider asked for, merged in list order.
    pub secrets: Map<String, Value>,
    pub ledger: Arc<Ledger>,
    pub run_id: String,
    pub log: Arc<Logger>,
    pub limits: Limits,
}

impl ActivityCtx {
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
                self.ledger.path().display()
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
