//! Steady-state tolerances: the shapes Chaos Toolkit accepts and how each
//! one judges a probe's output, with Python's equality rules (`1 == True`),
//! because that is what existing experiment files were written against.
//!
//! A probe used as a tolerance (`{"type": "probe", ...}`) is parsed here but
//! run by the engine, which owns providers.

use fancy_regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed tolerance.
#[derive(Clone, Debug)]
pub enum Tolerance {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Regex {
        pattern: String,
        target: Option<String>,
    },
    Range {
        lo: f64,
        hi: f64,
        target: Option<String>,
    },
    JsonPath {
        path: String,
        target: Option<String>,
        expect: Option<Value>,
        count: Option<usize>,
    },
    /// A probe whose truthy result means "met"; run by the engine.
    Probe(Value),
}

const SHAPE_HELP: &str = "hypothesis probe tolerance must either be an integer, a string, a boolean \
or a pair of values for boundaries. It can also be a dictionary which is a probe activity \
definition that takes an argument called `value` with the value of the probe itself to be validated";

impl Tolerance {
    /// Parses a tolerance value. Regexes and JSON paths are compiled now,
    /// unless they still hold `${...}` placeholders (checked after
    /// substitution, at run time).
    pub fn parse(v: &Value) -> Result<Self, String> {
        match v {
            Value::Bool(b) => Ok(Self::Bool(*b)),
            Value::Number(n) => n
                .as_i64()
                .map(Self::Int)
                .ok_or_else(|| SHAPE_HELP.to_owned()),
            Value::String(s) => Ok(Self::Str(s.clone())),
            Value::Array(items) => Ok(Self::List(items.clone())),
            Value::Object(map) => parse_dict(map),
            Value::Null => Err(SHAPE_HELP.to_owned()),
        }
    }

    /// Whether `value` is within this tolerance. `Err` is a tolerance that
    /// cannot be applied to this value at all (wrong types), which upstream
    /// treats as a hard error.
    pub fn check(&self, value: &Value) -> Result<bool, String> {
        match self {
            Self::Bool(b) => Ok(py_eq(value, &Value::Bool(*b))),
            Self::Int(i) => Ok(py_eq(status_or_self(value), &Value::from(*i))),
            Self::Str(s) => Ok(py_eq(value, &Value::String(s.clone()))),
            Self::List(items) => check_list(items, value),
            Self::Regex { pattern, target } => check_regex(pattern, target_of(value, target)),
            Self::Range { lo, hi, target } => check_range(*lo, *hi, target_of(value, target)),
            Self::JsonPath {
                path,
                target,
                expect,
                count,
            } => check_jsonpath(path, target_of(value, target), expect.as_ref(), *count),
            Self::Probe(_) => Err("a probe tolerance is run by the engine".into()),
        }
    }
}

fn parse_dict(map: &serde_json::Map<String, Value>) -> Result<Tolerance, String> {
    let target = map.get("target").and_then(Value::as_str).map(str::to_owned);
    match map.get("type").and_then(Value::as_str) {
        Some("probe") => Ok(Tolerance::Probe(Value::Object(map.clone()))),
        Some("regex") => parse_regex(map, target),
        Some("range") => parse_range(map, target),
        Some("jsonpath") => parse_jsonpath(map, target),
        Some(other) => Err(format!(
            "hypothesis probe tolerance type '{other}' is unsupported"
        )),
        None => Err(
            "hypothesis probe tolerance needs a `type` (probe, regex, range or jsonpath)".into(),
        ),
    }
}

fn parse_regex(
    map: &serde_json::Map<String, Value>,
    target: Option<String>,
) -> Result<Tolerance, String> {
    let pattern = match map.get("pattern") {
        None => return Err("hypothesis regex probe tolerance must have a `pattern` key".into()),
        Some(Value::String(p)) => p.clone(),
        Some(other) => {
            return Err(format!(
                "hypothesis probe tolerance pattern {other} has an invalid type"
            ));
        }
    };
    if !pattern.contains("${") {
        Regex::new(&pattern).map_err(|e| {
            format!("hypothesis probe tolerance pattern {pattern} seems invalid: {e}")
        })?;
    }
    Ok(Tolerance::Regex { pattern, target })
}

