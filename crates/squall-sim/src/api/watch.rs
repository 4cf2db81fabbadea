//! Watch: a stream of newline-delimited `{"type","object"}` JSON events.
//!
//! A watch starts from `resourceVersion`: unset or "0" sends the current
//! objects as ADDED first; a specific version replays retained history after
//! it, or answers a single ERROR event with a 410 `Expired` Status when that
//! history is gone (clients then re-list, as on a real apiserver). Objects that
//! stop matching the selectors produce DELETED, ones that start matching ADDED.
//! The stream ends after `timeoutSeconds` (tokio time) or when the client lags.

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

use super::http::Body;
use super::rest::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, StoreInner, str_at};

/// Default watch duration when the client sends no timeout (apiserver: 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    group: String,
    resource: String,
    api_version: String,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
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
        Some(self.encode(kind.as_str(), ev.object.clone()))
    }

    fn encode(&self, kind: &str, mut object: Value) -> Bytes {
        if let Some(m) = object.as_object_mut() {
            m.insert("apiVersion".into(), json!(self.api_version));
        }
        let mut line =
            serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
        line.push(b'\n');
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
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let store = ctx.shared.store.lock();
    let bookmark_kind = ctx
        .query
        .flag("sendInitialEvents")
        .then_some(ctx.def.kind.as_str());
    let (rx, queued, done) = initial_events(&store, &filter, since, bookmark_kind);
    drop(store);
    let state = State {
        rx,
        queued,
        filter,
        deadline: tokio::time::Instant::now() + timeout,
        done,
    };
    Ok(stream_response(state))
}

/// Subscribes and computes the first events: current objects (no version),
/// replayed history (a version), or a 410 ERROR that ends the stream.
fn initial_events(
    store: &StoreInner,
    filter: &Filter,
    since: Option<u64>,
    bookmark_kind: Option<&str>,
) -> (broadcast::Receiver<Arc<Event>>, VecDeque<Bytes>, bool) {
    let mut queued = VecDeque::new();
    let Some(since) = since else {
        let (rx, _) = store.subscribe_since(store.rv());
        for o in store
            .list(&filter.group, &filter.resource, filter.ns.as_deref())
            .into_iter()
            .filter(|o| filter.matches(o))
        {
            queued.push_back(filter.encode("ADDED", o.clone()));
        }
        if let Some(kind) = bookmark_kind {
            let bookmark = json!({ "kind": kind, "metadata": { "resourceVersion": store.rv().to_string(), "annotations": { "k8s.io/initial-events-end": "true" } } });
            queued.push_back(filter.encode("BOOKMARK", bookmark));
        }
        return (rx, queued, false);
    };
    let (rx, replay) = store.subscribe_since(since);
    if let Some(events) = replay {
        queued.extend(events.iter().filter_map(|e| filter.line(e)));
        return (rx, queued, false);
    }
    let e = ApiError::expired(format!(
        "too old resource version: {since} ({})",
        store.rv()
    ));
    let mut line = serde_json::to_vec(&json!({ "type": "ERROR", "object": e.to_status() }))
        .unwrap_or_default();
    line.push(b'\n');
    queued.push_back(Bytes::from(line));
    (rx, queued, true)
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
