//! Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! an approximation of strategic merge patch.
//!
//! Strategic merge differs from merge patch mainly in lists: lists of objects
//! that carry a merge key (`name`, `containerPort`, `type`, `mountPath`, ...)
//! are merged element by element instead of replaced. That is what `kubectl
//! cordon`, `kubectl set image` and kube-rs `Patch::Strategic` rely on.
//! Directives (`$patch: delete|replace`, `$retainKeys`, `$setElementOrder`) are
//! honoured where cheap and otherwise dropped.

use crate::store::Ptr;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Keys that identify list elements in strategic merge, tried in order.
const MERGE_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "type",
    "mountPath",
    "devicePath",
    "ip",
    "port",
    "topologyKey",
];

/// Strategic merge patch (approximation described in the module docs).
pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                merge_list(slot, items);
            }
            Value::Object(_) => strategic(t.entry(k.clone()).or_insert(Value::Null), v),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

fn merge_key_of(items: &[Value]) -> Option<&'static str> {
    let first = items.iter().find(|i| i.is_object())?;
    MERGE_KEYS
        .iter()
        .copied()
        .find(|k| first.get(*k).is_some_and(|v| !v.is_null()))
}

fn merge_list(target: &mut Value, items: &[Value]) {
    let Some(key) = merge_key_of(items) else {
        *target = Value::Array(items.iter().map(strip_directives).collect());
        return;
    };
    let mut current: Vec<Value> = match target {
        Value::Array(a) => std::mem::take(a),
        _ => Vec::new(),
    };
    for item in items {
        let id = item.get(key);
        let pos = current.iter().position(|c| c.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                current.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut current[i], item),
            (None, false) => current.push(strip_directives(item)),
        }
    }
    *target = Value::Array(current);
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// RFC 6902 JSON patch. Errors are 422s worded like the apiserver's.
pub fn json_patch(target: &mut Value, ops: &Value) -> ApiResult<()> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be an array of operations"))?;
    for op in ops {
        apply_op(target, op)?;
    }
    Ok(())
}

fn op_error(msg: impl Into<String>) -> ApiError {
    let mut e = ApiError::bad_request(msg);
    e.code = 422;
    e.reason = "Invalid";
    e
}

fn apply_op(target: &mut Value, op: &Value) -> ApiResult<()> {
    let kind = op["op"]
        .as_str()
        .ok_or_else(|| op_error("json patch operation has no \"op\""))?;
    let path = op["path"]
        .as_str()
        .ok_or_else(|| op_error("json patch operation has no \"path\""))?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| op_error(format!("missing value for {kind} at {path}")))
    };
    let from = || {
        op["from"]
            .as_str()
            .ok_or_else(|| op_error(format!("missing from for {kind} at {path}")))
    };
    match kind {
        "add" => add(target, path, value()?),
        "remove" => remove(target, path).map(|_| ()),
        "replace" => {
            remove(target, path)?;
            add(target, path, value()?)
        }
        "move" => {
            let v = remove(target, from()?)?;
            add(target, path, v)
        }
        "copy" => {
            let v = target.ptr(from()?).cloned().ok_or_else(|| {
                op_error(format!(
                    "copy: path {} not found",
                    from().unwrap_or_default()
                ))
            })?;
            add(target, path, v)
        }
        "test" => {
            if target.ptr(path) == Some(&value()?) {
                Ok(())
            } else {
                Err(op_error(format!(
                    "the server rejected our request due to an error in our request: testing value {path} failed"
                )))
            }
        }
        other => Err(op_error(format!("Unexpected kind: {other}"))),
    }
}

fn split_pointer(path: &str) -> ApiResult<(String, String)> {
    if path.is_empty() {
        return Err(op_error("json patch path must not be empty"));
    }
    let idx = path
        .rfind('/')
        .ok_or_else(|| op_error(format!("invalid json pointer {path:?}")))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..idx].to_string(), last))
}

fn add(target: &mut Value, path: &str, v: Value) -> ApiResult<()> {
    let (parent, last) = split_pointer(path)?;
    let missing = || {
        op_error(format!(
            "add operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match target.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, v);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|_| missing())?
            };
            if i > a.len() {
                return Err(missing());
            }
            a.insert(i, v);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove(target: &mut Value, path: &str) -> ApiResult<Value> {
    let (parent, last) = split_pointer(path)?;
    let missing = || {
        op_error(format!(
            "remove operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match target.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last.parse::<usize>().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let mut t = json!({ "a": 1, "b": { "c": 2, "d": 3 }, "l": [1, 2] });
        merge(&mut t, &json!({ "a": null, "b": { "c": 5 }, "l": [9] }));
        assert_eq!(t, json!({ "b": { "c": 5, "d": 3 }, "l": [9] }));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({ "spec": { "containers": [
            { "name": "app", "image": "a:1", "ports": [{ "containerPort": 80 }] },
            { "name": "side", "image": "s:1" } ] } });
        strategic(
            &mut t,
            &json!({ "spec": { "containers": [{ "name": "app", "image": "a:2" }] } }),
        );
        assert_eq!(t["spec"]["containers"][0]["image"], "a:2");
        assert_eq!(t["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
        assert_eq!(t["spec"]["containers"][1]["name"], "side");
        strategic(
            &mut t,
            &json!({ "spec": { "containers": [{ "name": "side", "$patch": "delete" }] } }),
        );
        assert_eq!(t["spec"]["containers"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn strategic_replaces_scalar_lists() {
        let mut t = json!({ "spec": { "args": ["a"], "unschedulable": false } });
        strategic(
            &mut t,
            &json!({ "spec": { "args": ["b"], "unschedulable": true } }),
        );
        assert_eq!(
            t,
            json!({ "spec": { "args": ["b"], "unschedulable": true } })
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({ "spec": { "http": [{ "route": [] }] } });
        json_patch(&mut t, &json!([
            { "op": "test", "path": "/spec/http/0/route", "value": [] },
            { "op": "add", "path": "/spec/http/0/fault", "value": { "abort": { "httpStatus": 500 } } },
            { "op": "add", "path": "/spec/http/-", "value": { "route": [1] } },
            { "op": "replace", "path": "/spec/http/1/route", "value": [2] },
            { "op": "copy", "from": "/spec/http/1", "path": "/spec/copy" },
            { "op": "move", "from": "/spec/copy", "path": "/spec/moved" },
            { "op": "remove", "path": "/spec/http/0/route" }
        ])).expect("patch applies");
        assert_eq!(
            t["spec"]["http"][0],
            json!({ "fault": { "abort": { "httpStatus": 500 } } })
        );
        assert_eq!(t["spec"]["moved"], json!({ "route": [2] }));
        let err = json_patch(
            &mut t,
            &json!([{ "op": "test", "path": "/spec/http/0/fault", "value": 1 }]),
        )
        .expect_err("test fails");
        assert_eq!(err.code, 422);
        assert!(json_patch(&mut t, &json!([{ "op": "remove", "path": "/nope/x" }])).is_err());
    }
}
