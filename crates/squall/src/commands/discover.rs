//! `squall discover`: writes the native activities as a Chaos Toolkit
//! discovery document, notifying `discovery-started` (the package name),
//! then `discovery-completed` (the document) or `discovery-failed`.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use squall_engine::discover::{document, packages, select};
use squall_engine::journal_io::now_stamp;
use squall_engine::log::Logger;

use super::validate::report;
use crate::cli::DiscoverArgs;
use crate::exit::{FAILED, INVALID, OK};
use crate::load::settings;
use crate::notify::Notifier;

pub async fn discover(args: &DiscoverArgs, settings_path: Option<&Path>, log: Arc<Logger>) -> u8 {
    let notifier = match settings(settings_path)
        .map_err(|e| e.0)
        .and_then(|s| Notifier::from_settings(&s, log.clone()))
    {
        Ok(n) => n,
        Err(lines) => return report(&log, &lines),
    };
    let target = args.packages.first().map_or("squall", String::as_str);
    notifier.emit("discovery-started", "discovery", json!(target), None);
    let (code, outcome) = write_discovery(args, &log);
    match outcome {
        Ok(doc) => notifier.emit("discovery-completed", "discovery", doc, None),
        Err(e) => notifier.emit("discovery-failed", "discovery", json!(target), Some(e)),
    }
    // Each send is bounded by its own timeout; none changes the exit code.
    notifier.finish().await;
    code
}

/// Writes the document; the exit code, and the document or the error.
fn write_discovery(args: &DiscoverArgs, log: &Logger) -> (u8, Result<Value, String>) {
    let fail = |code, msg: String| {
        log.error(&msg);
        (code, Err(msg))
    };
    let specs = match select(crate::providers::registry(), &args.packages) {
        Ok(s) => s,
        Err(unknown) => {
            let msg = format!(
                "Package {} not found; squall has: {}",
                unknown.join(", "),
                packages(crate::providers::registry()).join(", ")
            );
            return fail(INVALID, msg);
        }
    };
    let target = args.packages.first().map_or("squall", String::as_str);
    let id = format!("{:x}", std::process::id());
    let doc = document(&specs, &id, &now_stamp(), target);
    let text = match serde_json::to_string_pretty(&doc) {
        Ok(t) => t,
        Err(e) => return fail(FAILED, format!("cannot serialise the discovery: {e}")),
    };
    if let Err(e) = std::fs::write(&args.discovery_path, text + "\n") {
        let msg = format!("cannot write {}: {e}", args.discovery_path.display());
        return fail(FAILED, msg);
    }
    log.info(&format!(
        "Discovery outcome saved in {}",
        args.discovery_path.display()
    ));
    (OK, serde_json::to_value(&doc).map_err(|e| e.to_string()))
}
