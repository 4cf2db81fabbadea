//! The Istio fault actions against the simulator: route matching decides
//! which routes change, the original spec is in the ledger before the
//! VirtualService changes, removal restores it exactly, the undo is
//! idempotent, and dry mode, the limits and every failure change nothing.

use std::sync::Arc;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use squall_activity::{ActivityCtx, ActivityError};
use squall_core::model::Limits;
use squall_sim::{Sim, SimOptions};

use super::*;
use crate::testkit::{Bed, MemLedger, args};

const NS: &str = "default";

fn spec() -> Value {
    json!({
        "hosts": ["go-demo-8"],
        "http": [
            {"match": [{"uri": {"prefix": "/admin"}}],
             "route": [{"destination": {"host": "admin"}}]},
            {"route": [{"destination": {"host": "go-demo-8", "subset": "primary", "port": {"number": 80}}}],
             "timeout": "3s"}
        ]
    })
}

fn vs_api(client: kube::Client) -> Api<DynamicObject> {
    vs::api(client, NS, "networking.istio.io/v1alpha3").unwrap()
}

async fn create(bed: &Bed, name: &str, spec: Value) {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": name, "labels": {"team": "chaos"}},
        "spec": spec,
    }))
    .unwrap();
    vs_api(bed.client.clone())
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

fn stored(sim: &Sim, name: &str) -> Value {
    sim.get("networking.istio.io", "virtualservices", NS, name)
        .unwrap_or(Value::Null)
}

fn primary() -> Value {
    json!([{"destination": {"host": "go-demo-8", "subset": "primary"}}])
}

fn abort_args() -> serde_json::Map<String, Value> {
    args(
        json!({"virtual_service_name": "go-demo-8", "http_status": 500, "routes": primary(), "percentage": 50, "ns": NS}),
    )
}

fn delay_args() -> serde_json::Map<String, Value> {
    args(
        json!({"virtual_service_name": "go-demo-8", "fixed_delay": "15s", "routes": primary(), "ns": NS}),
    )
}

fn remove_args() -> serde_json::Map<String, Value> {
    args(json!({"virtual_service_name": "go-demo-8", "routes": primary(), "ns": NS}))
}

/// A bed whose ledger notes the VirtualService's spec at each record.
fn watched_bed() -> Bed {
    let sim = Sim::start(SimOptions::default());
    let seen = sim.clone();
    let ledger = MemLedger {
        on_record: Some(Box::new(move |target: &str| {
            let name = target.rsplit('/').next().unwrap_or_default();
            stored(&seen, name)["spec"].clone()
        })),
        ..MemLedger::default()
    };
    Bed::on(sim, ledger)
}

