//! The `http` provider: one request, returned as `{status, headers, body}`
//! with JSON bodies parsed, as Chaos Toolkit returns it.
//!
//! A status of 400 or more is not a failure (tolerances judge it); only a
//! request that gets no answer fails: "failed to connect to <url>: …" or,
//! on a read timeout, "activity took too long to complete". Clients are
//! cached per TLS and connect-timeout setting so 200 probes reuse
//! connections instead of paying a TLS setup each.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value, json};
use squall_core::subst::py_str;

use super::capture::Capture;
use crate::registry::{ActivityError, ActivityResult};

/// One HTTP request, after substitution.
pub struct HttpCall<'a> {
    pub url: &'a str,
    pub method: &'a str,
    pub headers: &'a Map<String, Value>,
    pub arguments: Option<&'a Value>,
    /// Seconds: one number for both, or `[connect, read]`.
    pub timeout: Option<&'a Value>,
    pub verify_tls: bool,
}

/// Sends the request and shapes the response.
pub async fn run(call: HttpCall<'_>) -> ActivityResult {
    let (connect, read) = timeouts(call.timeout)?;
    let client = client(call.verify_tls, connect)?;
    let method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|_| ActivityError::failed(format!("'{}' is not an HTTP method", call.method)))?;
    let mut req = client.request(method.clone(), call.url);
    for (k, v) in call.headers {
        req = req.header(k.as_str(), py_str(v));
    }
    req = with_arguments(req, &method, call.headers, call.arguments);
    if let Some(read) = read {
        req = req.timeout(read);
    }
    let resp = req.send().await.map_err(|e| classify(call.url, &e))?;
    shape(resp).await.map_err(|e| classify(call.url, &e))
}

/// The connect and read timeout of an HTTP activity that sets none
/// (upstream waits forever).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn timeouts(t: Option<&Value>) -> Result<(Option<Duration>, Option<Duration>), ActivityError> {
    let secs = |v: &Value| {
        v.as_f64()
            .filter(|f| *f > 0.0)
            .and_then(|f| Duration::try_from_secs_f64(f).ok())
            .ok_or_else(|| {
                ActivityError::failed(format!(
                    "the HTTP timeout must be a positive number, not {v}"
                ))
            })
    };
    match t {
        // No request waits forever on a server that never answers.
        None | Some(Value::Null) => Ok((Some(DEFAULT_TIMEOUT), Some(DEFAULT_TIMEOUT))),
        Some(Value::Array(pair)) if pair.len() == 2 => {
            Ok((Some(secs(&pair[0])?), Some(secs(&pair[1])?)))
        }
        Some(one) => {
            let d = secs(one)?;
            Ok((Some(d), Some(d)))
        }
    }
}

type ClientCache = Mutex<HashMap<(bool, Option<Duration>), reqwest::Client>>;

/// A shared client per (verify_tls, connect timeout).
fn client(verify_tls: bool, connect: Option<Duration>) -> Result<reqwest::Client, ActivityError> {
    static CLIENTS: OnceLock<ClientCache> = OnceLock::new();
    let cache = CLIENTS.get_or_init(Default::default);
    let mut map = cache
        .lock()
        .map_err(|_| ActivityError::Fatal("HTTP client cache poisoned".into()))?;
    if let Some(c) = map.get(&(verify_tls, connect)) {
        return Ok(c.clone());
    }
    let mut builder = reqwest::Client::builder().tls_danger_accept_invalid_certs(!verify_tls);
    if let Some(c) = connect {
        builder = builder.connect_timeout(c);
    }
    let client = builder
        .build()
        .map_err(|e| ActivityError::Fatal(format!("cannot build an HTTP client: {e}")))?;
    map.insert((verify_tls, connect), client.clone());
    Ok(client)
}

/// GET arguments become the query string; other methods send them as JSON
/// when `Content-Type` is exactly `application/json`, else as a form (or the
/// raw string).
fn with_arguments(
    req: reqwest::RequestBuilder,
    method: &reqwest::Method,
    headers: &Map<String, Value>,
    arguments: Option<&Value>,
) -> reqwest::RequestBuilder {
    let Some(args) = arguments.filter(|a| !a.is_null()) else {
        return req;
    };
    if *method == reqwest::Method::GET {
        return req.query(&query_pairs(args));
    }
    let json_body = headers.get("Content-Type").and_then(Value::as_str) == Some("application/json");
    match args {
        _ if json_body => req.json(args),
        Value::String(s) => req.body(s.clone()),
        other => req.form(&query_pairs(other)),
    }
}

