//! `chaosk8s.pod.probes.*` and `chaosk8s.pod.actions.terminate_pods`: the
//! pod functions of chaostoolkit-kubernetes with the same names, arguments,
//! return values and failure messages (see `reference/ctk-plugins.md` §2.3,
//! §2.4). Target selection for `terminate_pods` lives in [`select`]; this
//! file holds the descriptors, the probes and the deletion loop; the
//! namespace-wide health probes are in `health`, `read_pod_logs` in `logs`.
//! With `--dry`, `terminate_pods` picks its pods (same seed rules) and
//! returns the plan instead of deleting them.
//!
//! Deleting a pod cannot be undone (its controller recreates a new pod, a
//! bare pod is gone), so `terminate_pods` records no undo; its safety is
//! the blast-radius check, which refuses before anything is deleted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Map, Value, json};
use squall_activity::describe::{optional, required};
use squall_activity::{ActivityCtx, ActivityError, ActivityResult, BoxFuture, Registered};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};
use squall_core::subst::py_repr;

use crate::args::{bool_or, int_or, opt_int, opt_str, str_or};

mod count;
mod health;
mod logs;

use crate::connect::kube;
use crate::{api_error, limits, select};
pub use health::{ALL_PODS_HEALTHY, COUNT_MIN_PODS, POD_IS_NOT_AVAILABLE};
pub(crate) use health::{all_healthy, not_available};
pub use logs::READ_POD_LOGS;
pub(crate) use logs::{read as read_logs, read_logs_spec};

const PROBES: &str = "chaosk8s.pod.probes";
const ACTIONS: &str = "chaosk8s.pod.actions";

const SELECTOR: ArgSpec = required(
    "label_selector",
    ArgType::String,
    "Label selector of the pods, e.g. `app=web`; an empty string selects every pod in the namespace.",
);
const NS: ArgSpec = optional(
    "ns",
    ArgType::String,
    "\"default\"",
    "The namespace of the pods.",
);
const fn phase(default: Option<&'static str>, doc: &'static str) -> ArgSpec {
    squall_activity::describe::arg("phase", ArgType::String, default, doc)
}

const fn probe(func: &'static str, doc: &'static str, args: &'static [ArgSpec]) -> ActivitySpec {
    ActivitySpec {
        module: PROBES,
        func,
        kind: Kind::Probe,
        doc,
        args,
        returns: "boolean",
        mutating: false,
    }
}

pub const COUNT_PODS: Registered = Registered {
    spec: ActivitySpec {
        returns: "integer",
        ..probe(
            "count_pods",
            "Count the pods matching the label selector, optionally only those in a phase. Terminating pods \
             keep their phase and are counted, as upstream.",
            &[
                SELECTOR,
                phase(
                    Some("null"),
                    "Count only pods whose status.phase is this (Pending, Running, Succeeded, Failed, Unknown).",
                ),
                NS,
            ],
        )
    },
    run: count_pods,
    permissions: crate::permissions::LIST_PODS,
};

pub const PODS_IN_PHASE: Registered = Registered {
    spec: probe(
        "pods_in_phase",
        "True if there is at least one matching pod and every one is in the given phase.",
        &[
            SELECTOR,
            phase(Some("\"Running\""), "The phase every pod must be in."),
            NS,
            crate::raise(
                "raise_on_invalid_phase",
                "Fail the probe (rather than return false) when a pod is in another phase or none is found.",
            ),
        ],
    ),
    run: pods_in_phase,
    permissions: crate::permissions::LIST_PODS,
};

pub const PODS_NOT_IN_PHASE: Registered = Registered {
    spec: probe(
        "pods_not_in_phase",
        "True if there is at least one matching pod and none is in the given phase.",
        &[
            SELECTOR,
            phase(Some("\"Running\""), "The phase no pod may be in."),
            NS,
            crate::raise(
                "raise_on_in_phase",
                "Fail the probe (rather than return false) when a pod is in the phase or none is found.",
            ),
        ],
    ),
    run: pods_not_in_phase,
    permissions: crate::permissions::LIST_PODS,
};

