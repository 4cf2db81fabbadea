//! The one error type of this crate. Outcomes that a caller reports (a dirty
//! diff, a stale endpoint) are data, not errors; `DataplaneError` is reserved
//! for "the operation itself could not be carried out".

use std::path::PathBuf;

/// Why a data-plane operation could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The program could not be started (not installed, not executable).
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The program ran but exited unsuccessfully.
    #[error("`{command}` failed (exit {code:?}): {stderr}")]
    CommandFailed {
        /// The argv, joined with spaces, for the message only.
        command: String,
        /// The exit code, `None` when killed by a signal.
        code: Option<i32>,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The program did not finish within the runner's time limit.
    #[error("`{command}` timed out after {seconds} s")]
    Timeout {
        /// The argv, joined with spaces.
        command: String,
        /// The limit that was exceeded.
        seconds: u64,
    },
    /// Reading or writing a snapshot / undo file failed.
    #[error("{action} {path}: {source}", path = path.display())]
    Io {
        /// What was being done ("write snapshot", …).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot, undo record or EndpointSlice document was not valid JSON
    /// of the expected shape.
    #[error("invalid {what}: {source}")]
    Json {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// Tool output that we depend on had an unexpected shape.
    #[error("unexpected output from `{program}`: {detail}")]
    UnexpectedOutput {
        /// The program whose output was read.
        program: String,
        /// What was wrong.
        detail: String,
    },
    /// Restoring a snapshot taken with one iptables backend into the other
    /// would create a second, competing rule set; refuse instead.
    #[error("snapshot was taken with the {snapshot} backend but the node uses {live}")]
    BackendMismatch {
        /// Backend recorded in the snapshot.
        snapshot: String,
        /// Backend detected now.
        live: String,
    },
    /// The requested flush has nothing to act on (e.g. no kube-proxy
    /// chains on this node), so it would not inject the intended fault.
    #[error("nothing to flush: {0}")]
    NothingToFlush(String),
    /// The snapshot file was written by a newer squall with a layout this
    /// build does not understand; restoring half of it would be worse.
    #[error("snapshot format {found} is newer than supported format {supported}")]
    UnsupportedFormat {
        /// Format in the file.
        found: u32,
        /// Newest format this build reads.
        supported: u32,
    },
    /// The snapshot holds nothing that could be restored.
    #[error("snapshot {0} holds no iptables table to restore")]
    EmptySnapshot(String),
}

/// Result alias used throughout the crate.
pub type Result<T, E = DataplaneError> = std::result::Result<T, E>;
