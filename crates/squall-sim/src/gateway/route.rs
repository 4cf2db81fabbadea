//! Routing: which Service a request goes to, and with which Envoy policy.
//!
//! Three contexts, each read from the store on every request:
//! * the ingress gateway (a request on the gateway port): an Istio `Gateway`
//!   whose servers list the Host header, and a `VirtualService` bound to it
//!   (`gateways: [name]`) whose `hosts` match; otherwise a plain `Ingress`
//!   rule (nginx, no Envoy policy);
//! * the mesh (a sidecar-injected pod calling a Service): a `VirtualService`
//!   without `gateways` (or with `mesh`) whose `hosts` name that Service;
//!   without one, Istio's default route with its default retries;
//! * outside the mesh: kube-proxy, straight to the Service, no policy.
//!
//! The result is an owned [`Plan`], so no lock is held while traffic flows.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::store::{StoreInner, str_at};

/// Who moves the request: decides the retry defaults and the local replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proxy {
    /// Istio's Envoy (ingress gateway or sidecar).
    Envoy,
    /// The nginx ingress controller.
    Nginx,
    /// kube-proxy: no retries, connection errors go back to the client app.
    Kube,
}

/// One weighted destination: a Service, optionally narrowed to a subset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dest {
    pub service: String,
    pub namespace: String,
    /// Labels of the DestinationRule subset the route names, if any.
    pub subset: Option<Map<String, Value>>,
    /// The route names a subset no DestinationRule defines.
    pub missing_subset: bool,
    pub weight: u64,
}

/// Envoy's retry policy for a route.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Retries {
    /// Retries after the first try (Istio `attempts` = Envoy `num_retries`).
    pub attempts: u32,
    pub per_try: Option<Duration>,
    /// `5xx`: any 5xx, connect failures, resets and per-try timeouts.
    pub on_5xx: bool,
    /// `gateway-error`: 502/503/504, connect failures, per-try timeouts.
    pub on_gateway_error: bool,
    /// `connect-failure` (and `reset`, which we model the same way).
    pub on_connect: bool,
    /// `retriable-status-codes` (Istio's default retries 503 only).
    pub statuses: Vec<u16>,
}

impl Retries {
    /// No retries at all.
    pub fn none() -> Self {
        Retries {
            attempts: 0,
            per_try: None,
            on_5xx: false,
            on_gateway_error: false,
            on_connect: false,
            statuses: Vec::new(),
        }
    }

    /// Istio's default for routes without `retries`: 2 retries on
    /// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` (503).
    pub fn istio_default() -> Self {
        Retries {
            attempts: 2,
            on_connect: true,
            statuses: vec![503],
            ..Retries::none()
        }
    }

    /// Reads a VirtualService `retries` block.
    fn from_spec(v: &Value) -> Self {
        let mut r = Retries::none();
        r.attempts = v
            .get("attempts")
            .and_then(Value::as_u64)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(2);
        r.per_try = v
            .get("perTryTimeout")
            .and_then(Value::as_str)
            .and_then(parse_duration);
        let on = v.get("retryOn").and_then(Value::as_str).unwrap_or(
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        );
        for cond in on.split(',').map(str::trim) {
            match cond {
                "5xx" => r.on_5xx = true,
                "gateway-error" => r.on_gateway_error = true,
                "connect-failure" | "reset" | "refused-stream" => r.on_connect = true,
                "retriable-status-codes" => r.statuses.push(503),
                code => r.statuses.extend(code.parse::<u16>().ok()),
            }
        }
        r
    }
}

/// Istio `fault`: applied once per request, before the router (so neither
/// retries nor the route timeout of the same route cover it).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Fault {
    /// (fixed delay, percentage 0–100).
    pub delay: Option<(Duration, f64)>,
    /// (HTTP status, percentage 0–100).
    pub abort: Option<(u16, f64)>,
}

