//! Columns of custom resources, as the apiextensions apiserver prints them:
//! NAME, then the served version's `additionalPrinterColumns` (or, when it
//! lists none, AGE from `.metadata.creationTimestamp`). Each column's
//! `jsonPath` is evaluated with the simple JSONPath subset CRDs use (fields,
//! `[n]`, `[*]`, `[?(@.a=="b")]`); the first match becomes the cell, typed
//! by the column's `type` as `cellForJSONValue` does, and a missing value is
//! a null cell (kubectl prints it blank).

use serde_json::{Value, json};

use super::columns::AGE;
use crate::store::Ptr;

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.path OP "literal")]`, `OP` being `==` (true) or `!=` (false).
    Filter(Vec<Step>, bool, Value),
}

/// One printer column of a CRD version.
#[derive(Debug, Clone)]
struct CustomColumn {
    name: String,
    kind: String,
    format: String,
    priority: i64,
    description: String,
    /// `None` when the path does not parse: the cells are then null.
    path: Option<Vec<Step>>,
}

/// The printer of a custom resource version.
#[derive(Debug, Clone)]
pub struct Custom {
    columns: Vec<CustomColumn>,
}

impl Custom {
    /// The columns of `version` in a CRD object (the defaults without one).
    pub fn from_crd(crd: Option<&Value>, version: &str) -> Self {
        let listed: Vec<Value> = crd
            .and_then(|c| c.ptr("/spec/versions"))
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v["name"] == version))
            .and_then(|v| v.get("additionalPrinterColumns"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let listed = if listed.is_empty() {
            vec![json!({ "name": "Age", "type": "date", "description": AGE,
                "jsonPath": ".metadata.creationTimestamp" })]
        } else {
            listed
        };
        let columns = listed
            .iter()
            .map(|c| {
                let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let path = text("jsonPath");
                let description = match text("description") {
                    d if d.is_empty() => {
                        format!("Custom resource definition column (in JSONPath format): {path}")
                    }
                    d => d,
                };
                CustomColumn {
                    name: text("name"),
                    kind: text("type"),
                    format: text("format"),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    description,
                    path: parse(&path),
                }
            })
            .collect();
        Custom { columns }
    }

    /// The `columnDefinitions`.
    pub fn columns(&self) -> Vec<Value> {
        let name = json!({
            "name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace.",
        });
        std::iter::once(name)
            .chain(self.columns.iter().map(|c| {
                json!({ "name": c.name, "type": c.kind, "format": c.format,
                    "priority": c.priority, "description": c.description })
            }))
            .collect()
    }

    /// One row's cells; `ago` renders a timestamp as an age.
    pub fn cells(&self, o: &Value, ago: &dyn Fn(&str) -> String) -> Vec<Value> {
        let name = json!(crate::store::str_at(o, "/metadata/name"));
        std::iter::once(name)
            .chain(self.columns.iter().map(|c| {
                let found = c.path.as_deref().and_then(|p| first(o, p));
                found.map_or(Value::Null, |v| cell(&c.kind, v, ago))
            }))
            .collect()
    }
}

/// `cellForJSONValue`, with `string` columns printed as JSONPath prints a
/// value (text as is, lists and maps as compact JSON).
fn cell(kind: &str, v: &Value, ago: &dyn Fn(&str) -> String) -> Value {
    match (kind, v) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => json!(s),
        ("string", Value::Array(_) | Value::Object(_)) => json!(v.to_string()),
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => json!(ago(s)),
        _ => Value::Null,
    }
}

/// The first value the path selects.
fn first<'a>(o: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let Some((step, rest)) = path.split_first() else {
        return Some(o);
    };
    match step {
        Step::Field(f) => first(o.get(f)?, rest),
        Step::Index(i) => first(o.get(*i)?, rest),
        Step::All => children(o).find_map(|c| first(c, rest)),
        Step::Filter(sub, eq, lit) => children(o)
            .filter(|c| (first(c, sub) == Some(lit)) == *eq)
            .find_map(|c| first(c, rest)),
    }
}

fn children(o: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match o {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(m) => Box::new(m.values()),
        _ => Box::new(std::iter::empty()),
    }
}

/// Parses `.a.b[0][*].c[?(@.type=="Ready")].d` (optionally in braces);
/// `None` for anything outside that subset.
fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let (field, tail) = field(r);
            match field.as_str() {
                "" => return None,
                "*" => steps.push(Step::All),
                _ => steps.push(Step::Field(field)),
            }
            rest = tail;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = bracket_end(r)?;
            steps.push(bracket(&r[..end])?);
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// A field name up to the next unescaped `.` or `[` (`\.` is a dot in the
/// name, as in `metadata.annotations.example\.com/x`).
fn field(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|(_, n)| *n == '.') => {
                out.push('.');
                chars.next();
            }
            '.' | '[' => return (out, &s[i..]),
            c => out.push(c),
        }
    }
    (out, "")
}

/// Where the bracket opened just before `s` closes (quotes respected).
fn bracket_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(i),
            (None, _) => {}
        }
    }
    None
}

fn bracket(inner: &str) -> Option<Step> {
    let inner = inner.trim();
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse::<usize>() {
        return Some(Step::Index(i));
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name.to_string()));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, eq, rhs) = if let Some((l, r)) = expr.split_once("==") {
        (l, true, r)
    } else {
        let (l, r) = expr.split_once("!=")?;
        (l, false, r)
    };
    let sub = parse(lhs.trim().strip_prefix('@')?)?;
    let rhs = rhs.trim();
    let lit = match unquote(rhs) {
        Some(s) => json!(s),
        None => serde_json::from_str(rhs).ok()?,
    };
    Some(Step::Filter(sub, eq, lit))
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_jsonpath_subset_crds_use() {
        assert_eq!(
            parse(".spec.hosts"),
            Some(vec![
                Step::Field("spec".into()),
                Step::Field("hosts".into())
            ])
        );
        assert_eq!(
            parse("{.a[0][*]}"),
            Some(vec![Step::Field("a".into()), Step::Index(0), Step::All])
        );
        assert_eq!(
            parse(r".metadata.labels.app\.io/x"),
            Some(vec![
                Step::Field("metadata".into()),
                Step::Field("labels".into()),
                Step::Field("app.io/x".into())
            ])
        );
        assert_eq!(parse(".a[?(@.b==\"x]\")].c").map(|s| s.len()), Some(3));
        assert_eq!(parse("spec"), None);
        assert_eq!(parse(".a[nope"), None);
    }

    #[test]
    fn evaluates_fields_indexes_and_filters() {
        let o = json!({ "status": { "conditions": [
            { "type": "Synced", "status": "False" },
            { "type": "Ready", "status": "True" } ] },
            "spec": { "hosts": ["a", "b"], "n": 3 } });
        let at = |p: &str| first(&o, &parse(p).unwrap()).cloned();
        assert_eq!(
            at(r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            at(".status.conditions[?(@.type!='Ready')].type"),
            Some(json!("Synced"))
        );
        assert_eq!(at(".spec.hosts[1]"), Some(json!("b")));
        assert_eq!(at(".spec.hosts[*]"), Some(json!("a")));
        assert_eq!(at(".spec.missing"), None);
    }

    #[test]
    fn cells_are_typed_like_the_apiextensions_apiserver() {
        let ago = |at: &str| format!("age({at})");
        assert_eq!(
            cell("string", &json!(["a", "b"]), &ago),
            json!("[\"a\",\"b\"]")
        );
        assert_eq!(cell("string", &json!(7), &ago), json!("7"));
        assert_eq!(cell("integer", &json!(2.0), &ago), json!(2));
        assert_eq!(cell("integer", &json!("2"), &ago), Value::Null);
        assert_eq!(cell("boolean", &json!(true), &ago), json!(true));
        assert_eq!(cell("date", &json!("T0"), &ago), json!("age(T0)"));
    }

    #[test]
    fn columns_come_from_the_served_version() {
        let crd = json!({ "spec": { "versions": [
            { "name": "v1", "additionalPrinterColumns": [
                { "name": "Hosts", "type": "string", "jsonPath": ".spec.hosts" },
                { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" } ] },
            { "name": "v1beta1" } ] } });
        let v1 = Custom::from_crd(Some(&crd), "v1");
        let names: Vec<Value> = v1.columns().iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, [json!("Name"), json!("Hosts"), json!("Age")]);
        let o = json!({ "metadata": { "name": "web", "creationTimestamp": "T0" },
            "spec": { "hosts": ["web"] } });
        let cells = v1.cells(&o, &|at: &str| format!("age({at})"));
        assert_eq!(cells, [json!("web"), json!("[\"web\"]"), json!("age(T0)")]);
        // No columns listed: NAME and AGE, as the defaults add.
        let beta = Custom::from_crd(Some(&crd), "v1beta1");
        assert_eq!(beta.columns().len(), 2);
        assert_eq!(Custom::from_crd(None, "v1").columns()[1]["type"], "date");
        // No gateways: a null cell, which kubectl prints blank.
        let cols = json!({ "spec": { "versions": [{ "name": "v1", "additionalPrinterColumns": [
            { "name": "Gateways", "type": "string", "jsonPath": ".spec.gateways" }] }] } });
        let cells = Custom::from_crd(Some(&cols), "v1").cells(&o, &|_: &str| String::new());
        assert_eq!(cells[1], Value::Null);
    }
}
