//! `squall discover`: writes the native activities as a Chaos Toolkit
//! discovery document.

use squall_engine::discover::{document, packages, select};
use squall_engine::journal_io::now_stamp;
use squall_engine::log::Logger;

use crate::cli::DiscoverArgs;
use crate::exit::{FAILED, INVALID, OK};

pub fn discover(args: &DiscoverArgs, log: &Logger) -> u8 {
    let specs = match select(crate::providers::registry(), &args.packages) {
        Ok(s) => s,
        Err(unknown) => {
            log.error(&format!(
                "Package {} not found; squall has: {}",
                unknown.join(", "),
                packages(crate::providers::registry()).join(", ")
            ));
            return INVALID;
        }
    };
    let target = args.packages.first().map_or("squall", String::as_str);
    let id = format!("{:x}", std::process::id());
    let doc = document(&specs, &id, &now_stamp(), target);
    let text = match serde_json::to_string_pretty(&doc) {
        Ok(t) => t,
        Err(e) => {
            log.error(&format!("cannot serialise the discovery: {e}"));
            return FAILED;
        }
    };
    if let Err(e) = std::fs::write(&args.discovery_path, text + "\n") {
        log.error(&format!(
            "cannot write {}: {e}",
            args.discovery_path.display()
        ));
        return FAILED;
    }
    log.info(&format!(
        "Discovery outcome saved in {}",
        args.discovery_path.display()
    ));
    OK
}