/// Everything needed to forward one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub proxy: Proxy,
    pub dests: Vec<Dest>,
    pub fault: Fault,
    pub retries: Retries,
    pub timeout: Option<Duration>,
    /// Why nothing can carry the request at all (no ready ingress gateway
    /// pod behind the Gateway's selector): the load balancer answers 503.
    pub down: Option<String>,
}

/// Parses a protobuf-style duration: `15s`, `2.5s`, `500ms`, `1m`, `1h`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// `name`, `name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local` → FQDN.
pub(crate) fn fqdn(host: &str, default_ns: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [name] => format!("{name}.{default_ns}.svc.cluster.local"),
        [name, ns] => format!("{name}.{ns}.svc.cluster.local"),
        [name, ns, "svc"] => format!("{name}.{ns}.svc.cluster.local"),
        _ => host,
    }
}

/// The (service, namespace) an FQDN names, if it is a cluster Service name.
pub(crate) fn service_of(fqdn: &str) -> Option<(String, String)> {
    let rest = fqdn.strip_suffix(".svc.cluster.local")?;
    let (name, ns) = rest.split_once('.')?;
    (!ns.contains('.')).then(|| (name.to_string(), ns.to_string()))
}

/// Host matching with Istio wildcards (`*`, `*.acme.com`).
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

