//! Snapshots of a node's packet-filter rules: the undo material for every
//! flush. A snapshot holds the detected iptables backend, the raw
//! `iptables-save` dump of each table, the same for `ip6tables-save` where
//! the node has IPv6 rules (dual-stack clusters have both) and, where `nft`
//! exists, the raw `nft list ruleset`, plus the time it was taken. It is written to disk as
//! JSON atomically (temp file, fsync, rename) so a crash never leaves a
//! half-written undo file behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::{DataplaneError, Result};
use crate::runner::{CommandRunner, CommandSpec, run_checked};

/// Version of the snapshot file layout.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The iptables kernel backend. Rules written through one are invisible to
/// the other, so we must read and write through the one kube-proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// The classic x_tables backend (`iptables-legacy`).
    #[serde(rename = "legacy")]
    Legacy,
    /// iptables 1.8+ on nf_tables (`iptables-nft`).
    #[serde(rename = "nf_tables")]
    Nft,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Legacy => "legacy",
            Self::Nft => "nf_tables",
        })
    }
}

/// Read the backend from `iptables --version` output, e.g.
/// `iptables v1.8.9 (nf_tables)`. Releases before 1.8 print no backend and
/// only have the legacy one.
pub fn parse_backend(version_output: &str) -> Option<Backend> {
    let line = version_output.lines().find(|l| l.contains("iptables"))?;
    if line.contains("(nf_tables)") {
        Some(Backend::Nft)
    } else if line.contains("(legacy)") || !line.contains('(') {
        Some(Backend::Legacy)
    } else {
        None
    }
}

/// An address family: `iptables` or `ip6tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4, `iptables*`.
    Ipv4,
    /// IPv6, `ip6tables*`.
    Ipv6,
}

impl Family {
    /// How a table of this family is named in reports and restore plans:
    /// `nat` for IPv4 (as before IPv6 existed here), `ip6:nat` for IPv6.
    pub fn key(self, table: &str) -> String {
        match self {
            Self::Ipv4 => table.to_owned(),
            Self::Ipv6 => format!("ip6:{table}"),
        }
    }

    /// The family and table of a [`Family::key`].
    pub fn split_key(key: &str) -> (Self, &str) {
        match key.strip_prefix("ip6:") {
            Some(table) => (Self::Ipv6, table),
            None => (Self::Ipv4, key),
        }
    }
}

impl std::str::FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ipv4" | "4" => Ok(Self::Ipv4),
            "ipv6" | "6" => Ok(Self::Ipv6),
            other => Err(format!("unknown address family {other:?} (ipv4, ipv6)")),
        }
    }
}

/// The families a flush acts on, from `ipv4` (the default, also for
/// `None`), `ipv6` or `both` (dual-stack: `iptables` then `ip6tables`).
pub fn parse_families(text: Option<&str>) -> std::result::Result<Vec<Family>, String> {
    match text.unwrap_or("ipv4") {
        "both" | "dual" | "dual-stack" => Ok(vec![Family::Ipv4, Family::Ipv6]),
        one => one
            .parse::<Family>()
            .map(|f| vec![f])
            .map_err(|_| format!("unknown family {one:?} (ipv4, ipv6 or both)")),
    }
}

/// The `--family` / `family` spelling of [`parse_families`]' result.
pub fn families_name(families: &[Family]) -> &'static str {
    match families {
        [Family::Ipv6] => "ipv6",
        [_, _, ..] => "both",
        _ => "ipv4",
    }
}

/// How the iptables tools are invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesConfig {
    /// Seconds `iptables`/`iptables-restore` wait for the xtables lock
    /// (`-w`), exactly like kube-proxy does, instead of failing when it runs.
    pub wait_secs: u32,
    /// Tables to dump and restore.
    pub tables: Vec<String>,
    /// The xtables lock file, held while dumping so every table is read
    /// from one consistent moment. `None` skips it (e.g. in a container
    /// that does not mount the host's lock).
    pub lock_path: Option<PathBuf>,
    /// Also record `nft list ruleset` when `nft` is installed.
    pub with_nft: bool,
    /// Force a backend by using its explicit binaries (`iptables-nft-save`,
    /// `iptables-legacy-restore`, …). `None` uses plain `iptables*`, i.e.
    /// whatever the image's alternatives point to. Set it from
    /// [`detect_kube_backend`] when the agent's default may differ from
    /// kube-proxy's.
    pub backend: Option<Backend>,
    /// Also record (and so restore and diff) the `ip6tables` tables when
    /// the node has any.
    pub with_ip6: bool,
    /// The families a flush acts on ([`Family::Ipv4`] alone by default, as
    /// `iptables -F` does).
    pub families: Vec<Family>,
}

