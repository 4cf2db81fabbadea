//! Handlers for the ordinary verbs: get, list, create, update, patch, delete,
//! deletecollection, plus the `scale` and `log` subresources.

use crate::store::Ptr;
use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};

use std::sync::Arc;

use super::http::{
    Body, Query, json_response, json_stream_response, text_response, write_versioned,
};
use crate::error::{ApiError, ApiResult, Subject, success_status};
use crate::ops::{DeleteOpts, Part};
use crate::patch;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::Shared;
use crate::store::{set_path, str_at};

/// Everything a handler needs about the request.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub def: &'a ResourceDef,
    pub version: &'a str,
    pub ns: &'a str,
    pub query: &'a Query,
    /// The `meta.k8s.io` Table version the client asked for, if any.
    pub table: Option<&'static str>,
}

impl Ctx<'_> {
    /// Sets `apiVersion` to the version the client asked for.
    pub fn versioned(&self, mut obj: Value) -> Value {
        if let Some(m) = obj.as_object_mut() {
            m.insert(
                "apiVersion".into(),
                json!(self.def.api_version(self.version)),
            );
        }
        obj
    }

    fn subject<'b>(&'b self, name: &'b str) -> Subject<'b> {
        Subject {
            group: &self.def.group,
            resource: &self.def.plural,
            name,
        }
    }

    /// Label and field selectors from the query string.
    pub fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        Ok((
            LabelSelector::parse(self.query.get("labelSelector").unwrap_or_default())?,
            FieldSelector::parse(self.query.get("fieldSelector").unwrap_or_default())?,
        ))
    }
}

/// Parses a JSON request body; malformed JSON is a 400, as on the apiserver.
pub fn parse_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

fn ok(obj: &Value) -> ApiResult<Response<Body>> {
    Ok(json_response(200, obj))
}

pub fn get(ctx: &Ctx<'_>, name: &str) -> ApiResult<Response<Body>> {
    let store = ctx.shared.store.lock();
    let obj = store
        .get(&ctx.def.group, &ctx.def.plural, ctx.ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(ctx.subject(name)))?;
    drop(store);
    match ctx.table {
        Some(version) => super::table::get(ctx, version, &obj),
        None => ok(&ctx.versioned(obj)),
    }
}

pub fn list(ctx: &Ctx<'_>, ns: Option<&str>) -> ApiResult<Response<Body>> {
    let (labels, fields) = ctx.selectors()?;
    let limit = ctx
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let after = ctx
        .query
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(decode_continue)
        .transpose()?;
    // Under the lock: pick the matching objects (shared, not copied). The
    // serialization, the expensive part, happens after the lock is released.
    let (items, more, rv) = {
        let store = ctx.shared.store.lock();
        let mut it = store.select(
            &ctx.def.group,
            &ctx.def.plural,
            ns,
            after.as_ref(),
            &labels,
            &fields,
        );
        let items: Vec<Arc<Value>> = match limit {
            Some(l) => it.by_ref().take(l).cloned().collect(),
            None => it.by_ref().cloned().collect(),
        };
        let more = limit.is_some() && it.next().is_some();
        (items, more, store.rv())
    };
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if more {
        meta["continue"] = json!(encode_continue(&items));
    }
    Ok(match ctx.table {
        Some(version) => super::table::list(ctx, version, &meta, &items),
        None => list_response(ctx, &meta, items),
    })
}

/// A list answer streamed in chunks of items, each serialized only when the
/// connection asks for it: a 10,000-pod list never exists as one buffer.
fn list_response(ctx: &Ctx<'_>, meta: &Value, items: Vec<Arc<Value>>) -> Response<Body> {
    const CHUNK: usize = 200;
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        json!(format!("{}List", ctx.def.kind)),
        json!(ctx.def.api_version(ctx.version)),
        meta
    );
    let api_version = ctx.def.api_version(ctx.version);
    let mut rest = items.into_iter().peekable();
    let mut first = true;
    let body = std::iter::from_fn(move || {
        rest.peek()?;
        let mut out = Vec::with_capacity(CHUNK * 2048);
        for o in rest.by_ref().take(CHUNK) {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_versioned(&mut out, &o, &api_version);
        }
        Some(Bytes::from(out))
    });
    let chunks = std::iter::once(Bytes::from(head))
        .chain(body)
        .chain(std::iter::once(Bytes::from_static(b"]}")));
    json_stream_response(chunks)
}

