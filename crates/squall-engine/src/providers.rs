//! Providers: how activities reach the world. `process` and `http` are the
//! Chaos Toolkit provider types; the native modules (`squall.testing`, and
//! later Kubernetes, Istio and the data plane) are registry entries.

pub mod availability;
pub mod dataplane;
pub mod http;
pub mod process;
pub mod testing;
