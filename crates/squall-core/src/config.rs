//! Resolving `configuration` and `secrets` into plain values: inline values,
//! `{type: env}` lookups with defaults and `env_var_type` conversion, and
//! `--var` / `--var-file` overrides.
//!
//! The environment is passed in as a trait object so this stays free of IO
//! and testable with a fixed environment.

use serde_json::{Map, Value};

use crate::doc::Path;

/// What validation and resolution may ask of the outside world.
pub trait Environment {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// Whether a program can be found (as a path or on `PATH`).
    fn executable_exists(&self, program: &str) -> bool;
}

/// A fixed environment for tests and embedding.
#[derive(Default)]
pub struct FixedEnv {
    pub vars: std::collections::HashMap<String, String>,
    pub programs: Vec<String>,
}

impl Environment for FixedEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn executable_exists(&self, program: &str) -> bool {
        self.programs.iter().any(|p| p == program)
    }
}

/// A problem found while resolving, with where it was declared.
pub type Problem = (Path, String);

/// Resolves configuration declarations; `overrides` (from `--var` and var
/// files) replace or add keys and win over the file.
pub fn resolve_configuration(
    decls: &Map<String, Value>,
    overrides: &Map<String, Value>,
    env: &dyn Environment,
) -> Result<Map<String, Value>, Vec<Problem>> {
    let base = Path::root().key("configuration");
    let mut out = Map::new();
    let mut problems = Vec::new();
    for (key, decl) in &merged(decls, overrides) {
        match resolve_config_value(decl, env) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(msg) => problems.push((base.key(key), msg)),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Declarations with overrides replacing whole keys, in declaration order.
fn merged(decls: &Map<String, Value>, overrides: &Map<String, Value>) -> Map<String, Value> {
    let mut out = decls.clone();
    for (k, v) in overrides {
        out.insert(k.clone(), v.clone());
    }
    out
}

fn resolve_config_value(decl: &Value, env: &dyn Environment) -> Result<Value, String> {
    let Some(map) = decl.as_object() else {
        return Ok(decl.clone());
    };
    match map.get("type").and_then(Value::as_str) {
        Some("env") => resolve_env(map, env),
        Some("probe") => Err("dynamic configuration (a probe as a configuration value) is not supported by squall yet".into()),
        _ => Ok(decl.clone()),
    }
}

fn resolve_env(map: &Map<String, Value>, env: &dyn Environment) -> Result<Value, String> {
    let Some(key) = map.get("key").and_then(Value::as_str) else {
        return Err(
            "an env configuration value needs a `key` naming the environment variable".into(),
        );
    };
    let ty = map.get("env_var_type").and_then(Value::as_str);
    let raw = match (env.var(key), map.get("default")) {
        (Some(v), _) => Value::String(v),
        (None, Some(d)) => d.clone(),
        (None, None) => {
            return Err(format!(
                "Configuration makes reference to an environment key that does not exist: {key} \
                 (set {key}, pass --var NAME=VALUE, or give the value a `default`)"
            ));
        }
    };
    match ty {
        None => Ok(raw),
        Some(t) => convert(raw, t),
    }
}

/// Converts an env string (or a default) to `env_var_type`, as upstream does.
pub fn convert(v: Value, ty: &str) -> Result<Value, String> {
    let Value::String(s) = &v else {
        return Ok(v);
    };
    match ty {
        "str" | "string" | "bytes" => Ok(v),
        "int" | "integer" => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("invalid literal for int() with base 10: '{s}'")),
        "float" | "number" => s
            .trim()
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| format!("could not convert string to float: '{s}'")),
        "bool" => Ok(Value::Bool(!matches!(
            s.to_lowercase().as_str(),
            "false" | "0" | "no"
        ))),
        "json" if s.is_empty() => Ok(v),
        "json" => serde_json::from_str(s).map_err(|e| format!("invalid JSON value '{s}': {e}")),
        _ => Err("variable type can only be: bool, str, int, float, bytes or json".into()),
    }
}

