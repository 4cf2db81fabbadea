//! `squall.testing.*`: a small mutating provider that works on local files,
//! used to prove the safety machinery (undo before harm, rollback, `squall
//! recover`) end to end without a cluster. It follows the same contract as
//! every cluster provider: record the undo, then change, and let rollback or
//! recovery restore exactly what was there.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use squall_activity::describe::{optional, required};
use squall_core::catalog::{ActivitySpec, ArgType, Kind};

use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, Applied, BoxFuture, Registered, Undo, UndoSpec,
};

const UNDO_KIND: &str = "squall.testing.restore_file";

/// The engine's own native module.
pub static PROVIDER: squall_activity::Provider = squall_activity::Provider {
    name: "testing",
    activities: &[WRITE_FILE, RESTORE_FILE],
    undos: &[UNDO_RESTORE_FILE],
};

pub const WRITE_FILE: Registered = Registered {
    spec: ActivitySpec {
        module: "squall.testing.actions",
        func: "write_file",
        kind: Kind::Action,
        doc: "Overwrite a local file, first recording its previous content in the undo ledger. \
              For testing rollbacks and `squall recover` without a cluster.",
        args: &[
            required("path", ArgType::String, "The file to overwrite."),
            optional("content", ArgType::String, "\"\"", "The new content."),
            optional(
                "undo_log",
                ArgType::String,
                "null",
                "A file to which every application of the undo appends one line, so tests can count them.",
            ),
        ],
        returns: "mapping",
        mutating: true,
    },
    run: write_file,
    permissions: &[],
};

pub const RESTORE_FILE: Registered = Registered {
    spec: ActivitySpec {
        module: "squall.testing.actions",
        func: "restore_file",
        kind: Kind::Action,
        doc: "Restore a file changed by write_file to what it was before the first change, using the undo \
              ledger, and mark those undos done. Restoring twice changes nothing.",
        args: &[required("path", ArgType::String, "The file to restore.")],
        returns: "mapping",
        mutating: false,
    },
    run: restore_file,
    permissions: &[],
};

pub const UNDO_RESTORE_FILE: UndoSpec = UndoSpec {
    kind: UNDO_KIND,
    doc: "Put a file back to its recorded content (or remove it if it did not exist).",
    apply: apply_restore,
    permissions: &[],
};

fn target(path: &str) -> String {
    format!("file:{path}")
}

fn write_file(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let path = absolute(args.get("path"))?;
        let content = args
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if ctx.dry {
            let change = format!("write {} bytes to {path}", content.len());
            return ctx.plan(std::slice::from_ref(&path), &[change]);
        }
        let previous = match tokio::fs::read_to_string(&path).await {
            Ok(text) => Value::String(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(e) => return Err(ActivityError::failed(format!("cannot read {path}: {e}"))),
        };
        let undo_log = match args.get("undo_log") {
            Some(v @ Value::String(_)) => Value::String(absolute(Some(v))?),
            _ => Value::Null,
        };
        let undo = Undo {
            kind: UNDO_KIND.into(),
            data: json!({"path": path, "previous": previous, "undo_log": undo_log}),
            description: format!("restore {path}"),
        };
        ctx.record_undo(&target(&path), undo)?;
        tokio::fs::write(&path, &content)
            .await
            .map_err(|e| ActivityError::failed(format!("cannot write {path}: {e}")))?;
        Ok(json!({"path": path, "previous_existed": !previous.is_null()}))
    })
}

fn restore_file(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let path = absolute(args.get("path"))?;
        let pending = ctx.pending_for(&target(&path))?;
        // The oldest record holds the state before the first change.
        if let Some(first) = pending.first() {
            apply_restore(first.undo.data.clone())
                .await
                .map_err(ActivityError::Failed)?;
        }
        for p in &pending {
            ctx.mark_done(&p.id)?;
        }
        Ok(json!({"path": path, "restored": !pending.is_empty()}))
    })
}

