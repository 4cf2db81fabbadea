//! Undo and verification: put a snapshot's tables back with
//! `iptables-restore` (and `ip6tables-restore` for its IPv6 tables) and
//! compare live rules with a snapshot. Restore
//! replaces each saved table wholesale (no `--noflush`), which is what makes
//! it idempotent: restoring twice leaves exactly the snapshot's rules.
//! kube-proxy's nftables tables, when the snapshot holds them, are replaced
//! the same way in one `nft -f -` transaction. "Recovered" means
//! [`diff_live`] returns a clean diff.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{DataplaneError, Result};
use crate::flush::UndoRecord;
use crate::nftables;
use crate::ruleset::{RulesetDiff, diff_rulesets, parse_save};
use crate::runner::{CommandRunner, CommandSpec, run_checked};
use crate::snapshot::{
    Family, IptablesConfig, Snapshot, detect_backend, dump_tables, dump_tables6,
};

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// iptables tables replaced from the snapshot.
    pub tables: Vec<String>,
    /// nftables kube-proxy tables replaced (`ip kube-proxy`, …).
    pub nft_tables: Vec<String>,
    /// When the snapshot had been taken.
    pub snapshot_taken_at: String,
    /// Tables the flush changed that someone rewrote since, left alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<String>,
}

/// Replace the node's tables with the snapshot's.
pub async fn restore_snapshot<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
    snapshot: &Snapshot,
) -> Result<RestoreReport> {
    let (live, _) = detect_backend(runner, cfg).await?;
    if live != snapshot.backend {
        return Err(DataplaneError::BackendMismatch {
            snapshot: snapshot.backend.to_string(),
            live: live.to_string(),
        });
    }
    let tables: Vec<String> = snapshot
        .all_tables()
        .filter(|(_, dump)| has_table(dump))
        .map(|(key, _)| key)
        .collect();
    let ruleset = snapshot.nft_ruleset.as_deref().unwrap_or_default();
    let nft_script = nftables::restore_script(ruleset);
    if tables.is_empty() && nft_script.is_none() {
        return Err(DataplaneError::EmptySnapshot(snapshot.taken_at.clone()));
    }
    let wait = cfg.wait_secs.to_string();
    for family in [Family::Ipv4, Family::Ipv6] {
        if !snapshot.tables_of(family).values().any(|d| has_table(d)) {
            continue;
        }
        let program = cfg.program_for(family, "iptables-restore");
        let spec = CommandSpec::new(program, ["-w", wait.as_str()])
            .with_stdin(snapshot.restore_payload_of(family));
        run_checked(runner, &spec).await?;
    }
    let mut nft_tables = Vec::new();
    if let Some(script) = nft_script {
        run_checked(
            runner,
            &CommandSpec::new("nft", ["-f", "-"]).with_stdin(script),
        )
        .await?;
        nft_tables = nftables::kube_proxy_tables(ruleset)
            .into_iter()
            .map(|(family, _)| format!("{family} {}", nftables::TABLE))
            .collect();
    }
    tracing::info!(?tables, ?nft_tables, taken_at = %snapshot.taken_at, "restored snapshot");
    Ok(RestoreReport {
        tables,
        nft_tables,
        snapshot_taken_at: snapshot.taken_at.clone(),
        superseded: Vec::new(),
    })
}

fn has_table(dump: &str) -> bool {
    dump.lines().any(|l| l.starts_with('*'))
}

/// The live dumps of the snapshot's tables of both families, keyed by
/// [`Family::key`].
async fn dump_live<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
    snapshot: &Snapshot,
) -> Result<BTreeMap<String, String>> {
    let v4 = IptablesConfig {
        tables: snapshot.tables.keys().cloned().collect(),
        ..cfg.clone()
    };
    let mut live = dump_tables(runner, &v4).await?;
    if !snapshot.tables6.is_empty() {
        let v6 = IptablesConfig {
            tables: snapshot.tables6.keys().cloned().collect(),
            with_ip6: true,
            ..cfg.clone()
        };
        for (name, dump) in dump_tables6(runner, &v6).await? {
            live.insert(Family::Ipv6.key(&name), dump);
        }
    }
    Ok(live)
}

