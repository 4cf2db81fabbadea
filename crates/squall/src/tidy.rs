//! Tidy checks: tests that keep the code, the docs and the architecture
//! from drifting apart (in the style of rust-analyzer's `tidy`). They read
//! the workspace's files and the real command line and registry, so a
//! rule broken anywhere fails `cargo test` with the place to mend.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde_json::Value;

use crate::cli::Cli;
use crate::providers::registry;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files under `dir` (recursively) whose name ends with `ext`.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p, ext));
        } else if p.to_string_lossy().ends_with(ext) {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The documentation the checks read: README.md, ARCHITECTURE.md, docs/
/// and every crate's README.md.
fn docs() -> Vec<(PathBuf, String)> {
    let r = root();
    let mut paths = vec![r.join("README.md"), r.join("ARCHITECTURE.md")];
    paths.extend(files(&r.join("docs"), ".md"));
    paths.extend(files(&r.join("crates"), "README.md"));
    paths.into_iter().map(|p| (p.clone(), read(&p))).collect()
}

/// The code in a Markdown text: inline backtick spans, and the lines of
/// fenced blocks (with `shell_only`, only blocks tagged as shell: an
/// untagged block may be a diagram).
fn code_segments(text: &str, shell_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<bool> = None;
    for line in text.lines() {
        if let Some(tag) = line.trim_start().strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(["sh", "bash", "shell", "console"].contains(&tag.trim())),
            };
            continue;
        }
        if let Some(shell) = fence {
            if shell || !shell_only {
                out.push(line.to_owned());
            }
            continue;
        }
        out.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    out
}

/// Every subcommand path (`["agent", "dataplane", "flush"]`) with the long
/// flags it accepts, its ancestors' global flags included.
fn cli_flags() -> BTreeMap<Vec<String>, BTreeSet<String>> {
    fn walk(
        cmd: &clap::Command,
        path: Vec<String>,
        inherited: &BTreeSet<String>,
        out: &mut BTreeMap<Vec<String>, BTreeSet<String>>,
    ) {
        let mut flags = inherited.clone();
        flags.extend(
            cmd.get_arguments()
                .filter_map(clap::Arg::get_long)
                .map(|l| format!("--{l}")),
        );
        flags.extend(["--help".to_owned(), "--version".to_owned()]);
        for sub in cmd.get_subcommands() {
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            walk(sub, p, &flags, out);
        }
        out.insert(path, flags);
    }
    let mut out = BTreeMap::new();
    walk(&Cli::command(), Vec::new(), &BTreeSet::new(), &mut out);
    out
}

/// A `squall …` command line found in the docs: the subcommand words that
/// follow the program name, and the `--flags` after them.
#[derive(Debug)]
struct Invocation {
    words: Vec<String>,
    flags: Vec<String>,
}

/// The `squall` invocations in one code segment. `squall` counts as the
/// program when it starts a command (not `cargo test -p squall`).
fn invocations(segment: &str) -> Vec<Invocation> {
    let tokens: Vec<&str> = segment.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let program = *t == "squall" || t.ends_with("/squall");
        let prev = i.checked_sub(1).map(|j| tokens[j]);
        if !program || prev.is_some_and(|p| p.starts_with('-') || p == "cargo") {
            continue;
        }
        let rest = tokens[i + 1..]
            .iter()
            .take_while(|t| !["|", "&&", ";", ">", "#", "||"].contains(t));
        let (mut words, mut flags, mut in_words) = (Vec::new(), Vec::new(), true);
        for t in rest {
            let word = t.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !t.starts_with('-');
            in_words &= word;
            if let Some(flag) = t.strip_prefix("--") {
                let name = flag.split('=').next().unwrap_or_default();
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !name.is_empty() {
                    flags.push(format!("--{name}"));
                }
            } else if in_words {
                words.push((*t).to_owned());
            }
        }
        out.push(Invocation { words, flags });
    }
    out
}

/// The longest known subcommand path at the start of `words`.
fn resolve<'a>(
    cli: &'a BTreeMap<Vec<String>, BTreeSet<String>>,
    words: &[String],
) -> (Vec<String>, &'a BTreeSet<String>) {
    let mut path: Vec<String> = Vec::new();
    for w in words {
        let mut next = path.clone();
        next.push(w.clone());
        if cli.contains_key(&next) {
            path = next;
        } else {
            break;
        }
    }
    let flags = &cli[&path];
    (path, flags)
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let missing: Vec<String> = files(&root().join("crates"), ".rs")
        .into_iter()
        .filter(|p| !read(p).starts_with("//!"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "no `//!` first line: {missing:#?}");
}

/// `cargo metadata` of the workspace, for this platform only (the others'
/// dependencies may not be downloaded).
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let (arch, os) = (std::env::consts::ARCH, std::env::consts::OS);
    let platform = format!("{arch}-unknown-{os}-gnu");
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &platform])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

/// Normal (non-dev, non-build) dependencies of `package`, transitively,
/// from `cargo metadata`.
fn dependency_closure(package: &str) -> BTreeSet<String> {
    let meta = metadata();
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == id)
            .and_then(|p| p["name"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let normal_deps = |id: &str| -> Vec<String> {
        let node = nodes.iter().find(|n| n["id"] == id);
        node.and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null())
            })
            .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
            .collect()
    };
    let start = nodes
        .iter()
        .filter_map(|n| n["id"].as_str())
        .find(|id| name_of(id) == package)
        .unwrap_or_else(|| panic!("{package} is not in the workspace"))
        .to_owned();
    let (mut seen, mut todo) = (BTreeSet::new(), vec![start]);
    while let Some(id) = todo.pop() {
        for d in normal_deps(&id) {
            if seen.insert(d.clone()) {
                todo.push(d);
            }
        }
    }
    seen.iter().map(|id| name_of(id)).collect()
}

