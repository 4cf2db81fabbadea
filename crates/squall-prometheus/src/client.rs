//! The one HTTP call every Prometheus probe makes: where Prometheus is (the
//! probe's `prometheus_base_url`, else the configuration's, else upstream's
//! default), how to authenticate (a bearer token or basic auth from the
//! activity's secrets; upstream has none), and turning every way a query
//! can fail — no connection, an HTTP error, or `status: error` sent with
//! HTTP 200 — into a failure that carries Prometheus' own words.

use std::time::Duration;

use serde_json::{Map, Value};
use squall_activity::{ActivityCtx, ActivityError};

/// Upstream's default when neither the probe nor the configuration says.
pub const DEFAULT_BASE_URL: &str = "http://localhost:9090";
/// Bounds a query whose probe gives no `timeout`, so a stalled Prometheus
/// cannot hold the run.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Secret keys read for authentication.
pub const SECRET_TOKEN: &str = "prometheus_token";
pub const SECRET_USERNAME: &str = "prometheus_username";
pub const SECRET_PASSWORD: &str = "prometheus_password";

/// Where and how one probe talks to Prometheus.
pub struct Endpoint {
    pub base: String,
    pub verify_tls: bool,
    /// The probe's `timeout` in seconds: sent to Prometheus (as upstream)
    /// and also bounding the HTTP call (with a little slack).
    pub timeout: Option<f64>,
}

impl Endpoint {
    /// The endpoint for a probe's arguments and context.
    pub fn from_args(ctx: &ActivityCtx, args: &Map<String, Value>) -> Result<Self, ActivityError> {
        let base = string_arg(args, "prometheus_base_url")
            .or_else(|| string_arg(&ctx.configuration, "prometheus_base_url"))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let timeout = match args.get("timeout") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                number(v)
                    .filter(|t| *t > 0.0 && t.is_finite())
                    .ok_or_else(|| ActivityError::failed(format!("invalid timeout {v}")))?,
            ),
        };
        Ok(Self {
            // Upstream keeps a trailing slash and so asks for `//api/...`.
            base: base.trim_end_matches('/').to_owned(),
            verify_tls: args
                .get("verify_tls")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            timeout,
        })
    }

    /// `GET <base><path>?<params>`; the Prometheus JSON on success.
    pub async fn get(
        &self,
        ctx: &ActivityCtx,
        path: &str,
        params: &[(&str, String)],
        what: &str,
    ) -> Result<Value, ActivityError> {
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(!self.verify_tls)
            .timeout(self.http_timeout())
            .build()
            .map_err(|e| ActivityError::Fatal(format!("cannot build an HTTP client: {e}")))?;
        let url = format!("{}{path}", self.base);
        let mut req = client
            .get(&url)
            .header("Accept", "application/json")
            .query(params);
        req = authenticate(req, &ctx.secrets);
        ctx.log.debug(&format!("prometheus: GET {url} ({what})"));
        let resp = req.send().await.map_err(|e| {
            ActivityError::failed(format!(
                "cannot reach Prometheus at {}: {}",
                self.base,
                chain(&e)
            ))
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            ActivityError::failed(format!("Prometheus {what} failed: {}", chain(&e)))
        })?;
        check(status.as_u16(), &text, what)
    }

    fn http_timeout(&self) -> Duration {
        self.timeout
            .map(|t| Duration::from_secs_f64(t + 5.0))
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// Judges Prometheus' answer: an HTTP error, `status: error` (Prometheus
/// sends some with HTTP 200) and a body that is not Prometheus JSON are
/// failures naming what Prometheus said.
pub fn check(status: u16, text: &str, what: &str) -> Result<Value, ActivityError> {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let said = body.as_ref().and_then(prometheus_error);
    if status != 200 {
        let detail = said.unwrap_or_else(|| text.trim().chars().take(500).collect());
        return Err(ActivityError::failed(format!(
            "Prometheus {what} failed: HTTP {status}: {detail}"
        )));
    }
    let Some(body) = body else {
        return Err(ActivityError::failed(format!(
            "Prometheus {what} failed: the answer is not JSON"
        )));
    };
    match body.get("status").and_then(Value::as_str) {
        Some("success") => Ok(body),
        _ => Err(ActivityError::failed(format!(
            "Prometheus {what} failed: {}",
            said.unwrap_or_else(|| "the answer has no `status: success`".into())
        ))),
    }
}

/// `"<errorType>: <error>"` from a Prometheus error answer.
fn prometheus_error(body: &Value) -> Option<String> {
    let error = body.get("error").and_then(Value::as_str)?;
    Some(match body.get("errorType").and_then(Value::as_str) {
        Some(t) => format!("{t}: {error}"),
        None => error.to_owned(),
    })
}

fn authenticate(
    req: reqwest::RequestBuilder,
    secrets: &Map<String, Value>,
) -> reqwest::RequestBuilder {
    if let Some(token) = string_arg(secrets, SECRET_TOKEN) {
        return req.bearer_auth(token);
    }
    match string_arg(secrets, SECRET_USERNAME) {
        Some(user) => req.basic_auth(user, string_arg(secrets, SECRET_PASSWORD)),
        None => req,
    }
}

/// A non-empty string value.
pub fn string_arg(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A number given as a JSON number or a numeric string.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An error with its causes, so "dns error: failed to lookup" is shown.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_returned_as_is() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let v = check(200, body, "query").unwrap();
        assert_eq!(v["data"]["resultType"], "vector");
    }

    #[test]
    fn status_error_with_http_200_is_a_failure() {
        let body = r#"{"status":"error","errorType":"execution","error":"too many samples"}"#;
        let e = check(200, body, "query \"up\"").unwrap_err();
        assert_eq!(
            e,
            ActivityError::failed("Prometheus query \"up\" failed: execution: too many samples")
        );
    }

    #[test]
    fn http_errors_carry_prometheus_words_or_the_body() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let e = check(400, body, "query").unwrap_err();
        assert_eq!(
            e.message(),
            "Prometheus query failed: HTTP 400: bad_data: parse error"
        );
        let e = check(502, "bad gateway\n", "query").unwrap_err();
        assert_eq!(
            e.message(),
            "Prometheus query failed: HTTP 502: bad gateway"
        );
        let e = check(200, "<html>", "query").unwrap_err();
        assert_eq!(
            e.message(),
            "Prometheus query failed: the answer is not JSON"
        );
    }

    #[test]
    fn numbers_come_as_numbers_or_strings() {
        assert_eq!(number(&serde_json::json!(2.5)), Some(2.5));
        assert_eq!(number(&serde_json::json!("7")), Some(7.0));
        assert_eq!(number(&serde_json::json!(true)), None);
    }
}