/// Continue tokens are the hex of "namespace/name" of the last item returned.
fn encode_continue(items: &[Arc<Value>]) -> String {
    let last = items
        .last()
        .map(|o| {
            format!(
                "{}/{}",
                str_at(o, "/metadata/namespace"),
                str_at(o, "/metadata/name")
            )
        })
        .unwrap_or_default();
    last.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).map_err(|_| bad()))
        .collect::<ApiResult<_>>()?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ns, name) = s.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

pub fn create(ctx: &Ctx<'_>, body: &Bytes) -> ApiResult<Response<Body>> {
    let obj = parse_body(body)?;
    let created = ctx
        .shared
        .store
        .lock()
        .create(ctx.def, ctx.ns, obj, ctx.query.dry_run())?;
    ctx.shared.store.poke();
    Ok(json_response(201, &ctx.versioned(created)))
}

fn part(sub: Option<&str>) -> Part {
    if sub == Some("status") {
        Part::Status
    } else {
        Part::Main
    }
}

pub fn update(
    ctx: &Ctx<'_>,
    name: &str,
    sub: Option<&str>,
    body: &Bytes,
) -> ApiResult<Response<Body>> {
    let obj = parse_body(body)?;
    let updated = ctx.shared.store.lock().update(
        ctx.def,
        ctx.ns,
        name,
        obj,
        part(sub),
        ctx.query.dry_run(),
    )?;
    ctx.shared.store.poke();
    ok(&ctx.versioned(updated))
}

/// Applies a patch document of the given content type to `target`.
fn apply_patch(
    def: &ResourceDef,
    content_type: &str,
    target: &mut Value,
    body: &Bytes,
) -> ApiResult<()> {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    let doc = parse_body(body)?;
    match mime {
        "application/merge-patch+json" | "application/apply-patch+yaml" => {
            patch::merge(target, &doc)
        }
        "application/json-patch+json" => patch::json_patch(target, &doc)?,
        "application/strategic-merge-patch+json" => {
            if is_custom(def) {
                return Err(ApiError::unsupported_media_type(content_type));
            }
            patch::strategic(target, &doc);
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    }
    Ok(())
}

fn is_custom(def: &ResourceDef) -> bool {
    !(def.group.is_empty()
        || def.group.ends_with(".k8s.io")
        || matches!(
            def.group.as_str(),
            "apps" | "batch" | "autoscaling" | "policy"
        ))
}

pub fn patch(
    ctx: &Ctx<'_>,
    name: &str,
    sub: Option<&str>,
    content_type: &str,
    body: &Bytes,
) -> ApiResult<Response<Body>> {
    let is_apply = content_type.starts_with("application/apply-patch");
    let mut store = ctx.shared.store.lock();
    let current = store
        .get(&ctx.def.group, &ctx.def.plural, ctx.ns, name)
        .cloned();
    let result = match current {
        Some(mut target) => {
            apply_patch(ctx.def, content_type, &mut target, body)?;
            store.update(
                ctx.def,
                ctx.ns,
                name,
                target,
                part(sub),
                ctx.query.dry_run(),
            )?
        }
        // Server-side apply creates missing objects; other patches 404.
        None if is_apply => {
            let mut obj = parse_body(body)?;
            set_path(&mut obj, &["metadata", "name"], json!(name));
            store.create(ctx.def, ctx.ns, obj, ctx.query.dry_run())?
        }
        None => return Err(ApiError::not_found(ctx.subject(name))),
    };
    drop(store);
    ctx.shared.store.poke();
    ok(&ctx.versioned(result))
}

fn delete_opts(ctx: &Ctx<'_>, body: &Bytes) -> ApiResult<DeleteOpts> {
    let mut opts = DeleteOpts {
        grace: ctx
            .query
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok()),
        propagation: ctx.query.get("propagationPolicy").map(ToString::to_string),
        dry_run: ctx.query.dry_run(),
        ..DeleteOpts::default()
    };
    if !body.is_empty() {
        opts.merge_body(&parse_body(body)?);
    }
    Ok(opts)
}

pub fn delete(ctx: &Ctx<'_>, name: &str, body: &Bytes) -> ApiResult<Response<Body>> {
    let opts = delete_opts(ctx, body)?;
    let gone = {
        let mut store = ctx.shared.store.lock();
        let gone = store.delete(ctx.def, ctx.ns, name, &opts)?;
        if ctx.def.group.is_empty() && ctx.def.plural == "pods" && !opts.dry_run {
            crate::controllers::replace_deleted_pod(&mut store, &gone);
        }
        gone
    };
    ctx.shared.store.poke();
    ok(&ctx.versioned(gone))
}