/// Resolves secret scopes. A scope in `overrides` replaces the whole scope,
/// as upstream var files do.
pub fn resolve_secrets(
    decls: &Map<String, Value>,
    overrides: &Map<String, Value>,
    env: &dyn Environment,
) -> Result<Map<String, Value>, Vec<Problem>> {
    let mut out = Map::new();
    let mut problems = Vec::new();
    for (scope, decl) in &merged(decls, overrides) {
        let path = Path::root().key("secrets").key(scope);
        match decl.as_object() {
            Some(map) => {
                let resolved = resolve_secret_map(map, &path, env, &mut problems);
                out.insert(scope.clone(), Value::Object(resolved));
            }
            None => problems.push((
                path,
                "a secrets scope must be a mapping of names to values".into(),
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn resolve_secret_map(
    map: &Map<String, Value>,
    path: &Path,
    env: &dyn Environment,
    problems: &mut Vec<Problem>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, decl) in map {
        let here = path.key(key);
        let value = match decl.as_object() {
            Some(d) => match d.get("type").and_then(Value::as_str) {
                Some("env") => secret_from_env(d, &here, env, problems),
                Some("vault") => {
                    problems.push((
                        here,
                        "vault secrets are not supported by squall yet; use `type: env`".into(),
                    ));
                    continue;
                }
                _ => Value::Object(resolve_secret_map(d, &here, env, problems)),
            },
            None => decl.clone(),
        };
        out.insert(key.clone(), value);
    }
    out
}

fn secret_from_env(
    d: &Map<String, Value>,
    here: &Path,
    env: &dyn Environment,
    problems: &mut Vec<Problem>,
) -> Value {
    let Some(key) = d.get("key").and_then(Value::as_str) else {
        problems.push((
            here.clone(),
            "an env secret needs a `key` naming the environment variable".into(),
        ));
        return Value::Null;
    };
    match env.var(key) {
        Some(v) => Value::String(v),
        None => {
            problems.push((
                here.clone(),
                format!("Secrets make reference to an environment key that does not exist: {key}"),
            ));
            Value::Null
        }
    }
}

/// Parses one `--var key[:type]=value`.
pub fn parse_var(spec: &str) -> Result<(String, Value), String> {
    let (lhs, value) = spec
        .split_once('=')
        .ok_or_else(|| format!("`{spec}` is not KEY=VALUE (or KEY:TYPE=VALUE)"))?;
    let (key, ty) = match lhs.split_once(':') {
        Some((k, t)) => (k, Some(t)),
        None => (lhs, None),
    };
    if key.is_empty() {
        return Err(format!("`{spec}` has an empty key"));
    }
    let v = Value::String(value.to_owned());
    let v = match ty {
        Some(t) => convert(v, t)?,
        None => v,
    };
    Ok((key.to_owned(), v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> FixedEnv {
        FixedEnv {
            vars: pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            programs: vec![],
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn inline_env_and_defaults() {
        let decls = obj(json!({
            "a": 1,
            "host": {"type": "env", "key": "HOST"},
            "port": {"type": "env", "key": "PORT", "default": "8080", "env_var_type": "int"},
            "on": {"type": "env", "key": "ON", "env_var_type": "bool"},
            "j": {"type": "env", "key": "J", "env_var_type": "json"},
            "raw": {"type": "other", "x": 1}
        }));
        let e = env(&[("HOST", "h"), ("ON", "no"), ("J", "[1,2]")]);
        let out = resolve_configuration(&decls, &Map::new(), &e).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"a": 1, "host": "h", "port": 8080, "on": false, "j": [1, 2], "raw": {"type": "other", "x": 1}})
        );
    }

    #[test]
    fn missing_env_is_reported_and_var_can_supply_it() {
        let decls = obj(json!({"host": {"type": "env", "key": "INGRESS_HOST"}}));
        let errs = resolve_configuration(&decls, &Map::new(), &env(&[])).unwrap_err();
        assert_eq!(errs[0].0.to_string(), "configuration.host");
        assert!(errs[0].1.contains("INGRESS_HOST"));
        let vars = obj(json!({"host": "127.0.0.1:1"}));
        let out = resolve_configuration(&decls, &vars, &env(&[])).unwrap();
        assert_eq!(out["host"], "127.0.0.1:1");
    }

    #[test]
    fn conversion_errors() {
        assert!(
            convert(json!("abc"), "int")
                .unwrap_err()
                .contains("invalid literal")
        );
        assert!(
            convert(json!("1"), "weird")
                .unwrap_err()
                .contains("variable type can only be")
        );
        assert_eq!(convert(json!(""), "bool").unwrap(), json!(true));
        assert_eq!(convert(json!("1.5"), "float").unwrap(), json!(1.5));
    }

    #[test]
    fn secrets_inline_env_nested_and_override() {
        let decls = obj(
            json!({"k8s": {"token": {"type": "env", "key": "TOK"}, "inline": "x", "nested": {"a": "b"}}}),
        );
        let out = resolve_secrets(&decls, &Map::new(), &env(&[("TOK", "t")])).unwrap();
        assert_eq!(
            out["k8s"],
            json!({"token": "t", "inline": "x", "nested": {"a": "b"}})
        );
        let errs = resolve_secrets(&decls, &Map::new(), &env(&[])).unwrap_err();
        assert!(errs[0].1.contains("TOK"));
        let over = obj(json!({"k8s": {"only": 1}}));
        let out = resolve_secrets(&decls, &over, &env(&[])).unwrap();
        assert_eq!(out["k8s"], json!({"only": 1}));
        let vault = obj(json!({"s": {"v": {"type": "vault", "path": "p"}}}));
        assert!(
            resolve_secrets(&vault, &Map::new(), &env(&[])).unwrap_err()[0]
                .1
                .contains("vault")
        );
    }

    #[test]
    fn var_parsing() {
        assert_eq!(parse_var("a=b=c").unwrap(), ("a".into(), json!("b=c")));
        assert_eq!(parse_var("n:int=4").unwrap(), ("n".into(), json!(4)));
        assert!(parse_var("novalue").is_err());
        assert!(
            parse_var("n:int=x")
                .unwrap_err()
                .contains("invalid literal")
        );
        assert!(parse_var("=x").is_err());
    }
}