fn parse_range(
    map: &serde_json::Map<String, Value>,
    target: Option<String>,
) -> Result<Tolerance, String> {
    let range = match map.get("range") {
        None => return Err("hypothesis range probe tolerance must have a `range` key".into()),
        Some(Value::Array(r)) => r,
        Some(_) => return Err("hypothesis range must be a sequence".into()),
    };
    if range.len() != 2 {
        return Err("hypothesis range sequence must be made of two values".into());
    }
    let lo = range[0]
        .as_f64()
        .ok_or("hypothesis range lower boundary must be a number")?;
    let hi = range[1]
        .as_f64()
        .ok_or("hypothesis range upper boundary must be a number")?;
    Ok(Tolerance::Range { lo, hi, target })
}

fn parse_jsonpath(
    map: &serde_json::Map<String, Value>,
    target: Option<String>,
) -> Result<Tolerance, String> {
    let path = match map.get("path") {
        None => return Err("hypothesis jsonpath probe tolerance must have a `path` key".into()),
        Some(Value::String(p)) if p.trim().is_empty() => {
            return Err("hypothesis probe tolerance JSON path cannot be empty".into());
        }
        Some(Value::String(p)) => p.clone(),
        Some(other) => {
            return Err(format!(
                "hypothesis probe tolerance JSON path {other} is invalid"
            ));
        }
    };
    if !path.contains("${") {
        compile_path(&path)?;
    }
    let count = match map.get("count") {
        None => None,
        Some(c) => Some(
            c.as_u64()
                .and_then(|c| usize::try_from(c).ok())
                .ok_or("hypothesis jsonpath tolerance `count` must be a non-negative integer")?,
        ),
    };
    Ok(Tolerance::JsonPath {
        path,
        target,
        expect: map.get("expect").cloned(),
        count,
    })
}

/// Compiles a JSON path, accepting the common `jsonpath2` spellings used in
/// Chaos Toolkit experiments (`=` for equality, `and`/`or`/`not`).
pub fn compile_path(path: &str) -> Result<JsonPath, String> {
    let translated = translate_jsonpath2(path);
    JsonPath::parse(&translated)
        .map_err(|e| format!("hypothesis probe tolerance JSON path {path} is invalid: {e}"))
}

/// Rewrites jsonpath2 filter syntax into RFC 9535 syntax, leaving quoted
/// strings untouched.
fn translate_jsonpath2(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    let chars: Vec<char> = path.chars().collect();
    // One entry per open `[`: whether it opened a filter `[?`.
    let mut brackets: Vec<bool> = Vec::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        let in_filter = brackets.iter().any(|f| *f);
        match c {
            '"' | '\'' => quote = Some(c),
            '[' => brackets.push(chars[i + 1..].iter().find(|c| !c.is_whitespace()) == Some(&'?')),
            ']' => {
                brackets.pop();
            }
            '=' if in_filter && !matches!(prev, '=' | '!' | '<' | '>') && next != '=' => {
                out.push_str("==");
                i += 1;
                continue;
            }
            _ => {}
        }
        if let Some((word, rep)) = keyword_at(&chars, i).filter(|_| in_filter) {
            out.push_str(rep);
            i += word;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A jsonpath2 keyword (`and`, `or`, `not`) starting at `i`, as a whole word.
fn keyword_at(chars: &[char], i: usize) -> Option<(usize, &'static str)> {
    let boundary = |j: usize| {
        chars
            .get(j)
            .is_none_or(|c| !c.is_alphanumeric() && *c != '_')
    };
    if i > 0 && !boundary(i - 1) {
        return None;
    }
    for (word, rep) in [("and", "&&"), ("or", "||"), ("not", "!")] {
        let w: Vec<char> = word.chars().collect();
        if chars[i..].starts_with(&w) && boundary(i + w.len()) {
            return Some((w.len(), rep));
        }
    }
    None
}

/// For a dict with `status` (an HTTP or process result), its status.
fn status_or_self(v: &Value) -> &Value {
    v.get("status").filter(|_| v.is_object()).unwrap_or(v)
}

fn target_of<'a>(v: &'a Value, target: &Option<String>) -> &'a Value {
    match (target, v) {
        (Some(t), Value::Object(m)) => m.get(t).unwrap_or(v),
        _ => v,
    }
}

fn check_list(items: &[Value], value: &Value) -> Result<bool, String> {
    if value.is_object() && value.get("status").is_some() {
        let status = &value["status"];
        return Ok(items.iter().any(|i| py_eq(i, status)));
    }
    if items.len() == 2 {
        return in_range(&items[0], value, &items[1]);
    }
    Ok(items.iter().any(|i| py_eq(i, value)))
}

