//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}` and the
//! per-group-version resource lists, generated from the resource table.
//! Served in the legacy (non-aggregated) form, which kubectl and kube-rs fall
//! back to when the server does not offer aggregated discovery.

use std::collections::BTreeMap;

use http::{HeaderMap, Response};
use serde_json::{Value, json};

use super::http::{Body, json_response};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceDef;
use crate::sim::Shared;

pub fn version() -> Response<Body> {
    json_response(
        200,
        &json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-squall-sim", "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64"
        }),
    )
}

pub fn api_versions(headers: &HeaderMap) -> Response<Body> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    json_response(
        200,
        &json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": host }]
        }),
    )
}

/// Groups (other than core) with their versions, preferred first, in a stable order.
fn groups(defs: &[ResourceDef]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in defs.iter().filter(|d| !d.group.is_empty()) {
        let vs = out.entry(d.group.clone()).or_default();
        for v in &d.versions {
            if !vs.contains(v) {
                vs.push(v.clone());
            }
        }
    }
    out
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({ "name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(json!({})) })
}

pub fn group_list(shared: &Shared) -> Response<Body> {
    let store = shared.store.lock();
    let groups: Vec<Value> = groups(store.resources())
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json_response(
        200,
        &json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }),
    )
}

pub fn group(shared: &Shared, name: &str) -> ApiResult<Response<Body>> {
    let store = shared.store.lock();
    let all = groups(store.resources());
    let vs = all.get(name).ok_or_else(ApiError::no_route)?;
    let mut doc = group_doc(name, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Ok(json_response(200, &doc))
}

pub fn resources(shared: &Shared, group: &str, version: &str) -> ApiResult<Response<Body>> {
    let store = shared.store.lock();
    let entries: Vec<Value> = store
        .resources()
        .iter()
        .filter(|d| d.group == group && d.serves(version))
        .flat_map(ResourceDef::discovery_entries)
        .collect();
    if entries.is_empty() {
        return Err(ApiError::no_route());
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_response(
        200,
        &json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries }),
    ))
}
