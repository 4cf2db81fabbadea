//! Reading the settings file's `notifications:` list as upstream declares
//! it (`type: http` and `type: plugin` with `module:
//! chaosslack.notification`), checked before anything runs: a missing
//! `url` or `module`, an unknown plugin module or an unknown event name is
//! invalid input (exit 2) where upstream silently sends nothing.

use std::time::Duration;

use serde_json::{Map, Value};

/// Every event name upstream's code emits, in the code's spelling.
pub const EVENTS: &[&str] = &[
    "discovery-started",
    "discovery-completed",
    "discovery-failed",
    "init-started",
    "init-completed",
    "init-failed",
    "run-started",
    "run-completed",
    "run-failed",
    "run-deviated",
    "validate-started",
    "validate-completed",
    "validate-failed",
];

/// The one plugin module squall implements natively.
pub const SLACK_MODULE: &str = "chaosslack.notification";
/// Where the Slack Web API lives unless the settings or the environment
/// point elsewhere (tests, Slack-compatible servers).
pub const SLACK_API_URL: &str = "https://slack.com/api";
/// The environment variable that overrides [`SLACK_API_URL`].
pub const SLACK_API_ENV: &str = "SQUALL_SLACK_API_URL";
/// How long one notification may take, retries included, unless the entry
/// says otherwise (`timeout`, a squall extension).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One configured notification channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// The events it wants, in the code's spelling; empty means all.
    pub events: Vec<String>,
    pub timeout: Duration,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Http {
        url: String,
        headers: Vec<(String, String)>,
        verify_tls: bool,
        forward_event_payload: bool,
    },
    Slack {
        token: String,
        /// `#name`, normalised as upstream does.
        channel: String,
        api_url: String,
    },
}

impl Channel {
    /// Whether this channel wants `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

/// The channels of a settings document; every problem found, each naming
/// its entry.
pub fn channels(settings: &Value, env_api: Option<String>) -> Result<Vec<Channel>, Vec<String>> {
    let list = match settings.get("notifications") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(vec!["settings: `notifications` must be a list".into()]),
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match channel(entry, env_api.as_deref()) {
            Ok(c) => out.push(c),
            Err(p) => problems.push(format!("settings: notifications[{i}]: {p}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn channel(entry: &Value, env_api: Option<&str>) -> Result<Channel, String> {
    let Some(m) = entry.as_object() else {
        return Err("must be a mapping".into());
    };
    let kind = match m.get("type").and_then(Value::as_str) {
        Some("http") => http(m)?,
        Some("plugin") => plugin(m, env_api)?,
        Some(t) => return Err(format!("unknown type '{t}' (use http or plugin)")),
        None => return Err("`type` is required (http or plugin)".into()),
    };
    Ok(Channel {
        events: events(m)?,
        timeout: timeout(m)?,
        kind,
    })
}

fn http(m: &Map<String, Value>) -> Result<Kind, String> {
    let url = text(m, "url")?.ok_or("`url` is required for type http")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("`url` must be an http:// or https:// URL".into());
    }
    let headers = match m.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Ok((k.clone(), other.to_string())),
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("`headers` must be a mapping".into()),
    };
    Ok(Kind::Http {
        url,
        headers,
        verify_tls: flag(m, "verify_tls")?,
        forward_event_payload: flag(m, "forward_event_payload")?,
    })
}

fn plugin(m: &Map<String, Value>, env_api: Option<&str>) -> Result<Kind, String> {
    let module = text(m, "module")?.ok_or("`module` is required for type plugin")?;
    if module != SLACK_MODULE {
        return Err(format!(
            "unknown notification plugin module '{module}' (squall implements {SLACK_MODULE})"
        ));
    }
    if let Some(f) = text(m, "func")?.filter(|f| f != "notify") {
        return Err(format!("{SLACK_MODULE} has no function '{f}' (use notify)"));
    }
    let token = text(m, "token")?.ok_or("`token` is required for chaosslack.notification")?;
    let channel = text(m, "channel")?.ok_or("`channel` is required for chaosslack.notification")?;
    let api_url = text(m, "slack_api_url")?
        .or_else(|| env_api.map(str::to_owned))
        .unwrap_or_else(|| SLACK_API_URL.to_owned());
    Ok(Kind::Slack {
        token: token.trim().to_owned(),
        channel: format!("#{}", channel.trim_start_matches('#').trim()),
        api_url: api_url.trim_end_matches('/').to_owned(),
    })
}

/// `events`, with the `discover-*` spelling of upstream's docs and the
/// book mapped to the `discovery-*` the code emits.
fn events(m: &Map<String, Value>) -> Result<Vec<String>, String> {
    let list = match m.get("events") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(l)) => l,
        Some(_) => return Err("`events` must be a list of event names".into()),
    };
    list.iter()
        .map(|e| {
            let name = e.as_str().ok_or("`events` must be a list of event names")?;
            let name = match name.strip_prefix("discover-") {
                Some(rest) => format!("discovery-{rest}"),
                None => name.to_owned(),
            };
            if EVENTS.contains(&name.as_str()) {
                Ok(name)
            } else {
                Err(format!(
                    "unknown event '{}' (known: {})",
                    e.as_str().unwrap_or_default(),
                    EVENTS.join(", ")
                ))
            }
        })
        .collect()
}

