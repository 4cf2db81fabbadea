//! The seam between squall and the node's tools. Every external program
//! (iptables-save, iptables-restore, nft, ipvsadm, ip) is started through a
//! [`CommandRunner`] with an argv — never through a shell, so nothing a rule
//! or a Service name contains can be interpreted as shell syntax. The real
//! implementation is [`TokioRunner`]; [`PrefixRunner`] wraps it to run inside
//! another namespace (`ip netns exec NAME …`, `nsenter --net=… …`); and
//! [`FakeRunner`] records calls and replays scripted output for unit tests.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::error::{DataplaneError, Result};

/// A boxed, sendable future; keeps [`CommandRunner`] usable as `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One program invocation: argv plus optional standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program (looked up on `PATH`).
    pub program: String,
    /// Its arguments, passed verbatim.
    pub args: Vec<String>,
    /// Text written to its standard input, which is then closed.
    pub stdin: Option<String>,
}

impl CommandSpec {
    /// A command with arguments and no standard input.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// The same command with `input` fed to its standard input.
    #[must_use]
    pub fn with_stdin(mut self, input: impl Into<String>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Program and arguments as one list.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// Human-readable form for messages and logs (not for execution).
    pub fn display(&self) -> String {
        self.argv().join(" ")
    }
}

/// What a finished program produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when the program was killed by a signal.
    pub code: Option<i32>,
    /// Standard output, lossily decoded as UTF-8.
    pub stdout: String,
    /// Standard error, lossily decoded as UTF-8.
    pub stderr: String,
}

impl CommandOutput {
    /// A successful run that printed `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Self {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A failed run with exit `code` and `stderr`.
    pub fn failed(code: i32, stderr: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// Whether the program exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs external programs. Implementations must not use a shell.
pub trait CommandRunner: Send + Sync {
    /// Run `spec` to completion. A non-zero exit is *not* an error here
    /// (callers such as tool detection need the output either way); use
    /// [`run_checked`] when it should be.
    fn run<'a>(&'a self, spec: &'a CommandSpec) -> BoxFuture<'a, Result<CommandOutput>>;
}

impl<R: CommandRunner + ?Sized> CommandRunner for Arc<R> {
    fn run<'a>(&'a self, spec: &'a CommandSpec) -> BoxFuture<'a, Result<CommandOutput>> {
        (**self).run(spec)
    }
}

impl<R: CommandRunner + ?Sized> CommandRunner for &R {
    fn run<'a>(&'a self, spec: &'a CommandSpec) -> BoxFuture<'a, Result<CommandOutput>> {
        (**self).run(spec)
    }
}

/// Run `spec` and turn a non-zero exit into [`DataplaneError::CommandFailed`].
pub async fn run_checked<R: CommandRunner + ?Sized>(
    runner: &R,
    spec: &CommandSpec,
) -> Result<CommandOutput> {
    let out = runner.run(spec).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(DataplaneError::CommandFailed {
            command: spec.display(),
            code: out.code,
            stderr: out.stderr.trim().to_owned(),
        })
    }
}

/// The real runner: `tokio::process`, with a time limit per command so a
/// wedged tool (e.g. waiting forever on a lock) cannot hang an experiment.
#[derive(Debug, Clone)]
pub struct TokioRunner {
    timeout: Duration,
}

impl Default for TokioRunner {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
        }
    }
}

