//! Descriptions of the native activities squall offers (module, func, kind,
//! typed arguments with defaults and docs), as plain data.
//!
//! Each provider pairs its descriptions with their async functions
//! (`squall-activity`), and the engine's registry composes them; the core
//! only needs the descriptions to validate experiments, suggest the nearest
//! name and produce `discovery.json`.

use serde_json::Value;

/// Whether an activity observes (probe) or changes (action) the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Action,
    Probe,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Action => "action",
            Self::Probe => "probe",
        }
    }
}

/// The JSON types an argument may take, named as in `discovery.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    String,
    Integer,
    Number,
    Boolean,
    List,
    Mapping,
    /// Anything (used for `value` of tolerance probes and free-form data).
    Any,
}

impl ArgType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::List => "list",
            Self::Mapping => "mapping",
            Self::Any => "object",
        }
    }

    /// Whether `v` has this type. `null` is accepted only where the
    /// argument's default is `null`, which the caller checks.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Integer => v.is_i64() || v.is_u64(),
            Self::Number => v.is_number(),
            Self::Boolean => v.is_boolean(),
            Self::List => v.is_array(),
            Self::Mapping => v.is_object(),
            Self::Any => true,
        }
    }
}

/// One argument of a native activity.
#[derive(Clone, Copy, Debug)]
pub struct ArgSpec {
    pub name: &'static str,
    pub ty: ArgType,
    /// The default as JSON text; `None` means the argument is required.
    pub default: Option<&'static str>,
    pub doc: &'static str,
    /// Inclusive bounds of a numeric argument.
    pub range: Option<(f64, f64)>,
}

impl ArgSpec {
    /// The same argument, accepting only numbers from `lo` to `hi`.
    pub const fn within(self, lo: f64, hi: f64) -> Self {
        Self {
            range: Some((lo, hi)),
            ..self
        }
    }

    /// The one rule for a value of this argument, whether written in the
    /// file or arriving through `${...}`: its type (`null` where the default
    /// is `null`) and its range. Validation and the runner both use it.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let name = self.name;
        if value.is_null() && self.default == Some("null") {
            return Ok(());
        }
        if !self.ty.accepts(value) {
            let label = match self.ty {
                ArgType::Any => "any",
                other => other.as_str(),
            };
            return Err(format!(
                "argument '{name}' must be of type {label}, got {value}"
            ));
        }
        match (self.range, value.as_f64()) {
            (Some((lo, hi)), Some(v)) if !(lo..=hi).contains(&v) => Err(format!(
                "argument '{name}' must be from {lo} to {hi}, got {value}"
            )),
            _ => Ok(()),
        }
    }

    pub fn default_value(&self) -> Option<Value> {
        self.default
            .map(|d| serde_json::from_str(d).unwrap_or(Value::Null))
    }
}

/// One native activity.
#[derive(Clone, Copy, Debug)]
pub struct ActivitySpec {
    pub module: &'static str,
    pub func: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
    pub args: &'static [ArgSpec],
    /// The JSON type of the result, for `discovery.json`.
    pub returns: &'static str,
    /// Mutating activities record their undo in the ledger before acting.
    pub mutating: bool,
}

impl ActivitySpec {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.module, self.func)
    }
}

/// Read access to the activity list, so validation does not depend on the
/// engine.
pub trait Catalog {
    fn specs(&self) -> Vec<&ActivitySpec>;

    fn find(&self, module: &str, func: &str) -> Option<&ActivitySpec> {
        self.specs()
            .into_iter()
            .find(|s| s.module == module && s.func == func)
    }

    /// The known `module.func` closest to the one asked for.
    fn nearest(&self, module: &str, func: &str) -> Option<String> {
        let wanted = format!("{module}.{func}");
        self.specs()
            .into_iter()
            .map(|s| s.qualified())
            .min_by_key(|q| edit_distance(q, &wanted))
    }
}

impl Catalog for &[ActivitySpec] {
    fn specs(&self) -> Vec<&ActivitySpec> {
        self.iter().collect()
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ActivitySpec] = &[
        ActivitySpec {
            module: "chaosk8s.pod.actions",
            func: "terminate_pods",
            kind: Kind::Action,
            doc: "",
            args: &[],
            returns: "null",
            mutating: true,
        },
        ActivitySpec {
            module: "chaosk8s.pod.probes",
            func: "count_pods",
            kind: Kind::Probe,
            doc: "",
            args: &[],
            returns: "integer",
            mutating: false,
        },
    ];

    #[test]
    fn nearest_name_is_suggested() {
        assert_eq!(
            SPECS
                .nearest("chaosk8s.pod.action", "terminate_pod")
                .as_deref(),
            Some("chaosk8s.pod.actions.terminate_pods")
        );
        assert!(SPECS.find("chaosk8s.pod.probes", "count_pods").is_some());
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn arg_types() {
        assert!(ArgType::Integer.accepts(&serde_json::json!(3)));
        assert!(!ArgType::Integer.accepts(&serde_json::json!(3.5)));
        assert!(ArgType::Number.accepts(&serde_json::json!(3.5)));
        assert!(!ArgType::String.accepts(&serde_json::json!(3)));
    }
}
