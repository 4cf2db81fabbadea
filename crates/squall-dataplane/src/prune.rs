//! Keeping a node's data-plane state directory (`/var/lib/squall/dataplane`
//! for helper pods) from filling up under repeated scheduled runs. Every
//! flush leaves a snapshot (`<name>.snapshot.json`), the rules as flushed
//! (`<name>.snapshot.after.json`) and a node ledger (`<name>.ledger.jsonl`);
//! once their undo is done they are only history. [`prune_state_dir`] keeps
//! the newest `keep` snapshots and ledgers, drops those older than
//! `max_age`, and never touches a file the caller marks protected (a
//! snapshot or ledger whose undo is still pending: that is the only way
//! back for the node's rules). Only files named by these patterns are
//! considered, so a snapshot saved by hand under another name is never
//! removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Result;
use crate::snapshot::io_err;

/// How a snapshot file is named (what pruning considers).
pub const SNAPSHOT_SUFFIX: &str = ".snapshot.json";
/// The rules as flushed, beside their snapshot ([`crate::flush::after_path`]).
pub const AFTER_SUFFIX: &str = ".snapshot.after.json";
/// A node ledger.
pub const LEDGER_SUFFIX: &str = ".ledger.jsonl";

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Keep at most this many snapshots (and as many ledgers), newest first.
    pub keep: usize,
    /// Remove finished snapshots and ledgers older than this.
    pub max_age: Option<Duration>,
}

impl Default for PrunePolicy {
    /// Ten snapshots, a week.
    fn default() -> Self {
        Self {
            keep: 10,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// What [`prune_state_dir`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Every file removed.
    pub removed: Vec<PathBuf>,
}

struct Entry {
    path: PathBuf,
    modified: SystemTime,
}

/// Prune `dir` by `policy`. `protected` holds paths (as recorded in the
/// ledgers: absolute or relative to the working directory) that must stay
/// whatever their age. A missing directory has nothing to prune.
pub fn prune_state_dir(
    dir: &Path,
    policy: &PrunePolicy,
    protected: &BTreeSet<PathBuf>,
    now: SystemTime,
) -> Result<PruneReport> {
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PruneReport::default()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    let (mut snapshots, mut ledgers, mut afters) = (Vec::new(), Vec::new(), Vec::new());
    for item in listing.flatten() {
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        let modified = item
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let entry = Entry { path, modified };
        if name.ends_with(AFTER_SUFFIX) {
            afters.push(entry);
        } else if name.ends_with(SNAPSHOT_SUFFIX) {
            snapshots.push(entry);
        } else if name.ends_with(LEDGER_SUFFIX) {
            ledgers.push(entry);
        }
    }
    let protected = normalise(protected);
    let mut report = PruneReport::default();
    for old in doomed(&mut snapshots, policy, &protected, now) {
        remove(&old, &mut report)?;
        remove(&crate::flush::after_path(&old), &mut report)?;
    }
    for old in doomed(&mut ledgers, policy, &protected, now) {
        remove(&old, &mut report)?;
    }
    // An after-state whose snapshot is gone is useless on its own.
    for after in afters {
        let name = after.path.to_string_lossy();
        let snapshot = PathBuf::from(format!(
            "{}{SNAPSHOT_SUFFIX}",
            name.trim_end_matches(AFTER_SUFFIX)
        ));
        if !snapshot.exists() && !report.removed.contains(&after.path) {
            remove(&after.path, &mut report)?;
        }
    }
    Ok(report)
}

/// The entries to remove: beyond the newest `keep` (protected ones use up
/// the budget first and are never removed, so at most `max(keep,
/// protected)` stay) or older than `max_age`.
fn doomed(
    entries: &mut [Entry],
    policy: &PrunePolicy,
    protected: &BTreeSet<PathBuf>,
    now: SystemTime,
) -> Vec<PathBuf> {
    entries.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.path.cmp(&a.path)));
    let (kept, free): (Vec<&Entry>, Vec<&Entry>) = entries
        .iter()
        .partition(|e| protected.contains(&canonical(&e.path)));
    let budget = policy.keep.saturating_sub(kept.len());
    free.into_iter()
        .enumerate()
        .filter(|(i, e)| {
            let too_many = *i >= budget;
            let too_old = policy
                .max_age
                .is_some_and(|age| now.duration_since(e.modified).unwrap_or_default() > age);
            too_many || too_old
        })
        .map(|(_, e)| e.path.clone())
        .collect()
}

fn normalise(paths: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    paths.iter().map(|p| canonical(p)).collect()
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn remove(path: &Path, report: &mut PruneReport) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "pruned data-plane state");
            report.removed.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str, age_secs: u64) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "{}").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        path
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keeps_the_newest_and_the_protected_and_drops_the_rest_with_their_after_state() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (i, age) in [10, 20, 30, 40].iter().enumerate() {
            touch(d, &format!("p{i}.snapshot.json"), *age);
            touch(d, &format!("p{i}.snapshot.after.json"), *age);
            touch(d, &format!("p{i}.ledger.jsonl"), *age);
        }
        let pending: BTreeSet<PathBuf> =
            [d.join("p3.snapshot.json"), d.join("p3.ledger.jsonl")].into();
        let policy = PrunePolicy {
            keep: 2,
            max_age: None,
        };
        let report = prune_state_dir(d, &policy, &pending, SystemTime::now()).unwrap();
        assert_eq!(report.removed.len(), 6, "{report:?}");
        assert_eq!(
            names(d),
            [
                "p0.ledger.jsonl",
                "p0.snapshot.after.json",
                "p0.snapshot.json",
                "p3.ledger.jsonl",
                "p3.snapshot.after.json",
                "p3.snapshot.json",
            ],
            "p3 is pending, so kept however old, and uses one of the two places"
        );
    }

    #[test]
    fn drops_by_age_ignores_foreign_files_and_orphaned_after_states() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, "new.snapshot.json", 5);
        touch(d, "old.snapshot.json", 3600);
        touch(d, "old.ledger.jsonl", 3600);
        touch(d, "gone.snapshot.after.json", 1);
        touch(d, "by-hand.json", 99_999);
        let policy = PrunePolicy {
            keep: 10,
            max_age: Some(Duration::from_secs(60)),
        };
        prune_state_dir(d, &policy, &BTreeSet::new(), SystemTime::now()).unwrap();
        assert_eq!(names(d), ["by-hand.json", "new.snapshot.json"]);
        let missing = d.join("nope");
        assert!(
            prune_state_dir(&missing, &policy, &BTreeSet::new(), SystemTime::now())
                .unwrap()
                .removed
                .is_empty()
        );
    }
}
