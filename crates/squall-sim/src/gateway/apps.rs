//! The book's applications, played by whichever pod an endpoint points at.
//!
//! A pod's application is decided by the image of its first container (the
//! last path segment before the tag), falling back to its `app` label:
//! * `go-demo-8` (image `vfarcic/go-demo-8`, or label `app=go-demo-8`): `/`
//!   (and any path Go's mux sends to `/`) answers
//!   `Version: $VERSION; Release: $RELEASE` (VERSION defaults to the image tag,
//!   RELEASE to `unknown`); `/demo/person` needs the database named by the
//!   container's `DB` env (default `go-demo-8-db`, a Service in the pod's
//!   namespace) to have a ready endpoint, and otherwise waits 5 s (sim time)
//!   for a server and answers 500 `no reachable servers`; `/limiter` runs the
//!   book's `rate.NewLimiter(5, 10)` per pod: beyond the burst it answers 429
//!   with the body `Internal Server Error` (the book's code passes
//!   `http.StatusTooManyRequests` as the status) and keeps doing so for 15 s
//!   after the last refusal.
//! * `repeater` (image or label): forwards `GET ?addr=http://<service>/<path>`
//!   inside the sandbox and passes the status and body back.
//! * `mongo` (image `mongo`, or an `app` label ending in `-db`): answers HTTP
//!   the way mongod does on its driver port.
//! * anything else: 200 with a line naming the pod.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::envoy::{self, BoxFut};
use super::{Req, Resp};
use crate::api::http::Query;
use crate::sim::Sim;
use crate::store::str_at;

/// How long go-demo-8 waits for MongoDB before giving up on a request.
pub(crate) const DB_WAIT: Duration = Duration::from_secs(5);
/// go-demo-8's limiter: tokens per second, burst, cool-down after a refusal.
const RATE: f64 = 5.0;
const BURST: f64 = 10.0;
const COOL_DOWN: Duration = Duration::from_secs(15);

/// What the gateway needs to know about a pod.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: Map<String, Value>,
    pub image: String,
    pub env: HashMap<String, String>,
}

impl PodInfo {
    /// Reads the fields from a pod object.
    pub fn from_pod(pod: &Value) -> Self {
        let first = pod.pointer("/spec/containers/0");
        let env = first
            .and_then(|c| c.get("env"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let k = e.get("name")?.as_str()?;
                Some((k.to_string(), e.get("value")?.as_str()?.to_string()))
            })
            .collect();
        PodInfo {
            namespace: str_at(pod, "/metadata/namespace").to_string(),
            name: str_at(pod, "/metadata/name").to_string(),
            uid: str_at(pod, "/metadata/uid").to_string(),
            labels: pod
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            image: first
                .and_then(|c| c.get("image"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            env,
        }
    }

    /// (repository basename, tag) of the image.
    fn image_parts(&self) -> (&str, &str) {
        let last = self.image.rsplit('/').next().unwrap_or_default();
        let last = last.split('@').next().unwrap_or(last);
        last.split_once(':').unwrap_or((last, ""))
    }
}

/// The applications the sandbox can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum App {
    GoDemo8,
    Repeater,
    Mongo,
    Other,
}

/// Which application a pod runs (image first, then the `app` label).
pub(crate) fn identify(pod: &PodInfo) -> App {
    match pod.image_parts().0 {
        "go-demo-8" => return App::GoDemo8,
        "repeater" => return App::Repeater,
        "mongo" | "mongodb" => return App::Mongo,
        _ => {}
    }
    match pod.labels.get("app").and_then(Value::as_str) {
        Some("go-demo-8") => App::GoDemo8,
        Some("repeater") => App::Repeater,
        Some(a) if a.ends_with("-db") => App::Mongo,
        _ => App::Other,
    }
}

/// The pod answers the request.
pub(crate) fn serve<'a>(sim: &'a Sim, pod: PodInfo, req: &'a Req) -> BoxFut<'a, Resp> {
    Box::pin(async move {
        match identify(&pod) {
            App::GoDemo8 => go_demo_8(sim, &pod, req).await,
            App::Repeater => repeater(sim, &pod, req).await,
            App::Mongo => Resp::text(
                200,
                "It looks like you are trying to access MongoDB over HTTP on the native driver port.\n",
            ),
            App::Other => Resp::text(200, format!("squall-sim: {} answered\n", pod.name)),
        }
    })
}

async fn go_demo_8(sim: &Sim, pod: &PodInfo, req: &Req) -> Resp {
    let path = req.path.split('?').next().unwrap_or("/");
    match path {
        "/limiter" => limiter(sim, pod),
        "/demo/person" => person(sim, pod).await,
        _ => {
            let tag = pod.image_parts().1;
            let version = pod.env.get("VERSION").map_or(tag, String::as_str);
            let release = pod.env.get("RELEASE").map_or("unknown", String::as_str);
            Resp::text(200, format!("Version: {version}; Release: {release}\n"))
        }
    }
}

async fn person(sim: &Sim, pod: &PodInfo) -> Resp {
    let db = pod
        .env
        .get("DB")
        .map_or("go-demo-8-db", String::as_str)
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    if db_ready(sim, pod, &db) {
        return Resp::text(200, "");
    }
    sim.sim_clock().sleep(DB_WAIT).await;
    if db_ready(sim, pod, &db) {
        Resp::text(200, "")
    } else {
        Resp::text(500, "no reachable servers\n")
    }
}

/// Whether the database Service has a ready endpoint (MongoDB is TCP: no
/// VirtualService applies to it).
fn db_ready(sim: &Sim, pod: &PodInfo, db: &str) -> bool {
    let store = sim.shared().store.lock();
    let Some((svc, ns)) = super::route::service_of(&super::route::fqdn(db, &pod.namespace)) else {
        return false;
    };
    store
        .list("discovery.k8s.io", "endpointslices", Some(&ns))
        .into_iter()
        .filter(|s| str_at(s, "/metadata/labels/kubernetes.io~1service-name") == svc)
        .flat_map(|s| s.get("endpoints").and_then(Value::as_array))
        .flatten()
        .any(|e| e.pointer("/conditions/ready") == Some(&Value::Bool(true)))
}

/// golang.org/x/time/rate's token bucket plus the book's cool-down.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limiter {
    tokens: f64,
    last: Duration,
    refused_at: Option<Duration>,
}

