//! Watch: a stream of newline-delimited `{"type","object"}` JSON events.
//!
//! A watch starts from `resourceVersion`: unset or "0" sends the current
//! objects as ADDED first; a specific version replays retained history after
//! it, or answers a single ERROR event with a 410 `Expired` Status when that
//! history is gone (clients then re-list, as on a real apiserver). Objects that
//! stop matching the selectors produce DELETED, ones that start matching ADDED.
//! The stream ends after `timeoutSeconds` (tokio time) or when the client lags.
//!
//! A client asking for a Table (`kubectl get -w`) gets each event's object
//! as a one-row `meta.k8s.io` Table, as the apiserver's watch `Fixup` does:
//! the first carries the `columnDefinitions`, the later ones leave them null
//! (kubectl reuses the last columns it printed). Status objects (the 410)
//! stay Status objects.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};

use super::http::{Body, write_versioned};
use super::rest::Ctx;
use super::table::Renderer;
use crate::error::{ApiError, ApiResult};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, StoreInner, str_at};

/// Default watch duration when the client sends no timeout (apiserver: 30–60 min).
/// The longest watch a client may ask for (a day).
const MAX_TIMEOUT_SECS: u64 = 86_400;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    group: String,
    resource: String,
    api_version: String,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Set when the client asked for Tables.
    table: Option<Renderer>,
    /// Whether a Table with `columnDefinitions` has been sent.
    headers_sent: Cell<bool>,
}

impl Filter {
    fn matches(&self, o: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| str_at(o, "/metadata/namespace") == ns)
            && self.labels.matches(o)
            && self.fields.matches(o)
    }

    /// The line for an event, or `None` if the watcher should not see it.
    fn line(&self, ev: &Event) -> Option<Bytes> {
        if ev.group != self.group || ev.resource != self.resource {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.matches(o));
        let kind = match ev.kind {
            EventType::Modified if now && !before => EventType::Added,
            EventType::Modified if !now && before => EventType::Deleted,
            k if now => k,
            _ => return None,
        };
        Some(self.encode(kind.as_str(), &ev.object))
    }

    /// `{"type":…,"object":…}` and a newline, serializing the shared object
    /// in place (no copy unless its apiVersion must change), or its Table.
    fn encode(&self, kind: &str, object: &Value) -> Bytes {
        let mut line = Vec::with_capacity(1024);
        line.extend_from_slice(b"{\"type\":");
        let _ = serde_json::to_writer(&mut line, kind);
        line.extend_from_slice(b",\"object\":");
        match &self.table {
            // A bookmark carries no object to print: an empty Table at its
            // resourceVersion, without using up the column definitions.
            Some(r) if kind == "BOOKMARK" => {
                let meta = object.get("metadata").cloned().unwrap_or(json!({}));
                let _ = serde_json::to_writer(&mut line, &r.table(meta, std::iter::empty(), false));
            }
            Some(r) => {
                let headers = !self.headers_sent.replace(true);
                let _ = serde_json::to_writer(&mut line, &r.event_table(object, headers));
            }
            None => write_versioned(&mut line, object, &self.api_version),
        }
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }
}

struct State {
    rx: broadcast::Receiver<Arc<Event>>,
    queued: VecDeque<Bytes>,
    filter: Filter,
    deadline: tokio::time::Instant,
    done: bool,
}

pub fn watch(ctx: &Ctx<'_>, ns: Option<&str>) -> ApiResult<Response<Body>> {
    let (labels, fields) = ctx.selectors()?;
    start(ctx, ns, labels, fields)
}

/// Watch of a single object (`/watch/.../{name}`): a field selector on the name.
pub fn watch_one(ctx: &Ctx<'_>, name: &str) -> ApiResult<Response<Body>> {
    let (labels, _) = ctx.selectors()?;
    let fields = FieldSelector::parse(&format!("metadata.name={name}"))?;
    let ns = (!ctx.ns.is_empty()).then_some(ctx.ns);
    start(ctx, ns, labels, fields)
}

