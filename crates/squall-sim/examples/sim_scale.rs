//! Measures list latency through kube-rs against a running sandbox (used by
//! `bench/sim-scale.sh`): all pods, a label selector and a `spec.nodeName`
//! field selector, each listed RUNS times into typed `Pod`s; prints one line
//! per query with the item count and the median and maximum milliseconds.
//!
//! ```sh
//! cargo run --release -p squall-sim --example sim_scale -- http://127.0.0.1:PORT [RUNS] [LABEL] [NODE]
//! ```

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, Config};

fn usage() -> ! {
    eprintln!("usage: sim_scale SERVER_URL [RUNS] [LABEL_SELECTOR] [NODE]");
    std::process::exit(2)
}

/// Lists `runs` times; returns the item count and the sorted durations.
async fn measure(
    api: &Api<Pod>,
    params: &ListParams,
    runs: usize,
) -> kube::Result<(usize, Vec<Duration>)> {
    let mut times = Vec::with_capacity(runs);
    let mut count = 0;
    for _ in 0..runs {
        let t = Instant::now();
        count = api.list(params).await?.items.len();
        times.push(t.elapsed());
    }
    times.sort();
    Ok((count, times))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().and_then(|u| u.parse::<http::Uri>().ok()) else {
        usage()
    };
    let runs: usize = args
        .get(1)
        .map_or(Ok(5), |r| r.parse())
        .unwrap_or_else(|_| usage());
    let label = args.get(2).map_or("app=web-7", String::as_str);
    let node = args.get(3).map_or("node-7", String::as_str);
    let client = Client::try_from(Config::new(url)).unwrap_or_else(|e| {
        eprintln!("cannot build a client: {e}");
        std::process::exit(1)
    });
    let pods: Api<Pod> = Api::all(client);
    let queries = [
        ("all pods", ListParams::default()),
        (label, ListParams::default().labels(label)),
        (
            &*format!("spec.nodeName={node}"),
            ListParams::default().fields(&format!("spec.nodeName={node}")),
        ),
    ];
    for (what, params) in &queries {
        match measure(&pods, params, runs.max(1)).await {
            Ok((count, times)) => println!(
                "kube-rs\t{what}\t{count}\t{}\t{}",
                ms(times[times.len() / 2]),
                ms(times[times.len() - 1])
            ),
            Err(e) => {
                eprintln!("list {what}: {e}");
                std::process::exit(1)
            }
        }
    }
}
