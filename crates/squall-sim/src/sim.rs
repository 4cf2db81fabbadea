//! The public handle: [`Sim`] owns the store and the controller task, serves
//! requests as a `tower::Service` (for `kube::Client::new`) and over HTTP/1.1
//! on a TCP listener (for kubectl and the CLI).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, Body};
use crate::clock::Clock;
use crate::controllers;
use crate::error::ApiError;
use crate::runtime::{self, ProcessRuntime};
use crate::scenario::Scenario;
use crate::store::{Store, Timing};

/// Options for a simulated cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Number of worker nodes (`node-1` … `node-N`).
    pub nodes: usize,
    /// How much faster than tokio time the sim clock runs (1.0 = real time).
    pub speed: f64,
    /// Seed of the random generator (names, uids): same seed, same run.
    pub seed: u64,
    /// Delays of the kubelet model, in sim time.
    pub timing: Timing,
    /// Controllers sleep until the next timed transition (readiness, grace
    /// periods, evictions); if one is due but did not happen, they retry after
    /// this much tokio time instead of spinning.
    pub tick: Duration,
    /// Also run kube-system workloads: the kube-proxy DaemonSet (host network)
    /// and CoreDNS behind the `kube-dns` service, as a real cluster has.
    pub system_pods: bool,
    /// Objects to create at start, e.g. the book's go-demo-8 application.
    pub scenario: Scenario,
    /// Images whose host-network pods run as real processes (squall's own
    /// data-plane helper pods, in a node's network namespace).
    pub runtime: Option<ProcessRuntime>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: 3,
            speed: 1.0,
            seed: 0x5ca11,
            timing: Timing::default(),
            tick: Duration::from_millis(20),
            system_pods: false,
            scenario: Scenario::Empty,
            runtime: None,
        }
    }
}

/// State shared by every clone of a [`Sim`].
pub(crate) struct Shared {
    /// The object store.
    pub(crate) store: Store,
    /// Data-plane state (round robin, limiters, seeded generator).
    pub(crate) gateway: crate::gateway::State,
    /// Output of the pods the process runtime runs.
    pub(crate) logs: runtime::Logs,
    /// Stops the controllers.
    stop: watch::Sender<bool>,
    /// Stops the process runtime, giving its processes this grace period.
    runtime_stop: watch::Sender<Option<Duration>>,
    /// The process runtime's task, until [`Sim::shutdown`] waits for it.
    runtime_task: Mutex<Option<JoinHandle<()>>>,
}

/// A running simulated cluster. Clones share the cluster; the controllers stop
/// on [`Sim::shutdown`] or when the last clone (including clones held by
/// `kube::Client`) is dropped.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
}

impl Sim {
    /// Starts a cluster with default namespaces and `options.nodes` Ready nodes,
    /// and spawns its controllers. Must be called inside a tokio runtime.
    pub fn start(options: SimOptions) -> Self {
        let clock = Clock::new(options.speed);
        let store = Store::new(clock, options.seed, options.timing);
        crate::cluster::bootstrap(&mut store.lock(), options.nodes, options.system_pods);
        crate::scenario::load(&mut store.lock(), options.scenario);
        let (tx, rx) = watch::channel(false);
        let runtime = options.runtime.map(Arc::new);
        let logs = runtime::Logs::default();
        let (runtime_stop, runtime_rx) = watch::channel(None);
        let runtime_task = runtime.as_ref().map(|rt| {
            tokio::spawn(runtime::run(
                store.clone(),
                rt.clone(),
                logs.clone(),
                runtime_rx,
            ))
        });
        tokio::spawn(controllers::run(store.clone(), options.tick, runtime, rx));
        Sim {
            shared: Arc::new(Shared {
                store,
                gateway: crate::gateway::State::new(options.seed),
                logs,
                stop: tx,
                runtime_stop,
                runtime_task: Mutex::new(runtime_task),
            }),
        }
    }

