//! `chaosk8s.service.probes.service_is_initialized` and
//! `chaosk8s.service.actions.delete_service`, with upstream's arguments and
//! messages (`reference/ctk-plugins.md` §2.8). As upstream, "initialized"
//! means the Service object exists; its endpoints are not looked at.
//! Deleting a Service records no undo (squall does not recreate it: its
//! cluster IP may be taken by then); dry mode plans the deletion.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Map, Value};
use squall_activity::{ActivityCtx, ActivityResult, BoxFuture, Registered};
use squall_core::catalog::{ArgSpec, ArgType, Kind};

use crate::api_error;
use crate::args::required_str;
use crate::args::{bool_or, opt_str, str_or};
use crate::connect::kube;
use crate::deployment::NS;
use crate::spec;
use squall_activity::describe::arg;

use crate::pod::verdict;

pub const SERVICE_IS_INITIALIZED: Registered = Registered {
    spec: spec(
        "chaosk8s.service.probes",
        "service_is_initialized",
        Kind::Probe,
        "True if a Service matches the name and/or label selector (every Service of the namespace when neither \
         is given); fails with `service '<name>' is not initialized` when none does. Endpoints are not checked.",
        &[
            arg("name", ArgType::String, Some("null"), "The Service's name."),
            NS,
            arg(
                "label_selector",
                ArgType::String,
                Some("null"),
                "Label selector of the Service.",
            ),
            arg(
                "raise_if_service_not_initialized",
                ArgType::Boolean,
                Some("true"),
                "Fail (rather than return false) when no Service matches.",
            ),
        ],
    ),
    run: service_is_initialized,
    permissions: crate::permissions::LIST_SERVICES,
};

pub(crate) const DELETE_ARGS: &[ArgSpec] = &[
    arg("name", ArgType::String, None, "The Service's name."),
    NS,
];

pub const DELETE_SERVICE: Registered = Registered {
    spec: spec(
        "chaosk8s.service.actions",
        "delete_service",
        Kind::Action,
        "Delete a Service, so its clients can no longer reach the pods behind it. Cannot be undone by squall (no \
         undo is recorded): recreate it from its manifest in a rollback. Dry mode plans the deletion.",
        DELETE_ARGS,
    ),
    run: delete_service,
    permissions: crate::permissions::DELETE_SERVICE,
};

/// `service_is_initialized` (also behind
/// `chaosk8s.probes.service_endpoint_is_initialized`).
pub(crate) async fn initialized(
    ctx: &ActivityCtx,
    name: Option<&str>,
    ns: &str,
    labels: Option<&str>,
    raise: bool,
) -> ActivityResult {
    let api: Api<Service> = Api::namespaced(kube(ctx)?.client(), ns);
    let mut params = ListParams::default();
    if let Some(n) = name {
        params = params.fields(&format!("metadata.name={n}"));
    }
    if let Some(l) = labels {
        params = params.labels(l);
    }
    let found = api.list(&params).await.map_err(api_error)?.items;
    ctx.log
        .debug(&format!("Found {} service(s) in ns '{ns}'", found.len()));
    if found.is_empty() {
        let shown = name.unwrap_or("None");
        return verdict(raise, format!("service '{shown}' is not initialized"));
    }
    Ok(Value::Bool(true))
}

fn service_is_initialized(
    ctx: Arc<ActivityCtx>,
    args: Map<String, Value>,
) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        let name = opt_str(&args, "name")?;
        let labels = opt_str(&args, "label_selector")?;
        let ns = str_or(&args, "ns", "default")?;
        let raise = bool_or(&args, "raise_if_service_not_initialized", true)?;
        initialized(&ctx, name.as_deref(), &ns, labels.as_deref(), raise).await
    })
}

/// `delete_service` (also behind `chaosk8s.actions.remove_service_endpoint`).
pub(crate) async fn delete(ctx: &ActivityCtx, args: &Map<String, Value>) -> ActivityResult {
    let name = required_str(args, "name")?;
    let ns = str_or(args, "ns", "default")?;
    let api: Api<Service> = Api::namespaced(kube(ctx)?.client(), &ns);
    if ctx.dry {
        // Read-only: a missing Service fails here as the real delete would.
        api.get(&name).await.map_err(api_error)?;
        let target = format!("service/{ns}/{name}");
        return ctx.plan(&[target], &[format!("delete service {ns}/{name}")]);
    }
    api.delete(&name, &DeleteParams::default())
        .await
        .map_err(api_error)?;
    Ok(Value::Null)
}

fn delete_service(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move { delete(&ctx, &args).await })
}

#[cfg(test)]
mod tests;