impl IptablesConfig {
    /// The binary to run for `tool` (`iptables`, `iptables-save`,
    /// `iptables-restore`) under the configured backend.
    pub fn program(&self, tool: &str) -> String {
        match self.backend {
            None => tool.to_owned(),
            Some(Backend::Legacy) => tool.replacen("iptables", "iptables-legacy", 1),
            Some(Backend::Nft) => tool.replacen("iptables", "iptables-nft", 1),
        }
    }

    /// [`IptablesConfig::program`] for `family`: `ip6tables-nft-save`, …
    /// (the IPv6 tools ship with the IPv4 ones and share their backend).
    pub fn program_for(&self, family: Family, tool: &str) -> String {
        let program = self.program(tool);
        match family {
            Family::Ipv4 => program,
            Family::Ipv6 => program.replacen("iptables", "ip6tables", 1),
        }
    }
}

impl Default for IptablesConfig {
    fn default() -> Self {
        Self {
            wait_secs: 5,
            tables: ["nat", "filter", "mangle"].map(String::from).to_vec(),
            lock_path: Some(PathBuf::from("/run/xtables.lock")),
            with_nft: true,
            backend: None,
            with_ip6: true,
            families: vec![Family::Ipv4],
        }
    }
}

/// A saved copy of the node's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Layout version, [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// When it was taken, RFC 3339 UTC.
    pub taken_at: String,
    /// The same instant in milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// Backend the dumps were read through.
    pub backend: Backend,
    /// First line of `iptables --version`.
    pub iptables_version: String,
    /// Table name → raw `iptables-save -t TABLE` output.
    pub tables: BTreeMap<String, String>,
    /// Raw `nft list ruleset`, when nft is installed and readable.
    pub nft_ruleset: Option<String>,
    /// Table name → raw `ip6tables-save -t TABLE` output, for the tables
    /// that exist (none on a node without IPv6 rules, or in snapshots
    /// written before IPv6 was recorded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables6: BTreeMap<String, String>,
}

impl Snapshot {
    /// The same snapshot with only `tables` (and kube-proxy's nftables
    /// tables when `nft`). `tables` are [`Family::key`]s (`nat`, `ip6:nat`).
    pub fn only(&self, tables: &[String], nft: bool) -> Self {
        let pick = |family: Family, map: &BTreeMap<String, String>| {
            map.iter()
                .filter(|(name, _)| tables.contains(&family.key(name)))
                .map(|(n, d)| (n.clone(), d.clone()))
                .collect()
        };
        Self {
            tables: pick(Family::Ipv4, &self.tables),
            tables6: pick(Family::Ipv6, &self.tables6),
            nft_ruleset: if nft { self.nft_ruleset.clone() } else { None },
            ..self.clone()
        }
    }

    /// The dumps of one family.
    pub fn tables_of(&self, family: Family) -> &BTreeMap<String, String> {
        match family {
            Family::Ipv4 => &self.tables,
            Family::Ipv6 => &self.tables6,
        }
    }

    /// Every table of both families as ([`Family::key`], dump).
    pub fn all_tables(&self) -> impl Iterator<Item = (String, &String)> {
        let v4 = self.tables.iter().map(|(n, d)| (Family::Ipv4.key(n), d));
        let v6 = self.tables6.iter().map(|(n, d)| (Family::Ipv6.key(n), d));
        v4.chain(v6)
    }

    /// All IPv4 table dumps concatenated: valid `iptables-restore` input
    /// that replaces exactly those tables.
    pub fn restore_payload(&self) -> String {
        self.restore_payload_of(Family::Ipv4)
    }

    /// [`Snapshot::restore_payload`] for `family` (`ip6tables-restore`
    /// input for IPv6).
    pub fn restore_payload_of(&self, family: Family) -> String {
        let mut out = String::new();
        for dump in self.tables_of(family).values() {
            out.push_str(dump);
            if !dump.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// Write as JSON to `path` atomically and durably.
    pub async fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| DataplaneError::Json {
            what: "snapshot",
            source,
        })?;
        write_atomic(path, &json).await
    }

