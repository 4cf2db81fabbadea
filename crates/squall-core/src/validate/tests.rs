//! Validation tests: every rule reports at the right path, and all problems
//! come back together.

use super::*;
use crate::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};
use crate::config::FixedEnv;
use crate::doc::Format;

const SPECS: &[ActivitySpec] = &[ActivitySpec {
    module: "squall.testing.actions",
    func: "write_file",
    kind: Kind::Action,
    doc: "",
    args: &[
        ArgSpec {
            name: "path",
            ty: ArgType::String,
            default: None,
            doc: "",
            range: None,
        },
        ArgSpec {
            name: "content",
            ty: ArgType::String,
            default: Some("\"\""),
            doc: "",
            range: None,
        },
        ArgSpec {
            name: "mode",
            ty: ArgType::Integer,
            default: Some("null"),
            doc: "",
            range: None,
        },
    ],
    returns: "null",
    mutating: true,
}];

fn env() -> FixedEnv {
    FixedEnv {
        vars: [("HOST".to_string(), "h".to_string())].into(),
        programs: vec!["echo".into()],
    }
}

fn run(text: &str) -> Result<Validated, Vec<Diagnostic>> {
    let doc = Document::parse(text, Format::Yaml).unwrap();
    let env = env();
    let inputs = Inputs {
        catalog: &SPECS,
        env: &env,
        config_overrides: Map::new(),
        secret_overrides: Map::new(),
    };
    validate(&doc, &inputs)
}

fn problems(text: &str) -> Vec<String> {
    run(text)
        .unwrap_err()
        .iter()
        .map(|d| d.render("x.yaml"))
        .collect()
}

const GOOD: &str = r#"
title: t
description: d
tags: [a]
configuration:
  host: {type: env, key: HOST}
  n: 2
steady-state-hypothesis:
  title: h
  probes:
    - type: probe
      name: p
      tolerance: 0
      provider: {type: process, path: echo, arguments: ["${host}"]}
method:
  - type: action
    name: w
    provider:
      type: python
      module: squall.testing.actions
      func: write_file
      arguments: {path: /tmp/x}
    pauses: {after: "${n}"}
  - ref: p
rollbacks:
  - type: action
    name: r
    provider: {type: http, url: "http://${host}/", timeout: [1, 2]}
extensions:
  - name: keep-me
    anything: [1]
"#;

#[test]
fn a_good_experiment_validates_and_resolves() {
    let v = run(GOOD).unwrap();
    assert_eq!(v.experiment.title, "t");
    assert_eq!(v.configuration["host"], "h");
    assert_eq!(v.experiment.method.len(), 2);
    assert_eq!(v.experiment.method[1].name, "p");
    assert_eq!(v.experiment.method[1].via_ref.as_deref(), Some("p"));
    assert_eq!(v.experiment.hypothesis.as_ref().unwrap().probes.len(), 1);
    assert_eq!(v.experiment.raw["extensions"][0]["name"], "keep-me");
}

#[test]
fn every_problem_is_reported_with_path_and_line() {
    let text = r#"
title: ""
method:
  - type: action
    name: a
    provider: {type: process, path: nope-not-here, timeout: -1}
  - type: acton
    provider: {type: http}
  - ref: missing
"#;
    let p = problems(text);
    let expect = [
        "x.yaml:2:8: title: experiment requires a title",
        "description: experiment requires a description",
        "x.yaml:6:37: method[0].provider.path: path 'nope-not-here' cannot be found",
        "method[0].provider.timeout: timeout must be a positive number of seconds",
        "method[1].type: 'acton' is not a supported activity type",
        "method[1].name: an activity must have a name",
        "method[1].provider.url: a HTTP activity must have a URL",
        "method[2].ref: referenced activity 'missing' could not be found",
    ];
    for e in expect {
        assert!(p.iter().any(|x| x.contains(e)), "missing {e:?} in {p:#?}");
    }
}

