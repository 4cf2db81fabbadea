//! HTTP plumbing shared by the API handlers: the response body type, JSON and
//! Status responses, query-string decoding and request context.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use serde_json::Value;

use crate::error::ApiError;

/// The response body of every simulator response (plain JSON or a watch stream).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response with the given status code.
pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A 200 JSON response whose body is produced chunk by chunk, lazily, as the
/// connection takes it.
pub fn json_stream_response<I>(chunks: I) -> Response<Body>
where
    I: Iterator<Item = Bytes> + Send + 'static,
{
    let frames = futures::stream::iter(chunks.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut r = Response::new(StreamBody::new(frames).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serializes `obj` into `out` with `apiVersion` set to `api_version`,
/// copying the object only when its stored apiVersion differs.
pub fn write_versioned(out: &mut Vec<u8>, obj: &Value, api_version: &str) {
    let same =
        obj.get("apiVersion").and_then(Value::as_str) == Some(api_version) || !obj.is_object();
    let written = if same {
        serde_json::to_writer(&mut *out, obj)
    } else {
        let mut copy = obj.clone();
        if let Some(m) = copy.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(api_version.to_string()));
        }
        serde_json::to_writer(&mut *out, &copy)
    };
    // Writing a Value into a Vec cannot fail; keep the output valid JSON regardless.
    if written.is_err() {
        out.extend_from_slice(b"null");
    }
}

/// A `Status` error response (with `Retry-After` when the error carries one).
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after()
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A plain-text response (pod logs).
pub fn text_response(text: String) -> Response<Body> {
    let mut r = Response::new(full(text));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Decoded query-string parameters (last value wins).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses `a=b&c=d` with percent- and plus-decoding.
    pub fn parse(q: Option<&str>) -> Self {
        let mut m = HashMap::new();
        for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(decode(k), decode(v));
        }
        Query(m)
    }

    /// A parameter's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> bool {
        self.get("dryRun").is_some_and(|v| !v.is_empty())
    }
}

/// application/x-www-form-urlencoded decoding; invalid escapes are kept verbatim.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_selectors() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Cenv+in+%28a%2Cb%29&watch=true&x=%zz",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,env in (a,b)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some("%zz"));
        assert_eq!(decode("%4"), "%4");
    }
}