fn query_pairs(args: &Value) -> Vec<(String, String)> {
    let Some(map) = args.as_object() else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        match v {
            Value::Array(items) => pairs.extend(items.iter().map(|i| (k.clone(), py_str(i)))),
            other => pairs.push((k.clone(), py_str(other))),
        }
    }
    pairs
}

async fn shape(resp: reqwest::Response) -> Result<Value, reqwest::Error> {
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for (name, value) in resp.headers() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let merged = match headers.get(name.as_str()).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {v}"),
            None => v,
        };
        headers.insert(name.as_str().to_owned(), Value::String(merged));
    }
    let is_json = headers
        .get("content-type")
        .and_then(Value::as_str)
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mt| {
            let mt = mt.trim().to_ascii_lowercase();
            mt == "application/json" || mt.ends_with("+json")
        });
    let text = body_text(resp).await?;
    let body = if is_json {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    } else {
        Value::String(text)
    };
    Ok(json!({"status": status, "headers": headers, "body": body}))
}

/// The body, read in chunks into a bounded capture (a huge answer keeps
/// only its ends; see [`Capture`]).
async fn body_text(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut cap = Capture::new();
    while let Some(chunk) = resp.chunk().await? {
        cap.push(&chunk);
    }
    Ok(cap.text())
}

fn classify(url: &str, err: &reqwest::Error) -> ActivityError {
    if err.is_timeout() && !err.is_connect() {
        return ActivityError::failed("activity took too long to complete");
    }
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    ActivityError::failed(format!("failed to connect to {url}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves one canned response per connection; returns the URL.
    async fn server(response: &'static str, delay: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = sock.write_all(response.as_bytes()).await;
            }
        });
        format!("http://{addr}/x")
    }

    fn call<'a>(
        url: &'a str,
        timeout: Option<&'a Value>,
        headers: &'a Map<String, Value>,
    ) -> HttpCall<'a> {
        HttpCall {
            url,
            method: "GET",
            headers,
            arguments: None,
            timeout,
            verify_tls: true,
        }
    }

    #[tokio::test]
    async fn json_body_is_parsed_and_status_kept() {
        let url = server(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: 8\r\nconnection: close\r\n\r\n{\"a\": 1}",
            Duration::ZERO,
        )
        .await;
        let out = run(call(&url, None, &Map::new())).await.unwrap();
        assert_eq!(out["status"], 503);
        assert_eq!(out["body"], json!({"a": 1}));
        assert_eq!(out["headers"]["content-length"], "8");
    }

    #[tokio::test]
    async fn text_body_stays_text() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
            Duration::ZERO,
        )
        .await;
        let out = run(call(&url, None, &Map::new())).await.unwrap();
        assert_eq!(out["body"], "hi");
    }

    #[tokio::test]
    async fn read_timeout_is_too_long() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            Duration::from_secs(3),
        )
        .await;
        let t = json!(0.2);
        let err = run(call(&url, Some(&t), &Map::new())).await.unwrap_err();
        assert_eq!(
            err,
            ActivityError::failed("activity took too long to complete")
        );
    }

    #[tokio::test]
    async fn refused_connection_is_a_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = run(call(&url, None, &Map::new())).await.unwrap_err();
        assert!(
            err.message()
                .starts_with(&format!("failed to connect to {url}")),
            "{err:?}"
        );
    }

    #[test]
    fn timeout_shapes() {
        assert_eq!(
            timeouts(Some(&json!([1, 2]))).unwrap(),
            (Some(Duration::from_secs(1)), Some(Duration::from_secs(2)))
        );
        assert!(timeouts(Some(&json!("x"))).is_err());
        assert_eq!(
            query_pairs(&json!({"a": [1, 2], "b": true})),
            [
                ("a".into(), "1".into()),
                ("a".into(), "2".into()),
                ("b".into(), "True".into())
            ]
        );
    }
}
