//! The `squall` binary: parses the command line, sets up logging and hands
//! over to a command. Only this file turns outcomes into exit codes.

mod cli;
mod commands;
mod exit;
mod load;
mod notify;
mod providers;
#[cfg(test)]
mod tidy;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use squall_engine::log::Logger;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_file = (!cli.no_log_file).then_some(cli.log_file.as_path());
    let log = match Logger::new(cli.verbose, log_file) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!(
                "squall: cannot open the log file {}: {e}",
                cli.log_file.display()
            );
            return ExitCode::from(exit::INVALID);
        }
    };
    log.debug(&"#".repeat(79));
    log.debug(&format!(
        "Running command '{}'",
        command_line(std::env::args()).join(" ")
    ));
    // One thread is plenty for a run: activities wait on processes, sockets
    // and timers, never on the CPU, and every extra worker costs memory. The
    // sandbox serves many clients and runs controllers, so it gets them all.
    let builder = match cli.command {
        Command::Sandbox(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match builder {
        Ok(r) => r,
        Err(e) => {
            log.critical(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::FAILED);
        }
    };
    let code = runtime.block_on(dispatch(&cli, log));
    // Nothing squall started outlives it: process groups whose members
    // are still running get SIGTERM, then SIGKILL.
    squall_engine::providers::group::terminate_all(true);
    ExitCode::from(code)
}

/// The command line for the log, with `--var` values masked: a variable
/// may hold a secret, and the log outlives the run.
fn command_line(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut masked_next = false;
    args.map(|a| {
        let masked = if masked_next {
            mask_var(&a)
        } else if let Some(v) = a.strip_prefix("--var=") {
            format!("--var={}", mask_var(v))
        } else {
            a.clone()
        };
        masked_next = a == "--var";
        masked
    })
    .collect()
}

/// `NAME[:TYPE]=VALUE` as `NAME[:TYPE]=***`.
fn mask_var(v: &str) -> String {
    match v.split_once('=') {
        Some((name, _)) => format!("{name}={}", squall_engine::redact::MASK),
        None => v.to_owned(),
    }
}

async fn dispatch(cli: &Cli, log: Arc<Logger>) -> u8 {
    match &cli.command {
        Command::Run(args) => commands::run::run(args, cli.settings.as_deref(), log).await,
        Command::Validate(args) => {
            commands::validate::validate(args, cli.settings.as_deref(), log).await
        }
        Command::Discover(args) => {
            commands::discover::discover(args, cli.settings.as_deref(), log).await
        }
        Command::Report(args) => commands::report::report(args, &log),
        Command::Recover(args) => commands::recover::recover(args, &log).await,
        Command::Agent(cmd) => commands::agent::agent(cmd, &log).await,
        Command::Sandbox(cmd) => commands::sandbox::sandbox(cmd, &log).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn var_values_are_masked_in_the_logged_command_line() {
        let args = [
            "squall",
            "run",
            "x.yaml",
            "--var",
            "api_key=s3cr3t",
            "--var=n:int=5",
            "--verbose",
        ];
        let line = super::command_line(args.iter().map(|s| (*s).to_owned())).join(" ");
        assert_eq!(
            line,
            "squall run x.yaml --var api_key=*** --var=n:int=*** --verbose"
        );
    }
}
