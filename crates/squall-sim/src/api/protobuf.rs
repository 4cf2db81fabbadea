//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which
//! kubectl's typed clients send for `kubectl create deployment|namespace|
//! configmap|secret|service|job|cronjob|serviceaccount|poddisruptionbudget`
//! and which a real apiserver always accepts for built-in kinds (there is
//! no fallback to JSON a server could ask for).
//!
//! A body is the `k8s\0` magic, then a `runtime.Unknown` envelope
//! (typeMeta, raw, contentEncoding, contentType) whose `raw` is the object's
//! message. The messages are decoded with a table of field numbers taken
//! from `k8s.io/api`'s `generated.proto` files into the JSON object the same
//! request would have sent, which the rest of the API then handles.
//!
//! Go's protobuf marshalling writes every non-pointer field, zero or not,
//! so a zero scalar or empty message is "unset" and left out, as JSON's
//! `omitempty` would; fields that are pointers in Go (`replicas`,
//! `suspend`, …) keep their zero values. A field number missing from the
//! table, or a message the table does not describe holding data, is an
//! error: the request is refused with 415 rather than creating an object
//! that silently lost part of what the user sent.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// The media type kubectl's typed clients send.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// How a field is encoded and turned into JSON.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Msg(&'static Message),
    /// `map<string, string>`.
    StrMap,
    /// `map<string, bytes>`.
    BytesMap,
    /// `map<string, Quantity>`.
    QuantityMap,
    IntOrStr,
    Time,
    /// A message the table does not describe: accepted only when empty.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// A Go value field: its zero value means unset.
    Plain,
    /// A Go pointer field: present means set, zero included.
    Ptr,
    Repeated,
}

#[derive(Debug)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    mode: Mode,
}

#[derive(Debug)]
struct Message {
    name: &'static str,
    fields: &'static [Field],
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        mode: Mode::Plain,
    }
}

const fn p(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        mode: Mode::Ptr,
    }
}

const fn r(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        mode: Mode::Repeated,
    }
}

use Ty::{Bool, BytesMap, Int, IntOrStr, Msg, Opaque, QuantityMap, Str, StrMap, Time};

// k8s.io/apimachinery/pkg/apis/meta/v1

static OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        f(1, "name", Str),
        f(2, "generateName", Str),
        f(3, "namespace", Str),
        f(4, "selfLink", Str),
        f(5, "uid", Str),
        f(6, "resourceVersion", Str),
        f(7, "generation", Int),
        f(8, "creationTimestamp", Time),
        p(9, "deletionTimestamp", Time),
        p(10, "deletionGracePeriodSeconds", Int),
        f(11, "labels", StrMap),
        f(12, "annotations", StrMap),
        r(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        r(14, "finalizers", Str),
        r(17, "managedFields", Opaque),
    ],
};

static OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        f(5, "apiVersion", Str),
        f(1, "kind", Str),
        f(3, "name", Str),
        f(4, "uid", Str),
        p(6, "controller", Bool),
        p(7, "blockOwnerDeletion", Bool),
    ],
};

static LABEL_SELECTOR: Message = Message {
    name: "LabelSelector",
    fields: &[
        f(1, "matchLabels", StrMap),
        r(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "LabelSelectorRequirement",
    fields: &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)],
};

// k8s.io/api/core/v1: pods

static POD_TEMPLATE_SPEC: Message = Message {
    name: "PodTemplateSpec",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&POD_SPEC)),
    ],
};

