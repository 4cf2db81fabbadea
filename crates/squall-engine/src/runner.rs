//! The runner: the experiment state machine. Steady state before → method
//! (with an optional continuous hypothesis beside it) → steady state after →
//! rollbacks → verdict → journal.
//!
//! Rollbacks run on every exit path the default strategy covers: after a
//! deviation, after a failed probe or action, and after SIGINT/SIGTERM. The
//! first signal stops the method; a second one stops the rollbacks, and the
//! undo ledger then says what is left for `squall recover`. The journal is
//! rewritten atomically after every phase and every method action, so even
//! a killed run leaves one that says what it changed.

mod activity;
mod hypothesis;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use squall_core::catalog::Kind;
use squall_core::journal::{Journal, Record, SquallInfo, State};
use squall_core::model::{Activity, Hypothesis, Limits};
use squall_core::status::{Check, Facts, RunStatus, Verdict, verdict};
use squall_core::subst::{py_str, substitute_str};
use squall_core::validate::Validated;
use tokio_util::sync::CancellationToken;

use crate::journal_io::{self, JournalError};
use crate::ledger::Ledger;
use crate::log::Logger;
use crate::registry::Registry;
use activity::{Ended, execute};
use hypothesis::run_pass;

/// What `--dry` skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dry {
    Probes,
    Actions,
    Activities,
    Pause,
}

impl Dry {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Probes => "probes",
            Self::Actions => "actions",
            Self::Activities => "activities",
            Self::Pause => "pause",
        }
    }
}

/// When rollbacks are played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackStrategy {
    /// After completion, deviation, failure and interruption.
    Default,
    Always,
    Never,
    Deviated,
}

/// When the steady-state hypothesis is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypothesisStrategy {
    Default,
    BeforeMethodOnly,
    AfterMethodOnly,
    DuringMethodOnly,
    Continuously,
    Skip,
}

impl RollbackStrategy {
    /// The name upstream logs and journals use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Always => "always",
            Self::Never => "never",
            Self::Deviated => "deviated",
        }
    }
}

impl HypothesisStrategy {
    /// The name upstream logs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::BeforeMethodOnly => "before-method-only",
            Self::AfterMethodOnly => "after-method-only",
            Self::DuringMethodOnly => "during-method-only",
            Self::Continuously => "continuous",
            Self::Skip => "skip",
        }
    }
    fn before(self) -> bool {
        matches!(
            self,
            Self::Default | Self::BeforeMethodOnly | Self::Continuously
        )
    }
    fn during(self) -> bool {
        matches!(self, Self::DuringMethodOnly | Self::Continuously)
    }
    fn after(self) -> bool {
        matches!(
            self,
            Self::Default | Self::AfterMethodOnly | Self::Continuously
        )
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub journal_path: PathBuf,
    pub ledger_path: PathBuf,
    pub rollback_strategy: RollbackStrategy,
    pub hypothesis_strategy: HypothesisStrategy,
    /// Seconds between continuous hypothesis passes.
    pub hypothesis_frequency: f64,
    pub fail_fast: bool,
    pub dry: Option<Dry>,
    /// Extra environment for child processes (from `.env` var files).
    pub child_env: Vec<(String, String)>,
    /// Connections offered to providers (a Kubernetes client, …).
    pub services: Arc<squall_activity::Services>,
    /// The native activities and undo functions this run can call.
    pub registry: &'static Registry,
}

/// Signal state shared with whoever listens for signals: the first signal
/// cancels `first` (stop the method), the second cancels `second` (stop the
/// rollbacks).
#[derive(Clone, Default)]
pub struct Interrupts {
    pub first: CancellationToken,
    pub second: CancellationToken,
    pub signals: Arc<Mutex<Vec<String>>>,
}

impl Interrupts {
    /// Records a signal and cancels the next stage.
    pub fn signal(&self, name: &str) -> usize {
        let n = self.signals.lock().map(|mut s| {
            s.push(name.to_owned());
            s.len()
        });
        let n = n.unwrap_or(1);
        if n == 1 {
            self.first.cancel();
        } else {
            self.second.cancel();
        }
        n
    }
}

