//! The undo ledger: an append-only JSON-lines file where a mutating activity
//! writes how to undo its change *before* making it, and where rollback or
//! `squall recover` marks that undo done.
//!
//! Append-only with an fsync per line means a run killed at any instant
//! leaves a ledger that says exactly what is still to undo; a torn last line
//! (killed mid-write) is skipped, which can only lose a record whose change
//! had not started yet.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

pub use squall_activity::{Pending, Undo};

/// One line of the ledger.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Line {
    Record {
        id: String,
        run_id: String,
        at: String,
        /// What was changed (`file:/tmp/x`, `node/worker-1`), so a rollback
        /// can find the undo for the thing it restores.
        target: String,
        undo: Undo,
    },
    Done {
        id: String,
        at: String,
    },
}

/// An open ledger file.
pub struct Ledger {
    path: PathBuf,
    file: Mutex<File>,
    counter: AtomicU64,
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, true)
    }

    /// Opens an existing ledger; a missing file is an error (a mistyped
    /// `--ledger` must not look like "nothing to recover").
    pub fn open_existing(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, create: bool) -> std::io::Result<Self> {
        let mut file = OpenOptions::new().create(create).append(true).open(path)?;
        lock_briefly(&file, path)?;
        // A line torn by a kill must not swallow the next record.
        if !ends_with_newline(path)? {
            file.write_all(b"\n")?;
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
            counter: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Durably records an undo; returns its id. Call before changing anything.
    pub fn record(&self, run_id: &str, target: &str, undo: Undo) -> std::io::Result<String> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let id = format!("{run_id}-{n}");
        self.append(&Line::Record {
            id: id.clone(),
            run_id: run_id.to_owned(),
            at: now(),
            target: target.to_owned(),
            undo,
        })?;
        Ok(id)
    }

    /// Durably marks an undo as applied.
    pub fn mark_done(&self, id: &str) -> std::io::Result<()> {
        self.append(&Line::Done {
            id: id.to_owned(),
            at: now(),
        })
    }

    /// Every pending undo, oldest first.
    pub fn pending(&self) -> std::io::Result<Vec<Pending>> {
        read_pending(&self.path)
    }

    /// Pending undos for one target, oldest first.
    pub fn pending_for(&self, target: &str) -> std::io::Result<Vec<Pending>> {
        Ok(self
            .pending()?
            .into_iter()
            .filter(|p| p.target == target)
            .collect())
    }

    fn append(&self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        text.push('\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("ledger lock poisoned"))?;
        f.write_all(text.as_bytes())?;
        f.sync_data()
    }
}

impl squall_activity::UndoLedger for Ledger {
    fn record(&self, run_id: &str, target: &str, undo: Undo) -> std::io::Result<String> {
        Ledger::record(self, run_id, target, undo)
    }
    fn pending_for(&self, target: &str) -> std::io::Result<Vec<Pending>> {
        Ledger::pending_for(self, target)
    }
    fn mark_done(&self, id: &str) -> std::io::Result<()> {
        Ledger::mark_done(self, id)
    }
    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Reads the pending undos of a ledger file, oldest first. A missing file
/// has none.
pub fn read_pending(path: &Path) -> std::io::Result<Vec<Pending>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut pending: Vec<Pending> = Vec::new();
    for line in BufReader::new(file).lines() {
        let Ok(parsed) = serde_json::from_str::<Line>(&line?) else {
            continue;
        };
        match parsed {
            Line::Record {
                id,
                run_id,
                target,
                undo,
                ..
            } => pending.push(Pending {
                id,
                run_id,
                target,
                undo,
            }),
            Line::Done { id, .. } => pending.retain(|p| p.id != id),
        }
    }
    Ok(pending)
}

/// The default ledger path: next to the journal, `<journal stem>.ledger.jsonl`.
pub fn default_path(journal: &Path) -> PathBuf {
    let stem = journal
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("journal");
    journal.with_file_name(format!("{stem}.ledger.jsonl"))
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// One writer at a time: a recover during a run (or two recovers) could
/// otherwise apply the same undo twice. A lock held for a moment is waited
/// for (a process forking a child can hold it until the child's exec); one
/// still held after two seconds belongs to another squall.
fn lock_briefly(file: &std::fs::File, path: &Path) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::other(format!(
                    "{} is in use by another squall (a run or a recover); wait for it to finish",
                    path.display()
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn undo(n: i64) -> Undo {
        Undo {
            kind: "k".into(),
            data: json!({"n": n}),
            description: format!("undo {n}"),
        }
    }

    #[test]
    fn record_then_done_leaves_nothing_pending() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.jsonl")).unwrap();
        let a = ledger.record("run", "file:/a", undo(1)).unwrap();
        let err = Ledger::open(&dir.path().join("l.jsonl")).err().unwrap();
        assert!(
            err.to_string().contains("in use by another squall"),
            "{err}"
        );
        let b = ledger.record("run", "file:/b", undo(2)).unwrap();
        assert_eq!(ledger.pending().unwrap().len(), 2);
        assert_eq!(ledger.pending_for("file:/b").unwrap()[0].undo, undo(2));
        ledger.mark_done(&a).unwrap();
        let left = ledger.pending().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, b);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        {
            let ledger = Ledger::open(&path).unwrap();
            ledger.record("r1", "t", undo(1)).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"record\",\"id\":\"r1-1\",\"ru")
            .unwrap();
        drop(f);
        assert_eq!(read_pending(&path).unwrap().len(), 1);
        let ledger = Ledger::open(&path).unwrap();
        ledger.record("r2", "t2", undo(2)).unwrap();
        assert_eq!(read_pending(&path).unwrap().len(), 2);
        assert!(
            read_pending(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn default_path_sits_next_to_the_journal() {
        assert_eq!(
            default_path(Path::new("/x/journal.json")),
            PathBuf::from("/x/journal.ledger.jsonl")
        );
        assert_eq!(
            default_path(Path::new("out.json")),
            PathBuf::from("out.ledger.jsonl")
        );
    }
}
