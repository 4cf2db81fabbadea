//! The command line: every command, option and help text. This is the only
//! place in squall that knows about flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// squall runs chaos experiments written in the Chaos Toolkit format —
/// steady-state hypothesis, method, rollbacks — as one static binary, and
/// never leaves a change behind without a way to undo it.
///
/// Exit codes: 0 the experiment completed and did not deviate; 1 it ran
/// and deviated, failed, was aborted or was interrupted (or squall itself
/// failed); 2 the input was invalid (experiment, variables, settings or
/// command line).
#[derive(Debug, Parser)]
#[command(name = "squall", version, max_term_width = 100)]
pub struct Cli {
    /// Show debug lines on the console (the log file always has them).
    #[arg(long, global = true)]
    pub verbose: bool,
    /// Append the full debug log to this file.
    #[arg(long, global = true, value_name = "PATH", default_value = "squall.log")]
    pub log_file: PathBuf,
    /// Do not write a log file.
    #[arg(long, global = true)]
    pub no_log_file: bool,
    /// Settings file (YAML): `runtime.rollbacks.strategy`,
    /// `runtime.hypothesis.strategy`, `notifications` (docs/notifications.md).
    /// Chaos Toolkit's settings file is read when this is not given and it
    /// exists.
    #[arg(long, global = true, value_name = "PATH")]
    pub settings: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment: hypothesis, method, hypothesis again, rollbacks.
    ///
    /// Rollbacks run after a deviation, a failed activity, and on Ctrl-C or
    /// SIGTERM. A second signal skips the remaining rollbacks and exits;
    /// what they did not undo stays in the undo ledger for `squall recover`.
    Run(RunArgs),
    /// Check an experiment and report every problem with its location.
    Validate(ValidateArgs),
    /// Write the native activities as a Chaos Toolkit discovery.json.
    Discover(DiscoverArgs),
    /// Turn run journals into a report: HTML, Markdown, PDF, JUnit or JSON.
    ///
    /// Reads squall's journals and Chaos Toolkit's. Upstream's argument
    /// order: `squall report --export-format=pdf journal.json report.pdf`.
    Report(ReportArgs),
    /// Undo every change a killed or interrupted run left behind.
    ///
    /// Reads the undo ledger (written next to the journal by `squall run`),
    /// applies each pending undo newest first and marks it done. Running it
    /// again changes nothing.
    Recover(RecoverArgs),
    /// Node-side commands, run on a node in its host network namespace
    /// (or in a helper pod pinned to it).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// The built-in Kubernetes API simulator, to try experiments without a
    /// cluster.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Serve a simulated cluster's API on 127.0.0.1 until Ctrl-C or SIGTERM.
    ///
    /// Writes a kubeconfig once the API is ready, so `KUBECONFIG=PATH
    /// kubectl get nodes` works against it. State lives in memory and is
    /// gone when it stops.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to write the kubeconfig for the simulated cluster.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: PathBuf,
    /// The API port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How many worker nodes (`node-1` … `node-N`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: u16,
    /// Seed for names and random choices: the same seed gives the same run.
    #[arg(long, default_value_t = 0x5ca11)]
    pub seed: u64,
    /// The demo application's gateway port on 127.0.0.1 (0 picks a free
    /// one); it routes by Host header through Istio Gateways /
    /// VirtualServices and Ingresses, with faults, retries and timeouts.
    #[arg(long, default_value_t = 0)]
    pub gateway_port: u16,
    /// Start with a prepared state: `empty`, `go-demo-8` (the book's
    /// chapter-4 application) or `go-demo-8-istio` (with Istio).
    #[arg(long, default_value = "empty", value_parser = ["empty", "go-demo-8", "go-demo-8-istio"])]
    pub scenario: String,
    /// Run host-network pods of IMAGE as real processes of the executable
    /// PATH instead of simulating them, e.g. squall's data-plane helper
    /// pods: `--run-image squall:dev=$(command -v squall)`. Repeatable.
    #[arg(long, value_name = "IMAGE=PATH")]
    pub run_image: Vec<String>,
    /// Play NODE by the network namespace NETNS: the processes of
    /// `--run-image` pods on NODE run inside it; such pods on a node without
    /// one fail without running. Repeatable.
    #[arg(long, value_name = "NODE=NETNS")]
    pub node_netns: Vec<String>,
    /// Where the nodes' hostPath volumes live for `--run-image` pods
    /// (`DIR/<node>/<path>`); keep it across restarts, as squall keeps
    /// state on the nodes [default: squall-sandbox-hosts in the system's
    /// temporary directory].
    #[arg(long, value_name = "DIR")]
    pub host_root: Option<PathBuf>,
    /// Pulling IMAGE fails: its pods stay Pending with `ErrImagePull`, as
    /// on a node that cannot reach the registry. Repeatable.
    #[arg(long, value_name = "IMAGE")]
    pub fail_pull: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// kube-proxy's rules: snapshot, flush, restore, diff, inspect, stale.
    ///
    /// Every command takes the xtables lock kube-proxy uses, so it never
    /// races a kube-proxy sync.
    Dataplane(DataplaneArgs),
}

