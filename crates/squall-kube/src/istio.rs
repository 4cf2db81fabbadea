//! `chaosistio.fault.actions`: abort and delay faults on the `http` routes of
//! an Istio VirtualService, with chaostoolkit-istio's names, arguments,
//! route matching and `{status, body, headers}` results, plus squall's own
//! `squall.istio.actions` (a fault on a seeded random VirtualService of a
//! namespace, and restoring every VirtualService a run changed).
//!
//! Where squall differs from upstream, on purpose (docs/istio.md): before
//! its first change to a VirtualService a run records the whole original
//! `spec` as an undo, so rollbacks and `squall recover` restore it exactly;
//! `remove_*_fault` restores that spec when the run recorded one, and
//! otherwise removes only its own kind of fault; and a missing
//! VirtualService, no matching route or a rejected write is a failed
//! activity, never a silent success. Like upstream, a fault replaces the
//! route's whole `fault` object (the book's chapter-5 results depend on it);
//! squall warns when that drops a fault of the other kind.
//! Route matching and fault building are in [`fault`], the API and the undo
//! in [`vs`].

pub mod fault;
pub mod vs;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Map, Value, json};
use squall_activity::describe::{self, arg};
use squall_activity::{ActivityCtx, ActivityError, ActivityResult, Registered};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType};

use self::fault::{Destinations, FaultKind};
use self::vs::VsRef;
use crate::args::{opt_int, opt_str, str_or};
use crate::connect::{Kube, kube};
use crate::{api_error, limits, select};

pub use self::vs::{UNDO_KIND, UNDO_RESTORE};

const UPSTREAM: &str = "chaosistio.fault.actions";
const SQUALL: &str = "squall.istio.actions";
const DEFAULT_VERSION: &str = "networking.istio.io/v1alpha3";

const VS_NAME: ArgSpec = arg(
    "virtual_service_name",
    ArgType::String,
    None,
    "The VirtualService's name.",
);
const ROUTES: ArgSpec = arg(
    "routes",
    ArgType::List,
    None,
    "Destinations whose http routes get the fault: [{\"destination\": {\"host\": \"reviews\", \"subset\": \"v2\"}}]. \
     Host and subset must equal the route's exactly (no FQDN normalisation; without a subset only destinations \
     without one match; port is ignored).",
);
const PERCENTAGE: ArgSpec = arg(
    "percentage",
    ArgType::Number,
    Some("null"),
    "Share of requests hit, 0-100, as a bare number (written as percentage.value); null: Istio's default, all.",
);
const HTTP_STATUS: ArgSpec = arg(
    "http_status",
    ArgType::Integer,
    None,
    "The HTTP status aborted requests get, e.g. 500.",
);
const FIXED_DELAY: ArgSpec = arg(
    "fixed_delay",
    ArgType::String,
    None,
    "How long delayed requests wait, as Istio writes it, e.g. \"15s\" or \"500ms\".",
);
const NS: ArgSpec = arg(
    "ns",
    ArgType::String,
    Some("\"default\""),
    "The namespace of the VirtualService.",
);
const VERSION: ArgSpec = arg(
    "version",
    ArgType::String,
    Some("\"networking.istio.io/v1alpha3\""),
    "The API group/version to use, e.g. networking.istio.io/v1beta1 or networking.istio.io/v1 on newer meshes.",
);
const SEED: ArgSpec = arg(
    "seed",
    ArgType::Integer,
    Some("null"),
    "Seed of the random pick: the output reports the seed used; pass it here to replay the same pick.",
);

/// What every fault-adding action promises, appended to its doc.
macro_rules! add_note {
    () => {
        " Before the run's first change to the VirtualService, records its whole original spec as an undo, so \
         rollbacks and `squall recover` restore it exactly. Replaces a route's whole fault object, as upstream \
         (a fault of the other kind there is dropped, with a warning). Fails, \
         changing nothing, when the VirtualService is missing, no route matches, the write is rejected or the pick \
         exceeds squall.limits. Returns {\"status\", \"body\": the updated VirtualService, \"headers\"}."
    };
}