static POD_SPEC: Message = Message {
    name: "PodSpec",
    fields: &[
        r(1, "volumes", Opaque),
        r(20, "initContainers", Msg(&CONTAINER)),
        r(2, "containers", Msg(&CONTAINER)),
        r(34, "ephemeralContainers", Opaque),
        f(3, "restartPolicy", Str),
        p(4, "terminationGracePeriodSeconds", Int),
        p(5, "activeDeadlineSeconds", Int),
        f(6, "dnsPolicy", Str),
        f(7, "nodeSelector", StrMap),
        f(8, "serviceAccountName", Str),
        f(9, "serviceAccount", Str),
        p(21, "automountServiceAccountToken", Bool),
        f(10, "nodeName", Str),
        f(11, "hostNetwork", Bool),
        f(12, "hostPID", Bool),
        f(13, "hostIPC", Bool),
        p(27, "shareProcessNamespace", Bool),
        p(14, "securityContext", Opaque),
        r(15, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        f(16, "hostname", Str),
        f(17, "subdomain", Str),
        p(18, "affinity", Opaque),
        f(19, "schedulerName", Str),
        r(22, "tolerations", Opaque),
        r(23, "hostAliases", Opaque),
        f(24, "priorityClassName", Str),
        p(25, "priority", Int),
        p(26, "dnsConfig", Opaque),
        r(28, "readinessGates", Opaque),
        p(29, "runtimeClassName", Str),
        p(30, "enableServiceLinks", Bool),
        p(31, "preemptionPolicy", Str),
        f(32, "overhead", QuantityMap),
        r(33, "topologySpreadConstraints", Opaque),
        p(35, "setHostnameAsFQDN", Bool),
        p(36, "os", Opaque),
        p(37, "hostUsers", Bool),
        r(38, "schedulingGates", Opaque),
        r(39, "resourceClaims", Opaque),
        p(40, "resources", Msg(&RESOURCE_REQUIREMENTS)),
    ],
};

static CONTAINER: Message = Message {
    name: "Container",
    fields: &[
        f(1, "name", Str),
        f(2, "image", Str),
        r(3, "command", Str),
        r(4, "args", Str),
        f(5, "workingDir", Str),
        r(6, "ports", Msg(&CONTAINER_PORT)),
        r(19, "envFrom", Opaque),
        r(7, "env", Msg(&ENV_VAR)),
        f(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        r(23, "resizePolicy", Opaque),
        p(24, "restartPolicy", Str),
        r(9, "volumeMounts", Opaque),
        r(21, "volumeDevices", Opaque),
        p(10, "livenessProbe", Opaque),
        p(11, "readinessProbe", Opaque),
        p(22, "startupProbe", Opaque),
        p(12, "lifecycle", Opaque),
        f(13, "terminationMessagePath", Str),
        f(20, "terminationMessagePolicy", Str),
        f(14, "imagePullPolicy", Str),
        p(15, "securityContext", Opaque),
        f(16, "stdin", Bool),
        f(17, "stdinOnce", Bool),
        f(18, "tty", Bool),
    ],
};

static CONTAINER_PORT: Message = Message {
    name: "ContainerPort",
    fields: &[
        f(1, "name", Str),
        f(2, "hostPort", Int),
        f(3, "containerPort", Int),
        f(4, "protocol", Str),
        f(5, "hostIP", Str),
    ],
};

static ENV_VAR: Message = Message {
    name: "EnvVar",
    fields: &[
        f(1, "name", Str),
        f(2, "value", Str),
        p(3, "valueFrom", Opaque),
    ],
};

static RESOURCE_REQUIREMENTS: Message = Message {
    name: "ResourceRequirements",
    fields: &[
        f(1, "limits", QuantityMap),
        f(2, "requests", QuantityMap),
        r(3, "claims", Opaque),
    ],
};

static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[f(1, "name", Str)],
};

static OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        f(1, "kind", Str),
        f(2, "namespace", Str),
        f(3, "name", Str),
        f(4, "uid", Str),
        f(5, "apiVersion", Str),
        f(6, "resourceVersion", Str),
        f(7, "fieldPath", Str),
    ],
};

// k8s.io/api/core/v1: the other kinds

static NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&NAMESPACE_SPEC)),
        f(3, "status", Msg(&NAMESPACE_STATUS)),
    ],
};

static NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[r(1, "finalizers", Str)],
};

static NAMESPACE_STATUS: Message = Message {
    name: "NamespaceStatus",
    fields: &[f(1, "phase", Str), r(2, "conditions", Opaque)],
};

static CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        p(4, "immutable", Bool),
        f(2, "data", StrMap),
        f(3, "binaryData", BytesMap),
    ],
};

static SECRET: Message = Message {
    name: "Secret",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        p(5, "immutable", Bool),
        f(2, "data", BytesMap),
        f(4, "stringData", StrMap),
        f(3, "type", Str),
    ],
};

static SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        r(2, "secrets", Msg(&OBJECT_REFERENCE)),
        r(3, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        p(4, "automountServiceAccountToken", Bool),
    ],
};

static SERVICE: Message = Message {
    name: "Service",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&SERVICE_SPEC)),
        f(3, "status", Msg(&SERVICE_STATUS)),
    ],
};

static SERVICE_SPEC: Message = Message {
    name: "ServiceSpec",
    fields: &[
        r(1, "ports", Msg(&SERVICE_PORT)),
        f(2, "selector", StrMap),
        f(3, "clusterIP", Str),
        r(18, "clusterIPs", Str),
        f(4, "type", Str),
        r(5, "externalIPs", Str),
        f(7, "sessionAffinity", Str),
        f(8, "loadBalancerIP", Str),
        r(9, "loadBalancerSourceRanges", Str),
        f(10, "externalName", Str),
        f(11, "externalTrafficPolicy", Str),
        f(12, "healthCheckNodePort", Int),
        f(13, "publishNotReadyAddresses", Bool),
        p(14, "sessionAffinityConfig", Opaque),
        r(19, "ipFamilies", Str),
        p(17, "ipFamilyPolicy", Str),
        p(20, "allocateLoadBalancerNodePorts", Bool),
        p(21, "loadBalancerClass", Str),
        p(22, "internalTrafficPolicy", Str),
        p(23, "trafficDistribution", Str),
    ],
};

static SERVICE_PORT: Message = Message {
    name: "ServicePort",
    fields: &[
        f(1, "name", Str),
        f(2, "protocol", Str),
        p(6, "appProtocol", Str),
        f(3, "port", Int),
        f(4, "targetPort", IntOrStr),
        f(5, "nodePort", Int),
    ],
};

static SERVICE_STATUS: Message = Message {
    name: "ServiceStatus",
    fields: &[
        f(1, "loadBalancer", Msg(&LOAD_BALANCER_STATUS)),
        r(2, "conditions", Opaque),
    ],
};

static LOAD_BALANCER_STATUS: Message = Message {
    name: "LoadBalancerStatus",
    fields: &[r(1, "ingress", Opaque)],
};

// k8s.io/api/apps/v1

static DEPLOYMENT: Message = Message {
    name: "Deployment",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&DEPLOYMENT_SPEC)),
        f(3, "status", Msg(&DEPLOYMENT_STATUS)),
    ],
};

static DEPLOYMENT_SPEC: Message = Message {
    name: "DeploymentSpec",
    fields: &[
        p(1, "replicas", Int),
        p(2, "selector", Msg(&LABEL_SELECTOR)),
        f(3, "template", Msg(&POD_TEMPLATE_SPEC)),
        f(4, "strategy", Msg(&DEPLOYMENT_STRATEGY)),
        f(5, "minReadySeconds", Int),
        p(6, "revisionHistoryLimit", Int),
        f(7, "paused", Bool),
        p(9, "progressDeadlineSeconds", Int),
    ],
};

static DEPLOYMENT_STRATEGY: Message = Message {
    name: "DeploymentStrategy",
    fields: &[
        f(1, "type", Str),
        p(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DEPLOYMENT)),
    ],
};

static ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "RollingUpdateDeployment",
    fields: &[p(1, "maxUnavailable", IntOrStr), p(2, "maxSurge", IntOrStr)],
};

static DEPLOYMENT_STATUS: Message = Message {
    name: "DeploymentStatus",
    fields: &[
        f(1, "observedGeneration", Int),
        f(2, "replicas", Int),
        f(3, "updatedReplicas", Int),
        f(7, "readyReplicas", Int),
        f(4, "availableReplicas", Int),
        f(5, "unavailableReplicas", Int),
        p(9, "terminatingReplicas", Int),
        r(6, "conditions", Opaque),
        p(8, "collisionCount", Int),
    ],
};