    /// Stops the cluster: the processes of the process runtime get SIGTERM
    /// and up to `grace` to exit (a data-plane agent restores the rules it
    /// changed), then SIGKILL; returns once they are gone, with the
    /// controllers stopped. Without it, dropping the last clone SIGKILLs
    /// them.
    pub async fn shutdown(self, grace: Duration) {
        self.shared.runtime_stop.send_replace(Some(grace));
        let task = self
            .shared
            .runtime_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.shared.stop.send_replace(true);
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The sim clock.
    pub fn clock(&self) -> Clock {
        self.shared.store.lock().clock
    }

    /// Reads an object directly (group "" for core), bypassing HTTP.
    pub fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .store
            .lock()
            .get(group, resource, namespace, name)
            .cloned()
    }

    /// Lists objects directly, optionally in one namespace.
    pub fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        self.shared
            .store
            .lock()
            .list_owned(group, resource, namespace)
    }

    /// Drops the watch history (an etcd compaction): watches from older
    /// resourceVersions get 410 Expired.
    pub fn compact(&self) {
        self.shared.store.lock().compact();
    }

    /// Kills and restarts the containers of a running pod (all of them, or the
    /// named one), as a crash or an OOM kill would: `restartCount` goes up,
    /// `lastState.terminated` records `exit_code` and `reason`, and the pod is
    /// unready for the readiness delay.
    pub fn restart_container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        exit_code: i64,
        reason: &str,
    ) -> Result<Value, ApiError> {
        let out = controllers::kubelet::restart_container(
            &mut self.shared.store.lock(),
            namespace,
            pod,
            container,
            exit_code,
            reason,
        );
        self.shared.store.poke();
        out
    }

    /// Handles one request with a collected body.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Body> {
        api::handle(&self.shared, req).await
    }

    /// Serves the API over HTTP/1.1 on `listener` until the listener fails.
    /// Bind it to 127.0.0.1; the simulator has no authentication.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.serve_until(listener, std::future::pending()).await
    }

    /// Like [`Sim::serve`], but stops accepting connections when `shutdown`
    /// completes (e.g. on Ctrl-C). Open watch streams end with their timeout.
    pub async fn serve_until(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        serve_http(listener, shutdown, move |req| {
            let sim = self.clone();
            async move { sim.call_any(req).await }
        })
        .await
    }

    async fn call_any<B>(self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let (parts, body) = req.into_parts();
        // The apiserver's limit: a client cannot make the sandbox hold an
        // arbitrary amount of memory for one request.
        match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(c) => api::handle(&self.shared, Request::from_parts(parts, c.to_bytes())).await,
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                api::http::error_response(&ApiError::too_large(MAX_BODY))
            }
            Err(_) => {
                api::http::error_response(&ApiError::bad_request("failed to read the request body"))
            }
        }
    }
}

impl<B> tower_service::Service<Request<B>> for Sim
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let sim = self.clone();
        Box::pin(async move { Ok(sim.call_any(req).await) })
    }
}

/// Accepts HTTP/1.1 connections on `listener` until `shutdown` completes,
/// answering every request with `handle` (the API server and the demo
/// gateway share this loop).
pub(crate) async fn serve_http<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handle: F,
) -> std::io::Result<()>
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let fut = handle(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            // A client that opens a connection and sends no complete
            // request headers in time is dropped (also between requests on
            // a kept-alive connection), so half-open sockets cannot pile up.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with error");
            }
        });
    }
}

/// The largest request body accepted, as the apiserver's (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How long a connection may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A kubeconfig (YAML) whose current context points at a simulator served on
/// `server` (e.g. `http://127.0.0.1:43210`), for kubectl and `Config::infer`.
/// The simulator has no authentication, so the user entry is empty.
pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: squall-sim\n  cluster:\n    server: {server}\ncontexts:\n- name: squall-sim\n  context:\n    cluster: squall-sim\n    user: squall-sim\n    namespace: default\ncurrent-context: squall-sim\nusers:\n- name: squall-sim\n  user: {{}}\npreferences: {{}}\n"
    )
}
