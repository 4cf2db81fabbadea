//! The columns and cells the apiserver's printers produce for the built-in
//! kinds, following `pkg/printers/internalversion`: pods, nodes,
//! deployments and services here, the workload kinds in `apps`, the core
//! kinds around them in `core`; every other built-in kind gets NAME and AGE.
//! Cells are strings or integers, exactly as the apiserver types them, so
//! kubectl prints them unchanged.

use serde_json::{Value, json};

use super::{apps, core};
use crate::store::{Ptr, str_at};

/// Which printer a resource uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printer {
    Pod,
    Node,
    Deployment,
    Service,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Hpa,
    Pdb,
    Namespace,
    ConfigMap,
    Secret,
    ServiceAccount,
    Endpoints,
    Event,
    Default,
}

impl Printer {
    /// The printer for a built-in resource (the rest: `Default`).
    pub fn of(group: &str, plural: &str) -> Self {
        match (group, plural) {
            ("", "pods") => Printer::Pod,
            ("", "nodes") => Printer::Node,
            ("apps", "deployments") => Printer::Deployment,
            ("", "services") => Printer::Service,
            ("apps", "replicasets") => Printer::ReplicaSet,
            ("apps", "statefulsets") => Printer::StatefulSet,
            ("apps", "daemonsets") => Printer::DaemonSet,
            ("batch", "jobs") => Printer::Job,
            ("batch", "cronjobs") => Printer::CronJob,
            ("autoscaling", "horizontalpodautoscalers") => Printer::Hpa,
            ("policy", "poddisruptionbudgets") => Printer::Pdb,
            ("", "namespaces") => Printer::Namespace,
            ("", "configmaps") => Printer::ConfigMap,
            ("", "secrets") => Printer::Secret,
            ("", "serviceaccounts") => Printer::ServiceAccount,
            ("", "endpoints") => Printer::Endpoints,
            ("" | "events.k8s.io", "events") => Printer::Event,
            _ => Printer::Default,
        }
    }

    /// The columns after NAME (for events: every column, NAME last);
    /// priority 1 ones only show with `-o wide`.
    fn extra(self) -> &'static [Column] {
        match self {
            Printer::Pod => POD,
            Printer::Node => NODE,
            Printer::Deployment => DEPLOYMENT,
            Printer::Service => SERVICE,
            Printer::ReplicaSet => apps::REPLICA_SET,
            Printer::StatefulSet => apps::STATEFUL_SET,
            Printer::DaemonSet => apps::DAEMON_SET,
            Printer::Job => apps::JOB,
            Printer::CronJob => apps::CRON_JOB,
            Printer::Hpa => apps::HPA,
            Printer::Pdb => apps::PDB,
            Printer::Namespace => core::NAMESPACE,
            Printer::ConfigMap => core::CONFIG_MAP,
            Printer::Secret => core::SECRET,
            Printer::ServiceAccount => core::SERVICE_ACCOUNT,
            Printer::Endpoints => core::ENDPOINTS,
            Printer::Event => core::EVENT,
            Printer::Default => &[("Age", "string", 0, AGE)],
        }
    }

    /// The `columnDefinitions` of the Table.
    pub fn columns(self) -> Vec<Value> {
        let name = json!({
            "name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": NAME,
        });
        let lead = (self != Printer::Event).then_some(name);
        lead.into_iter()
            .chain(self.extra().iter().map(|&(n, t, p, d)| {
                let format = if n == "Name" { "name" } else { "" };
                json!({ "name": n, "type": t, "format": format, "priority": p, "description": d })
            }))
            .collect()
    }

    /// One row's cells; `ago` turns a timestamp into an age as the
    /// apiserver prints it ("5m", "3h12m").
    pub fn cells(self, o: &Value, ago: &dyn Fn(&str) -> String) -> Vec<Value> {
        if self == Printer::Event {
            return core::event(o, ago);
        }
        let age = ago(str_at(o, "/metadata/creationTimestamp"));
        let mut cells = vec![json!(str_at(o, "/metadata/name"))];
        cells.extend(match self {
            Printer::Pod => pod_cells(o, age, ago),
            Printer::Node => node_cells(o, age),
            Printer::Deployment => deployment_cells(o, age),
            Printer::Service => service_cells(o, age),
            Printer::ReplicaSet => apps::replica_set(o, age),
            Printer::StatefulSet => apps::stateful_set(o, age),
            Printer::DaemonSet => apps::daemon_set(o, age),
            Printer::Job => apps::job(o, age, ago),
            Printer::CronJob => apps::cron_job(o, age, ago),
            Printer::Hpa => apps::hpa(o, age),
            Printer::Pdb => apps::pdb(o, age),
            Printer::Namespace => core::namespace(o, age),
            Printer::ConfigMap => core::config_map(o, age),
            Printer::Secret => core::secret(o, age),
            Printer::ServiceAccount => core::service_account(o, age),
            Printer::Endpoints => core::endpoints(o, age),
            Printer::Event | Printer::Default => vec![json!(age)],
        });
        cells
    }
}

