//! Notifications from the settings file, sent without holding the run up:
//! each event goes to every channel that wants it in its own task, bounded
//! by the channel's timeout; the run only waits, at its very end, for the
//! sends still under way (each already bounded). A failed send is a
//! console warning; the run's outcome and exit code never depend on it.
//! Tokens and secret header values are registered with the redactor before
//! anything is sent, so no log line or journal shows them.

pub mod send;
pub mod settings;
pub mod slack;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use squall_engine::log::Logger;
use tokio::task::JoinSet;
use tokio::time::Instant;

use settings::{Channel, Kind};

/// The configured channels and the sends under way.
pub struct Notifier {
    channels: Vec<Arc<Channel>>,
    log: Arc<Logger>,
    tasks: Mutex<JoinSet<()>>,
}

impl Notifier {
    /// Reads the settings' `notifications:`; problems are invalid input.
    pub fn from_settings(settings: &Value, log: Arc<Logger>) -> Result<Self, Vec<String>> {
        let env = std::env::var(settings::SLACK_API_ENV).ok();
        let channels = settings::channels(settings, env)?;
        for c in &channels {
            guard(c);
        }
        Ok(Self {
            channels: channels.into_iter().map(Arc::new).collect(),
            log,
            tasks: Mutex::new(JoinSet::new()),
        })
    }

    /// Whether any channel wants `name` (so a payload is worth building).
    pub fn wants(&self, name: &str) -> bool {
        self.channels.iter().any(|c| c.wants(name))
    }

    /// Sends `name` to every channel that wants it, in the background.
    pub fn emit(&self, name: &str, phase: &str, payload: Value, error: Option<String>) {
        let wanting: Vec<_> = self.channels.iter().filter(|c| c.wants(name)).collect();
        if wanting.is_empty() {
            return;
        }
        let event = Arc::new(redacted(event(name, phase, payload, error)));
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        for channel in wanting {
            let (channel, event, log) = (channel.clone(), event.clone(), self.log.clone());
            let name = name.to_owned();
            tasks.spawn(async move {
                let deadline = Instant::now() + channel.timeout;
                let sent =
                    tokio::time::timeout_at(deadline, deliver(&channel, &event, deadline)).await;
                let problem = match sent {
                    Ok(Ok(())) => {
                        return log
                            .debug(&format!("notification {name} sent to {}", target(&channel)));
                    }
                    Ok(Err(e)) => e,
                    Err(_) => format!("no answer within {:?}", channel.timeout),
                };
                log.warning(&format!(
                    "Notification {name} to {} failed: {problem}",
                    target(&channel)
                ));
            });
        }
    }

    /// Waits for the sends under way; each is bounded by its timeout.
    pub async fn finish(&self) {
        let tasks = self.tasks.lock().map(|mut t| std::mem::take(&mut *t));
        if let Ok(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// Upstream's event object: `{name, payload, phase, ts, error?}`.
pub fn event(name: &str, phase: &str, payload: Value, error: Option<String>) -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let mut e = json!({"name": name, "payload": payload, "phase": phase, "ts": ts});
    if let Some(err) = error {
        e["error"] = json!(err);
    }
    e
}

/// The experiment as written, for `run-started` and `validate-*`, with
/// every value of its `secrets` block and its sensitive-looking
/// configuration values masked: these events can come before validation
/// has told the redactor which values are secret.
pub fn experiment_payload(doc: &Value) -> Value {
    let mut v = doc.clone();
    if let Some(secrets) = v.get_mut("secrets") {
        mask_leaves(secrets);
    }
    if let Some(Value::Object(config)) = v.get_mut("configuration") {
        for (k, value) in config.iter_mut() {
            if squall_engine::redact::is_sensitive_name(k) {
                mask_leaves(value);
            }
        }
    }
    v
}

fn mask_leaves(v: &mut Value) {
    match v {
        Value::Object(m) => m.values_mut().for_each(mask_leaves),
        Value::Array(a) => a.iter_mut().for_each(mask_leaves),
        Value::Null => {}
        other => *other = json!(squall_engine::redact::MASK),
    }
}

/// The event with every known secret masked, as the journal on disk has
/// it: a receiver is told no more than the journal file would tell.
fn redacted(event: Value) -> Value {
    let text = event.to_string();
    let masked = squall_engine::redact::global().redact(&text);
    // Masking cannot break JSON unless a secret spans its syntax; then the
    // payload is dropped rather than sent unmasked.
    serde_json::from_str(&masked).unwrap_or_else(|_| {
        json!({"name": event["name"], "payload": null, "phase": event["phase"], "ts": event["ts"]})
    })
}

/// Keeps the channel's secrets out of every log line and journal.
fn guard(c: &Channel) {
    let r = squall_engine::redact::global();
    match &c.kind {
        Kind::Slack { token, .. } => r.add(token),
        Kind::Http { headers, .. } => {
            let m = headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            r.add_sensitive(&m);
        }
    }
}

fn target(c: &Channel) -> String {
    match &c.kind {
        Kind::Http { url, .. } => send::origin(url),
        Kind::Slack { channel, .. } => format!("Slack {channel}"),
    }
}

async fn deliver(c: &Channel, event: &Value, deadline: Instant) -> Result<(), String> {
    match &c.kind {
        Kind::Http {
            url,
            headers,
            verify_tls,
            forward_event_payload,
        } => {
            let client = client(*verify_tls)?;
            let resp = send::with_retries(deadline, || {
                let mut req = if *forward_event_payload {
                    client.post(url).json(event)
                } else {
                    client.get(url)
                };
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                req
            })
            .await?;
            match resp.status() {
                s if s.is_success() || s.is_redirection() => Ok(()),
                s => Err(format!("HTTP {}", s.as_u16())),
            }
        }
        Kind::Slack {
            token,
            channel,
            api_url,
        } => post_to_slack(token, api_url, &slack::message(channel, event), deadline).await,
    }
}

async fn post_to_slack(
    token: &str,
    api: &str,
    body: &Value,
    deadline: Instant,
) -> Result<(), String> {
    let client = client(true)?;
    let url = format!("{api}/chat.postMessage");
    let resp =
        send::with_retries(deadline, || client.post(&url).bearer_auth(token).json(body)).await?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    match answer.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        _ => Err(format!(
            "Slack answered ok: false ({})",
            answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error given")
        )),
    }
}

fn client(verify_tls: bool) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(!verify_tls)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_payloads_hide_secrets_before_validation_knows_them() {
        let doc = json!({"title": "t", "secrets": {"s": {"pw": "hunter22", "n": 3,
            "env": {"type": "env", "key": "X"}}},
            "configuration": {"api_token": "abc", "host": "h"}});
        let p = experiment_payload(&doc);
        assert_eq!(p["title"], "t");
        assert_eq!(p["secrets"]["s"]["pw"], "***");
        assert_eq!(p["secrets"]["s"]["n"], "***");
        assert_eq!(p["secrets"]["s"]["env"]["key"], "***");
        assert_eq!(p["configuration"]["api_token"], "***");
        assert_eq!(p["configuration"]["host"], "h");
    }
}
