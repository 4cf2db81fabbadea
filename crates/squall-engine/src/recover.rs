//! `squall recover`: applies every undo still pending in a ledger, newest
//! first (so stacked changes unwind in reverse), marking each one done as
//! soon as it succeeds. Undo functions are idempotent, and a done undo is
//! never applied again, so running recover twice changes nothing.

use std::path::Path;

use crate::ledger::Ledger;
use crate::log::Logger;
use crate::registry::{Applied, Registry};

/// What a recovery did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Undos now done, each with what applying it found.
    pub applied: Vec<(String, Applied)>,
    /// Undos that failed, with why; they stay pending.
    pub failed: Vec<(String, String)>,
}

impl Report {
    /// `2 restored, 1 already as it was, 1 superseded` (the kinds present).
    pub fn breakdown(&self) -> String {
        let count = |f: fn(&Applied) -> bool| self.applied.iter().filter(|(_, a)| f(a)).count();
        let parts = [
            (count(|a| *a == Applied::Restored), "restored"),
            (
                count(|a| *a == Applied::AlreadyAsItWas),
                "already as it was",
            ),
            (
                count(|a| matches!(a, Applied::Superseded(_))),
                "superseded (left alone)",
            ),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        shown.join(", ")
    }
}

/// Applies the pending undos of the ledger at `path`.
pub async fn recover(path: &Path, registry: &Registry, log: &Logger) -> std::io::Result<Report> {
    let ledger = Ledger::open_existing(path)?;
    let pending = ledger.pending()?;
    let mut report = Report::default();
    if pending.is_empty() {
        log.info(&format!(
            "Nothing to recover: no pending undo in {}",
            path.display()
        ));
        return Ok(report);
    }
    log.info(&format!(
        "Recovering {} pending change(s) from {}",
        pending.len(),
        path.display()
    ));
    for entry in pending.iter().rev() {
        let what = entry.undo.description.clone();
        let Some(spec) = registry.undo_fn(&entry.undo.kind) else {
            let why = format!(
                "unknown undo kind `{}` (written by a newer squall?)",
                entry.undo.kind
            );
            log.error(&format!("Cannot {what}: {why}"));
            report.failed.push((what, why));
            continue;
        };
        log.info(&format!("Undo: {what} (from run {})", entry.run_id));
        match (spec.apply)(entry.undo.data.clone()).await {
            Ok(applied) => {
                ledger.mark_done(&entry.id)?;
                log.info(&format!("  => {}", applied.describe()));
                report.applied.push((what, applied));
            }
            Err(why) => {
                log.error(&format!("  => not undone, still pending: {why}"));
                report.failed.push((what, why));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Undo;
    use crate::registry::for_tests;
    use serde_json::json;

    #[tokio::test]
    async fn applies_newest_first_once_and_keeps_failures_pending() {
        let dir = tempfile::tempdir().unwrap();
        let ledger_path = dir.path().join("l.jsonl");
        let file = dir.path().join("state");
        let undo_log = dir.path().join("undo.log");
        std::fs::write(&file, "v2").unwrap();
        let ledger = Ledger::open(&ledger_path).unwrap();
        let restore = |previous: &str| Undo {
            kind: "squall.testing.restore_file".into(),
            data: json!({"path": file, "previous": previous, "undo_log": undo_log}),
            description: format!("restore to {previous}"),
        };
        ledger.record("r", "file", restore("v0")).unwrap();
        ledger.record("r", "file", restore("v1")).unwrap();
        ledger
            .record(
                "r",
                "x",
                Undo {
                    kind: "nope".into(),
                    data: json!({}),
                    description: "mystery".into(),
                },
            )
            .unwrap();
        drop(ledger);
        let log = Logger::capture();
        let report = recover(&ledger_path, for_tests(), &log).await.unwrap();
        let names: Vec<&str> = report.applied.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(names, ["restore to v1", "restore to v0"]);
        assert_eq!(report.breakdown(), "2 restored");
        assert_eq!(report.failed.len(), 1);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "v0");
        let again = recover(&ledger_path, for_tests(), &log).await.unwrap();
        assert!(again.applied.is_empty());
        assert_eq!(again.failed.len(), 1, "the unknown undo stays pending");
        assert_eq!(
            std::fs::read_to_string(&undo_log).unwrap().lines().count(),
            2
        );
    }
}
