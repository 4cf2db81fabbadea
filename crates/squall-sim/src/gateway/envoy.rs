//! Moving one request along a [`Plan`] as Envoy (or nginx, or kube-proxy)
//! would: the fault filter first (delay, then abort, each rolled against its
//! percentage, once per request), then the router: one weighted destination,
//! tries with `perTryTimeout`, retries on the `retryOn` conditions with
//! Envoy's jittered backoff (25 ms base, 250 ms cap), all bounded by the route
//! `timeout`. Endpoints are the ready addresses of the Service's
//! EndpointSlices, narrowed to the DestinationRule subset, taken round robin.
//! Local replies carry Envoy's own wording (`no healthy upstream`,
//! `upstream request timeout`, `fault filter abort`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::apps::{self, PodInfo};
use super::route::{self, Dest, Plan, Proxy, Retries};
use super::{Inner, Req, Resp};
use crate::sim::Sim;
use crate::store::{StoreInner, str_at};

/// What one try (or the whole routed request) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The upstream answered.
    Resp(Resp),
    /// No ready endpoint (or an unknown subset / Service).
    NoHealthy,
    /// The endpoint is listed but its pod does not accept connections.
    Connect,
    /// A per-try or route timeout fired.
    Timeout,
}

/// A boxed future (the repeater makes calls recursive).
pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request arriving on the gateway port with this Host.
pub(crate) async fn external(sim: &Sim, host: &str, req: &Req) -> Resp {
    let plan = {
        let store = sim.shared().store.lock();
        route::ingress(&store, host, &req.path)
    };
    match plan {
        // Neither a Gateway nor an Ingress claims the host: 404, as both do.
        None => Resp::text(404, ""),
        Some(plan) => proxy(sim, &plan, req)
            .await
            .unwrap_or_else(|e| Resp::text(502, e)),
    }
}

/// An outgoing call of the application in `client` to `authority` (a Service
/// name in any of its DNS forms, optionally with a port). `Err` is what the
/// client library would report (unknown host, connection refused).
pub(crate) fn call<'a>(
    sim: &'a Sim,
    client: &'a PodInfo,
    authority: &'a str,
    req: &'a Req,
) -> BoxFut<'a, Result<Resp, String>> {
    Box::pin(async move {
        let host = authority.split(':').next().unwrap_or(authority);
        let plan = {
            let store = sim.shared().store.lock();
            let svc = route::service_of(&route::fqdn(host, &client.namespace))
                .filter(|(name, ns)| store.get("", "services", ns, name).is_some());
            let Some((name, ns)) = svc else {
                return Err(format!("dial tcp: lookup {host}: no such host"));
            };
            if meshed(&store, client) {
                route::mesh(&store, &name, &ns, &req.path)
            } else {
                route::kube(&name, &ns)
            }
        };
        proxy(sim, &plan, req).await
    })
}

/// Whether Istio injected a sidecar into the pod: its namespace is labelled
/// `istio-injection=enabled` (or the pod asks with `sidecar.istio.io/inject`).
fn meshed(store: &StoreInner, pod: &PodInfo) -> bool {
    let ask = pod
        .labels
        .get("sidecar.istio.io/inject")
        .and_then(Value::as_str);
    if let Some(ask) = ask {
        return ask == "true";
    }
    store
        .get("", "namespaces", "", &pod.namespace)
        .is_some_and(|ns| str_at(ns, "/metadata/labels/istio-injection") == "enabled")
}

/// Forwards a request along a plan (fault filter, then router).
pub(crate) async fn proxy(sim: &Sim, plan: &Plan, req: &Req) -> Result<Resp, String> {
    if let Some(why) = &plan.down {
        let mut r = Resp::text(503, "no healthy upstream");
        r.headers.push(("x-squall-sim-reason", why.clone()));
        return Ok(r);
    }
    if plan.dests.is_empty() {
        return Ok(local(plan.proxy, 404, ""));
    }
    let clock = sim.sim_clock();
    let (delay, abort, dest) = {
        let mut g = sim.gateway_state().lock();
        let delay = plan.fault.delay.filter(|(_, pct)| roll(&mut g, *pct));
        let abort = plan.fault.abort.filter(|(_, pct)| roll(&mut g, *pct));
        (delay, abort, pick_weighted(&mut g, &plan.dests).clone())
    };
    if let Some((d, _)) = delay {
        clock.sleep(d).await;
    }
    if let Some((status, _)) = abort {
        return Ok(local(plan.proxy, status, "fault filter abort"));
    }
    let start = clock.now();
    let routed = router(sim, plan, &dest, req);
    let out = match plan.timeout {
        Some(t) => tokio::time::timeout(clock.to_real(t), routed)
            .await
            .unwrap_or(Outcome::Timeout),
        None => routed.await,
    };
    finish(plan.proxy, out, clock.now().saturating_sub(start))
}

/// The router: tries, per-try timeouts and retries against one destination.
async fn router(sim: &Sim, plan: &Plan, dest: &Dest, req: &Req) -> Outcome {
    let clock = sim.sim_clock();
    let mut retries = 0;
    loop {
        let one = attempt(sim, dest, req);
        let out = match plan.retries.per_try {
            Some(t) => tokio::time::timeout(clock.to_real(t), one)
                .await
                .unwrap_or(Outcome::Timeout),
            None => one.await,
        };
        if retries >= plan.retries.attempts || !retriable(&plan.retries, &out) {
            return out;
        }
        retries += 1;
        let backoff = {
            let cap = (25u64 << retries.min(4)).min(250);
            let mut g = sim.gateway_state().lock();
            Duration::from_millis(g.rng.next_u64() % (cap + 1))
        };
        clock.sleep(backoff).await;
    }
}

