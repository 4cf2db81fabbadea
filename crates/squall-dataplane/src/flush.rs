//! Fault injection on kube-proxy's rules, in two steps so that undo comes
//! before harm: [`prepare_flush`] takes a snapshot, writes it durably and
//! returns the [`UndoRecord`] (the caller records it in its ledger), and only
//! then does [`apply_flush`] change anything. The modes:
//!
//! * `nat` — `iptables -t nat -F`: every nat rule goes, kube-proxy's and
//!   everyone else's (Service and NodePort DNAT).
//! * `filter` — `iptables -F`, seed 000's literal command: every filter
//!   rule goes, chain policies stay. On a node whose FORWARD policy is
//!   DROP (Docker-era nodes) forwarded traffic to pods then dies although
//!   the nat rules are intact; on an ACCEPT node little changes.
//! * `mangle` — `iptables -t mangle -F` (kube-proxy's canary lives there,
//!   so this is also noticed by current kube-proxy).
//! * `all-tables` — nat, filter and mangle flushed one after the other:
//!   every table kube-proxy writes.
//! * `kube-chains` — remove only kube-proxy's `KUBE-*` chains and the jumps
//!   into them, with one atomic `iptables-restore --noflush` payload.
//! * `canary` — delete `KUBE-PROXY-CANARY` (mangle, and nat/filter where
//!   present); kube-proxy notices within its sync period and does a full
//!   resync, which makes recovery time measurable.
//! * `nft-services` — nftables mode: flush kube-proxy's `services` chain.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataplaneError, Result};
use crate::nftables;
use crate::ruleset::{SavedRule, parse_save};
use crate::runner::{CommandRunner, CommandSpec, run_checked};
use crate::snapshot::{Backend, Family, IptablesConfig, Snapshot, take_snapshot};

/// kube-proxy's flush-detection chain.
pub const CANARY_CHAIN: &str = "KUBE-PROXY-CANARY";

/// `KUBE-*` chains that belong to the kubelet, not kube-proxy; kube-chains
/// mode leaves them alone.
pub const KUBELET_CHAINS: [&str; 3] =
    ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-FIREWALL"];

/// Which fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushMode {
    /// Flush the whole nat table.
    Nat,
    /// Flush the whole filter table (`iptables -F`); policies stay.
    Filter,
    /// Flush the whole mangle table.
    Mangle,
    /// Flush every table kube-proxy writes: nat, filter and mangle.
    AllTables,
    /// Remove kube-proxy's chains and the jumps to them.
    KubeChains,
    /// Delete the canary chain so kube-proxy resyncs.
    Canary,
    /// nftables mode: empty kube-proxy's `services` dispatch chain
    /// (`nft flush chain ip kube-proxy services`), which only a full sync
    /// repairs.
    NftServices,
}

impl std::str::FromStr for FlushMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nat" => Ok(Self::Nat),
            "filter" => Ok(Self::Filter),
            "mangle" => Ok(Self::Mangle),
            "all-tables" => Ok(Self::AllTables),
            "kube-chains" => Ok(Self::KubeChains),
            "canary" => Ok(Self::Canary),
            "nft-services" => Ok(Self::NftServices),
            other => Err(format!(
                "unknown flush mode {other:?} (nat, filter, mangle, all-tables, kube-chains, canary, nft-services)"
            )),
        }
    }
}

/// The tables kube-proxy writes, in the order `all-tables` flushes them.
pub const KUBE_PROXY_TABLES: [&str; 3] = ["nat", "filter", "mangle"];

impl FlushMode {
    /// The mode's name as the activity argument and reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nat => "nat",
            Self::Filter => "filter",
            Self::Mangle => "mangle",
            Self::AllTables => "all-tables",
            Self::KubeChains => "kube-chains",
            Self::Canary => "canary",
            Self::NftServices => "nft-services",
        }
    }

    /// The `squall agent dataplane flush` flags that select this mode (what
    /// a helper pod on a cluster node runs).
    pub fn agent_args(self) -> &'static [&'static str] {
        match self {
            Self::Nat => &["--table", "nat"],
            Self::Filter => &["--table", "filter"],
            Self::Mangle => &["--table", "mangle"],
            Self::AllTables => &["--all-tables"],
            Self::KubeChains => &["--kube-chains"],
            Self::Canary => &["--canary"],
            Self::NftServices => &["--nft-services"],
        }
    }

    /// The whole tables this mode flushes (empty for the targeted modes).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Self::Nat => &["nat"],
            Self::Filter => &["filter"],
            Self::Mangle => &["mangle"],
            Self::AllTables => &KUBE_PROXY_TABLES,
            Self::KubeChains | Self::Canary | Self::NftServices => &[],
        }
    }
}

