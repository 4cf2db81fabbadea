//! `squall sandbox serve`: the Kubernetes API simulator as a local server,
//! with a kubeconfig for kubectl and squall, and the demo application's
//! gateway (`INGRESS_HOST`).

use squall_engine::log::Logger;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use squall_sim::runtime::ProcessRuntime;
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

/// How long the processes of `--run-image` pods have to exit on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    let runtime = process_runtime(args, log)?;
    let options = SimOptions {
        nodes: usize::from(args.nodes),
        seed: args.seed,
        scenario,
        runtime,
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
    let served = sim.clone().serve_until(api, stop).await;
    let _ = gateway_stop.send(());
    // The pods' processes get SIGTERM and time to exit (a data-plane agent
    // restores the rules it changed) before the sandbox goes.
    sim.shutdown(SHUTDOWN_GRACE).await;
    served.map_err(|e| (FAILED, format!("the sandbox server failed: {e}")))?;
    log.info("Sandbox stopped");
    Ok(OK)
}

/// `--run-image`, `--node-netns` and `--host-root` as a process runtime
/// (none without `--run-image`).
fn process_runtime(args: &ServeArgs, log: &Logger) -> Result<Option<ProcessRuntime>, (u8, String)> {
    if args.run_image.is_empty() {
        if !args.node_netns.is_empty() {
            return Err((INVALID, "--node-netns needs --run-image".into()));
        }
        if args.fail_pull.is_empty() {
            return Ok(None);
        }
    }
    let mut images = BTreeMap::new();
    for pair in &args.run_image {
        let (image, exe) = split_pair(pair, "--run-image", "IMAGE=PATH")?;
        let exe = PathBuf::from(exe);
        if !exe.is_file() {
            return Err((
                INVALID,
                format!("--run-image {pair}: {} is not a file", exe.display()),
            ));
        }
        images.insert(image.to_string(), exe);
    }
    let mut netns = BTreeMap::new();
    for pair in &args.node_netns {
        let (node, ns) = split_pair(pair, "--node-netns", "NODE=NETNS")?;
        netns.insert(node.to_string(), ns.to_string());
    }
    // Stable across restarts: squall keeps a ledger on the node.
    let host_root = args
        .host_root
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("squall-sandbox-hosts"));
    for (image, exe) in &images {
        log.info(&format!(
            "Pods of image {image} run as processes of {} (hostPath volumes under {})",
            exe.display(),
            host_root.display()
        ));
    }
    for image in &args.fail_pull {
        log.info(&format!("Pulling image {image} fails (ErrImagePull)"));
    }
    Ok(Some(ProcessRuntime {
        images,
        netns,
        host_root,
        host_nodes: false,
        fail_pull: args.fail_pull.iter().cloned().collect(),
    }))
}

fn split_pair<'a>(
    pair: &'a str,
    flag: &str,
    shape: &str,
) -> Result<(&'a str, &'a str), (u8, String)> {
    match pair.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => Err((INVALID, format!("{flag} {pair}: expected {shape}"))),
    }
}
