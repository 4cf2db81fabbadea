//! `squall agent dataplane …`: the node-side half of the data-plane faults.
//! It runs where kube-proxy's rules live (a node's host network namespace,
//! a helper pod pinned to a node, or a lab namespace via --netns).
//!
//! A flush snapshots first and records its undo in the ledger before it
//! changes anything; restores are checked with a diff, so "recovered" is
//! only said when the live rules equal the snapshot.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use squall_dataplane::activity::{
    flush_undo, node_config, node_runner, restore_summary, restore_verified, target,
};
use squall_dataplane::flush::{FlushMode, PreparedFlush, apply_flush, prepare_flush, save_after};
use squall_dataplane::inspect::{ProxyMode, inspect_node, parse_dump, stale_from_json};
use squall_dataplane::prune::{LEDGER_SUFFIX, PrunePolicy, prune_state_dir};
use squall_dataplane::restore::{diff_live, restore_from_file};
use squall_dataplane::runner::CommandRunner;
use squall_dataplane::snapshot::{IptablesConfig, Snapshot, parse_families, take_snapshot};
use squall_engine::ledger::{Ledger, read_pending};
use squall_engine::log::Logger;

use crate::cli::{AgentCommand, DataplaneArgs, DataplaneCommand, FlushArgs, PruneArgs};
use crate::exit::{FAILED, INVALID, OK};

pub async fn agent(cmd: &AgentCommand, log: &Logger) -> u8 {
    match cmd {
        AgentCommand::Dataplane(args) => dataplane(args, log).await,
    }
}

async fn dataplane(args: &DataplaneArgs, log: &Logger) -> u8 {
    let netns = args.netns.as_deref();
    let result = match &args.command {
        DataplaneCommand::Snapshot { out } => snapshot(netns, out, log).await,
        DataplaneCommand::Flush(flush_args) => flush(netns, flush_args, log).await,
        DataplaneCommand::Restore { from } => restore(netns, from, log).await,
        DataplaneCommand::Diff { from } => diff(netns, from).await,
        DataplaneCommand::Recover { ledger, prune } => recover(ledger, prune, log).await,
        DataplaneCommand::Inspect { dump, mode } => {
            inspect(netns, dump.as_deref(), mode.as_deref()).await
        }
        DataplaneCommand::Stale {
            endpoints,
            services,
        } => stale(netns, endpoints, services.as_deref()).await,
    };
    result.unwrap_or_else(|(code, msg)| {
        log.error(&msg);
        code
    })
}

type Outcome = Result<u8, (u8, String)>;

fn failed(e: impl std::fmt::Display) -> (u8, String) {
    (FAILED, e.to_string())
}

fn print_json(v: &impl Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("cannot print the result: {e}"),
    }
}

async fn snapshot(netns: Option<&str>, out: &Path, log: &Logger) -> Outcome {
    let runner = node_runner(netns);
    let cfg = node_config(runner.as_ref()).await;
    let snap = take_snapshot(runner.as_ref(), &cfg).await.map_err(failed)?;
    snap.save(out).await.map_err(failed)?;
    log.info(&format!(
        "Saved {} table(s) ({} backend) to {}",
        snap.tables.len(),
        snap.backend,
        out.display()
    ));
    Ok(OK)
}

fn mode_of(args: &FlushArgs) -> FlushMode {
    // clap allows exactly one of these and only the table names it parses.
    if let Some(mode) = args.table.as_deref().and_then(|t| t.parse().ok()) {
        mode
    } else if args.all_tables {
        FlushMode::AllTables
    } else if args.kube_chains {
        FlushMode::KubeChains
    } else if args.canary {
        FlushMode::Canary
    } else if args.nft_services {
        FlushMode::NftServices
    } else {
        FlushMode::Nat
    }
}

async fn flush(netns: Option<&str>, args: &FlushArgs, log: &Logger) -> Outcome {
    // Listen before touching anything: a SIGTERM that arrives during the
    // snapshot or the flush (a pod deleted at once) must still restore, and
    // a process without a handler (PID 1 in a container) would drop it.
    let signals = match args.ttl {
        Some(_) => Some(Signals::listen()?),
        None => None,
    };
    let runner = node_runner(netns);
    let cfg = IptablesConfig {
        families: parse_families(Some(&args.family)).map_err(|e| (INVALID, e))?,
        ..node_config(runner.as_ref()).await
    };
    let path = snapshot_path(args);
    let prepared = prepare_flush(runner.as_ref(), &cfg, mode_of(args), &path)
        .await
        .map_err(failed)?;
    log.info(&format!("Snapshot saved to {}", path.display()));
    if args.dry {
        for spec in &prepared.plan {
            println!("{}", spec.display());
        }
        return Ok(OK);
    }
    let (ledger, id) = record_and_apply(runner.as_ref(), &cfg, &prepared, args, netns, log).await?;
    // After the flush, so pruning never delays the fault; this run's own
    // snapshot is protected by its pending undo.
    prune_state(&path, &args.ledger, &args.prune, log);
    match (args.ttl, signals) {
        (Some(ttl), Some(signals)) => {
            let at = Deadline { ttl, signals };
            restore_at_deadline(netns, &prepared.undo, at, &ledger, &id, log).await?;
            prune_state(&path, &args.ledger, &args.prune, log);
            Ok(OK)
        }
        _ => {
            log.info(&how_to_undo(args, &path));
            Ok(OK)
        }
    }
}

