//! `squall sandbox serve`: the Kubernetes API simulator as a local server,
//! with a kubeconfig for kubectl and squall, and the demo application's
//! gateway (`INGRESS_HOST`).

use squall_engine::log::Logger;
use squall_sim::{Scenario, Sim, SimOptions, kubeconfig};
use tokio::net::TcpListener;

use crate::cli::{SandboxCommand, ServeArgs};
use crate::exit::{FAILED, INVALID, OK};

pub async fn sandbox(cmd: &SandboxCommand, log: &Logger) -> u8 {
    match cmd {
        SandboxCommand::Serve(args) => serve(args, log).await.unwrap_or_else(|(code, msg)| {
            log.error(&msg);
            code
        }),
    }
}

type Outcome = Result<u8, (u8, String)>;

/// Binds 127.0.0.1:`port` (0: a free port) and returns the listener and
/// its address.
async fn bind(port: u16) -> Result<(TcpListener, String), (u8, String)> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| (INVALID, format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| (FAILED, format!("cannot read the listening address: {e}")))?;
    Ok((listener, addr.to_string()))
}

async fn serve(args: &ServeArgs, log: &Logger) -> Outcome {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return Err((FAILED, "cannot listen for signals".into()));
    };
    let scenario: Scenario = args
        .scenario
        .parse()
        .map_err(|e| (INVALID, format!("--scenario: {e}")))?;
    let (api, api_addr) = bind(args.port).await?;
    let (gateway, gateway_addr) = bind(args.gateway_port).await?;
    let options = SimOptions {
        nodes: usize::from(args.nodes),
        seed: args.seed,
        scenario,
        ..SimOptions::default()
    };
    let sim = Sim::start(options);
    let (gateway_stop, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.clone().serve_gateway(gateway, async {
        let _ = gateway_stopped.await;
    }));
    std::fs::write(&args.kubeconfig, kubeconfig(&format!("http://{api_addr}"))).map_err(|e| {
        (
            INVALID,
            format!("cannot write {}: {e}", args.kubeconfig.display()),
        )
    })?;
    log.info(&format!(
        "Simulated cluster with {} node(s) serving on http://{api_addr}",
        args.nodes
    ));
    log.info(&format!(
        "Demo application gateway on http://{gateway_addr} (scenario: {})",
        args.scenario
    ));
    println!("export KUBECONFIG={}", args.kubeconfig.display());
    println!("export INGRESS_HOST={gateway_addr}");
    let stop = async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    };
    let served = sim.serve_until(api, stop).await;
    let _ = gateway_stop.send(());
    served.map_err(|e| (FAILED, format!("the sandbox server failed: {e}")))?;
    log.info("Sandbox stopped");
    Ok(OK)
}
