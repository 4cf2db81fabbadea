//! The deprecated top-level modules `chaosk8s.probes` and `chaosk8s.actions`
//! (the "microservice" functions the book and many old experiments use),
//! as thin aliases of the pod, deployment and service functions, each
//! logging upstream's deprecation warning first (`reference/ctk-plugins.md`
//! §2.5). Where upstream's alias is broken squall does what it plainly
//! meant, and docs/kubernetes.md lists each difference:
//! `microservice_available_and_healthy` returns `true` (upstream forgot the
//! `return` and gives `None`, which fails a `true` tolerance), and the
//! `{name}` placeholder of a default selector is always filled in.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use squall_activity::{ActivityCtx, ActivityError, ActivityResult, BoxFuture, Registered};
use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};

use crate::args::required_str;
use crate::args::{opt_str, str_or};
use crate::connect::kube;
use crate::deployment::{NS, REPLICAS, TIMEOUT};
use crate::spec;
use squall_activity::describe::arg;

use crate::{api_error, deployment, limits, pod, service};

const PROBES: &str = "chaosk8s.probes";
const ACTIONS: &str = "chaosk8s.actions";

const NAME: ArgSpec = arg(
    "name",
    ArgType::String,
    None,
    "The microservice's (deployment's) name.",
);
const NAME_LABELS: ArgSpec = arg(
    "label_selector",
    ArgType::String,
    Some("\"name in ({name})\""),
    "Label selector; `{name}` is replaced by the name.",
);
const LABELS: ArgSpec = arg(
    "label_selector",
    ArgType::String,
    Some("null"),
    "Label selector the deployment must also match.",
);

/// Upstream's `_log_deprecated` warning, spaces and all (a line
/// continuation inside its f-string).
fn deprecated(ctx: &ActivityCtx, name: &str, alt: &str) {
    ctx.log.warning(&format!(
        "{name} function is DEPRECATED and will be removed in the next         releases, please use {alt} instead"
    ));
}

const fn probe(func: &'static str, doc: &'static str, args: &'static [ArgSpec]) -> ActivitySpec {
    spec(PROBES, func, Kind::Probe, doc, args)
}

pub const ALL_MICROSERVICES_HEALTHY: Registered = Registered {
    spec: probe(
        "all_microservices_healthy",
        "Deprecated alias of chaosk8s.pod.probes.all_pods_healthy: true if no pod of the namespace is Failed, \
         Pending or Unknown, else fails with `the system is unhealthy`.",
        &[NS],
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(&ctx, "all_microservices_healthy", "all_pods_healthy");
            let ns = str_or(&args, "ns", "default")?;
            pod::all_healthy(&ctx, &ns, true).await
        })
    },
    permissions: crate::permissions::LIST_PODS,
};

pub const MICROSERVICE_AVAILABLE_AND_HEALTHY: Registered = Registered {
    spec: probe(
        "microservice_available_and_healthy",
        "Deprecated alias of chaosk8s.deployment.probes.deployment_available_and_healthy. Returns true (upstream \
         returns null by mistake, which fails a `true` tolerance).",
        &[NAME, NS, LABELS],
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(
                &ctx,
                "microservice_available_and_healthy",
                "deployment_available_and_healthy",
            );
            deployment::available_and_healthy(&ctx, &args, true).await
        })
    },
    permissions: crate::permissions::READ_DEPLOYMENTS,
};

pub const MICROSERVICE_IS_NOT_AVAILABLE: Registered = Registered {
    spec: probe(
        "microservice_is_not_available",
        "Deprecated alias of chaosk8s.pod.probes.pod_is_not_available: true unless a matching pod is Running.",
        &[NAME, NS, NAME_LABELS],
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(
                &ctx,
                "microservice_is_not_available",
                "pod_is_not_available",
            );
            pod::not_available(&ctx, &args, true).await
        })
    },
    permissions: crate::permissions::LIST_PODS,
};

pub const SERVICE_ENDPOINT_IS_INITIALIZED: Registered = Registered {
    spec: probe(
        "service_endpoint_is_initialized",
        "Deprecated alias of chaosk8s.service.probes.service_is_initialized with the name and the (filled-in) \
         label selector.",
        &[
            arg("name", ArgType::String, None, "The Service's name."),
            NS,
            NAME_LABELS,
        ],
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(
                &ctx,
                "service_endpoint_is_initialized",
                "service_is_initialized",
            );
            let name = required_str(&args, "name")?;
            let ns = str_or(&args, "ns", "default")?;
            let labels = opt_str(&args, "label_selector")?.map(|l| l.replace("{name}", &name));
            service::initialized(&ctx, Some(&name), &ns, labels.as_deref(), true).await
        })
    },
    permissions: crate::permissions::LIST_SERVICES,
};

const WAIT_ARGS: &[ArgSpec] = &[NAME, NS, LABELS, TIMEOUT];

pub const DEPLOYMENT_IS_FULLY_AVAILABLE: Registered = Registered {
    spec: probe(
        "deployment_is_fully_available",
        "Deprecated alias of chaosk8s.deployment.probes.deployment_fully_available (always fails on timeout).",
        WAIT_ARGS,
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(
                &ctx,
                "deployment_is_fully_available",
                "deployment_fully_available",
            );
            deployment::workload::wait::<Deployment>(&ctx, &args, true, true).await
        })
    },
    permissions: crate::permissions::WAIT_DEPLOYMENTS,
};