// k8s.io/api/batch/v1

static JOB: Message = Message {
    name: "Job",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&JOB_SPEC)),
        f(3, "status", Msg(&JOB_STATUS)),
    ],
};

static JOB_SPEC: Message = Message {
    name: "JobSpec",
    fields: &[
        p(1, "parallelism", Int),
        p(2, "completions", Int),
        p(3, "activeDeadlineSeconds", Int),
        p(11, "podFailurePolicy", Opaque),
        p(16, "successPolicy", Opaque),
        p(7, "backoffLimit", Int),
        p(12, "backoffLimitPerIndex", Int),
        p(13, "maxFailedIndexes", Int),
        p(4, "selector", Msg(&LABEL_SELECTOR)),
        p(5, "manualSelector", Bool),
        f(6, "template", Msg(&POD_TEMPLATE_SPEC)),
        p(8, "ttlSecondsAfterFinished", Int),
        p(9, "completionMode", Str),
        p(10, "suspend", Bool),
        p(14, "podReplacementPolicy", Str),
        p(15, "managedBy", Str),
    ],
};

static JOB_STATUS: Message = Message {
    name: "JobStatus",
    fields: &[
        r(1, "conditions", Opaque),
        p(2, "startTime", Time),
        p(3, "completionTime", Time),
        f(4, "active", Int),
        f(5, "succeeded", Int),
        f(6, "failed", Int),
        p(11, "terminating", Int),
        f(7, "completedIndexes", Str),
        p(10, "failedIndexes", Str),
        p(8, "uncountedTerminatedPods", Opaque),
        p(9, "ready", Int),
    ],
};

static CRON_JOB: Message = Message {
    name: "CronJob",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&CRON_JOB_SPEC)),
        f(3, "status", Msg(&CRON_JOB_STATUS)),
    ],
};

static CRON_JOB_SPEC: Message = Message {
    name: "CronJobSpec",
    fields: &[
        f(1, "schedule", Str),
        p(8, "timeZone", Str),
        p(2, "startingDeadlineSeconds", Int),
        f(3, "concurrencyPolicy", Str),
        p(4, "suspend", Bool),
        f(5, "jobTemplate", Msg(&JOB_TEMPLATE_SPEC)),
        p(6, "successfulJobsHistoryLimit", Int),
        p(7, "failedJobsHistoryLimit", Int),
    ],
};

static JOB_TEMPLATE_SPEC: Message = Message {
    name: "JobTemplateSpec",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&JOB_SPEC)),
    ],
};

static CRON_JOB_STATUS: Message = Message {
    name: "CronJobStatus",
    fields: &[
        r(1, "active", Msg(&OBJECT_REFERENCE)),
        p(4, "lastScheduleTime", Time),
        p(5, "lastSuccessfulTime", Time),
    ],
};

// k8s.io/api/policy/v1

static PDB: Message = Message {
    name: "PodDisruptionBudget",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&PDB_SPEC)),
        f(3, "status", Msg(&PDB_STATUS)),
    ],
};

static PDB_SPEC: Message = Message {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        p(1, "minAvailable", IntOrStr),
        p(2, "selector", Msg(&LABEL_SELECTOR)),
        p(3, "maxUnavailable", IntOrStr),
        p(4, "unhealthyPodEvictionPolicy", Str),
    ],
};

static PDB_STATUS: Message = Message {
    name: "PodDisruptionBudgetStatus",
    fields: &[
        f(1, "observedGeneration", Int),
        f(2, "disruptedPods", Opaque),
        f(3, "disruptionsAllowed", Int),
        f(4, "currentHealthy", Int),
        f(5, "desiredHealthy", Int),
        f(6, "expectedPods", Int),
        r(7, "conditions", Opaque),
    ],
};

