//! `${name}` substitution with the rules of Python's `string.Template`, which
//! is what Chaos Toolkit uses, so existing experiment files behave the same.
//!
//! - `${name}` and `$name` are replaced; `$$` becomes `$`; anything else after
//!   a `$` is left alone, and so are unknown names (shell `$VARS` survive).
//! - A string that is exactly `${name}` becomes the value itself, with its
//!   type (an integer stays an integer, a list stays a list).
//! - Interpolated values are formatted like Python's `str()` (`True`, `None`,
//!   `['a', 1]`), because that is what upstream puts into the string.

use serde_json::Value;

/// Where names are looked up: configuration first, then secrets.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<&Value>;
}

impl Lookup for serde_json::Map<String, Value> {
    fn get(&self, name: &str) -> Option<&Value> {
        serde_json::Map::get(self, name)
    }
}

/// A chain of mappings searched in order; the first hit wins.
pub struct Chain<'a>(pub Vec<&'a serde_json::Map<String, Value>>);

impl Lookup for Chain<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find_map(|m| m.get(name))
    }
}

/// Substitutes every string inside `value` (mapping values and list items,
/// never mapping keys).
pub fn substitute(value: &Value, lookup: &dyn Lookup) -> Value {
    match value {
        Value::String(s) => substitute_str(s, lookup),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, lookup)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Substitutes one string, keeping the type of a whole-value `${name}`.
pub fn substitute_str(s: &str, lookup: &dyn Lookup) -> Value {
    if let Some(v) = whole_placeholder(s).and_then(|name| lookup.get(name)) {
        return v.clone();
    }
    Value::String(interpolate(s, lookup))
}

/// The names a string refers to, for "unknown variable" checks.
pub fn referenced_names(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    scan(s, |tok| {
        if let Token::Name(n, _) = tok {
            names.push(n.to_owned());
        }
    });
    names
}

fn whole_placeholder(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    is_identifier(inner).then_some(inner)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

enum Token<'a> {
    /// Literal text, copied as is.
    Text(&'a str),
    /// A reference, with the raw text to keep when the name is unknown.
    Name(&'a str, &'a str),
}

fn interpolate(s: &str, lookup: &dyn Lookup) -> String {
    let mut out = String::with_capacity(s.len());
    scan(s, |tok| match tok {
        Token::Text(t) => out.push_str(t),
        Token::Name(name, raw) => match lookup.get(name) {
            Some(v) => out.push_str(&py_str(v)),
            None => out.push_str(raw),
        },
    });
    out
}

/// Splits a template into literal text and references.
fn scan<'a>(s: &'a str, mut emit: impl FnMut(Token<'a>)) {
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        emit(Token::Text(&rest[..pos]));
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            emit(Token::Text("$"));
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if is_identifier(&braced[..end]) => {
                    emit(Token::Name(&braced[..end], &rest[pos..pos + end + 3]));
                    rest = &braced[end + 1..];
                }
                _ => {
                    emit(Token::Text("$"));
                    rest = after;
                }
            }
        } else {
            let len = identifier_prefix(after);
            if len > 0 {
                emit(Token::Name(&after[..len], &rest[pos..pos + 1 + len]));
                rest = &after[len..];
            } else {
                emit(Token::Text("$"));
                rest = after;
            }
        }
    }
    emit(Token::Text(rest));
}

fn identifier_prefix(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// Python's `str()` of a JSON value.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a JSON value.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            let inner: Vec<_> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<_> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> serde_json::Map<String, Value> {
        json!({"host": "h:80", "n": 3, "flag": true, "list": ["a", 1], "a": 1, "none": null})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn whole_value_keeps_its_type() {
        let c = cfg();
        assert_eq!(substitute_str("${n}", &c), json!(3));
        assert_eq!(substitute_str("${list}", &c), json!(["a", 1]));
        assert_eq!(substitute_str("${flag}", &c), json!(true));
        assert_eq!(substitute_str("${none}", &c), Value::Null);
        // `$name` alone is always a string.
        assert_eq!(substitute_str("$n", &c), json!("3"));
    }

    #[test]
    fn interpolation_uses_python_str() {
        let c = cfg();
        assert_eq!(
            substitute_str("http://${host}/x", &c),
            json!("http://h:80/x")
        );
        assert_eq!(
            substitute_str("f=${flag} l=${list}", &c),
            json!("f=True l=['a', 1]")
        );
        assert_eq!(substitute_str("z=${none}", &c), json!("z=None"));
        assert_eq!(substitute_str("$a-b", &c), json!("1-b"));
    }

    #[test]
    fn template_edge_cases_match_string_template() {
        let c = cfg();
        for s in [
            "${my-key}",
            "price: $5",
            "${}",
            "${a",
            "$ {a}",
            "$UNKNOWN",
            "${unknown}",
        ] {
            assert_eq!(substitute_str(s, &c), json!(s), "{s}");
        }
        assert_eq!(substitute_str("$$a", &c), json!("$a"));
        assert_eq!(substitute_str("cost $$5 ${n}$", &c), json!("cost $5 3$"));
    }

    #[test]
    fn walks_lists_and_mapping_values_not_keys() {
        let c = cfg();
        let v = json!({"${n}": "${n}", "l": ["${flag}", 2, {"k": "$host"}]});
        assert_eq!(
            substitute(&v, &c),
            json!({"${n}": 3, "l": [true, 2, {"k": "h:80"}]})
        );
    }

    #[test]
    fn chain_first_hit_wins() {
        let a = json!({"x": 1}).as_object().unwrap().clone();
        let b = json!({"x": 2, "y": 3}).as_object().unwrap().clone();
        let chain = Chain(vec![&a, &b]);
        assert_eq!(substitute_str("${x}${y}", &chain), json!("13"));
    }

    #[test]
    fn names_are_reported() {
        assert_eq!(referenced_names("${a} $b $$c ${d-e}"), ["a", "b"]);
    }
}
