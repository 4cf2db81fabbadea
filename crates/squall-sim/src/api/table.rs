//! Server-side printing: a `meta.k8s.io` `Table` instead of the objects when
//! the client asks for one (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`,
//! what `kubectl get` sends), for lists and single gets.
//!
//! The apiserver renders every cell, ages included, so kubectl prints them
//! as they come; ages here are measured on the sim clock, the same clock
//! that stamped `creationTimestamp`, so a sped-up sandbox shows consistent
//! ages. Each row carries the object as `includeObject` asks: `Metadata`
//! (the default, a `PartialObjectMetadata`), `Object` or `None`; kubectl
//! reads the namespace and labels from it (`-A`, `--show-labels`).

mod apps;
mod columns;
mod core;
mod custom;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Response, header};
use serde_json::{Value, json};

use super::http::{Body, json_response};
use super::rest::Ctx;
use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use columns::Printer;
use custom::Custom;

/// The Table version the client accepts (`v1` or `v1beta1`), if it asked
/// for a Table before any plain media type.
pub fn wanted(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let mime = parts.next().unwrap_or_default();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        match (param("as"), param("g"), param("v")) {
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) if mime == "application/json" => {
                return Some("v1");
            }
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) if mime == "application/json" => {
                return Some("v1beta1");
            }
            // A Table in another encoding or version: look further.
            (Some(_), _, _) => {}
            // A plain type listed first wins, as content negotiation does.
            (None, _, _) => return None,
        }
    }
    None
}

/// The Table for a list page (`meta` holds resourceVersion and continue).
pub fn list(
    ctx: &Ctx<'_>,
    version: &'static str,
    meta: &Value,
    items: &[Arc<Value>],
) -> Response<Body> {
    match Renderer::new(ctx, version) {
        Ok(r) => json_response(
            200,
            &r.table(meta.clone(), items.iter().map(|o| &**o), true),
        ),
        Err(e) => super::http::error_response(&e),
    }
}

/// The one-row Table for a single get.
pub fn get(ctx: &Ctx<'_>, version: &'static str, obj: &Value) -> ApiResult<Response<Body>> {
    let r = Renderer::new(ctx, version)?;
    Ok(json_response(
        200,
        &r.table(rv_meta(obj), std::iter::once(obj), true),
    ))
}

/// `{"resourceVersion": …}` of an object, the metadata of its own Table.
fn rv_meta(obj: &Value) -> Value {
    let rv = obj
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(json!(""));
    json!({ "resourceVersion": rv })
}

/// What prints a resource: a built-in printer or a CRD's printer columns.
enum Layout {
    Builtin(Printer),
    Custom(Custom),
}

/// The object each row carries, as `includeObject` asks.
#[derive(Debug, Clone, Copy)]
enum Include {
    None,
    Metadata,
    Object,
}

/// Everything needed to turn objects of one resource into Table rows,
/// taken once per request (or per watch stream) so rows are rendered
/// without the store lock.
pub struct Renderer {
    version: &'static str,
    layout: Layout,
    include: Include,
    api_version: String,
    clock: Clock,
}

impl Renderer {
    /// The renderer for the request's resource and version; 400 for an
    /// unknown `includeObject`.
    pub fn new(ctx: &Ctx<'_>, version: &'static str) -> ApiResult<Self> {
        let include = match ctx.query.get("includeObject").unwrap_or("Metadata") {
            "None" => Include::None,
            "Object" => Include::Object,
            "Metadata" => Include::Metadata,
            other => {
                return Err(ApiError::bad_request(format!(
                    "includeObject: Unsupported value: \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
                )));
            }
        };
        let store = ctx.shared.store.lock();
        let def = ctx.def;
        // A custom resource prints with its CRD's columns, as the
        // apiextensions apiserver serving it does.
        let crd_name = format!("{}.{}", def.plural, def.group);
        let crd = store.get(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            &crd_name,
        );
        let layout = match crd {
            Some(crd) if !def.group.is_empty() => {
                Layout::Custom(Custom::from_crd(Some(crd), ctx.version))
            }
            _ => Layout::Builtin(Printer::of(&def.group, &def.plural)),
        };
        Ok(Renderer {
            version,
            layout,
            include,
            api_version: def.api_version(ctx.version),
            clock: store.clock,
        })
    }