/// Undo a flush: put back the tables the flush changed — and only those
/// that nobody has changed since. The state right after the flush is saved
/// beside the snapshot ([`crate::flush::save_after`]); a table whose live
/// rules no longer equal it was rewritten by someone else (kube-proxy
/// resynced, a CNI updated its rules), and putting the older snapshot over
/// it would roll their work back, so it is left alone and named in
/// `superseded`. Without the after-state (a crash between flush and save),
/// every table is restored. Returns the report and the part of the
/// snapshot that was put back, for verification with [`diff_live`].
pub async fn restore_from_undo<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
    undo: &UndoRecord,
) -> Result<(RestoreReport, Snapshot)> {
    let before = Snapshot::load(&undo.snapshot_path).await?;
    let after_path = crate::flush::after_path(&undo.snapshot_path);
    let Ok(after) = Snapshot::load(&after_path).await else {
        let report = restore_snapshot(runner, cfg, &before).await?;
        return Ok((report, before));
    };
    let live = dump_live(runner, cfg, &before).await?;
    let live_nft = if before.nft_ruleset.is_some() {
        Some(
            run_checked(runner, &CommandSpec::new("nft", ["list", "ruleset"]))
                .await?
                .stdout,
        )
    } else {
        None
    };
    let plan = plan_restore(&before, &after, &live, live_nft.as_deref());
    let subset = before.only(&plan.restore, plan.nft);
    let mut report = if plan.restore.is_empty() && !plan.nft {
        RestoreReport {
            tables: Vec::new(),
            nft_tables: Vec::new(),
            snapshot_taken_at: before.taken_at.clone(),
            superseded: Vec::new(),
        }
    } else {
        restore_snapshot(runner, cfg, &subset).await?
    };
    report.superseded = plan.superseded;
    Ok((report, subset))
}

/// Which parts of a snapshot an undo puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// iptables tables the flush changed and nobody touched since.
    pub restore: Vec<String>,
    /// Whether kube-proxy's nftables tables are put back (same rule).
    pub nft: bool,
    /// What the flush changed but someone else has rewritten since.
    pub superseded: Vec<String>,
}

/// The pure decision of [`restore_from_undo`]: a table is restored when
/// the flush changed it (`before` ≠ `after`) and it still is as the flush
/// left it (`live` = `after`).
pub fn plan_restore(
    before: &Snapshot,
    after: &Snapshot,
    live: &std::collections::BTreeMap<String, String>,
    live_nft: Option<&str>,
) -> RestorePlan {
    let parsed = |text: Option<&String>| parse_save(text.map_or("", String::as_str));
    let mut plan = RestorePlan {
        restore: Vec::new(),
        nft: false,
        superseded: Vec::new(),
    };
    let after_tables: BTreeMap<String, &String> = after.all_tables().collect();
    for (key, dump) in before.all_tables() {
        let (b, a, l) = (
            parse_save(dump),
            parsed(after_tables.get(&key).copied()),
            parsed(live.get(&key)),
        );
        if diff_rulesets(&b, &a).is_clean() {
            continue;
        }
        if diff_rulesets(&a, &l).is_clean() {
            plan.restore.push(key);
        } else {
            plan.superseded.push(key);
        }
    }
    if let Some(b) = before.nft_ruleset.as_deref() {
        let norm = nftables::normalised_tables;
        let a = norm(after.nft_ruleset.as_deref().unwrap_or_default());
        if !diff_rulesets(&norm(b), &a).is_clean() {
            if diff_rulesets(&a, &norm(live_nft.unwrap_or_default())).is_clean() {
                plan.nft = true;
            } else {
                plan.superseded.push("nft kube-proxy".into());
            }
        }
    }
    plan
}

/// Load a snapshot file and restore it.
pub async fn restore_from_file<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
    path: &Path,
) -> Result<RestoreReport> {
    let snapshot = Snapshot::load(path).await?;
    restore_snapshot(runner, cfg, &snapshot).await
}

/// Compare the live rules of the snapshot's tables with the snapshot —
/// iptables tables, plus kube-proxy's nftables tables when it has them.
pub async fn diff_live<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
    snapshot: &Snapshot,
) -> Result<RulesetDiff> {
    let live = dump_live(runner, cfg, snapshot).await?;
    let mut diff = diff_snapshot_tables(snapshot, &live);
    let reference = snapshot.nft_ruleset.as_deref().unwrap_or_default();
    if !nftables::kube_proxy_tables(reference).is_empty() {
        let out = run_checked(runner, &CommandSpec::new("nft", ["list", "ruleset"])).await?;
        let nft = diff_rulesets(
            &nftables::normalised_tables(reference),
            &nftables::normalised_tables(&out.stdout),
        );
        diff.tables.extend(nft.tables);
    }
    Ok(diff)
}

