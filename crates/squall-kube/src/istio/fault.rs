//! The pure part of the Istio fault actions: which `http` routes of a
//! VirtualService a `routes` argument selects (chaostoolkit-istio's
//! `set_fault` matching), and the `http` list with a fault added or removed.
//! No IO here, so every rule is tested on plain JSON.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Which fault an action adds or removes: the key under `fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Abort,
    Delay,
}

impl FaultKind {
    /// The key Istio uses under `fault`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Abort => "abort",
            Self::Delay => "delay",
        }
    }
}

/// The destinations a `routes` argument names: `(host, subset)` pairs
/// compared exactly, as upstream does (no FQDN normalisation, `port`
/// ignored, no subset matches only destinations without one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destinations(BTreeSet<(String, Option<String>)>);

impl Destinations {
    /// Reads `[{"destination": {"host": ..., "subset": ...}}, ...]`; entries
    /// without a `destination` are skipped, as upstream skips them.
    pub fn from_routes(routes: &[Value]) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for entry in routes {
            let Some(dest) = entry.get("destination") else {
                continue;
            };
            set.insert(
                destination_key(dest).ok_or_else(|| {
                    format!("routes: a destination needs a string host, not {dest}")
                })?,
            );
        }
        Ok(Self(set))
    }

    /// The destinations as a phrase for messages (`go-demo-8 (subset primary)`).
    pub fn describe(&self) -> String {
        let shown: Vec<String> = self
            .0
            .iter()
            .map(|(host, subset)| match subset {
                Some(s) => format!("{host} (subset {s})"),
                None => format!("{host} (no subset)"),
            })
            .collect();
        shown.join(", ")
    }

    fn contains(&self, dest: &Value) -> bool {
        destination_key(dest).is_some_and(|k| self.0.contains(&k))
    }
}

fn destination_key(dest: &Value) -> Option<(String, Option<String>)> {
    let host = dest.get("host")?.as_str()?.to_owned();
    let subset = dest
        .get("subset")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((host, subset))
}