/// An engine failure (not an experiment outcome).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot open the undo ledger {path}: {source}")]
    Ledger {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How a run ended.
pub struct Outcome {
    pub journal: Journal,
    pub verdict: Verdict,
}

/// Everything activities share during one run.
pub(crate) struct Shared {
    pub configuration: Map<String, Value>,
    pub secrets: Map<String, Value>,
    pub ledger: Arc<Ledger>,
    pub run_id: String,
    pub log: Arc<Logger>,
    pub limits: Limits,
    pub dry: Option<Dry>,
    pub child_env: Vec<(String, String)>,
    pub events: Arc<squall_activity::RunEvents>,
    pub services: Arc<squall_activity::Services>,
    pub registry: &'static Registry,
    /// Whether the default HTTP timeout was announced.
    pub warned_http_timeout: AtomicBool,
}

/// The mutable state of a run in progress.
struct Progress {
    journal: Journal,
    facts: Facts,
    started: tokio::time::Instant,
}

/// What every activity of this run shares.
fn shared(v: &Validated, opts: &RunOptions, log: Arc<Logger>) -> Result<Arc<Shared>, EngineError> {
    let ledger = Ledger::open(&opts.ledger_path).map_err(|source| EngineError::Ledger {
        path: opts.ledger_path.display().to_string(),
        source,
    })?;
    Ok(Arc::new(Shared {
        configuration: v.configuration.clone(),
        secrets: v.secrets.clone(),
        ledger: Arc::new(ledger),
        run_id: new_run_id(),
        log,
        limits: v.experiment.limits,
        dry: opts.dry,
        child_env: opts.child_env.clone(),
        events: Arc::default(),
        services: opts.services.clone(),
        registry: opts.registry,
        warned_http_timeout: AtomicBool::new(false),
    }))
}

/// Runs a validated experiment to the end and writes its journal.
pub async fn run(
    v: Validated,
    opts: RunOptions,
    log: Arc<Logger>,
    interrupts: Interrupts,
) -> Result<Outcome, EngineError> {
    let sh = shared(&v, &opts, log.clone())?;
    let run_id = sh.run_id.clone();
    let mut exp = v.experiment;
    let title = py_str(&substitute_str(&exp.title, &sh.lookup()));
    let mut p = Progress {
        journal: journal_io::new_journal(
            std::mem::take(&mut exp.raw),
            &title,
            opts.dry.map(Dry::as_str),
            info(&opts, &run_id),
        ),
        facts: Facts::default(),
        started: tokio::time::Instant::now(),
    };
    log.info(&format!("Running experiment: {title}"));
    if let Some(d) = opts.dry {
        log.warning(&format!("Running experiment with dry {}", d.as_str()));
    }
    checkpoint(&sh, &opts, &p);
    log.info(&format!(
        "Steady-state strategy: {}",
        opts.hypothesis_strategy.name()
    ));
    log.info(&format!(
        "Rollbacks strategy: {}",
        opts.rollback_strategy.name()
    ));
    let hyp = exp
        .hypothesis
        .as_ref()
        .filter(|h| !h.probes.is_empty() && opts.hypothesis_strategy != HypothesisStrategy::Skip);
    if opts.hypothesis_strategy == HypothesisStrategy::Skip {
        log.info("Skipping Steady-State Hypothesis as requested");
    }
    gate(&sh, hyp, &opts, &interrupts, &mut p).await;
    checkpoint(&sh, &opts, &p);
    if !matches!(p.facts.gate, Check::NotMet { .. }) && !p.facts.interrupted {
        method(&sh, &exp.method, hyp, &opts, &interrupts, &mut p).await;
        checkpoint(&sh, &opts, &p);
        after(&sh, hyp, &opts, &interrupts, &mut p).await;
        checkpoint(&sh, &opts, &p);
    }
    rollbacks(&sh, &exp.rollbacks, &opts, &interrupts, &mut p).await;
    finish(&sh, &opts, &interrupts, p)
}

fn info(opts: &RunOptions, run_id: &str) -> SquallInfo {
    SquallInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        run_id: run_id.into(),
        ledger: Some(opts.ledger_path.display().to_string()),
        rollback_strategy: opts.rollback_strategy.name().into(),
        hypothesis_strategy: opts.hypothesis_strategy.name().into(),
        ..SquallInfo::default()
    }
}

