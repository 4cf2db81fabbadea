//! Running one activity: pauses, the provider call, the journal record and
//! the upstream log lines (`Action: <name>`, `  => failed: <message>`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use squall_core::catalog::Kind;
use squall_core::journal::Record;
use squall_core::model::{Activity, Provider, pause_seconds};
use squall_core::subst::{Chain, py_str, substitute};
use tokio_util::sync::CancellationToken;

use super::{Dry, Shared, now_stamp};
use crate::providers::{http, process};
use crate::registry::{self, ActivityError, ActivityResult};
use squall_activity::ActivityCtx;

/// How an activity ended, beyond its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Succeeded,
    Failed,
    /// squall could not carry on: the method is aborted.
    Fatal(String),
    /// A signal stopped it; its record has no status.
    Interrupted,
}

/// A finished activity.
pub(crate) struct Executed {
    pub record: Record,
    pub ended: Ended,
}

impl Shared {
    /// The substitution lookup: configuration, then each secret scope.
    pub(crate) fn lookup(&self) -> Chain<'_> {
        let mut maps = vec![&self.configuration];
        maps.extend(self.secrets.values().filter_map(Value::as_object));
        Chain(maps)
    }

    fn is_dry(&self, kind: Kind) -> bool {
        match self.dry {
            Some(Dry::Activities) => true,
            Some(Dry::Probes) => kind == Kind::Probe,
            Some(Dry::Actions) => kind == Kind::Action,
            Some(Dry::Pause) | None => false,
        }
    }
}

/// Runs one activity with its pauses; `cancel` interrupts it.
pub(crate) async fn execute(
    sh: &Arc<Shared>,
    a: &Activity,
    cancel: &CancellationToken,
) -> Executed {
    let dry = sh.is_dry(a.kind);
    if let Some(stopped) = before(sh, a, cancel, dry).await {
        return stopped;
    }
    let label = if a.kind == Kind::Action {
        "Action"
    } else {
        "Probe"
    };
    let suffix = if a.background { " [in background]" } else { "" };
    sh.log.info(&format!("{label}: {}{suffix}", a.name));
    let start = now_stamp();
    let clock = tokio::time::Instant::now();
    let result = if dry && plans_when_dry(sh, a) {
        sh.log
            .debug(&format!("Activity {} is in dry mode: planning", a.name));
        tokio::select! {
            r = caught(call_planned(sh, a)) => Some(r),
            () = cancel.cancelled() => None,
        }
    } else if dry {
        sh.log.debug(&format!("Activity {} is in dry mode", a.name));
        Some(Ok(Value::Null))
    } else {
        tokio::select! {
            r = call_provider(sh, a, None) => Some(r),
            () = cancel.cancelled() => None,
        }
    };
    let duration = clock.elapsed().as_secs_f64();
    let mut rec = record(a, Value::Null, start, now_stamp(), duration);
    let ended = settle(sh, a, &mut rec, result);
    if a.kind == Kind::Action {
        sh.events.action_ended(unix_ms());
    }
    if ended == Ended::Interrupted {
        return Executed { record: rec, ended };
    }
    match pause(sh, "after", a.pauses.after.as_ref(), cancel, dry).await {
        Paused::Done => Executed { record: rec, ended },
        Paused::Cancelled => Executed {
            record: rec,
            ended: Ended::Interrupted,
        },
        // The activity ran; its pause is broken: the run must still see a
        // failure (and roll back), so the record says so.
        Paused::Invalid(msg) => {
            sh.log.error(&format!("  => failed: {msg}"));
            rec.status = Some("failed".into());
            rec.exception = Some(vec![format!("ActivityFailed: {msg}\n")]);
            let ended = if matches!(ended, Ended::Fatal(_)) {
                ended
            } else {
                Ended::Failed
            };
            Executed { record: rec, ended }
        }
    }
}