impl std::fmt::Display for FlushMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller writes to its undo ledger before the flush is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    /// Always `"dataplane-restore"`: the action that undoes this change.
    pub undo: String,
    /// The fault that is about to be applied.
    pub mode: FlushMode,
    /// Where the snapshot to restore was written.
    pub snapshot_path: PathBuf,
    /// Backend at snapshot time (restore refuses a different one).
    pub backend: Backend,
    /// When the snapshot was taken (RFC 3339).
    pub taken_at: String,
}

/// A flush that has been prepared (snapshot on disk) but not yet applied.
#[derive(Debug, Clone)]
pub struct PreparedFlush {
    /// The undo record, already backed by a durable snapshot file.
    pub undo: UndoRecord,
    /// The snapshot itself.
    pub snapshot: Snapshot,
    /// The commands [`apply_flush`] will run, for dry runs and logs.
    pub plan: Vec<CommandSpec>,
}

/// What [`apply_flush`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    /// The mode applied.
    pub mode: FlushMode,
    /// Each command run, in order, as display strings.
    pub commands: Vec<String>,
}

/// Step 1: snapshot, persist to `snapshot_path`, plan. Changes nothing.
pub async fn prepare_flush<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
    mode: FlushMode,
    snapshot_path: &Path,
) -> Result<PreparedFlush> {
    let snapshot = take_snapshot(runner, cfg).await?;
    let plan = flush_plan(mode, &snapshot, cfg)?;
    snapshot.save(snapshot_path).await?;
    let undo = UndoRecord {
        undo: "dataplane-restore".into(),
        mode,
        snapshot_path: snapshot_path.to_path_buf(),
        backend: snapshot.backend,
        taken_at: snapshot.taken_at.clone(),
    };
    Ok(PreparedFlush {
        undo,
        snapshot,
        plan,
    })
}

/// Where the state right after a flush is kept: beside its snapshot.
pub fn after_path(snapshot_path: &Path) -> std::path::PathBuf {
    snapshot_path.with_extension("after.json")
}

/// Step 3: save the rules as the flush left them, so a later restore can
/// tell whether someone (kube-proxy) has rewritten them since and must not
/// be overwritten with the older snapshot.
pub async fn save_after<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
    prepared: &PreparedFlush,
) -> Result<()> {
    let after = take_snapshot(runner, cfg).await?;
    after.save(&after_path(&prepared.undo.snapshot_path)).await
}

/// Step 2: run the plan. Stops at the first failing command.
pub async fn apply_flush<R: CommandRunner + ?Sized>(
    runner: &R,
    prepared: &PreparedFlush,
) -> Result<FlushReport> {
    let mut commands = Vec::new();
    for spec in &prepared.plan {
        tracing::info!(command = %spec.display(), mode = ?prepared.undo.mode, "flushing");
        run_checked(runner, spec).await?;
        commands.push(spec.display());
    }
    Ok(FlushReport {
        mode: prepared.undo.mode,
        commands,
    })
}

/// The commands that inject `mode` on a node whose rules are `snapshot`,
/// for each family in [`IptablesConfig::families`] (`ip6tables` for IPv6;
/// `nft-services` always covers both nftables families).
pub fn flush_plan(
    mode: FlushMode,
    snapshot: &Snapshot,
    cfg: &IptablesConfig,
) -> Result<Vec<CommandSpec>> {
    if mode == FlushMode::NftServices {
        return nft_services_plan(snapshot);
    }
    let mut plan = Vec::new();
    for &family in &cfg.families {
        if family == Family::Ipv6 && snapshot.tables6.is_empty() {
            return Err(DataplaneError::NothingToFlush(
                "no ip6tables rules on this node (IPv4-only, or ip6tables missing)".into(),
            ));
        }
        plan.extend(family_plan(mode, snapshot, cfg, family)?);
    }
    Ok(plan)
}

