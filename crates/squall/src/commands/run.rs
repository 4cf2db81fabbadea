//! `squall run`: validate, then run the experiment with signal handling, and
//! map the verdict to the exit code.

use std::sync::Arc;

use serde_json::Value;
use squall_activity::Services;
use squall_core::doc::Document;
use squall_core::model::{Limits, Provider};
use squall_core::validate::Validated;
use squall_engine::ledger::default_path;
use squall_engine::log::Logger;
use squall_engine::runner::{
    self, Dry, HypothesisStrategy, Interrupts, RollbackStrategy, RunOptions,
};
use squall_kube::{ConnectOptions, Kube};

use super::validate::report;
use crate::cli::{DryArg, HypothesisArg, RollbackArg, RunArgs};
use crate::exit::{self, FAILED};
use crate::load::{load_vars, read_document, settings, validate_experiment};
use crate::notify::{self, Notifier};

pub async fn run(args: &RunArgs, settings_path: Option<&std::path::Path>, log: Arc<Logger>) -> u8 {
    let (settings, notifier) = match setup(args, settings_path, &log) {
        Ok(ready) => ready,
        Err(lines) => return report(&log, &lines),
    };
    log.info("Validating the experiment's syntax");
    let doc = match read_document(&args.experiment) {
        Ok(doc) => doc,
        Err(e) => return report(&log, &e.0),
    };
    // As upstream: `run-started` with the experiment, before validation.
    let experiment = notify::experiment_payload(&doc.value);
    notifier.emit("run-started", "run", experiment.clone(), None);
    let code = match prepare(args, &settings, &doc, &log) {
        Ok((validated, opts)) => run_prepared(args, validated, opts, &log, &notifier).await,
        Err(lines) => {
            let error = Some(lines.join("\n"));
            notifier.emit("validate-failed", "validate", experiment, error);
            report(&log, &lines)
        }
    };
    // Every send is bounded by its own timeout; none changes the exit code.
    notifier.finish().await;
    code
}

/// What is checked before the experiment is read: the journal's
/// directory, and the settings file with its notifications.
fn setup(
    args: &RunArgs,
    settings_path: Option<&std::path::Path>,
    log: &Arc<Logger>,
) -> Result<(Value, Notifier), Vec<String>> {
    if let Some(problem) = unwritable(&args.journal_path) {
        return Err(vec![problem]);
    }
    let settings = settings(settings_path).map_err(|e| e.0)?;
    let notifier = Notifier::from_settings(&settings, log.clone())?;
    Ok((settings, notifier))
}

async fn run_prepared(
    args: &RunArgs,
    validated: Validated,
    mut opts: RunOptions,
    log: &Arc<Logger>,
    notifier: &Notifier,
) -> u8 {
    if uses_kubernetes(&validated) {
        match connect(args, &validated, log).await {
            Ok(services) => opts.services = services,
            Err(lines) => {
                notifier.emit("run-failed", "run", Value::Null, Some(lines.join("; ")));
                return report(log, &lines);
            }
        }
    }
    let interrupts = Interrupts::default();
    listen_for_signals(
        interrupts.clone(),
        log.clone(),
        opts.ledger_path.display().to_string(),
    );
    let result = runner::run(validated, opts, log.clone(), interrupts).await;
    // Helper pods of activities a Ctrl-C cancelled are being deleted.
    for line in squall_kube::cleanup::finish(std::time::Duration::from_secs(10)).await {
        log.warning(&format!("Cancelled activity: {line}"));
    }
    match result {
        Ok(outcome) => {
            notify_outcome(notifier, &outcome);
            exit::of_status(outcome.verdict.status)
        }
        Err(e) => {
            log.critical(&e.to_string());
            notifier.emit("run-failed", "run", Value::Null, Some(e.to_string()));
            FAILED
        }
    }
}

/// Upstream's end-of-run events: `run-completed` or `run-failed` with the
/// journal, and also `run-deviated` when the hypothesis deviated.
fn notify_outcome(notifier: &Notifier, outcome: &runner::Outcome) {
    let name = if outcome.verdict.journal_status == "completed" {
        "run-completed"
    } else {
        "run-failed"
    };
    // The journal as a JSON tree is several times its text: built only
    // when someone listens.
    let deviated = outcome.verdict.deviated && notifier.wants("run-deviated");
    if !notifier.wants(name) && !deviated {
        return;
    }
    let journal = serde_json::to_value(&outcome.journal).unwrap_or(Value::Null);
    notifier.emit(name, "run", journal.clone(), None);
    if outcome.verdict.deviated {
        notifier.emit("run-deviated", "run", journal, None);
    }
}

