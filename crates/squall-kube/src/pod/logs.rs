//! `chaosk8s.pod.probes.read_pod_logs` (and its deprecated alias
//! `chaosk8s.probes.read_microservices_logs`): the logs of the selected pods
//! as `{pod name: text}`, fetched with timestamps, optionally only the last
//! N seconds (`last`, a duration such as `60s` or `10 minutes`, which
//! upstream hands to `dateparser`) or from the previous container.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde_json::{Map, Value};
use squall_activity::describe::optional;
use squall_activity::{ActivityCtx, ActivityError, ActivityResult, BoxFuture, Registered};
use squall_core::catalog::{ArgSpec, ArgType};

use super::{NS, list_pods, name_of, probe};
use crate::api_error;
use crate::args::{bool_or, opt_str, str_or};
use crate::connect::kube;

const ARGS: &[ArgSpec] = &[
    optional(
        "name",
        ArgType::String,
        "null",
        "Put in place of `{name}` in the label selector. Without a name, a selector that still holds `{name}` \
         selects every pod of the namespace.",
    ),
    optional(
        "last",
        ArgType::String,
        "null",
        "Only the last part of the logs: a duration such as `60s`, `5m`, `10 minutes` or `1 hour 30 minutes`.",
    ),
    NS,
    optional(
        "from_previous",
        ArgType::Boolean,
        "false",
        "Read the previous (restarted) container's logs.",
    ),
    optional(
        "label_selector",
        ArgType::String,
        "\"name in ({name})\"",
        "Label selector of the pods; `{name}` is replaced by the name. Null or empty: every pod of the namespace.",
    ),
    optional(
        "container_name",
        ArgType::String,
        "null",
        "The container to read (needed when a pod has several).",
    ),
];

pub const READ_POD_LOGS: Registered = Registered {
    spec: read_logs_spec("read_pod_logs"),
    run: read_pod_logs,
    permissions: crate::permissions::READ_LOGS,
};

/// The descriptor, shared with the deprecated alias.
pub(crate) const fn read_logs_spec(func: &'static str) -> squall_core::catalog::ActivitySpec {
    squall_core::catalog::ActivitySpec {
        returns: "mapping",
        ..probe(
            func,
            "The logs of the selected pods as {\"<pod name>\": \"<log text>\"}, each line prefixed with its \
             timestamp.",
            ARGS,
        )
    }
}

fn read_pod_logs(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move { read(&ctx, &args).await })
}

/// The label selector to list with: `{name}` filled in; upstream fills in
/// Python's `None` without a name, which matches nothing useful, so squall
/// then drops such a selector and reads every pod of the namespace.
fn selector(args: &Map<String, Value>) -> Result<Option<String>, ActivityError> {
    let name = opt_str(args, "name")?;
    let Some(sel) = opt_str(args, "label_selector")? else {
        return Ok(None);
    };
    Ok(match name {
        Some(n) => Some(sel.replace("{name}", &n)),
        None if sel.contains("{name}") => None,
        None => Some(sel),
    })
}

/// `read_pod_logs` (also behind `chaosk8s.probes.read_microservices_logs`).
pub(crate) async fn read(ctx: &ActivityCtx, args: &Map<String, Value>) -> ActivityResult {
    let ns = str_or(args, "ns", "default")?;
    let since = match opt_str(args, "last")? {
        Some(last) => parse_last(&last)?,
        None => None,
    };
    let params = LogParams {
        container: opt_str(args, "container_name")?,
        previous: bool_or(args, "from_previous", false)?,
        since_seconds: since,
        timestamps: true,
        ..LogParams::default()
    };
    let pods = list_pods(ctx, &ns, selector(args)?.as_deref()).await?;
    let names: Vec<&str> = pods.iter().map(name_of).collect();
    ctx.log.debug(&format!(
        "Found {} pods: [{}] in ns '{ns}'",
        names.len(),
        names.join(", ")
    ));
    let api: Api<Pod> = Api::namespaced(kube(ctx)?.client(), &ns);
    let mut logs = Map::new();
    for name in names {
        ctx.log.debug(&format!("Fetching logs for pod '{name}'"));
        let text = api.logs(name, &params).await.map_err(api_error)?;
        logs.insert(name.to_owned(), Value::String(text));
    }
    Ok(Value::Object(logs))
}

/// Seconds in one unit word, singular or plural, long or short.
fn unit_seconds(unit: &str) -> Option<i64> {
    // One plural `s`, and only on words (`mins`, `hours`): `ms` is not
    // minutes, and `s` alone is seconds.
    let unit = match unit.strip_suffix('s') {
        Some(stem) if stem.len() > 1 => stem,
        _ => unit,
    };
    Some(match unit {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hr" | "hour" => 3600,
        "d" | "day" => 86_400,
        "w" | "week" => 604_800,
        _ => return None,
    })
}

/// `last` as whole seconds: one or more `<number><unit>` parts (`90s`,
/// `10 minutes`, `1h 30m`), with an optional trailing `ago`. `None` for
/// zero, as upstream sends no `sinceSeconds` then.
pub(crate) fn parse_last(last: &str) -> Result<Option<i64>, ActivityError> {
    let bad = || {
        ActivityError::Failed(format!(
            "cannot understand last '{last}': use a duration such as '60s', '5m' or '10 minutes'"
        ))
    };
    let text = last.trim().to_lowercase();
    let text = text.strip_suffix("ago").unwrap_or(&text).trim();
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = unit_seconds(&rest[..letters]).ok_or_else(bad)?;
        rest = rest[letters..].trim_start_matches([' ', ',']);
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if text.is_empty() {
        return Err(bad());
    }
    Ok(Some(total).filter(|s| *s > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_takes_durations_like_dateparser() {
        let secs = |s: &str| parse_last(s).unwrap();
        assert_eq!(secs("60s"), Some(60));
        assert_eq!(secs("10 minutes"), Some(600));
        assert_eq!(secs("1 hour 30 minutes ago"), Some(5400));
        assert_eq!(secs("2h,5m"), Some(7500));
        assert_eq!(secs("1 day"), Some(86_400));
        assert_eq!(secs("0s"), None);
        assert_eq!(secs("3 mins"), Some(180));
        assert_eq!(secs("2 hrs"), Some(7200));
        for bad in ["", "soon", "10 fortnights", "m5", "500ms"] {
            assert!(
                parse_last(bad)
                    .unwrap_err()
                    .message()
                    .starts_with(&format!("cannot understand last '{bad}'")),
                "{bad}"
            );
        }
    }
}