pub const PODS_IN_CONDITIONS: Registered = Registered {
    spec: probe(
        "pods_in_conditions",
        "True if there is at least one matching pod and every pod has every given condition, \
         e.g. [{\"type\": \"Ready\", \"status\": \"True\"}].",
        &[
            SELECTOR,
            required(
                "conditions",
                ArgType::List,
                "Conditions as {\"type\": ..., \"status\": ...} mappings; each must equal one of the pod's \
                      conditions exactly (an extra key never matches).",
            ),
            NS,
            crate::raise(
                "raise_on_invalid_conditions",
                "Fail the probe (rather than return false) when a pod lacks a condition or none is found.",
            ),
        ],
    ),
    run: pods_in_conditions,
    permissions: crate::permissions::LIST_PODS,
};

pub const TERMINATE_PODS: Registered = Registered {
    spec: ActivitySpec {
        module: ACTIONS,
        func: "terminate_pods",
        kind: Kind::Action,
        doc: "Delete pods chosen by label selector and/or name pattern, as chaosk8s does, and return their names. \
              With neither a selector nor a pattern it picks random pods anywhere in the namespace. A random pick \
              returns {\"pods\": [...], \"seed\": N}; pass `seed: N` to replay it. Refuses before deleting anything \
              when the pick exceeds squall.limits. Records no undo: controllers recreate deleted pods, and a bare pod \
              cannot be brought back. Dry mode lists the pods it would terminate (with the seed of a random pick) and \
              deletes nothing.",
        args: select::ARGS,
        returns: "list",
        mutating: true,
    },
    run: terminate_pods,
    permissions: crate::permissions::DELETE_PODS,
};

/// The pods of `ns`, filtered by the selector when one is given.
async fn list_pods(
    ctx: &ActivityCtx,
    ns: &str,
    selector: Option<&str>,
) -> Result<Vec<Pod>, ActivityError> {
    let api: Api<Pod> = Api::namespaced(kube(ctx)?.client(), ns);
    let params = match selector {
        Some(s) => ListParams::default().labels(s),
        None => ListParams::default(),
    };
    Ok(api.list(&params).await.map_err(api_error)?.items)
}

fn phase_of(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// Fails or returns `false`, as the `raise_on_*` flag says.
pub(crate) fn verdict(raise: bool, msg: String) -> ActivityResult {
    if raise {
        Err(ActivityError::Failed(msg))
    } else {
        Ok(Value::Bool(false))
    }
}

/// Arguments every pod probe takes.
struct Common {
    selector: Option<String>,
    ns: String,
}

impl Common {
    fn read(args: &Map<String, Value>) -> Result<Self, ActivityError> {
        Ok(Self {
            selector: opt_str(args, "label_selector")?,
            ns: str_or(args, "ns", "default")?,
        })
    }
    /// The selector as chaosk8s prints it in messages (`str(label_selector)`).
    fn shown(&self) -> &str {
        self.selector.as_deref().unwrap_or_default()
    }
    async fn pods(&self, ctx: &ActivityCtx) -> Result<Vec<Pod>, ActivityError> {
        list_pods(ctx, &self.ns, self.selector.as_deref()).await
    }
}

fn count_pods(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let c = Common::read(&args)?;
        let wanted = opt_str(&args, "phase")?;
        let n = count::count(&ctx, &c.ns, c.selector.as_deref(), wanted.as_deref()).await?;
        Ok(json!(n))
    })
}

fn pods_in_phase(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let c = Common::read(&args)?;
        let wanted = str_or(&args, "phase", "Running")?;
        let raise = bool_or(&args, "raise_on_invalid_phase", true)?;
        let pods = c.pods(&ctx).await?;
        if pods.is_empty() {
            return verdict(raise, format!("no pods '{}' were found", c.shown()));
        }
        for pod in &pods {
            let actual = phase_of(pod).unwrap_or("None");
            if actual != wanted {
                let msg = format!(
                    "pod '{}' is in phase '{actual}' but should be '{wanted}'",
                    c.shown()
                );
                return verdict(raise, msg);
            }
        }
        Ok(Value::Bool(true))
    })
}

fn pods_not_in_phase(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let c = Common::read(&args)?;
        let unwanted = str_or(&args, "phase", "Running")?;
        let raise = bool_or(&args, "raise_on_in_phase", true)?;
        let pods = c.pods(&ctx).await?;
        if pods.is_empty() {
            return verdict(raise, format!("no pods '{}' were found", c.shown()));
        }
        if pods.iter().any(|p| phase_of(p) == Some(unwanted.as_str())) {
            let msg = format!("pod '{}' should not be in phase '{unwanted}'", c.shown());
            return verdict(raise, msg);
        }
        Ok(Value::Bool(true))
    })
}