#[tokio::test(start_paused = true)]
async fn add_records_the_original_spec_first_and_remove_restores_it_exactly() {
    let bed = watched_bed();
    create(&bed, "go-demo-8", spec()).await;
    let ctx = bed.ctx(Limits::default());
    let out = (ADD_ABORT_FAULT.run)(ctx.clone(), abort_args())
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["headers"], json!({}));
    let fault = json!({"abort": {"httpStatus": 500, "percentage": {"value": 50}}});
    assert_eq!(out["body"]["spec"]["http"][1]["fault"], fault);
    let now = stored(&bed.sim, "go-demo-8");
    assert_eq!(now["spec"]["http"][1]["fault"], fault);
    assert_eq!(
        now["spec"]["http"][0],
        spec()["http"][0],
        "unmatched route untouched"
    );

    let entries = bed.entries();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.pending.target, "virtualservice/default/go-demo-8");
    assert_eq!(e.pending.undo.kind, UNDO_KIND);
    assert_eq!(e.seen, spec(), "undo before harm");
    assert_eq!(e.pending.undo.data["spec"], spec());
    assert_eq!(
        e.pending.undo.data["version"],
        "networking.istio.io/v1alpha3"
    );

    // A second fault in the same run replaces the first, as upstream, says
    // so, and records nothing new: the undo holds the spec from before.
    (ADD_DELAY_FAULT.run)(ctx.clone(), delay_args())
        .await
        .unwrap();
    let now = &stored(&bed.sim, "go-demo-8")["spec"]["http"][1]["fault"];
    assert_eq!(now, &json!({"delay": {"fixedDelay": "15s"}}));
    let logged = bed.log.0.lock().unwrap().join("\n");
    let warning = "WARNING the delay fault replaces the whole fault of http route(s) 1 of VirtualService default/go-demo-8";
    assert!(logged.contains(warning), "{logged}");
    assert_eq!(bed.entries().len(), 1);

    let out = (REMOVE_ABORT_FAULT.run)(ctx.clone(), remove_args())
        .await
        .unwrap();
    assert_eq!(out["body"]["spec"], spec());
    let after = stored(&bed.sim, "go-demo-8");
    assert_eq!(after["spec"], spec(), "the exact original spec");
    assert_eq!(
        after["metadata"]["labels"],
        json!({"team": "chaos"}),
        "metadata kept"
    );
    assert!(bed.entries()[0].done);
    // The second rollback finds nothing left to do.
    let out = (REMOVE_DELAY_FAULT.run)(ctx, remove_args()).await.unwrap();
    assert_eq!(out["body"]["spec"], spec());
}

#[tokio::test(start_paused = true)]
async fn without_a_recorded_spec_remove_takes_only_its_own_fault() {
    let bed = Bed::new();
    let mut with_delay = spec();
    with_delay["http"][1]["fault"] =
        json!({"delay": {"fixedDelay": "1s"}, "abort": {"httpStatus": 503}});
    create(&bed, "go-demo-8", with_delay.clone()).await;
    let ctx = bed.ctx(Limits::default());
    (REMOVE_ABORT_FAULT.run)(ctx.clone(), remove_args())
        .await
        .unwrap();
    let fault = &stored(&bed.sim, "go-demo-8")["spec"]["http"][1]["fault"];
    assert_eq!(
        fault,
        &json!({"delay": {"fixedDelay": "1s"}}),
        "the older delay stays"
    );
    let rv = stored(&bed.sim, "go-demo-8")["metadata"]["resourceVersion"].clone();
    (REMOVE_ABORT_FAULT.run)(ctx, remove_args()).await.unwrap();
    assert_eq!(
        stored(&bed.sim, "go-demo-8")["metadata"]["resourceVersion"],
        rv,
        "nothing to remove: no write"
    );
    // Removing a fault that predates the run is a change: its undo (the
    // spec with both faults) was recorded first and stays pending for
    // `squall recover`; the second removal recorded nothing more.
    let entries = bed.entries();
    assert_eq!(entries.len(), 1);
    assert!(!entries[0].done);
    assert_eq!(entries[0].pending.undo.data["spec"], with_delay);
    assert_eq!(entries[0].pending.undo.data["by"], "remove");
}

