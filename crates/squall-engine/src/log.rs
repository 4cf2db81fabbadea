//! The run log: upstream-shaped lines on the console (`[2026-11-23 14:49:25
//! INFO] Steady state hypothesis is met!`), coloured only on a terminal, and
//! full debug detail in the log file.
//!
//! This is a small purpose-built logger rather than a `tracing` subscriber
//! because the console lines are part of the Chaos Toolkit compatibility
//! contract (wording, levels and layout), and tests compare them.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

/// Log levels, in upstream's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
            Self::Critical => "CRITICAL",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Self::Debug => "\x1b[36m",
            Self::Info => "\x1b[32m",
            Self::Warning => "\x1b[33m",
            Self::Error | Self::Critical => "\x1b[31m",
        }
    }
}

/// Where log lines go.
pub struct Logger {
    console_level: Level,
    colour: bool,
    /// stderr is a terminal (countdowns are drawn only there).
    tty: bool,
    file: Option<Mutex<File>>,
    /// Lines kept in memory for tests and notifications.
    captured: Option<Mutex<Vec<String>>>,
    console: bool,
}

impl Logger {
    /// Console at INFO (DEBUG when `verbose`), plus an appended log file.
    pub fn new(verbose: bool, log_file: Option<&Path>) -> std::io::Result<Self> {
        let file = match log_file {
            Some(p) => Some(Mutex::new({
                use std::os::unix::fs::OpenOptionsExt;
                // Like the journal: only its owner may read what a run did.
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)?
            })),
            None => None,
        };
        let tty = std::io::stderr().is_terminal();
        Ok(Self {
            console_level: if verbose { Level::Debug } else { Level::Info },
            colour: tty && std::env::var_os("NO_COLOR").is_none(),
            tty,
            file,
            captured: None,
            console: true,
        })
    }

    /// A logger that only remembers lines (for tests).
    pub fn capture() -> Self {
        Self {
            console_level: Level::Debug,
            colour: false,
            tty: false,
            file: None,
            captured: Some(Mutex::new(Vec::new())),
            console: false,
        }
    }

    /// The captured `LEVEL message` lines.
    pub fn lines(&self) -> Vec<String> {
        self.captured
            .as_ref()
            .map(|c| c.lock().map(|l| l.clone()).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Whether the console is an interactive terminal (for countdowns).
    pub fn interactive(&self) -> bool {
        self.console && self.tty
    }

    pub fn log(&self, level: Level, msg: &str) {
        // Every line, console and file alike, without known secrets.
        let msg = &*crate::redact::global().redact(msg);
        let now = jiff::Timestamp::now().to_zoned(local_tz().clone());
        if let Some(mut lines) = self.captured.as_ref().and_then(|c| c.lock().ok()) {
            lines.push(format!("{} {msg}", level.name()));
        }
        if let Some(file) = &self.file {
            let stamp = now.strftime("%Y-%m-%d %H:%M:%S%.3f");
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(f, "[{stamp} {}] {}", level.name(), indent(msg));
            }
        }
        if self.console && level >= self.console_level {
            let stamp = now.strftime("%Y-%m-%d %H:%M:%S");
            let line = if self.colour {
                format!(
                    "[{stamp} {}{}\x1b[0m] {}",
                    level.colour(),
                    level.name(),
                    indent(msg)
                )
            } else {
                format!("[{stamp} {}] {}", level.name(), indent(msg))
            };
            eprintln!("{line}");
        }
    }

    pub fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg);
    }
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }
    pub fn warning(&self, msg: &str) {
        self.log(Level::Warning, msg);
    }
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg);
    }
    pub fn critical(&self, msg: &str) {
        self.log(Level::Critical, msg);
    }

    /// Rewrites a countdown in place on a terminal; silent otherwise.
    pub fn countdown(&self, remaining_secs: u64) {
        if self.interactive() {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r  … {remaining_secs}s left ");
            let _ = err.flush();
        }
    }

    /// Clears the countdown line.
    pub fn countdown_done(&self) {
        if self.interactive() {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl squall_activity::RunLog for Logger {
    fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg);
    }
    fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }
    fn warning(&self, msg: &str) {
        self.log(Level::Warning, msg);
    }
}

/// The local time zone, loaded once from `TZ` or `/etc/localtime`.
///
/// `jiff::Zoned::now()` would also find the zone's IANA name by scanning
/// the whole zoneinfo tree, which costs milliseconds per process start;
/// log timestamps need only the offsets.
fn local_tz() -> &'static jiff::tz::TimeZone {
    static TZ: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    TZ.get_or_init(|| {
        let from_env = std::env::var("TZ")
            .ok()
            .and_then(|name| jiff::tz::TimeZone::get(name.trim_start_matches(':')).ok());
        from_env
            .or_else(|| {
                let bytes = std::fs::read("/etc/localtime").ok()?;
                jiff::tz::TimeZone::tzif("localtime", &bytes).ok()
            })
            .unwrap_or(jiff::tz::TimeZone::UTC)
    })
}

/// Continuation lines are indented by four spaces, as upstream does.
fn indent(msg: &str) -> String {
    msg.replace('\n', "\n    ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_lines_with_levels() {
        let log = Logger::capture();
        log.info("Steady state hypothesis is met!");
        log.critical("boom");
        assert_eq!(
            log.lines(),
            ["INFO Steady state hypothesis is met!", "CRITICAL boom"]
        );
    }

    #[test]
    fn file_gets_debug_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("squall.log");
        let log = Logger::new(false, Some(&path)).unwrap();
        log.debug("detail\nmore");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(" DEBUG] detail\n    more"), "{text}");
    }
}