fn start(
    ctx: &Ctx<'_>,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
) -> ApiResult<Response<Body>> {
    let filter = Filter {
        group: ctx.def.group.clone(),
        resource: ctx.def.plural.clone(),
        api_version: ctx.def.api_version(ctx.version),
        ns: ns.map(ToString::to_string),
        labels,
        fields,
        table: ctx.table.map(|v| Renderer::new(ctx, v)).transpose()?,
        headers_sent: Cell::new(false),
    };
    let rv = ctx.query.get("resourceVersion").unwrap_or_default();
    let since = match rv {
        "" | "0" => None,
        v => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
    };
    let timeout = ctx
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        // Clamped, so a huge value cannot overflow the deadline.
        .map_or(DEFAULT_TIMEOUT, |s| {
            Duration::from_secs(s.min(MAX_TIMEOUT_SECS))
        });
    let bookmark_kind = ctx
        .query
        .flag("sendInitialEvents")
        .then_some(ctx.def.kind.as_str());
    // Take the objects or events under the lock; encode them after releasing it.
    let (rx, initial) = initial_events(&ctx.shared.store.lock(), &filter, since);
    let (queued, done) = encode_initial(&filter, initial, bookmark_kind);
    let state = State {
        rx,
        queued,
        filter,
        deadline: tokio::time::Instant::now() + timeout,
        done,
    };
    Ok(stream_response(state))
}

/// What a watch starts with.
enum Initial {
    /// No version: the current matching objects, at this resourceVersion.
    Objects(Vec<Arc<Value>>, u64),
    /// A version: retained history after it.
    Replay(Vec<Arc<Event>>),
    /// A version older than the history: the 410 Status.
    Expired(Value),
}

/// Subscribes and takes the first events: current objects (no version),
/// replayed history (a version), or a 410 Status that ends the stream.
fn initial_events(
    store: &StoreInner,
    filter: &Filter,
    since: Option<u64>,
) -> (broadcast::Receiver<Arc<Event>>, Initial) {
    let Some(since) = since else {
        let (rx, _) = store.subscribe_since(store.rv());
        let objects = store
            .iter(&filter.group, &filter.resource, filter.ns.as_deref(), None)
            .filter(|o| filter.matches(o))
            .cloned()
            .collect();
        return (rx, Initial::Objects(objects, store.rv()));
    };
    let (rx, replay) = store.subscribe_since(since);
    if let Some(events) = replay {
        return (rx, Initial::Replay(events));
    }
    let e = ApiError::expired(format!(
        "too old resource version: {since} ({})",
        store.rv()
    ));
    (rx, Initial::Expired(e.to_status()))
}

/// Encodes the first events (outside the store lock); `true` ends the stream.
fn encode_initial(
    filter: &Filter,
    initial: Initial,
    bookmark_kind: Option<&str>,
) -> (VecDeque<Bytes>, bool) {
    let mut queued = VecDeque::new();
    match initial {
        Initial::Objects(objects, rv) => {
            queued.extend(objects.iter().map(|o| filter.encode("ADDED", o)));
            if let Some(kind) = bookmark_kind {
                let bookmark = json!({ "kind": kind, "metadata": { "resourceVersion": rv.to_string(), "annotations": { "k8s.io/initial-events-end": "true" } } });
                queued.push_back(filter.encode("BOOKMARK", &bookmark));
            }
            (queued, false)
        }
        Initial::Replay(events) => {
            queued.extend(events.iter().filter_map(|e| filter.line(e)));
            (queued, false)
        }
        Initial::Expired(status) => {
            let mut line = serde_json::to_vec(&json!({ "type": "ERROR", "object": status }))
                .unwrap_or_default();
            line.push(b'\n');
            queued.push_back(Bytes::from(line));
            (queued, true)
        }
    }
}

fn stream_response(state: State) -> Response<Body> {
    let stream = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.queued.pop_front() {
                return Some((b, st));
            }
            if st.done {
                return None;
            }
            tokio::select! {
                r = st.rx.recv() => match r {
                    Ok(ev) => st.queued.extend(st.filter.line(&ev)),
                    // Lagged or closed: end the stream; the client re-watches.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => st.done = true,
                },
                () = tokio::time::sleep_until(st.deadline) => st.done = true,
            }
        }
    });
    let body = StreamBody::new(stream.map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))))
        .boxed_unsync();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
