//! The REST API: routing of apiserver paths to handlers.
//!
//! `handle` is the single entry point used by both the `tower::Service` and
//! the HTTP server. It parses the path the way the apiserver does
//! (`/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`, the `/apis/{group}`
//! equivalents and the legacy `/watch/` prefix), looks the resource up in the
//! resource table and dispatches on method and subresource.

mod discovery;
mod eviction;
pub mod http;
mod openapi;
mod protobuf;
mod rest;
mod table;
mod watch;

use ::http::{Method, Request, Response};
use bytes::Bytes;

pub use self::http::Body;
use self::http::{Query, error_response};
use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::sim::Shared;

/// A parsed resource path.
#[derive(Debug, Clone, Default)]
pub struct ResPath {
    /// Group ("" for core).
    pub group: String,
    /// Version from the URL.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace from the URL, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub sub: Option<String>,
    /// Legacy `/watch/` prefix.
    pub watch: bool,
}

/// What a request addresses.
#[derive(Debug)]
enum Route {
    Version,
    Healthz,
    ApiVersions,
    GroupList,
    Group(String),
    Resources(String, String),
    Resource(ResPath),
    OpenApiV2,
    OpenApiIndex,
    OpenApi(String, String),
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz"] => Some(Route::Healthz),
        ["api"] => Some(Route::ApiVersions),
        ["apis"] => Some(Route::GroupList),
        ["apis", g] => Some(Route::Group((*g).to_string())),
        ["api", v] => Some(Route::Resources(String::new(), (*v).to_string())),
        ["apis", g, v] => Some(Route::Resources((*g).to_string(), (*v).to_string())),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["openapi", "v3"] => Some(Route::OpenApiIndex),
        ["openapi", "v3", "api", v] => Some(Route::OpenApi(String::new(), (*v).to_string())),
        ["openapi", "v3", "apis", g, v] => Some(Route::OpenApi((*g).to_string(), (*v).to_string())),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => None,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let (watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let mut p = ResPath {
        group: group.into(),
        version: version.into(),
        watch,
        ..ResPath::default()
    };
    let owned = |s: &&str| (*s).to_string();
    match rest {
        ["namespaces", ns, res, tail @ ..] if !matches!(*res, "status" | "finalize") => {
            p.namespace = Some((*ns).to_string());
            p.resource = (*res).to_string();
            p.name = tail.first().map(owned);
            p.sub = tail.get(1).map(owned);
            if tail.len() > 2 {
                return None;
            }
        }
        [res, tail @ ..] => {
            p.resource = (*res).to_string();
            p.name = tail.first().map(owned);
            p.sub = tail.get(1).map(owned);
            if tail.len() > 2 {
                return None;
            }
        }
        [] => return None,
    }
    Some(Route::Resource(p))
}

/// Handles one API request.
pub async fn handle(shared: &Shared, req: Request<Bytes>) -> Response<Body> {
    let query = Query::parse(req.uri().query());
    let path = req.uri().path().to_string();
    tracing::debug!(method = %req.method(), %path, "request");
    let route = route(&path);
    let read_only = !matches!(route, Some(Route::Resource(_)));
    let allowed = match *req.method() {
        Method::GET | Method::HEAD => true,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => !read_only,
        _ => false,
    };
    if !allowed {
        return error_response(&ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            req.method()
        )));
    }
    let result = match route {
        Some(Route::Version) => Ok(discovery::version()),
        Some(Route::Healthz) => Ok(self::http::text_response("ok".into())),
        Some(Route::ApiVersions) => Ok(discovery::api_versions(req.headers())),
        Some(Route::GroupList) => Ok(discovery::group_list(shared)),
        Some(Route::Group(g)) => discovery::group(shared, &g),
        Some(Route::Resources(g, v)) => discovery::resources(shared, &g, &v),
        Some(Route::Resource(p)) => dispatch(shared, req, &query, p).await,
        Some(Route::OpenApiV2) => Ok(openapi::v2()),
        Some(Route::OpenApiIndex) => Ok(openapi::index(shared)),
        Some(Route::OpenApi(g, v)) => openapi::group_version(shared, &g, &v),
        None => Err(ApiError::no_route()),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn lookup(shared: &Shared, p: &ResPath) -> Result<ResourceDef, ApiError> {
    let store = shared.store.lock();
    let def = store
        .resource(&p.group, &p.resource)
        .filter(|d| d.serves(&p.version))
        .cloned()
        .ok_or_else(ApiError::no_route)?;
    let scope_ok = match (&p.namespace, &p.name) {
        (Some(_), _) => def.namespaced,
        (None, Some(_)) => !def.namespaced,
        (None, None) => true,
    };
    if scope_ok {
        Ok(def)
    } else {
        Err(ApiError::no_route())
    }
}

async fn dispatch(
    shared: &Shared,
    req: Request<Bytes>,
    q: &Query,
    p: ResPath,
) -> Result<Response<Body>, ApiError> {
    let def = lookup(shared, &p)?;
    let (parts, body) = req.into_parts();
    let body = request_body(&parts.headers, body)?;
    let ns = p.namespace.clone().unwrap_or_default();
    let sub = p.sub.as_deref();
    let ctx = rest::Ctx {
        shared,
        def: &def,
        version: &p.version,
        ns: &ns,
        query: q,
        // Lists, gets and watches (`kubectl get -w`) answer Tables when asked.
        table: table::wanted(&parts.headers),
    };
    match (&parts.method, p.name.as_deref(), sub) {
        (&Method::GET, None, None) if p.watch || q.flag("watch") => {
            watch::watch(&ctx, p.namespace.as_deref())
        }
        (&Method::GET, None, None) => rest::list(&ctx, p.namespace.as_deref()),
        (&Method::POST, None, None) => rest::create(&ctx, &body),
        (&Method::DELETE, None, None) => {
            rest::delete_collection(&ctx, p.namespace.as_deref(), &body)
        }
        (&Method::GET, Some(name), None | Some("status")) if p.watch => {
            watch::watch_one(&ctx, name)
        }
        (&Method::GET, Some(name), None | Some("status")) => rest::get(&ctx, name),
        (&Method::GET, Some(name), Some("scale")) if def.has_scale => rest::get_scale(&ctx, name),
        (&Method::GET, Some(name), Some("log")) if def.plural == "pods" => rest::log(&ctx, name),
        (&Method::PUT, Some(name), None | Some("status")) => rest::update(&ctx, name, sub, &body),
        (&Method::PUT, Some(name), Some("scale")) if def.has_scale => {
            rest::update_scale(&ctx, name, &body, None)
        }
        (&Method::PATCH, Some(name), Some("scale")) if def.has_scale => {
            rest::update_scale(&ctx, name, &body, Some(content_type(&parts.headers)))
        }
        (&Method::PATCH, Some(name), None | Some("status")) => {
            rest::patch(&ctx, name, sub, content_type(&parts.headers), &body)
        }
        (&Method::DELETE, Some(name), None) => rest::delete(&ctx, name, &body),
        (&Method::POST, Some(name), Some("eviction"))
            if def.plural == "pods" && def.group.is_empty() =>
        {
            eviction::evict(&ctx, name, &body)
        }
        (m, _, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// The request body as JSON: JSON as is, protobuf (what kubectl's typed
/// clients send) decoded for the kinds `kubectl create` generates; any
/// other media type, or a protobuf body the decoder cannot render
/// faithfully, is refused with 415.
fn request_body(headers: &::http::HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    let ct = content_type(headers);
    if body.is_empty() || json_like(ct) {
        return Ok(body);
    }
    if !protobuf::is_protobuf(ct) {
        // CBOR and the rest: clients fall back to JSON on 415.
        return Err(ApiError::unsupported_media_type(ct));
    }
    match protobuf::decode(&body) {
        Ok(obj) => Ok(Bytes::from(obj.to_string())),
        Err(why) => {
            let mut e = ApiError::unsupported_media_type(ct);
            e.message = format!(
                "the protobuf request body could not be decoded by the simulator: {why}; send the object as JSON instead (for example `kubectl create … --dry-run=client -o json | kubectl create -f -`)"
            );
            Err(e)
        }
    }
}

/// Whether a request body's media type is one the simulator decodes (JSON and
/// the JSON-encoded patch and apply types).
fn json_like(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    mime.is_empty()
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "application/apply-patch+yaml"
        || mime == "*/*"
}

fn content_type(h: &::http::HeaderMap) -> &str {
    h.get(::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResPath {
        match route(path) {
            Some(Route::Resource(p)) => p,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn routes_core_and_group_paths() {
        let p = res("/api/v1/namespaces/default/pods/web-1/eviction");
        assert_eq!(
            (
                p.resource.as_str(),
                p.namespace.as_deref(),
                p.name.as_deref(),
                p.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web-1"), Some("eviction"))
        );
        let p = res("/api/v1/namespaces/default");
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref(), p.namespace),
            ("namespaces", Some("default"), None)
        );
        let p = res("/api/v1/namespaces/x/status");
        assert_eq!(
            (p.name.as_deref(), p.sub.as_deref()),
            (Some("x"), Some("status"))
        );
        let p = res("/apis/apps/v1/watch/namespaces/a/deployments");
        assert!(p.watch);
        assert_eq!(
            (p.group.as_str(), p.resource.as_str()),
            ("apps", "deployments")
        );
        assert!(matches!(route("/apis/apps/v1"), Some(Route::Resources(..))));
        assert!(route("/api/v1/pods/a/b/c").is_none());
        assert!(route("/nope").is_none());
        assert!(matches!(route("/openapi/v3"), Some(Route::OpenApiIndex)));
        assert!(matches!(
            route("/openapi/v3/apis/apps/v1"),
            Some(Route::OpenApi(g, v)) if g == "apps" && v == "v1"
        ));
        assert!(matches!(
            route("/openapi/v3/api/v1"),
            Some(Route::OpenApi(g, _)) if g.is_empty()
        ));
        assert!(matches!(route("/openapi/v2"), Some(Route::OpenApiV2)));
    }
}