    /// Read a snapshot written by [`Snapshot::save`].
    pub async fn load(path: &Path) -> Result<Self> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| io_err("read snapshot", path, source))?;
        let snapshot: Self =
            serde_json::from_slice(&bytes).map_err(|source| DataplaneError::Json {
                what: "snapshot",
                source,
            })?;
        if snapshot.format > SNAPSHOT_FORMAT {
            return Err(DataplaneError::UnsupportedFormat {
                found: snapshot.format,
                supported: SNAPSHOT_FORMAT,
            });
        }
        Ok(snapshot)
    }
}

pub(crate) fn io_err(action: &'static str, path: &Path, source: std::io::Error) -> DataplaneError {
    DataplaneError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `path` via a temp file in the same directory, fsync it
/// and rename over the target, so readers see the old or the new file whole.
pub(crate) async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| io_err("create", &tmp, e))?;
    file.write_all(bytes)
        .await
        .map_err(|e| io_err("write", &tmp, e))?;
    file.sync_all().await.map_err(|e| io_err("sync", &tmp, e))?;
    drop(file);
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| io_err("rename into place", path, e))
}

/// Detect the backend with `iptables --version` (of the configured binary).
pub async fn detect_backend<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
) -> Result<(Backend, String)> {
    let out = run_checked(
        runner,
        &CommandSpec::new(cfg.program("iptables"), ["--version"]),
    )
    .await?;
    let first = out
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let backend = parse_backend(&out.stdout).ok_or_else(|| DataplaneError::UnexpectedOutput {
        program: "iptables --version".into(),
        detail: format!("no backend in {first:?}"),
    })?;
    Ok((backend, first))
}

/// Dump every configured table (under the xtables lock when configured).
pub async fn dump_tables<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
) -> Result<BTreeMap<String, String>> {
    let _guard = match &cfg.lock_path {
        Some(path) => Some(XtablesLock::acquire(path, cfg.wait_secs).await?),
        None => None,
    };
    let mut tables = BTreeMap::new();
    for table in &cfg.tables {
        let spec = CommandSpec::new(cfg.program("iptables-save"), ["-t", table.as_str()]);
        let out = run_checked(runner, &spec).await?;
        tables.insert(table.clone(), out.stdout);
    }
    Ok(tables)
}

/// Dump the configured tables with `ip6tables-save` (under the xtables
/// lock when configured). Tables the node does not have — no IPv6 rules,
/// no `ip6tables`, an `ip6_tables` module not loaded — are left out rather
/// than failing: an IPv4-only node has nothing there to flush or restore.
/// Empty when [`IptablesConfig::with_ip6`] is off.
pub async fn dump_tables6<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
) -> Result<BTreeMap<String, String>> {
    let mut tables = BTreeMap::new();
    if !cfg.with_ip6 {
        return Ok(tables);
    }
    let _guard = match &cfg.lock_path {
        Some(path) => Some(XtablesLock::acquire(path, cfg.wait_secs).await?),
        None => None,
    };
    for table in &cfg.tables {
        let program = cfg.program_for(Family::Ipv6, "iptables-save");
        let spec = CommandSpec::new(program, ["-t", table.as_str()]);
        match runner.run(&spec).await {
            Ok(out) if out.success() && out.stdout.lines().any(|l| l.starts_with('*')) => {
                tables.insert(table.clone(), out.stdout);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::info!(%err, "ip6tables not available; IPv6 rules not recorded");
                break;
            }
        }
    }
    Ok(tables)
}

/// Which backend holds kube-proxy's rules, the way kubernetes-sigs'
/// iptables-wrapper decides: the kubelet's hint chains
/// (`KUBE-IPTABLES-HINT`, `KUBE-KUBELET-CANARY`) win; otherwise the backend
/// with more `KUBE-` lines. `None` when neither has any (or neither tool
/// exists).
pub async fn detect_kube_backend<R: CommandRunner + ?Sized>(runner: &R) -> Option<Backend> {
    let mut scores = Vec::new();
    for (backend, program) in [
        (Backend::Nft, "iptables-nft-save"),
        (Backend::Legacy, "iptables-legacy-save"),
    ] {
        let dump = match runner
            .run(&CommandSpec::new(program, Vec::<String>::new()))
            .await
        {
            Ok(out) if out.success() => out.stdout,
            _ => continue,
        };
        let hint = dump.contains(":KUBE-IPTABLES-HINT") || dump.contains(":KUBE-KUBELET-CANARY");
        let kube_lines = dump
            .lines()
            .filter(|l| l.starts_with(":KUBE-") || l.starts_with("-A KUBE-"))
            .count();
        scores.push((hint, kube_lines, backend));
    }
    scores
        .into_iter()
        .filter(|(hint, lines, _)| *hint || *lines > 0)
        .max_by_key(|(hint, lines, _)| (*hint, *lines))
        .map(|(_, _, backend)| backend)
}