/// The pure part of [`diff_live`]: snapshot against already-dumped tables,
/// keyed by [`Family::key`] (`nat`, `ip6:nat`); IPv6 tables are named
/// `ip6:TABLE` in the diff.
pub fn diff_snapshot_tables(
    snapshot: &Snapshot,
    live: &std::collections::BTreeMap<String, String>,
) -> RulesetDiff {
    let mut diff = RulesetDiff::default();
    for family in [Family::Ipv4, Family::Ipv6] {
        if snapshot.tables_of(family).is_empty() {
            continue;
        }
        let reference = parse_save(&snapshot.restore_payload_of(family));
        let live_text: String = live
            .iter()
            .filter(|(key, _)| Family::split_key(key).0 == family)
            .map(|(_, d)| format!("{d}\n"))
            .collect();
        let mut d = diff_rulesets(&reference, &parse_save(&live_text));
        for t in &mut d.tables {
            t.table = family.key(&t.table);
        }
        diff.tables.extend(d.tables);
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::FakeRunner;
    use crate::snapshot::{Backend, take_snapshot};

    const NAT: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n";

    fn cfg() -> IptablesConfig {
        IptablesConfig {
            tables: vec!["nat".into()],
            lock_path: None,
            with_nft: false,
            ..IptablesConfig::default()
        }
    }

    #[tokio::test]
    async fn restore_feeds_the_saved_tables_to_iptables_restore() {
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)")
            .on_ok(&["iptables-save", "-t", "nat"], NAT);
        let snap = take_snapshot(&f, &cfg()).await.expect("snap");
        let report = restore_snapshot(&f, &cfg(), &snap).await.expect("restore");
        assert_eq!(report.tables, ["nat"]);
        let call = f
            .calls()
            .into_iter()
            .find(|c| c.program == "iptables-restore")
            .expect("ran");
        assert_eq!(
            call.args,
            ["-w", "5"],
            "no --noflush: tables are replaced whole"
        );
        assert_eq!(call.stdin.as_deref(), Some(NAT));
    }

    #[tokio::test]
    async fn restore_refuses_other_backend_and_empty_snapshot() {
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.7 (legacy)");
        let mut snap = Snapshot {
            format: 1,
            taken_at: "t".into(),
            taken_at_unix_ms: 0,
            backend: Backend::Nft,
            iptables_version: String::new(),
            tables: [("nat".to_owned(), NAT.to_owned())].into(),
            nft_ruleset: None,
            tables6: BTreeMap::new(),
        };
        let err = restore_snapshot(&f, &cfg(), &snap)
            .await
            .expect_err("mismatch");
        assert!(matches!(err, DataplaneError::BackendMismatch { .. }));
        snap.backend = Backend::Legacy;
        snap.tables.clear();
        let err = restore_snapshot(&f, &cfg(), &snap)
            .await
            .expect_err("empty");
        assert!(matches!(err, DataplaneError::EmptySnapshot(_)));
        assert!(f.calls().iter().all(|c| c.program != "iptables-restore"));
    }

    #[tokio::test]
    async fn restore_replaces_kube_proxy_nft_tables_atomically() {
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)")
            .on_ok(&["iptables-save", "-t", "nat"], NAT)
            .on_ok(
                &["nft", "list", "ruleset"],
                "table ip kube-proxy {\n\tchain services {\n\t}\n}\n",
            );
        let with_nft = IptablesConfig {
            with_nft: true,
            ..cfg()
        };
        let snap = take_snapshot(&f, &with_nft).await.expect("snap");
        let report = restore_snapshot(&f, &with_nft, &snap)
            .await
            .expect("restore");
        assert_eq!(report.nft_tables, ["ip kube-proxy"]);
        let call = f
            .calls()
            .into_iter()
            .find(|c| c.argv() == ["nft", "-f", "-"])
            .expect("nft ran");
        let script = call.stdin.expect("script");
        assert!(script.starts_with("table ip kube-proxy\ndelete table ip kube-proxy\n"));
        assert!(
            diff_live(&f, &with_nft, &snap)
                .await
                .expect("diff")
                .is_clean()
        );
    }

    #[tokio::test]
    async fn diff_live_is_clean_on_same_rules_and_dirty_after_flush() {
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)")
            .on_ok(&["iptables-save", "-t", "nat"], NAT);
        let snap = take_snapshot(&f, &cfg()).await.expect("snap");
        assert!(diff_live(&f, &cfg(), &snap).await.expect("diff").is_clean());
        let flushed = [(
            "nat".to_owned(),
            "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n".to_owned(),
        )]
        .into();
        let d = diff_snapshot_tables(&snap, &flushed);
        assert_eq!(d.tables[0].removed_chains, ["KUBE-SERVICES"]);
        assert_eq!(d.tables[0].chains[0].removed, ["-j KUBE-SERVICES"]);
    }

    fn snap(nat: &str, filter: &str) -> Snapshot {
        Snapshot {
            format: 1,
            taken_at: "t".into(),
            taken_at_unix_ms: 0,
            backend: Backend::Nft,
            iptables_version: String::new(),
            tables: [
                ("nat".to_owned(), nat.to_owned()),
                ("filter".to_owned(), filter.to_owned()),
            ]
            .into(),
            nft_ruleset: None,
            tables6: BTreeMap::new(),
        }
    }

    const FLUSHED: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n";
    const FILTER: &str = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
    const RESYNCED: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.96.0.9/32 -j DNAT --to-destination 10.0.0.1\nCOMMIT\n";

    #[test]
    fn only_tables_the_flush_changed_and_nobody_touched_since_are_restored() {
        let before = snap(NAT, FILTER);
        let after = snap(FLUSHED, FILTER);
        let live: std::collections::BTreeMap<String, String> =
            after.tables.clone().into_iter().collect();
        let plan = plan_restore(&before, &after, &live, None);
        assert_eq!(plan.restore, ["nat"], "filter was not flushed: left as is");
        assert!(plan.superseded.is_empty());
        // kube-proxy resynced nat after the flush: its newer rules stay.
        let mut resynced = live.clone();
        resynced.insert("nat".into(), RESYNCED.into());
        let plan = plan_restore(&before, &after, &resynced, None);
        assert!(plan.restore.is_empty());
        assert_eq!(plan.superseded, ["nat"]);
    }

    #[tokio::test]
    async fn ipv6_tables_are_restored_with_ip6tables_and_named_in_plans_and_diffs() {
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)")
            .on_ok(&["iptables-save", "-t", "nat"], NAT)
            .on_ok(&["ip6tables-save", "-t", "nat"], NAT);
        let snap = take_snapshot(&f, &cfg()).await.expect("snap");
        assert_eq!(snap.tables6["nat"], NAT);
        let report = restore_snapshot(&f, &cfg(), &snap).await.expect("restore");
        assert_eq!(report.tables, ["nat", "ip6:nat"]);
        let v6 = f
            .calls()
            .into_iter()
            .find(|c| c.program == "ip6tables-restore")
            .expect("ip6tables-restore ran");
        assert_eq!(v6.stdin.as_deref(), Some(NAT));
        // Flushed on IPv6 only: the plan and the diff name `ip6:nat`.
        let mut after = snap.clone();
        after.tables6.insert("nat".into(), FLUSHED.into());
        let live: BTreeMap<String, String> =
            after.all_tables().map(|(k, d)| (k, d.clone())).collect();
        let plan = plan_restore(&snap, &after, &live, None);
        assert_eq!(plan.restore, ["ip6:nat"]);
        let d = diff_snapshot_tables(&snap, &live);
        assert_eq!(d.tables.len(), 1);
        assert_eq!(d.tables[0].table, "ip6:nat");
        assert_eq!(snap.only(&plan.restore, false).tables.len(), 0);
        assert_eq!(snap.only(&plan.restore, false).tables6.len(), 1);
    }

    #[tokio::test]
    async fn an_undo_without_the_after_state_restores_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snapshot.json");
        snap(NAT, FILTER).save(&path).await.unwrap();
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)");
        let undo = UndoRecord {
            undo: "dataplane-restore".into(),
            mode: crate::flush::FlushMode::Nat,
            snapshot_path: path.clone(),
            backend: Backend::Nft,
            taken_at: "t".into(),
        };
        let (report, restored) = restore_from_undo(&f, &cfg(), &undo).await.unwrap();
        assert_eq!(report.tables, ["filter", "nat"]);
        assert_eq!(restored.tables.len(), 2);
        // With the after-state saved and the live rules still flushed,
        // only nat goes back.
        snap(FLUSHED, FILTER)
            .save(&crate::flush::after_path(&path))
            .await
            .unwrap();
        f.on_ok(&["iptables-save", "-t", "nat"], FLUSHED)
            .on_ok(&["iptables-save", "-t", "filter"], FILTER);
        let (report, restored) = restore_from_undo(&f, &cfg(), &undo).await.unwrap();
        assert_eq!(report.tables, ["nat"]);
        assert_eq!(restored.tables.keys().collect::<Vec<_>>(), ["nat"]);
    }
}