/// Everything that can be wrong with the experiment and its variables,
/// checked before anything runs.
fn prepare(
    args: &RunArgs,
    settings: &Value,
    doc: &Document,
    log: &Logger,
) -> Result<(Validated, RunOptions), Vec<String>> {
    let vars = load_vars(&args.vars).map_err(|e| e.0)?;
    let name = args.experiment.display().to_string();
    let mut validated = validate_experiment(doc, &vars)
        .map_err(|problems| problems.iter().map(|d| d.render(&name)).collect::<Vec<_>>())?;
    log.info("Experiment looks valid");
    guard_secrets(&validated);
    override_limits(args, &mut validated.experiment.limits)?;
    let (rollback_strategy, hypothesis_strategy) =
        strategies(args, &validated.experiment.runtime, settings)?;
    check_frequency(args.hypothesis_frequency)?;
    let opts = RunOptions {
        ledger_path: args
            .ledger
            .clone()
            .unwrap_or_else(|| default_path(&args.journal_path)),
        journal_path: args.journal_path.clone(),
        rollback_strategy,
        hypothesis_strategy,
        hypothesis_frequency: args.hypothesis_frequency,
        fail_fast: args.fail_fast,
        dry: args.dry.map(dry_of),
        child_env: vars.env.overlay(),
        services: Arc::default(),
        registry: crate::providers::registry(),
    };
    Ok((validated, opts))
}

/// The rollback and hypothesis strategies: flags win over the experiment's
/// `runtime`, which wins over the settings file.
fn strategies(
    args: &RunArgs,
    runtime: &squall_core::model::Runtime,
    settings: &Value,
) -> Result<(RollbackStrategy, HypothesisStrategy), Vec<String>> {
    let rollback = match args.rollback_strategy {
        Some(r) => Some(rollback_of(r)),
        None => rollback_from(
            runtime
                .rollback_strategy
                .as_deref()
                .or(setting(settings, "rollbacks")),
        ),
    };
    let hypothesis = match args.hypothesis_strategy {
        Some(h) => Some(hypothesis_of(h)),
        None => hypothesis_from(
            runtime
                .hypothesis_strategy
                .as_deref()
                .or(setting(settings, "hypothesis")),
        ),
    };
    match (rollback, hypothesis) {
        (Some(r), Some(h)) => Ok((r, h)),
        _ => Err(vec![
            "settings: runtime strategies must be one of the values `squall run --help` lists"
                .into(),
        ]),
    }
}

fn check_frequency(secs: f64) -> Result<(), Vec<String>> {
    if secs <= 0.0 || std::time::Duration::try_from_secs_f64(secs).is_err() {
        return Err(vec![
            "--hypothesis-frequency must be a positive number of seconds".into(),
        ]);
    }
    Ok(())
}

/// Registers what is secret with the redactor before anything is logged
/// or journaled: every resolved secret, configuration values whose names
/// look sensitive (`api_key`, `token`, …, also from `--var`), and
/// sensitive headers written in HTTP providers.
fn guard_secrets(v: &Validated) {
    let r = squall_engine::redact::global();
    r.add_all(&Value::Object(v.secrets.clone()));
    r.add_sensitive(&v.configuration);
    let exp = &v.experiment;
    let probes = exp.hypothesis.iter().flat_map(|h| h.probes.iter());
    for a in probes.chain(&exp.method).chain(&exp.rollbacks) {
        if let Provider::Http { headers, .. } = &a.provider {
            let literal: serde_json::Map<String, Value> = headers
                .iter()
                .filter(|(_, v)| !v.as_str().is_some_and(|s| s.contains("${")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            r.add_sensitive(&literal);
        }
    }
}

/// `--max-targets` / `--max-percent` win over the experiment's
/// `squall.limits`, so an operator can tighten (or loosen) the blast radius
/// of a shared experiment file without editing it.
fn override_limits(args: &RunArgs, limits: &mut Limits) -> Result<(), Vec<String>> {
    if let Some(p) = args.max_percent {
        if !(0.0..=100.0).contains(&p) {
            return Err(vec![format!(
                "--max-percent must be between 0 and 100, not {p}"
            )]);
        }
        limits.max_percent = Some(p);
    }
    if let Some(n) = args.max_targets {
        limits.max_targets = Some(n);
    }
    Ok(())
}

/// The module prefixes whose activities talk to the Kubernetes API.
const KUBERNETES_MODULES: &[&str] = &["chaosk8s.", "chaosistio.", "squall.istio."];

/// Whether any activity is a Kubernetes one (so a connection is needed):
/// a Kubernetes module, or a data-plane fault aimed at cluster nodes.
fn uses_kubernetes(v: &Validated) -> bool {
    let exp = &v.experiment;
    let probes = exp.hypothesis.iter().flat_map(|h| h.probes.iter());
    probes
        .chain(&exp.method)
        .chain(&exp.rollbacks)
        .any(|a| match &a.provider {
            Provider::Native {
                module, arguments, ..
            } => {
                KUBERNETES_MODULES.iter().any(|m| module.starts_with(m))
                    || (module.starts_with("squall.dataplane.")
                        && squall_dataplane::activity::on_cluster_nodes(arguments))
            }
            _ => false,
        })
}

/// Connects to the cluster before anything runs; the error names every
/// place squall looked.
async fn connect(
    args: &RunArgs,
    v: &Validated,
    log: &Logger,
) -> Result<Arc<Services>, Vec<String>> {
    let context = args.context.clone().or_else(|| {
        v.configuration
            .get("kubernetes_context")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    });
    let options = ConnectOptions {
        kubeconfig: args.kubeconfig.clone(),
        context,
    };
    let kube = Kube::connect(options)
        .await
        .map_err(|e| vec![e.to_string()])?;
    log.info(&format!("Using Kubernetes {}", kube.origin()));
    let mut services = Services::default();
    services.insert(Arc::new(kube));
    services.insert(Arc::new(squall_kube::dataplane::cluster_nodes()));
    Ok(Arc::new(services))
}

/// Checked before anything runs, so a run never changes the system and
/// then fails to record what it did.
fn unwritable(journal: &std::path::Path) -> Option<String> {
    let dir = journal.parent().filter(|d| !d.as_os_str().is_empty())?;
    (!dir.is_dir()).then(|| {
        format!(
            "--journal-path {}: directory {} does not exist",
            journal.display(),
            dir.display()
        )
    })
}

fn setting<'a>(settings: &'a Value, section: &str) -> Option<&'a str> {
    settings
        .get("runtime")?
        .get(section)?
        .get("strategy")?
        .as_str()
}

