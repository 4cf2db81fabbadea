//! `squall.http.probes.availability`: a background availability monitor.
//! It sends one GET per interval to a URL for the whole method (or a fixed
//! duration) and reports how much of that window the service answered,
//! every outage with its start, end and length, and how long the service
//! took to recover after the last action. It replaces the "curl once a
//! second" loop people run beside an experiment, at a finer grain: a
//! kube-proxy rule flush that drops a node's traffic for 27–30 s shows up
//! as one outage measured to within one interval.
//!
//! Scheduling is fixed-rate on the tokio clock: sample `k` is due at
//! `start + k × interval` whatever earlier requests did, and counts as ok
//! only when an acceptable status arrives by its due time plus
//! `timeout_ms`. Requests overlap rather than queue behind a slow one, so
//! a slow-but-working service is not reported as down; since every request
//! is cut off at its deadline, at most `ceil(timeout / interval) + 1` are
//! in flight, and argument checking refuses settings that would allow more
//! than [`MAX_IN_FLIGHT`]. Every request opens a new connection, as the
//! curl loop did: a kept-alive connection keeps its conntrack entry and can
//! go on working while new connections are dropped, hiding the outage.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, ready};
use futures::stream::FuturesOrdered;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use squall_activity::describe::{optional, required};
use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, BoxFuture, Registered, RunEvents,
};
use squall_core::catalog::{ActivitySpec, ArgType, Kind};
use squall_core::journal::timestamp;
use squall_core::subst::py_str;
use tokio::time::{Instant, sleep_until, timeout_at};

pub const AVAILABILITY: Registered = Registered {
    spec: ActivitySpec {
        module: "squall.http.probes",
        func: "availability",
        kind: Kind::Probe,
        doc: "Monitor a URL's availability: one GET every interval_ms (fixed rate, a new connection \
              each time) until the method ends (run it with `background: true`) or for \
              duration_secs. Returns {requests, failures, availability (percent), outages \
              [{start, end, duration_ms, ongoing}], longest_outage_ms, time_to_recovery_ms (from \
              the end of the last action to the end of the last outage after it, or null), \
              interval_ms, started, ended, timeline [[offset_ms, count, \"ok\"|\"fail\"], ...], \
              failure_reasons {kind: {count, first}}, truncated}. An outage runs from the due \
              time of its first failed sample to the due time of the next successful one.",
        args: &[
            required(
                "url",
                ArgType::String,
                "The http:// or https:// URL to GET.",
            ),
            optional("headers", ArgType::Mapping, "{}", "Request headers."),
            optional(
                "interval_ms",
                ArgType::Integer,
                "100",
                "Milliseconds between the due times of two requests (10 to 3600000).",
            )
            .within(MIN_INTERVAL_MS as f64, MAX_INTERVAL_MS as f64),
            optional(
                "timeout_ms",
                ArgType::Integer,
                "1000",
                "A request with no acceptable answer this many milliseconds after its due \
                      time is a failure. timeout_ms / interval_ms may be at most 99.",
            )
            .within(1.0, MAX_TIMEOUT_MS as f64),
            optional(
                "duration_secs",
                ArgType::Number,
                "null",
                "How long to monitor; null: until the method ends (at least one request).",
            )
            .within(0.001, MAX_DURATION_SECS),
            optional(
                "expect_status",
                ArgType::List,
                "[\"200-399\"]",
                "Statuses that count as available: integers (503), inclusive ranges as \
                      strings (\"200-399\") or classes (\"2xx\"). The default accepts any final \
                      status below 400. Redirects are not followed.",
            ),
            optional(
                "verify_tls",
                ArgType::Boolean,
                "true",
                "Whether to verify the server's TLS certificate.",
            ),
        ],
        returns: "mapping",
        mutating: false,
    },
    run: availability,
    permissions: &[],
};

