//! squall-sim: a Kubernetes API simulator.
//!
//! It serves the Kubernetes REST API with real apiserver semantics (discovery,
//! get/list/watch with selectors, create/update/patch/delete with
//! resourceVersion and graceful deletion, the eviction subresource with
//! PodDisruptionBudgets, Istio custom resources) and runs the controllers that
//! make a cluster move (Deployment → ReplicaSet → Pod, StatefulSet, DaemonSet,
//! HPA minimum, scheduler, kubelet, endpoints, garbage collection) on a clock
//! tests can speed up. Use it as a `tower::Service` behind
//! `kube::Client::new(sim, "default")`, or over HTTP with [`Sim::serve`].
//! [`Sim::serve_gateway`] plays the book's demo application behind an
//! ingress, with Istio faults, retries and timeouts; [`Scenario`] starts a
//! cluster in one of the book's chapter states.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use squall_sim::{Sim, SimOptions};
//! let sim = Sim::start(SimOptions { nodes: 3, speed: 20.0, ..SimOptions::default() });
//! // In-process: kube::Client::new(sim.clone(), "default")
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("serving on http://{}", listener.local_addr()?);
//! sim.serve(listener).await
//! # }
//! ```

mod api;
pub mod clock;
mod cluster;
pub mod controllers;
mod defaults;
pub mod error;
mod gateway;
pub mod ops;
pub mod patch;
pub mod resources;
pub mod runtime;
pub mod scenario;
pub mod selector;
mod sim;
pub mod store;

pub use api::Body;
pub use clock::Clock;
pub use error::ApiError;
pub use scenario::Scenario;
pub use sim::{MAX_BODY, Sim, SimOptions, kubeconfig};
pub use store::Timing;
