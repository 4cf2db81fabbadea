//! The `chaosslack.notification` plugin, natively: the same
//! `chat.postMessage` call and message as upstream (a main attachment with
//! the phase, the event and the experiment's title; the steady state, the
//! failed activities and the failed rollbacks as further attachments), and
//! Slack's `ok` field checked, since the Web API reports errors with HTTP
//! 200.

use serde_json::{Map, Value, json};

const COLOR: &str = "#439FE0";
const ICON: &str = "https://avatars1.githubusercontent.com/u/32068152?s=16&v=4";

/// The `chat.postMessage` body for one event, as upstream renders it.
pub fn message(channel: &str, event: &Value) -> Value {
    let ts = event.get("ts").cloned().unwrap_or(Value::Null);
    let mut main = attachment(None, COLOR, &ts);
    let mut steady = attachment(Some("Steady State"), COLOR, &ts);
    let mut activities = attachment(Some("Failed Activities"), "danger", &ts);
    let mut rollbacks = attachment(Some("Failed Rollbacks"), "danger", &ts);
    let mut fields = vec![
        field(
            "Source",
            event.get("phase").cloned().unwrap_or(Value::Null),
            true,
        ),
        field(
            "Event",
            event.get("name").cloned().unwrap_or(Value::Null),
            true,
        ),
    ];
    let (mut s, mut a, mut r) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(p) = event.get("payload").and_then(Value::as_object) {
        if let Some(title) = lookup(p, "title") {
            fields.push(field("Experiment", title.clone(), false));
        }
        let hypo = lookup(p, "steady-state-hypothesis").filter(|h| is_truthy(h));
        let title = hypo
            .and_then(|h| h.get("title"))
            .cloned()
            .unwrap_or_else(|| json!("N/A"));
        s.push(field("Hypothesis", title, false));
        steady_state(p, &mut s, &mut steady);
        failed(p.get("run"), &mut a);
        failed(p.get("rollbacks"), &mut r);
    }
    main["fields"] = json!(fields);
    let mut attachments = vec![];
    let plain = |m: &mut Value| {
        for k in ["ts", "footer", "footer_icon"] {
            m.as_object_mut().map(|o| o.remove(k));
        }
    };
    if !s.is_empty() {
        plain(&mut main);
        steady["fields"] = json!(s);
    }
    attachments.push(main);
    if !a.is_empty() {
        plain(&mut steady);
        activities["fields"] = json!(a);
    }
    if !r.is_empty() {
        plain(&mut steady);
        plain(&mut activities);
        rollbacks["fields"] = json!(r);
    }
    for (fields, att) in [(&s, steady), (&a, activities), (&r, rollbacks)] {
        if !fields.is_empty() {
            attachments.push(att);
        }
    }
    json!({"channel": channel, "text": "New Chaos Experiment Event", "attachments": attachments})
}

fn attachment(text: Option<&str>, color: &str, ts: &Value) -> Value {
    let mut a = json!({"fields": [], "color": color, "ts": ts, "footer_icon": ICON,
        "footer": "Chaos Toolkit"});
    if let Some(t) = text {
        a["text"] = json!(t);
    }
    a
}

fn field(title: &str, value: Value, short: bool) -> Value {
    json!({"title": title, "value": value, "short": short})
}

/// `key` in the payload, else in its `experiment` (a journal).
fn lookup<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    p.get(key)
        .filter(|v| is_truthy(v))
        .or_else(|| p.get("experiment")?.get(key).filter(|v| is_truthy(v)))
}

fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

fn steady_state(p: &Map<String, Value>, fields: &mut Vec<Value>, att: &mut Value) {
    let Some(states) = p.get("steady_states") else {
        return;
    };
    for (key, title, color) in [
        ("before", "Before", "warning"),
        ("after", "After", "danger"),
    ] {
        let Some(state) = states.get(key).filter(|v| is_truthy(v)) else {
            continue;
        };
        let met = state.get("steady_state_met").and_then(Value::as_bool) == Some(true);
        fields.push(field(
            title,
            json!(if met { "ok" } else { "not met" }),
            false,
        ));
        if !met {
            att["color"] = json!(color);
            let last = state
                .get("probes")
                .and_then(Value::as_array)
                .and_then(|p| p.last());
            let msg = last
                .map(output_or_exception)
                .unwrap_or_else(|| "None".into());
            fields.push(field(
                "Tolerance Output",
                json!(format!("```{msg}```")),
                false,
            ));
        }
    }
}

fn failed(items: Option<&Value>, fields: &mut Vec<Value>) {
    let Some(items) = items.and_then(Value::as_array) else {
        return;
    };
    for item in items.iter().filter(|i| i["status"] == "failed") {
        let name = item["activity"]["name"].clone();
        let msg = output_or_exception(item);
        fields.push(field_value(name, format!("```{msg}```")));
    }
}

fn field_value(title: Value, value: String) -> Value {
    json!({"title": title, "value": value, "short": false})
}

/// The item's output, else the last line of its exception, as upstream
/// prints them.
fn output_or_exception(item: &Value) -> String {
    match item.get("output").filter(|o| is_truthy(o)) {
        Some(Value::String(s)) => s.clone(),
        Some(o) => o.to_string(),
        None => item
            .get("exception")
            .and_then(Value::as_array)
            .and_then(|e| e.last())
            .and_then(Value::as_str)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "None".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deviated_journal_renders_upstreams_attachments() {
        let event = json!({"name": "run-deviated", "phase": "run", "ts": 1.5, "payload": {
            "experiment": {"title": "T", "steady-state-hypothesis": {"title": "H"}},
            "steady_states": {
                "before": {"steady_state_met": true, "probes": []},
                "after": {"steady_state_met": false, "probes": [{"output": 500}]}},
            "run": [{"status": "failed", "activity": {"name": "a"},
                     "exception": ["Traceback", "boom\n"]}],
            "rollbacks": [{"status": "failed", "activity": {"name": "r"}, "output": "no"}]}});
        let m = message("#c", &event);
        assert_eq!(m["channel"], "#c");
        assert_eq!(m["text"], "New Chaos Experiment Event");
        let a = m["attachments"].as_array().unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a[0]["fields"][1]["value"], "run-deviated");
        assert_eq!(a[0]["fields"][2]["value"], "T");
        assert!(a[0].get("footer").is_none());
        assert_eq!(a[1]["text"], "Steady State");
        assert_eq!(a[1]["color"], "danger");
        assert_eq!(a[1]["fields"][0]["value"], "H");
        assert_eq!(a[1]["fields"][2]["value"], "not met");
        assert_eq!(a[1]["fields"][3]["value"], "```500```");
        assert_eq!(a[2]["fields"][0]["value"], "```boom```");
        assert!(a[2].get("footer").is_none());
        assert_eq!(a[3]["text"], "Failed Rollbacks");
        assert_eq!(a[3]["fields"][0]["value"], "```no```");
        assert_eq!(a[3]["footer"], "Chaos Toolkit");
    }

    #[test]
    fn an_event_without_payload_is_one_attachment() {
        let m = message(
            "#c",
            &json!({"name": "validate-started", "phase": "validate", "ts": 1}),
        );
        let a = m["attachments"].as_array().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["footer"], "Chaos Toolkit");
        assert_eq!(a[0]["fields"][0]["value"], "validate");
    }
}