/// Settings that would keep more requests than this in flight are refused:
/// each one holds a socket, and a monitor must not become a load test.
pub const MAX_IN_FLIGHT: u64 = 100;
const MIN_INTERVAL_MS: u64 = 10;
const MAX_INTERVAL_MS: u64 = 3_600_000;
const MAX_TIMEOUT_MS: u64 = 600_000;
/// A week: longer is almost certainly milliseconds given as seconds.
const MAX_DURATION_SECS: f64 = 604_800.0;
/// Memory bounds for a monitor left running through a long, flapping
/// method; counts and the longest outage stay exact beyond them.
const MAX_TIMELINE_RUNS: usize = 10_000;
const MAX_OUTAGES: usize = 1_000;

/// When to send and how long to wait: the checked timing arguments.
#[derive(Clone, Debug)]
struct Plan {
    interval_ms: u64,
    timeout_ms: u64,
    /// `None`: until the method ends.
    duration_ms: Option<u64>,
    /// Queue length at which a due sample is skipped (and failed) instead
    /// of sent. Derived so that it is never reached unless the runtime
    /// stalls; a safety net, not a rate limiter.
    max_in_flight: usize,
}

/// What to request and which answers count as available.
struct Target {
    url: reqwest::Url,
    headers: HeaderMap,
    /// Inclusive status ranges.
    expect: Vec<(u16, u16)>,
}

/// Why a sample failed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    /// No answer by the deadline.
    Timeout,
    /// No connection (refused, reset, TLS, DNS).
    Connect(String),
    /// An answer outside `expect_status`.
    Status(u16),
    /// Any other transport error.
    Error(String),
    /// Not sent because too many requests were outstanding.
    Skipped,
}

impl Failure {
    fn kind(&self) -> String {
        match self {
            Self::Timeout => "timeout".into(),
            Self::Connect(_) => "connect".into(),
            Self::Status(s) => format!("status {s}"),
            Self::Error(_) => "error".into(),
            Self::Skipped => "skipped".into(),
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Timeout => "no answer before the deadline".into(),
            Self::Connect(m) | Self::Error(m) => m.clone(),
            Self::Status(s) => format!("HTTP {s}"),
            Self::Skipped => "not sent: too many requests in flight".into(),
        }
    }
}

/// The outcome of the sample due at `k × interval`.
#[derive(Clone, Debug)]
struct Sample {
    k: u64,
    outcome: Result<(), Failure>,
}

fn availability(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let plan = plan(&args)?;
        let target = Arc::new(target(&args)?);
        let client = client(bool_arg(&args, "verify_tls", true)?)?;
        ctx.log.info(&format!(
            "availability: monitoring {} every {} ms ({})",
            target.url,
            plan.interval_ms,
            plan.duration_ms.map_or_else(
                || "until the method ends".to_owned(),
                |d| format!("for {d} ms")
            )
        ));
        // Output timestamps are wall-clock, scheduling is tokio time: both
        // are taken here so one converts to the other by offset.
        let started_us = unix_micros();
        let t0 = Instant::now();
        let (rec, end_ms) = schedule(&plan, &ctx.events, t0, |_| {
            request(client.clone(), Arc::clone(&target))
        })
        .await;
        let out = rec.report(started_us, end_ms, ctx.events.last_action_end_ms());
        ctx.log.info(&format!(
            "availability: {} of {} requests failed, longest outage {} ms",
            out["failures"], out["requests"], out["longest_outage_ms"]
        ));
        Ok(out)
    })
}

/// Sends samples on a fixed-rate schedule and collects them in due order.
/// Returns the samples and the end of the window (ms after `t0`).
///
/// Nothing is spawned: the in-flight requests live in `queue`, so when the
/// engine drops this future (an interrupted run) they are dropped with it.
async fn schedule<F, Fut>(
    plan: &Plan,
    events: &RunEvents,
    t0: Instant,
    mut send: F,
) -> (Recorder, u64)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut rec = Recorder::new(plan.interval_ms);
    let mut queue = FuturesOrdered::new();
    let mut k: u64 = 0;
    let end_ms = loop {
        let offset = k.saturating_mul(plan.interval_ms);
        // A fixed duration ends the window at exactly that length, even
        // between two due times.
        let at = plan.duration_ms.map_or(offset, |d| offset.min(d));
        drain_until(&mut queue, &mut rec, t0 + Duration::from_millis(at)).await;
        let stop = match plan.duration_ms {
            Some(d) => offset >= d,
            // Always take one sample, so the output is never empty.
            None => k > 0 && events.method_ended(),
        };
        if stop {
            break at;
        }
        if queue.len() >= plan.max_in_flight {
            let skipped = Sample {
                k,
                outcome: Err(Failure::Skipped),
            };
            queue.push_back(Either::Right(ready(skipped)));
        } else {
            let deadline = t0 + Duration::from_millis(offset.saturating_add(plan.timeout_ms));
            let sent = send(k);
            queue.push_back(Either::Left(async move {
                let outcome = timeout_at(deadline, sent)
                    .await
                    .unwrap_or(Err(Failure::Timeout));
                Sample { k, outcome }
            }));
        }
        k += 1;
    };
    // Requests already sent belong to the window; each ends by its deadline.
    while let Some(s) = queue.next().await {
        rec.record(&s);
    }
    (rec, end_ms)
}