impl Limiter {
    fn new(now: Duration) -> Self {
        Limiter {
            tokens: BURST,
            last: now,
            refused_at: None,
        }
    }

    fn allow(&mut self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn limiter(sim: &Sim, pod: &PodInfo) -> Resp {
    let now = sim.sim_clock().now();
    let mut g = sim.gateway_state().lock();
    let l = g
        .limiters
        .entry(pod.uid.clone())
        .or_insert_with(|| Limiter::new(now));
    let refused = if l.allow(now) {
        l.refused_at
            .is_some_and(|t| now.saturating_sub(t) < COOL_DOWN)
    } else {
        l.refused_at = Some(now);
        true
    };
    if refused {
        Resp::text(429, "Internal Server Error\n")
    } else {
        Resp::text(200, "Everything is OK\n")
    }
}

async fn repeater(sim: &Sim, pod: &PodInfo, req: &Req) -> Resp {
    let query = Query::parse(req.path.split_once('?').map(|(_, q)| q));
    let Some(addr) = query.get("addr").filter(|a| !a.is_empty()) else {
        return Resp::text(400, "the addr query parameter is required\n");
    };
    let Some(rest) = addr.strip_prefix("http://") else {
        return Resp::text(
            500,
            format!("Get \"{addr}\": unsupported protocol scheme (the sandbox speaks http only)\n"),
        );
    };
    let (authority, path) = rest.find(['/', '?']).map_or((rest, "/".to_string()), |i| {
        let p = &rest[i..];
        (
            &rest[..i],
            if p.starts_with('/') {
                p.to_string()
            } else {
                format!("/{p}")
            },
        )
    });
    let out = Req {
        method: "GET".into(),
        path,
    };
    match envoy::call(sim, pod, authority, &out).await {
        Ok(r) => Resp::text(r.status, r.body),
        Err(e) => Resp::text(500, format!("Get \"{addr}\": {e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        let mut l = Limiter::new(Duration::ZERO);
        let allowed = (0..12).filter(|_| l.allow(Duration::ZERO)).count();
        assert_eq!(allowed, 10);
        assert!(l.allow(Duration::from_millis(200)));
        assert!(!l.allow(Duration::from_millis(200)));
    }
}