fn strs(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The plan for a request on the gateway port with this Host (no port) and path.
pub(crate) fn ingress(store: &StoreInner, host: &str, path: &str) -> Option<Plan> {
    let host = host.to_ascii_lowercase();
    for gw in store.list("networking.istio.io", "gateways", None) {
        let gw_ns = str_at(gw, "/metadata/namespace");
        let serves = gw
            .pointer("/spec/servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|s| strs(s.get("hosts")))
            .any(|h| host_matches(h.rsplit('/').next().unwrap_or(h), &host));
        if !serves {
            continue;
        }
        let name = str_at(gw, "/metadata/name");
        let bound = |vs: &&Value| {
            let vs_ns = str_at(vs, "/metadata/namespace");
            strs(vs.pointer("/spec/gateways")).any(|g| match g.split_once('/') {
                Some((ns, n)) => ns == gw_ns && n == name,
                None => g == name && vs_ns == gw_ns,
            }) && strs(vs.pointer("/spec/hosts")).any(|h| host_matches(h, &host))
        };
        if let Some(vs) = store
            .list("networking.istio.io", "virtualservices", None)
            .into_iter()
            .find(bound)
        {
            let mut plan = from_vs(store, vs, path);
            if !gateway_pod_ready(store, gw) {
                plan.down = Some(format!(
                    "no ready pod matches the selector of Gateway {gw_ns}/{name}"
                ));
            }
            return Some(plan);
        }
    }
    from_ingress(store, &host, path)
}

/// Whether a ready pod (the ingress gateway's Envoy) matches the Gateway's
/// `selector`, in any namespace, as Istio binds Gateways to workloads.
fn gateway_pod_ready(store: &StoreInner, gw: &Value) -> bool {
    let Some(sel) = gw.pointer("/spec/selector").and_then(Value::as_object) else {
        return true;
    };
    let sel = crate::selector::LabelSelector::from_map(sel);
    store
        .list("", "pods", None)
        .into_iter()
        .any(|p| sel.matches(p) && crate::controllers::pod_ready(p))
}

/// The plan for a meshed client calling Service `svc` in `ns`.
pub(crate) fn mesh(store: &StoreInner, svc: &str, ns: &str, path: &str) -> Plan {
    let target = format!("{svc}.{ns}.svc.cluster.local");
    let in_mesh = |vs: &Value| {
        let vs_ns = str_at(vs, "/metadata/namespace");
        let gateways: Vec<&str> = strs(vs.pointer("/spec/gateways")).collect();
        (gateways.is_empty() || gateways.contains(&"mesh"))
            && strs(vs.pointer("/spec/hosts")).any(|h| host_matches(&fqdn(h, vs_ns), &target))
    };
    let all = store.list("networking.istio.io", "virtualservices", None);
    let vs = all
        .iter()
        .copied()
        .filter(|v| str_at(v, "/metadata/namespace") == ns)
        .find(|v| in_mesh(v))
        .or_else(|| all.iter().copied().find(|v| in_mesh(v)));
    match vs {
        Some(vs) => from_vs(store, vs, path),
        None => Plan {
            proxy: Proxy::Envoy,
            dests: vec![plain_dest(svc, ns)],
            fault: Fault::default(),
            retries: Retries::istio_default(),
            timeout: None,
            down: None,
        },
    }
}

/// The plan for a client outside the mesh (kube-proxy).
pub(crate) fn kube(svc: &str, ns: &str) -> Plan {
    Plan {
        proxy: Proxy::Kube,
        dests: vec![plain_dest(svc, ns)],
        fault: Fault::default(),
        retries: Retries::none(),
        timeout: None,
        down: None,
    }
}

fn plain_dest(svc: &str, ns: &str) -> Dest {
    Dest {
        service: svc.to_string(),
        namespace: ns.to_string(),
        subset: None,
        missing_subset: false,
        weight: 1,
    }
}

/// Whether an HTTP route's `match` list accepts the path (no list: everything).
fn route_matches(route: &Value, path: &str) -> bool {
    let Some(matches) = route.get("match").and_then(Value::as_array) else {
        return true;
    };
    let path = path.split('?').next().unwrap_or(path);
    matches.iter().any(|m| match m.get("uri") {
        None => true,
        Some(uri) => {
            if let Some(p) = uri.get("prefix").and_then(Value::as_str) {
                path.starts_with(p)
            } else if let Some(e) = uri.get("exact").and_then(Value::as_str) {
                path == e
            } else {
                false
            }
        }
    })
}

fn from_vs(store: &StoreInner, vs: &Value, path: &str) -> Plan {
    let vs_ns = str_at(vs, "/metadata/namespace");
    let route = vs
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|r| route_matches(r, path));
    let Some(route) = route else {
        // No matching route: Envoy answers 404 (no dests).
        return Plan {
            proxy: Proxy::Envoy,
            dests: Vec::new(),
            fault: Fault::default(),
            retries: Retries::none(),
            timeout: None,
            down: None,
        };
    };
    let dests = route
        .get("route")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| dest(store, d, vs_ns))
        .collect();
    Plan {
        proxy: Proxy::Envoy,
        dests,
        fault: fault(route.get("fault")),
        retries: route
            .get("retries")
            .map_or_else(Retries::istio_default, Retries::from_spec),
        timeout: route
            .get("timeout")
            .and_then(Value::as_str)
            .and_then(parse_duration)
            .filter(|d| !d.is_zero()),
        down: None,
    }
}

fn dest(store: &StoreInner, d: &Value, vs_ns: &str) -> Option<Dest> {
    let host = d.pointer("/destination/host").and_then(Value::as_str)?;
    let full = fqdn(host, vs_ns);
    let (service, namespace) = service_of(&full).unwrap_or_else(|| (full.clone(), String::new()));
    let weight = d.get("weight").and_then(Value::as_u64).unwrap_or(100);
    let mut out = Dest {
        service,
        namespace,
        subset: None,
        missing_subset: false,
        weight,
    };
    if let Some(subset) = d.pointer("/destination/subset").and_then(Value::as_str) {
        out.subset = subset_labels(store, &full, subset);
        out.missing_subset = out.subset.is_none();
    }
    Some(out)
}