#[tokio::test(start_paused = true)]
async fn failures_are_failed_activities_and_change_nothing() {
    let bed = Bed::new();
    create(&bed, "go-demo-8", spec()).await;
    create(
        &bed,
        "tcp-only",
        json!({"hosts": ["db"], "tcp": [{"route": []}]}),
    )
    .await;
    let ctx = bed.ctx(Limits::default());
    let run = |a: Value| (ADD_ABORT_FAULT.run)(ctx.clone(), args(a));
    let base = json!({"http_status": 500, "routes": primary(), "ns": NS});
    let with = |k: &str, v: Value| {
        let mut a = base.clone();
        a[k] = v;
        a
    };
    let err = run(with("virtual_service_name", json!("nope")))
        .await
        .unwrap_err();
    assert!(matches!(err, ActivityError::Failed(_)));
    assert!(
        err.message().starts_with(
            "Virtual Service 'nope' does not exist: {'kind': 'Status', 'apiVersion': 'v1'"
        ),
        "{err:?}"
    );
    assert!(err.message().contains("'code': 404"), "{err:?}");
    let mut other = with("virtual_service_name", json!("go-demo-8"));
    other["routes"] = json!([{"destination": {"host": "go-demo-8.default.svc.cluster.local", "subset": "primary"}}]);
    let err = run(other).await.unwrap_err();
    assert_eq!(
        err,
        ActivityError::failed(
            "Virtual Service 'go-demo-8' has no http route to go-demo-8.default.svc.cluster.local (subset primary); nothing was changed"
        )
    );
    let err = run(with("virtual_service_name", json!("tcp-only")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ActivityError::failed("Virtual Service 'tcp-only' has no http routes")
    );
    let mut bad = with("virtual_service_name", json!("go-demo-8"));
    bad["version"] = json!("v1alpha3");
    assert!(
        run(bad)
            .await
            .unwrap_err()
            .message()
            .starts_with("version must be group/version")
    );
    assert_eq!(stored(&bed.sim, "go-demo-8")["spec"], spec());
    assert!(bed.entries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn other_api_versions_reach_the_same_object() {
    let bed = Bed::new();
    create(&bed, "go-demo-8", spec()).await;
    let mut a = abort_args();
    a.insert("version".into(), json!("networking.istio.io/v1beta1"));
    let out = (ADD_ABORT_FAULT.run)(bed.ctx(Limits::default()), a)
        .await
        .unwrap();
    assert_eq!(out["body"]["apiVersion"], "networking.istio.io/v1beta1");
    assert!(stored(&bed.sim, "go-demo-8")["spec"]["http"][1]["fault"].is_object());
}

#[tokio::test(start_paused = true)]
async fn dry_mode_plans_and_changes_nothing() {
    let mut bed = Bed::new();
    create(&bed, "go-demo-8", spec()).await;
    bed.dry = true;
    let ctx = bed.ctx(Limits::default());
    let out = (ADD_ABORT_FAULT.run)(ctx.clone(), abort_args())
        .await
        .unwrap();
    assert_eq!(out["dry"], true);
    assert_eq!(out["targets"], json!(["virtualservice/default/go-demo-8"]));
    let change = out["changes"][0].as_str().unwrap();
    assert!(
        change.starts_with("add abort fault {\"httpStatus\":500"),
        "{change}"
    );
    assert!(
        change.ends_with("to http route(s) 1 of VirtualService default/go-demo-8"),
        "{change}"
    );
    let logged = bed.log.0.lock().unwrap().join("\n");
    assert!(
        logged.contains("dry run: would add abort fault"),
        "{logged}"
    );
    for run in [REMOVE_ABORT_FAULT.run, RESTORE_VIRTUAL_SERVICES.run] {
        run(ctx.clone(), remove_args()).await.unwrap();
    }
    let random = args(json!({"http_status": 500, "ns": NS, "seed": 7}));
    let out = (ADD_ABORT_FAULT_RANDOM.run)(ctx, random).await.unwrap();
    assert_eq!(out["dry"], true);
    assert_eq!(out["virtual_service"], "go-demo-8");
    assert_eq!(stored(&bed.sim, "go-demo-8")["spec"], spec());
    assert!(bed.entries().is_empty());
    // A missing VirtualService still fails in dry mode: the plan resolves targets.
    let mut missing = abort_args();
    missing.insert("virtual_service_name".into(), json!("nope"));
    assert!(
        (ADD_ABORT_FAULT.run)(bed.ctx(Limits::default()), missing)
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn the_limits_refuse_before_any_change() {
    let bed = Bed::new();
    create(&bed, "go-demo-8", spec()).await;
    let limits = Limits {
        max_targets: None,
        max_percent: Some(50.0),
    };
    let err = (ADD_DELAY_FAULT.run)(bed.ctx(limits), delay_args())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ActivityError::failed(
            "blast radius exceeded: add_delay_fault picked 1 of 1 VirtualServices in the namespace (100.0%) but squall.limits.max_percent is 50; no VirtualService was changed"
        )
    );
    create(&bed, "other", spec()).await;
    (ADD_DELAY_FAULT.run)(bed.ctx(limits), delay_args())
        .await
        .unwrap();
    assert_eq!(bed.entries().len(), 1, "1 of 2 is within 50%");
}

#[tokio::test]
async fn a_concurrent_change_fails_the_write_and_the_undo_is_marked_done() {
    let sim = Sim::start(SimOptions::default());
    let other = sim.clone();
    // Someone else edits the VirtualService between our read and our write.
    let ledger = MemLedger {
        on_record: Some(Box::new(move |_: &str| {
            let sim = other.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let api = vs_api(kube::Client::new(sim, NS));
                    let label = json!({"metadata": {"labels": {"edited": "yes"}}});
                    api.patch("go-demo-8", &PatchParams::default(), &Patch::Merge(&label))
                        .await
                        .unwrap();
                });
            })
            .join()
            .unwrap();
            Value::Null
        })),
        ..MemLedger::default()
    };
    let bed = Bed::on(sim, ledger);
    create(&bed, "go-demo-8", spec()).await;
    let err = (ADD_ABORT_FAULT.run)(bed.ctx(Limits::default()), abort_args())
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("Failed to add the abort fault to Virtual Service 'go-demo-8'"),
        "{err:?}"
    );
    let now = stored(&bed.sim, "go-demo-8");
    assert_eq!(
        now["metadata"]["labels"]["edited"], "yes",
        "their edit stays"
    );
    assert_eq!(now["spec"], spec(), "no stale overwrite");
    assert!(bed.entries()[0].done, "nothing to undo");
}

