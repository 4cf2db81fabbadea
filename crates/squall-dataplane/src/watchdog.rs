//! The TTL watchdog behind `squall agent … --ttl SECS`: if the experiment
//! (or the agent's controller) does not cancel in time, the node restores
//! its own rules at the deadline. This is the last line of defence when the
//! controlling process dies, so it depends on nothing but the snapshot.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::restore::{RestoreReport, restore_snapshot};
use crate::runner::CommandRunner;
use crate::snapshot::{IptablesConfig, Snapshot};

/// How a watchdog ended.
#[derive(Debug)]
pub enum WatchdogOutcome {
    /// Cancelled before the deadline; nothing was restored.
    Cancelled,
    /// The deadline passed and the snapshot was restored.
    Restored(RestoreReport),
    /// The deadline passed but the restore failed.
    Failed(crate::error::DataplaneError),
}

/// Wait until `deadline`, then restore `snapshot` — unless `cancel`
/// completes first. The core of [`TtlWatchdog`], usable directly with any
/// cancellation future (e.g. a signal handler).
pub async fn restore_at_deadline<R, C>(
    runner: &R,
    cfg: &IptablesConfig,
    snapshot: &Snapshot,
    deadline: Instant,
    cancel: C,
) -> WatchdogOutcome
where
    R: CommandRunner + ?Sized,
    C: Future<Output = ()>,
{
    tokio::select! {
        // Prefer cancellation when both are ready at once: a caller that
        // cancels exactly at the deadline has already restored.
        biased;
        () = cancel => return WatchdogOutcome::Cancelled,
        () = tokio::time::sleep_until(deadline) => {}
    }
    tracing::warn!(taken_at = %snapshot.taken_at, "TTL expired; restoring data-plane snapshot");
    match restore_snapshot(runner, cfg, snapshot).await {
        Ok(report) => WatchdogOutcome::Restored(report),
        Err(err) => WatchdogOutcome::Failed(err),
    }
}

/// A spawned watchdog task.
#[derive(Debug)]
pub struct TtlWatchdog {
    cancel: oneshot::Sender<()>,
    task: JoinHandle<WatchdogOutcome>,
}

impl TtlWatchdog {
    /// Spawn a watchdog on the current tokio runtime.
    pub fn spawn<R>(
        runner: Arc<R>,
        cfg: IptablesConfig,
        snapshot: Snapshot,
        deadline: Instant,
    ) -> Self
    where
        R: CommandRunner + ?Sized + 'static,
    {
        let (cancel, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // A dropped sender (the handle dropped without cancel) must not
            // count as cancellation: the watchdog exists for that case.
            let cancelled = async {
                if rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            restore_at_deadline(&*runner, &cfg, &snapshot, deadline, cancelled).await
        });
        Self { cancel, task }
    }

    /// Cancel and wait for the task. If the restore had already begun, this
    /// waits for it and reports it.
    pub async fn cancel(self) -> WatchdogOutcome {
        let _ = self.cancel.send(());
        join(self.task).await
    }

    /// Wait for the watchdog to fire (or fail) without cancelling it.
    pub async fn wait(self) -> WatchdogOutcome {
        let Self { cancel, task } = self;
        // Keep the sender alive so waiting is not mistaken for cancelling.
        let outcome = join(task).await;
        drop(cancel);
        outcome
    }
}

async fn join(task: JoinHandle<WatchdogOutcome>) -> WatchdogOutcome {
    task.await.unwrap_or_else(|e| {
        WatchdogOutcome::Failed(crate::error::DataplaneError::UnexpectedOutput {
            program: "ttl watchdog".into(),
            detail: e.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runner::FakeRunner;
    use crate::snapshot::take_snapshot;

    fn cfg() -> IptablesConfig {
        IptablesConfig {
            tables: vec!["nat".into()],
            lock_path: None,
            with_nft: false,
            ..IptablesConfig::default()
        }
    }

    async fn setup() -> (Arc<FakeRunner>, Snapshot) {
        let f = Arc::new(FakeRunner::new());
        f.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)")
            .on_ok(
                &["iptables-save", "-t", "nat"],
                "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n",
            );
        let snap = take_snapshot(&*f, &cfg()).await.expect("snap");
        (f, snap)
    }

    fn restores(f: &FakeRunner) -> usize {
        f.calls()
            .iter()
            .filter(|c| c.program == "iptables-restore")
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_deadline_and_not_before() {
        let (f, snap) = setup().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let dog = TtlWatchdog::spawn(f.clone(), cfg(), snap, deadline);
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(restores(&f), 0, "must not restore before the TTL");
        let outcome = dog.wait().await;
        assert!(
            matches!(outcome, WatchdogOutcome::Restored(_)),
            "{outcome:?}"
        );
        assert!(Instant::now() >= deadline);
        assert_eq!(restores(&f), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_before_deadline_restores_nothing() {
        let (f, snap) = setup().await;
        let dog = TtlWatchdog::spawn(
            f.clone(),
            cfg(),
            snap,
            Instant::now() + Duration::from_secs(30),
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(matches!(dog.cancel().await, WatchdogOutcome::Cancelled));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(restores(&f), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_restore_is_reported() {
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.7 (legacy)");
        let (_, snap) = setup().await; // snapshot says nf_tables
        let outcome =
            restore_at_deadline(&f, &cfg(), &snap, Instant::now(), std::future::pending()).await;
        assert!(matches!(outcome, WatchdogOutcome::Failed(_)), "{outcome:?}");
    }
}