/// The message of each kind the decoder knows, by `apiVersion` and `kind`.
fn root(api_version: &str, kind: &str) -> Option<&'static Message> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ConfigMap") => &CONFIG_MAP,
        ("v1", "Secret") => &SECRET,
        ("v1", "Service") => &SERVICE,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        ("batch/v1", "Job") => &JOB,
        ("batch/v1", "CronJob") => &CRON_JOB,
        ("policy/v1", "PodDisruptionBudget") => &PDB,
        _ => return None,
    })
}

/// Whether a `Content-Type` is the Kubernetes protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or_default().trim() == MEDIA_TYPE
}

/// The JSON object a protobuf body encodes, or why it cannot be decoded.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let raw = body
        .strip_prefix(b"k8s\0")
        .ok_or("the body does not start with the k8s protobuf magic number")?;
    let mut env = Reader::new(raw);
    let (mut api_version, mut kind) = (String::new(), String::new());
    let mut object: &[u8] = &[];
    while let Some((num, wire)) = env.key()? {
        let bytes = env.len_delimited(wire)?;
        match num {
            1 => {
                let mut tm = Reader::new(bytes);
                while let Some((n, w)) = tm.key()? {
                    let s = utf8(tm.len_delimited(w)?)?;
                    match n {
                        1 => api_version = s,
                        2 => kind = s,
                        _ => return Err(format!("unknown field {n} in TypeMeta")),
                    }
                }
            }
            2 => object = bytes,
            3 | 4 if bytes.is_empty() => {}
            3 => return Err("compressed protobuf bodies are not supported".into()),
            4 => {}
            _ => return Err(format!("unknown field {num} in runtime.Unknown")),
        }
    }
    let msg = root(&api_version, &kind).ok_or_else(|| {
        format!("protobuf bodies of {kind} ({api_version}) are not decoded by the simulator")
    })?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    obj.extend(message(object, msg)?);
    Ok(Value::Object(obj))
}