/// Records the undo in the ledger, then flushes, saves the rules as
/// flushed and prints the report; returns the ledger and the undo's id.
async fn record_and_apply(
    runner: &dyn CommandRunner,
    cfg: &IptablesConfig,
    prepared: &PreparedFlush,
    args: &FlushArgs,
    netns: Option<&str>,
    log: &Logger,
) -> Result<(Ledger, String), (u8, String)> {
    let ledger = Ledger::open(&args.ledger).map_err(|e| {
        failed(format!(
            "cannot open the ledger {}: {e}",
            args.ledger.display()
        ))
    })?;
    let run_id = format!("agent-{}", std::process::id());
    let id = ledger
        .record(&run_id, &target(netns), flush_undo(netns, &prepared.undo))
        .map_err(|e| failed(format!("cannot record the undo, nothing was changed: {e}")))?;
    let report = apply_flush(runner, prepared).await.map_err(|e| {
        failed(format!(
            "flush failed part-way: {e}; run `squall recover --ledger {}`",
            args.ledger.display()
        ))
    })?;
    // When the rules went, for outage measurements through a helper pod.
    let flushed_at = squall_core::journal::timestamp(unix_micros_now());
    if let Err(e) = save_after(runner, cfg, prepared).await {
        log.warning(&format!(
            "cannot save the rules as flushed ({e}); a restore puts every table back"
        ));
    }
    // The report first: a helper pod's watcher reads `flushed_at` from the
    // log as soon as it sees the "Flushed (" line.
    print_json(&serde_json::json!({
        "mode": report.mode,
        "commands": report.commands,
        "flushed_at": flushed_at,
    }));
    log.info(&format!(
        "Flushed ({}): {}",
        prepared.undo.mode,
        report.commands.join("; ")
    ));
    Ok((ledger, id))
}

/// `--keep-snapshots` / `--max-snapshot-age` as a policy; `None` (no
/// pruning) when neither is given.
fn prune_policy(args: &PruneArgs) -> Option<PrunePolicy> {
    if args.keep_snapshots.is_none() && args.max_snapshot_age.is_none() {
        return None;
    }
    Some(PrunePolicy {
        keep: args.keep_snapshots.unwrap_or(usize::MAX),
        max_age: args.max_snapshot_age.map(Duration::from_secs),
    })
}

/// Prunes the directory of `beside` (a snapshot or ledger path) by the
/// policy in `args`, never removing a snapshot or ledger whose undo is
/// still pending in any ledger there (nor `ledger`, in use). Pruning is
/// housekeeping: a failure is a warning, never a failed flush or restore.
fn prune_state(beside: &Path, ledger: &Path, args: &PruneArgs, log: &Logger) {
    let Some(policy) = prune_policy(args) else {
        return;
    };
    let dir = beside
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let result = pending_state(dir, ledger).and_then(|protected| {
        prune_state_dir(dir, &policy, &protected, std::time::SystemTime::now())
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(report) if !report.removed.is_empty() => log.info(&format!(
            "Pruned {} old data-plane file(s) from {}",
            report.removed.len(),
            dir.display()
        )),
        Ok(_) => {}
        Err(e) => log.warning(&format!("cannot prune {}: {e}", dir.display())),
    }
}

/// The files pruning must keep: every ledger in `dir` with a pending undo,
/// the snapshots those undos restore from, and `ledger`.
fn pending_state(dir: &Path, ledger: &Path) -> Result<BTreeSet<PathBuf>, String> {
    let mut keep: BTreeSet<PathBuf> = [ledger.to_path_buf()].into();
    let listing = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    let ledgers = listing
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(LEDGER_SUFFIX))
        .chain([ledger.to_path_buf()]);
    for path in ledgers {
        // An unreadable ledger protects the whole directory: better a full
        // disk than a lost undo.
        let pending = read_pending(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if pending.is_empty() {
            continue;
        }
        keep.insert(path);
        for p in pending {
            if let Some(snap) = p.undo.data["record"]["snapshot_path"].as_str() {
                keep.insert(PathBuf::from(snap));
            }
        }
    }
    Ok(keep)
}

fn unix_micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn how_to_undo(args: &FlushArgs, snapshot: &Path) -> String {
    format!(
        "Undo recorded in {}: `squall agent dataplane restore --from {}` or `squall recover --ledger {}` puts the rules back",
        args.ledger.display(),
        snapshot.display(),
        args.ledger.display()
    )
}

/// `--snapshot`, or `./dataplane-<unix seconds>.snapshot.json`.
fn snapshot_path(args: &FlushArgs) -> std::path::PathBuf {
    args.snapshot.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("dataplane-{secs}.snapshot.json").into()
    })
}