fn new_run_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{micros:x}-{}", std::process::id())
}

pub(crate) fn now_stamp() -> String {
    journal_io::now_stamp()
}

/// Writes the journal so far. A failure is logged, not returned: the run
/// must go on to its rollbacks whatever happens to the journal file.
fn checkpoint(sh: &Shared, opts: &RunOptions, p: &Progress) {
    checkpoint_journal(sh, opts, &p.journal);
}

fn checkpoint_journal(sh: &Shared, opts: &RunOptions, journal: &Journal) {
    if let Err(e) = journal_io::write(&opts.journal_path, journal) {
        sh.log
            .error(&format!("{e}; carrying on so the rollbacks still run"));
    }
}

/// A float as Python prints it (`1.0`, `0.25`).
fn py_float(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

fn not_met(sh: &Shared, culprit: Option<&str>) {
    sh.log.critical(&format!(
        "Steady state probe '{}' is not in the given tolerance so failing this experiment",
        culprit.unwrap_or_default()
    ));
}

async fn gate(
    sh: &Arc<Shared>,
    hyp: Option<&Hypothesis>,
    opts: &RunOptions,
    ints: &Interrupts,
    p: &mut Progress,
) {
    if opts.hypothesis_strategy == HypothesisStrategy::Skip {
        return;
    }
    let Some(h) = hyp else {
        sh.log
            .info("No steady state hypothesis defined. That's ok, just exploring.");
        return;
    };
    if !opts.hypothesis_strategy.before() {
        return;
    }
    let pass = run_pass(sh, h, &ints.first).await;
    p.facts.interrupted |= pass.interrupted;
    p.facts.gate = pass.check;
    if matches!(pass.check, Check::NotMet { .. }) {
        not_met(sh, pass.culprit.as_deref());
    }
    p.journal.steady_states.before = Some(pass.state);
}

async fn method(
    sh: &Arc<Shared>,
    activities: &[Activity],
    hyp: Option<&Hypothesis>,
    opts: &RunOptions,
    ints: &Interrupts,
    p: &mut Progress,
) {
    let stop = CancellationToken::new();
    let failed_fast = Arc::new(AtomicBool::new(false));
    let during = hyp.filter(|_| opts.hypothesis_strategy.during()).map(|h| {
        tokio::spawn(continuous(
            sh.clone(),
            h.clone(),
            opts.clone(),
            ints.first.clone(),
            stop.clone(),
            failed_fast.clone(),
        ))
    });
    sh.log.info("Playing your experiment's method now...");
    if activities.is_empty() {
        sh.log.info("No declared activities, let's move on.");
    }
    // After every action (and at least once a second between probes) the
    // journal on disk shows the run so far, so a run killed in the middle
    // of its method still says what it changed. Not after every probe: a
    // method of many probes would rewrite a growing journal each time.
    let base = p.journal.clone();
    let save = |records: Vec<Record>| {
        let mut j = base.clone();
        j.run = records;
        checkpoint_journal(sh, opts, &j);
    };
    let (records, aborted) = play(
        sh,
        activities,
        &ints.first,
        Some(&failed_fast),
        None,
        Some(&save),
    )
    .await;
    p.journal.run = records;
    if let Some(msg) = aborted {
        sh.log.critical(&format!(
            "Experiment ran into an unexpected fatal error, aborting now: {msg}"
        ));
        p.facts.aborted = true;
    }
    stop.cancel();
    if let Some(task) = during {
        match task.await {
            Ok(states) => p.journal.steady_states.during = states,
            Err(e) => {
                sh.log
                    .critical(&format!("The continuous hypothesis crashed: {e}"));
                p.facts.aborted = true;
            }
        }
    }
    p.facts.failed_fast = failed_fast.load(Ordering::SeqCst);
    p.facts.interrupted |= ints.first.is_cancelled();
}

/// Plays activities in order (background ones concurrently), stopping on
/// a fatal error, a signal, or a fail-fast continuous check. Returns the
/// records in start order and the fatal error, if any.
async fn play(
    sh: &Arc<Shared>,
    activities: &[Activity],
    cancel: &CancellationToken,
    failed_fast: Option<&AtomicBool>,
    label: Option<&str>,
    save: Option<&dyn Fn(Vec<Record>)>,
) -> (Vec<Record>, Option<String>) {
    let mut slots: Vec<Option<Record>> = Vec::new();
    let mut background = Vec::new();
    let mut fatal = None;
    let mut saved = tokio::time::Instant::now();
    for a in activities {
        if cancel.is_cancelled() || failed_fast.is_some_and(|f| f.load(Ordering::SeqCst)) {
            break;
        }
        if let Some(label) = label {
            sh.log.info(&format!("{label}: {}", a.name));
        }
        if a.background {
            let (sh, a, cancel) = (sh.clone(), a.clone(), cancel.clone());
            background.push((
                slots.len(),
                tokio::spawn(async move { execute(&sh, &a, &cancel).await }),
            ));
            slots.push(None);
            continue;
        }
        let ex = execute(sh, a, cancel).await;
        slots.push(Some(ex.record));
        let due = a.kind == Kind::Action || saved.elapsed() >= Duration::from_secs(1);
        if let Some(save) = save.filter(|_| due) {
            save(slots.iter().flatten().cloned().collect());
            saved = tokio::time::Instant::now();
        }
        match ex.ended {
            Ended::Fatal(m) => {
                fatal = Some(m);
                break;
            }
            Ended::Interrupted => break,
            Ended::Succeeded | Ended::Failed => {}
        }
    }
    // Foreground work is over: background monitors watching "until the
    // method ends" may now finish, and only then are they awaited.
    sh.events.end_method();
    for (idx, task) in background {
        match task.await {
            Ok(ex) => {
                slots[idx] = Some(ex.record);
                if let Ended::Fatal(m) = ex.ended {
                    fatal.get_or_insert(m);
                }
            }
            Err(e) => {
                fatal.get_or_insert(format!("a background activity crashed: {e}"));
            }
        }
    }
    (slots.into_iter().flatten().collect(), fatal)
}

/// The continuous hypothesis: a pass every `frequency` seconds until the
/// method ends.
async fn continuous(
    sh: Arc<Shared>,
    h: Hypothesis,
    opts: RunOptions,
    cancel: CancellationToken,
    stop: CancellationToken,
    failed_fast: Arc<AtomicBool>,
) -> Vec<State> {
    sh.log.info(&format!(
        "Executing the steady-state hypothesis continuously every {} seconds",
        py_float(opts.hypothesis_frequency)
    ));
    let mut states = Vec::new();
    let (mut iterations, mut failures) = (0u32, 0u32);
    while !stop.is_cancelled() && !cancel.is_cancelled() {
        iterations += 1;
        let pass = run_pass(&sh, &h, &cancel).await;
        let met = pass.check == Check::Met;
        states.push(pass.state);
        if !met && !pass.interrupted {
            failures += 1;
            sh.log.warning(&format!(
                "Continuous steady state probe '{}' is not in the given tolerance",
                pass.culprit.unwrap_or_default()
            ));
            if opts.fail_fast {
                let ratio = f64::from(failures) * 100.0 / f64::from(iterations);
                sh.log.info(&format!(
                    "Terminating immediately the experiment after {ratio:.1}% hypothesis deviated"
                ));
                failed_fast.store(true, Ordering::SeqCst);
                break;
            }
        }
        let wait = Duration::try_from_secs_f64(opts.hypothesis_frequency)
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => break,
            () = cancel.cancelled() => break,
        }
    }
    sh.log.info("Continuous steady state hypothesis terminated");
    states
}

