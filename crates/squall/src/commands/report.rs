//! `squall report`: reads every journal, renders the report in the chosen
//! format and writes it atomically; any bad input is exit 2 with the file
//! named, and then no report file is written. The rendering itself lives in
//! the `squall-report` crate.

use std::path::{Path, PathBuf};

use squall_engine::log::Logger;
use squall_report::{Format, Options, load, render, write_atomic};

use super::validate::report as invalid;
use crate::cli::ReportArgs;
use crate::exit::OK;
use crate::load::load_vars;

pub fn report(args: &ReportArgs, log: &Logger) -> u8 {
    match make(args) {
        Ok(path) => {
            log.info(&format!("Report generated as '{}'", path.display()));
            OK
        }
        Err(lines) => invalid(log, &lines),
    }
}

fn make(args: &ReportArgs) -> Result<PathBuf, Vec<String>> {
    let (target, journals) = args
        .paths
        .split_last()
        .ok_or_else(|| vec!["give one or more journals, then the report file".to_owned()])?;
    let format = format(args.export_format.as_deref(), target)?;
    let vars = load_vars(&args.vars).map_err(|e| e.0)?;
    let opts = Options {
        title: args.title.as_deref(),
        overrides: &vars.configuration,
        env: &vars.env,
        generated: generated(),
    };
    let paths: Vec<&Path> = journals.iter().map(PathBuf::as_path).collect();
    let runs = load(&paths, &opts).map_err(|e| vec![e.to_string()])?;
    write_atomic(target, &render(&runs, format, &opts)).map_err(|e| vec![e.to_string()])?;
    Ok(target.clone())
}

/// `--export-format`, else the report's extension, else Markdown (as
/// upstream).
fn format(flag: Option<&str>, target: &Path) -> Result<Format, Vec<String>> {
    match flag {
        Some(name) => Format::from_name(name).ok_or_else(|| {
            vec![format!(
                "--export-format {name}: squall writes html, markdown, pdf, junit or json"
            )]
        }),
        None => Ok(Format::from_path(target).unwrap_or(Format::Markdown)),
    }
}

/// When the report was made; `SOURCE_DATE_EPOCH` (the reproducible-builds
/// convention) fixes it, so identical journals give identical reports.
fn generated() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    now.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}