/// What both removals do, appended to their doc.
macro_rules! remove_note {
    () => {
        " When this run recorded the VirtualService's original spec, restores exactly that spec (every fault the \
         run added goes) and marks the undo done; otherwise removes only this kind of fault from the matching \
         routes (upstream deletes the whole fault key, also one that was there before the experiment). \
         Idempotent. Returns {\"status\", \"body\", \"headers\"}."
    };
}

const fn action(
    module: &'static str,
    func: &'static str,
    doc: &'static str,
    args: &'static [ArgSpec],
) -> ActivitySpec {
    describe::action(module, func, doc, args, "mapping", true)
}

pub const ADD_ABORT_FAULT: Registered = Registered {
    spec: action(
        UPSTREAM,
        "add_abort_fault",
        concat!(
            "Abort requests on the http routes to the given destinations with an HTTP status.",
            add_note!()
        ),
        &[VS_NAME, HTTP_STATUS, ROUTES, PERCENTAGE, NS, VERSION],
    ),
    run: |ctx, args| Box::pin(add_named(ctx, args, FaultKind::Abort)),
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

pub const ADD_DELAY_FAULT: Registered = Registered {
    spec: action(
        UPSTREAM,
        "add_delay_fault",
        concat!(
            "Delay requests on the http routes to the given destinations by a fixed time.",
            add_note!()
        ),
        &[VS_NAME, FIXED_DELAY, ROUTES, PERCENTAGE, NS, VERSION],
    ),
    run: |ctx, args| Box::pin(add_named(ctx, args, FaultKind::Delay)),
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

pub const REMOVE_ABORT_FAULT: Registered = Registered {
    spec: action(
        UPSTREAM,
        "remove_abort_fault",
        concat!(
            "Remove the abort fault from the http routes to the given destinations.",
            remove_note!()
        ),
        &[VS_NAME, ROUTES, NS, VERSION],
    ),
    run: |ctx, args| Box::pin(remove_named(ctx, args, FaultKind::Abort)),
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

pub const REMOVE_DELAY_FAULT: Registered = Registered {
    spec: action(
        UPSTREAM,
        "remove_delay_fault",
        concat!(
            "Remove the delay fault from the http routes to the given destinations.",
            remove_note!()
        ),
        &[VS_NAME, ROUTES, NS, VERSION],
    ),
    run: |ctx, args| Box::pin(remove_named(ctx, args, FaultKind::Delay)),
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

pub const ADD_ABORT_FAULT_RANDOM: Registered = Registered {
    spec: action(
        SQUALL,
        "add_abort_fault_random",
        concat!(
            "Pick one VirtualService of the namespace at random (seeded; the output has the seed and the \
             name) and abort requests on all its http routes.",
            add_note!()
        ),
        &[HTTP_STATUS, PERCENTAGE, NS, VERSION, SEED],
    ),
    run: |ctx, args| Box::pin(add_random(ctx, args, FaultKind::Abort)),
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

pub const ADD_DELAY_FAULT_RANDOM: Registered = Registered {
    spec: action(
        SQUALL,
        "add_delay_fault_random",
        concat!(
            "Pick one VirtualService of the namespace at random (seeded; the output has the seed and the \
             name) and delay requests on all its http routes.",
            add_note!()
        ),
        &[FIXED_DELAY, PERCENTAGE, NS, VERSION, SEED],
    ),
    run: |ctx, args| Box::pin(add_random(ctx, args, FaultKind::Delay)),
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

pub const RESTORE_VIRTUAL_SERVICES: Registered = Registered {
    spec: ActivitySpec {
        returns: "list",
        ..action(
            SQUALL,
            "restore_virtual_services",
            "Restore the original spec of every VirtualService of the namespace that this run changed and has \
             not restored yet (the rollback of the random fault actions), mark their undos done, and return \
             their names. Idempotent.",
            &[NS, VERSION],
        )
    },
    run: |ctx, args| Box::pin(restore_all(ctx, args)),
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

/// The result upstream returns (`status`, `body`, `headers`). kube's typed
/// client does not expose response headers, so `headers` is empty.
fn output(body: Value) -> Value {
    json!({"status": 200, "body": body, "headers": {}})
}

/// The namespace and API version every action takes.
fn vs_api(
    kube: &Kube,
    args: &Map<String, Value>,
) -> Result<(Api<DynamicObject>, String, String), ActivityError> {
    let ns = str_or(args, "ns", "default")?;
    let version = str_or(args, "version", DEFAULT_VERSION)?;
    Ok((vs::api(kube.client(), &ns, &version)?, ns, version))
}

/// The VirtualService named by the arguments, read, with the routes the
/// `routes` argument selects (at least one, else the action fails).
struct Named {
    r: VsRef,
    api: Api<DynamicObject>,
    obj: Value,
    http: Vec<Value>,
    indices: Vec<usize>,
}

impl Named {
    async fn read(kube: &Kube, args: &Map<String, Value>) -> Result<Self, ActivityError> {
        let name = opt_str(args, "virtual_service_name")?
            .ok_or_else(|| ActivityError::failed("virtual_service_name is required"))?;
        let routes = match args.get("routes") {
            Some(Value::Array(list)) => list.clone(),
            other => {
                let v = other.cloned().unwrap_or(Value::Null);
                return Err(ActivityError::failed(format!(
                    "argument routes must be a list, not {v}"
                )));
            }
        };
        let dests = Destinations::from_routes(&routes).map_err(ActivityError::Failed)?;
        let (api, ns, version) = vs_api(kube, args)?;
        let obj = vs::get(&api, &name).await?;
        let http = http_of(&obj, &name)?;
        let indices = fault::matching(&http, &dests);
        if indices.is_empty() {
            return Err(ActivityError::Failed(format!(
                "Virtual Service '{name}' has no http route to {}; nothing was changed",
                none_if_empty(dests.describe())
            )));
        }
        let r = VsRef { ns, name, version };
        Ok(Self {
            r,
            api,
            obj,
            http,
            indices,
        })
    }
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() {
        "any destination (routes names none)".into()
    } else {
        s
    }
}

/// `spec.http`, which a VirtualService needs for an http fault.
fn http_of(obj: &Value, name: &str) -> Result<Vec<Value>, ActivityError> {
    obj.pointer("/spec/http")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| {
            ActivityError::Failed(format!("Virtual Service '{name}' has no http routes"))
        })
}

/// The fault an add action writes, from its arguments.
fn fault_spec(args: &Map<String, Value>, kind: FaultKind) -> Result<Value, ActivityError> {
    let percentage = match args.get("percentage") {
        None | Some(Value::Null) => None,
        Some(p @ Value::Number(_)) => Some(p),
        Some(v) => {
            return Err(ActivityError::failed(format!(
                "argument percentage must be a number, not {v}"
            )));
        }
    };
    match kind {
        FaultKind::Abort => {
            let status = opt_int(args, "http_status")?
                .ok_or_else(|| ActivityError::failed("http_status is required"))?;
            Ok(fault::abort(status, percentage))
        }
        FaultKind::Delay => {
            let delay = opt_str(args, "fixed_delay")?
                .ok_or_else(|| ActivityError::failed("fixed_delay is required"))?;
            Ok(fault::delay(&delay, percentage))
        }
    }
}

/// One fault about to be written to one VirtualService.
struct Change<'a> {
    r: &'a VsRef,
    kind: FaultKind,
    spec: Value,
    indices: &'a [usize],
}

impl Change<'_> {
    fn phrase(&self) -> String {
        format!(
            "add {} fault {} to http route(s) {} of VirtualService {}",
            self.kind.key(),
            self.spec,
            joined(self.indices),
            self.r.shown()
        )
    }
}

/// Route indices as `0, 2`.
fn joined(indices: &[usize]) -> String {
    let shown: Vec<String> = indices.iter().map(ToString::to_string).collect();
    shown.join(", ")
}

/// Refuses before any change when faulting one VirtualService out of `pool`
/// exceeds the experiment's limits.
fn check_limits(ctx: &ActivityCtx, func: &str, pool: usize) -> Result<(), ActivityError> {
    let targets = limits::Targets {
        activity: func,
        noun: "VirtualServices",
        pool: "VirtualServices in the namespace",
        untouched: "no VirtualService was changed",
        picked: 1,
        out_of: pool,
    };
    limits::check(&ctx.limits, &targets)
}

/// Records the undo (once per VirtualService and run), then writes the new
/// `http` list; if the write fails, the fresh undo is marked done.
async fn inject(
    ctx: &ActivityCtx,
    kube: &Kube,
    api: &Api<DynamicObject>,
    obj: &Value,
    http: &[Value],
    change: &Change<'_>,
) -> Result<Value, ActivityError> {
    let new_http = fault::add(http, change.indices, change.kind, &change.spec);
    let dropped = fault::replaced(http, change.indices, change.kind);
    if !dropped.is_empty() {
        ctx.log.warning(&format!(
            "the {} fault replaces the whole fault of http route(s) {} of VirtualService {}, \
             as chaostoolkit-istio does: a fault of another kind there is dropped",
            change.kind.key(),
            joined(&dropped),
            change.r.shown()
        ));
    }
    let undo = vs::record_once(ctx, kube, change.r, obj, vs::By::Inject)?;
    ctx.log.debug(&change.phrase());
    match vs::write_http(api, obj, new_http).await {
        Ok(updated) => Ok(updated),
        Err(e) => {
            if let Some(id) = undo {
                // Refused: nothing changed, so a rollback must not
                // "restore" later edits.
                crate::settle_failed_write(ctx, &id, &e)?;
            }
            Err(ActivityError::Failed(format!(
                "Failed to add the {} fault to Virtual Service '{}': {}",
                change.kind.key(),
                change.r.name,
                api_error(e).message()
            )))
        }
    }
}

async fn add_named(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
    kind: FaultKind,
) -> ActivityResult {
    let spec = fault_spec(&args, kind)?;
    let kube = kube(&ctx)?;
    let n = Named::read(&kube, &args).await?;
    let pool = vs::names(&n.api).await?.len();
    check_limits(&ctx, &format!("add_{}_fault", kind.key()), pool)?;
    let change = Change {
        r: &n.r,
        kind,
        spec,
        indices: &n.indices,
    };
    if ctx.dry {
        return ctx.plan(&[n.r.target()], &[change.phrase()]);
    }
    let updated = inject(&ctx, &kube, &n.api, &n.obj, &n.http, &change).await?;
    Ok(output(updated))
}

async fn remove_named(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
    kind: FaultKind,
) -> ActivityResult {
    let kube = kube(&ctx)?;
    let n = Named::read(&kube, &args).await?;
    let pending: Vec<_> = vs::pending_of_run(&ctx, &n.r)?
        .into_iter()
        .filter(vs::recorded_by_inject)
        .collect();
    if ctx.dry {
        let change = if pending.is_empty() {
            format!(
                "remove the {} fault from the matching http routes of VirtualService {}",
                kind.key(),
                n.r.shown()
            )
        } else {
            restore_phrase(&n.r)
        };
        return ctx.plan(&[n.r.target()], &[change]);
    }
    if let Some(first) = pending.first() {
        let restored = vs::restore(&kube, &first.undo.data)
            .await
            .map_err(ActivityError::Failed)?;
        for p in &pending {
            ctx.mark_done(&p.id)?;
        }
        return Ok(output(restored.unwrap_or(n.obj)));
    }
    let Some(new_http) = fault::remove(&n.http, &n.indices, kind) else {
        return Ok(output(n.obj));
    };
    // The fault predates this run (another run, another tool): removing it
    // is a change like any other, so its undo goes in the ledger first.
    let undo = vs::record_once(&ctx, &kube, &n.r, &n.obj, vs::By::Remove)?;
    match vs::write_http(&n.api, &n.obj, new_http).await {
        Ok(updated) => Ok(output(updated)),
        Err(e) => {
            if let Some(id) = undo {
                crate::settle_failed_write(&ctx, &id, &e)?;
            }
            Err(ActivityError::Failed(format!(
                "Failed to remove the {} fault from Virtual Service '{}': {}",
                kind.key(),
                n.r.name,
                api_error(e).message()
            )))
        }
    }
}

fn restore_phrase(r: &VsRef) -> String {
    format!(
        "restore the spec VirtualService {} had before this run",
        r.shown()
    )
}

/// A seeded pick of one name, with the pod selection's seeded random pick
/// (so `seed` replays exactly as it does for `terminate_pods`).
fn pick_one(names: &[String], ns: &str, seed: Option<i64>) -> (String, u64) {
    let sel = select::Selection {
        label_selector: None,
        name_pattern: None,
        all: false,
        rand: true,
        percentage: false,
        qty: 1,
        ns: ns.to_owned(),
        oldest: false,
    };
    let as_pods: Vec<Pod> = names
        .iter()
        .map(|n| {
            let mut p = Pod::default();
            p.metadata.name = Some(n.clone());
            p
        })
        .collect();
    let pick = sel.pick(&as_pods, seed);
    let name = pick.names.into_iter().next().unwrap_or_default();
    (name, pick.seed.unwrap_or_default())
}

async fn add_random(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
    kind: FaultKind,
) -> ActivityResult {
    let spec = fault_spec(&args, kind)?;
    let seed = opt_int(&args, "seed")?;
    let kube = kube(&ctx)?;
    let (api, ns, version) = vs_api(&kube, &args)?;
    let all = api.list(&ListParams::default()).await.map_err(api_error)?;
    let all: Vec<Value> = all.items.iter().map(|o| json!(o)).collect();
    // Only VirtualServices that route http traffic can take an http fault.
    let candidates: Vec<&Value> = all
        .iter()
        .filter(|o| {
            !fault::routing(
                o.pointer("/spec/http")
                    .and_then(Value::as_array)
                    .map_or(&[], Vec::as_slice),
            )
            .is_empty()
        })
        .collect();
    let names: Vec<String> = candidates.iter().map(|o| name_of(o)).collect();
    if names.is_empty() {
        return Err(ActivityError::Failed(format!(
            "no VirtualService in namespace '{ns}' has http routes; nothing was changed"
        )));
    }
    let func = format!("add_{}_fault_random", kind.key());
    let (name, seed) = pick_one(&names, &ns, seed);
    ctx.log.info(&format!(
        "{func}: random pick of VirtualService {ns}/{name} out of {} with seed {seed}",
        names.len()
    ));
    check_limits(&ctx, &func, all.len())?;
    let obj = candidates[names.iter().position(|n| *n == name).unwrap_or(0)];
    let http = http_of(obj, &name)?;
    let r = VsRef { ns, name, version };
    let indices = fault::routing(&http);
    let change = Change {
        r: &r,
        kind,
        spec,
        indices: &indices,
    };
    let mut out = if ctx.dry {
        ctx.plan(&[r.target()], &[change.phrase()])?
    } else {
        output(inject(&ctx, &kube, &api, obj, &http, &change).await?)
    };
    out["virtual_service"] = json!(r.name);
    out["seed"] = json!(seed);
    Ok(out)
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

async fn restore_all(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> ActivityResult {
    let kube = kube(&ctx)?;
    let (api, ns, version) = vs_api(&kube, &args)?;
    let mut restored = Vec::new();
    let mut changes = Vec::new();
    let mut failures = Vec::new();
    for name in vs::names(&api).await? {
        let r = VsRef {
            ns: ns.clone(),
            name,
            version: version.clone(),
        };
        let pending = vs::pending_of_run(&ctx, &r)?;
        let Some(first) = pending.first() else {
            continue;
        };
        changes.push(restore_phrase(&r));
        if !ctx.dry {
            // A rollback keeps going: one VirtualService that cannot be
            // restored must not leave the others faulted.
            if let Err(e) = vs::restore(&kube, &first.undo.data).await {
                failures.push(format!("{}: {e}", r.shown()));
                continue;
            }
            for p in &pending {
                ctx.mark_done(&p.id)?;
            }
        }
        restored.push(r.name);
    }
    if !failures.is_empty() {
        return Err(ActivityError::Failed(format!(
            "could not restore {} (restored: {}); their undos stay pending for `squall recover`",
            failures.join("; "),
            if restored.is_empty() {
                "none".to_owned()
            } else {
                restored.join(", ")
            }
        )));
    }
    if ctx.dry {
        let targets: Vec<String> = restored
            .iter()
            .map(|n| format!("virtualservice/{ns}/{n}"))
            .collect();
        return ctx.plan(&targets, &changes);
    }
    Ok(json!(restored))
}

#[cfg(test)]
mod tests;