fn family_plan(
    mode: FlushMode,
    snapshot: &Snapshot,
    cfg: &IptablesConfig,
    family: Family,
) -> Result<Vec<CommandSpec>> {
    let wait = cfg.wait_secs.to_string();
    let ipt = |args: &[&str]| {
        let mut all = vec!["-w", wait.as_str()];
        all.extend_from_slice(args);
        CommandSpec::new(cfg.program_for(family, "iptables"), all)
    };
    match mode {
        // `-F` empties every chain of the table and leaves chains and their
        // policies in place, exactly like the seeds' commands.
        FlushMode::Nat | FlushMode::Filter | FlushMode::Mangle | FlushMode::AllTables => Ok(mode
            .tables()
            .iter()
            .map(|table| ipt(&["-t", table, "-F"]))
            .collect()),
        FlushMode::Canary => canary_plan(snapshot, family, ipt),
        FlushMode::NftServices => nft_services_plan(snapshot),
        FlushMode::KubeChains => {
            let payload = kube_chains_payload_of(snapshot, family);
            if payload.is_empty() {
                return Err(DataplaneError::NothingToFlush(
                    "no kube-proxy KUBE-* chains".into(),
                ));
            }
            let args = ["-w", wait.as_str(), "--noflush"];
            let program = cfg.program_for(family, "iptables-restore");
            Ok(vec![CommandSpec::new(program, args).with_stdin(payload)])
        }
    }
}

fn canary_plan(
    snapshot: &Snapshot,
    family: Family,
    ipt: impl Fn(&[&str]) -> CommandSpec,
) -> Result<Vec<CommandSpec>> {
    let mut plan = Vec::new();
    // mangle first: it is the copy kube-proxy polls.
    for table in ["mangle", "nat", "filter"] {
        if declares(snapshot.tables_of(family), table, CANARY_CHAIN) {
            plan.push(ipt(&["-t", table, "-F", CANARY_CHAIN]));
            plan.push(ipt(&["-t", table, "-X", CANARY_CHAIN]));
        }
    }
    if plan.is_empty() {
        return Err(DataplaneError::NothingToFlush(format!(
            "no {CANARY_CHAIN} chain in any table (kube-proxy not in iptables mode?)"
        )));
    }
    Ok(plan)
}

fn nft_services_plan(snapshot: &Snapshot) -> Result<Vec<CommandSpec>> {
    let ruleset = snapshot.nft_ruleset.as_deref().unwrap_or_default();
    let plan: Vec<CommandSpec> = nftables::kube_proxy_tables(ruleset)
        .into_iter()
        .map(|(family, _)| {
            CommandSpec::new(
                "nft",
                ["flush", "chain", family, nftables::TABLE, "services"],
            )
        })
        .collect();
    if plan.is_empty() {
        return Err(DataplaneError::NothingToFlush(
            "no nftables kube-proxy table in the snapshot (kube-proxy not in nftables mode, or nft missing)"
                .into(),
        ));
    }
    Ok(plan)
}

fn declares(tables: &std::collections::BTreeMap<String, String>, table: &str, chain: &str) -> bool {
    tables.get(table).is_some_and(|dump| {
        parse_save(dump)
            .get(table)
            .is_some_and(|t| t.chains.contains_key(chain))
    })
}

/// Whether `chain` is one kube-proxy owns.
pub fn is_kube_proxy_chain(chain: &str) -> bool {
    chain.starts_with("KUBE-") && !KUBELET_CHAINS.contains(&chain)
}

/// An `iptables-restore --noflush` payload that removes kube-proxy's chains
/// and every rule elsewhere that jumps into them, table by table. Jumps are
/// deleted first and all chains flushed before any is deleted, because
/// iptables refuses to delete a chain that is still referenced.
pub fn kube_chains_payload(snapshot: &Snapshot) -> String {
    kube_chains_payload_of(snapshot, Family::Ipv4)
}

