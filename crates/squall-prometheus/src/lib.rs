//! squall's Prometheus probes, under upstream's names
//! (`chaosprometheus.probes.*`): instant and range queries whose output is
//! Prometheus' JSON unchanged (so tolerances written for upstream, such as
//! `jsonpath` on `$.data.result[0].value[1]`, work as they are), and the
//! mean of a series over a window. Beyond upstream: auth from secrets, a
//! base URL per probe, `status: error` with HTTP 200 as a failure, and
//! `compute_mean` that works (upstream crashes before its request).

pub mod client;
pub mod time;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use squall_activity::describe::{optional, probe, required};
use squall_activity::{
    ActivityCtx, ActivityError, ActivityResult, BoxFuture, Provider, Registered,
};
use squall_core::catalog::{ArgSpec, ArgType};

use client::{Endpoint, number, string_arg};

const MODULE: &str = "chaosprometheus.probes";

/// The Prometheus provider family.
pub static PROVIDER: Provider = Provider {
    name: "prometheus",
    activities: &[QUERY, QUERY_INTERVAL, COMPUTE_MEAN, NODES_CPU_USAGE_MEAN],
    undos: &[],
};

const BASE_URL: ArgSpec = optional(
    "prometheus_base_url",
    ArgType::String,
    "null",
    "Prometheus' base URL for this probe; else the configuration's `prometheus_base_url`, \
     else http://localhost:9090.",
);
const TIMEOUT: ArgSpec = optional(
    "timeout",
    ArgType::Number,
    "null",
    "Evaluation timeout in seconds, sent to Prometheus; the HTTP call is bounded by it plus 5 s.",
);
const VERIFY_TLS: ArgSpec = optional(
    "verify_tls",
    ArgType::Boolean,
    "true",
    "Whether to verify Prometheus' TLS certificate.",
);
const QUERY_ARG: ArgSpec = required("query", ArgType::String, "The PromQL expression.");
const WINDOW: ArgSpec = optional(
    "window",
    ArgType::String,
    "\"1d\"",
    "How far back the mean reaches, as a Prometheus duration (`5m`, `1h`, `1d`).",
);

pub const QUERY: Registered = Registered {
    spec: probe(
        MODULE,
        "query",
        "Run an instant PromQL query and return Prometheus' JSON as is \
         (`{status, data: {resultType, result}}`).",
        &[
            QUERY_ARG,
            optional(
                "when",
                ArgType::Any,
                "null",
                "The evaluation time: RFC 3339, Unix seconds, `now`, or relative (`5 minutes ago`).",
            ),
            TIMEOUT,
            VERIFY_TLS,
            BASE_URL,
        ],
        "mapping",
    ),
    run: query,
    permissions: &[],
};

pub const QUERY_INTERVAL: Registered = Registered {
    spec: probe(
        MODULE,
        "query_interval",
        "Run a PromQL range query from `start` to `end` and return Prometheus' JSON as is \
         (a `matrix`).",
        &[
            QUERY_ARG,
            required(
                "start",
                ArgType::Any,
                "The range's start, in any form `when` takes.",
            ),
            required(
                "end",
                ArgType::Any,
                "The range's end, in any form `when` takes.",
            ),
            optional(
                "step",
                ArgType::Any,
                "1",
                "Seconds (or a Prometheus duration) between points.",
            ),
            TIMEOUT,
            VERIFY_TLS,
            BASE_URL,
        ],
        "mapping",
    ),
    run: query_interval,
    permissions: &[],
};

pub const COMPUTE_MEAN: Registered = Registered {
    spec: probe(
        MODULE,
        "compute_mean",
        "The mean of the first series a range query returns over the last `window`: \
         `arithmetic`, `geometric` or `harmonic`.",
        &[
            QUERY_ARG,
            WINDOW,
            optional(
                "mean_type",
                ArgType::String,
                "\"arithmetic\"",
                "`arithmetic`, `geometric` or `harmonic`.",
            ),
            BASE_URL,
        ],
        "number",
    ),
    run: compute_mean,
    permissions: &[],
};

/// Upstream's expression for the nodes' mean CPU usage, in percent.
pub const NODES_CPU_QUERY: &str =
    "100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\"}[1m])))";

pub const NODES_CPU_USAGE_MEAN: Registered = Registered {
    spec: probe(
        MODULE,
        "nodes_cpu_usage_mean",
        "The arithmetic mean over `window` of the nodes' CPU usage in percent \
         (node_exporter's `node_cpu_seconds_total`).",
        &[WINDOW, BASE_URL],
        "number",
    ),
    run: nodes_cpu_usage_mean,
    permissions: &[],
};

fn query(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let ep = Endpoint::from_args(&ctx, &args)?;
        let q = string_arg(&args, "query").ok_or_else(|| ActivityError::failed("missing query"))?;
        let mut params = vec![("query", q.clone())];
        if let Some(t) = ep.timeout {
            params.push(("timeout", format!("{t}s")));
        }
        if let Some(when) = moment(&args, "when")? {
            params.push(("time", time::prom_time(when)));
        }
        ep.get(&ctx, "/api/v1/query", &params, &format!("query {q:?}"))
            .await
    })
}

fn query_interval(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let ep = Endpoint::from_args(&ctx, &args)?;
        let q = string_arg(&args, "query").ok_or_else(|| ActivityError::failed("missing query"))?;
        let start =
            moment(&args, "start")?.ok_or_else(|| ActivityError::failed("missing start"))?;
        let end = moment(&args, "end")?.ok_or_else(|| ActivityError::failed("missing end"))?;
        let mut params = vec![
            ("query", q.clone()),
            ("start", time::prom_time(start)),
            ("end", time::prom_time(end)),
        ];
        if let Some(step) = step(args.get("step"))? {
            params.push(("step", step));
        }
        if let Some(t) = ep.timeout {
            params.push(("timeout", format!("{t}s")));
        }
        ep.get(
            &ctx,
            "/api/v1/query_range",
            &params,
            &format!("query range {q:?}"),
        )
        .await
    })
}

