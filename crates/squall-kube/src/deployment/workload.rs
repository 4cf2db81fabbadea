//! What the deployment and statefulset functions share: scaling with an
//! undo that puts the replica count back, deleting by name / label selector /
//! whole namespace under the blast-radius limits, and waiting (on a watch)
//! until the ready replicas reach or leave the desired count. Each function is
//! generic over [`Workload`], so `chaosk8s.deployment` and
//! `chaosk8s.statefulset` differ only in their descriptors and messages.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use squall_activity::{ActivityCtx, ActivityError, ActivityResult, BoxFuture, Undo};

use crate::args::{bool_or, int_or, opt_str, str_or};
use crate::connect::{Kube, Origin, kube};
use crate::{api_error, limits};

const FIELD_MANAGER: &str = "squall";

/// A namespaced object with a desired and a ready replica count.
pub(crate) trait Workload:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// How messages, plans and ledger targets name it (`deployment`).
    const NOUN: &'static str;
    /// How upstream's readiness-wait failure names it (chaosk8s says
    /// `microservice` for StatefulSets).
    const WAIT_NOUN: &'static str;
    /// `spec.replicas`.
    fn desired(&self) -> Option<i32>;
    /// `status.readyReplicas` (absent, not 0, when none is ready).
    fn ready(&self) -> Option<i32>;
}

impl Workload for Deployment {
    const NOUN: &'static str = "deployment";
    const WAIT_NOUN: &'static str = "deployment";
    fn desired(&self) -> Option<i32> {
        self.spec.as_ref().and_then(|s| s.replicas)
    }
    fn ready(&self) -> Option<i32> {
        self.status.as_ref().and_then(|s| s.ready_replicas)
    }
}

impl Workload for StatefulSet {
    const NOUN: &'static str = "statefulset";
    const WAIT_NOUN: &'static str = "microservice";
    fn desired(&self) -> Option<i32> {
        self.spec.as_ref().and_then(|s| s.replicas)
    }
    fn ready(&self) -> Option<i32> {
        self.status.as_ref().and_then(|s| s.ready_replicas)
    }
}

/// The ledger target of one object: `deployment/<ns>/<name>`.
pub(crate) fn target<K: Workload>(ns: &str, name: &str) -> String {
    format!("{}/{ns}/{name}", K::NOUN)
}

/// What scaling does with the ledger, decided before the patch.
enum Ledger {
    /// A new undo (back to the count before this scale) was recorded.
    Recorded(String),
    /// This scale restores the count an earlier, pending undo would restore:
    /// those undos are done once the patch succeeds.
    Restores(Vec<String>),
    /// Nothing to record: an earlier pending undo already holds the
    /// original count, or the count does not change.
    Nothing,
}

/// One scale request.
pub(crate) struct Scale<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub replicas: i64,
    /// The `kind` of the registered undo function.
    pub undo_kind: &'static str,
}

/// Scales `K` `name` to `replicas`, recording first an undo that scales it
/// back to the count it had, with upstream's failure message. Returns `null`
/// (upstream returns `None`), or the plan in dry mode.
pub(crate) async fn scale<K: Workload>(ctx: &ActivityCtx, s: &Scale<'_>) -> ActivityResult {
    let (name, replicas) = (s.name, s.replicas);
    let failed = |e: kube::Error| {
        ActivityError::Failed(format!(
            "failed to scale '{name}' to {replicas} replicas: {}",
            api_error(e).message()
        ))
    };
    let kube = kube(ctx)?;
    let api: Api<K> = Api::namespaced(kube.client(), s.ns);
    let from = api.get(name).await.map_err(failed)?.desired().unwrap_or(1);
    if ctx.dry {
        let change = format!(
            "scale {} {}/{name} from {from} to {replicas} replicas",
            K::NOUN,
            s.ns
        );
        return ctx.plan(&[target::<K>(s.ns, name)], &[change]);
    }
    let ledger = prepare_undo::<K>(ctx, &kube, s, from)?;
    match patch_replicas(&api, name, replicas).await {
        Ok(()) => {
            if let Ledger::Restores(ids) = ledger {
                for id in ids {
                    ctx.mark_done(&id)?;
                }
            }
            Ok(Value::Null)
        }
        Err(e) => {
            // Refused: nothing changed, so the undo must not "restore" later.
            if let Ledger::Recorded(id) = ledger {
                crate::settle_failed_write(ctx, &id, &e)?;
            }
            Err(failed(e))
        }
    }
}

