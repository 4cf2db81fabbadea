//! Runner tests on a paused clock: the state machine end to end with local
//! processes and the file provider, no real waiting.

use super::*;
use serde_json::json;
use squall_core::config::FixedEnv;
use squall_core::doc::{Document, Format};
use squall_core::validate::{Inputs, validate};

use crate::registry::for_tests;

fn validated(text: &str) -> Validated {
    let doc = Document::parse(text, Format::Yaml).unwrap();
    let env = FixedEnv {
        vars: Default::default(),
        programs: vec!["true".into(), "false".into()],
    };
    let inputs = Inputs {
        catalog: for_tests(),
        env: &env,
        config_overrides: Map::new(),
        secret_overrides: Map::new(),
    };
    validate(&doc, &inputs).unwrap()
}

fn opts(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        journal_path: dir.join("journal.json"),
        ledger_path: dir.join("ledger.jsonl"),
        rollback_strategy: RollbackStrategy::Default,
        hypothesis_strategy: HypothesisStrategy::Default,
        hypothesis_frequency: 1.0,
        fail_fast: false,
        dry: None,
        child_env: Vec::new(),
        services: Arc::default(),
        registry: for_tests(),
    }
}

const LONG_PAUSE: &str = r#"
title: t
description: d
steady-state-hypothesis:
  title: h
  probes: [{type: probe, name: ok, tolerance: 0, provider: {type: process, path: "true"}}]
method:
  - {type: action, name: wait, provider: {type: process, path: "true"}, pauses: {after: 3600}}
rollbacks:
  - {type: action, name: undo, provider: {type: process, path: "true"}}
"#;

#[tokio::test(start_paused = true)]
async fn a_signal_during_an_hour_long_pause_interrupts_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Logger::capture());
    let ints = Interrupts::default();
    let trigger = ints.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        trigger.signal("SIGINT");
    });
    let out = run(validated(LONG_PAUSE), opts(dir.path()), log.clone(), ints)
        .await
        .unwrap();
    assert_eq!(out.verdict.status, RunStatus::Interrupted);
    assert_eq!(out.journal.rollbacks.len(), 1);
    assert!(
        out.journal.steady_states.after.is_none(),
        "no after-check on interruption"
    );
    let lines = log.lines();
    assert!(
        lines.contains(&"INFO Rollback: undo".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&"INFO Experiment ended with status: interrupted".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn the_pause_is_slept_in_full_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let started = tokio::time::Instant::now();
    let out = run(
        validated(LONG_PAUSE),
        opts(dir.path()),
        Arc::new(Logger::capture()),
        Interrupts::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.verdict.status, RunStatus::Completed);
    assert!(started.elapsed() >= Duration::from_secs(3600));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(written["status"], "completed");
    assert_eq!(written["steady_states"]["after"]["steady_state_met"], true);
}

#[test]
fn the_second_signal_cancels_the_rollback_token() {
    let ints = Interrupts::default();
    assert_eq!(ints.signal("SIGINT"), 1);
    assert!(ints.first.is_cancelled() && !ints.second.is_cancelled());
    assert_eq!(ints.signal("SIGTERM"), 2);
    assert!(ints.second.is_cancelled());
}

#[tokio::test]
async fn substituted_tolerance_changes_type() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
title: t
description: d
configuration: {expected: 1}
steady-state-hypothesis:
  title: h
  probes: [{type: probe, name: exits-one, tolerance: "${expected}", provider: {type: process, path: "false"}}]
method: []
"#;
    let out = run(
        validated(text),
        opts(dir.path()),
        Arc::new(Logger::capture()),
        Interrupts::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.verdict.status, RunStatus::Completed);
    let probe = &out.journal.steady_states.before.unwrap().probes[0];
    assert_eq!(probe.tolerance_met, Some(true));
    assert_eq!(probe.output["status"], json!(1));
}

#[tokio::test]
async fn skip_strategy_runs_no_hypothesis_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.hypothesis_strategy = HypothesisStrategy::Skip;
    let text = LONG_PAUSE.replace("pauses: {after: 3600}", "pauses: {after: 0}");
    let log = Arc::new(Logger::capture());
    let out = run(validated(&text), o, log.clone(), Interrupts::default())
        .await
        .unwrap();
    assert_eq!(out.verdict.status, RunStatus::Completed);
    assert!(
        out.journal.steady_states.before.is_none() && out.journal.steady_states.after.is_none()
    );
    let lines = log.lines();
    assert!(lines.contains(&"INFO Skipping Steady-State Hypothesis as requested".to_owned()));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("No steady state hypothesis defined")),
        "{lines:?}"
    );
}

/// A provider family whose one action panics, as a bug in a provider would.
static PANICKY: squall_activity::Provider = squall_activity::Provider {
    name: "panicky",
    activities: &[squall_activity::Registered {
        spec: squall_activity::describe::action(
            "squall.testing.actions",
            "explode",
            "Panics.",
            &[],
            "null",
            false,
        ),
        run: |_, _| Box::pin(async { panic!("index out of bounds") }),
        permissions: &[],
    }],
    undos: &[],
};

#[tokio::test]
async fn a_panic_inside_an_activity_fails_it_and_the_rollbacks_still_play() {
    let registry =
        crate::registry::Registry::leak(&[&crate::providers::testing::PROVIDER, &PANICKY]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "healthy").unwrap();
    let text = format!(
        r#"
title: t
description: d
method:
  - {{type: action, name: corrupt, provider: {{type: python, module: squall.testing.actions, func: write_file, arguments: {{path: "{s}", content: broken}}}}}}
  - {{type: action, name: boom, provider: {{type: python, module: squall.testing.actions, func: explode}}}}
rollbacks:
  - {{type: action, name: restore, provider: {{type: python, module: squall.testing.actions, func: restore_file, arguments: {{path: "{s}"}}}}}}
"#,
        s = state.display()
    );
    let doc = Document::parse(&text, Format::Yaml).unwrap();
    let env = FixedEnv::default();
    let inputs = Inputs {
        catalog: registry,
        env: &env,
        config_overrides: Map::new(),
        secret_overrides: Map::new(),
    };
    let v = validate(&doc, &inputs).unwrap();
    let mut o = opts(dir.path());
    o.registry = registry;
    let log = Arc::new(Logger::capture());
    let out = run(v, o, log.clone(), Interrupts::default()).await.unwrap();
    assert_eq!(out.journal.run[1].status.as_deref(), Some("failed"));
    let exc = out.journal.run[1].exception.clone().unwrap().join("");
    assert!(exc.contains("panic: index out of bounds"), "{exc}");
    assert_eq!(out.journal.rollbacks.len(), 1);
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "healthy");
}
