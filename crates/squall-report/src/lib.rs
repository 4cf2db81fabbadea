//! `squall report`: turns run journals (squall's or Chaos Toolkit's) into a
//! report a person reads or a CI system understands — one self-contained
//! HTML file with inline SVG charts, GitHub-flavoured Markdown, a PDF made
//! here without LaTeX or a browser, JUnit XML, or a JSON summary.
//!
//! Journals are read leniently ([`model`]): only what makes a file a
//! journal is required. Every journal is parsed before anything is
//! written, and the report is written atomically ([`write_atomic`]), so a
//! bad journal among many leaves no half-written report behind.

pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod model;
pub mod monitor;
pub mod pdf;
pub mod score;
pub mod series;
pub mod svg;
pub mod time;

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};
use squall_core::config::Environment;

pub use model::Run;

/// A report that could not be made; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: cannot write the report: {reason}")]
    Write { path: String, reason: String },
}

/// The report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Pdf,
    Junit,
    Json,
}

impl Format {
    /// The format for a `--export-format` value (upstream's `html5` and
    /// `md` included).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "html" | "html5" => Some(Self::Html),
            "markdown" | "md" => Some(Self::Markdown),
            "pdf" => Some(Self::Pdf),
            "junit" | "xml" => Some(Self::Junit),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The format a report path's extension implies.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "htm" => Some(Self::Html),
            "markdown" => Some(Self::Markdown),
            other => Self::from_name(other),
        }
    }
}

/// What the report is about, besides the journals.
pub struct Options<'a> {
    /// `--title`; the default names the experiment when there is one.
    pub title: Option<&'a str>,
    /// Configuration from `--var`/`--var-file`, substituted into titles,
    /// tolerances and pauses as a run would.
    pub overrides: &'a Map<String, Value>,
    pub env: &'a dyn Environment,
    /// When the report is made, as shown in it.
    pub generated: String,
}

/// Reads and parses every journal, stopping at the first bad one.
pub fn load(paths: &[&Path], opts: &Options) -> Result<Vec<Run>, ReportError> {
    paths
        .iter()
        .map(|p| {
            let name = p.display().to_string();
            let text = std::fs::read(p).map_err(|source| ReportError::Read {
                path: name.clone(),
                source,
            })?;
            model::parse(&name, &text, opts.overrides, opts.env)
        })
        .collect()
}

/// The report's title: `--title`, else the experiment's for one journal.
pub fn title(runs: &[Run], opts: &Options) -> String {
    match (opts.title, runs) {
        (Some(t), _) => t.to_owned(),
        (None, [one]) => one.title.clone(),
        _ => "Chaos Engineering Report".into(),
    }
}

/// Renders the runs in a format.
pub fn render(runs: &[Run], format: Format, opts: &Options) -> Vec<u8> {
    let title = title(runs, opts);
    match format {
        Format::Html => html::render(runs, &title, &opts.generated).into_bytes(),
        Format::Markdown => markdown::render(runs, &title, &opts.generated).into_bytes(),
        Format::Pdf => pdf::render(runs, &title, &opts.generated),
        Format::Junit => junit::render(runs, &title).into_bytes(),
        Format::Json => json::render(runs, &title, &opts.generated).into_bytes(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers see the old file or the whole new one, and a
/// failure leaves nothing behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |reason: String| ReportError::Write {
        path: path.display().to_string(),
        reason,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(err(format!(
            "the directory {} does not exist",
            dir.display()
        )));
    }
    let name = path
        .file_name()
        .ok_or_else(|| err("the path names no file".into()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e.to_string())
    })
}

/// Escapes text for HTML and XML (element content and quoted attributes).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as the report shows it: strings bare, the rest as JSON.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_flag_then_extension() {
        assert_eq!(Format::from_name("html5"), Some(Format::Html));
        assert_eq!(Format::from_name("MD"), Some(Format::Markdown));
        assert_eq!(Format::from_name("docx"), None);
        assert_eq!(Format::from_path(Path::new("r.HTML")), Some(Format::Html));
        assert_eq!(Format::from_path(Path::new("r.xml")), Some(Format::Junit));
        assert_eq!(Format::from_path(Path::new("r.md")), Some(Format::Markdown));
        assert_eq!(Format::from_path(Path::new("r")), None);
    }

    #[test]
    fn atomic_write_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("r.html");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing = dir.path().join("nope/r.html");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        // A directory where the report should go: the rename fails and the
        // temporary file is removed.
        let clash = dir.path().join("clash");
        std::fs::create_dir_all(clash.join("sub")).unwrap();
        assert!(write_atomic(&clash, b"x").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">&'\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{FFFD}"
        );
    }
}
