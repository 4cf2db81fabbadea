//! Evicting one node's pods the way `kubectl drain` does: every eviction
//! starts at once, a PodDisruptionBudget refusal (429) is retried every 5 s
//! until the node's deadline, a pod already gone (404) counts as evicted,
//! and then the evicted pods are polled every second until they are gone
//! (404, or a new pod under the same name with another uid).
//!
//! The Eviction is posted by hand (policy/v1 body on the `eviction`
//! subresource) rather than through `Api::evict`, whose body uses the wrong
//! key for delete options, and the answer is read raw so a failure message
//! carries the API server's Status body verbatim, as chaosk8s reports it.
//! Our client has no retry layer, so a 429 reaches us at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use squall_activity::RunLog;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long kubectl waits before retrying a refused eviction.
pub const RETRY: Duration = Duration::from_secs(5);
/// How often kubectl checks whether evicted pods are gone.
const POLL: Duration = Duration::from_secs(1);

/// A pod to evict, with the uid it had when the drain listed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Victim {
    pub ns: String,
    pub name: String,
    pub uid: String,
}

impl Victim {
    pub fn of(pod: &Pod) -> Self {
        let m = &pod.metadata;
        Self {
            ns: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
        }
    }

    pub fn path(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }
}

/// What the API server said to one eviction.
enum Answer {
    /// Accepted (2xx), or the pod is already gone (404).
    Done,
    /// 429: a disruption budget (or flow control) refuses it for now.
    Refused(String),
    /// Anything else: the message to fail with.
    Failed(String),
}

fn failed_to_evict(v: &Victim, body: &str) -> String {
    format!("Failed to evict pod {}: {body}", v.name)
}

async fn post_eviction(client: &kube::Client, v: &Victim) -> Answer {
    // The uid precondition: while refusals are retried, a pod deleted and
    // recreated under the same name (a StatefulSet pod) is elsewhere by
    // now, since this node is cordoned, and must not be evicted.
    let body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": v.name, "namespace": v.ns},
        "deleteOptions": {"preconditions": {"uid": v.uid}},
    });
    let url = format!("/api/v1/namespaces/{}/pods", v.ns);
    let req = kube::core::Request::new(url).create_subresource(
        "eviction",
        &v.name,
        &PostParams::default(),
        body.to_string().into_bytes(),
    );
    let req = match req {
        Ok(r) => r.map(kube::client::Body::from),
        Err(e) => return Answer::Failed(failed_to_evict(v, &e.to_string())),
    };
    let resp = match client.send(req).await {
        Ok(r) => r,
        Err(e) => return Answer::Failed(failed_to_evict(v, &e.to_string())),
    };
    let status = resp.status();
    let text = match resp.into_body().collect_bytes().await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => e.to_string(),
    };
    match status.as_u16() {
        // 404: gone already; 409: the uid precondition failed, so the pod
        // we listed is gone and a replacement holds the name.
        200..=299 | 404 | 409 => Answer::Done,
        429 => Answer::Refused(text),
        _ => Answer::Failed(failed_to_evict(v, &text)),
    }
}

