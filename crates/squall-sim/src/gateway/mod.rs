//! The demo application's data plane: an HTTP/1.1 server on the gateway port
//! that plays the cluster's ingress (Istio ingress gateway or nginx Ingress),
//! its Services and the book's applications.
//!
//! Every request reads the store afresh: the Host header picks a route
//! ([`route`]), the route's Service resolves to ready endpoints (the
//! EndpointSlices the controllers maintain), Envoy's policy applies (fault,
//! retries, timeout: [`envoy`]), and the chosen pod plays the application its
//! image says it is ([`apps`]): go-demo-8, the repeater or MongoDB. The
//! repeater's outgoing calls go through the same machinery in the mesh
//! context, so VirtualServices on `go-demo-8` apply to the repeater →
//! go-demo-8 hop exactly as the book's experiments expect. Delays and timeouts
//! run on the sim clock; random choices come from a generator seeded from the
//! simulator's seed, so a run is repeatable.

pub(crate) mod apps;
pub(crate) mod envoy;
pub(crate) mod route;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use tokio::net::TcpListener;

use crate::api::http::full;
use crate::sim::Sim;
use crate::{Body, Clock};

/// A request as the data plane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Req {
    pub method: String,
    /// Path and query, e.g. `/?addr=http://go-demo-8/limiter`.
    pub path: String,
}

/// A response on its way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resp {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    /// A response with a plain-text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Resp {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

/// Mutable data-plane state shared by every clone of a [`Sim`].
pub(crate) struct State {
    inner: Mutex<Inner>,
}

/// What the lock protects.
pub(crate) struct Inner {
    /// Seeded generator for fault percentages, weights and backoff jitter.
    pub rng: Xoshiro256PlusPlus,
    /// Round-robin position per Service (`ns/name`).
    pub rr: HashMap<String, usize>,
    /// go-demo-8's `/limiter` state per pod uid.
    pub limiters: HashMap<String, apps::Limiter>,
}

impl State {
    /// Fresh state; `seed` comes from the simulator's seed.
    pub fn new(seed: u64) -> Self {
        State {
            inner: Mutex::new(Inner {
                rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x9a7e_3a1d),
                rr: HashMap::new(),
                limiters: HashMap::new(),
            }),
        }
    }

    /// Locks the state (a poisoned lock is recovered: plain data).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The Host header (or the URI authority), lowercase, without the port.
fn host_of<B>(req: &Request<B>) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.host().to_string()))
        .unwrap_or_default();
    let host = if raw.starts_with('[') {
        raw.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        raw.split(':').next().unwrap_or_default().to_string()
    };
    host.to_ascii_lowercase()
}

fn to_response(r: Resp) -> Response<Body> {
    let mut out = Response::new(full(r.body));
    *out.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            out.headers_mut().insert(k, v);
        }
    }
    out
}

impl Sim {
    /// Handles one request on the gateway (in process): routes it by Host
    /// header and returns what a client of the ingress would get.
    pub async fn gateway<B>(&self, req: Request<B>) -> Response<Body> {
        let host = host_of(&req);
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_string(), ToString::to_string);
        let r = Req {
            method: req.method().to_string(),
            path,
        };
        to_response(envoy::external(self, &host, &r).await)
    }

    /// Serves the data plane over HTTP/1.1 on `listener` until `shutdown`
    /// completes. The listener must be bound to a loopback address (there is
    /// no authentication); anything else is refused with `InvalidInput`.
    pub async fn serve_gateway(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        if !listener.local_addr()?.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the sandbox gateway only listens on a loopback address (127.0.0.1)",
            ));
        }
        crate::sim::serve_http(
            listener,
            shutdown,
            move |req: Request<hyper::body::Incoming>| {
                let sim = self.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    // The apps ignore bodies; drain it so keep-alive works.
                    let _ = body.collect().await.map(|c| c.to_bytes());
                    sim.gateway(Request::from_parts(parts, Bytes::new())).await
                }
            },
        )
        .await
    }

    pub(crate) fn gateway_state(&self) -> &State {
        &self.shared().gateway
    }

    pub(crate) fn sim_clock(&self) -> Clock {
        self.shared().store.lock().clock
    }
}
