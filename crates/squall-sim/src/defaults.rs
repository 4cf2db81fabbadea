//! Defaulting and validation of built-in kinds.
//!
//! Only the defaults that clients and the controllers read are applied (pod
//! restart policy and grace period, deployment strategy, service cluster IPs
//! and target ports, namespace phase, node status); validation covers the
//! errors chaos experiments actually hit (selectors that do not match the
//! template, bad replica counts).

use crate::store::Ptr;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceDef;
use crate::selector::LabelSelector;
use crate::store::{StoreInner, str_at};

/// Sets a key if it is absent or null.
fn default_key(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        let slot = m.entry(key.to_string()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = v;
        }
    }
}

/// Ensures `obj[key]` is an object and returns it.
fn object_at<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    default_key(obj, key, json!({}));
    if !obj[key].is_object() {
        obj[key] = json!({});
    }
    &mut obj[key]
}

/// Applies defaults for the object's kind.
pub fn apply(store: &mut StoreInner, def: &ResourceDef, obj: &mut Value) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => pod(obj),
        ("", "namespaces") => {
            object_at(obj, "spec")["finalizers"] = json!(["kubernetes"]);
            object_at(obj, "status")["phase"] = json!(
                obj["metadata"]
                    .get("deletionTimestamp")
                    .map_or("Active", |_| "Terminating")
            );
        }
        ("", "nodes") => node(obj),
        ("", "services") => service(store, obj),
        ("apps", "deployments") => {
            workload(obj);
            let spec = object_at(obj, "spec");
            default_key(
                spec,
                "strategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } }),
            );
            default_key(spec, "revisionHistoryLimit", json!(10));
            default_key(spec, "progressDeadlineSeconds", json!(600));
        }
        ("apps", "replicasets") => workload(obj),
        ("apps", "statefulsets") => {
            workload(obj);
            let spec = object_at(obj, "spec");
            default_key(spec, "podManagementPolicy", json!("OrderedReady"));
            default_key(
                spec,
                "updateStrategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } }),
            );
        }
        ("apps", "daemonsets") => {
            let spec = object_at(obj, "spec");
            default_key(
                spec,
                "updateStrategy",
                json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } }),
            );
            if let Some(t) = spec.get_mut("template") {
                pod_spec(object_at(t, "spec"));
            }
        }
        _ => {}
    }
}

fn workload(obj: &mut Value) {
    let spec = object_at(obj, "spec");
    default_key(spec, "replicas", json!(1));
    if let Some(t) = spec.get_mut("template") {
        pod_spec(object_at(t, "spec"));
    }
}

fn pod(obj: &mut Value) {
    pod_spec(object_at(obj, "spec"));
    default_tolerations(object_at(obj, "spec"));
    let status = object_at(obj, "status");
    default_key(status, "phase", json!("Pending"));
    default_key(status, "qosClass", json!("BestEffort"));
}

/// The DefaultTolerationSeconds admission plugin: pods tolerate a not-ready
/// or unreachable node for 300 s before they are evicted.
fn default_tolerations(spec: &mut Value) {
    default_key(spec, "tolerations", json!([]));
    let Some(list) = spec.get_mut("tolerations").and_then(Value::as_array_mut) else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = list.iter().any(|t| {
            t["key"] == key
                && (t["effect"] == "NoExecute" || t.get("effect").is_none_or(Value::is_null))
        });
        if !present {
            list.push(json!({ "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }));
        }
    }
}

fn pod_spec(spec: &mut Value) {
    default_key(spec, "restartPolicy", json!("Always"));
    default_key(spec, "terminationGracePeriodSeconds", json!(30));
    default_key(spec, "dnsPolicy", json!("ClusterFirst"));
    default_key(spec, "schedulerName", json!("default-scheduler"));
    default_key(spec, "serviceAccountName", json!("default"));
    for c in spec
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        default_key(c, "imagePullPolicy", json!("IfNotPresent"));
        default_key(c, "terminationMessagePath", json!("/dev/termination-log"));
        for p in c
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            default_key(p, "protocol", json!("TCP"));
        }
    }
}

fn node(obj: &mut Value) {
    let name = str_at(obj, "/metadata/name").to_string();
    let labels = object_at(object_at(obj, "metadata"), "labels");
    default_key(labels, "kubernetes.io/hostname", json!(name));
    default_key(labels, "kubernetes.io/os", json!("linux"));
    default_key(labels, "kubernetes.io/arch", json!("amd64"));
    let status = object_at(obj, "status");
    let resources =
        json!({ "cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi" });
    default_key(status, "capacity", resources.clone());
    default_key(status, "allocatable", resources);
    default_key(
        status,
        "conditions",
        json!([{ "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status" }]),
    );
    default_key(
        status,
        "nodeInfo",
        json!({ "kubeletVersion": "v1.33.0", "containerRuntimeVersion": "containerd://2.0.0", "operatingSystem": "linux", "architecture": "amd64", "osImage": "squall-sim" }),
    );
}

