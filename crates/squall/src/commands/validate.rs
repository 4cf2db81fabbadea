//! `squall validate`: every problem in an experiment at once, each with its
//! location; exit 0 when valid, 2 when not.

use squall_engine::log::Logger;

use crate::cli::ValidateArgs;
use crate::exit::{INVALID, OK};
use crate::load::{load_vars, read_document, validate_experiment};

pub fn validate(args: &ValidateArgs, log: &Logger) -> u8 {
    let name = args.experiment.display().to_string();
    log.info("Validating the experiment's syntax");
    let doc = match read_document(&args.experiment) {
        Ok(d) => d,
        Err(e) => return report(log, &e.0),
    };
    let vars = match load_vars(&args.vars) {
        Ok(v) => v,
        Err(e) => return report(log, &e.0),
    };
    match validate_experiment(&doc, &vars) {
        Ok(_) => {
            log.info("experiment syntax and semantic look valid");
            OK
        }
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(|d| d.render(&name)).collect();
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