/// `nft list ruleset`, or `None` when nft is missing or refuses.
async fn dump_nft<R: CommandRunner + ?Sized>(runner: &R) -> Option<String> {
    match runner
        .run(&CommandSpec::new("nft", ["list", "ruleset"]))
        .await
    {
        Ok(out) if out.success() => Some(out.stdout),
        Ok(out) => {
            tracing::warn!(stderr = %out.stderr.trim(), "nft list ruleset failed; not recorded");
            None
        }
        Err(err) => {
            tracing::info!(%err, "nft not available; not recorded");
            None
        }
    }
}

/// Take a snapshot through `runner`.
pub async fn take_snapshot<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
) -> Result<Snapshot> {
    let (backend, iptables_version) = detect_backend(runner, cfg).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let tables = dump_tables(runner, cfg).await?;
    let tables6 = dump_tables6(runner, cfg).await?;
    let nft_ruleset = if cfg.with_nft {
        dump_nft(runner).await
    } else {
        None
    };
    Ok(Snapshot {
        format: SNAPSHOT_FORMAT,
        taken_at: squall_core::journal::rfc3339_secs(now.as_secs()),
        taken_at_unix_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
        backend,
        iptables_version,
        tables,
        nft_ruleset,
        tables6,
    })
}

/// An exclusive `flock` on the xtables lock file — the same lock
/// `iptables -w` and kube-proxy take — released on drop. `iptables-save`
/// does not lock by itself, so we hold it around our dumps.
#[derive(Debug)]
pub struct XtablesLock {
    file: std::fs::File,
}

impl XtablesLock {
    /// Acquire the lock, polling for at most `wait_secs` seconds.
    pub async fn acquire(path: &Path, wait_secs: u32) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io_err("open xtables lock", path, e))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait_secs));
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { file }),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(io_err(
                        "timed out waiting for xtables lock",
                        path,
                        std::io::Error::from(std::io::ErrorKind::TimedOut),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io_err("lock xtables lock", path, e));
                }
            }
        }
    }
}

