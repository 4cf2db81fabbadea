//! Validation of one activity (action or probe) and its provider, collecting
//! every problem with its path.

use serde_json::{Map, Value};

use super::Ctx;
use crate::catalog::{ActivitySpec, Kind, edit_distance};
use crate::doc::Path;
use crate::model::{Activity, MAX_SECONDS, Pauses, Provider, pause_seconds};
use crate::tolerance::Tolerance;

/// Where an activity appears; decides which keys it needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Hypothesis,
    Method,
    Rollback,
    ToleranceProbe,
}

const ACTIVITY_KEYS: &[&str] = &[
    "type",
    "name",
    "provider",
    "pauses",
    "background",
    "tolerance",
    "controls",
    "timeout",
    "dry",
    "configuration",
    "secrets",
    "ref",
    "description",
    "extensions",
];
const PYTHON_KEYS: &[&str] = &[
    "type",
    "module",
    "func",
    "arguments",
    "secrets",
    "configuration",
];
const PROCESS_KEYS: &[&str] = &["type", "path", "arguments", "timeout", "env", "secrets"];
const HTTP_KEYS: &[&str] = &[
    "type",
    "url",
    "method",
    "headers",
    "arguments",
    "timeout",
    "verify_tls",
    "max_retries",
    "expected_status",
    "secrets",
];

/// An activity slot before `ref`s are resolved.
pub(crate) enum Slot {
    Activity(Box<Activity>),
    Ref {
        name: String,
        tolerance: Option<Value>,
        path: Path,
    },
    Invalid,
}

pub(crate) fn slot(ctx: &mut Ctx, v: &Value, path: &Path, role: Role) -> Slot {
    let Some(map) = v.as_object().filter(|m| !m.is_empty()) else {
        ctx.push(
            path,
            "empty activity is no activity (expected a mapping with type, name and provider)",
        );
        return Slot::Invalid;
    };
    if let Some(r) = map.get("ref") {
        return ref_slot(ctx, map, r, path, role);
    }
    match activity(ctx, map, path, role) {
        Some(a) => Slot::Activity(Box::new(a)),
        None => Slot::Invalid,
    }
}

fn ref_slot(ctx: &mut Ctx, map: &Map<String, Value>, r: &Value, path: &Path, role: Role) -> Slot {
    let Some(name) = r.as_str().filter(|s| !s.is_empty()) else {
        ctx.push(
            &path.key("ref"),
            "reference to activity must be non-empty strings",
        );
        return Slot::Invalid;
    };
    let tolerance = map.get("tolerance").cloned();
    if role == Role::Hypothesis {
        check_tolerance(ctx, tolerance.as_ref(), &path.key("tolerance"));
    }
    Slot::Ref {
        name: name.to_owned(),
        tolerance,
        path: path.clone(),
    }
}

/// Validates a non-ref activity; `None` when it is too broken to run.
pub(crate) fn activity(
    ctx: &mut Ctx,
    map: &Map<String, Value>,
    path: &Path,
    role: Role,
) -> Option<Activity> {
    unknown_keys(ctx, map, ACTIVITY_KEYS, path);
    let kind = activity_kind(ctx, map, path);
    let name = match map.get("name") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => {
            ctx.push(&path.key("name"), "an activity must have a name");
            None
        }
    };
    let label = name.clone().unwrap_or_default();
    let provider = provider(
        ctx,
        map.get("provider"),
        &path.key("provider"),
        &label,
        role,
    );
    let pauses = pauses(ctx, map.get("pauses"), &path.key("pauses"));
    let background = match map.get("background") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            ctx.push(
                &path.key("background"),
                "activity background must be a boolean",
            );
            false
        }
    };
    if map.get("timeout").is_some_and(|t| !t.is_number()) {
        ctx.push(&path.key("timeout"), "activity timeout must be a number");
    }
    if map.contains_key("controls") {
        ctx.push(&path.key("controls"), "controls are Chaos Toolkit Python plugins and squall does not run them; remove this key");
    }
    let tolerance = map.get("tolerance").cloned();
    if role == Role::Hypothesis {
        check_tolerance(ctx, tolerance.as_ref(), &path.key("tolerance"));
    }
    Some(Activity {
        kind: kind?,
        name: name?,
        provider: provider?,
        pauses,
        background,
        has_tolerance: tolerance.is_some(),
        tolerance,
        raw: std::sync::Arc::new(Value::Object(map.clone())),
        via_ref: None,
    })
}