fn compute_mean(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let q = string_arg(&args, "query").ok_or_else(|| ActivityError::failed("missing query"))?;
        let kind = string_arg(&args, "mean_type").unwrap_or_else(|| "arithmetic".into());
        mean_over_window(&ctx, &args, &q, &kind).await
    })
}

fn nodes_cpu_usage_mean(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move { mean_over_window(&ctx, &args, NODES_CPU_QUERY, "arithmetic").await })
}

/// A range query over the last `window`, reduced to one mean.
async fn mean_over_window(
    ctx: &ActivityCtx,
    args: &Map<String, Value>,
    q: &str,
    kind: &str,
) -> ActivityResult {
    if !["arithmetic", "geometric", "harmonic"].contains(&kind) {
        return Err(ActivityError::failed(format!(
            "unknown mean_type '{kind}': use arithmetic, geometric or harmonic"
        )));
    }
    let text = string_arg(args, "window").unwrap_or_else(|| "1d".into());
    let span = time::window(&text)
        .ok_or_else(|| ActivityError::failed(format!("failed to parse window '{text}'")))?;
    let ep = Endpoint::from_args(ctx, args)?;
    let end = Timestamp::now();
    let start = end
        .checked_sub(span)
        .map_err(|_| ActivityError::failed(format!("window '{text}' is too long")))?;
    let params = [
        ("query", q.to_owned()),
        ("start", time::prom_time(start)),
        ("end", time::prom_time(end)),
        ("step", format!("{}s", step_for(span))),
    ];
    let body = ep
        .get(
            ctx,
            "/api/v1/query_range",
            &params,
            &format!("query range {q:?}"),
        )
        .await?;
    let values = first_series(&body)?;
    mean(&values, kind).map(|m| json!(m))
}

/// About a thousand points whatever the window (Prometheus refuses more
/// than 11,000 per series).
fn step_for(span: SignedDuration) -> i64 {
    (span.as_secs() / 1000).max(1)
}

/// The numbers of `data.result[0].values`.
fn first_series(body: &Value) -> Result<Vec<f64>, ActivityError> {
    let values = body
        .pointer("/data/result/0/values")
        .and_then(Value::as_array)
        .ok_or_else(|| ActivityError::failed("the query returned no series"))?;
    values
        .iter()
        .map(|p| p.get(1).and_then(number))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| ActivityError::failed("the series holds a value that is not a number"))
}

/// The mean of `values`; geometric and harmonic means need positive values.
pub fn mean(values: &[f64], kind: &str) -> Result<f64, ActivityError> {
    if values.is_empty() {
        return Err(ActivityError::failed("the query returned no values"));
    }
    let n = values.len() as f64;
    let positive = || {
        if values.iter().all(|v| *v > 0.0) {
            Ok(())
        } else {
            Err(ActivityError::failed(format!(
                "a {kind} mean needs positive values"
            )))
        }
    };
    Ok(match kind {
        "geometric" => {
            positive()?;
            (values.iter().map(|v| v.ln()).sum::<f64>() / n).exp()
        }
        "harmonic" => {
            positive()?;
            n / values.iter().map(|v| 1.0 / v).sum::<f64>()
        }
        _ => values.iter().sum::<f64>() / n,
    })
}

/// An optional moment argument (`when`, `start`, `end`).
fn moment(args: &Map<String, Value>, key: &str) -> Result<Option<Timestamp>, ActivityError> {
    let text = match args.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(ActivityError::failed(format!("failed to parse '{other}'"))),
    };
    time::parse_moment(&text, Timestamp::now())
        .map(Some)
        .map_err(|e| ActivityError::failed(e.to_string()))
}

/// `step` as Prometheus takes it; upstream leaves it out when falsy.
fn step(v: Option<&Value>) -> Result<Option<String>, ActivityError> {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(ActivityError::failed(format!("invalid step {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_of_every_kind() {
        let v = [1.0, 2.0, 4.0];
        assert!((mean(&v, "arithmetic").unwrap() - 7.0 / 3.0).abs() < 1e-9);
        assert!((mean(&v, "geometric").unwrap() - 2.0).abs() < 1e-9);
        assert!((mean(&v, "harmonic").unwrap() - 3.0 / 1.75).abs() < 1e-9);
        assert!(mean(&[], "arithmetic").is_err());
        assert!(mean(&[0.0, 1.0], "harmonic").is_err());
    }

    #[test]
    fn the_first_series_is_read_from_a_matrix() {
        let body = json!({"status": "success", "data": {"resultType": "matrix",
            "result": [{"metric": {}, "values": [[1, "2"], [2, "4.5"]]}]}});
        assert_eq!(first_series(&body).unwrap(), vec![2.0, 4.5]);
        let empty = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(first_series(&empty).is_err());
    }

    #[test]
    fn steps_follow_upstream_and_windows_stay_under_prometheus_limit() {
        assert_eq!(step(Some(&json!(15))).unwrap(), Some("15".into()));
        assert_eq!(step(Some(&json!("30s"))).unwrap(), Some("30s".into()));
        assert_eq!(step(Some(&json!(0))).unwrap(), None);
        assert_eq!(step_for(SignedDuration::from_hours(24)), 86);
        assert_eq!(step_for(SignedDuration::from_secs(60)), 1);
    }
}
