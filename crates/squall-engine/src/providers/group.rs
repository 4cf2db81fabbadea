//! Process groups: every process activity runs in a group of its own, so
//! squall can end the whole tree it started (a `sh -c "… &"` leaves
//! grandchildren the direct child's death does not end). A group is
//! terminated (SIGTERM, then SIGKILL after [`GRACE`]) when its activity
//! times out or is interrupted; a group whose leader exited but whose
//! members live on is remembered and ended when squall exits
//! ([`terminate_all`]), so nothing squall started outlives it.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

/// How long a group has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// Groups that may still have members.
static LIVE: LazyLock<Mutex<Vec<i32>>> = LazyLock::new(Mutex::default);

fn live() -> std::sync::MutexGuard<'static, Vec<i32>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn signal(pgid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = kill_process_group(pid, sig);
    }
}

fn alive(pgid: i32) -> bool {
    Pid::from_raw(pgid).is_some_and(|pid| test_kill_process_group(pid).is_ok())
}

/// The group of one running process activity. Dropped before
/// [`Group::finished`] (timeout, interruption), it ends the group.
pub struct Group {
    pgid: i32,
    finished: bool,
}

impl Group {
    /// Tracks the group whose leader is `pid` (spawned with
    /// `process_group(0)`, so the group id is its pid).
    pub fn track(pid: u32) -> Option<Self> {
        let pgid = i32::try_from(pid).ok()?;
        live().push(pgid);
        Some(Self {
            pgid,
            finished: false,
        })
    }

    /// The leader exited by itself: forget the group unless members remain
    /// (they are ended when squall exits).
    pub fn finished(mut self) {
        self.finished = true;
        if !alive(self.pgid) {
            live().retain(|g| *g != self.pgid);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let pgid = self.pgid;
        signal(pgid, Signal::TERM);
        // Drop cannot wait: a thread sends SIGKILL after the grace period
        // (and `terminate_all` does it at once if squall exits first).
        let _ = std::thread::Builder::new()
            .name("squall-reaper".into())
            .spawn(move || {
                let deadline = Instant::now() + GRACE;
                while alive(pgid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                signal(pgid, Signal::KILL);
                live().retain(|g| *g != pgid);
            });
    }
}

/// Ends every group squall started that still has members: SIGTERM, up to
/// [`GRACE`] to exit, then SIGKILL. Called when squall exits; with
/// `patient` false (the third signal) it sends SIGKILL at once.
pub fn terminate_all(patient: bool) {
    let groups: Vec<i32> = live().drain(..).filter(|g| alive(*g)).collect();
    if groups.is_empty() {
        return;
    }
    if patient {
        groups.iter().for_each(|g| signal(*g, Signal::TERM));
        let deadline = Instant::now() + GRACE;
        while groups.iter().any(|g| alive(*g)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    groups.iter().for_each(|g| signal(*g, Signal::KILL));
}