fn activity_kind(ctx: &mut Ctx, map: &Map<String, Value>, path: &Path) -> Option<Kind> {
    match map.get("type").and_then(Value::as_str) {
        Some("action") => Some(Kind::Action),
        Some("probe") => Some(Kind::Probe),
        Some(other) => {
            ctx.push(
                &path.key("type"),
                format!("'{other}' is not a supported activity type (use action or probe)"),
            );
            None
        }
        None => {
            ctx.push(
                &path.key("type"),
                "an activity must have a type (action or probe)",
            );
            None
        }
    }
}

pub(crate) fn check_tolerance(ctx: &mut Ctx, tol: Option<&Value>, path: &Path) {
    let Some(tol) = tol else {
        ctx.push(path, "hypothesis probe must have a tolerance entry");
        return;
    };
    match Tolerance::parse(tol) {
        Err(msg) => ctx.push(path, msg),
        Ok(Tolerance::Probe(raw)) => {
            let map = raw.as_object().cloned().unwrap_or_default();
            let _ = activity(ctx, &map, path, Role::ToleranceProbe);
        }
        Ok(_) => ctx.check_refs(tol, path),
    }
}

fn pauses(ctx: &mut Ctx, v: Option<&Value>, path: &Path) -> Pauses {
    let Some(v) = v else {
        return Pauses::default();
    };
    let Some(map) = v.as_object() else {
        ctx.push(
            path,
            "pauses must be a mapping with `before` and/or `after`",
        );
        return Pauses::default();
    };
    unknown_keys(ctx, map, &["before", "after"], path);
    let mut one = |key: &str| -> Option<Value> {
        let p = map.get(key)?;
        let path = path.key(key);
        let checked = match p {
            Value::String(s) if s.starts_with("${") && s.ends_with('}') => {
                ctx.check_refs(p, &path);
                // Known before the run (configuration, --var, var files):
                // checked now, by the rule the runner applies.
                ctx.resolved(p)
                    .map_or(Ok(0.0), |v| pause_seconds(key, &v))
                    .map_err(|e| format!("{e} (from {s})"))
            }
            other => pause_seconds(key, other).map_err(|e| {
                format!("{e}; or a pattern to a variable from the configuration or secrets")
            }),
        };
        if let Err(msg) = checked {
            ctx.push(&path, msg);
            return None;
        }
        Some(p.clone())
    };
    Pauses {
        before: one("before"),
        after: one("after"),
    }
}

fn provider(
    ctx: &mut Ctx,
    v: Option<&Value>,
    path: &Path,
    name: &str,
    role: Role,
) -> Option<Provider> {
    let Some(map) = v.and_then(Value::as_object) else {
        ctx.push(
            path,
            "an activity requires a provider (a mapping with a type)",
        );
        return None;
    };
    match map.get("type").and_then(Value::as_str) {
        Some("python") | Some("native") => native(ctx, map, path, name, role),
        Some("process") => process(ctx, map, path),
        Some("http") => http(ctx, map, path),
        Some(other) => {
            ctx.push(
                &path.key("type"),
                format!("unknown provider type '{other}' (use python, process or http)"),
            );
            None
        }
        None => {
            ctx.push(&path.key("type"), "a provider must have a type");
            None
        }
    }
}