pub fn delete_collection(
    ctx: &Ctx<'_>,
    ns: Option<&str>,
    body: &Bytes,
) -> ApiResult<Response<Body>> {
    let opts = delete_opts(ctx, body)?;
    let (labels, fields) = ctx.selectors()?;
    let mut store = ctx.shared.store.lock();
    let targets: Vec<(String, String)> = store
        .list(&ctx.def.group, &ctx.def.plural, ns)
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(crate::store::obj_key)
        .collect();
    let mut items = Vec::new();
    for (o_ns, name) in targets {
        match store.delete(ctx.def, &o_ns, &name, &opts) {
            Ok(o) => items.push(ctx.versioned(o)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = store.rv().to_string();
    drop(store);
    ctx.shared.store.poke();
    ok(
        &json!({ "kind": format!("{}List", ctx.def.kind), "apiVersion": ctx.def.api_version(ctx.version), "metadata": { "resourceVersion": rv }, "items": items }),
    )
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .ptr("/spec/selector")
        .and_then(LabelSelector::from_object)
        .map(|_| selector_string(obj))
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"], "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"], "creationTimestamp": obj["metadata"]["creationTimestamp"]
        },
        "spec": { "replicas": obj.ptr("/spec/replicas").cloned().unwrap_or(json!(0)) },
        "status": { "replicas": obj.ptr("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector }
    })
}

/// `matchLabels` of a selector in query-string form (what `Scale.status.selector` holds).
fn selector_string(obj: &Value) -> String {
    obj.ptr("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn get_scale(ctx: &Ctx<'_>, name: &str) -> ApiResult<Response<Body>> {
    let store = ctx.shared.store.lock();
    let obj = store
        .get(&ctx.def.group, &ctx.def.plural, ctx.ns, name)
        .ok_or_else(|| ApiError::not_found(ctx.subject(name)))?;
    ok(&scale_of(obj))
}

/// PUT (content type `None`) or PATCH of the `scale` subresource.
pub fn update_scale(
    ctx: &Ctx<'_>,
    name: &str,
    body: &Bytes,
    content_type: Option<&str>,
) -> ApiResult<Response<Body>> {
    let mut store = ctx.shared.store.lock();
    let mut obj = store
        .get(&ctx.def.group, &ctx.def.plural, ctx.ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(ctx.subject(name)))?;
    let mut scale = scale_of(&obj);
    match content_type {
        None => scale = parse_body(body)?,
        Some(ct) => apply_patch(ctx.def, ct, &mut scale, body)?,
    }
    let replicas = scale.ptr("/spec/replicas").cloned().unwrap_or(json!(0));
    set_path(&mut obj, &["spec", "replicas"], replicas);
    if let Some(rv) = scale
        .ptr("/metadata/resourceVersion")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        obj["metadata"]["resourceVersion"] = rv.clone();
    }
    let updated = store.update(ctx.def, ctx.ns, name, obj, Part::Main, ctx.query.dry_run())?;
    drop(store);
    ctx.shared.store.poke();
    ok(&scale_of(&updated))
}

pub fn log(ctx: &Ctx<'_>, name: &str) -> ApiResult<Response<Body>> {
    let store = ctx.shared.store.lock();
    let pod = store
        .get("", "pods", ctx.ns, name)
        .ok_or_else(|| ApiError::not_found(ctx.subject(name)))?;
    let container = ctx
        .query
        .get("container")
        .map(ToString::to_string)
        .unwrap_or_else(|| str_at(pod, "/spec/containers/0/name").to_string());
    if let Some(text) = crate::runtime::log_of(&ctx.shared.logs, str_at(pod, "/metadata/uid")) {
        return Ok(text_response(text));
    }
    let node = str_at(pod, "/spec/nodeName");
    let text = format!(
        "squall-sim: container {container} of pod {}/{name} started on {}\nsquall-sim: serving\n",
        ctx.ns,
        if node.is_empty() {
            "<unscheduled>"
        } else {
            node
        }
    );
    Ok(text_response(text))
}

/// The Status returned by a successful eviction.
pub fn created_status() -> Value {
    success_status(201)
}
