//! `squall recover`: applies what a killed run left pending in the ledger.

use squall_engine::log::Logger;
use squall_engine::recover::recover as apply;

use crate::cli::RecoverArgs;
use crate::exit::{FAILED, OK};

pub async fn recover(args: &RecoverArgs, log: &Logger) -> u8 {
    match apply(&args.ledger, crate::providers::registry(), log).await {
        Ok(report) if report.failed.is_empty() => {
            if !report.applied.is_empty() {
                log.info(&format!(
                    "Recovered: {} change(s) undone ({})",
                    report.applied.len(),
                    report.breakdown()
                ));
            }
            OK
        }
        Ok(report) => {
            log.error(&format!(
                "{} undo(s) failed and are still pending in {}; fix the cause and run recover again",
                report.failed.len(),
                args.ledger.display()
            ));
            FAILED
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log.error(&format!(
                "no undo ledger at {} (squall run writes it next to the journal; check --ledger)",
                args.ledger.display()
            ));
            FAILED
        }
        Err(e) => {
            log.error(&format!(
                "cannot use the ledger {}: {e}",
                args.ledger.display()
            ));
            FAILED
        }
    }
}