async fn after(
    sh: &Arc<Shared>,
    hyp: Option<&Hypothesis>,
    opts: &RunOptions,
    ints: &Interrupts,
    p: &mut Progress,
) {
    if p.facts.interrupted
        || p.facts.aborted
        || opts.hypothesis_strategy == HypothesisStrategy::Skip
    {
        return;
    }
    let Some(h) = hyp else {
        sh.log
            .info("No steady state hypothesis defined. That's ok, just exploring.");
        return;
    };
    if !opts.hypothesis_strategy.after() {
        return;
    }
    let pass = run_pass(sh, h, &ints.first).await;
    p.facts.interrupted |= pass.interrupted;
    p.facts.after = pass.check;
    if matches!(pass.check, Check::NotMet { .. }) {
        not_met(sh, pass.culprit.as_deref());
    }
    p.journal.steady_states.after = Some(pass.state);
}

/// Whether the strategy plays rollbacks for this run, with its log line.
fn should_roll_back(sh: &Shared, strategy: RollbackStrategy, deviated: bool) -> bool {
    match strategy {
        RollbackStrategy::Default => true,
        RollbackStrategy::Always => {
            sh.log
                .warning("Rollbacks were explicitly requested to be played");
            true
        }
        RollbackStrategy::Never => {
            sh.log
                .warning("Rollbacks were explicitly requested to not be played");
            false
        }
        RollbackStrategy::Deviated if deviated => {
            sh.log
                .warning("Rollbacks will be played only because the experiment deviated");
            true
        }
        RollbackStrategy::Deviated => {
            sh.log.warning("Rollbacks were explicitly requested to be played only if the experiment deviated. Since this is not the case, we will not play them.");
            false
        }
    }
}