fn apply_restore(data: Value) -> BoxFuture<Result<Applied, String>> {
    Box::pin(async move {
        let path = data
            .get("path")
            .and_then(Value::as_str)
            .ok_or("undo data has no path")?
            .to_owned();
        // Written by a squall that recorded paths as given: which directory
        // it meant is unknown here, so refuse rather than write elsewhere.
        if !Path::new(&path).is_absolute() {
            return Err(format!(
                "refused: the undo names the relative path {path} (recorded by an older \
                 squall) and the run's directory is unknown; restore it by hand"
            ));
        }
        let now = tokio::fs::read_to_string(&path).await.ok();
        let previous = data.get("previous").and_then(Value::as_str);
        if now.as_deref() == previous {
            return Ok(Applied::AlreadyAsItWas);
        }
        match data.get("previous") {
            Some(Value::String(text)) => tokio::fs::write(&path, text)
                .await
                .map_err(|e| format!("cannot restore {path}: {e}"))?,
            _ => match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {path}: {e}")),
            },
        }
        if let Some(log) = data.get("undo_log").and_then(Value::as_str) {
            append_line(log, &format!("restored {path}"))
                .map_err(|e| format!("cannot append to {log}: {e}"))?;
        }
        Ok(Applied::Restored)
    })
}

/// A path argument made absolute against the current directory now, so
/// the undo means the same file wherever `squall recover` runs.
fn absolute(v: Option<&Value>) -> Result<String, ActivityError> {
    let given = v.and_then(Value::as_str).unwrap_or_default();
    std::path::absolute(given)
        .map(|p| p.display().to_string())
        .map_err(|e| ActivityError::failed(format!("cannot resolve the path '{given}': {e}")))
}

fn append_line(path: &str, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::providers::test_ctx as ctx;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn write_records_undo_first_and_restore_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.txt");
        let f = file.to_str().unwrap();
        std::fs::write(&file, "original").unwrap();
        let c = ctx(dir.path());
        write_file(c.clone(), args(json!({"path": f, "content": "broken"})))
            .await
            .unwrap();
        write_file(c.clone(), args(json!({"path": f, "content": "worse"})))
            .await
            .unwrap();
        assert_eq!(c.pending_for(&target(f)).unwrap().len(), 2);
        let out = restore_file(c.clone(), args(json!({"path": f})))
            .await
            .unwrap();
        assert_eq!(out["restored"], true);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "original");
        assert!(c.pending_for(&target(f)).unwrap().is_empty());
        let again = restore_file(c.clone(), args(json!({"path": f})))
            .await
            .unwrap();
        assert_eq!(again["restored"], false);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "original");
    }

    #[tokio::test]
    async fn dry_run_plans_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.conf");
        let mut ctx = Arc::into_inner(crate::providers::test_ctx(dir.path())).unwrap();
        ctx.dry = true;
        let out = write_file(
            Arc::new(ctx),
            args(json!({"path": file.to_str().unwrap(), "content": "broken"})),
        )
        .await
        .unwrap();
        assert_eq!(out["dry"], true);
        assert_eq!(
            out["changes"][0],
            format!("write 6 bytes to {}", file.display())
        );
        assert!(!file.exists(), "a dry run wrote the file");
        let ledger = std::fs::read_to_string(dir.path().join("l.jsonl")).unwrap_or_default();
        assert!(ledger.is_empty(), "a dry run recorded an undo: {ledger}");
    }

    #[tokio::test]
    async fn restoring_a_file_that_did_not_exist_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new.txt");
        let c = ctx(dir.path());
        write_file(
            c.clone(),
            args(json!({"path": file.to_str().unwrap(), "content": "x"})),
        )
        .await
        .unwrap();
        assert!(file.exists());
        restore_file(c, args(json!({"path": file.to_str().unwrap()})))
            .await
            .unwrap();
        assert!(!file.exists());
    }
}
