//! Validation: turns a parsed [`Document`] into a runnable [`Experiment`] or
//! into every problem it has, each with its path and location.
//!
//! Nothing here stops at the first problem, and nothing panics on any input:
//! a user with a broken file gets the whole list in one go.

mod activity;

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::config::{Environment, resolve_configuration, resolve_secrets};
use crate::diag::{Diagnostic, Sink};
use crate::doc::{Document, Path};
use crate::model::{Activity, Experiment, Hypothesis, Limits, Runtime};
use crate::subst::referenced_names;
use activity::{Role, Slot, slot, unknown_keys};

const TOP_KEYS: &[&str] = &[
    "title",
    "description",
    "tags",
    "configuration",
    "secrets",
    "steady-state-hypothesis",
    "method",
    "rollbacks",
    "extensions",
    "controls",
    "runtime",
    "contributions",
    "version",
    "dry",
    "squall",
];
pub const ROLLBACK_STRATEGIES: &[&str] = &["default", "always", "never", "deviated"];
pub const HYPOTHESIS_STRATEGIES: &[&str] = &[
    "default",
    "before-method-only",
    "after-method-only",
    "during-method",
    "during-method-only",
    "continuously",
    "continously",
    "skip",
];

/// What validation needs besides the document.
pub struct Inputs<'a> {
    pub catalog: &'a dyn Catalog,
    pub env: &'a dyn Environment,
    /// `--var` / var-file configuration values.
    pub config_overrides: Map<String, Value>,
    /// Var-file secret scopes.
    pub secret_overrides: Map<String, Value>,
}

/// A valid experiment with its configuration and secrets resolved.
#[derive(Debug)]
pub struct Validated {
    pub experiment: Experiment,
    pub configuration: Map<String, Value>,
    pub secrets: Map<String, Value>,
}

/// Shared state of one validation pass.
pub(crate) struct Ctx<'a> {
    sink: Sink<'a>,
    catalog: &'a dyn Catalog,
    env: &'a dyn Environment,
    /// Names `${...}` may refer to (configuration and secret keys).
    names: HashSet<String>,
    /// The configuration as resolved before the run, so values that
    /// arrive through `${...}` are checked like literals.
    known: Map<String, Value>,
}

impl Ctx<'_> {
    /// `v` substituted with the configuration known before the run, when
    /// every name it uses is known then.
    pub(crate) fn resolved(&self, v: &Value) -> Option<Value> {
        let names = match v {
            Value::String(s) => referenced_names(s),
            _ => Vec::new(),
        };
        if names.is_empty() || !names.iter().all(|n| self.known.contains_key(n)) {
            return None;
        }
        Some(crate::subst::substitute(v, &self.known))
    }

    pub(crate) fn push(&mut self, path: &Path, message: impl Into<String>) {
        self.sink.push(path, message);
    }

    /// Flags `${name}` references to names declared nowhere.
    pub(crate) fn check_refs(&mut self, v: &Value, path: &Path) {
        match v {
            Value::String(s) => {
                for name in referenced_names(s) {
                    let braced = s.contains(&format!("${{{name}}}"));
                    if braced && !self.names.contains(&name) {
                        self.push(path, format!("unknown variable `${{{name}}}`: declare `{name}` under configuration or secrets, or pass --var {name}=VALUE"));
                    }
                }
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, x)| self.check_refs(x, &path.index(i))),
            Value::Object(m) => m.iter().for_each(|(k, x)| self.check_refs(x, &path.key(k))),
            _ => {}
        }
    }
}

/// Validates `doc`, returning the experiment or every problem found.
pub fn validate(doc: &Document, inputs: &Inputs) -> Result<Validated, Vec<Diagnostic>> {
    let mut ctx = Ctx {
        sink: Sink::new(doc),
        catalog: inputs.catalog,
        env: inputs.env,
        names: HashSet::new(),
        known: Map::new(),
    };
    let Some(root) = doc.value.as_object() else {
        ctx.push(
            &Path::root(),
            "an experiment must be a mapping (title, description, method, ...)",
        );
        return Err(ctx.sink.items);
    };
    unknown_keys(&mut ctx, root, TOP_KEYS, &Path::root());
    let title = required_text(&mut ctx, root, "title", "experiment requires a title");
    required_text(
        &mut ctx,
        root,
        "description",
        "experiment requires a description",
    );
    check_tags(&mut ctx, root.get("tags"));
    check_extensions(&mut ctx, root.get("extensions"));
    if root.contains_key("controls") {
        ctx.push(&Path::root().key("controls"), "controls are Chaos Toolkit Python plugins and squall does not run them; remove this key");
    }
    let (configuration, secrets) = resolve_inputs(&mut ctx, root, inputs);
    ctx.known = configuration.clone();
    let parts = activities(&mut ctx, root);
    let runtime = runtime(&mut ctx, root.get("runtime"));
    let limits = limits(&mut ctx, root.get("squall"));
    if !ctx.sink.is_empty() {
        return Err(ctx.sink.items);
    }
    let (hypothesis, method, rollbacks) = parts;
    let experiment = Experiment {
        raw: doc.value.clone(),
        title: title.unwrap_or_default(),
        configuration: object_at(root, "configuration"),
        secrets: object_at(root, "secrets"),
        hypothesis,
        method,
        rollbacks,
        runtime,
        limits,
    };
    Ok(Validated {
        experiment,
        configuration,
        secrets,
    })
}

