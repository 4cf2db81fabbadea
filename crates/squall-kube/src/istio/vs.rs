//! VirtualServices through kube's dynamic API at the version the experiment
//! asks for (`networking.istio.io/v1alpha3` by default), and the undo that
//! puts a VirtualService's whole original `spec` back.
//!
//! The undo is recorded once per VirtualService per run, before the first
//! change, so it always holds the spec as it was before the experiment; a
//! later fault in the same run adds nothing to the ledger. Restoring is a
//! JSON patch that sets `/spec` (so keys the experiment added disappear and
//! metadata, labels and status stay), skipped when the spec is already the
//! recorded one, and a VirtualService deleted meanwhile needs nothing.

use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use squall_activity::{ActivityCtx, ActivityError, Applied, BoxFuture, Undo, UndoSpec};
use squall_core::subst::py_repr;

use crate::api_error;
use crate::connect::{Kube, Origin};

/// The `kind` of the restore undo in the ledger.
pub const UNDO_KIND: &str = "chaosistio.virtualservice.restore";
const FIELD_MANAGER: &str = "squall";

pub const UNDO_RESTORE: UndoSpec = UndoSpec {
    kind: UNDO_KIND,
    doc: "Put back the whole spec a VirtualService had before squall's first fault in the run \
          (nothing to do if it already has it or is gone).",
    apply: apply_restore,
    permissions: crate::permissions::VIRTUAL_SERVICES,
};

/// Which VirtualService: namespace, name and the API version to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsRef {
    pub ns: String,
    pub name: String,
    /// `group/version`, as the experiment gives it.
    pub version: String,
}

impl VsRef {
    /// The ledger target (`virtualservice/<ns>/<name>`).
    pub fn target(&self) -> String {
        format!("virtualservice/{}/{}", self.ns, self.name)
    }

    /// `ns/name`, for messages.
    pub fn shown(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }
}

/// The dynamic API for VirtualServices in `ns` at `version`.
pub fn api(
    client: kube::Client,
    ns: &str,
    version: &str,
) -> Result<Api<DynamicObject>, ActivityError> {
    let Some((group, ver)) = version
        .split_once('/')
        .filter(|(g, v)| !g.is_empty() && !v.is_empty())
    else {
        return Err(ActivityError::Failed(format!(
            "version must be group/version such as networking.istio.io/v1alpha3, not '{version}'"
        )));
    };
    let resource = ApiResource {
        group: group.into(),
        version: ver.into(),
        api_version: version.into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    };
    Ok(Api::namespaced_with(client, ns, &resource))
}

fn to_json(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// The VirtualService as JSON; any API error is upstream's
/// `Virtual Service '<name>' does not exist: <body>`.
pub async fn get(api: &Api<DynamicObject>, name: &str) -> Result<Value, ActivityError> {
    match api.get(name).await {
        Ok(obj) => Ok(to_json(&obj)),
        Err(kube::Error::Api(status)) => {
            // The body as the API server sends it, printed as Python would.
            let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}});
            if let (Some(b), Ok(Value::Object(s))) =
                (body.as_object_mut(), serde_json::to_value(&*status))
            {
                b.extend(s);
            }
            Err(ActivityError::Failed(format!(
                "Virtual Service '{name}' does not exist: {}",
                py_repr(&body)
            )))
        }
        Err(e) => Err(api_error(e)),
    }
}

/// The names of the VirtualServices in the API's namespace.
pub async fn names(api: &Api<DynamicObject>) -> Result<Vec<String>, ActivityError> {
    let list = api.list(&ListParams::default()).await.map_err(api_error)?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect())
}

/// Replaces `spec.http`, but only if the object is still at the
/// resourceVersion it was read at, so a concurrent change is never
/// overwritten with a stale copy (upstream's merge patch was last writer
/// wins). Returns the updated object.
pub async fn write_http(
    api: &Api<DynamicObject>,
    vs: &Value,
    http: Vec<Value>,
) -> Result<Value, kube::Error> {
    let name = vs
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let rv = vs
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    let ops = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/http", "value": http},
    ]);
    json_patch(api, name, ops).await
}

