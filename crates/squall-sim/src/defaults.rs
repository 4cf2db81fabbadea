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
        // The API's defaults for kinds the sandbox stores but does not run,
        // so they print (`kubectl get secret,job,cronjob`) as on a cluster.
        ("", "secrets") => default_key(obj, "type", json!("Opaque")),
        ("batch", "jobs") => job_spec(object_at(obj, "spec")),
        ("batch", "cronjobs") => {
            let spec = object_at(obj, "spec");
            default_key(spec, "concurrencyPolicy", json!("Allow"));
            default_key(spec, "suspend", json!(false));
            default_key(spec, "successfulJobsHistoryLimit", json!(3));
            default_key(spec, "failedJobsHistoryLimit", json!(1));
            if let Some(t) = spec.get_mut("jobTemplate") {
                job_spec(object_at(t, "spec"));
            }
        }
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

/// `SetDefaults_Job`: one pod to completion, six retries.
fn job_spec(spec: &mut Value) {
    default_key(spec, "parallelism", json!(1));
    default_key(spec, "completions", json!(1));
    default_key(spec, "backoffLimit", json!(6));
    default_key(spec, "completionMode", json!("NonIndexed"));
    default_key(spec, "suspend", json!(false));
    default_key(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if let Some(t) = spec.get_mut("template") {
        pod_spec(object_at(t, "spec"));
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
    let name = str_at(obj, "/metadata/name").to_string();
    pod_spec(object_at(obj, "spec"));
    default_tolerations(object_at(obj, "spec"));
    service_account_volume(object_at(obj, "spec"), &name);
    let status = object_at(obj, "status");
    default_key(status, "phase", json!("Pending"));
    default_key(status, "qosClass", json!("BestEffort"));
}

/// The ServiceAccount admission plugin: every pod that does not opt out
/// gets a projected `kube-api-access-xxxxx` volume with the token, CA and
/// namespace, mounted read-only in each container. Clients rely on it
/// (chaostoolkit-kubernetes' drain iterates `spec.volumes`). The suffix is
/// derived from the pod's name so the sandbox stays repeatable.
fn service_account_volume(spec: &mut Value, pod: &str) {
    if spec["automountServiceAccountToken"] == json!(false) {
        return;
    }
    default_key(spec, "volumes", json!([]));
    let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) else {
        return;
    };
    let has = |v: &Value| {
        v["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-"))
    };
    if volumes.iter().any(has) {
        return;
    }
    let name = format!("kube-api-access-{}", name_suffix(pod));
    volumes.push(json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]}}));
    let mount = json!({"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
    for c in spec
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        default_key(c, "volumeMounts", json!([]));
        if let Some(m) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
            m.push(mount.clone());
        }
    }
}

/// Five characters from the apiserver's random-suffix alphabet, taken
/// from a hash of `seed` (FNV-1a).
fn name_suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..5)
        .map(|i| {
            let idx = usize::try_from((h >> (i * 8)) % 27).unwrap_or(0);
            char::from(ALPHABET[idx])
        })
        .collect()
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
    default_key(status, "nodeInfo", node_info(&name));
}

/// What a kubelet reports about its node: every field of `NodeSystemInfo`
/// (strict clients, such as the Python client's models, refuse a node
/// without them), with ids derived from the node's name.
fn node_info(name: &str) -> Value {
    let id = format!("{:0>32}", name_suffix(name).repeat(7));
    json!({
        "machineID": &id[..32],
        "systemUUID": format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]),
        "bootID": format!("{}-boot", name_suffix(&format!("{name}/boot"))),
        "kernelVersion": "6.1.0-squall-sim",
        "osImage": "squall-sim",
        "containerRuntimeVersion": "containerd://2.0.0",
        "kubeletVersion": "v1.33.0",
        "kubeProxyVersion": "v1.33.0",
        "operatingSystem": "linux",
        "architecture": "amd64",
    })
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
    // An ExternalName service is a DNS alias: no cluster IP is allocated.
    let external_name = spec["type"] == "ExternalName";
    if !external_name
        && spec
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_the_service_account_volume_once() {
        let mut spec = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        service_account_volume(&mut spec, "web-1");
        service_account_volume(&mut spec, "web-1");
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1, "added once");
        let name = volumes[0]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        for c in spec["containers"].as_array().unwrap() {
            assert_eq!(c["volumeMounts"][0]["name"], name);
            assert_eq!(
                c["volumeMounts"][0]["mountPath"],
                "/var/run/secrets/kubernetes.io/serviceaccount"
            );
        }
        let mut opted_out = json!({"automountServiceAccountToken": false, "containers": [{}]});
        service_account_volume(&mut opted_out, "web-2");
        assert!(opted_out.get("volumes").is_none());
    }

    #[test]
    fn nodes_report_every_system_info_field() {
        let info = node_info("node-1");
        for field in [
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        ] {
            assert!(
                info[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field}"
            );
        }
        assert_ne!(info["machineID"], node_info("node-2")["machineID"]);
    }
}