const NAME: &str = "Name must be unique within a namespace.";

/// `(name, type, priority, description)` of a column.
pub type Column = (&'static str, &'static str, u8, &'static str);

const POD: &[Column] = &[
    (
        "Ready",
        "string",
        0,
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    (
        "Status",
        "string",
        0,
        "The aggregate status of the containers in this pod.",
    ),
    (
        "Restarts",
        "string",
        0,
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    ("Age", "string", 0, AGE),
    ("IP", "string", 1, "IP address allocated to the pod."),
    (
        "Node",
        "string",
        1,
        "NodeName indicates in which node this pod is scheduled.",
    ),
    (
        "Nominated Node",
        "string",
        1,
        "nominatedNodeName is set when this pod preempts other pods on the node.",
    ),
    (
        "Readiness Gates",
        "string",
        1,
        "If specified, all readiness gates will be evaluated for pod readiness.",
    ),
];

const NODE: &[Column] = &[
    ("Status", "string", 0, "The status of the node"),
    ("Roles", "string", 0, "The roles of the node"),
    ("Age", "string", 0, AGE),
    (
        "Version",
        "string",
        0,
        "Kubelet Version reported by the node.",
    ),
    (
        "Internal-IP",
        "string",
        1,
        "List of addresses reachable to the node.",
    ),
    (
        "External-IP",
        "string",
        1,
        "List of addresses reachable to the node.",
    ),
    (
        "OS-Image",
        "string",
        1,
        "OS Image reported by the node from /etc/os-release.",
    ),
    (
        "Kernel-Version",
        "string",
        1,
        "Kernel Version reported by the node.",
    ),
    (
        "Container-Runtime",
        "string",
        1,
        "ContainerRuntime Version reported by the node.",
    ),
];

const DEPLOYMENT: &[Column] = &[
    ("Ready", "string", 0, "Number of the pod with ready state"),
    (
        "Up-to-date",
        "integer",
        0,
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    (
        "Available",
        "integer",
        0,
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    ("Age", "string", 0, AGE),
    (
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    ),
    (
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    ),
    ("Selector", "string", 1, "Label selector for pods."),
];

const SERVICE: &[Column] = &[
    (
        "Type",
        "string",
        0,
        "type determines how the Service is exposed.",
    ),
    (
        "Cluster-IP",
        "string",
        0,
        "clusterIP is the IP address of the service.",
    ),
    (
        "External-IP",
        "string",
        0,
        "List of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    (
        "Port(s)",
        "string",
        0,
        "The list of ports that are exposed by this service.",
    ),
    ("Age", "string", 0, AGE),
    (
        "Selector",
        "string",
        1,
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

pub const AGE: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

/// `s`, or `<none>` when empty (the printers' placeholder).
pub fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

pub fn items<'a>(o: &'a Value, ptr: &str) -> &'a [Value] {
    o.ptr(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub fn int_at(o: &Value, ptr: &str) -> i64 {
    o.ptr(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_cells(o: &Value, age: String, ago: &dyn Fn(&str) -> String) -> Vec<Value> {
    let total = items(o, "/spec/containers").len();
    let status = pod_status(o);
    let restarts = match last_restart(o) {
        Some(at) if status.restarts > 0 => format!("{} ({} ago)", status.restarts, ago(at)),
        _ => status.restarts.to_string(),
    };
    let ip = items(o, "/status/podIPs")
        .first()
        .map_or_else(|| str_at(o, "/status/podIP"), |p| str_at(p, "/ip"));
    let gates = items(o, "/spec/readinessGates");
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ready = gates
            .iter()
            .filter(|g| {
                let kind = str_at(g, "/conditionType");
                items(o, "/status/conditions")
                    .iter()
                    .any(|c| str_at(c, "/type") == kind && str_at(c, "/status") == "True")
            })
            .count();
        format!("{ready}/{}", gates.len())
    };
    vec![
        json!(format!("{}/{total}", status.ready)),
        json!(status.reason),
        json!(restarts),
        json!(age),
        json!(or_none(ip)),
        json!(or_none(str_at(o, "/spec/nodeName"))),
        json!(or_none(str_at(o, "/status/nominatedNodeName"))),
        json!(gates),
    ]
}

/// What `printPod` derives from a pod's status.
struct PodStatus {
    ready: usize,
    reason: String,
    restarts: i64,
}

/// kubectl's STATUS rules: the phase (or status.reason), overridden by an
/// init container still running or failed (`Init:…`), then by the last
/// container waiting or terminated with a reason (`CrashLoopBackOff`,
/// `ContainerCreating`, `Completed`, `ExitCode:N`), and `Terminating` once
/// a deletion is pending on a pod that has not finished.
fn pod_status(o: &Value) -> PodStatus {
    let phase = str_at(o, "/status/phase");
    let mut reason = match str_at(o, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let mut restarts = 0;
    let mut ready = 0;
    let init_total = items(o, "/spec/initContainers").len();
    let mut initializing = false;
    for (i, c) in items(o, "/status/initContainerStatuses").iter().enumerate() {
        restarts += int_at(c, "/restartCount");
        if let Some(why) = init_reason(c, i, init_total) {
            reason = why;
            initializing = true;
            break;
        }
    }
    if !initializing {
        restarts = 0;
        let mut running = false;
        for c in items(o, "/status/containerStatuses").iter().rev() {
            restarts += int_at(c, "/restartCount");
            if let Some(why) = container_reason(c) {
                reason = why;
            } else if c.ptr("/ready") == Some(&json!(true)) && c.ptr("/state/running").is_some() {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            reason = "Running".into();
        }
    }
    let deleting = o
        .ptr("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    if deleting && str_at(o, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }
    PodStatus {
        ready,
        reason,
        restarts,
    }
}

/// The most recent `lastState.terminated.finishedAt` of the pod's containers
/// (RFC 3339 in UTC, so the greatest string is the latest time).
fn last_restart(o: &Value) -> Option<&str> {
    items(o, "/status/containerStatuses")
        .iter()
        .map(|c| str_at(c, "/lastState/terminated/finishedAt"))
        .filter(|t| !t.is_empty())
        .max()
}

/// The STATUS an init container imposes, or `None` once it has succeeded.
fn init_reason(c: &Value, i: usize, total: usize) -> Option<String> {
    let terminated = c.ptr("/state/terminated");
    if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
        return None;
    }
    if let Some(t) = terminated {
        return Some(match (str_at(t, "/reason"), int_at(t, "/signal")) {
            ("", 0) => format!("Init:ExitCode:{}", int_at(t, "/exitCode")),
            ("", sig) => format!("Init:Signal:{sig}"),
            (r, _) => format!("Init:{r}"),
        });
    }
    match str_at(c, "/state/waiting/reason") {
        "" | "PodInitializing" => Some(format!("Init:{i}/{total}")),
        r => Some(format!("Init:{r}")),
    }
}

/// The STATUS a regular container imposes (waiting or terminated), if any.
fn container_reason(c: &Value) -> Option<String> {
    let waiting = str_at(c, "/state/waiting/reason");
    if !waiting.is_empty() {
        return Some(waiting.to_string());
    }
    let t = c.ptr("/state/terminated")?;
    Some(match (str_at(t, "/reason"), int_at(t, "/signal")) {
        ("", 0) => format!("ExitCode:{}", int_at(t, "/exitCode")),
        ("", sig) => format!("Signal:{sig}"),
        (r, _) => r.to_string(),
    })
}

fn node_cells(o: &Value, age: String) -> Vec<Value> {
    let ready = items(o, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == "Ready")
        .map(|c| str_at(c, "/status"));
    let mut status = match ready {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    }
    .to_string();
    if o.ptr("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let address = |kind: &str| {
        items(o, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == kind)
            .map_or("<none>".to_string(), |a| str_at(a, "/address").to_string())
    };
    let info = |field: &str| match str_at(o, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };
    vec![
        json!(status),
        json!(node_roles(o)),
        json!(age),
        json!(str_at(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// Roles from `node-role.kubernetes.io/ROLE` labels and `kubernetes.io/role`.
fn node_roles(o: &Value) -> String {
    let mut roles: Vec<String> = o
        .ptr("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role.to_string()),
            _ if k == "kubernetes.io/role" => v.as_str().map(ToString::to_string),
            _ => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    or_none(&roles.join(","))
}

fn deployment_cells(o: &Value, age: String) -> Vec<Value> {
    let containers = items(o, "/spec/template/spec/containers");
    let join = |field: &str| {
        containers
            .iter()
            .map(|c| str_at(c, field))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        json!(format!(
            "{}/{}",
            int_at(o, "/status/readyReplicas"),
            int_at(o, "/spec/replicas")
        )),
        json!(int_at(o, "/status/updatedReplicas")),
        json!(int_at(o, "/status/availableReplicas")),
        json!(age),
        json!(join("/name")),
        json!(join("/image")),
        json!(label_selector(o.ptr("/spec/selector"))),
    ]
}

/// `metav1.FormatLabelSelector`: `k=v` pairs, then `k in (a,b)` style
/// expressions; `<none>` for an empty selector.
pub fn label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts = labels(sel.get("matchLabels"));
    for e in items(sel, "/matchExpressions") {
        let key = str_at(e, "/key");
        let values: Vec<&str> = items(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match str_at(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        });
    }
    or_none(&parts.join(","))
}

/// `k=v` pairs of a string map (serde_json keeps keys sorted, as Go does).
pub fn labels(map: Option<&Value>) -> Vec<String> {
    map.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect()
}

fn service_cells(o: &Value, age: String) -> Vec<Value> {
    let kind = match str_at(o, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let ports: Vec<String> = items(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = match str_at(p, "/protocol") {
                "" => "TCP",
                x => x,
            };
            match int_at(p, "/nodePort") {
                0 => format!("{}/{proto}", int_at(p, "/port")),
                n => format!("{}:{n}/{proto}", int_at(p, "/port")),
            }
        })
        .collect();
    let selector = labels(o.ptr("/spec/selector")).join(",");
    vec![
        json!(kind),
        json!(or_none(str_at(o, "/spec/clusterIP"))),
        json!(external_ip(o, kind)),
        json!(or_none(&ports.join(","))),
        json!(age),
        json!(or_none(&selector)),
    ]
}

/// EXTERNAL-IP as `getServiceExternalIP` prints it.
fn external_ip(o: &Value, kind: &str) -> String {
    let external: Vec<&str> = items(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match kind {
        "ExternalName" => str_at(o, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut all: Vec<&str> = items(o, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match str_at(i, "/ip") {
                    "" => str_at(i, "/hostname"),
                    ip => ip,
                })
                .collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        _ => or_none(&external.join(",")),
    }
}
