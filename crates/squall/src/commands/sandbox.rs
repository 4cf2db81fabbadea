//! `squall sandbox serve`: the Kubernetes API simulator as a local server,
//! with a kubeconfig for kubectl and squall.

use squall_engine::log::Logger;
use squall_sim::{Sim, SimOptions, kubeconfig};

use crate::cli::{SandboxCommand, ServeArgs};
use crate::exit::{FAILED, INVALID, OK};

pub async fn sandbox(cmd: &SandboxCommand, log: &Logger) -> u8 {
    match cmd {
        SandboxCommand::Serve(args) => serve(args, log).await,
    }
}

async fn serve(args: &ServeArgs, log: &Logger) -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log.error("cannot listen for signals");
        return FAILED;
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            log.error(&format!("cannot listen on 127.0.0.1:{}: {e}", args.port));
            return INVALID;
        }
    };
    let url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(e) => {
            log.error(&format!("cannot read the listening address: {e}"));
            return FAILED;
        }
    };
    let options = SimOptions {
        nodes: usize::from(args.nodes),
        seed: args.seed,
        ..SimOptions::default()
    };
    let sim = Sim::start(options);
    if let Err(e) = std::fs::write(&args.kubeconfig, kubeconfig(&url)) {
        log.error(&format!("cannot write {}: {e}", args.kubeconfig.display()));
        return INVALID;
    }
    log.info(&format!(
        "Simulated cluster with {} node(s) serving on {url}",
        args.nodes
    ));
    println!("export KUBECONFIG={}", args.kubeconfig.display());
    let stop = async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    };
    match sim.serve_until(listener, stop).await {
        Ok(()) => {
            log.info("Sandbox stopped");
            OK
        }
        Err(e) => {
            log.error(&format!("the sandbox server failed: {e}"));
            FAILED
        }
    }
}
