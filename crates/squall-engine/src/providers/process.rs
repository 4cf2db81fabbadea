//! The `process` provider: runs a program with arguments, never through a
//! shell, and returns `{status, stdout, stderr}` as Chaos Toolkit does.
//!
//! A string `arguments` is split the way a POSIX shell would split words,
//! but no shell runs, so nothing in an experiment file can inject commands.
//! The child runs in a process group of its own, and the whole group is
//! ended (SIGTERM, then SIGKILL) if the run is interrupted or the timeout
//! passes; members left behind by a finished child end when squall does
//! ([`super::group`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value, json};
use squall_core::subst::py_str;

use super::capture::Capture;
use super::group::Group;
use crate::registry::{ActivityError, ActivityResult};

/// One process invocation, after substitution.
pub struct ProcessCall<'a> {
    pub path: &'a str,
    pub arguments: &'a Value,
    pub timeout: Option<f64>,
    pub env: &'a Map<String, Value>,
}

/// Runs the process and shapes its result.
pub async fn run(call: ProcessCall<'_>) -> ActivityResult {
    let program = resolve(call.path)
        .ok_or_else(|| ActivityError::failed(format!("path '{}' cannot be found", call.path)))?;
    let args = argv(call.arguments)?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in call.env {
        cmd.env(k, py_str(v));
    }
    let child = cmd.spawn().map_err(|e| {
        ActivityError::failed(format!("failed to start '{}': {e}", program.display()))
    })?;
    let group = child.id().and_then(Group::track);
    let waited = wait_captured(child);
    let output = match call.timeout {
        Some(secs) => {
            let limit = Duration::try_from_secs_f64(secs).map_err(|_| {
                ActivityError::failed(format!(
                    "the process timeout {secs} is not a usable number of seconds"
                ))
            })?;
            tokio::time::timeout(limit, waited)
                .await
                .map_err(|_| ActivityError::failed("process activity took too long to complete"))?
        }
        None => waited.await,
    }
    .map_err(|e| {
        ActivityError::failed(format!("failed to wait for '{}': {e}", program.display()))
    })?;
    // Not reached on timeout or interruption: dropping `group` ends it.
    if let Some(g) = group {
        g.finished();
    }
    let (status, stdout, stderr) = output;
    Ok(json!({
        "status": exit_status(&status),
        "stdout": stdout.text(),
        "stderr": stderr.text(),
    }))
}

/// Waits for the child while reading both pipes into bounded captures.
async fn wait_captured(
    mut child: tokio::process::Child,
) -> std::io::Result<(std::process::ExitStatus, Capture, Capture)> {
    let read = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| async move {
        use tokio::io::AsyncReadExt;
        let mut cap = Capture::new();
        if let Some(mut pipe) = pipe {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match pipe.read(&mut buf).await? {
                    0 => break,
                    n => cap.push(&buf[..n]),
                }
            }
        }
        Ok::<_, std::io::Error>(cap)
    };
    let out = child
        .stdout
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let err = child
        .stderr
        .take()
        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let (stdout, stderr, status) = tokio::try_join!(read(out), read(err), child.wait())?;
    Ok((status, stdout, stderr))
}

/// The exit code, or minus the signal number when killed (as Python reports).
fn exit_status(status: &std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(sig)) => -i64::from(sig),
        (None, None) => -1,
    }
}

/// Finds a program: a path with a `/` (and `~` expanded), or a name on PATH.
pub fn resolve(program: &str) -> Option<PathBuf> {
    let expanded = match program.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(|h| Path::new(&h).join(rest))?,
        None => PathBuf::from(program),
    };
    if program.contains('/') {
        return is_executable(&expanded).then_some(expanded);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Builds argv from a list, a string (split like a shell, without one) or the
/// deprecated mapping form. `null` and `""` items are dropped, as upstream.
pub fn argv(arguments: &Value) -> Result<Vec<String>, ActivityError> {
    let keep = |v: &&Value| !(v.is_null() || v.as_str() == Some(""));
    match arguments {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items.iter().filter(keep).map(py_str).collect()),
        Value::String(s) => shlex::split(s).ok_or_else(|| {
            ActivityError::failed(format!(
                "cannot split the arguments string (unbalanced quotes?): {s}"
            ))
        }),
        Value::Object(map) => Ok(map
            .iter()
            .flat_map(|(k, v)| [Value::String(k.clone()), v.clone()])
            .filter(|v| keep(&v))
            .map(|v| py_str(&v))
            .collect()),
        other => Err(ActivityError::failed(format!(
            "process arguments must be a list or a string, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(
        path: &'a str,
        arguments: &'a Value,
        timeout: Option<f64>,
        env: &'a Map<String, Value>,
    ) -> ProcessCall<'a> {
        ProcessCall {
            path,
            arguments,
            timeout,
            env,
        }
    }

    #[test]
    fn argv_forms() {
        assert_eq!(
            argv(&json!(["a", 1, true, null, "", 1.5])).unwrap(),
            ["a", "1", "True", "1.5"]
        );
        assert_eq!(
            argv(&json!("-c 'echo hi' \"x y\"")).unwrap(),
            ["-c", "echo hi", "x y"]
        );
        assert_eq!(
            argv(&json!({"--flag": null, "-n": 3})).unwrap(),
            ["--flag", "-n", "3"]
        );
        assert!(argv(&json!("'unbalanced")).is_err());
    }

    #[tokio::test]
    async fn captures_status_stdout_stderr_and_env() {
        let env = json!({"GREETING": "hello"}).as_object().unwrap().clone();
        let args = json!(["-c", "echo $GREETING; echo oops >&2; exit 3"]);
        let out = run(call("sh", &args, None, &env)).await.unwrap();
        assert_eq!(
            out,
            json!({"status": 3, "stdout": "hello\n", "stderr": "oops\n"})
        );
    }

    #[tokio::test]
    async fn a_string_is_never_run_through_a_shell() {
        let args = json!("'a; touch /tmp/squall-should-not-exist' $(id)");
        let out = run(call("echo", &args, None, &Map::new())).await.unwrap();
        assert_eq!(
            out["stdout"],
            "a; touch /tmp/squall-should-not-exist $(id)\n"
        );
        assert!(!Path::new("/tmp/squall-should-not-exist").exists());
    }

    #[tokio::test]
    async fn timeout_kills_and_reports() {
        let args = json!(["5"]);
        let started = std::time::Instant::now();
        let err = run(call("sleep", &args, Some(0.2), &Map::new()))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ActivityError::failed("process activity took too long to complete")
        );
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn a_timeout_ends_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("LATE");
        let script = format!("(sleep 1; touch {}) >/dev/null 2>&1 & wait", late.display());
        let args = json!(["-c", script]);
        let err = run(call("sh", &args, Some(0.2), &Map::new()))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ActivityError::failed("process activity took too long to complete")
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !late.exists(),
            "a grandchild outlived its timed-out activity"
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_failure_not_a_crash() {
        let err = run(call(
            "no-such-program-squall",
            &Value::Null,
            None,
            &Map::new(),
        ))
        .await
        .unwrap_err();
        assert!(err.message().contains("cannot be found"));
    }

    #[test]
    fn resolves_on_path_and_by_path() {
        assert!(resolve("sh").is_some());
        assert!(resolve("/bin/sh").is_some());
        assert!(resolve("/no/such").is_none());
    }
}