/// Whether a requested condition equals one of the pod's `{type, status}`
/// pairs exactly (Python dict equality: same keys, same values).
fn has_condition(pod: &Pod, wanted: &Value) -> bool {
    let Some(w) = wanted.as_object() else {
        return false;
    };
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref());
    conditions.unwrap_or_default().iter().any(|c| {
        w.len() == 2
            && w.get("type").and_then(Value::as_str) == Some(c.type_.as_str())
            && w.get("status").and_then(Value::as_str) == Some(c.status.as_str())
    })
}

fn pods_in_conditions(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let c = Common::read(&args)?;
        let raise = bool_or(&args, "raise_on_invalid_conditions", true)?;
        let conditions = match args.get("conditions") {
            Some(Value::Array(list)) => list.clone(),
            other => {
                let v = other.cloned().unwrap_or(Value::Null);
                return Err(ActivityError::failed(format!(
                    "argument conditions must be a list, not {v}"
                )));
            }
        };
        let pods = c.pods(&ctx).await?;
        if pods.is_empty() {
            return verdict(raise, format!("no pods '{}' were found", c.shown()));
        }
        for pod in &pods {
            if let Some(missing) = conditions.iter().find(|w| !has_condition(pod, w)) {
                let msg = format!(
                    "pod {} does not match the following given condition: {}",
                    name_of(pod),
                    py_repr(missing)
                );
                return verdict(raise, msg);
            }
        }
        Ok(Value::Bool(true))
    })
}

fn terminate_pods(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let sel = select::Selection::read(&args)?;
        let grace = int_or(&args, "grace_period", -1)?;
        let seed = opt_int(&args, "seed")?;
        let pods = list_pods(&ctx, &sel.ns, sel.label_selector.as_deref()).await?;
        let candidates = sel.candidates(pods)?;
        let pick = sel.pick(&candidates, seed);
        if let Some(s) = pick.seed {
            ctx.log.info(&format!(
                "terminate_pods: random pick of {} out of {} pods with seed {s}",
                pick.names.len(),
                candidates.len()
            ));
        }
        let targets = limits::Targets {
            activity: "terminate_pods",
            noun: "pods",
            pool: "candidate pods",
            untouched: "nothing was terminated",
            picked: pick.names.len(),
            out_of: candidates.len(),
        };
        limits::check(&ctx.limits, &targets)?;
        if ctx.dry {
            return plan_termination(&ctx, &sel.ns, &pick);
        }
        delete_pods(&ctx, &sel.ns, &pick.names, grace).await?;
        Ok(pick.output())
    })
}

/// Dry mode: the pods a real run would delete (a random pick keeps its
/// seed, so passing it as `seed` replays exactly this pick for real).
fn plan_termination(ctx: &ActivityCtx, ns: &str, pick: &select::Pick) -> ActivityResult {
    let targets: Vec<String> = pick.names.iter().map(|n| format!("pod/{ns}/{n}")).collect();
    let changes: Vec<String> = pick
        .names
        .iter()
        .map(|n| format!("terminate pod {ns}/{n}"))
        .collect();
    let mut plan = ctx.plan(&targets, &changes)?;
    if let Some(seed) = pick.seed {
        plan["seed"] = json!(seed);
    }
    Ok(plan)
}

/// Deletes pods one after another; the first error stops the loop, and the
/// message names the pods already deleted (they stay deleted).
async fn delete_pods(
    ctx: &ActivityCtx,
    ns: &str,
    names: &[String],
    grace: i64,
) -> Result<(), ActivityError> {
    let api: Api<Pod> = Api::namespaced(kube(ctx)?.client(), ns);
    let params = match u32::try_from(grace) {
        Ok(secs) => DeleteParams::default().grace_period(secs),
        Err(_) => DeleteParams::default(),
    };
    for (i, name) in names.iter().enumerate() {
        ctx.log.debug(&format!("terminating pod {ns}/{name}"));
        if let Err(e) = api.delete(name, &params).await {
            let done = &names[..i];
            let mut msg = api_error(e).message().to_owned();
            if !done.is_empty() {
                msg = format!("{msg} (already terminated: {})", done.join(", "));
            }
            return Err(ActivityError::Failed(msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