#[derive(Debug, Args)]
pub struct DataplaneArgs {
    /// Work inside this network namespace (`ip netns exec NAME`) instead of
    /// the current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub netns: Option<String>,
    #[command(subcommand)]
    pub command: DataplaneCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataplaneCommand {
    /// Save the nat, filter and mangle tables (and kube-proxy's nftables
    /// tables where nft exists) to a file.
    Snapshot {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Flush rules, after saving a snapshot and recording the undo in the
    /// ledger. With --ttl, stay and restore at the deadline (or at once on
    /// Ctrl-C/SIGTERM); without it, `restore` or `squall recover` undo it.
    Flush(FlushArgs),
    /// Restore the rules from a snapshot, then check they equal it.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Apply the undos a flush left pending in a ledger on this node (what
    /// squall's restore helper pod runs). A flush that never started left
    /// no ledger: nothing to do, exit 0. An undo a TTL agent already
    /// applied (after a clean diff) is not applied again.
    Recover {
        /// The ledger the flush recorded its undo in (`flush --ledger`).
        #[arg(long, value_name = "PATH")]
        ledger: PathBuf,
        #[command(flatten)]
        prune: PruneArgs,
    },
    /// Compare the live rules with a snapshot: exit 0 when equal, else 1
    /// and the differences as JSON.
    Diff {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Each Service port and its endpoints with their weights or
    /// probabilities, as JSON, from the live rules or a saved dump.
    Inspect {
        /// Parse this saved dump instead of the live rules.
        #[arg(long, value_name = "FILE", requires = "mode")]
        dump: Option<PathBuf>,
        /// The dump's format: iptables, nftables or ipvs.
        #[arg(long)]
        mode: Option<String>,
    },
    /// Compare the live rules with EndpointSlices: exit 0 when nothing is
    /// stale, else 1 and the findings as JSON.
    Stale {
        /// `kubectl get endpointslices -A -o json` output.
        #[arg(long, value_name = "FILE")]
        endpoints: PathBuf,
        /// `kubectl get services -A -o json` output (names IPVS entries).
        #[arg(long, value_name = "FILE")]
        services: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["table", "all_tables", "kube_chains", "canary", "nft_services"])))]
pub struct FlushArgs {
    /// Flush a whole table, as `iptables -t TABLE -F`: `nat`, `filter`
    /// (seed 000's `iptables -F`) or `mangle`. Chain policies stay.
    #[arg(long, value_parser = ["nat", "filter", "mangle"])]
    pub table: Option<String>,
    /// Flush nat, filter and mangle: every table kube-proxy writes.
    #[arg(long)]
    pub all_tables: bool,
    /// Which rules to flush: `ipv4` (`iptables`), `ipv6` (`ip6tables`) or
    /// `both` (dual-stack). Snapshots and restores always cover both.
    #[arg(long, default_value = "ipv4", value_parser = ["ipv4", "ipv6", "both"])]
    pub family: String,
    /// Remove only kube-proxy's chains and the jumps to them.
    #[arg(long)]
    pub kube_chains: bool,
    /// Delete the KUBE-PROXY-CANARY chains so kube-proxy does a full resync.
    #[arg(long)]
    pub canary: bool,
    /// Empty kube-proxy's nftables services chain.
    #[arg(long)]
    pub nft_services: bool,
    /// Where to save the snapshot [default: ./dataplane-<time>.snapshot.json].
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// The undo ledger to record in.
    #[arg(long, value_name = "PATH", default_value = "dataplane.ledger.jsonl")]
    pub ledger: PathBuf,
    /// Restore by itself after this many seconds, even if nothing else is
    /// left alive to ask for it.
    #[arg(long, value_name = "SECS")]
    pub ttl: Option<u64>,
    /// Take the snapshot and print the commands, change nothing.
    #[arg(long)]
    pub dry: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
}

/// Pruning of the snapshot's directory (a node's state directory), before
/// a flush and after every verified restore. Only `*.snapshot.json`,
/// `*.snapshot.after.json` and `*.ledger.jsonl` files whose undo is done are
/// removed; without either flag nothing is.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep at most this many snapshots (and node ledgers), newest first.
    #[arg(long, value_name = "N")]
    pub keep_snapshots: Option<usize>,
    /// Remove finished snapshots and ledgers older than this many seconds.
    #[arg(long, value_name = "SECS")]
    pub max_snapshot_age: Option<u64>,
}