fn service(store: &mut StoreInner, obj: &mut Value) {
    // An update that omits allocated values keeps them, as the apiserver does.
    let (ns, name) = crate::store::obj_key(obj);
    let old = store.get("", "services", &ns, &name).cloned();
    let spec = object_at(obj, "spec");
    default_key(spec, "type", json!("ClusterIP"));
    default_key(spec, "sessionAffinity", json!("None"));
    let node_ports = matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"));
    let start = store.random_below(2768);
    let mut used: Vec<i64> = store
        .list("", "services", None)
        .iter()
        .flat_map(|s| node_ports_of(s))
        .collect();
    for (i, p) in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
    {
        default_key(p, "protocol", json!("TCP"));
        let port = p.get("port").cloned().unwrap_or(Value::Null);
        default_key(p, "targetPort", port);
        if node_ports && p.get("nodePort").and_then(Value::as_i64).is_none() {
            let kept = old.as_ref().and_then(|o| {
                o.ptr(&format!("/spec/ports/{i}/nodePort"))
                    .and_then(Value::as_i64)
            });
            let n = kept.unwrap_or_else(|| free_node_port(&used, start));
            used.push(n);
            if let Some(m) = p.as_object_mut() {
                m.insert("nodePort".into(), json!(n));
            }
        }
    }
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let kept = old
            .as_ref()
            .and_then(|o| o.ptr("/spec/clusterIP"))
            .and_then(Value::as_str)
            .map(ToString::to_string);
        let ip = kept.unwrap_or_else(|| free_cluster_ip(store));
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    } else if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        let ip = spec["clusterIP"].clone();
        default_key(spec, "clusterIPs", json!([ip]));
    }
}

fn node_ports_of(svc: &Value) -> Vec<i64> {
    svc.ptr("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect()
}

/// A free port in the NodePort range 30000–32767, searched from `start`.
fn free_node_port(used: &[i64], start: u64) -> i64 {
    let start = i64::try_from(start).unwrap_or(0);
    (0..2768)
        .map(|i| 30_000 + (start + i) % 2768)
        .find(|p| !used.contains(p))
        .unwrap_or(32_767)
}

fn free_cluster_ip(store: &StoreInner) -> String {
    let used: Vec<&str> = store
        .list("", "services", None)
        .iter()
        .map(|s| str_at(s, "/spec/clusterIP"))
        .collect();
    (1u32..65_000)
        .map(|n| format!("10.96.{}.{}", n / 250, n % 250 + 1))
        .find(|ip| !used.contains(&ip.as_str()))
        .unwrap_or_else(|| "10.96.255.254".into())
}

/// Validates the object's kind-specific rules.
pub fn validate(def: &ResourceDef, obj: &Value) -> ApiResult<()> {
    let name = str_at(obj, "/metadata/name");
    let invalid = |field: &str, reason: &str, detail: &str| {
        Err(ApiError::invalid(
            &def.kind, name, &def.group, field, reason, detail,
        ))
    };
    if let Some(r) = obj.ptr("/spec/replicas")
        && r.as_i64().is_none_or(|r| r < 0)
    {
        return invalid(
            "spec.replicas",
            "FieldValueInvalid",
            &format!("{r}: must be greater than or equal to 0"),
        );
    }
    let workload = def.group == "apps";
    if workload {
        let Some(sel) = obj
            .ptr("/spec/selector")
            .and_then(LabelSelector::from_object)
        else {
            return invalid("spec.selector", "FieldValueRequired", "Required value");
        };
        if sel.is_empty() {
            return invalid(
                "spec.selector",
                "FieldValueInvalid",
                "empty selector is invalid for deployment",
            );
        }
        if !sel.matches_labels(obj.ptr("/spec/template/metadata/labels")) {
            let labels = obj
                .ptr("/spec/template/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            return invalid(
                "spec.template.metadata.labels",
                "FieldValueInvalid",
                &format!("{labels}: `selector` does not match template `labels`"),
            );
        }
    }
    if def.group.is_empty() && def.plural == "pods" {
        let containers = obj.ptr("/spec/containers").and_then(Value::as_array);
        if containers.is_none_or(Vec::is_empty) {
            return invalid("spec.containers", "FieldValueRequired", "Required value");
        }
    }
    Ok(())
}