/// SIGINT and SIGTERM, listened to from the start of a flush with a TTL.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Result<Self, (u8, String)> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Ok(Self { int, term }),
            _ => Err(failed("cannot listen for signals; nothing was changed")),
        }
    }
}

/// When a TTL agent restores: after `ttl` seconds or on a signal.
struct Deadline {
    ttl: u64,
    signals: Signals,
}

/// Waits for the TTL (or a signal), restores, verifies and marks the undo
/// done. Runs even if whoever started the fault is gone.
async fn restore_at_deadline(
    netns: Option<&str>,
    record: &squall_dataplane::flush::UndoRecord,
    mut at: Deadline,
    ledger: &Ledger,
    id: &str,
    log: &Logger,
) -> Outcome {
    let ttl = at.ttl;
    log.info(&format!(
        "Restoring the rules in {ttl}s (Ctrl-C or SIGTERM restores now)"
    ));
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(ttl)) => log.info("TTL reached: restoring the rules"),
        _ = at.signals.int.recv() => log.warning("Received SIGINT: restoring the rules now"),
        _ = at.signals.term.recv() => log.warning("Received SIGTERM: restoring the rules now"),
    }
    let out = restore_verified(netns, record).await.map_err(failed)?;
    ledger.mark_done(id).map_err(failed)?;
    log.info(&restore_summary(&out));
    Ok(OK)
}

async fn restore(netns: Option<&str>, from: &Path, log: &Logger) -> Outcome {
    let runner = node_runner(netns);
    let cfg = node_config(runner.as_ref()).await;
    restore_from_file(runner.as_ref(), &cfg, from)
        .await
        .map_err(failed)?;
    let snap = Snapshot::load(from).await.map_err(failed)?;
    let d = diff_live(runner.as_ref(), &cfg, &snap)
        .await
        .map_err(failed)?;
    if !d.is_clean() {
        print_json(&d);
        return Err(failed(
            "restored, but the live rules still differ from the snapshot",
        ));
    }
    log.info("Recovered: the live rules equal the snapshot");
    Ok(OK)
}

/// Applies a node ledger's pending undos; a missing ledger means the flush
/// never began. The undos carry their own namespace, so `--netns` is moot.
async fn recover(ledger: &Path, prune: &PruneArgs, log: &Logger) -> Outcome {
    match squall_engine::recover::recover(ledger, crate::providers::registry(), log).await {
        Ok(report) if report.failed.is_empty() => {
            log.info(&format!(
                "Recovered: {} undo(s) applied and verified by a diff ({})",
                report.applied.len(),
                report.breakdown()
            ));
            prune_state(ledger, ledger, prune, log);
            Ok(OK)
        }
        Ok(report) => Err(failed(format!(
            "{} undo(s) failed and are still pending in {}",
            report.failed.len(),
            ledger.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log.info(&format!(
                "Nothing to restore: no flush started here ({} does not exist)",
                ledger.display()
            ));
            Ok(OK)
        }
        Err(e) => Err(failed(format!("cannot use {}: {e}", ledger.display()))),
    }
}

async fn diff(netns: Option<&str>, from: &Path) -> Outcome {
    let runner = node_runner(netns);
    let cfg = node_config(runner.as_ref()).await;
    let snap = Snapshot::load(from).await.map_err(failed)?;
    let d = diff_live(runner.as_ref(), &cfg, &snap)
        .await
        .map_err(failed)?;
    if d.is_clean() {
        return Ok(OK);
    }
    print_json(&d);
    Ok(FAILED)
}

async fn inspect(netns: Option<&str>, dump: Option<&Path>, mode: Option<&str>) -> Outcome {
    if let (Some(path), Some(mode)) = (dump, mode) {
        let mode: ProxyMode = mode
            .parse()
            .map_err(|e| (INVALID, format!("--mode: {e}")))?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| (INVALID, format!("{}: {e}", path.display())))?;
        print_json(&parse_dump(mode, &text));
        return Ok(OK);
    }
    let runner = node_runner(netns);
    let cfg = node_config(runner.as_ref()).await;
    let inspection = inspect_node(runner.as_ref(), &cfg).await.map_err(failed)?;
    print_json(&inspection.map);
    Ok(OK)
}

async fn stale(netns: Option<&str>, endpoints: &Path, services: Option<&Path>) -> Outcome {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| (INVALID, format!("{}: {e}", p.display())))
    };
    let slices = read(endpoints)?;
    let services = services.map(read).transpose()?;
    let runner = node_runner(netns);
    let cfg = node_config(runner.as_ref()).await;
    let inspection = inspect_node(runner.as_ref(), &cfg).await.map_err(failed)?;
    let report = stale_from_json(inspection.map, &slices, services.as_deref())
        .map_err(|e| (INVALID, e.to_string()))?;
    print_json(&report);
    Ok(if report.is_clean() { OK } else { FAILED })
}
