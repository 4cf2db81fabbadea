//! The namespace-wide pod probes of `chaosk8s.pod.probes`:
//! `all_pods_healthy` (what the book's `all_microservices_healthy` calls),
//! `pod_is_not_available` and `count_min_pods`, with upstream's rules and
//! messages (`reference/ctk-plugins.md` §2.4). Like upstream they look at
//! the pod phase only, not readiness.

use std::sync::Arc;

use serde_json::{Map, Value};
use squall_activity::describe::{optional, required};
use squall_activity::{ActivityCtx, ActivityResult, BoxFuture, Registered};
use squall_core::catalog::ArgType;

use super::{NS, SELECTOR, list_pods, phase, phase_of, probe, verdict};
use crate::args::{bool_or, int_or, opt_str, str_or};

pub const ALL_PODS_HEALTHY: Registered = Registered {
    spec: probe(
        "all_pods_healthy",
        "True if no pod of the namespace is Failed, Pending or Unknown (Running and Succeeded pods are healthy; \
         readiness is not looked at, and an empty namespace is healthy), as upstream.",
        &[
            NS,
            optional(
                "raise_on_any_unhealthy",
                ArgType::Boolean,
                "true",
                "Fail with `the system is unhealthy` (rather than return false) when a pod is unhealthy.",
            ),
        ],
    ),
    run: all_pods_healthy,
    permissions: crate::permissions::LIST_PODS,
};

pub const POD_IS_NOT_AVAILABLE: Registered = Registered {
    spec: probe(
        "pod_is_not_available",
        "True unless a pod matching the selector is Running.",
        &[
            required(
                "name",
                ArgType::String,
                "The name put in place of `{name}` in the selector, and shown in the message.",
            ),
            NS,
            optional(
                "label_selector",
                ArgType::String,
                "\"name in ({name})\"",
                "Label selector of the pods; `{name}` is replaced by the name.",
            ),
            optional(
                "raise_on_is_available",
                ArgType::Boolean,
                "true",
                "Fail (rather than return false) when a matching pod is running.",
            ),
        ],
    ),
    run: pod_is_not_available,
    permissions: crate::permissions::LIST_PODS,
};

pub const COUNT_MIN_PODS: Registered = Registered {
    spec: probe(
        "count_min_pods",
        "True if at least `min_count` pods matching the selector are in the phase.",
        &[
            SELECTOR,
            phase(Some("\"Running\""), "The phase the counted pods are in."),
            optional(
                "min_count",
                ArgType::Integer,
                "2",
                "The smallest acceptable count.",
            ),
            NS,
        ],
    ),
    run: count_min_pods,
    permissions: crate::permissions::LIST_PODS,
};

/// `all_pods_healthy` (also behind `chaosk8s.probes.all_microservices_healthy`).
pub(crate) async fn all_healthy(ctx: &ActivityCtx, ns: &str, raise: bool) -> ActivityResult {
    let pods = list_pods(ctx, ns, None).await?;
    let unhealthy = pods
        .iter()
        .filter(|p| !matches!(phase_of(p), Some("Running" | "Succeeded")))
        .count();
    ctx.log.debug(&format!(
        "Found {unhealthy} failed or not ready pods in ns '{ns}'"
    ));
    if unhealthy > 0 {
        return verdict(raise, "the system is unhealthy".into());
    }
    Ok(Value::Bool(true))
}

fn all_pods_healthy(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let ns = str_or(&args, "ns", "default")?;
        let raise = bool_or(&args, "raise_on_any_unhealthy", true)?;
        all_healthy(&ctx, &ns, raise).await
    })
}

/// `pod_is_not_available` (also behind
/// `chaosk8s.probes.microservice_is_not_available`).
pub(crate) async fn not_available(
    ctx: &ActivityCtx,
    args: &Map<String, Value>,
    raise: bool,
) -> ActivityResult {
    let name = opt_str(args, "name")?.unwrap_or_else(|| "None".into());
    let ns = str_or(args, "ns", "default")?;
    let selector = opt_str(args, "label_selector")?.map(|s| s.replace("{name}", &name));
    let pods = list_pods(ctx, &ns, selector.as_deref()).await?;
    if pods.iter().any(|p| phase_of(p) == Some("Running")) {
        return verdict(raise, format!("pod '{name}' is actually running"));
    }
    Ok(Value::Bool(true))
}

fn pod_is_not_available(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let raise = bool_or(&args, "raise_on_is_available", true)?;
        not_available(&ctx, &args, raise).await
    })
}

fn count_min_pods(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let selector = opt_str(&args, "label_selector")?;
        let wanted = str_or(&args, "phase", "Running")?;
        let min = int_or(&args, "min_count", 2)?;
        let ns = str_or(&args, "ns", "default")?;
        let pods = list_pods(&ctx, &ns, selector.as_deref()).await?;
        let n = pods
            .iter()
            .filter(|p| phase_of(p) == Some(wanted.as_str()))
            .count();
        Ok(Value::Bool(i64::try_from(n).unwrap_or(i64::MAX) >= min))
    })
}