/// Records finished samples (in due order) until `until`.
async fn drain_until<S>(queue: &mut FuturesOrdered<S>, rec: &mut Recorder, until: Instant)
where
    S: Future<Output = Sample>,
{
    let sleep = sleep_until(until);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            // Completions first, so a deadline that falls on this tick
            // frees its slot before the in-flight check.
            biased;
            Some(s) = queue.next(), if !queue.is_empty() => rec.record(&s),
            () = &mut sleep => return,
        }
    }
}

/// One GET: ok when an expected status arrives. The caller applies the
/// deadline; the body is not read (the status is the answer).
async fn request(client: reqwest::Client, target: Arc<Target>) -> Result<(), Failure> {
    let resp = client
        .get(target.url.clone())
        .headers(target.headers.clone())
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let status = resp.status().as_u16();
    if target
        .expect
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    {
        Ok(())
    } else {
        Err(Failure::Status(status))
    }
}

fn classify(err: &reqwest::Error) -> Failure {
    if err.is_timeout() {
        return Failure::Timeout;
    }
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    if err.is_connect() {
        Failure::Connect(msg)
    } else {
        Failure::Error(msg)
    }
}

/// A client for one monitor run: no idle connections (each sample is a new
/// connection, see the module doc) and no redirects (the status of this
/// URL is what is judged, as `curl` without `-L` does).
fn client(verify_tls: bool) -> Result<reqwest::Client, ActivityError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(!verify_tls)
        .build()
        .map_err(|e| ActivityError::Fatal(format!("cannot build an HTTP client: {e}")))
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn plan(args: &Map<String, Value>) -> Result<Plan, ActivityError> {
    let interval_ms = int_arg(args, "interval_ms", 100)?;
    let timeout_ms = int_arg(args, "timeout_ms", 1000)?;
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(ActivityError::failed(format!(
            "interval_ms must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}, not {interval_ms}"
        )));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ActivityError::failed(format!(
            "timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, not {timeout_ms}"
        )));
    }
    // Each request ends by its due time plus the timeout, so at most
    // ceil(timeout / interval) are outstanding; one more covers a deadline
    // that falls on the very tick being checked.
    let in_flight = timeout_ms.div_ceil(interval_ms) + 1;
    if in_flight > MAX_IN_FLIGHT {
        return Err(ActivityError::failed(format!(
            "timeout_ms {timeout_ms} with interval_ms {interval_ms} could keep {in_flight} \
             requests in flight, more than {MAX_IN_FLIGHT}: raise interval_ms or lower timeout_ms"
        )));
    }
    Ok(Plan {
        interval_ms,
        timeout_ms,
        duration_ms: duration_arg(args)?,
        max_in_flight: usize::try_from(in_flight).unwrap_or(usize::MAX),
    })
}

fn int_arg(args: &Map<String, Value>, name: &str, default: u64) -> Result<u64, ActivityError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().ok_or_else(|| {
            ActivityError::failed(format!("{name} must be a non-negative integer, not {v}"))
        }),
    }
}

fn bool_arg(args: &Map<String, Value>, name: &str, default: bool) -> Result<bool, ActivityError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ActivityError::failed(format!("{name} must be a boolean, not {v}"))),
    }
}