/// Parses the probe of a probe tolerance (already validated with its
/// experiment) into an activity the engine can run.
pub fn tolerance_probe(
    v: &Value,
    catalog: &dyn Catalog,
    env: &dyn Environment,
) -> Option<Activity> {
    let doc = Document::from_value(v.clone());
    let mut ctx = Ctx {
        sink: Sink::new(&doc),
        catalog,
        env,
        names: HashSet::new(),
        known: Map::new(),
    };
    let map = v.as_object()?;
    activity::activity(&mut ctx, map, &Path::root(), Role::ToleranceProbe)
}

fn object_at(root: &Map<String, Value>, key: &str) -> Map<String, Value> {
    root.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn required_text(ctx: &mut Ctx, root: &Map<String, Value>, key: &str, msg: &str) -> Option<String> {
    match root.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => {
            ctx.push(&Path::root().key(key), msg);
            None
        }
    }
}

fn check_tags(ctx: &mut Ctx, tags: Option<&Value>) {
    let path = Path::root().key("tags");
    match tags {
        None => {}
        Some(Value::Array(items)) => {
            for (i, t) in items.iter().enumerate() {
                if t.as_str().is_none_or(str::is_empty) {
                    ctx.push(&path.index(i), "experiment tags must be a non-empty string");
                }
            }
        }
        Some(_) => ctx.push(&path, "tags must be a list of strings"),
    }
}

fn check_extensions(ctx: &mut Ctx, ext: Option<&Value>) {
    let path = Path::root().key("extensions");
    match ext {
        None => {}
        Some(Value::Array(items)) => {
            for (i, e) in items.iter().enumerate() {
                let named = e
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.trim().is_empty());
                if !named {
                    ctx.push(&path.index(i), "All extensions require a non-empty name");
                }
            }
        }
        Some(_) => ctx.push(
            &path,
            "extensions must be a list of mappings, each with a name",
        ),
    }
}

fn resolve_inputs(
    ctx: &mut Ctx,
    root: &Map<String, Value>,
    inputs: &Inputs,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut section = |key: &str| match root.get(key) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            ctx.push(&Path::root().key(key), format!("{key} must be a mapping"));
            Map::new()
        }
    };
    let (cfg_decls, secret_decls) = (section("configuration"), section("secrets"));
    let configuration = resolve_configuration(&cfg_decls, &inputs.config_overrides, ctx.env)
        .unwrap_or_else(|problems| {
            problems.into_iter().for_each(|(p, m)| ctx.push(&p, m));
            Map::new()
        });
    let secrets = resolve_secrets(&secret_decls, &inputs.secret_overrides, ctx.env).unwrap_or_else(
        |problems| {
            problems.into_iter().for_each(|(p, m)| ctx.push(&p, m));
            Map::new()
        },
    );
    ctx.names.extend(cfg_decls.keys().cloned());
    ctx.names.extend(inputs.config_overrides.keys().cloned());
    for scope in secret_decls
        .values()
        .chain(inputs.secret_overrides.values())
    {
        if let Some(m) = scope.as_object() {
            ctx.names.extend(m.keys().cloned());
        }
    }
    (configuration, secrets)
}

type Parts = (Option<Hypothesis>, Vec<Activity>, Vec<Activity>);

/// The hypothesis, method and rollbacks, with refs resolved.
fn activities(ctx: &mut Ctx, root: &Map<String, Value>) -> Parts {
    let (hyp_title, hyp_slots) = hypothesis_slots(ctx, root.get("steady-state-hypothesis"));
    let method_path = Path::root().key("method");
    let method_slots = match root.get("method") {
        None | Some(Value::Null) => {
            ctx.push(&method_path, "an experiment requires a method, which can be empty for only checking steady state hypothesis");
            Vec::new()
        }
        Some(v) => list_slots(ctx, v, &method_path, Role::Method),
    };
    let rollback_slots = match root.get("rollbacks") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => list_slots(ctx, v, &Path::root().key("rollbacks"), Role::Rollback),
    };
    // Refs see method activities and hypothesis probes; a probe wins on a
    // duplicate name, as upstream.
    let mut cache: HashMap<String, Activity> = HashMap::new();
    for s in method_slots.iter().chain(hyp_slots.iter()) {
        if let Slot::Activity(a) = s {
            cache.insert(a.name.clone(), (**a).clone());
        }
    }
    let probes = resolve(ctx, hyp_slots, &cache);
    let method = resolve(ctx, method_slots, &cache);
    let rollbacks = resolve(ctx, rollback_slots, &cache);
    let hypothesis = hyp_title.map(|title| Hypothesis { title, probes });
    (hypothesis, method, rollbacks)
}

