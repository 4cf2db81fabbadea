//! OpenAPI v3: the discovery index (`/openapi/v3`) and one document per
//! group-version, generated from the resource table, so that `kubectl apply`
//! works without `--validate=false`.
//!
//! kubectl 1.33 validates with the server when the group-version document
//! has, for the kind, a PATCH operation tagged with
//! `x-kubernetes-group-version-kind` that takes the `fieldValidation` query
//! parameter; it then skips its client-side schema check (which needs
//! `/openapi/v2`, not served). The PATCH operations declare no request body
//! on purpose: kubectl would otherwise compute strategic-merge patches from
//! these permissive schemas instead of its compiled-in types. Schemas are
//! `type: object` with `x-kubernetes-preserve-unknown-fields`, carrying the
//! kind's group-version-kind; the simulator does not reject unknown fields.
//!
//! `/openapi/v2` is an empty document (protobuf, the only encoding kubectl
//! asks for): for a kind the v3 documents do not list, kubectl falls back to
//! v2, finds no schema, skips validation and then reports the unknown kind
//! from its REST mapping, as against a real cluster; a 404 there would make
//! it fail with "failed to download openapi" instead.

use std::collections::BTreeSet;

use http::Response;
use serde_json::{Map, Value, json};

use super::http::{Body, json_response};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceDef;
use crate::sim::Shared;

/// The path of a group-version's document, relative to `/openapi/v3/`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: every served group-version with the URL of its document.
/// The hash changes when the document does (a new CRD), which is what lets
/// clients cache documents by URL.
pub fn index(shared: &Shared) -> Response<Body> {
    let defs = shared.store.lock().resources().to_vec();
    let gvs: BTreeSet<(String, String)> = defs
        .iter()
        .flat_map(|d| d.versions.iter().map(|v| (d.group.clone(), v.clone())))
        .collect();
    let mut paths = Map::new();
    for (g, v) in gvs {
        let path = gv_path(&g, &v);
        let hash = fnv(&document(&defs, &g, &v).to_string());
        paths.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash:016X}") }),
        );
    }
    json_response(200, &json!({ "paths": paths }))
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn group_version(shared: &Shared, group: &str, version: &str) -> ApiResult<Response<Body>> {
    let defs = shared.store.lock().resources().to_vec();
    if !defs.iter().any(|d| d.group == group && d.serves(version)) {
        return Err(ApiError::no_route());
    }
    Ok(json_response(200, &document(&defs, group, version)))
}

fn document(defs: &[ResourceDef], group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for d in defs
        .iter()
        .filter(|d| d.group == group && d.serves(version))
    {
        let gvk = json!({ "group": group, "version": version, "kind": d.kind });
        let name = schema_name(d, version);
        schemas.insert(
            name.clone(),
            json!({
                "type": "object",
                "description": format!("{} (schema not simulated: any fields are accepted).", d.kind),
                "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-group-version-kind": [gvk],
            }),
        );
        let base = format!("/{}", gv_path(group, version));
        let item = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("{base}/{}/{{name}}", d.plural)
        };
        paths.insert(item, json!({ "patch": patch_operation(d, &name, &gvk) }));
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

fn patch_operation(d: &ResourceDef, schema: &str, gvk: &Value) -> Value {
    let query = |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string" } });
    let mut parameters = vec![
        query("dryRun"),
        query("fieldManager"),
        query("fieldValidation"),
    ];
    if d.namespaced {
        parameters.push(
            json!({ "name": "namespace", "in": "path", "required": true, "schema": { "type": "string" } }),
        );
    }
    parameters.push(
        json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }),
    );
    json!({
        "description": format!("partially update the specified {}", d.kind),
        "operationId": format!("patch{}", d.kind),
        "parameters": parameters,
        "responses": { "200": {
            "description": "OK",
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
        } },
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk,
    })
}

/// `io.k8s.api.core.v1.Pod` style names for built-in groups, the reversed
/// group for others (`io.istio.networking.v1.VirtualService`).
fn schema_name(d: &ResourceDef, version: &str) -> String {
    let group = match d.group.as_str() {
        "" => "io.k8s.api.core".to_string(),
        g if !g.contains('.') => format!("io.k8s.api.{g}"),
        g => g.split('.').rev().collect::<Vec<_>>().join("."),
    };
    format!("{group}.{version}.{}", d.kind)
}

/// `GET /openapi/v2`: an `openapi_v2.Document` holding only `swagger: "2.0"`
/// and `info`, protobuf-encoded by hand (field 1 and 2, length-delimited).
pub fn v2() -> Response<Body> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push((number << 3) | 2);
        // Every value here is shorter than 128 bytes: a one-byte varint.
        out.push(u8::try_from(bytes.len()).unwrap_or(0));
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, b"v1.33.0");
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    let mut r = Response::new(super::http::full(doc));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        ),
    );
    r
}

/// FNV-1a, 64 bits: a stable content hash with no dependency.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin;

    #[test]
    fn documents_offer_field_validation_on_patch_for_every_kind() {
        let defs = builtin();
        let doc = document(&defs, "apps", "v1");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            op["x-kubernetes-group-version-kind"],
            json!({ "group": "apps", "version": "v1", "kind": "Deployment" })
        );
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(params.contains(&"fieldValidation"), "{params:?}");
        // No request body: kubectl must keep its compiled-in patch strategy.
        assert!(op.get("requestBody").is_none());
        let schema = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let core = document(&defs, "", "v1");
        assert!(core["paths"].get("/api/v1/nodes/{name}").is_some());
        assert!(
            core["paths"]
                .get("/api/v1/namespaces/{namespace}/pods/{name}")
                .is_some()
        );
        let istio = document(&defs, "networking.istio.io", "v1alpha3");
        assert!(
            istio["components"]["schemas"]
                .get("io.istio.networking.v1alpha3.VirtualService")
                .is_some()
        );
    }

    #[test]
    fn hashes_differ_with_content() {
        assert_ne!(fnv("a"), fnv("b"));
        assert_eq!(fnv(""), 0xcbf2_9ce4_8422_2325);
    }
}
