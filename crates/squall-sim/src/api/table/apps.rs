//! Printers for the workload and policy kinds (ReplicaSet, StatefulSet,
//! DaemonSet, Job, CronJob, HorizontalPodAutoscaler, PodDisruptionBudget),
//! following `pkg/printers/internalversion/printers.go` of Kubernetes 1.33:
//! the same columns, the same cell types (an integer column stays an
//! integer, so kubectl aligns it the same way) and the same placeholders.

use serde_json::{Value, json};

use super::columns::{AGE, Column, int_at, items, label_selector, labels, or_none};
use crate::store::{Ptr, str_at};

const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";

pub const REPLICA_SET: &[Column] = &[
    (
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired pods.",
    ),
    (
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of non-terminating pods.",
    ),
    (
        "Ready",
        "integer",
        0,
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    ("Age", "string", 0, AGE),
    ("Containers", "string", 1, CONTAINERS),
    ("Images", "string", 1, IMAGES),
    (
        "Selector",
        "string",
        1,
        "Selector is a label query over pods that should match the replica count.",
    ),
];

pub const STATEFUL_SET: &[Column] = &[
    ("Ready", "string", 0, "Number of the pod with ready state"),
    ("Age", "string", 0, AGE),
    ("Containers", "string", 1, CONTAINERS),
    ("Images", "string", 1, IMAGES),
];

pub const DAEMON_SET: &[Column] = &[
    (
        "Desired",
        "integer",
        0,
        "The total number of nodes that should be running the daemon pod.",
    ),
    (
        "Current",
        "integer",
        0,
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    (
        "Ready",
        "integer",
        0,
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    ),
    (
        "Up-to-date",
        "integer",
        0,
        "The total number of nodes that are running updated daemon pod",
    ),
    (
        "Available",
        "integer",
        0,
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
    ),
    (
        "Node Selector",
        "string",
        0,
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    ("Age", "string", 0, AGE),
    ("Containers", "string", 1, CONTAINERS),
    ("Images", "string", 1, IMAGES),
    (
        "Selector",
        "string",
        1,
        "A label query over pods that are managed by the daemon set.",
    ),
];

pub const JOB: &[Column] = &[
    ("Status", "string", 0, "Status of the job."),
    (
        "Completions",
        "string",
        0,
        "The number of pods which reached phase Succeeded.",
    ),
    (
        "Duration",
        "string",
        0,
        "Time required to complete the job.",
    ),
    ("Age", "string", 0, AGE),
    ("Containers", "string", 1, CONTAINERS),
    ("Images", "string", 1, IMAGES),
    (
        "Selector",
        "string",
        1,
        "A label query over pods that should match the pod count.",
    ),
];

pub const CRON_JOB: &[Column] = &[
    (
        "Schedule",
        "string",
        0,
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    (
        "Timezone",
        "string",
        0,
        "The time zone name for the given schedule.",
    ),
    (
        "Suspend",
        "boolean",
        0,
        "This flag tells the controller to suspend subsequent executions.",
    ),
    (
        "Active",
        "integer",
        0,
        "A list of pointers to currently running jobs.",
    ),
    (
        "Last Schedule",
        "string",
        0,
        "Information when was the last time the job was successfully scheduled.",
    ),
    ("Age", "string", 0, AGE),
    ("Containers", "string", 1, CONTAINERS),
    ("Images", "string", 1, IMAGES),
    (
        "Selector",
        "string",
        1,
        "A label query over pods that should match the pod count.",
    ),
];

pub const HPA: &[Column] = &[
    (
        "Reference",
        "string",
        0,
        "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
    ),
    (
        "Targets",
        "string",
        0,
        "metrics contains the specifications for which to use to calculate the desired replica count.",
    ),
    (
        "MinPods",
        "string",
        0,
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
    ),
    (
        "MaxPods",
        "string",
        0,
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
    ),
    (
        "Replicas",
        "string",
        0,
        "currentReplicas is current number of replicas of pods managed by this autoscaler.",
    ),
    ("Age", "string", 0, AGE),
];

pub const PDB: &[Column] = &[
    (
        "Min Available",
        "string",
        0,
        "The minimum number of pods that must be available.",
    ),
    (
        "Max Unavailable",
        "string",
        0,
        "The maximum number of pods that may be unavailable.",
    ),
    (
        "Allowed Disruptions",
        "integer",
        0,
        "Calculated number of pods that may be disrupted at this time.",
    ),
    ("Age", "string", 0, AGE),
];

/// `layoutContainerCells`: container names and images, comma-joined.
fn containers(o: &Value, ptr: &str) -> [Value; 2] {
    let list = items(o, ptr);
    let join = |field: &str| {
        list.iter()
            .map(|c| str_at(c, field))
            .collect::<Vec<_>>()
            .join(",")
    };
    [json!(join("/name")), json!(join("/image"))]
}

pub fn replica_set(o: &Value, age: String) -> Vec<Value> {
    let mut cells = vec![
        json!(int_at(o, "/spec/replicas")),
        json!(int_at(o, "/status/replicas")),
        json!(int_at(o, "/status/readyReplicas")),
        json!(age),
    ];
    cells.extend(containers(o, "/spec/template/spec/containers"));
    cells.push(json!(label_selector(o.ptr("/spec/selector"))));
    cells
}

pub fn stateful_set(o: &Value, age: String) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        int_at(o, "/status/readyReplicas"),
        int_at(o, "/spec/replicas")
    );
    let mut cells = vec![json!(ready), json!(age)];
    cells.extend(containers(o, "/spec/template/spec/containers"));
    cells
}

pub fn daemon_set(o: &Value, age: String) -> Vec<Value> {
    let mut cells: Vec<Value> = [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ]
    .iter()
    .map(|f| json!(int_at(o, &format!("/status/{f}"))))
    .collect();
    // `labels.FormatLabels`: `<none>` for an empty map.
    let node_selector = labels(o.ptr("/spec/template/spec/nodeSelector")).join(",");
    cells.push(json!(or_none(&node_selector)));
    cells.push(json!(age));
    cells.extend(containers(o, "/spec/template/spec/containers"));
    cells.push(json!(label_selector(o.ptr("/spec/selector"))));
    cells
}

/// Whether a Job condition of this type is `True` (the first one decides).
fn has_condition(o: &Value, kind: &str) -> bool {
    items(o, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == kind)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn job_status(o: &Value) -> &'static str {
    let deleting = o
        .ptr("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

pub fn job(o: &Value, age: String, ago: &dyn Fn(&str) -> String) -> Vec<Value> {
    let succeeded = int_at(o, "/status/succeeded");
    let completions = match o.ptr("/spec/completions").and_then(Value::as_i64) {
        Some(n) => format!("{succeeded}/{n}"),
        None => match int_at(o, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let (start, end) = (
        str_at(o, "/status/startTime"),
        str_at(o, "/status/completionTime"),
    );
    let duration = match (start, end) {
        ("", _) => String::new(),
        (start, "") => ago(start),
        (start, end) => super::span(start, end),
    };
    let mut cells = vec![
        json!(job_status(o)),
        json!(completions),
        json!(duration),
        json!(age),
    ];
    cells.extend(containers(o, "/spec/template/spec/containers"));
    cells.push(json!(label_selector(o.ptr("/spec/selector"))));
    cells
}

pub fn cron_job(o: &Value, age: String, ago: &dyn Fn(&str) -> String) -> Vec<Value> {
    let last = match str_at(o, "/status/lastScheduleTime") {
        "" => "<none>".to_string(),
        at => ago(at),
    };
    // `printBoolPtr`.
    let suspend = match o.ptr("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let mut cells = vec![
        json!(str_at(o, "/spec/schedule")),
        json!(or_none(str_at(o, "/spec/timeZone"))),
        json!(suspend),
        json!(items(o, "/status/active").len()),
        json!(last),
        json!(age),
    ];
    cells.extend(containers(
        o,
        "/spec/jobTemplate/spec/template/spec/containers",
    ));
    cells.push(json!(label_selector(
        o.ptr("/spec/jobTemplate/spec/selector")
    )));
    cells
}

pub fn hpa(o: &Value, age: String) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(o, "/spec/scaleTargetRef/kind"),
        str_at(o, "/spec/scaleTargetRef/name")
    );
    let min = o
        .ptr("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or("<unset>".to_string(), |n| n.to_string());
    vec![
        json!(reference),
        json!(hpa_targets(o)),
        json!(min),
        json!(int_at(o, "/spec/maxReplicas")),
        json!(int_at(o, "/status/currentReplicas")),
        json!(age),
    ]
}

/// A `resource.Quantity` as JSON holds it (a string or a number).
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<unknown>".into(),
    }
}

/// `formatHPAMetrics`: `cpu: 12%/80%` per metric (at most two, then
/// `+ N more...`), `<unknown>` for a value the status does not report yet.
/// An autoscaling/v1 object's `targetCPUUtilizationPercentage` is the
/// single CPU metric the internal version converts it to.
fn hpa_targets(o: &Value) -> String {
    let mut specs = items(o, "/spec/metrics").to_vec();
    let mut statuses = items(o, "/status/currentMetrics").to_vec();
    if let Some(pct) = o.ptr("/spec/targetCPUUtilizationPercentage") {
        specs = vec![json!({ "type": "Resource", "resource": { "name": "cpu",
            "target": { "type": "Utilization", "averageUtilization": pct } } })];
        if let Some(cur) = o.ptr("/status/currentCPUUtilizationPercentage") {
            statuses = vec![json!({ "type": "Resource", "resource": { "name": "cpu",
                "current": { "averageUtilization": cur } } })];
        }
    }
    if specs.is_empty() {
        return "<none>".into();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| hpa_metric(spec, statuses.get(i)))
        .collect();
    if list.len() > 2 {
        format!("{} + {} more...", list[..2].join(", "), list.len() - 2)
    } else {
        list.join(", ")
    }
}

fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    let source = match str_at(spec, "/type") {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return "<unknown type>".into(),
    };
    let target = spec.get(source).and_then(|s| s.get("target"));
    let current = status
        .and_then(|s| s.get(source))
        .and_then(|s| s.get("current"));
    let cur = |field: &str| quantity(current.and_then(|c| c.get(field)));
    let tgt = |field: &str| quantity(target.and_then(|t| t.get(field)));
    let has_avg = target.and_then(|t| t.get("averageValue")).is_some();
    match source {
        "resource" | "containerResource" => {
            let name = str_at(&spec[source], "/name");
            if has_avg {
                return format!("{name}: {}/{}", cur("averageValue"), tgt("averageValue"));
            }
            let pct = |v: Option<&Value>| v.and_then(Value::as_i64).map(|n| format!("{n}%"));
            let current = pct(current.and_then(|c| c.get("averageUtilization")))
                .unwrap_or_else(|| "<unknown>".into());
            let target = pct(target.and_then(|t| t.get("averageUtilization")))
                .unwrap_or_else(|| "<auto>".into());
            format!("{name}: {current}/{target}")
        }
        "pods" => format!("{}/{}", cur("averageValue"), tgt("averageValue")),
        _ if has_avg => format!("{}/{} (avg)", cur("averageValue"), tgt("averageValue")),
        _ => format!("{}/{}", cur("value"), tgt("value")),
    }
}

/// An IntOrString as `intstr.String()` prints it, or `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    }
}

pub fn pdb(o: &Value, age: String) -> Vec<Value> {
    vec![
        json!(int_or_string(o.ptr("/spec/minAvailable"))),
        json!(int_or_string(o.ptr("/spec/maxUnavailable"))),
        json!(int_at(o, "/status/disruptionsAllowed")),
        json!(age),
    ]
}
