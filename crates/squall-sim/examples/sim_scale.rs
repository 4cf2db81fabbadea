//! Measures the API of a running sandbox at scale (used by
//! `bench/sim-scale.sh`). Three modes:
//!
//! - default: list latency through kube-rs: all pods, a label selector and a
//!   `spec.nodeName` field selector, each listed RUNS times into typed
//!   `Pod`s; prints one line per query with the item count and the median
//!   and maximum milliseconds.
//! - `probe`: while pods are being created, GETs a small object (default
//!   `/api/v1/namespaces/default`) every 20 ms until the Deployments in
//!   `default` report TOTAL ready replicas; prints the GET latencies
//!   (count, median, 99th percentile, maximum). This is what a client feels
//!   while the controllers work.
//! - `lists`: COUNT full lists of PATH (default `/api/v1/pods`, no `limit`,
//!   as the Python client sends them), CONCURRENCY at a time, read whole as
//!   text; prints the item count and the median and maximum milliseconds.
//!
//! ```sh
//! cargo run --release -p squall-sim --example sim_scale -- http://127.0.0.1:PORT [RUNS] [LABEL] [NODE]
//! sim_scale probe http://127.0.0.1:PORT TOTAL [PATH]
//! sim_scale lists http://127.0.0.1:PORT COUNT CONCURRENCY [PATH]
//! ```

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, Config};

fn usage() -> ! {
    eprintln!(
        "usage: sim_scale SERVER_URL [RUNS] [LABEL_SELECTOR] [NODE]\n       \
         sim_scale probe SERVER_URL TOTAL [PATH]\n       \
         sim_scale lists SERVER_URL COUNT CONCURRENCY [PATH]"
    );
    std::process::exit(2)
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1)
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

/// The `q`-quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let last = sorted.len() - 1;
    // An index into a short vector: the float-to-int cast cannot truncate.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((last as f64) * q).round() as usize;
    sorted[i.min(last)]
}

fn client(url: &str) -> Client {
    let uri = url.parse::<http::Uri>().unwrap_or_else(|_| usage());
    Client::try_from(Config::new(uri)).unwrap_or_else(|e| fail("cannot build a client", e))
}

/// One GET, read whole; the body and how long it took.
async fn get(client: &Client, path: &str) -> kube::Result<(String, Duration)> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .unwrap_or_else(|e| fail("request", e));
    let t = Instant::now();
    let text = client.request_text(req).await?;
    Ok((text, t.elapsed()))
}

/// Sum of `status.readyReplicas` over the Deployments in `default`.
async fn ready_replicas(client: &Client) -> u64 {
    let Ok((text, _)) = get(client, "/apis/apps/v1/namespaces/default/deployments").await else {
        return 0;
    };
    let list: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["status"]["readyReplicas"].as_u64())
        .sum()
}

/// `probe`: small GETs every 20 ms until `total` replicas are ready.
async fn probe(client: &Client, total: u64, path: &str) {
    let mut times = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0u64.. {
        tick.tick().await;
        let (_, took) = get(client, path).await.unwrap_or_else(|e| fail(path, e));
        times.push(took);
        if i % 25 == 24 && ready_replicas(client).await >= total {
            break;
        }
        if Instant::now() > deadline {
            fail("probe", format!("{total} replicas not ready in 600 s"));
        }
    }
    times.sort();
    println!(
        "probe\tGET {path} while converging\t{}\t{}\t{}\t{}",
        times.len(),
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 0.99)),
        ms(quantile(&times, 1.0))
    );
}

/// Only the length of a list's `items`.
#[derive(serde::Deserialize)]
struct Items {
    items: Vec<serde::de::IgnoredAny>,
}

/// `lists`: `count` whole lists of `path`, `concurrency` at a time.
async fn lists(client: &Client, count: usize, concurrency: usize, path: &str) {
    let results: Vec<(usize, Duration)> = futures::stream::iter(0..count)
        .map(|_| async {
            let (text, took) = get(client, path).await.unwrap_or_else(|e| fail(path, e));
            let items = serde_json::from_str::<Items>(&text)
                .unwrap_or_else(|e| fail("list body", e))
                .items
                .len();
            (items, took)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut times: Vec<Duration> = results.iter().map(|r| r.1).collect();
    times.sort();
    let items = results.first().map_or(0, |r| r.0);
    println!(
        "raw\tGET {path} x{count}, {concurrency} at a time\t{items}\t{}\t{}",
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 1.0))
    );
}

/// The default mode: typed lists through kube-rs.
async fn typed_lists(url: &str, args: &[String]) {
    let runs: usize = args
        .first()
        .map_or(Ok(5), |r| r.parse())
        .unwrap_or_else(|_| usage());
    let label = args.get(1).map_or("app=web-7", String::as_str);
    let node = args.get(2).map_or("node-7", String::as_str);
    let pods: Api<Pod> = Api::all(client(url));
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
            Err(e) => fail(&format!("list {what}"), e),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("probe") if args.len() >= 3 => {
            let path = args
                .get(3)
                .map_or("/api/v1/namespaces/default", String::as_str);
            probe(&client(&args[1]), num(2) as u64, path).await;
        }
        Some("lists") if args.len() >= 4 => {
            let path = args.get(4).map_or("/api/v1/pods", String::as_str);
            lists(&client(&args[1]), num(2), num(3), path).await;
        }
        Some(url) if !matches!(url, "probe" | "lists") => typed_lists(url, &args[1..]).await,
        _ => usage(),
    }
}