fn timeout(m: &Map<String, Value>) -> Result<Duration, String> {
    match m.get("timeout") {
        None | Some(Value::Null) => Ok(DEFAULT_TIMEOUT),
        Some(v) => v
            .as_f64()
            .filter(|s| *s > 0.0 && *s <= 300.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| "`timeout` must be a number of seconds between 0 and 300".into()),
    }
}

fn text(m: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

/// A boolean that defaults to true, as both of upstream's do.
fn flag(m: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("`{key}` must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_books_slack_settings_are_read_unchanged() {
        let s = json!({"notifications": [{"type": "plugin", "module": "chaosslack.notification",
            "token": " xoxb-1 ", "channel": "tests", "events": ["run-failed", "discover-failed"]}]});
        let c = channels(&s, None).unwrap();
        assert_eq!(c[0].events, ["run-failed", "discovery-failed"]);
        assert_eq!(
            c[0].kind,
            Kind::Slack {
                token: "xoxb-1".into(),
                channel: "#tests".into(),
                api_url: SLACK_API_URL.into()
            }
        );
        assert!(c[0].wants("run-failed") && !c[0].wants("run-completed"));
    }

    #[test]
    fn the_slack_api_can_be_pointed_elsewhere() {
        let entry = json!({"type": "plugin", "module": "chaosslack.notification", "token": "t",
            "channel": "#c"});
        let s = json!({"notifications": [entry]});
        let api = |c: &[Channel]| match &c[0].kind {
            Kind::Slack { api_url, .. } => api_url.clone(),
            Kind::Http { .. } => unreachable!(),
        };
        assert_eq!(
            api(&channels(&s, Some("http://127.0.0.1:9/api/".into())).unwrap()),
            "http://127.0.0.1:9/api"
        );
        let mut e2 = entry.clone();
        e2["slack_api_url"] = json!("http://x/api");
        let s2 = json!({"notifications": [e2]});
        assert_eq!(
            api(&channels(&s2, Some("http://y".into())).unwrap()),
            "http://x/api"
        );
    }

    #[test]
    fn http_defaults_follow_upstream() {
        let s = json!({"notifications": [{"type": "http", "url": "http://h/x",
            "headers": {"Authorization": "Bearer z"}}]});
        let c = channels(&s, None).unwrap();
        assert!(c[0].events.is_empty() && c[0].wants("run-started"));
        assert_eq!(c[0].timeout, DEFAULT_TIMEOUT);
        let Kind::Http {
            headers,
            verify_tls,
            forward_event_payload,
            ..
        } = &c[0].kind
        else {
            unreachable!()
        };
        assert_eq!(
            headers,
            &[("Authorization".to_owned(), "Bearer z".to_owned())]
        );
        assert!(*verify_tls && *forward_event_payload);
    }

    #[test]
    fn every_mistake_is_named() {
        let s = json!({"notifications": [
            {"type": "http"},
            {"type": "plugin"},
            {"type": "plugin", "module": "chaosmail.notify"},
            {"type": "http", "url": "http://h", "events": ["run-finished"]},
            {"type": "smtp"},
            {"type": "http", "url": "http://h", "timeout": -1},
        ]});
        let p = channels(&s, None).unwrap_err();
        assert_eq!(p.len(), 6);
        assert!(p[0].contains("notifications[0]: `url` is required"));
        assert!(p[1].contains("`module` is required"));
        assert!(p[2].contains("unknown notification plugin module 'chaosmail.notify'"));
        assert!(p[3].contains("unknown event 'run-finished'"));
        assert!(p[4].contains("unknown type 'smtp'"));
        assert!(p[5].contains("`timeout`"));
        assert!(channels(&json!({"notifications": {}}), None).is_err());
        assert_eq!(channels(&json!({}), None).unwrap(), vec![]);
    }
}