#[test]
fn the_engine_depends_on_no_provider_and_the_core_on_no_io() {
    let engine = dependency_closure("squall-engine");
    for banned in [
        "kube",
        "kube-client",
        "k8s-openapi",
        "squall-kube",
        "squall-dataplane",
        "squall-sim",
    ] {
        assert!(
            !engine.contains(banned),
            "squall-engine depends on {banned}"
        );
    }
    let core = dependency_closure("squall-core");
    for banned in [
        "tokio",
        "mio",
        "socket2",
        "futures",
        "reqwest",
        "hyper",
        "kube",
        "tempfile",
        "squall-activity",
    ] {
        assert!(
            !core.contains(banned),
            "squall-core depends on {banned}, which does IO"
        );
    }
}

#[test]
fn every_squall_command_and_flag_in_the_docs_exists() {
    let cli = cli_flags();
    let mut wrong = Vec::new();
    for (path, text) in docs() {
        for seg in code_segments(&text, true) {
            for inv in invocations(&seg) {
                let (resolved, flags) = resolve(&cli, &inv.words);
                let first_unknown = inv.words.get(resolved.len());
                // `squall run experiment.yaml`: past the subcommand, a word
                // is an argument; right after `squall` it must be a command.
                if resolved.is_empty() && first_unknown.is_some() {
                    wrong.push(format!(
                        "{}: `{seg}`: no command `squall {}`",
                        path.display(),
                        inv.words[0]
                    ));
                }
                for f in inv.flags.iter().filter(|f| !flags.contains(*f)) {
                    wrong.push(format!(
                        "{}: `{seg}`: `squall {}` has no {f}",
                        path.display(),
                        resolved.join(" ")
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Flags the docs mention that belong to other programs.
const FOREIGN_FLAGS: &[&str] = &[
    "--symbol-ordering-file", // lld
    "--force",                // kubectl drain
    "--validate",             // kubectl apply
    "--wait",                 // kubectl delete
    "--flag",                 // a placeholder for any program's flag
];

#[test]
fn every_flag_named_alone_in_the_docs_is_a_squall_flag() {
    let all: BTreeSet<String> = cli_flags().into_values().flatten().collect();
    let mut wrong = Vec::new();
    for (path, text) in docs() {
        for seg in code_segments(&text, true)
            .iter()
            .filter(|s| s.starts_with("--"))
        {
            let name: String = seg
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !all.contains(&name) && !FOREIGN_FLAGS.contains(&name.as_str()) {
                wrong.push(format!("{}: `{seg}`", path.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "no squall command has these flags: {wrong:#?}"
    );
}

/// Whether `text` names `flag` as a whole word (not `--flag-more`).
fn mentions(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(i, _)| {
        !text[i + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn every_cli_flag_is_documented() {
    let text: String = docs().into_iter().map(|(_, t)| t).collect();
    let mut missing = Vec::new();
    for (path, flags) in cli_flags() {
        for f in flags
            .iter()
            .filter(|f| !["--help", "--version"].contains(&f.as_str()))
        {
            if !mentions(&text, f) {
                missing.push(format!("squall {} {f}", path.join(" ")));
            }
        }
    }
    assert!(missing.is_empty(), "flags documented nowhere: {missing:#?}");
}

#[test]
fn every_registered_function_is_in_the_docs_and_in_discover() {
    let text: String = files(&root().join("docs"), ".md")
        .iter()
        .map(|p| read(p))
        .collect();
    let discovered: BTreeSet<String> = squall_engine::discover::select(registry(), &[])
        .expect("every package")
        .iter()
        .map(|s| s.qualified())
        .collect();
    for r in registry().activities() {
        let name = r.spec.qualified();
        assert!(
            text.contains(&name) || text.contains(&format!("`{}`", r.spec.func)),
            "{name} is not in docs/"
        );
        assert!(discovered.contains(&name), "{name} is not discovered");
    }
}

/// Words (identifiers) in the backtick spans of a Markdown text.
fn code_words(text: &str) -> BTreeSet<String> {
    code_segments(text, false)
        .iter()
        .flat_map(|s| {
            s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_code_map_names_every_module() {
    let arch = code_words(&read(&root().join("ARCHITECTURE.md")));
    let mut missing = Vec::new();
    for krate in files(&root().join("crates"), "Cargo.toml") {
        let dir = krate.parent().expect("a crate dir");
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .map(|t| code_words(&t))
            .unwrap_or_default();
        for module in files(&dir.join("src"), ".rs") {
            let stem = module
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if ["lib", "main", "mod", "tests"].contains(&stem) {
                continue;
            }
            if !arch.contains(stem) && !readme.contains(stem) {
                missing.push(
                    module
                        .strip_prefix(root())
                        .unwrap_or(&module)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules named in neither ARCHITECTURE.md nor their crate's README: {missing:#?}"
    );
}

#[test]
fn invocations_are_found_where_squall_is_the_program() {
    let found = invocations("squall agent dataplane flush --table nat --ttl 30 | tee x");
    assert_eq!(found[0].words, ["agent", "dataplane", "flush"]);
    assert_eq!(found[0].flags, ["--table", "--ttl"]);
    assert!(invocations("cargo test -p squall --test kubectl").is_empty());
    assert!(mentions("use `--ttl 5`", "--ttl") && !mentions("`--ttl-max`", "--ttl"));
    let prose = invocations("squall (cli)  clap, settings, variable files");
    assert!(prose[0].words.is_empty(), "{prose:?}");
    let cli = cli_flags();
    let (path, flags) = resolve(&cli, &found[0].words);
    assert_eq!(path, ["agent", "dataplane", "flush"]);
    assert!(flags.contains("--ttl") && flags.contains("--verbose"));
}
