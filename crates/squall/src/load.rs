//! Reading what the user points squall at: experiment files, variable
//! files and the settings file. Every problem here is invalid input (exit 2)
//! and is reported with its file and, where known, line and column.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use squall_core::config::{Environment, parse_var};
use squall_core::diag::Diagnostic;
use squall_core::doc::{Document, Format};
use squall_core::validate::{Inputs, Validated, validate};
use squall_engine::providers::process::resolve;

use crate::cli::VarArgs;

/// Invalid input: the lines to print, each a complete message.
#[derive(Debug)]
pub struct InputError(pub Vec<String>);

impl InputError {
    fn one(msg: String) -> Self {
        Self(vec![msg])
    }
}

/// The process environment plus values loaded from .env var files.
#[derive(Default)]
pub struct RealEnv {
    overlay: HashMap<String, String>,
}

impl RealEnv {
    /// The values loaded from .env files, for child processes.
    pub fn overlay(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<_> = self
            .overlay
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs
    }
}

impl Environment for RealEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.overlay
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
    fn executable_exists(&self, program: &str) -> bool {
        resolve(program).is_some()
    }
}

/// Variables from `--var` and `--var-file`.
#[derive(Default)]
pub struct Vars {
    pub configuration: Map<String, Value>,
    pub secrets: Map<String, Value>,
    pub env: RealEnv,
}

/// Reads and parses a YAML or JSON file.
pub fn read_document(path: &Path) -> Result<Document, InputError> {
    let name = path.display().to_string();
    let format = Format::from_name(&name).ok_or_else(|| {
        InputError::one(format!(
            "{name}: only files with json, yaml or yml extensions are supported"
        ))
    })?;
    let text =
        std::fs::read(path).map_err(|e| InputError::one(format!("{name}: cannot read: {e}")))?;
    let text =
        String::from_utf8(text).map_err(|_| InputError::one(format!("{name}: not UTF-8 text")))?;
    Document::parse(&text, format).map_err(|d| InputError::one(d.render(&name)))
}

/// Loads `--var-file`s in order, then applies `--var`s.
pub fn load_vars(args: &VarArgs) -> Result<Vars, InputError> {
    let mut vars = Vars::default();
    for path in &args.var_files {
        if Format::from_name(&path.display().to_string()).is_some() {
            merge_var_document(&mut vars, path)?;
        } else {
            merge_dotenv(&mut vars, path)?;
        }
    }
    for spec in &args.vars {
        let (k, v) = parse_var(spec).map_err(|e| InputError::one(format!("--var {spec}: {e}")))?;
        vars.configuration.insert(k, v);
    }
    Ok(vars)
}

fn merge_var_document(vars: &mut Vars, path: &Path) -> Result<(), InputError> {
    let name = path.display().to_string();
    let doc = read_document(path)?;
    let Some(map) = doc.value.as_object() else {
        return Err(InputError::one(format!(
            "{name}: a var file must be a mapping with `configuration` and/or `secrets`"
        )));
    };
    for (key, target) in [
        ("configuration", &mut vars.configuration),
        ("secrets", &mut vars.secrets),
    ] {
        match map.get(key) {
            None => {}
            Some(Value::Object(m)) => target.extend(m.clone()),
            Some(_) => {
                return Err(InputError::one(format!(
                    "{name}: `{key}` must be a mapping"
                )));
            }
        }
    }
    Ok(())
}

/// A .env file: `NAME=VALUE` lines; blank lines and `#` comments skipped.
fn merge_dotenv(vars: &mut Vars, path: &Path) -> Result<(), InputError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::one(format!("{name}: cannot read: {e}")))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            InputError::one(format!(
                "{name}:{}: expected NAME=VALUE, got `{line}`",
                n + 1
            ))
        })?;
        vars.env.overlay.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(())
}

/// Validates a parsed experiment with its variables.
pub fn validate_experiment(doc: &Document, vars: &Vars) -> Result<Validated, Vec<Diagnostic>> {
    let inputs = Inputs {
        catalog: crate::providers::registry(),
        env: &vars.env,
        config_overrides: vars.configuration.clone(),
        secret_overrides: vars.secrets.clone(),
    };
    validate(doc, &inputs)
}

/// The settings file: the one given, else Chaos Toolkit's if it exists.
/// Only `runtime` is read today; other keys are kept for later use.
pub fn settings(path: Option<&Path>) -> Result<Value, InputError> {
    let path = match path {
        Some(p) => p.to_owned(),
        None => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".chaostoolkit/settings.yaml"),
            None => return Ok(Value::Null),
        },
    };
    if !path.exists() {
        return Ok(Value::Null);
    }
    let doc = read_document(&path)?;
    if !(doc.value.is_object() || doc.value.is_null()) {
        return Err(InputError::one(format!(
            "{}: settings must be a mapping",
            path.display()
        )));
    }
    Ok(doc.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_files_then_vars_then_dotenv() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("vars.yaml");
        std::fs::write(
            &yaml,
            "configuration:\n  a: 1\n  b: 2\nsecrets:\n  s: {k: v}\n",
        )
        .unwrap();
        let env = dir.path().join("vars.env");
        std::fs::write(&env, "# comment\n\nSQUALL_TEST_X=1=2\n").unwrap();
        let args = VarArgs {
            vars: vec!["b:int=3".into()],
            var_files: vec![yaml, env],
        };
        let vars = load_vars(&args).unwrap();
        assert_eq!(vars.configuration["a"], 1);
        assert_eq!(vars.configuration["b"], 3);
        assert_eq!(vars.secrets["s"]["k"], "v");
        assert_eq!(vars.env.var("SQUALL_TEST_X").as_deref(), Some("1=2"));
    }

    #[test]
    fn bad_inputs_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, "novalue\n").unwrap();
        let args = VarArgs {
            vars: vec![],
            var_files: vec![bad],
        };
        assert!(load_vars(&args).err().unwrap().0[0].contains(":1: expected NAME=VALUE"));
        let args = VarArgs {
            vars: vec!["x".into()],
            var_files: vec![],
        };
        assert!(load_vars(&args).is_err());
        assert!(
            read_document(Path::new("x.txt")).err().unwrap().0[0].contains("only files with json")
        );
    }
}