/// [`kube_chains_payload`] for the tables of `family`.
pub fn kube_chains_payload_of(snapshot: &Snapshot, family: Family) -> String {
    let mut out = String::new();
    for dump in snapshot.tables_of(family).values() {
        for (name, table) in parse_save(dump) {
            let owned: BTreeSet<&String> = table
                .chains
                .keys()
                .filter(|c| is_kube_proxy_chain(c))
                .collect();
            if owned.is_empty() {
                continue;
            }
            out.push_str(&format!("*{name}\n"));
            let jumps = table.rules.iter().filter(|r| {
                !is_kube_proxy_chain(&r.chain) && r.target().is_some_and(is_kube_proxy_chain)
            });
            for rule in jumps {
                out.push_str(&format!("-D {} {}\n", rule.chain, SavedRule::spec(rule)));
            }
            for chain in &owned {
                out.push_str(&format!("-F {chain}\n"));
            }
            for chain in &owned {
                out.push_str(&format!("-X {chain}\n"));
            }
            out.push_str("COMMIT\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::FakeRunner;

    const NAT: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n:CNI-X - [0:0]\n\
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A PREROUTING -j CNI-X\n-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-A\nCOMMIT\n";
    const MANGLE: &str =
        "*mangle\n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n";

    fn fake() -> FakeRunner {
        let f = FakeRunner::new();
        f.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)\n")
            .on_ok(&["iptables-save", "-t", "nat"], NAT)
            .on_ok(&["iptables-save", "-t", "mangle"], MANGLE)
            .on_ok(&["iptables-save", "-t", "filter"], "*filter\nCOMMIT\n");
        f
    }

    fn cfg() -> IptablesConfig {
        IptablesConfig {
            lock_path: None,
            with_nft: false,
            ..IptablesConfig::default()
        }
    }

    #[tokio::test]
    async fn prepare_persists_snapshot_before_any_change() {
        let f = fake();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("undo-snap.json");
        let prepared = prepare_flush(&f, &cfg(), FlushMode::Nat, &path)
            .await
            .expect("prepare");
        assert!(path.exists(), "snapshot must be on disk before apply");
        assert_eq!(prepared.undo.snapshot_path, path);
        let mutating = f
            .calls()
            .iter()
            .filter(|c| !c.program.ends_with("-save") && c.args != ["--version"])
            .count();
        assert_eq!(
            mutating,
            0,
            "prepare must not change anything: {:?}",
            f.calls()
        );
        let report = apply_flush(&f, &prepared).await.expect("apply");
        assert_eq!(report.commands, ["iptables -w 5 -t nat -F"]);
        assert_eq!(
            f.calls().last().expect("call").args,
            ["-w", "5", "-t", "nat", "-F"]
        );
    }

    #[tokio::test]
    async fn canary_plan_deletes_existing_canaries_mangle_first() {
        let f = fake();
        let snap = take_snapshot(&f, &cfg()).await.expect("snap");
        let plan = flush_plan(FlushMode::Canary, &snap, &cfg()).expect("plan");
        let shown: Vec<String> = plan.iter().map(CommandSpec::display).collect();
        assert_eq!(
            shown,
            [
                "iptables -w 5 -t mangle -F KUBE-PROXY-CANARY",
                "iptables -w 5 -t mangle -X KUBE-PROXY-CANARY",
                "iptables -w 5 -t nat -F KUBE-PROXY-CANARY",
                "iptables -w 5 -t nat -X KUBE-PROXY-CANARY",
            ]
        );
        let mut bare = snap.clone();
        bare.tables.clear();
        assert!(matches!(
            flush_plan(FlushMode::Canary, &bare, &cfg()),
            Err(DataplaneError::NothingToFlush(_))
        ));
    }

    #[tokio::test]
    async fn kube_chains_payload_removes_only_kube_proxy_objects() {
        let f = fake();
        let snap = take_snapshot(&f, &cfg()).await.expect("snap");
        let payload = kube_chains_payload(&snap);
        assert!(payload.contains(
            "-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        ));
        assert!(payload.contains("-D OUTPUT "));
        assert!(!payload.contains("CNI-X"), "foreign chains stay: {payload}");
        assert!(
            !payload.contains("KUBE-IPTABLES-HINT"),
            "kubelet chains stay"
        );
        let flush_at = payload.find("-F KUBE-SVC-A").expect("flush");
        let delete_at = payload.find("-X KUBE-SERVICES").expect("delete");
        assert!(flush_at < delete_at, "all flushes precede deletes");
        let plan = flush_plan(FlushMode::KubeChains, &snap, &cfg()).expect("plan");
        assert_eq!(plan[0].args, ["-w", "5", "--noflush"]);
        assert_eq!(plan[0].stdin.as_deref(), Some(payload.as_str()));
    }

    #[tokio::test]
    async fn nft_services_plan_flushes_each_kube_proxy_table() {
        let f = fake();
        f.on_ok(
            &["nft"],
            "table ip kube-proxy {\n\tchain services {\n\t}\n}\ntable ip6 kube-proxy {\n}\n",
        );
        let with_nft = IptablesConfig {
            with_nft: true,
            ..cfg()
        };
        let snap = take_snapshot(&f, &with_nft).await.expect("snap");
        let plan = flush_plan(FlushMode::NftServices, &snap, &with_nft).expect("plan");
        let shown: Vec<String> = plan.iter().map(CommandSpec::display).collect();
        assert_eq!(
            shown,
            [
                "nft flush chain ip kube-proxy services",
                "nft flush chain ip6 kube-proxy services"
            ]
        );
        let without = take_snapshot(&fake(), &cfg()).await.expect("snap");
        assert!(matches!(
            flush_plan(FlushMode::NftServices, &without, &cfg()),
            Err(DataplaneError::NothingToFlush(_))
        ));
    }

    #[tokio::test]
    async fn table_modes_flush_whole_tables_and_touch_no_policy() {
        let snap = take_snapshot(&fake(), &cfg()).await.expect("snap");
        let shown = |mode| -> Vec<String> {
            flush_plan(mode, &snap, &cfg())
                .expect("plan")
                .iter()
                .map(CommandSpec::display)
                .collect()
        };
        assert_eq!(shown(FlushMode::Filter), ["iptables -w 5 -t filter -F"]);
        assert_eq!(shown(FlushMode::Mangle), ["iptables -w 5 -t mangle -F"]);
        assert_eq!(
            shown(FlushMode::AllTables),
            [
                "iptables -w 5 -t nat -F",
                "iptables -w 5 -t filter -F",
                "iptables -w 5 -t mangle -F"
            ]
        );
        for mode in [FlushMode::Filter, FlushMode::AllTables] {
            assert!(
                shown(mode)
                    .iter()
                    .all(|c| !c.contains(" -P ") && !c.contains(" -X")),
                "a flush never changes policies or deletes chains"
            );
        }
    }

    #[tokio::test]
    async fn ipv6_flushes_use_ip6tables_and_need_ip6_rules() {
        let f = fake();
        f.on_ok(&["ip6tables-save", "-t", "nat"], NAT)
            .on_ok(&["ip6tables-save", "-t", "mangle"], MANGLE);
        let dual = IptablesConfig {
            families: vec![Family::Ipv4, Family::Ipv6],
            ..cfg()
        };
        let snap = take_snapshot(&f, &dual).await.expect("snap");
        assert_eq!(snap.tables6.keys().collect::<Vec<_>>(), ["mangle", "nat"]);
        let shown: Vec<String> = flush_plan(FlushMode::Filter, &snap, &dual)
            .expect("plan")
            .iter()
            .map(CommandSpec::display)
            .collect();
        assert_eq!(
            shown,
            ["iptables -w 5 -t filter -F", "ip6tables -w 5 -t filter -F"]
        );
        let v6 = IptablesConfig {
            families: vec![Family::Ipv6],
            backend: Some(Backend::Nft),
            ..cfg()
        };
        let plan = flush_plan(FlushMode::KubeChains, &snap, &v6).expect("plan");
        assert_eq!(plan[0].program, "ip6tables-nft-restore");
        assert!(
            plan[0]
                .stdin
                .as_deref()
                .unwrap_or("")
                .contains("-X KUBE-SVC-A")
        );
        let canary = flush_plan(FlushMode::Canary, &snap, &v6).expect("plan");
        assert_eq!(
            canary[0].display(),
            "ip6tables-nft -w 5 -t mangle -F KUBE-PROXY-CANARY"
        );
        let v4_only = take_snapshot(&fake(), &cfg()).await.expect("snap");
        assert!(v4_only.tables6.is_empty(), "no ip6 tables: none recorded");
        assert!(matches!(
            flush_plan(FlushMode::Nat, &v4_only, &v6),
            Err(DataplaneError::NothingToFlush(_))
        ));
    }

    #[test]
    fn every_mode_round_trips_through_its_name_and_agent_flags() {
        let all = [
            FlushMode::Nat,
            FlushMode::Filter,
            FlushMode::Mangle,
            FlushMode::AllTables,
            FlushMode::KubeChains,
            FlushMode::Canary,
            FlushMode::NftServices,
        ];
        for mode in all {
            assert_eq!(mode.as_str().parse::<FlushMode>(), Ok(mode));
            assert_eq!(
                serde_json::to_value(mode).expect("json"),
                serde_json::Value::from(mode.as_str())
            );
            let flags = mode.agent_args();
            let named = match flags {
                ["--table", table] => (*table).to_owned(),
                [flag] => flag.trim_start_matches("--").to_owned(),
                other => panic!("unexpected flags {other:?}"),
            };
            assert_eq!(named, mode.as_str(), "flags name the mode");
        }
    }

    #[test]
    fn modes_parse_and_serialise_in_kebab_case() {
        assert_eq!(
            "kube-chains".parse::<FlushMode>(),
            Ok(FlushMode::KubeChains)
        );
        assert!("all".parse::<FlushMode>().is_err());
        assert_eq!(
            serde_json::to_string(&FlushMode::KubeChains).expect("json"),
            "\"kube-chains\""
        );
    }
}