/// Whether Envoy retries this outcome under the policy.
fn retriable(r: &Retries, out: &Outcome) -> bool {
    match out {
        Outcome::Resp(resp) => {
            (r.on_5xx && resp.status >= 500)
                || (r.on_gateway_error && (502..=504).contains(&resp.status))
                || r.statuses.contains(&resp.status)
        }
        Outcome::Connect | Outcome::Timeout => r.on_5xx || r.on_gateway_error || r.on_connect,
        Outcome::NoHealthy => false,
    }
}

/// One try: pick an endpoint and let its pod answer.
fn attempt<'a>(sim: &'a Sim, dest: &'a Dest, req: &'a Req) -> BoxFut<'a, Outcome> {
    Box::pin(async move {
        let pod = {
            let store = sim.shared().store.lock();
            let mut g = sim.gateway_state().lock();
            pick_endpoint(&store, &mut g, dest)
        };
        match pod {
            Ok(pod) => Outcome::Resp(apps::serve(sim, pod, req).await),
            Err(o) => o,
        }
    })
}

/// A seeded roll against a percentage (0–100).
fn roll(g: &mut Inner, pct: f64) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let x = (g.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
    x < pct
}

fn pick_weighted<'a>(g: &mut Inner, dests: &'a [Dest]) -> &'a Dest {
    let total: u64 = dests.iter().map(|d| d.weight).sum();
    if total > 0 {
        let mut r = g.rng.next_u64() % total;
        for d in dests {
            if r < d.weight {
                return d;
            }
            r -= d.weight;
        }
    }
    &dests[0]
}

/// The next ready endpoint of the destination (round robin), as a pod.
fn pick_endpoint(store: &StoreInner, g: &mut Inner, dest: &Dest) -> Result<PodInfo, Outcome> {
    let ns = dest.namespace.as_str();
    if dest.missing_subset || store.get("", "services", ns, &dest.service).is_none() {
        return Err(Outcome::NoHealthy);
    }
    let pods: Vec<Option<&Value>> = store
        .list("discovery.k8s.io", "endpointslices", Some(ns))
        .into_iter()
        .filter(|s| str_at(s, "/metadata/labels/kubernetes.io~1service-name") == dest.service)
        .flat_map(|s| s.get("endpoints").and_then(Value::as_array))
        .flatten()
        .filter(|e| e.pointer("/conditions/ready") == Some(&Value::Bool(true)))
        .map(|e| store.get("", "pods", ns, str_at(e, "/targetRef/name")))
        .filter(|p| match (&dest.subset, p) {
            (None, _) => true,
            (Some(labels), Some(pod)) => labels
                .iter()
                .all(|(k, v)| pod.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v)),
            (Some(_), None) => false,
        })
        .collect();
    if pods.is_empty() {
        return Err(Outcome::NoHealthy);
    }
    let key = format!("{ns}/{}", dest.service);
    let pos = g.rr.entry(key).or_insert(0);
    let pod = pods[*pos % pods.len()];
    *pos = pos.wrapping_add(1);
    match pod {
        Some(p) if str_at(p, "/status/phase") == "Running" => Ok(PodInfo::from_pod(p)),
        _ => Err(Outcome::Connect),
    }
}

/// A reply the proxy itself makes.
fn local(proxy: Proxy, status: u16, body: &str) -> Resp {
    let mut r = Resp::text(status, body);
    if proxy == Proxy::Envoy {
        r.headers.push(("server", "istio-envoy".into()));
    }
    r
}

fn nginx_page(status: u16, reason: &str) -> Resp {
    let mut r = Resp::text(
        status,
        format!(
            "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
    );
    r.headers.push(("server", "nginx".into()));
    r
}

/// Turns the routed outcome into the response the client sees.
fn finish(proxy: Proxy, out: Outcome, took: Duration) -> Result<Resp, String> {
    match (proxy, out) {
        (Proxy::Envoy, Outcome::Resp(mut r)) => {
            r.headers.push(("server", "istio-envoy".into()));
            r.headers.push((
                "x-envoy-upstream-service-time",
                took.as_millis().to_string(),
            ));
            Ok(r)
        }
        (_, Outcome::Resp(r)) => Ok(r),
        (Proxy::Envoy, Outcome::NoHealthy) => Ok(local(proxy, 503, "no healthy upstream")),
        (Proxy::Envoy, Outcome::Connect) => Ok(local(
            proxy,
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        )),
        (Proxy::Envoy, Outcome::Timeout) => Ok(local(proxy, 504, "upstream request timeout")),
        (Proxy::Nginx, Outcome::NoHealthy) => {
            Ok(nginx_page(503, "Service Temporarily Unavailable"))
        }
        (Proxy::Nginx, Outcome::Connect) => Ok(nginx_page(502, "Bad Gateway")),
        (Proxy::Nginx, Outcome::Timeout) => Ok(nginx_page(504, "Gateway Time-out")),
        (Proxy::Kube, Outcome::Timeout) => Err("i/o timeout".into()),
        (Proxy::Kube, _) => Err("connect: connection refused".into()),
    }
}
