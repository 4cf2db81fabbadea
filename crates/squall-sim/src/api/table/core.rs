//! Printers for the core kinds around workloads (Namespace, ConfigMap,
//! Secret, Endpoints, Event, ServiceAccount), following
//! `pkg/printers/internalversion/printers.go` of Kubernetes 1.33.
//!
//! Events are the one kind whose NAME is not the first column: the apiserver
//! puts LAST SEEN first and NAME last, at priority 1 (only `-o wide`).

use serde_json::{Value, json};

use super::columns::{AGE, Column, int_at, items};
use crate::store::{Ptr, str_at};

pub const NAMESPACE: &[Column] = &[
    ("Status", "string", 0, "The status of the namespace"),
    ("Age", "string", 0, AGE),
];

pub const CONFIG_MAP: &[Column] = &[
    ("Data", "string", 0, "Data contains the configuration data."),
    ("Age", "string", 0, AGE),
];

pub const SECRET: &[Column] = &[
    (
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    ("Data", "string", 0, "Data contains the secret data."),
    ("Age", "string", 0, AGE),
];

pub const SERVICE_ACCOUNT: &[Column] = &[
    (
        "Secrets",
        "string",
        0,
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    ("Age", "string", 0, AGE),
];

pub const ENDPOINTS: &[Column] = &[
    (
        "Endpoints",
        "string",
        0,
        "The set of all endpoints is the union of all subsets.",
    ),
    ("Age", "string", 0, AGE),
];

/// Every column of the event table, NAME included (see the module doc).
pub const EVENT: &[Column] = &[
    (
        "Last Seen",
        "string",
        0,
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    (
        "Type",
        "string",
        0,
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    (
        "Reason",
        "string",
        0,
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    (
        "Object",
        "string",
        0,
        "The object that this event is about.",
    ),
    (
        "Subobject",
        "string",
        1,
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
    ),
    (
        "Source",
        "string",
        1,
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    (
        "Message",
        "string",
        0,
        "A human-readable description of the status of this operation.",
    ),
    (
        "First Seen",
        "string",
        1,
        "The time at which the event was first recorded.",
    ),
    (
        "Count",
        "string",
        1,
        "The number of times this event has occurred.",
    ),
    (
        "Name",
        "string",
        1,
        "Name must be unique within a namespace.",
    ),
];

fn map_len(o: &Value, ptr: &str) -> usize {
    o.ptr(ptr).and_then(Value::as_object).map_or(0, |m| m.len())
}

pub fn namespace(o: &Value, age: String) -> Vec<Value> {
    vec![json!(str_at(o, "/status/phase")), json!(age)]
}

pub fn config_map(o: &Value, age: String) -> Vec<Value> {
    let n = map_len(o, "/data") + map_len(o, "/binaryData");
    vec![json!(n), json!(age)]
}

pub fn secret(o: &Value, age: String) -> Vec<Value> {
    vec![
        json!(str_at(o, "/type")),
        json!(map_len(o, "/data")),
        json!(age),
    ]
}

pub fn service_account(o: &Value, age: String) -> Vec<Value> {
    vec![json!(items(o, "/secrets").len()), json!(age)]
}

pub fn endpoints(o: &Value, age: String) -> Vec<Value> {
    vec![json!(format_endpoints(o)), json!(age)]
}

/// `formatEndpoints`: `ip:port` for every address and port (bare IPs for a
/// subset without ports), the first three, then `+ N more...`.
fn format_endpoints(o: &Value) -> String {
    let subsets = items(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for ss in subsets {
        let ips: Vec<&str> = items(ss, "/addresses")
            .iter()
            .map(|a| str_at(a, "/ip"))
            .collect();
        let ports = items(ss, "/ports");
        if ports.is_empty() {
            all.extend(ips.iter().map(ToString::to_string));
        }
        for p in ports {
            let port = int_at(p, "/port");
            all.extend(ips.iter().map(|ip| {
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            }));
        }
    }
    if all.len() > 3 {
        format!("{} + {} more...", all[..3].join(","), all.len() - 3)
    } else {
        all.join(",")
    }
}

/// An event's fields under their core/v1 names; an `events.k8s.io/v1`
/// Event (served from the same storage by a real apiserver, so printed by
/// the same printer) names them differently.
struct EventView<'a> {
    first: &'a str,
    last: &'a str,
    event_time: &'a str,
    series_last: &'a str,
    series_count: Option<i64>,
    count: i64,
    object: &'a Value,
    message: &'a str,
    component: &'a str,
    host: &'a str,
}

fn event_view(o: &Value) -> EventView<'_> {
    let modern = o.get("regarding").is_some() || o.get("note").is_some();
    let pick = |core: &str, new: &str| str_at(o, if modern { new } else { core });
    let series_count = o.ptr("/series/count").and_then(Value::as_i64);
    EventView {
        first: pick("/firstTimestamp", "/deprecatedFirstTimestamp"),
        last: pick("/lastTimestamp", "/deprecatedLastTimestamp"),
        event_time: str_at(o, "/eventTime"),
        series_last: str_at(o, "/series/lastObservedTime"),
        series_count,
        count: o
            .ptr(if modern { "/deprecatedCount" } else { "/count" })
            .and_then(Value::as_i64)
            .unwrap_or(0),
        object: o
            .get(if modern {
                "regarding"
            } else {
                "involvedObject"
            })
            .unwrap_or(&Value::Null),
        message: pick("/message", "/note"),
        component: match pick("/source/component", "/deprecatedSource/component") {
            "" => pick("/reportingComponent", "/reportingController"),
            c => c,
        },
        host: match pick("/source/host", "/deprecatedSource/host") {
            "" => str_at(o, "/reportingInstance"),
            h => h,
        },
    }
}

/// All the cells of an event row, NAME last (see `EVENT`).
pub fn event(o: &Value, ago: &dyn Fn(&str) -> String) -> Vec<Value> {
    let e = event_view(o);
    let since = |at: &str| match at {
        "" => "<unknown>".to_string(),
        at => ago(at),
    };
    let first = match e.first {
        "" => since(e.event_time),
        at => ago(at),
    };
    let mut last = match e.last {
        "" => first.clone(),
        at => ago(at),
    };
    let mut count = e.count;
    if let Some(n) = e.series_count {
        last = since(e.series_last);
        count = n;
    } else if count == 0 {
        // Singleton events carry no count in the new API.
        count = 1;
    }
    let kind = str_at(e.object, "/kind").to_ascii_lowercase();
    let target = match str_at(e.object, "/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let source = if e.host.is_empty() {
        e.component.to_string()
    } else {
        format!("{}, {}", e.component, e.host)
    };
    vec![
        json!(last),
        json!(str_at(o, "/type")),
        json!(str_at(o, "/reason")),
        json!(target),
        json!(str_at(e.object, "/fieldPath")),
        json!(source),
        json!(e.message.trim()),
        json!(first),
        json!(count),
        json!(str_at(o, "/metadata/name")),
    ]
}