#[tokio::test(start_paused = true)]
async fn a_pending_undo_of_another_run_does_not_stop_this_run_recording_its_own() {
    let bed = Bed::new();
    create(&bed, "go-demo-8", spec()).await;
    (ADD_ABORT_FAULT.run)(bed.ctx(Limits::default()), abort_args())
        .await
        .unwrap();
    let first = bed.ctx(Limits::default());
    let second = Arc::new(ActivityCtx {
        configuration: serde_json::Map::new(),
        secrets: serde_json::Map::new(),
        ledger: first.ledger.clone(),
        run_id: "run-2".into(),
        log: first.log.clone(),
        limits: Limits::default(),
        events: first.events.clone(),
        services: first.services.clone(),
        dry: false,
    });
    (ADD_DELAY_FAULT.run)(second.clone(), delay_args())
        .await
        .unwrap();
    let entries = bed.entries();
    assert_eq!(entries.len(), 2);
    assert!(entries[1].pending.undo.data["spec"]["http"][1]["fault"]["abort"].is_object());
    // Run 2's rollback restores what run 2 found (the abort of run 1).
    (REMOVE_DELAY_FAULT.run)(second, remove_args())
        .await
        .unwrap();
    let fault = &stored(&bed.sim, "go-demo-8")["spec"]["http"][1]["fault"];
    assert_eq!(
        fault,
        &entries[1].pending.undo.data["spec"]["http"][1]["fault"]
    );
    assert!(fault["abort"].is_object());
    assert!(!bed.entries()[0].done && bed.entries()[1].done);
}