/// Decides (and records, before any change) the undo of a scale.
fn prepare_undo<K: Workload>(
    ctx: &ActivityCtx,
    kube: &Kube,
    s: &Scale<'_>,
    from: i32,
) -> Result<Ledger, ActivityError> {
    let key = target::<K>(s.ns, s.name);
    let pending: Vec<_> = crate::pending_here(ctx, kube, &key)?
        .into_iter()
        .filter(|p| p.undo.kind == s.undo_kind)
        .collect();
    if let Some(first) = pending.first() {
        // The oldest pending undo holds the count before the experiment
        // touched this object; later scales need no undo of their own, and a
        // scale back to that count (a rollback) settles them all.
        if first.undo.data["replicas"] == json!(s.replicas) {
            return Ok(Ledger::Restores(
                pending.into_iter().map(|p| p.id).collect(),
            ));
        }
        return Ok(Ledger::Nothing);
    }
    if i64::from(from) == s.replicas {
        return Ok(Ledger::Nothing);
    }
    let undo = Undo {
        kind: s.undo_kind.into(),
        data: json!({
            "ns": s.ns,
            "name": s.name,
            "replicas": from,
            "connection": kube.origin(),
        }),
        description: format!(
            "scale {} {}/{} back to {from} replicas",
            K::NOUN,
            s.ns,
            s.name
        ),
    };
    ctx.record_undo(&key, undo).map(Ledger::Recorded)
}

async fn patch_replicas<K: Workload>(api: &Api<K>, name: &str, replicas: i64) -> kube::Result<()> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The undo of a scale: reconnect to the recorded cluster and put the
/// recorded replica count back.
pub(crate) async fn undo_scale<K: Workload>(data: Value) -> Result<(), String> {
    let text = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .map(ToOwned::to_owned)
            .ok_or_else(|| format!("undo data has no {key}"))
    };
    let (ns, name) = (text("ns")?, text("name")?);
    let replicas = data
        .get("replicas")
        .and_then(Value::as_i64)
        .ok_or("undo data has no replicas")?;
    let origin: Origin =
        serde_json::from_value(data.get("connection").cloned().unwrap_or_default())
            .map_err(|e| format!("undo data has no usable connection: {e}"))?;
    let kube = Kube::reconnect(&origin).await.map_err(|e| {
        format!(
            "{e}; run `kubectl --namespace {ns} scale {} {name} --replicas={replicas}` by hand",
            K::NOUN
        )
    })?;
    restore_replicas::<K>(&kube, &ns, &name, replicas).await
}

/// Scales `name` to `replicas` unless it is already there or gone
/// (idempotent: applying it twice changes nothing the second time).
pub(crate) async fn restore_replicas<K: Workload>(
    kube: &Kube,
    ns: &str,
    name: &str,
    replicas: i64,
) -> Result<(), String> {
    let api: Api<K> = Api::namespaced(kube.client(), ns);
    let current = match api.get_opt(name).await {
        Ok(Some(obj)) => obj,
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("cannot read {} {ns}/{name}: {e}", K::NOUN)),
    };
    if current.desired().map(i64::from) == Some(replicas) {
        return Ok(());
    }
    patch_replicas(&api, name, replicas)
        .await
        .map_err(|e| format!("failed to scale '{name}' to {replicas} replicas: {e}"))
}

/// What a delete did: planned (dry mode: the plan to return) or deleted
/// these objects.
pub(crate) enum Deleted {
    Planned(Value),
    Done(Vec<String>),
}

/// Which objects a delete takes: by name (field selector), else by label
/// selector, else every one in the namespace, as upstream.
pub(crate) struct Selection<'a> {
    pub ns: &'a str,
    pub name: Option<&'a str>,
    pub label_selector: Option<&'a str>,
    /// The activity, for the blast-radius message (`delete_deployment`).
    pub activity: &'a str,
}

/// Deletes the selected objects with the API's default grace and
/// propagation (what upstream's empty `V1DeleteOptions` asks for) and
/// returns their names. The pick is checked against the limits first; in
/// dry mode it is only planned.
pub(crate) async fn delete_selected<K: Workload>(
    ctx: &ActivityCtx,
    sel: &Selection<'_>,
) -> Result<Deleted, ActivityError> {
    let api: Api<K> = Api::namespaced(kube(ctx)?.client(), sel.ns);
    let params = match (sel.name, sel.label_selector) {
        (Some(n), _) => ListParams::default().fields(&format!("metadata.name={n}")),
        (None, Some(l)) => ListParams::default().labels(l),
        (None, None) => ListParams::default(),
    };
    let picked: Vec<String> = api
        .list(&params)
        .await
        .map_err(api_error)?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(api_error)?
        .items
        .len();
    let (noun, pool) = (
        format!("{}s", K::NOUN),
        format!("{}s in the namespace", K::NOUN),
    );
    let targets = limits::Targets {
        activity: sel.activity,
        noun: &noun,
        pool: &pool,
        untouched: "nothing was deleted",
        picked: picked.len(),
        out_of: all,
    };
    limits::check(&ctx.limits, &targets)?;
    if ctx.dry {
        let changes: Vec<String> = picked
            .iter()
            .map(|n| format!("delete {} {}/{n}", K::NOUN, sel.ns))
            .collect();
        let keys: Vec<String> = picked.iter().map(|n| target::<K>(sel.ns, n)).collect();
        return ctx.plan(&keys, &changes).map(Deleted::Planned);
    }
    for name in &picked {
        ctx.log
            .debug(&format!("deleting {} {}/{name}", K::NOUN, sel.ns));
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(api_error)?;
    }
    Ok(Deleted::Done(picked))
}