fn rollback_of(r: RollbackArg) -> RollbackStrategy {
    match r {
        RollbackArg::Default => RollbackStrategy::Default,
        RollbackArg::Always => RollbackStrategy::Always,
        RollbackArg::Never => RollbackStrategy::Never,
        RollbackArg::Deviated => RollbackStrategy::Deviated,
    }
}

fn rollback_from(s: Option<&str>) -> Option<RollbackStrategy> {
    Some(match s.unwrap_or("default") {
        "default" => RollbackStrategy::Default,
        "always" => RollbackStrategy::Always,
        "never" => RollbackStrategy::Never,
        "deviated" => RollbackStrategy::Deviated,
        _ => return None,
    })
}

fn hypothesis_of(h: HypothesisArg) -> HypothesisStrategy {
    match h {
        HypothesisArg::Default => HypothesisStrategy::Default,
        HypothesisArg::BeforeMethodOnly => HypothesisStrategy::BeforeMethodOnly,
        HypothesisArg::AfterMethodOnly => HypothesisStrategy::AfterMethodOnly,
        HypothesisArg::DuringMethod => HypothesisStrategy::DuringMethodOnly,
        HypothesisArg::Continuously => HypothesisStrategy::Continuously,
    }
}

fn hypothesis_from(s: Option<&str>) -> Option<HypothesisStrategy> {
    Some(match s.unwrap_or("default") {
        "default" => HypothesisStrategy::Default,
        "before-method-only" => HypothesisStrategy::BeforeMethodOnly,
        "after-method-only" => HypothesisStrategy::AfterMethodOnly,
        "during-method" | "during-method-only" => HypothesisStrategy::DuringMethodOnly,
        "continuously" | "continously" => HypothesisStrategy::Continuously,
        "skip" => HypothesisStrategy::Skip,
        _ => return None,
    })
}

fn dry_of(d: DryArg) -> Dry {
    match d {
        DryArg::Activities => Dry::Activities,
        DryArg::Actions => Dry::Actions,
        DryArg::Probes => Dry::Probes,
        DryArg::Pause => Dry::Pause,
    }
}

/// First SIGINT/SIGTERM: stop the method and roll back. Second: skip the
/// remaining rollbacks. Third: exit at once (130), leaving the ledger.
fn listen_for_signals(interrupts: Interrupts, log: Arc<Logger>, ledger: String) {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered before the run starts, so no signal slips through between
    // start-up and the first activity.
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log.error("cannot listen for signals; Ctrl-C will not roll back");
        return;
    };
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            match interrupts.signal(name) {
                1 => log.warning(&format!(
                    "Received {name}: stopping the experiment and rolling back (send it again to skip the rollbacks)"
                )),
                2 => log.warning(&format!(
                    "Received a second signal ({name}): skipping the remaining rollbacks; the run's end lists any change still pending undo (send it again to exit at once)"
                )),
                _ => {
                    log.critical(&format!("Received a third signal ({name}): exiting now; run `squall recover --ledger {ledger}`"));
                    exit::abandon();
                }
            }
        }
    });
}
