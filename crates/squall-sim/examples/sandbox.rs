//! A minimal sandbox for trying the examples by hand: the API and the demo
//! application's gateway on 127.0.0.1, a kubeconfig, until Ctrl-C.
//!
//! ```sh
//! cargo run -p squall-sim --example sandbox -- /tmp/sandbox.kubeconfig 8080 go-demo-8
//! kubectl --kubeconfig /tmp/sandbox.kubeconfig get pods -n go-demo-8
//! curl -H "Host: go-demo-8.acme.com" http://127.0.0.1:8080/
//! ```
//! The `squall sandbox serve` command is the supported way; this example only
//! shows the library calls it makes.

use squall_sim::{Scenario, Sim, SimOptions, kubeconfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let kubeconfig_path = args.next().unwrap_or_else(|| "sandbox.kubeconfig".into());
    let gateway_port: u16 = args.next().unwrap_or_else(|| "0".into()).parse()?;
    let scenario: Scenario = args.next().unwrap_or_else(|| "go-demo-8".into()).parse()?;
    let sim = Sim::start(SimOptions {
        scenario,
        ..SimOptions::default()
    });
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = tokio::net::TcpListener::bind(("127.0.0.1", gateway_port)).await?;
    std::fs::write(
        &kubeconfig_path,
        kubeconfig(&format!("http://{}", api.local_addr()?)),
    )?;
    println!("export KUBECONFIG={kubeconfig_path}");
    println!("export INGRESS_HOST={}", gateway.local_addr()?);
    tokio::spawn(sim.clone().serve(api));
    sim.serve_gateway(gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
