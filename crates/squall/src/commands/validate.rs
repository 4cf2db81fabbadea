//! `squall validate`: every problem in an experiment at once, each with its
//! location; exit 0 when valid, 2 when not. Notifies `validate-*` events.

use std::path::Path;
use std::sync::Arc;

use squall_engine::log::Logger;

use crate::cli::ValidateArgs;
use crate::exit::{INVALID, OK};
use crate::load::{load_vars, read_document, settings, validate_experiment};
use crate::notify::{self, Notifier};

pub async fn validate(args: &ValidateArgs, settings_path: Option<&Path>, log: Arc<Logger>) -> u8 {
    let notifier = match settings(settings_path)
        .map_err(|e| e.0)
        .and_then(|s| Notifier::from_settings(&s, log.clone()))
    {
        Ok(n) => n,
        Err(lines) => return report(&log, &lines),
    };
    let code = check(args, &log, &notifier);
    // Each send is bounded by its own timeout; none changes the exit code.
    notifier.finish().await;
    code
}

/// Validates, telling the notification channels as upstream's `chaos
/// validate` does: `validate-started`, then `validate-completed` or
/// `validate-failed`, each with the experiment.
fn check(args: &ValidateArgs, log: &Logger, notifier: &Notifier) -> u8 {
    let name = args.experiment.display().to_string();
    log.info("Validating the experiment's syntax");
    let doc = match read_document(&args.experiment) {
        Ok(d) => d,
        Err(e) => return report(log, &e.0),
    };
    let experiment = notify::experiment_payload(&doc.value);
    notifier.emit("validate-started", "validate", experiment.clone(), None);
    let result = load_vars(&args.vars).map_err(|e| e.0).and_then(|vars| {
        validate_experiment(&doc, &vars)
            .map_err(|problems| problems.iter().map(|d| d.render(&name)).collect())
    });
    match result {
        Ok(_) => {
            notifier.emit("validate-completed", "validate", experiment, None);
            log.info("experiment syntax and semantic look valid");
            OK
        }
        Err(lines) => {
            let error = Some(lines.join("\n"));
            notifier.emit("validate-failed", "validate", experiment, error);
            report(log, &lines)
        }
    }
}

/// Logs invalid-input lines and returns exit code 2.
pub fn report(log: &Logger, lines: &[String]) -> u8 {
    for line in lines {
        log.error(line);
    }
    if lines.len() > 1 {
        log.error(&format!("{} problems found", lines.len()));
    }
    INVALID
}