fn duration_arg(args: &Map<String, Value>) -> Result<Option<u64>, ActivityError> {
    let Some(v) = args.get("duration_secs").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let secs = v
        .as_f64()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_DURATION_SECS)
        .ok_or_else(|| {
            ActivityError::failed(format!(
                "duration_secs must be null or a number of seconds above 0 and at most \
                 {MAX_DURATION_SECS}, not {v}"
            ))
        })?;
    // In range by the check above, so the cast neither wraps nor truncates
    // anything but the sub-millisecond part.
    Ok(Some(((secs * 1000.0).round() as u64).max(1)))
}

fn target(args: &Map<String, Value>) -> Result<Target, ActivityError> {
    let raw = args
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| ActivityError::failed("url must be a string"))?;
    let url = reqwest::Url::parse(raw)
        .map_err(|e| ActivityError::failed(format!("url {raw} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ActivityError::failed(format!(
            "url {raw} must be http:// or https://"
        )));
    }
    Ok(Target {
        url,
        headers: headers(args.get("headers"))?,
        expect: expect_status(args.get("expect_status"))?,
    })
}

fn headers(v: Option<&Value>) -> Result<HeaderMap, ActivityError> {
    let mut map = HeaderMap::new();
    let entries = match v {
        None | Some(Value::Null) => return Ok(map),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(ActivityError::failed(format!(
                "headers must be a mapping, not {other}"
            )));
        }
    };
    for (k, v) in entries {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| ActivityError::failed(format!("'{k}' is not a header name")))?;
        let value = HeaderValue::from_str(&py_str(v))
            .map_err(|_| ActivityError::failed(format!("header {k} has an invalid value")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn expect_status(v: Option<&Value>) -> Result<Vec<(u16, u16)>, ActivityError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(vec![(200, 399)]),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(other) => {
            return Err(ActivityError::failed(format!(
                "expect_status must be a non-empty list, not {other}"
            )));
        }
    };
    items
        .iter()
        .map(|item| {
            status_range(item).ok_or_else(|| {
                ActivityError::failed(format!(
                    "expect_status item {item} is not a status (503), a range (\"200-399\") \
                     or a class (\"2xx\") within 100-599"
                ))
            })
        })
        .collect()
}

/// `503`, `"503"`, `"200-399"` or `"2xx"` as an inclusive range.
fn status_range(item: &Value) -> Option<(u16, u16)> {
    let valid = |s: u16| (100..=599).contains(&s);
    let (lo, hi) = match item {
        Value::Number(n) => {
            let s = u16::try_from(n.as_u64()?).ok()?;
            (s, s)
        }
        Value::String(s) => {
            let s = s.trim();
            if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
                let c: u16 = class.parse().ok()?;
                (c.checked_mul(100)?, c.checked_mul(100)?.checked_add(99)?)
            } else if let Some((lo, hi)) = s.split_once('-') {
                (lo.trim().parse().ok()?, hi.trim().parse().ok()?)
            } else {
                let one = s.parse().ok()?;
                (one, one)
            }
        }
        _ => return None,
    };
    (valid(lo) && valid(hi) && lo <= hi).then_some((lo, hi))
}

/// A maximal run of failed samples, in ms after the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Outage {
    start_ms: u64,
    end_ms: u64,
    /// The window ended during it.
    ongoing: bool,
}

/// Folds samples (in due order) into counts, a run-length timeline and
/// outages, in bounded memory.
#[derive(Debug)]
struct Recorder {
    interval_ms: u64,
    requests: u64,
    failures: u64,
    /// Failure kind → (count, first message).
    reasons: BTreeMap<String, (u64, String)>,
    /// (offset of the first sample, count, ok).
    timeline: Vec<(u64, u64, bool)>,
    /// Set once the timeline is full; it is then left as it was, because
    /// extending its last run would paper over the samples not recorded.
    timeline_full: bool,
    outages: Vec<Outage>,
    outages_dropped: bool,
    /// Start of the outage in progress.
    open: Option<u64>,
    longest_ms: u64,
    /// The latest outage, kept even when the list is full (for recovery).
    last: Option<Outage>,
}

