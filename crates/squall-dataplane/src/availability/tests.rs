//! Tests of the availability monitor: scripted local servers, paused
//! clocks for the schedule, and tolerances on its output.

use super::*;
use squall_core::tolerance::Tolerance;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn ctx(_dir: &std::path::Path) -> Arc<ActivityCtx> {
    squall_activity::testkit::ctx()
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn timing(interval_ms: u64, timeout_ms: u64, duration_ms: Option<u64>) -> Plan {
    Plan {
        interval_ms,
        timeout_ms,
        duration_ms,
        max_in_flight: usize::try_from(timeout_ms.div_ceil(interval_ms) + 1).unwrap(),
    }
}

/// What the scripted server does with a request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    Unavailable,
    Stall(Duration),
}

/// Serves at most 200 connections, each answered by `script(time since
/// the server started)`; returns the URL.
async fn server(script: fn(Duration) -> Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let start = Instant::now();
    tokio::spawn(async move {
        for _ in 0..200 {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(answer(sock, script(start.elapsed())));
        }
    });
    url
}

async fn answer(mut sock: TcpStream, answer: Answer) {
    let mut buf = [0u8; 4096];
    let _ = sock.read(&mut buf).await;
    let status = match answer {
        Answer::Ok => "200 OK",
        Answer::Unavailable => "503 Service Unavailable",
        Answer::Stall(d) => {
            tokio::time::sleep(d).await;
            "200 OK"
        }
    };
    let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
    let _ = sock.write_all(resp.as_bytes()).await;
}

fn timeline_total(out: &Value) -> u64 {
    out["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run[1].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_scripted_outage_is_measured_within_one_interval() {
    // 503 from 400 ms to 900 ms after the server starts.
    let url = server(|t| {
        if (400..900).contains(&t.as_millis()) {
            Answer::Unavailable
        } else {
            Answer::Ok
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let a = args(json!({"url": url, "interval_ms": 50, "duration_secs": 1.5}));
    let out = availability(c, a).await.unwrap();
    assert_eq!(out["requests"], 30, "{out:#}");
    let outages = out["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{out:#}");
    let d = outages[0]["duration_ms"].as_u64().unwrap();
    assert!((430..=570).contains(&d), "outage of {d} ms: {out:#}");
    assert_eq!(outages[0]["ongoing"], false);
    // Every failed sample stands for one interval of the outage.
    assert_eq!(out["failures"].as_u64().unwrap() * 50, d);
    assert_eq!(out["longest_outage_ms"], d);
    assert_eq!(
        out["failure_reasons"]["status 503"]["count"],
        out["failures"]
    );
    let avail = out["availability"].as_f64().unwrap();
    assert!(avail > 0.0 && avail < 100.0, "{avail}");
    assert_eq!(timeline_total(&out), 30);
    assert_eq!(out["timeline"][0][2], "ok");
    assert_eq!(out["timeline"][1][2], "fail");
    assert_eq!(out["truncated"], false);
    let range = json!({"type": "range", "range": [0, 600], "target": "longest_outage_ms"});
    assert!(Tolerance::parse(&range).unwrap().check(&out).unwrap());
}

#[tokio::test]
async fn without_a_duration_it_stops_when_the_method_ends() {
    let url = server(|_| Answer::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(dir.path());
    let events = Arc::clone(&c.events);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        events.end_method();
    });
    let a = args(json!({"url": url, "interval_ms": 50, "duration_secs": null}));
    let begun = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(2), availability(c, a))
        .await
        .expect("the monitor kept running after the method ended")
        .unwrap();
    assert!(begun.elapsed() < Duration::from_millis(700));
    let n = out["requests"].as_u64().unwrap();
    assert!((5..=8).contains(&n), "{n} requests in about 300 ms");
    assert_eq!(out["failures"], 0);
    assert_eq!(out["availability"], 100.0);
    assert_eq!(out["outages"], json!([]));
    assert!(out["time_to_recovery_ms"].is_null());
    assert_eq!(out["timeline"], json!([[0, n, "ok"]]));
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_is_a_failure() {
    let url = server(|_| Answer::Stall(Duration::from_millis(400))).await;
    let dir = tempfile::tempdir().unwrap();
    let a = args(json!({
        "url": url, "interval_ms": 100, "timeout_ms": 150, "duration_secs": 0.3
    }));
    let out = availability(ctx(dir.path()), a).await.unwrap();
    assert_eq!(out["requests"], 3);
    assert_eq!(out["failures"], 3);
    assert_eq!(out["availability"], 0.0);
    assert_eq!(out["failure_reasons"]["timeout"]["count"], 3);
    // The window ends during the outage, which is closed there.
    let o = &out["outages"][0];
    assert_eq!(o["duration_ms"], 300);
    assert_eq!(o["ongoing"], true);
    assert_eq!(o["end"], out["ended"]);
}

#[tokio::test]
async fn dropping_the_monitor_cancels_its_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        // Never answers; a read of 0 bytes means the client hung up.
        let eof = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
        let _ = closed_tx.send(matches!(eof, Ok(Ok(0))));
    });
    let dir = tempfile::tempdir().unwrap();
    let a = args(json!({
        "url": url, "interval_ms": 1000, "timeout_ms": 5000, "duration_secs": 10
    }));
    let run = availability(ctx(dir.path()), a);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), run)
            .await
            .is_err()
    );
    assert!(closed_rx.await.unwrap(), "the request outlived the monitor");
}

