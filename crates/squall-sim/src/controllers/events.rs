//! Events recorded by the simulated components (scheduler, controllers,
//! kubelet), written both as core/v1 `Event`s (what `kubectl get events`
//! shows) and as `events.k8s.io/v1` Events (what the Chaos Toolkit
//! `get_events` probe reads). The oldest are dropped beyond a cap, as the
//! apiserver's event TTL would.

use serde_json::{Value, json};

use crate::store::{StoreInner, str_at};

/// Maximum number of events kept (per API group).
const MAX_EVENTS: usize = 1000;

/// Records a Normal or Warning event about `involved` from `component`.
pub fn record(
    store: &mut StoreInner,
    involved: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let ns = match str_at(involved, "/metadata/namespace") {
        "" => "default".to_string(),
        ns => ns.to_string(),
    };
    let name = format!(
        "{}.{:016x}",
        str_at(involved, "/metadata/name"),
        store.random_below(u64::MAX)
    );
    let reference = json!({
        "apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": involved["metadata"]["name"],
        "namespace": involved["metadata"]["namespace"], "uid": involved["metadata"]["uid"],
        "resourceVersion": involved["metadata"]["resourceVersion"]
    });
    let ts = store.clock.timestamp();
    let micro = store.clock.micro_timestamp();
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": { "name": name, "namespace": ns },
        "involvedObject": reference, "reason": reason, "message": message, "type": kind,
        "source": { "component": component }, "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
        "eventTime": null, "reportingComponent": component, "reportingInstance": ""
    });
    let modern = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": { "name": name, "namespace": ns },
        "regarding": reference, "reason": reason, "note": message, "type": kind, "action": reason,
        "eventTime": micro, "reportingController": component, "reportingInstance": component,
        "deprecatedFirstTimestamp": ts, "deprecatedLastTimestamp": ts, "deprecatedCount": 1
    });
    store.insert("", "events", core);
    store.insert("events.k8s.io", "events", modern);
    store.event_log.push_back((ns, name));
    while store.event_log.len() > MAX_EVENTS {
        if let Some((ns, name)) = store.event_log.pop_front() {
            store.remove("", "events", &ns, &name);
            store.remove("events.k8s.io", "events", &ns, &name);
        }
    }
}
