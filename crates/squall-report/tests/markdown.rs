//! Snapshot tests for the Markdown report, on real journals kept as
//! fixtures (see fixtures/README.md). `UPDATE_SNAPSHOTS=1 cargo test -p
//! squall-report --test markdown` rewrites the snapshots; review the diff.

use std::path::{Path, PathBuf};

use serde_json::Map;
use squall_core::config::FixedEnv;
use squall_report::{Format, Options, load, render};

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn snapshot(name: &str, journals: &[&str]) {
    let env = FixedEnv::default();
    let overrides = Map::new();
    let opts = Options {
        title: None,
        overrides: &overrides,
        env: &env,
        generated: "2026-11-23 13:44:42 UTC".into(),
    };
    // Relative names, so the snapshot does not depend on the checkout.
    std::env::set_current_dir(here().join("fixtures")).unwrap();
    let paths: Vec<&Path> = journals.iter().map(Path::new).collect();
    let runs = load(&paths, &opts).unwrap();
    let got = String::from_utf8(render(&runs, Format::Markdown, &opts)).unwrap();
    let file = here().join("snapshots").join(format!("{name}.md"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&file, &got).unwrap();
    }
    let want = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        got == want,
        "{name}: the Markdown differs from {}; rerun with UPDATE_SNAPSHOTS=1 and review.\n{got}",
        file.display()
    );
}

#[test]
fn markdown_snapshots() {
    // One test: the working directory is process-wide.
    snapshot("squall-deviated", &["squall-deviated.json"]);
    snapshot("squall-pending", &["squall-pending.json"]);
    snapshot("ctk-completed", &["ctk-completed.json"]);
    snapshot(
        "several",
        &[
            "squall-deviated.json",
            "squall-pending.json",
            "ctk-completed.json",
            "squall-deviated.json",
        ],
    );
}
