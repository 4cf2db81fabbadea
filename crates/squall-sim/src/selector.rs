//! Label and field selectors.
//!
//! Parses the query-string forms (`app=web,tier!=db,env in (a,b),!legacy`,
//! `spec.nodeName=node-1`) and the structured `LabelSelector` objects found in
//! Deployments, Services and PodDisruptionBudgets, and matches objects against
//! them. Parsing errors become 400 responses, as on a real apiserver.

use crate::store::Ptr;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    reqs: Vec<Req>,
    /// A structured selector that can never match (unknown operator).
    never: bool,
}

impl LabelSelector {
    /// Parses the query-string form.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_term(term)?);
        }
        Ok(LabelSelector { reqs, never: false })
    }

    /// Builds a selector from a `LabelSelector` object (`matchLabels`, `matchExpressions`).
    /// A null or missing selector yields `None`.
    pub fn from_object(v: &Value) -> Option<Self> {
        let obj = v.as_object()?;
        let mut sel = LabelSelector::default();
        if let Some(ml) = obj.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in ml {
                sel.reqs.push(Req::Eq(
                    k.clone(),
                    val.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        for e in obj
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(ToString::to_string))
                .collect();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => sel.reqs.push(Req::In(key, values)),
                "NotIn" => sel.reqs.push(Req::NotIn(key, values)),
                "Exists" => sel.reqs.push(Req::Exists(key)),
                "DoesNotExist" => sel.reqs.push(Req::NotExists(key)),
                _ => sel.never = true,
            }
        }
        Some(sel)
    }

    /// Builds an equality selector from a plain map (a Service's `spec.selector`).
    pub fn from_map(m: &Map<String, Value>) -> Self {
        LabelSelector {
            reqs: m
                .iter()
                .map(|(k, v)| Req::Eq(k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            never: false,
        }
    }

    /// Whether the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty() && !self.never
    }

    /// Matches a labels map (`metadata.labels`, possibly absent).
    pub fn matches_labels(&self, labels: Option<&Value>) -> bool {
        if self.never {
            return false;
        }
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.matches_labels(obj.ptr("/metadata/labels"))
    }

    /// The `key=value` requirements: every match has these labels, so an
    /// index of objects by label can narrow the candidates.
    pub fn equalities(&self) -> impl Iterator<Item = (&str, &str)> {
        self.reqs.iter().filter_map(|r| match r {
            Req::Eq(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }
}

/// Splits on commas that are not inside `( … )`.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_term(term: &str) -> ApiResult<Req> {
    let bad = || {
        ApiError::bad_request(format!(
            "unable to parse requirement: found '{term}', expected: label selector term"
        ))
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Req::NotExists(valid_key(k.trim(), term)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Req::NotEq(
            valid_key(k.trim(), term)?,
            valid_value(v.trim())?,
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Req::Eq(valid_key(k.trim(), term)?, valid_value(v.trim())?));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some(idx) = term.find(op) {
            let key = valid_key(term[..idx].trim(), term)?;
            let rest = term[idx + op.len()..].trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values = inner
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(valid_value)
                .collect::<ApiResult<Vec<_>>>()?;
            return Ok(if notin {
                Req::NotIn(key, values)
            } else {
                Req::In(key, values)
            });
        }
    }
    if term.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        return Err(bad());
    }
    Ok(Req::Exists(valid_key(term, term)?))
}

/// A label value as the apiserver accepts it: empty, or at most 63
/// alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
fn valid_value(v: &str) -> ApiResult<String> {
    let inner_ok = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends_ok = v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric());
    if inner_ok && ends_ok && v.len() <= 63 {
        return Ok(v.to_string());
    }
    Err(ApiError::bad_request(format!(
        "unable to parse requirement: values[0][]: Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    )))
}

fn valid_key(k: &str, term: &str) -> ApiResult<String> {
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "unable to parse requirement: invalid label key \"{k}\" in '{term}'"
        )))
    }
}

/// A parsed field selector (`a=b`, `a==b`, `a!=b`, comma-separated).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses the query-string form.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut terms = Vec::new();
        for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = t.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{t}'"
                )));
            };
            let k = k.trim();
            // Fields are paths into the object (`metadata.name`,
            // `spec.nodeName`); a bare word is no field of any kind.
            if !k.contains('.') || k.starts_with('.') || k.ends_with('.') {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            terms.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    /// Matches an object. Fields are dotted paths into the object; a missing
    /// field compares as the empty string, as the apiserver's field sets do
    /// (`spec.nodeName=` selects unscheduled pods).
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(k, eq, v)| {
            let actual = field_value(obj, k);
            (actual == *v) == *eq
        })
    }
}

impl FieldSelector {
    /// The value an `=` term requires of `field`, if there is one (every match
    /// has it, so an index by that field can narrow the candidates).
    pub fn required(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(k, eq, _)| *eq && k == field)
            .map(|(_, _, v)| v.as_str())
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({ "metadata": { "name": "p", "namespace": "ns", "labels": labels }, "spec": { "nodeName": "node-1" }, "status": { "phase": "Running" } })
    }

    #[test]
    fn equality_and_set_based_terms() {
        let p = pod(json!({ "app": "web", "env": "prod" }));
        let ok = |s: &str| LabelSelector::parse(s).expect("parse").matches(&p);
        assert!(ok("app=web"));
        assert!(ok("app==web,env!=dev"));
        assert!(ok("env in (prod, staging)"));
        assert!(!ok("env notin (prod)"));
        assert!(ok("env notin (dev),app"));
        assert!(ok("!legacy"));
        assert!(!ok("!app"));
        assert!(!ok("app=db"));
        assert!(ok(""));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            LabelSelector::parse("app in prod")
                .expect_err("must fail")
                .code,
            400
        );
        assert_eq!(
            LabelSelector::parse("a b").expect_err("must fail").code,
            400
        );
        assert_eq!(
            FieldSelector::parse("nonsense")
                .expect_err("must fail")
                .code,
            400
        );
    }

    #[test]
    fn structured_selectors() {
        let p = pod(json!({ "app": "web", "tier": "fe" }));
        let sel = json!({ "matchLabels": { "app": "web" }, "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["fe"] }] });
        assert!(
            LabelSelector::from_object(&sel)
                .expect("selector")
                .matches(&p)
        );
        let bad = json!({ "matchExpressions": [{ "key": "tier", "operator": "Weird" }] });
        assert!(
            !LabelSelector::from_object(&bad)
                .expect("selector")
                .matches(&p)
        );
        assert!(LabelSelector::from_object(&Value::Null).is_none());
    }

    #[test]
    fn field_selectors() {
        let p = pod(json!({}));
        let ok = |s: &str| FieldSelector::parse(s).expect("parse").matches(&p);
        assert!(ok("spec.nodeName=node-1,metadata.namespace=ns"));
        assert!(ok("status.phase!=Pending"));
        assert!(!ok("metadata.name=q"));
        assert!(ok("spec.missing="));
        let f = FieldSelector::parse("spec.nodeName=node-1,status.phase!=Failed").expect("parse");
        assert_eq!(f.required("spec.nodeName"), Some("node-1"));
        assert_eq!(f.required("status.phase"), None);
        let l = LabelSelector::parse("app=web,env!=dev,tier in (a)").expect("parse");
        assert_eq!(l.equalities().collect::<Vec<_>>(), [("app", "web")]);
    }
}