fn process(ctx: &mut Ctx, map: &Map<String, Value>, path: &Path) -> Option<Provider> {
    unknown_keys(ctx, map, PROCESS_KEYS, path);
    let prog = match map.get("path") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        _ => {
            ctx.push(&path.key("path"), "a process activity must have a path");
            return None;
        }
    };
    // `${bin}`: checked when the value is known before the run, else at
    // run time.
    let prog_value = Value::String(prog.clone());
    ctx.check_refs(&prog_value, &path.key("path"));
    let program = if prog.contains("${") {
        ctx.resolved(&prog_value).map(|v| crate::subst::py_str(&v))
    } else {
        Some(prog.clone())
    };
    if let Some(program) = program.filter(|p| !ctx.env.executable_exists(p)) {
        ctx.push(
            &path.key("path"),
            format!("path '{program}' cannot be found (not a file and not on PATH)"),
        );
    }
    let arguments = map.get("arguments").cloned().unwrap_or(Value::Null);
    if !matches!(
        arguments,
        Value::Null | Value::Array(_) | Value::String(_) | Value::Object(_)
    ) {
        ctx.push(
            &path.key("arguments"),
            "process arguments must be a list or a string",
        );
    }
    ctx.check_refs(&arguments, &path.key("arguments"));
    let timeout = number_field(ctx, map, "timeout", path);
    let env = match map.get("env") {
        None => Map::new(),
        Some(Value::Object(e)) if e.values().all(|v| !v.is_array() && !v.is_object()) => e.clone(),
        Some(_) => {
            ctx.push(
                &path.key("env"),
                "process env must be a mapping of names to plain values",
            );
            Map::new()
        }
    };
    Some(Provider::Process {
        path: prog,
        arguments,
        timeout,
        env,
    })
}

fn http(ctx: &mut Ctx, map: &Map<String, Value>, path: &Path) -> Option<Provider> {
    unknown_keys(ctx, map, HTTP_KEYS, path);
    let url = match map.get("url") {
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        _ => {
            ctx.push(&path.key("url"), "a HTTP activity must have a URL");
            return None;
        }
    };
    ctx.check_refs(&Value::String(url.clone()), &path.key("url"));
    if !(url.contains('$') || url.starts_with("http://") || url.starts_with("https://")) {
        ctx.push(
            &path.key("url"),
            format!("'{url}' is not an http:// or https:// URL"),
        );
    }
    let method = match map.get("method") {
        None => "GET".to_owned(),
        Some(Value::String(m)) if !m.is_empty() => m.to_uppercase(),
        Some(_) => {
            ctx.push(
                &path.key("method"),
                "the HTTP method must be a string such as GET or POST",
            );
            "GET".to_owned()
        }
    };
    let headers = match map.get("headers") {
        None => Map::new(),
        Some(Value::Object(h)) => h.clone(),
        Some(_) => {
            ctx.push(
                &path.key("headers"),
                "a HTTP activities expect headers as a mapping",
            );
            Map::new()
        }
    };
    ctx.check_refs(&Value::Object(headers.clone()), &path.key("headers"));
    let timeout = http_timeout(ctx, map.get("timeout"), &path.key("timeout"));
    let verify_tls = bool_field(ctx, map, "verify_tls", path, true);
    let arguments = map.get("arguments").cloned();
    if let Some(a) = &arguments {
        ctx.check_refs(a, &path.key("arguments"));
    }
    Some(Provider::Http {
        url,
        method,
        headers,
        arguments,
        timeout,
        verify_tls,
    })
}

fn http_timeout(ctx: &mut Ctx, v: Option<&Value>, path: &Path) -> Option<Value> {
    let v = v?;
    let ok = match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| is_duration(f, false)),
        Value::Array(pair) => {
            pair.len() == 2
                && pair
                    .iter()
                    .all(|p| p.as_f64().is_some_and(|f| is_duration(f, false)))
        }
        Value::String(s) => s.starts_with("${") && s.ends_with('}'),
        _ => false,
    };
    if !ok {
        ctx.push(
            path,
            "the HTTP timeout must be a number of seconds or a [connect, read] pair of numbers",
        );
        return None;
    }
    ctx.check_refs(v, path);
    Some(v.clone())
}

