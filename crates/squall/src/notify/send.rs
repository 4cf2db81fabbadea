//! Delivering one notification over HTTP within its time budget: 429 and
//! 5xx answers are retried with exponential back-off, honouring
//! `Retry-After`, as long as the retry still fits in the budget (upstream
//! sends once). Failures are returned as text for a console warning that
//! names the receiver by origin only, since a webhook URL is often itself
//! a secret.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::Instant;

/// The first back-off when the receiver gives no `Retry-After`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// At most this many attempts, whatever the budget.
const MAX_ATTEMPTS: u32 = 8;

/// The scheme, host and port of `url`, for messages.
pub fn origin(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "an invalid URL".into())
}

/// Sends `request()` until it gets an answer that is not 429 or 5xx, or the
/// deadline leaves no room for another try.
pub async fn with_retries(
    deadline: Instant,
    request: impl Fn() -> RequestBuilder,
) -> Result<Response, String> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1.. {
        let resp = request().send().await.map_err(|e| describe(&e))?;
        let status = resp.status();
        if !retryable(status) {
            return Ok(resp);
        }
        let wait = retry_after(&resp).unwrap_or(backoff);
        if attempt >= MAX_ATTEMPTS || Instant::now() + wait >= deadline {
            return Err(format!("HTTP {} (gave up retrying)", status.as_u16()));
        }
        tokio::time::sleep(wait).await;
        backoff = backoff.saturating_mul(2);
    }
    unreachable!("the loop only ends by returning")
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `Retry-After` in seconds (the form Slack and most APIs send).
fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// A transport error with its causes, minus the URL reqwest puts in it.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
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
    fn origins_hide_paths_and_queries() {
        assert_eq!(
            origin("https://hooks.example/services/T0/B0/SECRET?x=1"),
            "https://hooks.example"
        );
        assert_eq!(origin("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
        assert_eq!(origin("nope"), "an invalid URL");
    }

    #[test]
    fn only_throttling_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::BAD_GATEWAY));
        assert!(!retryable(StatusCode::NOT_FOUND));
        assert!(!retryable(StatusCode::OK));
    }
}