async fn rollbacks(
    sh: &Arc<Shared>,
    list: &[Activity],
    opts: &RunOptions,
    ints: &Interrupts,
    p: &mut Progress,
) {
    let deviated = verdict(&p.facts).deviated;
    if !should_roll_back(sh, opts.rollback_strategy, deviated) {
        return;
    }
    if ints.second.is_cancelled() {
        sh.log
            .warning("Received a second signal; not running the rollbacks");
        return;
    }
    sh.log.info("Let's rollback...");
    if list.is_empty() {
        sh.log.info("No declared rollbacks, let's move on.");
        return;
    }
    let (records, _) = play(sh, list, &ints.second, None, Some("Rollback"), None).await;
    if ints.second.is_cancelled() {
        sh.log.warning(
            "Received an exit signal. Terminating now without running the remaining rollbacks.",
        );
    }
    p.journal.rollbacks = records;
}

fn finish(
    sh: &Shared,
    opts: &RunOptions,
    ints: &Interrupts,
    mut p: Progress,
) -> Result<Outcome, EngineError> {
    p.facts.interrupted |= ints.first.is_cancelled();
    let v = verdict(&p.facts);
    let j = &mut p.journal;
    j.status = Some(v.journal_status.into());
    j.deviated = v.deviated;
    j.end = Some(now_stamp());
    j.duration = Some(p.started.elapsed().as_secs_f64());
    j.squall.outcome = Some(v.status.as_str().into());
    j.squall.signals = ints.signals.lock().map(|s| s.clone()).unwrap_or_default();
    j.squall.pending_undo = pending_for_run(sh);
    sh.log.info(&format!(
        "Experiment ended with status: {}",
        v.status.as_str()
    ));
    if v.status == RunStatus::Deviated {
        sh.log
            .info("The steady-state has deviated, a weakness may have been discovered");
    }
    if !j.squall.pending_undo.is_empty() {
        sh.log.warning(&format!(
            "{} change(s) of this run are still pending undo: {}. Run `squall recover --ledger {}` to undo them.",
            j.squall.pending_undo.len(),
            j.squall.pending_undo.join("; "),
            opts.ledger_path.display()
        ));
    }
    journal_io::write(&opts.journal_path, &p.journal)?;
    Ok(Outcome {
        journal: p.journal,
        verdict: v,
    })
}

fn pending_for_run(sh: &Shared) -> Vec<String> {
    match sh.ledger.pending() {
        Ok(list) => list
            .into_iter()
            .filter(|e| e.run_id == sh.run_id)
            .map(|e| e.undo.description)
            .collect(),
        Err(e) => {
            sh.log.error(&format!("cannot read the undo ledger: {e}"));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