    /// A Table of `objects`; `headers` false leaves `columnDefinitions`
    /// null, as the apiserver does for every watch event after the first.
    pub fn table<'a>(
        &self,
        meta: Value,
        objects: impl Iterator<Item = &'a Value>,
        headers: bool,
    ) -> Value {
        let now = self.clock.wall_at(self.clock.now());
        let columns = if headers {
            json!(match &self.layout {
                Layout::Builtin(p) => p.columns(),
                Layout::Custom(c) => c.columns(),
            })
        } else {
            Value::Null
        };
        json!({
            "kind": "Table",
            "apiVersion": format!("meta.k8s.io/{}", self.version),
            "metadata": meta,
            "columnDefinitions": columns,
            "rows": objects.map(|o| self.row(o, now)).collect::<Vec<_>>(),
        })
    }

    /// The one-row Table a watch event carries for `obj`.
    pub fn event_table(&self, obj: &Value, headers: bool) -> Value {
        self.table(rv_meta(obj), std::iter::once(obj), headers)
    }

    fn row(&self, o: &Value, now: SystemTime) -> Value {
        let ago = |at: &str| parse_time(at).map_or("<unknown>".to_string(), |t| age(now, t));
        let cells = match &self.layout {
            Layout::Builtin(p) => p.cells(o, &ago),
            Layout::Custom(c) => c.cells(o, &ago),
        };
        let mut row = json!({ "cells": cells });
        match self.include {
            Include::None => {}
            Include::Object => {
                let mut obj = o.clone();
                if let Some(m) = obj.as_object_mut() {
                    m.insert("apiVersion".into(), json!(self.api_version));
                }
                row["object"] = obj;
            }
            Include::Metadata => {
                row["object"] = json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                });
            }
        }
        row
    }
}

/// The time from `from` to `to` (two timestamps) as `HumanDuration` prints it.
fn span(from: &str, to: &str) -> String {
    match (parse_time(from), parse_time(to)) {
        (Some(a), Some(b)) => age(b, a),
        _ => "<unknown>".into(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` (what the store writes) to a time.
fn parse_time(s: &str) -> Option<SystemTime> {
    let t: jiff::Timestamp = s.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(t.as_second()).ok()?))
}

/// The age of `then` at `now`, as the apiserver's `HumanDuration` prints it.
fn age(now: SystemTime, then: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(d) => human(d.as_secs()),
        // Up to a second in the future counts as now (clock skew).
        Err(e) if e.duration() < Duration::from_secs(2) => "0s".into(),
        Err(_) => "<invalid>".into(),
    }
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration` on whole seconds:
/// more precision for young objects, less as they age.
fn human(secs: u64) -> String {
    let (mins, hours) = (secs / 60, secs / 3600);
    let (days, years) = (hours / 24, hours / 24 / 365);
    let with = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu}{small}{su}")
        }
    };
    match () {
        () if secs < 120 => format!("{secs}s"),
        () if mins < 10 => with(mins, "m", secs % 60, "s"),
        () if mins < 180 => format!("{mins}m"),
        () if hours < 8 => with(hours, "h", mins % 60, "m"),
        () if hours < 48 => format!("{hours}h"),
        () if hours < 24 * 8 => with(days, "d", hours % 24, "h"),
        () if hours < 24 * 365 * 2 => format!("{days}d"),
        () if hours < 24 * 365 * 8 => with(years, "y", days % 365, "d"),
        () => format!("{years}y"),
    }
}

#[cfg(test)]
mod tests;