/// `lo <= v <= hi` for numbers or strings; other mixes cannot be ordered.
fn in_range(lo: &Value, v: &Value, hi: &Value) -> Result<bool, String> {
    if let (Some(l), Some(x), Some(h)) = (num(lo), num(v), num(hi)) {
        return Ok(l <= x && x <= h);
    }
    if let (Value::String(l), Value::String(x), Value::String(h)) = (lo, v, hi) {
        return Ok(l <= x && x <= h);
    }
    Err(format!("cannot compare {v} with the range [{lo}, {hi}]"))
}

fn check_regex(pattern: &str, value: &Value) -> Result<bool, String> {
    let Value::String(s) = value else {
        return Err(format!(
            "a regex tolerance needs a string to match, got {value}"
        ));
    };
    let re = Regex::new(pattern).map_err(|e| format!("invalid pattern {pattern}: {e}"))?;
    re.is_match(s)
        .map_err(|e| format!("pattern {pattern} failed: {e}"))
}

fn check_range(lo: f64, hi: f64, value: &Value) -> Result<bool, String> {
    let v = match value {
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(v) => v,
            Err(_) => return Ok(false),
        },
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        other => return Err(format!("a range tolerance needs a number, got {other}")),
    };
    Ok(lo <= v && v <= hi)
}