#[tokio::test(start_paused = true)]
async fn samples_are_sent_at_their_due_time_whatever_earlier_ones_took() {
    let t0 = Instant::now();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&sent);
    let events = RunEvents::default();
    let (rec, end) = schedule(&timing(50, 1000, Some(1000)), &events, t0, |k| {
        log.lock().unwrap().push(Instant::now() - t0);
        // Every third request takes almost three intervals.
        let took = if k % 3 == 0 { 140 } else { 5 };
        async move {
            tokio::time::sleep(Duration::from_millis(took)).await;
            Ok(())
        }
    })
    .await;
    let expected: Vec<Duration> = (0..20).map(|k| Duration::from_millis(k * 50)).collect();
    assert_eq!(*sent.lock().unwrap(), expected);
    assert_eq!((rec.requests, rec.failures, end), (20, 0, 1000));
}

#[tokio::test(start_paused = true)]
async fn outage_bounds_are_the_due_times_of_the_samples() {
    let t0 = Instant::now();
    let events = RunEvents::default();
    let (rec, end) = schedule(
        &timing(100, 1000, Some(2000)),
        &events,
        t0,
        |k| async move {
            if (5..12).contains(&k) {
                Err(Failure::Status(503))
            } else {
                Ok(())
            }
        },
    )
    .await;
    let out = rec.report(1_000_000_000, end, Some(1_000_450));
    assert_eq!(out["requests"], 20);
    assert_eq!(out["failures"], 7);
    assert_eq!(out["availability"], 65.0);
    assert_eq!(
        out["outages"],
        json!([{
            "start": "1970-01-01T00:16:40.500000+00:00",
            "end": "1970-01-01T00:16:41.200000+00:00",
            "duration_ms": 700,
            "ongoing": false,
        }])
    );
    // The last action ended at +450 ms, the outage at +1200 ms.
    assert_eq!(out["time_to_recovery_ms"], 750);
    assert_eq!(
        out["timeline"],
        json!([[0, 5, "ok"], [500, 7, "fail"], [1200, 8, "ok"]])
    );
    assert_eq!(out["started"], "1970-01-01T00:16:40+00:00");
    assert_eq!(out["ended"], "1970-01-01T00:16:42+00:00");
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_skips_the_sample_as_a_failure() {
    let t0 = Instant::now();
    let events = RunEvents::default();
    let mut sends = 0;
    let mut tight = timing(100, 1000, Some(500));
    tight.max_in_flight = 2;
    let (rec, _) = schedule(&tight, &events, t0, |_| {
        sends += 1;
        std::future::pending()
    })
    .await;
    assert_eq!(sends, 2);
    assert_eq!((rec.requests, rec.failures), (5, 5));
    assert_eq!(rec.reasons["timeout"].0, 2);
    assert_eq!(rec.reasons["skipped"].0, 3);
}

#[tokio::test(start_paused = true)]
async fn the_method_ending_stops_the_schedule_on_the_next_tick() {
    let t0 = Instant::now();
    let events = Arc::new(RunEvents::default());
    let ender = Arc::clone(&events);
    let (rec, end) = schedule(&timing(100, 1000, None), &events, t0, move |k| {
        if k == 3 {
            ender.end_method();
        }
        async { Ok(()) }
    })
    .await;
    assert_eq!((rec.requests, end), (4, 400));
    // Always one sample, even when the method is already over.
    let t0 = Instant::now();
    let (rec, end) = schedule(&timing(100, 1000, None), &events, t0, |_| async { Ok(()) }).await;
    assert_eq!((rec.requests, end), (1, 100));
}

#[test]
fn recovery_is_null_when_the_last_outage_ended_before_the_last_action() {
    let mut rec = Recorder::new(100);
    for k in 0..10 {
        let outcome = if k == 2 {
            Err(Failure::Timeout)
        } else {
            Ok(())
        };
        rec.record(&Sample { k, outcome });
    }
    let out = rec.report(0, 1000, Some(500));
    assert_eq!(out["outages"][0]["duration_ms"], 100);
    assert!(out["time_to_recovery_ms"].is_null());
    let mut rec = Recorder::new(100);
    rec.record(&Sample {
        k: 0,
        outcome: Ok(()),
    });
    assert!(rec.report(0, 100, None)["time_to_recovery_ms"].is_null());
}

#[test]
fn the_output_is_judged_by_range_and_jsonpath_tolerances() {
    let mut rec = Recorder::new(100);
    for k in 0..40 {
        let outcome = if (10..15).contains(&k) || k >= 38 {
            Err(Failure::Connect("refused".into()))
        } else {
            Ok(())
        };
        rec.record(&Sample { k, outcome });
    }
    let out = rec.report(0, 4000, None);
    let judge = |t: Value| Tolerance::parse(&t).unwrap().check(&out).unwrap();
    assert!(judge(
        json!({"type": "range", "range": [0, 600], "target": "longest_outage_ms"})
    ));
    assert!(!judge(
        json!({"type": "range", "range": [0, 400], "target": "longest_outage_ms"})
    ));
    assert!(judge(
        json!({"type": "range", "range": [80, 100], "target": "availability"})
    ));
    assert!(!judge(
        json!({"type": "range", "range": [99, 100], "target": "availability"})
    ));
    assert!(judge(json!({
        "type": "jsonpath", "path": "$.outages[?(@.duration_ms > 600)]", "count": 0
    })));
    assert!(judge(json!({
        "type": "jsonpath", "path": "$.outages[*].ongoing", "expect": [false, true]
    })));
    assert!(judge(
        json!({"type": "jsonpath", "path": "$.failures", "expect": 7})
    ));
}

#[test]
fn arguments_are_checked_before_anything_is_sent() {
    let ok = |v: Value| plan_and_target(&args(v));
    assert!(ok(json!({"url": "http://127.0.0.1/"})).is_ok());
    for bad in [
        json!({"url": "ftp://127.0.0.1/"}),
        json!({"url": "not a url"}),
        json!({"url": "http://127.0.0.1/", "interval_ms": 5}),
        json!({"url": "http://127.0.0.1/", "interval_ms": 10, "timeout_ms": 1000}),
        json!({"url": "http://127.0.0.1/", "timeout_ms": 0}),
        json!({"url": "http://127.0.0.1/", "duration_secs": -1}),
        json!({"url": "http://127.0.0.1/", "expect_status": []}),
        json!({"url": "http://127.0.0.1/", "expect_status": ["399-200"]}),
        json!({"url": "http://127.0.0.1/", "headers": {"bad name": "x"}}),
    ] {
        assert!(ok(bad.clone()).is_err(), "{bad} was accepted");
    }
    let status = |v: Value| expect_status(Some(&v)).unwrap();
    assert_eq!(
        status(json!([503, "2xx", "300-304"])),
        [(503, 503), (200, 299), (300, 304)]
    );
    assert_eq!(expect_status(None).unwrap(), [(200, 399)]);
    let spec_default = AVAILABILITY.spec.args[5].default_value().unwrap();
    assert_eq!(status(spec_default), [(200, 399)]);
}

fn plan_and_target(a: &Map<String, Value>) -> Result<(), ActivityError> {
    plan(a)?;
    target(a).map(|_| ())
}