impl Recorder {
    fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms,
            requests: 0,
            failures: 0,
            reasons: BTreeMap::new(),
            timeline: Vec::new(),
            timeline_full: false,
            outages: Vec::new(),
            outages_dropped: false,
            open: None,
            longest_ms: 0,
            last: None,
        }
    }

    fn record(&mut self, s: &Sample) {
        let offset = s.k.saturating_mul(self.interval_ms);
        let ok = s.outcome.is_ok();
        self.requests += 1;
        if let Err(f) = &s.outcome {
            self.failures += 1;
            let entry = self
                .reasons
                .entry(f.kind())
                .or_insert_with(|| (0, f.message()));
            entry.0 += 1;
        }
        self.extend_timeline(offset, ok);
        match (ok, self.open) {
            (false, None) => self.open = Some(offset),
            (true, Some(start)) => {
                self.open = None;
                self.close(Outage {
                    start_ms: start,
                    end_ms: offset,
                    ongoing: false,
                });
            }
            _ => {}
        }
    }

    fn extend_timeline(&mut self, offset: u64, ok: bool) {
        if self.timeline_full {
            return;
        }
        let full = self.timeline.len() >= MAX_TIMELINE_RUNS;
        match self.timeline.last_mut() {
            Some(run) if run.2 == ok => run.1 += 1,
            _ if full => self.timeline_full = true,
            _ => self.timeline.push((offset, 1, ok)),
        }
    }

    fn close(&mut self, o: Outage) {
        self.longest_ms = self.longest_ms.max(o.end_ms - o.start_ms);
        self.last = Some(o);
        if self.outages.len() < MAX_OUTAGES {
            self.outages.push(o);
        } else {
            self.outages_dropped = true;
        }
    }

    /// Closes an outage still open at the end of the window.
    fn finish(&mut self, end_ms: u64) {
        if let Some(start) = self.open.take() {
            self.close(Outage {
                start_ms: start,
                end_ms: end_ms.max(start),
                ongoing: true,
            });
        }
    }

    /// The probe's output. `started_us` is the wall-clock time of offset 0.
    fn report(mut self, started_us: i64, end_ms: u64, action_end_ms: Option<u64>) -> Value {
        self.finish(end_ms);
        let wall_us = |ms: u64| {
            started_us.saturating_add(i64::try_from(ms.saturating_mul(1000)).unwrap_or(i64::MAX))
        };
        let outages: Vec<Value> = self
            .outages
            .iter()
            .map(|o| {
                json!({
                    "start": timestamp(wall_us(o.start_ms)),
                    "end": timestamp(wall_us(o.end_ms)),
                    "duration_ms": o.end_ms - o.start_ms,
                    "ongoing": o.ongoing,
                })
            })
            .collect();
        // Recovery is measured to the end of the last outage, if that
        // outage was still going on (or began) after the last action.
        let recovery = match (action_end_ms, self.last) {
            (Some(action), Some(o)) => {
                let action_us = i64::try_from(action.saturating_mul(1000)).unwrap_or(i64::MAX);
                let gap = wall_us(o.end_ms) - action_us;
                (gap > 0).then_some(gap / 1000)
            }
            _ => None,
        };
        json!({
            "requests": self.requests,
            "failures": self.failures,
            "availability": self.availability(),
            "outages": outages,
            "longest_outage_ms": self.longest_ms,
            "time_to_recovery_ms": recovery,
            "interval_ms": self.interval_ms,
            "started": timestamp(started_us),
            "ended": timestamp(wall_us(end_ms)),
            "timeline": self.timeline_json(),
            "failure_reasons": self.reasons_json(),
            "truncated": self.timeline_full || self.outages_dropped,
        })
    }

    /// Percent of samples that succeeded; a window always has at least one.
    fn availability(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        (self.requests - self.failures) as f64 * 100.0 / self.requests as f64
    }

    fn timeline_json(&self) -> Value {
        self.timeline
            .iter()
            .map(|(at, n, ok)| json!([at, n, if *ok { "ok" } else { "fail" }]))
            .collect()
    }

    fn reasons_json(&self) -> Value {
        self.reasons
            .iter()
            .map(|(kind, (count, first))| (kind.clone(), json!({"count": count, "first": first})))
            .collect::<Map<String, Value>>()
            .into()
    }
}

#[cfg(test)]
mod tests;