/// Arguments of the readiness waits.
pub(crate) struct Wait<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    /// Narrows the watch; `{name}` in it is replaced by the name.
    pub label_selector: Option<&'a str>,
    pub timeout: u64,
    /// `true`: wait until ready == desired; `false`: until they differ.
    pub fully: bool,
}

/// Whether, within the timeout, the object reaches the wanted state:
/// `status.readyReplicas == spec.replicas` compared as upstream does (no
/// ready replica is "absent", which never equals a count, so an object
/// scaled to 0 is not fully available). An object that is already in the
/// state returns at once, as upstream's first ADDED event does.
pub(crate) async fn wait_readiness<K: Workload>(
    ctx: &ActivityCtx,
    w: &Wait<'_>,
) -> Result<bool, ActivityError> {
    let api: Api<K> = Api::namespaced(kube(ctx)?.client(), w.ns);
    let deadline = Duration::from_secs(w.timeout);
    if let Some(labels) = w.label_selector {
        // The watch upstream opens carries both selectors; an object the
        // label selector excludes sends no event, so the wait runs out.
        let params = ListParams::default()
            .fields(&format!("metadata.name={}", w.name))
            .labels(&labels.replace("{name}", w.name));
        if api.list(&params).await.map_err(api_error)?.items.is_empty() {
            tokio::time::sleep(deadline).await;
            return Ok(false);
        }
    }
    let fully = w.fully;
    let cond = move |obj: Option<&K>| obj.is_some_and(|o| (o.ready() == o.desired()) == fully);
    match tokio::time::timeout(deadline, await_condition(api, w.name, cond)).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(ActivityError::Failed(format!(
            "Kubernetes API request failed: {e}"
        ))),
        Err(_) => Ok(false),
    }
}

/// For unit tests: the arguments with every omitted one set to its
/// declared default, as the engine's registry fills them in before a call.
#[cfg(test)]
pub(crate) fn defaulted(
    r: &squall_activity::Registered,
    a: Value,
) -> serde_json::Map<String, Value> {
    let mut args = a.as_object().cloned().unwrap_or_default();
    for arg in r.spec.args {
        if let (false, Some(d)) = (args.contains_key(arg.name), arg.default_value()) {
            args.insert(arg.name.to_owned(), d);
        }
    }
    args
}

/// The readiness waits (`*_fully_available`, `*_not_fully_available` and
/// their deprecated aliases): `true` once `name` is (or is no longer) fully
/// available within `timeout`, else upstream's failure or `false`.
pub(crate) async fn wait<K: Workload>(
    ctx: &ActivityCtx,
    args: &Map<String, Value>,
    fully: bool,
    raise: bool,
) -> ActivityResult {
    let name = crate::args::required_str(args, "name")?;
    let ns = str_or(args, "ns", "default")?;
    let labels = opt_str(args, "label_selector")?;
    let timeout = int_or(args, "timeout", 30)?;
    let w = Wait {
        ns: &ns,
        name: &name,
        label_selector: labels.as_deref(),
        timeout: timeout.max(0).unsigned_abs(),
        fully,
    };
    if wait_readiness::<K>(ctx, &w).await? {
        return Ok(Value::Bool(true));
    }
    let what = if fully { "recover" } else { "stop running" };
    crate::pod::verdict(
        raise,
        format!(
            "{} '{name}' failed to {what} within {timeout}s",
            K::WAIT_NOUN
        ),
    )
}

/// `<kind>_fully_available`, for the registry.
pub(crate) fn fully_available<K: Workload>(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let raise = bool_or(&args, "raise_on_not_fully_available", true)?;
        wait::<K>(&ctx, &args, true, raise).await
    })
}

/// `<kind>_not_fully_available`, for the registry.
pub(crate) fn not_fully_available<K: Workload>(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let raise = bool_or(&args, "raise_on_fully_available", true)?;
        wait::<K>(&ctx, &args, false, raise).await
    })
}
