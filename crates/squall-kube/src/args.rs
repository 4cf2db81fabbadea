//! Reading activity arguments. The engine has already checked types against
//! each `ArgSpec` and filled in defaults, so these helpers mostly unwrap;
//! they still fail cleanly (never panic) when called with something else,
//! for example from a test or a future caller that skips validation.

use serde_json::{Map, Value};
use squall_activity::ActivityError;

fn wrong(name: &str, what: &str, v: &Value) -> ActivityError {
    ActivityError::failed(format!("argument {name} must be {what}, not {v}"))
}

/// A string argument; `null`, absent and `""` are all "not given", as
/// Python's truthiness treats them in chaosk8s.
pub fn opt_str(args: &Map<String, Value>, name: &str) -> Result<Option<String>, ActivityError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong(name, "a string", v)),
    }
}

/// A string argument with a default.
pub fn str_or(
    args: &Map<String, Value>,
    name: &str,
    default: &str,
) -> Result<String, ActivityError> {
    Ok(opt_str(args, name)?.unwrap_or_else(|| default.to_owned()))
}

/// A boolean argument with a default.
pub fn bool_or(
    args: &Map<String, Value>,
    name: &str,
    default: bool,
) -> Result<bool, ActivityError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(wrong(name, "a boolean", v)),
    }
}

/// An integer argument that may be `null`.
pub fn opt_int(args: &Map<String, Value>, name: &str) -> Result<Option<i64>, ActivityError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(i64::MAX)),
        Some(v) => Err(wrong(name, "an integer", v)),
    }
}

/// An integer argument with a default.
pub fn int_or(args: &Map<String, Value>, name: &str, default: i64) -> Result<i64, ActivityError> {
    Ok(opt_int(args, name)?.unwrap_or(default))
}

/// A required string argument (the engine has checked it is present).
pub fn required_str(args: &Map<String, Value>, name: &str) -> Result<String, ActivityError> {
    opt_str(args, name)?
        .ok_or_else(|| ActivityError::failed(format!("argument {name} is required")))
}

/// A required integer argument.
pub fn required_int(args: &Map<String, Value>, name: &str) -> Result<i64, ActivityError> {
    opt_int(args, name)?
        .ok_or_else(|| ActivityError::failed(format!("argument {name} is required")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_null_strings_are_not_given_and_wrong_types_fail() {
        let args = json!({"a": "", "b": null, "c": "x", "d": 3, "e": true, "f": 1.5});
        let args = args.as_object().unwrap();
        assert_eq!(opt_str(args, "a").unwrap(), None);
        assert_eq!(opt_str(args, "b").unwrap(), None);
        assert_eq!(str_or(args, "z", "default").unwrap(), "default");
        assert_eq!(opt_str(args, "c").unwrap().as_deref(), Some("x"));
        assert_eq!(
            opt_str(args, "d").unwrap_err().message(),
            "argument d must be a string, not 3"
        );
        assert!(bool_or(args, "e", false).unwrap());
        assert_eq!(int_or(args, "d", 1).unwrap(), 3);
        assert!(int_or(args, "f", 1).is_err());
    }
}