fn subset_labels(store: &StoreInner, full: &str, subset: &str) -> Option<Map<String, Value>> {
    store
        .list("networking.istio.io", "destinationrules", None)
        .into_iter()
        .filter(|dr| {
            let ns = str_at(dr, "/metadata/namespace");
            fqdn(str_at(dr, "/spec/host"), ns) == full
        })
        .flat_map(|dr| dr.pointer("/spec/subsets").and_then(Value::as_array))
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(subset))
        .map(|s| {
            s.get("labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        })
}

fn percentage(v: &Value) -> f64 {
    v.pointer("/percentage/value")
        .and_then(Value::as_f64)
        .or_else(|| v.get("percent").and_then(Value::as_f64))
        .unwrap_or(100.0)
        .clamp(0.0, 100.0)
}

fn fault(v: Option<&Value>) -> Fault {
    let Some(v) = v else {
        return Fault::default();
    };
    let delay = v.get("delay").and_then(|d| {
        let fixed = d
            .get("fixedDelay")
            .and_then(Value::as_str)
            .and_then(parse_duration)?;
        Some((fixed, percentage(d)))
    });
    let abort = v.get("abort").and_then(|a| {
        let status = a.get("httpStatus").and_then(Value::as_u64)?;
        Some((u16::try_from(status).ok()?, percentage(a)))
    });
    Fault { delay, abort }
}

/// A plain `Ingress` (networking.k8s.io/v1, or the v1beta1 backend shape).
fn from_ingress(store: &StoreInner, host: &str, path: &str) -> Option<Plan> {
    let path = path.split('?').next().unwrap_or(path);
    for ing in store.list("networking.k8s.io", "ingresses", None) {
        let ns = str_at(ing, "/metadata/namespace");
        let rules = ing.pointer("/spec/rules").and_then(Value::as_array);
        for rule in rules.into_iter().flatten() {
            let rule_host = rule.get("host").and_then(Value::as_str);
            if rule_host.is_some_and(|h| !host_matches(h, host)) {
                continue;
            }
            let paths = rule.pointer("/http/paths").and_then(Value::as_array);
            let hit = paths.into_iter().flatten().find(|p| {
                let prefix = p.get("path").and_then(Value::as_str).unwrap_or("/");
                match p.get("pathType").and_then(Value::as_str) {
                    Some("Exact") => path == prefix,
                    _ => path.starts_with(prefix),
                }
            });
            if let Some(svc) = hit.and_then(|p| backend_service(p.get("backend")?)) {
                return Some(nginx(&svc, ns));
            }
        }
        if let Some(svc) = ing
            .pointer("/spec/defaultBackend")
            .and_then(backend_service)
        {
            return Some(nginx(&svc, ns));
        }
    }
    None
}

fn backend_service(b: &Value) -> Option<String> {
    b.pointer("/service/name")
        .or_else(|| b.get("serviceName"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn nginx(svc: &str, ns: &str) -> Plan {
    Plan {
        proxy: Proxy::Nginx,
        dests: vec![plain_dest(svc, ns)],
        fault: Fault::default(),
        // proxy_next_upstream error timeout: a failed connection moves on.
        retries: Retries {
            attempts: 2,
            on_connect: true,
            ..Retries::none()
        },
        timeout: Some(Duration::from_secs(60)),
        down: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_names() {
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2x"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(
            fqdn("go-demo-8", "go-demo-8"),
            "go-demo-8.go-demo-8.svc.cluster.local"
        );
        assert_eq!(fqdn("db.other.svc", "x"), "db.other.svc.cluster.local");
        assert_eq!(
            service_of("a.b.svc.cluster.local"),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(service_of("repeater.acme.com"), None);
        assert!(host_matches("*.acme.com", "repeater.acme.com"));
        assert!(!host_matches("go-demo-8.acme.com", "repeater.acme.com"));
    }

    #[test]
    fn retry_on_parses_envoy_conditions() {
        let r = Retries::from_spec(&serde_json::json!({
            "attempts": 10, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure"
        }));
        assert_eq!((r.attempts, r.per_try), (10, Some(Duration::from_secs(2))));
        assert!(r.on_5xx && r.on_connect && !r.on_gateway_error);
    }
}