#[test]
fn unknown_keys_name_the_closest_key() {
    let p = problems("title: t\ndescription: d\nmethod: []\nsteady-state-hypotesis: {}\n");
    assert!(
        p[0].contains(
            "unknown key `steady-state-hypotesis`; did you mean `steady-state-hypothesis`?"
        ),
        "{p:?}"
    );
    let p = problems(
        "title: t\ndescription: d\nmethod:\n  - type: action\n    name: a\n    provider: {type: process, path: echo, timout: 3}\n",
    );
    assert!(
        p[0].contains("method[0].provider.timout: unknown key `timout`; did you mean `timeout`?"),
        "{p:?}"
    );
}

#[test]
fn native_functions_and_arguments_are_checked() {
    let text = r#"
title: t
description: d
method:
  - type: action
    name: a
    provider: {type: python, module: squall.testing.action, func: write_file}
  - type: action
    name: b
    provider:
      type: python
      module: squall.testing.actions
      func: write_file
      arguments: {pth: 1, content: 3}
"#;
    let p = problems(text);
    assert!(p.iter().any(|x| x.contains("unknown activity `squall.testing.action.write_file`; the nearest known one is `squall.testing.actions.write_file`")), "{p:#?}");
    assert!(p.iter().any(|x| x.contains(
        "argument 'pth' is not part of the function signature in activity 'b'; did you mean `path`?"
    )));
    assert!(p.iter().any(|x| x.contains(
        "method[1].provider.arguments.content: argument 'content' must be of type string, got 3"
    )));
    assert!(
        p.iter()
            .any(|x| x.contains("required argument 'path' is missing from activity 'b'"))
    );
}

#[test]
fn tolerances_are_required_and_checked() {
    let text = r#"
title: t
description: d
method: []
steady-state-hypothesis:
  title: h
  probes:
    - {type: probe, name: a, provider: {type: process, path: echo}}
    - {type: probe, name: b, tolerance: 1.5, provider: {type: process, path: echo}}
    - {type: probe, name: c, tolerance: {type: regex, pattern: "("}, provider: {type: process, path: echo}}
"#;
    let p = problems(text);
    assert!(
        p.iter().any(
            |x| x.contains("probes[0].tolerance: hypothesis probe must have a tolerance entry")
        )
    );
    assert!(
        p.iter()
            .any(|x| x.contains("probes[1].tolerance: hypothesis probe tolerance must either be"))
    );
    assert!(p.iter().any(|x| {
        x.contains("probes[2].tolerance: hypothesis probe tolerance pattern ( seems invalid")
    }));
}

#[test]
fn unknown_variables_and_missing_env_are_reported() {
    let text = r#"
title: t
description: d
configuration:
  gone: {type: env, key: NOT_SET_ANYWHERE}
method:
  - type: action
    name: a
    provider: {type: http, url: "http://${nope}/"}
"#;
    let p = problems(text);
    assert!(p.iter().any(|x| x.contains("configuration.gone: Configuration makes reference to an environment key that does not exist: NOT_SET_ANYWHERE")));
    assert!(
        p.iter()
            .any(|x| x.contains("method[0].provider.url: unknown variable `${nope}`"))
    );
}

#[test]
fn strategies_pauses_and_limits() {
    let text = r#"
title: t
description: d
runtime: {rollbacks: {strategy: sometimes}}
squall: {limits: {max_targets: 2, max_percent: 150}}
method:
  - {type: action, name: a, provider: {type: process, path: echo}, pauses: {before: "soon", after: 1e300}, background: "yes"}
"#;
    let p = problems(text);
    assert!(
        p.iter()
            .any(|x| x.contains("runtime.rollbacks.strategy: unknown strategy"))
    );
    assert!(p.iter().any(|x| {
        x.contains("squall.limits.max_percent: max_percent must be a number from 0 to 100")
    }));
    assert!(
        p.iter()
            .any(|x| x.contains("method[0].pauses.before: activity before pause must be a number"))
    );
    assert!(
        p.iter()
            .any(|x| x.contains("method[0].background: activity background must be a boolean"))
    );
}

#[test]
fn non_mapping_documents_are_rejected() {
    for text in ["- a\n- b\n", "just text\n", ""] {
        let p = problems(text);
        assert!(p[0].contains("an experiment must be a mapping"), "{p:?}");
    }
}