/// One message's fields as a JSON object.
fn message(bytes: &[u8], msg: &Message) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut rd = Reader::new(bytes);
    while let Some((num, wire)) = rd.key()? {
        let field = msg.fields.iter().find(|f| f.num == num).ok_or_else(|| {
            format!(
                "field number {num} of {} is not known to the simulator",
                msg.name
            )
        })?;
        let at = || format!("{}.{}", msg.name, field.name);
        match field.ty {
            StrMap | BytesMap | QuantityMap => {
                let (k, v) = map_entry(rd.len_delimited(wire)?, field.ty)
                    .map_err(|e| format!("{}: {e}", at()))?;
                let slot = out.entry(field.name).or_insert_with(|| json!({}));
                if let Some(m) = slot.as_object_mut() {
                    m.insert(k, v);
                }
            }
            ty => {
                let v = value(&mut rd, wire, ty).map_err(|e| format!("{}: {e}", at()))?;
                match field.mode {
                    Mode::Repeated => {
                        let slot = out.entry(field.name).or_insert_with(|| json!([]));
                        if let Some(a) = slot.as_array_mut() {
                            a.push(v);
                        }
                    }
                    // A set pointer keeps its zero value; a null (the zero
                    // time) stays unset.
                    Mode::Ptr if v.is_null() => {}
                    Mode::Ptr => {
                        out.insert(field.name.into(), v);
                    }
                    Mode::Plain if is_zero(&v) => {
                        out.remove(field.name);
                    }
                    Mode::Plain => {
                        out.insert(field.name.into(), v);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Go's zero value as JSON: what `omitempty` leaves out.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn value(rd: &mut Reader<'_>, wire: u64, ty: Ty) -> Result<Value, String> {
    Ok(match ty {
        Int => json!(rd.varint_field(wire)? as i64),
        Bool => json!(rd.varint_field(wire)? != 0),
        Str => json!(utf8(rd.len_delimited(wire)?)?),
        Msg(m) => Value::Object(message(rd.len_delimited(wire)?, m)?),
        IntOrStr => int_or_string(rd.len_delimited(wire)?)?,
        Time => time(rd.len_delimited(wire)?)?,
        Opaque if rd.len_delimited(wire)?.is_empty() => json!({}),
        Opaque => {
            return Err("this field is not decoded by the simulator (send JSON instead)".into());
        }
        StrMap | BytesMap | QuantityMap => unreachable!("maps are decoded by entry"),
    })
}

/// A map entry: key 1, value 2.
fn map_entry(bytes: &[u8], ty: Ty) -> Result<(String, Value), String> {
    let mut rd = Reader::new(bytes);
    let (mut key, mut val) = (String::new(), None);
    while let Some((num, wire)) = rd.key()? {
        let b = rd.len_delimited(wire)?;
        match num {
            1 => key = utf8(b)?,
            2 => {
                val = Some(match ty {
                    BytesMap => json!(base64(b)),
                    QuantityMap => quantity(b)?,
                    _ => json!(utf8(b)?),
                });
            }
            n => return Err(format!("unknown field {n} in a map entry")),
        }
    }
    let empty = match ty {
        StrMap | BytesMap => json!(""),
        _ => json!("0"),
    };
    Ok((key, val.unwrap_or(empty)))
}

/// `intstr.IntOrString`: type 1 (0 int, 1 string), intVal 2, strVal 3.
fn int_or_string(bytes: &[u8]) -> Result<Value, String> {
    let mut rd = Reader::new(bytes);
    let (mut kind, mut int, mut text) = (0, 0i64, String::new());
    while let Some((num, wire)) = rd.key()? {
        match num {
            1 => kind = rd.varint_field(wire)?,
            2 => int = rd.varint_field(wire)? as i64,
            3 => text = utf8(rd.len_delimited(wire)?)?,
            n => return Err(format!("unknown field {n} in IntOrString")),
        }
    }
    Ok(if kind == 1 { json!(text) } else { json!(int) })
}

/// `resource.Quantity`: its string form in field 1.
fn quantity(bytes: &[u8]) -> Result<Value, String> {
    let mut rd = Reader::new(bytes);
    let mut text = String::new();
    while let Some((num, wire)) = rd.key()? {
        match num {
            1 => text = utf8(rd.len_delimited(wire)?)?,
            n => return Err(format!("unknown field {n} in Quantity")),
        }
    }
    Ok(json!(text))
}

/// `metav1.Time`: seconds 1 and nanos 2 since the epoch, written as RFC
/// 3339 at second precision (as `metav1.Time` marshals to JSON); empty for
/// the zero time.
fn time(bytes: &[u8]) -> Result<Value, String> {
    let mut rd = Reader::new(bytes);
    let mut secs = 0i64;
    while let Some((num, wire)) = rd.key()? {
        match num {
            1 => secs = rd.varint_field(wire)? as i64,
            2 => {
                rd.varint_field(wire)?;
            }
            n => return Err(format!("unknown field {n} in Time")),
        }
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let secs = u64::try_from(secs).map_err(|_| "a time before 1970".to_string())?;
    Ok(json!(crate::clock::rfc3339(
        UNIX_EPOCH + Duration::from_secs(secs)
    )))
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string is not valid UTF-8".to_string())
}

/// Standard base64 with padding, as Go's JSON encodes `[]byte`.
fn base64(b: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A cursor over protobuf wire data.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i).ok_or("truncated varint")?;
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// The next field number and wire type, `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u64)>, String> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, k & 7)))
    }

    fn varint_field(&mut self, wire: u64) -> Result<u64, String> {
        if wire != 0 {
            return Err(format!("wire type {wire} where a varint was expected"));
        }
        self.varint()
    }

    fn len_delimited(&mut self, wire: u64) -> Result<&'a [u8], String> {
        if wire != 2 {
            return Err(format!(
                "wire type {wire} where length-delimited data was expected"
            ));
        }
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self.i.checked_add(len).filter(|e| *e <= self.b.len());
        let end = end.ok_or("truncated length-delimited field")?;
        let out = &self.b[self.i..end];
        self.i = end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