fn hypothesis_slots(ctx: &mut Ctx, v: Option<&Value>) -> (Option<String>, Vec<Slot>) {
    let path = Path::root().key("steady-state-hypothesis");
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return (None, Vec::new());
    };
    let Some(map) = v.as_object() else {
        ctx.push(
            &path,
            "the steady-state hypothesis must be a mapping with a title and probes",
        );
        return (None, Vec::new());
    };
    unknown_keys(ctx, map, &["title", "probes", "controls"], &path);
    let title = match map.get("title") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            ctx.push(&path.key("title"), "hypothesis requires a title");
            String::new()
        }
    };
    let slots = match map.get("probes") {
        None | Some(Value::Null) => Vec::new(),
        Some(p) => list_slots(ctx, p, &path.key("probes"), Role::Hypothesis),
    };
    (Some(title), slots)
}

fn list_slots(ctx: &mut Ctx, v: &Value, path: &Path, role: Role) -> Vec<Slot> {
    let Some(items) = v.as_array() else {
        ctx.push(path, "expected a list of activities");
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| slot(ctx, item, &path.index(i), role))
        .collect()
}

fn resolve(ctx: &mut Ctx, slots: Vec<Slot>, cache: &HashMap<String, Activity>) -> Vec<Activity> {
    let mut out = Vec::new();
    for s in slots {
        match s {
            Slot::Activity(a) => out.push(*a),
            Slot::Ref {
                name,
                tolerance,
                path,
            } => match cache.get(&name) {
                Some(found) => {
                    let mut a = found.clone();
                    a.via_ref = Some(name);
                    if tolerance.is_some() {
                        a.has_tolerance = true;
                        a.tolerance = tolerance;
                    }
                    out.push(a);
                }
                None => ctx.push(
                    &path.key("ref"),
                    format!("referenced activity '{name}' could not be found in the experiment"),
                ),
            },
            Slot::Invalid => {}
        }
    }
    out
}

fn runtime(ctx: &mut Ctx, v: Option<&Value>) -> Runtime {
    let path = Path::root().key("runtime");
    let Some(map) = v.and_then(Value::as_object) else {
        if v.is_some_and(|v| !v.is_null()) {
            ctx.push(&path, "runtime must be a mapping");
        }
        return Runtime::default();
    };
    let mut strategy = |section: &str, allowed: &[&str]| -> Option<String> {
        let p = path.key(section).key("strategy");
        let s = map.get(section)?.get("strategy")?;
        match s.as_str() {
            Some(s) if allowed.contains(&s) => Some(s.to_owned()),
            _ => {
                ctx.push(
                    &p,
                    format!(
                        "unknown strategy {s}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
                None
            }
        }
    };
    Runtime {
        rollback_strategy: strategy("rollbacks", ROLLBACK_STRATEGIES),
        hypothesis_strategy: strategy("hypothesis", HYPOTHESIS_STRATEGIES),
    }
}

fn limits(ctx: &mut Ctx, v: Option<&Value>) -> Limits {
    let path = Path::root().key("squall");
    let Some(map) = v.and_then(Value::as_object) else {
        if v.is_some() {
            ctx.push(&path, "the squall block must be a mapping");
        }
        return Limits::default();
    };
    unknown_keys(ctx, map, &["limits"], &path);
    let Some(l) = map.get("limits").and_then(Value::as_object) else {
        return Limits::default();
    };
    let lp = path.key("limits");
    unknown_keys(ctx, l, &["max_targets", "max_percent"], &lp);
    let max_targets = l.get("max_targets").and_then(|v| {
        let n = v.as_u64();
        if n.is_none() {
            ctx.push(
                &lp.key("max_targets"),
                "max_targets must be a non-negative integer",
            );
        }
        n
    });
    let max_percent = l.get("max_percent").and_then(|v| {
        let p = v.as_f64().filter(|p| (0.0..=100.0).contains(p));
        if p.is_none() {
            ctx.push(
                &lp.key("max_percent"),
                "max_percent must be a number from 0 to 100",
            );
        }
        p
    });
    Limits {
        max_targets,
        max_percent,
    }
}

#[cfg(test)]
mod tests;