fn check_jsonpath(
    path: &str,
    value: &Value,
    expect: Option<&Value>,
    count: Option<usize>,
) -> Result<bool, String> {
    let compiled = compile_path(path)?;
    // Text outputs (process stdout, non-JSON bodies) are read as JSON when
    // they are JSON, as upstream does.
    let parsed;
    let doc = match value {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => value,
        },
        _ => value,
    };
    let found: Vec<&Value> = compiled.query(doc).all();
    Ok(match (expect, count) {
        (Some(Value::Array(list)), _) => {
            found.len() == list.len() && found.iter().zip(list).all(|(a, b)| py_eq(a, b))
        }
        (Some(one), _) => found.len() == 1 && py_eq(found[0], one),
        (None, Some(n)) => found.len() == n,
        (None, None) => !found.is_empty(),
    })
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Python's `==` on JSON values: `True == 1`, `1 == 1.0`, deep for
/// containers.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Null, Value::Null) => true,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Python truthiness, used for probe tolerances.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(tol: Value, value: Value) -> Result<bool, String> {
        Tolerance::parse(&tol)?.check(&value)
    }

    #[test]
    fn bool_uses_python_equality() {
        assert!(check(json!(true), json!(1)).unwrap());
        assert!(check(json!(false), json!(0)).unwrap());
        assert!(!check(json!(true), json!("true")).unwrap());
        assert!(check(json!(true), json!(true)).unwrap());
    }

    #[test]
    fn integer_unwraps_status_of_http_and_process_results() {
        assert!(check(json!(200), json!({"status": 200, "body": ""})).unwrap());
        assert!(!check(json!(200), json!({"status": "200"})).unwrap());
        assert!(check(json!(1), json!(true)).unwrap());
        assert!(check(json!(0), json!({"status": 0, "stdout": "x"})).unwrap());
        assert!(!check(json!(3), json!(2)).unwrap());
    }

    #[test]
    fn string_compares_without_unwrapping() {
        assert!(check(json!("OK"), json!("OK")).unwrap());
        assert!(!check(json!("OK"), json!({"status": "OK"})).unwrap());
    }

    #[test]
    fn list_is_membership_for_status_else_range_of_two_else_membership() {
        assert!(check(json!([200, 201]), json!({"status": 200})).unwrap());
        assert!(!check(json!([200, 204]), json!({"status": 202})).unwrap());
        assert!(check(json!([4, 9]), json!(9)).unwrap());
        assert!(check(json!([4, 9]), json!(5)).unwrap());
        assert!(!check(json!([4, 9, 78]), json!(5)).unwrap());
        assert!(check(json!([4, 9, 78]), json!(78)).unwrap());
        assert!(check(json!(["a", "z"]), json!("m")).unwrap());
        assert!(!check(json!([]), json!(1)).unwrap());
        assert!(check(json!([1, 5]), json!("x")).is_err());
    }

    #[test]
    fn regex_searches_unanchored_on_the_target() {
        let tol = json!({"type": "regex", "pattern": "[0-9]{2}", "target": "stdout"});
        assert!(check(tol.clone(), json!({"status": 0, "stdout": "abc 42 def"})).unwrap());
        assert!(!check(tol, json!({"status": 0, "stdout": "abc 4 def"})).unwrap());
        // Python-only features (look-around) work too.
        assert!(check(json!({"type": "regex", "pattern": "(?<=v)1"}), json!("v1")).unwrap());
        assert!(check(json!({"type": "regex", "pattern": "x"}), json!({"a": 1})).is_err());
    }

    #[test]
    fn range_accepts_numeric_strings_and_bools() {
        let tol = json!({"type": "range", "range": [4, 8]});
        assert!(check(tol.clone(), json!(4)).unwrap());
        assert!(check(tol.clone(), json!("5")).unwrap());
        assert!(!check(tol.clone(), json!("five")).unwrap());
        assert!(!check(tol.clone(), json!(8.5)).unwrap());
        assert!(check(json!({"type": "range", "range": [0, 1]}), json!(true)).unwrap());
        assert!(check(tol.clone(), json!(null)).is_err());
        let t = json!({"type": "range", "range": [0.5, 1.5], "target": "body"});
        assert!(check(t, json!({"status": 200, "body": 1})).unwrap());
    }

    #[test]
    fn jsonpath_match_count_and_expect() {
        let body = json!({"status": 200, "body": {"items": [{"ready": true}, {"ready": false}]}});
        let any = json!({"type": "jsonpath", "path": "$.items[*].ready", "target": "body"});
        assert!(check(any, body.clone()).unwrap());
        let count = json!({"type": "jsonpath", "path": "$.items[*]", "target": "body", "count": 2});
        assert!(check(count, body.clone()).unwrap());
        let expect = json!({"type": "jsonpath", "path": "$.items[0].ready", "target": "body", "expect": true});
        assert!(check(expect, body.clone()).unwrap());
        let list = json!({"type": "jsonpath", "path": "$.items[*].ready", "target": "body", "expect": [true, false]});
        assert!(check(list, body.clone()).unwrap());
        let none = json!({"type": "jsonpath", "path": "$.nothing", "target": "body", "expect": []});
        assert!(check(none, body).unwrap());
        // JSON text is parsed first.
        let text = json!({"type": "jsonpath", "path": "$.a", "expect": 1});
        assert!(check(text, json!("{\"a\": 1}")).unwrap());
    }

    #[test]
    fn jsonpath2_filter_spelling_is_accepted() {
        let tol = json!({"type": "jsonpath", "path": "$.items[?(@.name = \"b\" and @.n > 1)].n", "expect": 2});
        assert!(
            check(
                tol,
                json!({"items": [{"name": "a", "n": 5}, {"name": "b", "n": 2}]})
            )
            .unwrap()
        );
        assert_eq!(
            translate_jsonpath2("$.a[?(@.x != 'a=b' or not @.y)]"),
            "$.a[?(@.x != 'a=b' || ! @.y)]"
        );
        // Brackets inside a filter do not end it.
        assert_eq!(
            translate_jsonpath2("$.i[?(@.a[0] = 1 and @.b)]"),
            "$.i[?(@.a[0] == 1 && @.b)]"
        );
        // Outside filters nothing changes (a key may be called `and`).
        assert_eq!(translate_jsonpath2("$.and.or"), "$.and.or");
    }

    #[test]
    fn shape_errors_have_upstream_messages() {
        assert!(
            Tolerance::parse(&json!(1.5))
                .unwrap_err()
                .starts_with("hypothesis probe tolerance must either")
        );
        assert_eq!(
            Tolerance::parse(&json!({"type": "nope"})).unwrap_err(),
            "hypothesis probe tolerance type 'nope' is unsupported"
        );
        assert!(
            Tolerance::parse(&json!({"type": "regex"}))
                .unwrap_err()
                .contains("`pattern`")
        );
        assert!(
            Tolerance::parse(&json!({"type": "regex", "pattern": "("}))
                .unwrap_err()
                .contains("seems invalid")
        );
        assert_eq!(
            Tolerance::parse(&json!({"type": "range", "range": [1]})).unwrap_err(),
            "hypothesis range sequence must be made of two values"
        );
        assert!(
            Tolerance::parse(&json!({"type": "range", "range": ["a", 2]}))
                .unwrap_err()
                .contains("lower")
        );
        assert!(
            Tolerance::parse(&json!({"type": "jsonpath", "path": ""}))
                .unwrap_err()
                .contains("cannot be empty")
        );
        assert!(
            Tolerance::parse(&json!({"type": "jsonpath", "path": "$[["}))
                .unwrap_err()
                .contains("is invalid")
        );
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(&json!({})));
        assert!(truthy(&json!({"status": 500})));
        assert!(!truthy(&json!(0)));
        assert!(!truthy(&json!("")));
    }
}