/// The pause before the activity; `Some` when the activity must not run
/// (interrupted, or the pause is invalid and the activity fails).
async fn before(
    sh: &Shared,
    a: &Activity,
    cancel: &CancellationToken,
    dry: bool,
) -> Option<Executed> {
    let stopped = |status: &str| {
        let stamp = now_stamp();
        let mut rec = record(a, Value::Null, stamp.clone(), stamp, 0.0);
        rec.status = Some(status.into());
        rec
    };
    match pause(sh, "before", a.pauses.before.as_ref(), cancel, dry).await {
        Paused::Done => None,
        Paused::Cancelled => Some(Executed {
            record: stopped("interrupted"),
            ended: Ended::Interrupted,
        }),
        Paused::Invalid(msg) => {
            let mut rec = stopped("failed");
            let ended = settle(sh, a, &mut rec, Some(Err(ActivityError::Failed(msg))));
            Some(Executed { record: rec, ended })
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn record(a: &Activity, output: Value, start: String, end: String, duration: f64) -> Record {
    Record {
        activity: a.raw.clone(),
        output,
        start,
        status: None,
        exception: None,
        end,
        duration,
        tolerance_met: None,
    }
}

/// Fills the record from the provider's result and logs failures.
fn settle(sh: &Shared, a: &Activity, rec: &mut Record, result: Option<ActivityResult>) -> Ended {
    match result {
        None => {
            sh.log
                .warning(&format!("Activity {} was interrupted", a.name));
            rec.status = Some("interrupted".into());
            Ended::Interrupted
        }
        Some(Ok(output)) => {
            warn_on_error_status(sh, a, &output);
            sh.log.debug(&format!("  => succeeded with '{}'", output));
            rec.output = output;
            rec.status = Some("succeeded".into());
            Ended::Succeeded
        }
        Some(Err(err)) => {
            sh.log.error(&format!("  => failed: {}", err.message()));
            rec.status = Some("failed".into());
            rec.exception = Some(vec![format!("ActivityFailed: {}\n", err.message())]);
            match err {
                ActivityError::Failed(_) => Ended::Failed,
                ActivityError::Fatal(m) => Ended::Fatal(m),
            }
        }
    }
}

/// Upstream's hints when a result looks like an error and no tolerance
/// judges it.
fn warn_on_error_status(sh: &Shared, a: &Activity, output: &Value) {
    if a.has_tolerance {
        return;
    }
    let status = output.get("status").and_then(Value::as_i64).unwrap_or(0);
    match &a.provider {
        Provider::Process { .. } if status > 0 => sh.log.warning(
            "This process returned a non-zero exit code. This may indicate some error and not what you expected. Please have a look at the logs.",
        ),
        Provider::Http { .. } if status > 399 => sh.log.warning(
            "This HTTP call returned a response with a HTTP status code above 400. This may indicate some error and not what you expected. Please have a look at the logs.",
        ),
        _ => {}
    }
}

/// Calls the activity's provider. `value` is the output being judged when
/// the activity is a probe tolerance. A panic inside the provider (a bug,
/// never the input's fault) is caught and becomes this activity's failure,
/// so the run still reaches its rollbacks.
pub(crate) async fn call_provider(
    sh: &Arc<Shared>,
    a: &Activity,
    value: Option<Value>,
) -> ActivityResult {
    let call = async {
        match &a.provider {
            Provider::Process { .. } => call_process(sh, &a.provider, value).await,
            Provider::Http { .. } => call_http(sh, &a.provider, value).await,
            Provider::Native {
                module,
                func,
                arguments,
                secrets,
            } => call_native(sh, module, func, arguments, secrets, value, false).await,
        }
    };
    caught(call).await
}

/// Runs `fut`, turning a panic into an activity failure with its message.
pub(crate) async fn caught(
    fut: impl std::future::Future<Output = ActivityResult>,
) -> ActivityResult {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(ActivityError::Failed(format!(
                "squall hit a bug in this activity and stopped it (panic: {msg})"
            )))
        }
    }
}

/// Whether `--dry` still calls the activity, in plan mode: squall's native
/// mutating actions resolve their targets and say what they would change.
fn plans_when_dry(sh: &Shared, a: &Activity) -> bool {
    match &a.provider {
        Provider::Native { module, func, .. } => {
            a.kind == Kind::Action
                && sh
                    .registry
                    .find(module, func)
                    .is_some_and(|r| r.spec.mutating)
        }
        _ => false,
    }
}

/// A native action called with `ActivityCtx::dry` set.
async fn call_planned(sh: &Arc<Shared>, a: &Activity) -> ActivityResult {
    let Provider::Native {
        module,
        func,
        arguments,
        secrets,
    } = &a.provider
    else {
        return Err(ActivityError::Fatal("only native actions plan".into()));
    };
    call_native(sh, module, func, arguments, secrets, None, true).await
}

async fn call_process(sh: &Shared, provider: &Provider, value: Option<Value>) -> ActivityResult {
    let Provider::Process {
        path,
        arguments,
        timeout,
        env: env_decl,
    } = provider
    else {
        return Err(ActivityError::Fatal("not a process provider".into()));
    };
    let lookup = sh.lookup();
    let args = substitute(arguments, &lookup);
    let path = py_str(&substitute(&Value::String(path.clone()), &lookup));
    // `.env` var-file values first, so the activity's own `env` wins.
    let mut env: Map<String, Value> = sh
        .child_env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Value::Object(own) = substitute(&Value::Object(env_decl.clone()), &lookup) {
        env.extend(own);
    }
    if let Some(v) = value {
        env.insert(
            "SQUALL_TOLERANCE_VALUE".into(),
            Value::String(v.to_string()),
        );
    }
    process::run(process::ProcessCall {
        path: &path,
        arguments: &args,
        timeout: *timeout,
        env: &env,
    })
    .await
}

/// Said once per run: an HTTP activity without `timeout` gets
/// [`http::DEFAULT_TIMEOUT`] instead of waiting forever, as upstream would.
fn warn_default_timeout(sh: &Shared) {
    use std::sync::atomic::Ordering;
    if !sh.warned_http_timeout.swap(true, Ordering::Relaxed) {
        sh.log.warning(&format!(
            "An HTTP activity sets no timeout; squall gives it {} s (set `timeout` to change it)",
            http::DEFAULT_TIMEOUT.as_secs()
        ));
    }
}

async fn call_http(sh: &Shared, provider: &Provider, value: Option<Value>) -> ActivityResult {
    let Provider::Http {
        url,
        method,
        headers,
        arguments,
        timeout,
        verify_tls,
    } = provider
    else {
        return Err(ActivityError::Fatal("not an http provider".into()));
    };
    let lookup = sh.lookup();
    let url = py_str(&substitute(&Value::String(url.clone()), &lookup));
    let headers = substitute(&Value::Object(headers.clone()), &lookup);
    let mut args = arguments.as_ref().map(|a| substitute(a, &lookup));
    if let Some(v) = value {
        let mut m = args
            .and_then(|a| a.as_object().cloned())
            .unwrap_or_default();
        m.insert("value".into(), v);
        args = Some(Value::Object(m));
    }
    let timeout = timeout.as_ref().map(|t| substitute(t, &lookup));
    if timeout.as_ref().is_none_or(Value::is_null) {
        warn_default_timeout(sh);
    }
    let empty = Map::new();
    let call = http::HttpCall {
        url: &url,
        method,
        headers: headers.as_object().unwrap_or(&empty),
        arguments: args.as_ref(),
        timeout: timeout.as_ref(),
        verify_tls: *verify_tls,
    };
    http::run(call).await
}

async fn call_native(
    sh: &Arc<Shared>,
    module: &str,
    func: &str,
    arguments: &Map<String, Value>,
    scopes: &[String],
    value: Option<Value>,
    dry: bool,
) -> ActivityResult {
    let reg = sh
        .registry
        .find(module, func)
        .ok_or_else(|| ActivityError::Fatal(format!("unknown activity `{module}.{func}`")))?;
    let args = match substitute(&Value::Object(arguments.clone()), &sh.lookup()) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // Values that arrived through `${...}` meet the rule literals met at
    // validation.
    for arg in reg.spec.args {
        if let Some(v) = args.get(arg.name) {
            arg.check(v).map_err(ActivityError::Failed)?;
        }
    }
    let mut args = registry::with_defaults(&reg.spec, args);
    if let Some(v) = value {
        args.insert("value".into(), v);
    }
    let ctx = Arc::new(ActivityCtx {
        configuration: sh.configuration.clone(),
        secrets: merged_scopes(&sh.secrets, scopes),
        ledger: sh.ledger.clone(),
        run_id: sh.run_id.clone(),
        log: sh.log.clone(),
        limits: sh.limits,
        events: sh.events.clone(),
        services: sh.services.clone(),
        dry,
    });
    (reg.run)(ctx, args).await
}

/// The named secret scopes merged into one mapping, later scopes winning.
fn merged_scopes(secrets: &Map<String, Value>, scopes: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for s in scopes {
        if let Some(m) = secrets.get(s).and_then(Value::as_object) {
            out.extend(m.clone());
        }
    }
    out
}

/// Sleeps a pause with a countdown on a terminal. Returns true when a signal
/// cut it short.
/// How a pause ended.
enum Paused {
    /// Slept (or skipped: none, zero, dry).
    Done,
    Cancelled,
    /// The value broke the pause rule; the activity fails with this.
    Invalid(String),
}

async fn pause(
    sh: &Shared,
    which: &str,
    v: Option<&Value>,
    cancel: &CancellationToken,
    activity_dry: bool,
) -> Paused {
    let Some(v) = v else { return Paused::Done };
    let value = substitute(v, &sh.lookup());
    // The rule validation applied to literals and to values known before
    // the run; here it catches what only the run could know.
    let secs = match pause_seconds(which, &value) {
        Ok(s) => s,
        Err(msg) => return Paused::Invalid(msg),
    };
    if secs == 0.0 {
        return Paused::Done;
    }
    let text = if which == "before" {
        "Pausing before next activity for"
    } else {
        "Pausing after activity for"
    };
    sh.log.info(&format!("{text} {}s...", py_str(&value)));
    if activity_dry || sh.dry == Some(Dry::Pause) {
        return Paused::Done;
    }
    // At most a year (pause_seconds), so the deadline cannot overflow.
    let total = Duration::from_secs_f64(secs);
    if sleep_with_countdown(sh, total, cancel).await {
        Paused::Cancelled
    } else {
        Paused::Done
    }
}

/// Sleeps `total`, redrawing the remaining seconds once a second on a
/// terminal. Returns true when cancelled.
pub(crate) async fn sleep_with_countdown(
    sh: &Shared,
    total: Duration,
    cancel: &CancellationToken,
) -> bool {
    let deadline = tokio::time::Instant::now() + total;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            sh.log.countdown_done();
            return false;
        }
        sh.log.countdown(left.as_secs_f64().ceil() as u64);
        let step = left.min(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = cancel.cancelled() => {
                sh.log.countdown_done();
                return true;
            }
        }
    }
}