impl Drop for XtablesLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the flock as well; unlock
        // explicitly so the release does not depend on drop order.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{FakeReply, FakeRunner};

    #[test]
    fn backend_is_read_from_version_line() {
        assert_eq!(
            parse_backend("iptables v1.8.9 (nf_tables)\n"),
            Some(Backend::Nft)
        );
        assert_eq!(
            parse_backend("iptables v1.8.7 (legacy)"),
            Some(Backend::Legacy)
        );
        assert_eq!(parse_backend("iptables v1.6.1"), Some(Backend::Legacy));
        assert_eq!(parse_backend("iptables v1.9 (weird)"), None);
        assert_eq!(parse_backend(""), None);
    }

    #[test]
    fn families_and_ip6_programs() {
        assert_eq!(parse_families(None), Ok(vec![Family::Ipv4]));
        assert_eq!(parse_families(Some("ipv6")), Ok(vec![Family::Ipv6]));
        let both = parse_families(Some("both")).expect("both");
        assert_eq!(both, [Family::Ipv4, Family::Ipv6]);
        assert_eq!(families_name(&both), "both");
        assert!(parse_families(Some("ipx")).is_err());
        let cfg = IptablesConfig {
            backend: Some(Backend::Legacy),
            ..IptablesConfig::default()
        };
        assert_eq!(
            cfg.program_for(Family::Ipv6, "iptables-save"),
            "ip6tables-legacy-save"
        );
        assert_eq!(
            IptablesConfig::default().program_for(Family::Ipv6, "iptables"),
            "ip6tables"
        );
        assert_eq!(
            Family::split_key(&Family::Ipv6.key("nat")),
            (Family::Ipv6, "nat")
        );
    }

    fn scripted() -> FakeRunner {
        let fake = FakeRunner::new();
        fake.on_ok(&["iptables", "--version"], "iptables v1.8.9 (nf_tables)\n")
            .on_ok(
                &["iptables-save", "-t", "nat"],
                "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n",
            )
            .on_ok(&["iptables-save", "-t", "filter"], "*filter\nCOMMIT\n")
            .on(&["nft"], FakeReply::NotFound);
        fake
    }

    #[tokio::test]
    async fn snapshot_records_backend_tables_and_survives_disk() {
        let fake = scripted();
        let cfg = IptablesConfig {
            tables: vec!["nat".into(), "filter".into()],
            lock_path: None,
            ..IptablesConfig::default()
        };
        let snap = take_snapshot(&fake, &cfg).await.expect("snapshot");
        assert_eq!(snap.backend, Backend::Nft);
        assert_eq!(snap.tables.len(), 2);
        assert!(snap.nft_ruleset.is_none(), "nft missing is not an error");
        assert!(snap.restore_payload().contains(":KUBE-SERVICES"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("snap.json");
        snap.save(&path).await.expect("save");
        assert_eq!(Snapshot::load(&path).await.expect("load"), snap);
        let newer = Snapshot {
            format: SNAPSHOT_FORMAT + 1,
            ..snap
        };
        newer.save(&path).await.expect("save");
        let err = Snapshot::load(&path).await.expect_err("future format");
        assert!(matches!(err, DataplaneError::UnsupportedFormat { .. }));
        tokio::fs::write(&path, b"{\"format\": 1}")
            .await
            .expect("write");
        assert!(matches!(
            Snapshot::load(&path).await,
            Err(DataplaneError::Json { .. })
        ));
    }

    #[tokio::test]
    async fn snapshot_fails_when_a_dump_fails() {
        let fake = FakeRunner::new();
        fake.on_ok(&["iptables", "--version"], "iptables v1.8.7 (legacy)")
            .on(
                &["iptables-save"],
                FakeReply::Output(crate::runner::CommandOutput::failed(1, "Permission denied")),
            );
        let cfg = IptablesConfig {
            lock_path: None,
            ..IptablesConfig::default()
        };
        let err = take_snapshot(&fake, &cfg).await.expect_err("must fail");
        assert!(err.to_string().contains("Permission denied"));
    }

    #[test]
    fn explicit_backend_selects_its_binaries() {
        let mut cfg = IptablesConfig::default();
        assert_eq!(cfg.program("iptables-save"), "iptables-save");
        cfg.backend = Some(Backend::Legacy);
        assert_eq!(cfg.program("iptables-restore"), "iptables-legacy-restore");
        cfg.backend = Some(Backend::Nft);
        assert_eq!(cfg.program("iptables"), "iptables-nft");
    }

    #[tokio::test]
    async fn kube_backend_follows_hint_then_rule_count() {
        let f = FakeRunner::new();
        f.on_ok(
            &["iptables-nft-save"],
            "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j X\nCOMMIT\n",
        )
        .on_ok(
            &["iptables-legacy-save"],
            "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n",
        );
        assert_eq!(
            detect_kube_backend(&f).await,
            Some(Backend::Legacy),
            "hint wins"
        );
        let f = FakeRunner::new();
        f.on_ok(&["iptables-nft-save"], ":KUBE-A - [0:0]\n:KUBE-B - [0:0]\n")
            .on_ok(&["iptables-legacy-save"], ":KUBE-A - [0:0]\n");
        assert_eq!(
            detect_kube_backend(&f).await,
            Some(Backend::Nft),
            "more rules win"
        );
        let f = FakeRunner::new();
        f.on(&["iptables-nft-save"], FakeReply::NotFound)
            .on_ok(&["iptables-legacy-save"], "*nat\nCOMMIT\n");
        assert_eq!(detect_kube_backend(&f).await, None);
    }

    #[tokio::test]
    async fn xtables_lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("xtables.lock");
        let first = XtablesLock::acquire(&path, 1).await.expect("first");
        let second = XtablesLock::acquire(&path, 0).await;
        assert!(second.is_err(), "lock must be exclusive");
        drop(first);
        XtablesLock::acquire(&path, 1).await.expect("free again");
    }
}
