//! Providers: how activities reach the world. `process` and `http` are the
//! Chaos Toolkit provider types, built into the engine; native modules are
//! registry entries, and the engine's only own one is `squall.testing`
//! ([`testing::PROVIDER`]). Kubernetes, Istio and the data plane live in
//! their own crates.

pub mod capture;
pub mod group;
pub mod http;
pub mod process;
pub mod testing;

/// An activity context for provider unit tests: a ledger in `dir`, a
/// capturing log, no configuration.
#[cfg(test)]
pub(crate) fn test_ctx(dir: &std::path::Path) -> std::sync::Arc<squall_activity::ActivityCtx> {
    use std::sync::Arc;
    Arc::new(squall_activity::ActivityCtx {
        configuration: serde_json::Map::new(),
        secrets: serde_json::Map::new(),
        ledger: Arc::new(crate::ledger::Ledger::open(&dir.join("l.jsonl")).expect("test ledger")),
        run_id: "r".into(),
        log: Arc::new(crate::log::Logger::capture()),
        limits: Default::default(),
        events: Default::default(),
        services: Default::default(),
        dry: false,
    })
}