/// Indices of the `http` elements that have a `route` list with at least one
/// destination in `targets`. Elements without `route` (redirects, direct
/// responses) never match.
pub fn matching(http: &[Value], targets: &Destinations) -> Vec<usize> {
    http.iter()
        .enumerate()
        .filter(|(_, element)| {
            routes_of(element).any(|r| r.get("destination").is_some_and(|d| targets.contains(d)))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Indices of every `http` element that routes somewhere (has a `route`
/// list): what squall's random actions fault.
pub fn routing(http: &[Value]) -> Vec<usize> {
    http.iter()
        .enumerate()
        .filter(|(_, element)| element.get("route").is_some_and(Value::is_array))
        .map(|(i, _)| i)
        .collect()
}

fn routes_of(element: &Value) -> impl Iterator<Item = &Value> {
    element
        .get("route")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The `abort` fault upstream builds: `{"httpStatus": N}` plus
/// `{"percentage": {"value": P}}` when a percentage is given.
pub fn abort(http_status: i64, percentage: Option<&Value>) -> Value {
    with_percentage(serde_json::json!({"httpStatus": http_status}), percentage)
}

/// The `delay` fault upstream builds: `{"fixedDelay": "5s"}` plus the
/// optional percentage.
pub fn delay(fixed_delay: &str, percentage: Option<&Value>) -> Value {
    with_percentage(serde_json::json!({"fixedDelay": fixed_delay}), percentage)
}

fn with_percentage(mut fault: Value, percentage: Option<&Value>) -> Value {
    if let (Some(p), Some(obj)) = (percentage, fault.as_object_mut()) {
        obj.insert("percentage".into(), serde_json::json!({"value": p}));
    }
    fault
}

/// The `http` list with `fault = {<kind>: spec}` on the chosen elements.
/// As upstream, this replaces the element's whole `fault`, so an abort
/// added after a delay drops the delay (see [`replaced`]).
pub fn add(http: &[Value], indices: &[usize], kind: FaultKind, spec: &Value) -> Vec<Value> {
    let mut out = http.to_vec();
    for &i in indices {
        if let Some(element) = out.get_mut(i).and_then(Value::as_object_mut) {
            let mut fault = Map::new();
            fault.insert(kind.key().into(), spec.clone());
            element.insert("fault".into(), Value::Object(fault));
        }
    }
    out
}

/// The chosen elements whose `fault` holds something other than `kind`,
/// which [`add`] drops: the caller warns, since two actions meant to stack
/// (the book's abort, then delay) leave only the second.
pub fn replaced(http: &[Value], indices: &[usize], kind: FaultKind) -> Vec<usize> {
    indices
        .iter()
        .copied()
        .filter(|&i| {
            http.get(i)
                .and_then(|e| e.get("fault"))
                .and_then(Value::as_object)
                .is_some_and(|f| f.keys().any(|k| k != kind.key()))
        })
        .collect()
}

/// The `http` list without `fault.<kind>` on the chosen elements (and
/// without `fault` where nothing else is left in it), or `None` when none of
/// them carries that fault, so nothing needs writing.
pub fn remove(http: &[Value], indices: &[usize], kind: FaultKind) -> Option<Vec<Value>> {
    let mut out = http.to_vec();
    let mut changed = false;
    for &i in indices {
        let Some(element) = out.get_mut(i).and_then(Value::as_object_mut) else {
            continue;
        };
        let Some(fault) = element.get_mut("fault").and_then(Value::as_object_mut) else {
            continue;
        };
        changed |= fault.remove(kind.key()).is_some();
        if fault.is_empty() {
            element.remove("fault");
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http() -> Vec<Value> {
        json!([
            {"match": [{"uri": {"prefix": "/a"}}],
             "route": [{"destination": {"host": "reviews", "subset": "v2"}},
                       {"destination": {"host": "ratings"}}]},
            {"route": [{"destination": {"host": "reviews", "subset": "v1", "port": {"number": 80}}}]},
            {"redirect": {"uri": "/elsewhere"}},
            {"route": [{"destination": {"host": "reviews.default.svc.cluster.local", "subset": "v2"}}]}
        ])
        .as_array()
        .unwrap()
        .clone()
    }

    fn dests(v: Value) -> Destinations {
        Destinations::from_routes(v.as_array().unwrap()).unwrap()
    }

    #[test]
    fn matching_is_exact_on_host_and_subset_and_ignores_port() {
        let v2 = dests(json!([{"destination": {"host": "reviews", "subset": "v2"}}]));
        assert_eq!(matching(&http(), &v2), [0], "no FQDN normalisation");
        let v1 = dests(json!([{"destination": {"host": "reviews", "subset": "v1"}}]));
        assert_eq!(matching(&http(), &v1), [1], "port is ignored");
        let bare = dests(json!([{"destination": {"host": "reviews"}}]));
        assert!(
            matching(&http(), &bare).is_empty(),
            "no subset matches only destinations without one"
        );
        let ratings = dests(json!([{"destination": {"host": "ratings"}}, {"weight": 3}]));
        assert_eq!(
            matching(&http(), &ratings),
            [0],
            "any destination of the element"
        );
        assert_eq!(routing(&http()), [0, 1, 3], "redirects do not route");
        assert_eq!(ratings.describe(), "ratings (no subset)");
        assert!(Destinations::from_routes(&[json!({"destination": {"host": 1}})]).is_err());
    }

    #[test]
    fn faults_are_built_like_upstream() {
        assert_eq!(abort(500, None), json!({"httpStatus": 500}));
        assert_eq!(
            delay("15s", Some(&json!(50))),
            json!({"fixedDelay": "15s", "percentage": {"value": 50}})
        );
    }

    #[test]
    fn adding_replaces_the_fault_like_upstream_and_removing_takes_only_its_own() {
        let a = abort(500, Some(&json!(50)));
        let d = delay("15s", None);
        let once = add(&http(), &[0], FaultKind::Abort, &a);
        assert_eq!(once[0]["fault"], json!({"abort": a}));
        assert_eq!(once[1], http()[1], "other elements untouched");
        assert!(replaced(&once, &[0], FaultKind::Abort).is_empty());
        assert_eq!(replaced(&once, &[0, 1], FaultKind::Delay), [0]);
        let then = add(&once, &[0], FaultKind::Delay, &d);
        assert_eq!(then[0]["fault"], json!({"delay": d}), "the abort is gone");
        let mut both = http();
        both[0]["fault"] = json!({"abort": a, "delay": d});
        let no_abort = remove(&both, &[0], FaultKind::Abort).unwrap();
        assert_eq!(no_abort[0]["fault"], json!({"delay": d}));
        let clean = remove(&no_abort, &[0], FaultKind::Delay).unwrap();
        assert_eq!(clean, http(), "an emptied fault key goes too");
        assert_eq!(
            remove(&clean, &[0], FaultKind::Delay),
            None,
            "nothing to remove"
        );
    }
}