fn native(
    ctx: &mut Ctx,
    map: &Map<String, Value>,
    path: &Path,
    name: &str,
    role: Role,
) -> Option<Provider> {
    unknown_keys(ctx, map, PYTHON_KEYS, path);
    let module = string_field(
        ctx,
        map,
        "module",
        path,
        "a Python activity must have a module path",
    );
    let func = string_field(
        ctx,
        map,
        "func",
        path,
        "a Python activity must have a function name",
    );
    let arguments = match map.get("arguments") {
        None => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => {
            ctx.push(
                &path.key("arguments"),
                "arguments must be a mapping of argument names to values",
            );
            Map::new()
        }
    };
    let secrets = secrets_list(ctx, map.get("secrets"), &path.key("secrets"));
    let (module, func) = (module?, func?);
    match ctx.catalog.find(&module, &func).copied() {
        Some(spec) => check_arguments(ctx, &spec, &arguments, &path.key("arguments"), name, role),
        None => {
            let hint = ctx
                .catalog
                .nearest(&module, &func)
                .map(|n| format!("; the nearest known one is `{n}`"))
                .unwrap_or_default();
            ctx.push(
                path,
                format!(
                    "unknown activity `{module}.{func}`{hint} (run `squall discover` to list them)"
                ),
            );
        }
    }
    ctx.check_refs(&Value::Object(arguments.clone()), &path.key("arguments"));
    Some(Provider::Native {
        module,
        func,
        arguments,
        secrets,
    })
}

fn check_arguments(
    ctx: &mut Ctx,
    spec: &ActivitySpec,
    args: &Map<String, Value>,
    path: &Path,
    name: &str,
    role: Role,
) {
    for (key, value) in args {
        let Some(arg) = spec.args.iter().find(|a| a.name == key) else {
            let near = spec.args.iter().min_by_key(|a| edit_distance(a.name, key));
            let hint = near
                .map(|a| format!("; did you mean `{}`?", a.name))
                .unwrap_or_default();
            ctx.push(&path.key(key), format!("argument '{key}' is not part of the function signature in activity '{name}'{hint}"));
            continue;
        };
        let placeholder = value.as_str().is_some_and(|s| s.contains("${"));
        // A `${...}` value known before the run is checked like a literal.
        let checked = if placeholder {
            ctx.resolved(value)
                .map(|v| arg.check(&v).map_err(|e| format!("{e} (from {value})")))
        } else {
            Some(arg.check(value))
        };
        if let Some(Err(msg)) = checked {
            ctx.push(&path.key(key), msg);
        }
    }
    for arg in spec.args {
        let supplied_later = role == Role::ToleranceProbe && arg.name == "value";
        if arg.default.is_none() && !args.contains_key(arg.name) && !supplied_later {
            ctx.push(
                path,
                format!(
                    "required argument '{}' is missing from activity '{name}'",
                    arg.name
                ),
            );
        }
    }
}

fn secrets_list(ctx: &mut Ctx, v: Option<&Value>, path: &Path) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            ctx.push(
                path,
                "provider secrets must be a list of secret scope names",
            );
            Vec::new()
        }
    }
}

fn string_field(
    ctx: &mut Ctx,
    map: &Map<String, Value>,
    key: &str,
    path: &Path,
    msg: &str,
) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => {
            ctx.push(&path.key(key), msg);
            None
        }
    }
}

fn number_field(ctx: &mut Ctx, map: &Map<String, Value>, key: &str, path: &Path) -> Option<f64> {
    let v = map.get(key)?;
    match v.as_f64().filter(|f| is_duration(*f, false)) {
        Some(f) => Some(f),
        None => {
            ctx.push(
                &path.key(key),
                format!("{key} must be a positive number of seconds (at most {MAX_SECONDS})"),
            );
            None
        }
    }
}

fn bool_field(
    ctx: &mut Ctx,
    map: &Map<String, Value>,
    key: &str,
    path: &Path,
    default: bool,
) -> bool {
    match map.get(key) {
        None => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            ctx.push(&path.key(key), format!("{key} must be true or false"));
            default
        }
    }
}

fn is_duration(f: f64, zero_ok: bool) -> bool {
    f.is_finite() && f <= MAX_SECONDS && (f > 0.0 || (zero_ok && f == 0.0))
}

/// Flags keys outside `known`, naming the closest known key.
pub(crate) fn unknown_keys(ctx: &mut Ctx, map: &Map<String, Value>, known: &[&str], path: &Path) {
    for key in map.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let near = known
            .iter()
            .min_by_key(|k| edit_distance(k, key))
            .filter(|k| edit_distance(k, key) <= 3);
        let hint = near
            .map(|k| format!("; did you mean `{k}`?"))
            .unwrap_or_default();
        ctx.push(&path.key(key), format!("unknown key `{key}`{hint}"));
    }
}
