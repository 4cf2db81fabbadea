//! `squall discover`: the registry as a Chaos Toolkit `discovery.json`, so
//! tools built for upstream discovery files (and `chaos init`-style
//! wizards) can read squall's activities.

use serde_json::{Map, Value, json};
use squall_core::catalog::ActivitySpec;

use crate::registry::Registry;

/// The top-level package names activities live under (`chaosk8s`,
/// `squall`, …).
pub fn packages(registry: &Registry) -> Vec<&'static str> {
    let mut names: Vec<&str> = registry
        .activities()
        .map(|r| r.spec.module.split('.').next().unwrap_or(r.spec.module))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Activities under the given packages (all when `packages` is empty),
/// sorted by module then function as upstream sorts them. Unknown package
/// names are returned as the error.
pub fn select(
    registry: &Registry,
    packages: &[String],
) -> Result<Vec<&'static ActivitySpec>, Vec<String>> {
    let known = self::packages(registry);
    let unknown: Vec<String> = packages
        .iter()
        .filter(|p| {
            !known
                .iter()
                .any(|k| k == p || p.starts_with(&format!("{k}.")))
        })
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let mut specs: Vec<&'static ActivitySpec> = registry
        .activities()
        .map(|r| &r.spec)
        .filter(|s| {
            packages.is_empty()
                || packages
                    .iter()
                    .any(|p| s.module == p || s.module.starts_with(&format!("{p}.")))
        })
        .collect();
    specs.sort_by_key(|s| (s.module, s.func));
    Ok(specs)
}

/// The discovery document for `specs`.
pub fn document(specs: &[&ActivitySpec], id: &str, date: &str, target: &str) -> Value {
    let activities: Vec<Value> = specs.iter().map(|s| activity(s)).collect();
    json!({
        "chaoslib_version": "1.45.0",
        "id": id,
        "target": target,
        "date": date,
        "platform": {
            "system": "Linux",
            "node": "",
            "release": "",
            "version": "",
            "machine": std::env::consts::ARCH,
            "proc": "",
            "python": null,
        },
        "extension": {"name": "squall", "version": env!("CARGO_PKG_VERSION")},
        "activities": activities,
        "system": null,
    })
}

fn activity(s: &ActivitySpec) -> Value {
    let args: Vec<Value> = s
        .args
        .iter()
        .map(|a| {
            // Upstream key order: name, default (only when there is one), type.
            let mut m = Map::new();
            m.insert("name".into(), json!(a.name));
            if let Some(d) = a.default_value() {
                m.insert("default".into(), d);
            }
            m.insert("type".into(), json!(a.ty.as_str()));
            m.insert("doc".into(), json!(a.doc));
            Value::Object(m)
        })
        .collect();
    json!({
        "type": s.kind.as_str(),
        "name": s.func,
        "mod": s.module,
        "doc": s.doc,
        "arguments": args,
        "return_type": s.returns,
        "mutating": s.mutating,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::for_tests;

    #[test]
    fn upstream_layout() {
        let specs = select(for_tests(), &["squall.testing".into()]).unwrap();
        let doc = document(&specs, "id", "date", "squall");
        let first = &doc["activities"][0];
        assert_eq!(first["mod"], "squall.testing.actions");
        assert_eq!(
            first["name"], "restore_file",
            "sorted by module, then function"
        );
        let write = &doc["activities"][1];
        let keys: Vec<_> = write["arguments"][1]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["name", "default", "type", "doc"]);
        assert!(
            write["arguments"][0].get("default").is_none(),
            "required arguments have no default"
        );
    }

    #[test]
    fn unknown_packages_are_named() {
        assert_eq!(
            select(for_tests(), &["chaosnope".into()]).unwrap_err(),
            ["chaosnope"]
        );
        assert!(!select(for_tests(), &[]).unwrap().is_empty());
    }
}