async fn json_patch(
    api: &Api<DynamicObject>,
    name: &str,
    ops: Value,
) -> Result<Value, kube::Error> {
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let obj = api.patch(name, &params, &Patch::<()>::Json(patch)).await?;
    Ok(to_json(&obj))
}

/// Why a restore undo was recorded: before injecting a fault, or before
/// removing a fault this run did not inject (one that predates it).
#[derive(Clone, Copy)]
pub enum By {
    Inject,
    Remove,
}

/// Whether a pending undo was recorded before an injection: only those
/// are settled by `remove_*_fault` restoring the spec they hold (restoring
/// one recorded before a removal would put the removed fault back).
pub fn recorded_by_inject(p: &squall_activity::Pending) -> bool {
    p.undo.data.get("by").and_then(Value::as_str) != Some("remove")
}

/// Records the restore undo for `vs` unless this run already recorded one
/// for it (that one holds the spec from before the experiment). Returns the
/// new undo's id, to be marked done if the change then fails.
pub fn record_once(
    ctx: &ActivityCtx,
    kube: &Kube,
    r: &VsRef,
    vs: &Value,
    by: By,
) -> Result<Option<String>, ActivityError> {
    if !pending_of_run(ctx, r)?.is_empty() {
        return Ok(None);
    }
    let undo = Undo {
        kind: UNDO_KIND.into(),
        data: json!({
            "namespace": r.ns,
            "name": r.name,
            "version": r.version,
            "spec": vs.get("spec").cloned().unwrap_or(Value::Null),
            "connection": kube.origin(),
            "by": match by {
                By::Inject => "inject",
                By::Remove => "remove",
            },
        }),
        description: format!("restore the spec of VirtualService {}", r.shown()),
    };
    ctx.record_undo(&r.target(), undo).map(Some)
}

/// This run's pending restore undos for `r`, oldest first.
pub fn pending_of_run(
    ctx: &ActivityCtx,
    r: &VsRef,
) -> Result<Vec<squall_activity::Pending>, ActivityError> {
    Ok(ctx
        .pending_for(&r.target())?
        .into_iter()
        .filter(|p| p.run_id == ctx.run_id && p.undo.kind == UNDO_KIND)
        .collect())
}

/// Puts the recorded spec back (idempotent). `Ok(None)`: the VirtualService
/// is gone; otherwise the object as it now is.
pub async fn restore(kube: &Kube, data: &Value) -> Result<Option<Value>, String> {
    let field = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .ok_or(format!("undo data has no {k}"))
    };
    let (ns, name, version) = (field("namespace")?, field("name")?, field("version")?);
    let spec = data.get("spec").cloned().unwrap_or(Value::Null);
    let api = api(kube.client(), ns, version).map_err(|e| e.message().to_owned())?;
    let current = match api.get_opt(name).await {
        Ok(Some(obj)) => to_json(&obj),
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("cannot read VirtualService {ns}/{name}: {e}")),
    };
    if current.get("spec") == Some(&spec) {
        return Ok(Some(current));
    }
    json_patch(
        &api,
        name,
        json!([{"op": "add", "path": "/spec", "value": spec}]),
    )
    .await
    .map(Some)
    .map_err(|e| format!("cannot restore the spec of VirtualService {ns}/{name}: {e}"))
}

/// The undo: reconnect to the recorded cluster and restore the spec.
fn apply_restore(data: Value) -> BoxFuture<Result<Applied, String>> {
    Box::pin(async move {
        let origin: Origin =
            serde_json::from_value(data.get("connection").cloned().unwrap_or_default())
                .map_err(|e| format!("undo data has no usable connection: {e}"))?;
        let kube = Kube::reconnect(&origin).await.map_err(|e| {
            format!("{e}; re-apply the VirtualService's original definition by hand")
        })?;
        restore(&kube, &data).await.map(|_| Applied::Restored)
    })
}