#[tokio::test(start_paused = true)]
async fn random_faults_replay_their_seed_and_restore_puts_everything_back() {
    let bed = Bed::new();
    for name in ["a", "b", "c", "d"] {
        create(&bed, name, spec()).await;
    }
    let ctx = bed.ctx(Limits::default());
    let out =
        (ADD_DELAY_FAULT_RANDOM.run)(ctx.clone(), args(json!({"fixed_delay": "2s", "ns": NS})))
            .await
            .unwrap();
    let seed = out["seed"].as_u64().unwrap();
    let name = out["virtual_service"].as_str().unwrap().to_owned();
    let http = &stored(&bed.sim, &name)["spec"]["http"];
    for i in 0..2 {
        assert_eq!(
            http[i]["fault"],
            json!({"delay": {"fixedDelay": "2s"}}),
            "every route"
        );
    }
    let logged = bed.log.0.lock().unwrap().join("\n");
    assert!(logged.contains(&format!("with seed {seed}")), "{logged}");
    // The same seed picks the same VirtualService.
    let again = args(json!({"http_status": 503, "ns": NS, "seed": seed}));
    let out = (ADD_ABORT_FAULT_RANDOM.run)(ctx.clone(), again)
        .await
        .unwrap();
    assert_eq!(out["virtual_service"], name.as_str());
    assert_eq!(
        bed.entries().len(),
        1,
        "one undo per VirtualService and run"
    );

    let out = (RESTORE_VIRTUAL_SERVICES.run)(ctx.clone(), args(json!({"ns": NS}))).await;
    assert_eq!(out, Ok(json!([name])));
    assert_eq!(stored(&bed.sim, &name)["spec"], spec());
    let out = (RESTORE_VIRTUAL_SERVICES.run)(ctx, args(json!({"ns": NS}))).await;
    assert_eq!(out, Ok(json!([])), "idempotent");
}

#[tokio::test(start_paused = true)]
async fn random_faults_need_a_virtual_service_with_http_routes_and_respect_limits() {
    let bed = Bed::new();
    let a = args(json!({"http_status": 500, "ns": NS}));
    let err = (ADD_ABORT_FAULT_RANDOM.run)(bed.ctx(Limits::default()), a.clone())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ActivityError::failed(
            "no VirtualService in namespace 'default' has http routes; nothing was changed"
        )
    );
    create(&bed, "only", spec()).await;
    let limits = Limits {
        max_targets: Some(0),
        max_percent: None,
    };
    let err = (ADD_ABORT_FAULT_RANDOM.run)(bed.ctx(limits), a)
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("blast radius exceeded"),
        "{err:?}"
    );
    assert_eq!(stored(&bed.sim, "only")["spec"], spec());
}

#[tokio::test]
async fn the_undo_reconnects_restores_once_and_ignores_a_deleted_virtual_service() {
    let sim = Sim::start(SimOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, squall_sim::kubeconfig(&server)).unwrap();
    let opts = crate::ConnectOptions {
        kubeconfig: Some(path),
        context: None,
    };
    let mut bed = Bed::on(sim, MemLedger::default());
    bed.kube = Kube::connect_in(&opts, &crate::Environment::default())
        .await
        .unwrap();
    create(&bed, "go-demo-8", spec()).await;
    (ADD_ABORT_FAULT.run)(bed.ctx(Limits::default()), abort_args())
        .await
        .unwrap();
    let data = bed.entries()[0].pending.undo.data.clone();
    assert_eq!(data["connection"]["source"], "kubeconfig");
    (UNDO_RESTORE.apply)(data.clone()).await.unwrap();
    let restored = stored(&bed.sim, "go-demo-8");
    assert_eq!(restored["spec"], spec());
    (UNDO_RESTORE.apply)(data.clone()).await.unwrap();
    assert_eq!(
        stored(&bed.sim, "go-demo-8")["metadata"]["resourceVersion"],
        restored["metadata"]["resourceVersion"],
        "a second apply writes nothing"
    );
    vs_api(bed.client.clone())
        .delete("go-demo-8", &Default::default())
        .await
        .unwrap();
    (UNDO_RESTORE.apply)(data).await.unwrap();
    assert!(
        bed.sim
            .get("networking.istio.io", "virtualservices", NS, "go-demo-8")
            .is_none()
    );
}
