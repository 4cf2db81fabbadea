//! `squall validate` and bad input: every problem at once with its
//! location, exit 2, never a panic.

mod common;

use common::Sandbox;

#[test]
fn valid_experiment() {
    let sb = Sandbox::new();
    let exp = sb.write("ok.yaml", "title: t\ndescription: d\nmethod: []\n");
    sb.run(&["validate", exp.to_str().unwrap()])
        .code(0)
        .has("experiment syntax and semantic look valid");
}

#[test]
fn all_problems_with_file_line_column_and_path() {
    let sb = Sandbox::new();
    let exp = sb.write(
        "bad.yaml",
        "title: t\ndescription: d\nmethod:\n  - type: action\n    name: a\n    provider:\n      type: http\n      url: http://x/\n      timeout: soon\n  - type: probe\n    name: b\n    provider: {type: python, module: chaosk8s.pod.probes, func: count_podz}\n",
    );
    let run = sb.run(&["validate", exp.to_str().unwrap()]);
    run.code(2)
        .has("bad.yaml:9:16: method[0].provider.timeout: the HTTP timeout must be a number of seconds")
        .has("bad.yaml:12:15: method[1].provider: unknown activity `chaosk8s.pod.probes.count_podz`; the nearest known one is `chaosk8s.pod.probes.count_pods`")
        .has("2 problems found");
}

#[test]
fn truncated_yaml_wrong_types_unknown_keys() {
    let sb = Sandbox::new();
    let cases = [
        (
            "trunc.yaml",
            "title: t\ndescription: d\nmethod:\n  - {type: action, name: a, provider: {type: process",
            "invalid YAML",
        ),
        (
            "types.yaml",
            "title: 3\ndescription: d\nmethod: {}\n",
            "expected a list of activities",
        ),
        (
            "keys.yaml",
            "title: t\ndescription: d\nmethod: []\nrollback: []\n",
            "unknown key `rollback`; did you mean `rollbacks`?",
        ),
        (
            "tol.yaml",
            "title: t\ndescription: d\nmethod: []\nsteady-state-hypothesis:\n  title: h\n  probes:\n  - {type: probe, name: p, tolerance: {type: range, range: [1]}, provider: {type: process, path: echo}}\n",
            "hypothesis range sequence must be made of two values",
        ),
        (
            "trunc.json",
            "{\"title\": \"t\", \"method\": [",
            "invalid JSON",
        ),
        ("empty.yaml", "", "an experiment must be a mapping"),
        (
            "ext.txt",
            "title: t",
            "only files with json, yaml or yml extensions are supported",
        ),
    ];
    for (name, text, msg) in cases {
        let exp = sb.write(name, text);
        sb.run(&["validate", exp.to_str().unwrap()])
            .code(2)
            .has(msg)
            .lacks("panicked");
        sb.run(&["run", exp.to_str().unwrap()]).code(2).has(msg);
    }
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    assert_eq!(sb.run(&["run"]).code, 2);
    assert_eq!(
        sb.run(&["run", "x.yaml", "--rollback-strategy", "sometimes"])
            .code,
        2
    );
    let exp = sb.write("ok.yaml", "title: t\ndescription: d\nmethod: []\n");
    sb.run(&["run", exp.to_str().unwrap(), "--var", "novalue"])
        .code(2)
        .has("is not KEY=VALUE");
    sb.run(&["run", exp.to_str().unwrap(), "--var-file", "missing.yaml"])
        .code(2)
        .has("missing.yaml: cannot read");
    sb.run(&["run", "missing.yaml"])
        .code(2)
        .has("missing.yaml: cannot read");
    let settings = sb.write(
        "settings.yaml",
        "runtime: {rollbacks: {strategy: sometimes}}\n",
    );
    sb.run(&[
        "--settings",
        settings.to_str().unwrap(),
        "run",
        exp.to_str().unwrap(),
    ])
    .code(2)
    .has("runtime strategies");
}

#[test]
fn discover_writes_the_upstream_layout() {
    let sb = Sandbox::new();
    sb.run(&["discover", "squall"])
        .code(0)
        .has("Discovery outcome saved in discovery.json");
    let d: serde_json::Value = serde_json::from_str(&sb.read("discovery.json")).unwrap();
    let names: Vec<_> = d["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}.{}",
                a["mod"].as_str().unwrap(),
                a["name"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        names.contains(&"squall.testing.actions.write_file".to_owned()),
        "{names:?}"
    );
    sb.run(&["discover", "chaosnope"])
        .code(2)
        .has("Package chaosnope not found");
}

#[test]
fn help_teaches_exit_codes_and_signals() {
    let sb = Sandbox::new();
    let run = sb.cmd().arg("--help").output().unwrap();
    let text = flat(&run.stdout);
    assert!(
        text.contains("Exit codes: 0 the experiment completed"),
        "{text}"
    );
    let run = sb.cmd().args(["run", "--help"]).output().unwrap();
    let text = flat(&run.stdout);
    assert!(
        text.contains("A second signal skips the remaining rollbacks"),
        "{text}"
    );
}

/// Help text with line wrapping undone.
fn flat(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