pub const DEPLOYMENT_IS_NOT_FULLY_AVAILABLE: Registered = Registered {
    spec: probe(
        "deployment_is_not_fully_available",
        "Deprecated alias of chaosk8s.deployment.probes.deployment_not_fully_available (always fails on timeout).",
        WAIT_ARGS,
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(
                &ctx,
                "deployment_is_not_fully_available",
                "deployment_not_fully_available",
            );
            deployment::workload::wait::<Deployment>(&ctx, &args, false, true).await
        })
    },
    permissions: crate::permissions::WAIT_DEPLOYMENTS,
};

pub const READ_MICROSERVICES_LOGS: Registered = Registered {
    // Upstream binds the same function object, so no warning either.
    spec: ActivitySpec {
        module: PROBES,
        ..pod::read_logs_spec("read_microservices_logs")
    },
    run: |ctx, args| Box::pin(async move { pod::read_logs(&ctx, &args).await }),
    permissions: crate::permissions::READ_LOGS,
};

pub const KILL_MICROSERVICE: Registered = Registered {
    spec: spec(
        ACTIONS,
        "kill_microservice",
        Kind::Action,
        "Deprecated: delete the deployment `name`, then the replica sets and pods matching the label selector. \
         Cannot be undone (no undo is recorded); refuses before deleting anything when the matching pods exceed \
         squall.limits. Dry mode plans the deletions.",
        &[NAME, NS, NAME_LABELS],
    ),
    run: kill_microservice,
    permissions: crate::permissions::KILL_MICROSERVICE,
};

pub const SCALE_MICROSERVICE: Registered = Registered {
    spec: spec(
        ACTIONS,
        "scale_microservice",
        Kind::Action,
        "Deprecated alias of chaosk8s.deployment.actions.scale_deployment (with its undo and dry mode).",
        &[NAME, REPLICAS, NS],
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(&ctx, "scale_microservice", "scale_deployment");
            deployment::scale(&ctx, &args).await
        })
    },
    permissions: crate::permissions::PATCH_DEPLOYMENTS,
};

pub const REMOVE_SERVICE_ENDPOINT: Registered = Registered {
    spec: spec(
        ACTIONS,
        "remove_service_endpoint",
        Kind::Action,
        "Deprecated alias of chaosk8s.service.actions.delete_service (no undo; dry mode plans the deletion).",
        service::DELETE_ARGS,
    ),
    run: |ctx, args| {
        Box::pin(async move {
            deprecated(&ctx, "remove_service_endpoint", "delete_service");
            service::delete(&ctx, &args).await
        })
    },
    permissions: crate::permissions::DELETE_SERVICE,
};

/// The names of the `K` objects `params` selects in `ns`.
async fn names<K>(api: &Api<K>, params: &ListParams) -> Result<Vec<String>, ActivityError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(params).await.map_err(api_error)?;
    Ok(list.iter().map(ResourceExt::name_any).collect())
}

/// Deletes each name; one already gone (its owner's deletion cascaded) is
/// not an error.
async fn delete_all<K>(api: &Api<K>, names: &[String]) -> Result<(), ActivityError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    for n in names {
        match api.delete(n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(api_error(e)),
        }
    }
    Ok(())
}

fn kill_microservice(ctx: Arc<ActivityCtx>, args: Map<String, Value>) -> BoxFuture<ActivityResult> {
    Box::pin(async move {
        deprecated(&ctx, "kill_microservice", "delete_deployment");
        let name = required_str(&args, "name")?;
        let ns = str_or(&args, "ns", "default")?;
        let labels = opt_str(&args, "label_selector")?.map(|l| l.replace("{name}", &name));
        let client = kube(&ctx)?.client();
        let (deps, rss, pods): (Api<Deployment>, Api<ReplicaSet>, Api<Pod>) = (
            Api::namespaced(client.clone(), &ns),
            Api::namespaced(client.clone(), &ns),
            Api::namespaced(client, &ns),
        );
        let d = names(
            &deps,
            &ListParams::default().fields(&format!("metadata.name={name}")),
        )
        .await?;
        // Without a selector only the deployment goes (upstream would list,
        // and delete, every replica set and pod of the namespace).
        let (r, p) = match &labels {
            Some(l) => {
                let by = ListParams::default().labels(l);
                (names(&rss, &by).await?, names(&pods, &by).await?)
            }
            None => (Vec::new(), Vec::new()),
        };
        let all = names(&pods, &ListParams::default()).await?.len();
        let targets = limits::Targets {
            activity: "kill_microservice",
            noun: "pods",
            pool: "pods in the namespace",
            untouched: "nothing was deleted",
            picked: p.len(),
            out_of: all,
        };
        limits::check(&ctx.limits, &targets)?;
        // Deleting the Deployment cascades to pods the selector may not
        // match, so the Deployments are a pick of their own.
        let deployments = limits::Targets {
            activity: "kill_microservice",
            noun: "deployments",
            pool: "deployments in the namespace",
            untouched: "nothing was deleted",
            picked: d.len(),
            out_of: names(&deps, &ListParams::default()).await?.len(),
        };
        limits::check(&ctx.limits, &deployments)?;
        if ctx.dry {
            let mut keys = Vec::new();
            let mut changes = Vec::new();
            for (kind, list) in [("deployment", &d), ("replicaset", &r), ("pod", &p)] {
                for n in list {
                    keys.push(format!("{kind}/{ns}/{n}"));
                    changes.push(format!("delete {kind} {ns}/{n}"));
                }
            }
            return ctx.plan(&keys, &changes);
        }
        delete_all(&deps, &d).await?;
        delete_all(&rss, &r).await?;
        delete_all(&pods, &p).await?;
        Ok(Value::Null)
    })
}

#[cfg(test)]
mod tests;
