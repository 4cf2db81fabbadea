//! Helper pods whose activity was cancelled are deleted, not left to their
//! deadline. The engine cancels an activity by dropping its future (a
//! Ctrl-C stops the method, a second one stops the rollbacks), so code
//! waiting on a helper pod never gets to delete it. A [`PodGuard`] held
//! while the pod is in flight does that on drop: it spawns the DELETE
//! (graceful, so a flush agent restores the rules on SIGTERM) and keeps the
//! task, and [`finish`] — awaited by the binary before it exits — lets those
//! requests complete, since a run's runtime would otherwise drop them
//! unsent. A guard that is [`PodGuard::disarm`]ed (the pod is meant to keep
//! running, or was deleted already) does nothing.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use tokio::task::JoinHandle;

/// Deletions started by dropped guards, not yet awaited.
static IN_FLIGHT: Mutex<Vec<JoinHandle<Option<String>>>> = Mutex::new(Vec::new());

/// Deletes its pod when dropped armed.
#[must_use = "dropping the guard at once deletes the pod"]
pub struct PodGuard {
    armed: Option<(kube::Client, String, String)>,
}

impl PodGuard {
    /// Guard pod `namespace/name`.
    pub fn new(client: &kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            armed: Some((client.clone(), namespace.to_owned(), name.to_owned())),
        }
    }

    /// The pod is meant to outlive the activity (or is gone already).
    pub fn disarm(mut self) {
        self.armed = None;
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let Some((client, namespace, name)) = self.armed.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let task = runtime.spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            let params = DeleteParams::default();
            let delete = api.delete(&name, &params);
            // A pod already gone (an undo on an error path deleted it) is
            // nothing to report.
            match tokio::time::timeout(Duration::from_secs(10), delete).await {
                Ok(Ok(_)) => Some(format!("deleted helper pod {namespace}/{name}")),
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => None,
                Ok(Err(e)) => Some(format!("cannot delete helper pod {namespace}/{name}: {e}")),
                Err(_) => Some(format!("deleting helper pod {namespace}/{name} timed out")),
            }
        });
        if let Ok(mut tasks) = IN_FLIGHT.lock() {
            tasks.push(task);
        }
    }
}

/// Waits (at most `limit` in all) for the deletions of cancelled helper
/// pods to be sent; one line per pod saying what happened.
pub async fn finish(limit: Duration) -> Vec<String> {
    let tasks: Vec<JoinHandle<Option<String>>> = IN_FLIGHT
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    for task in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(line)) => lines.extend(line),
            Ok(Err(e)) => lines.push(format!("deleting a helper pod failed: {e}")),
            Err(_) => lines.push("gave up waiting for a helper pod deletion".into()),
        }
    }
    lines
}