/// Where experiment variables come from.
#[derive(Debug, Args)]
pub struct VarArgs {
    /// Set a configuration value: NAME=VALUE or NAME:TYPE=VALUE (TYPE: str,
    /// int, float, bool, json). Repeatable; wins over --var-file.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Load variables from a YAML/JSON file with `configuration` and
    /// `secrets` mappings, or from a .env file (NAME=VALUE lines, set in
    /// the environment). Repeatable; later files win.
    #[arg(long = "var-file", value_name = "PATH")]
    pub var_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (.yaml, .yml or .json).
    pub experiment: PathBuf,
    /// Where to write the journal.
    #[arg(long, value_name = "PATH", default_value = "journal.json")]
    pub journal_path: PathBuf,
    /// The undo ledger [default: next to the journal, <stem>.ledger.jsonl].
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    #[command(flatten)]
    pub vars: VarArgs,
    /// When to play rollbacks [default: from the experiment or settings,
    /// else `default`: after completion, deviation, failure or a signal].
    #[arg(long, value_enum)]
    pub rollback_strategy: Option<RollbackArg>,
    /// When to check the steady-state hypothesis [default: before and
    /// after the method].
    #[arg(long, value_enum)]
    pub hypothesis_strategy: Option<HypothesisArg>,
    /// Seconds between checks with `during-method` or `continuously`.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub hypothesis_frequency: f64,
    /// Stop the method as soon as a continuous check fails.
    #[arg(long)]
    pub fail_fast: bool,
    /// The kubeconfig for Kubernetes activities [default: KUBECONFIG, then
    /// ~/.kube/config, then the in-cluster service account].
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: the `kubernetes_context`
    /// configuration value, then KUBERNETES_CONTEXT, then current-context].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Do not run some activities: `activities` (the default when the flag
    /// is given alone), `actions`, `probes`, or `pause` (skip pauses only).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "activities", value_name = "MODE")]
    pub dry: Option<DryArg>,
    /// Blast radius: the most pods, nodes or VirtualServices one action may
    /// touch; overrides the experiment's `squall.limits.max_targets`. An
    /// action that would exceed it fails before changing anything.
    #[arg(long, value_name = "N")]
    pub max_targets: Option<u64>,
    /// Blast radius as a percentage (0-100) of the pool an action picks
    /// from; overrides `squall.limits.max_percent`.
    #[arg(long, value_name = "PERCENT")]
    pub max_percent: Option<f64>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The experiment file (.yaml, .yml or .json).
    pub experiment: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Limit to these packages (for example `squall`); all when omitted.
    pub packages: Vec<String>,
    /// Where to write the discovery document.
    #[arg(long, value_name = "PATH", default_value = "discovery.json")]
    pub discovery_path: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// html, markdown, pdf, junit (XML) or json [default: from REPORT's
    /// extension (.html, .md, .pdf, .xml, .json), else markdown].
    #[arg(long, value_name = "FORMAT")]
    pub export_format: Option<String>,
    /// The report's title [default: the experiment's title for one
    /// journal, else "Chaos Engineering Report"].
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    #[command(flatten)]
    pub vars: VarArgs,
    /// The journals to report on, then the report file to write.
    #[arg(required = true, num_args = 2.., value_name = "JOURNAL... REPORT")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The undo ledger to apply.
    #[arg(long, value_name = "PATH", default_value = "journal.ledger.jsonl")]
    pub ledger: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RollbackArg {
    Default,
    Always,
    Never,
    Deviated,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HypothesisArg {
    Default,
    BeforeMethodOnly,
    AfterMethodOnly,
    #[value(alias = "during-method-only")]
    DuringMethod,
    #[value(alias = "continously")]
    Continuously,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DryArg {
    Activities,
    Actions,
    Probes,
    Pause,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dry_alone_means_activities() {
        let cli = Cli::try_parse_from(["squall", "run", "x.yaml", "--dry"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        assert!(matches!(args.dry, Some(DryArg::Activities)));
        let cli = Cli::try_parse_from(["squall", "run", "--dry=pause", "x.yaml"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        assert!(matches!(args.dry, Some(DryArg::Pause)));
    }

    #[test]
    fn report_takes_journals_then_the_report() {
        let cli = Cli::try_parse_from([
            "squall",
            "report",
            "--export-format=pdf",
            "a.json",
            "b.json",
            "out.pdf",
        ])
        .unwrap();
        let Command::Report(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.export_format.as_deref(), Some("pdf"));
        assert_eq!(args.paths.len(), 3);
        assert!(Cli::try_parse_from(["squall", "report", "only.json"]).is_err());
    }
}