/// The refusal as kubectl prints it: the Status message and its causes.
fn refusal_reason(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = v["message"].as_str().unwrap_or(body).to_owned();
    let causes: Vec<&str> = v["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["message"].as_str())
        .collect();
    if causes.is_empty() {
        message
    } else {
        format!("{message} ({})", causes.join("; "))
    }
}

/// One pod: posts the eviction until it is accepted, fails for good, or
/// the deadline passes while it is still refused.
async fn evict_until(
    client: &kube::Client,
    log: &dyn RunLog,
    v: &Victim,
    deadline: Instant,
) -> Result<(), String> {
    let mut refusals = 0u32;
    loop {
        let body = match post_eviction(client, v).await {
            Answer::Done => return Ok(()),
            Answer::Failed(msg) => return Err(msg),
            Answer::Refused(body) => body,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(failed_to_evict(v, &body));
        }
        let line = format!(
            "error when evicting pods/\"{}\" -n \"{}\" (will retry after 5s): {}",
            v.name,
            v.ns,
            refusal_reason(&body)
        );
        // The first refusal is news; the repeats every 5 s are noise.
        if refusals == 0 {
            log.warning(&line);
        } else {
            log.debug(&line);
        }
        refusals += 1;
        tokio::time::sleep(RETRY.min(deadline - now)).await;
    }
}

/// Whether the pod listed as `v` still exists (a recreated pod with the
/// same name does not count).
async fn still_there(api: &Api<Pod>, v: &Victim) -> kube::Result<bool> {
    Ok(match api.get_opt(&v.name).await? {
        Some(p) => p.metadata.uid.as_deref() == Some(v.uid.as_str()),
        None => false,
    })
}

/// Polls until the evicted pod is gone: `Ok` when it is, `Err` with the
/// last read error (if any) when the deadline came first. A read error
/// counts as "still there" but is kept, so a drain stuck on, say, a 403 on
/// `get pods` says so instead of only timing out.
async fn wait_gone(client: &kube::Client, v: &Victim, deadline: Instant) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &v.ns);
    let mut last_error = String::new();
    loop {
        match still_there(&api, v).await {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => last_error = format!(" (last read failed: {e})"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(last_error);
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// How one pod's eviction ended.
enum Outcome {
    Gone,
    /// Evicted, but still there at the deadline.
    Stuck(String),
    Failed(String),
}

/// One pod, start to end: evict, then wait until it is gone, counting it
/// in `terminating` meanwhile (for the progress lines).
async fn evict_one(
    client: kube::Client,
    log: Arc<dyn RunLog>,
    v: Victim,
    deadline: Instant,
    terminating: Arc<AtomicUsize>,
) -> Outcome {
    if let Err(msg) = evict_until(&client, log.as_ref(), &v, deadline).await {
        return Outcome::Failed(msg);
    }
    terminating.fetch_add(1, Ordering::SeqCst);
    let gone = wait_gone(&client, &v, deadline).await;
    terminating.fetch_sub(1, Ordering::SeqCst);
    match gone {
        Ok(()) => {
            log.debug(&format!("pod/{} evicted", v.name));
            Outcome::Gone
        }
        Err(why) => Outcome::Stuck(format!("{}{why}", v.name)),
    }
}

/// Evicts `victims` concurrently and waits until they are gone, all
/// within `timeout` from now, saying every second how many evicted pods
/// are still terminating when that number changes. The error is chaosk8s's
/// message: the eviction failures (with the server's body), or the pods
/// that did not terminate in time.
pub async fn evict_all(
    client: &kube::Client,
    log: &Arc<dyn RunLog>,
    victims: Vec<Victim>,
    timeout: Duration,
) -> Result<(), String> {
    // A huge `timeout` from the experiment must not overflow the clock.
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
    let terminating = Arc::new(AtomicUsize::new(0));
    // A JoinSet aborts its tasks when dropped, so an interrupted run stops
    // evicting at once.
    let mut tasks = JoinSet::new();
    for v in victims {
        log.info(&format!("evicting pod {}", v.path()));
        let args = (client.clone(), log.clone(), terminating.clone());
        tasks.spawn(evict_one(args.0, args.1, v, deadline, args.2));
    }
    let (mut failures, mut stuck) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(POLL);
    let mut shown = 0;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Outcome::Gone)) => {}
                Some(Ok(Outcome::Stuck(name))) => stuck.push(name),
                Some(Ok(Outcome::Failed(msg))) => failures.push(msg),
                Some(Err(e)) => failures.push(format!("an eviction task failed: {e}")),
            },
            _ = tick.tick() => {
                let n = terminating.load(Ordering::SeqCst);
                if n != shown && n > 0 {
                    log.info(&format!("waiting for {n} pods to terminate"));
                }
                shown = n;
            }
        }
    }
    outcome(failures, stuck, timeout)
}

fn outcome(
    mut failures: Vec<String>,
    mut stuck: Vec<String>,
    timeout: Duration,
) -> Result<(), String> {
    if !failures.is_empty() {
        failures.sort();
        return Err(failures.join("\n"));
    }
    if !stuck.is_empty() {
        stuck.sort();
        return Err(format!(
            "Draining nodes did not completed within {}s. Remaining pods are:\n{}",
            timeout.as_secs(),
            stuck.join("\n")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_like_kubectl() {
        let body = r#"{"kind":"Status","message":"Cannot evict pod as it would violate the pod's disruption budget.","details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget gw needs 1 healthy pods and has 1 currently"}]},"code":429}"#;
        assert_eq!(
            refusal_reason(body),
            "Cannot evict pod as it would violate the pod's disruption budget. \
             (The disruption budget gw needs 1 healthy pods and has 1 currently)"
        );
        assert_eq!(refusal_reason("too many requests"), "too many requests");
    }
}
