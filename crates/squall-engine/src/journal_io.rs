//! Writing the journal: built in the upstream layout and replaced
//! atomically (temporary file + rename in the same directory), so a reader
//! never sees half a journal, even if squall is killed mid-write.

use std::path::Path;

use serde_json::Value;
use squall_core::journal::{Journal, SquallInfo, SteadyStates, timestamp};

/// A journal write failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the journal {path}: {source}")]
pub struct JournalError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// The current time in the journal's timestamp format.
pub fn now_stamp() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    timestamp(micros)
}

/// A journal for a run that is starting now. The experiment copy carries the
/// substituted title and the dry mode, as upstream's does.
pub fn new_journal(raw: Value, title: &str, dry: Option<&str>, squall: SquallInfo) -> Journal {
    let mut experiment = raw;
    if let Some(map) = experiment.as_object_mut() {
        map.insert("title".into(), Value::String(title.into()));
        map.insert(
            "dry".into(),
            dry.map_or(Value::Null, |d| Value::String(d.into())),
        );
    }
    Journal {
        chaoslib_version: "1.45.0".into(),
        platform: platform(),
        node: hostname(),
        experiment,
        start: now_stamp(),
        status: None,
        deviated: false,
        steady_states: SteadyStates::default(),
        run: Vec::new(),
        rollbacks: Vec::new(),
        end: None,
        duration: None,
        squall,
    }
}

/// Atomically replaces the journal file.
pub fn write(path: &Path, journal: &Journal) -> Result<(), JournalError> {
    let err = |source| JournalError {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let text = serde_json::to_string_pretty(journal).map_err(|e| err(std::io::Error::other(e)))?;
    // Borrowed (no copy) unless something had to be masked.
    let text = crate::redact::global().redact(&text);
    // One temporary file per journal, always the same name: a run killed
    // mid-write leaves at most this one file, and the next write reuses it.
    let name = path
        .file_name()
        .map_or_else(|| "journal".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

fn platform() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{}-{}-{}",
        std::env::consts::OS,
        release.trim(),
        std::env::consts::ARCH
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_upstream_keys_in_order_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        let raw = serde_json::json!({"title": "${t}", "description": "d", "x-unknown": 1});
        let mut j = new_journal(raw, "T", Some("actions"), SquallInfo::default());
        write(&path, &j).unwrap();
        j.status = Some("completed".into());
        write(&path, &j).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "chaoslib-version",
                "platform",
                "node",
                "experiment",
                "start",
                "status",
                "deviated",
                "steady_states",
                "run",
                "rollbacks",
                "end",
                "duration",
                "squall"
            ]
        );
        assert_eq!(v["experiment"]["title"], "T");
        assert_eq!(v["experiment"]["dry"], "actions");
        assert_eq!(v["experiment"]["x-unknown"], 1);
        assert_eq!(v["status"], "completed");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary files left behind"
        );
    }
}