impl TokioRunner {
    /// A runner that kills any command still running after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self { timeout }
    }

    async fn run_inner(&self, spec: &CommandSpec) -> Result<CommandOutput> {
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(if spec.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the future on timeout must not leave the child behind.
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| DataplaneError::Spawn {
            program: spec.program.clone(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (&spec.stdin, child.stdin.take()) {
            // A tool that exits early closes its end; the exit status then
            // tells the real story, so a broken pipe is not reported here.
            let _ = pipe.write_all(input.as_bytes()).await;
            drop(pipe);
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| DataplaneError::Spawn {
                program: spec.program.clone(),
                source,
            })?;
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl CommandRunner for TokioRunner {
    fn run<'a>(&'a self, spec: &'a CommandSpec) -> BoxFuture<'a, Result<CommandOutput>> {
        Box::pin(async move {
            tracing::debug!(command = %spec.display(), "running");
            match tokio::time::timeout(self.timeout, self.run_inner(spec)).await {
                Ok(result) => result,
                Err(_) => Err(DataplaneError::Timeout {
                    command: spec.display(),
                    seconds: self.timeout.as_secs(),
                }),
            }
        })
    }
}

/// Runs every command behind a fixed argv prefix, e.g.
/// `["ip", "netns", "exec", "lab-node"]` or `["nsenter", "--net=/proc/1/ns/net", "--"]`.
#[derive(Debug, Clone)]
pub struct PrefixRunner<R> {
    prefix: Vec<String>,
    inner: R,
}

impl<R: CommandRunner> PrefixRunner<R> {
    /// Wrap `inner` so every command is started as `prefix… program args…`.
    /// An empty prefix runs commands unchanged.
    pub fn new(prefix: Vec<String>, inner: R) -> Self {
        Self { prefix, inner }
    }

    /// Convenience for `ip netns exec NAME …`.
    pub fn netns(name: &str, inner: R) -> Self {
        Self::new(
            ["ip", "netns", "exec", name].map(String::from).to_vec(),
            inner,
        )
    }

    fn wrap(&self, spec: &CommandSpec) -> CommandSpec {
        match self.prefix.split_first() {
            None => spec.clone(),
            Some((program, rest)) => CommandSpec {
                program: program.clone(),
                args: rest.iter().cloned().chain(spec.argv()).collect(),
                stdin: spec.stdin.clone(),
            },
        }
    }
}

impl<R: CommandRunner> CommandRunner for PrefixRunner<R> {
    fn run<'a>(&'a self, spec: &'a CommandSpec) -> BoxFuture<'a, Result<CommandOutput>> {
        Box::pin(async move {
            let wrapped = self.wrap(spec);
            self.inner.run(&wrapped).await
        })
    }
}

/// A scripted reply of the [`FakeRunner`].
#[derive(Debug, Clone)]
pub enum FakeReply {
    /// The program ran and produced this.
    Output(CommandOutput),
    /// The program is not installed.
    NotFound,
}

/// Test double: records every command and answers from a script. The first
/// rule whose argv prefix matches wins; unmatched commands succeed silently.
#[derive(Debug, Default)]
pub struct FakeRunner {
    rules: Mutex<Vec<(Vec<String>, FakeReply)>>,
    calls: Mutex<Vec<CommandSpec>>,
}

impl FakeRunner {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer commands whose argv starts with `prefix` with `reply`.
    pub fn on(&self, prefix: &[&str], reply: FakeReply) -> &Self {
        let prefix = prefix.iter().map(|s| (*s).to_owned()).collect();
        lock(&self.rules).push((prefix, reply));
        self
    }

    /// Shorthand for a successful reply printing `stdout`.
    pub fn on_ok(&self, prefix: &[&str], stdout: &str) -> &Self {
        self.on(prefix, FakeReply::Output(CommandOutput::ok(stdout)))
    }

    /// Every command run so far, in order.
    pub fn calls(&self) -> Vec<CommandSpec> {
        lock(&self.calls).clone()
    }

    fn reply_for(&self, spec: &CommandSpec) -> FakeReply {
        let argv = spec.argv();
        lock(&self.rules)
            .iter()
            .find(|(prefix, _)| argv.starts_with(prefix))
            .map_or_else(
                || FakeReply::Output(CommandOutput::ok("")),
                |(_, reply)| reply.clone(),
            )
    }
}

/// Lock a mutex, recovering the data if a panicking test poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CommandRunner for FakeRunner {
    fn run<'a>(&'a self, spec: &'a CommandSpec) -> BoxFuture<'a, Result<CommandOutput>> {
        lock(&self.calls).push(spec.clone());
        let reply = self.reply_for(spec);
        Box::pin(async move {
            match reply {
                FakeReply::Output(out) => Ok(out),
                FakeReply::NotFound => Err(DataplaneError::Spawn {
                    program: spec.program.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokio_runner_passes_argv_verbatim_without_a_shell() {
        let runner = TokioRunner::default();
        // A shell would expand `$HOME` and `;`; argv must arrive untouched.
        let spec = CommandSpec::new("printf", ["%s|", "$HOME; echo x"]);
        let out = run_checked(&runner, &spec).await.expect("printf runs");
        assert_eq!(out.stdout, "$HOME; echo x|");
    }

    #[tokio::test]
    async fn tokio_runner_feeds_stdin_and_reports_failure() {
        let runner = TokioRunner::default();
        let spec = CommandSpec::new("cat", Vec::<String>::new()).with_stdin("hello\n");
        assert_eq!(runner.run(&spec).await.expect("cat runs").stdout, "hello\n");
        let fail = CommandSpec::new("false", Vec::<String>::new());
        let err = run_checked(&runner, &fail).await.expect_err("false fails");
        assert!(matches!(
            err,
            DataplaneError::CommandFailed { code: Some(1), .. }
        ));
    }

    #[tokio::test]
    async fn tokio_runner_reports_missing_program_and_timeout() {
        let runner = TokioRunner::with_timeout(Duration::from_millis(200));
        let missing = CommandSpec::new("squall-no-such-tool", Vec::<String>::new());
        let err = runner.run(&missing).await.expect_err("not installed");
        assert!(matches!(err, DataplaneError::Spawn { .. }));
        let slow = CommandSpec::new("sleep", ["5"]);
        let err = runner.run(&slow).await.expect_err("times out");
        assert!(matches!(err, DataplaneError::Timeout { .. }));
    }

    #[tokio::test]
    async fn prefix_runner_prepends_argv() {
        let fake = FakeRunner::new();
        let runner = PrefixRunner::netns("lab-node", &fake);
        let spec = CommandSpec::new("iptables-save", ["-t", "nat"]).with_stdin("x");
        runner.run(&spec).await.expect("fake succeeds");
        let calls = fake.calls();
        assert_eq!(
            calls[0].argv(),
            [
                "ip",
                "netns",
                "exec",
                "lab-node",
                "iptables-save",
                "-t",
                "nat"
            ]
        );
        assert_eq!(calls[0].stdin.as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn runners_are_usable_as_shared_trait_objects() {
        // Providers receive the runner through a context as `Arc<dyn …>`.
        let fake = Arc::new(FakeRunner::new());
        let shared: Arc<dyn CommandRunner> = fake.clone();
        let wrapped = PrefixRunner::new(vec!["nsenter".into(), "--".into()], shared.clone());
        run_checked(&wrapped, &CommandSpec::new("ipvsadm", ["-S", "-n"]))
            .await
            .expect("fake succeeds");
        assert_eq!(
            fake.calls()[0].argv(),
            ["nsenter", "--", "ipvsadm", "-S", "-n"]
        );
    }

    #[tokio::test]
    async fn fake_runner_answers_by_prefix_and_records() {
        let fake = FakeRunner::new();
        fake.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)\n")
            .on(&["nft"], FakeReply::NotFound);
        let out = fake
            .run(&CommandSpec::new("iptables", ["--version"]))
            .await
            .expect("scripted");
        assert!(out.stdout.contains("nf_tables"));
        assert!(fake.run(&CommandSpec::new("nft", ["list"])).await.is_err());
        let other = fake
            .run(&CommandSpec::new("true", ["x"]))
            .await
            .expect("default");
        assert!(other.success());
        assert_eq!(fake.calls().len(), 3);
    }
}
