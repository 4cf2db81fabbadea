//! API semantics on top of the raw store: create, update, delete.
//!
//! These functions implement what the apiserver's generic registry does around
//! etcd: name generation, defaulting, server-managed metadata, optimistic
//! concurrency, generation bumps, status/spec separation, finalizers, graceful
//! pod deletion and orphaning. The REST layer and the controllers both go
//! through them, so a controller's writes look exactly like a client's.

use crate::store::Ptr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::defaults;
use crate::error::{ApiError, ApiResult, Subject};
use crate::resources::{self, ResourceDef};
use crate::store::{StoreInner, meta_mut, same, str_at};

/// The finalizer that holds an owner during foreground cascading deletion.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Which part of an object an update writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main endpoint: everything but `status` (for kinds with a status subresource).
    Main,
    /// The `status` subresource: only `status`.
    Status,
}

/// Options of a delete call (query string or `DeleteOptions` body).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOpts {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `propagationPolicy` (`Orphan`, `Background`, `Foreground`).
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOpts {
    /// Reads a `DeleteOptions` JSON body over the query-string values.
    pub fn merge_body(&mut self, body: &Value) {
        if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            self.grace = Some(g);
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation = Some(p.to_string());
        }
        if let Some(u) = body.ptr("/preconditions/uid").and_then(Value::as_str) {
            self.uid = Some(u.to_string());
        }
        if let Some(r) = body
            .ptr("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            self.resource_version = Some(r.to_string());
        }
        if body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            self.dry_run = true;
        }
        if body.get("orphanDependents") == Some(&json!(true)) {
            self.propagation = Some("Orphan".into());
        }
    }
}

fn subject<'a>(def: &'a ResourceDef, name: &'a str) -> Subject<'a> {
    Subject {
        group: &def.group,
        resource: &def.plural,
        name,
    }
}

/// Whether a name is a lowercase RFC 1123 subdomain.
fn valid_name(name: &str) -> bool {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 253
        && name.starts_with(edge)
        && name.ends_with(edge)
        && name.chars().all(|c| edge(c) || c == '-' || c == '.')
}

impl StoreInner {
    /// Creates an object (POST). `ns` is the namespace from the URL ("" for cluster scope).
    pub fn create(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        self.prepare_identity(def, ns, &mut obj)?;
        let name = str_at(&obj, "/metadata/name").to_string();
        let obj_ns = str_at(&obj, "/metadata/namespace").to_string();
        if self.get(&def.group, &def.plural, &obj_ns, &name).is_some() {
            return Err(ApiError::already_exists(subject(def, &name)));
        }
        let meta = meta_mut(&mut obj);
        for k in [
            "resourceVersion",
            "uid",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "creationTimestamp",
        ] {
            meta.remove(k);
        }
        if def.has_status {
            reset_status(def, &mut obj);
        }
        defaults::apply(self, def, &mut obj);
        defaults::validate(def, &obj)?;
        if dry_run {
            return Ok(obj);
        }
        let stored = self.insert(&def.group, &def.plural, obj);
        self.after_write(def, &stored);
        Ok(Value::clone(&stored))
    }

    /// Fills apiVersion/kind, namespace and name (generateName) and checks them.
    fn prepare_identity(&mut self, def: &ResourceDef, ns: &str, obj: &mut Value) -> ApiResult<()> {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !kind.is_empty() && kind != def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the provided object ({kind}) does not match the resource ({})",
                def.plural
            )));
        }
        let version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|a| a.rsplit('/').next())
            .filter(|v| def.serves(v))
            .map(ToString::to_string);
        let api_version = def.api_version(
            version
                .as_deref()
                .unwrap_or_else(|| def.versions.first().map_or("v1", String::as_str)),
        );
        let m = obj
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("object expected"))?;
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(def.kind));
        let body_ns = str_at(obj, "/metadata/namespace").to_string();
        if def.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta_mut(obj).insert("namespace".into(), json!(ns));
            if def.plural != "namespaces" && self.get("", "namespaces", "", ns).is_none() {
                return Err(ApiError::not_found(Subject {
                    group: "",
                    resource: "namespaces",
                    name: ns,
                }));
            }
        } else {
            meta_mut(obj).remove("namespace");
        }
        self.assign_name(def, obj)
    }

    /// Applies generateName and validates the name.
    fn assign_name(&mut self, def: &ResourceDef, obj: &mut Value) -> ApiResult<()> {
        let mut name = str_at(obj, "/metadata/name").to_string();
        if name.is_empty() {
            let generate = str_at(obj, "/metadata/generateName").to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    "",
                    &def.group,
                    "metadata.name",
                    "FieldValueRequired",
                    "name or generateName is required",
                ));
            }
            name = format!("{generate}{}", self.suffix(5));
            meta_mut(obj).insert("name".into(), json!(name));
        }
        if !valid_name(&name) {
            let why = format!(
                "\"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            );
            return Err(ApiError::invalid(
                &def.kind,
                &name,
                &def.group,
                "metadata.name",
                "FieldValueInvalid",
                &why,
            ));
        }
        Ok(())
    }

    /// Replaces an object (PUT), with optimistic concurrency on `metadata.resourceVersion`.
    pub fn update(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        mut obj: Value,
        part: Part,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let current = self
            .get(&def.group, &def.plural, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(subject(def, name)))?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let body_name = str_at(&obj, "/metadata/name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = str_at(&obj, "/metadata/resourceVersion");
        if !body_rv.is_empty() && body_rv != str_at(&current, "/metadata/resourceVersion") {
            return Err(ApiError::stale(subject(def, name)));
        }
        let mut next = match part {
            Part::Status => {
                let mut n = current.clone();
                n["status"] = obj.get("status").cloned().unwrap_or(json!({}));
                n
            }
            Part::Main => {
                if def.has_status {
                    let status = current.get("status").cloned().unwrap_or(json!({}));
                    obj["status"] = status;
                }
                keep_server_fields(&current, &mut obj, def, ns, name);
                obj
            }
        };
        defaults::apply(self, def, &mut next);
        defaults::validate(def, &next)?;
        if spec_changed(&current, &next) {
            let g = current
                .ptr("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut next).insert("generation".into(), json!(g + 1));
        }
        if dry_run {
            return Ok(next);
        }
        self.write(def, current, next)
    }

    /// Stores `next` unless it equals `current`, and removes it if its last finalizer went away.
    fn write(&mut self, def: &ResourceDef, current: Value, mut next: Value) -> ApiResult<Value> {
        meta_mut(&mut next).insert(
            "resourceVersion".into(),
            current["metadata"]["resourceVersion"].clone(),
        );
        if same(&next, &current) {
            return Ok(current);
        }
        let deleting = next.ptr("/metadata/deletionTimestamp").is_some();
        let no_finalizers = next
            .ptr("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let (ns, name) = crate::store::obj_key(&next);
        if deleting && no_finalizers && !(def.group.is_empty() && def.plural == "pods") {
            self.replace(&def.group, &def.plural, next);
            let gone = self
                .remove(&def.group, &def.plural, &ns, &name)
                .ok_or_else(|| ApiError::internal("object vanished"))?;
            self.after_delete(def, &gone);
            return Ok(Value::clone(&gone));
        }
        let stored = self.replace(&def.group, &def.plural, next);
        self.after_write(def, &stored);
        Ok(Value::clone(&stored))
    }

    /// Controller-side write: replaces an object if it changed, ignoring conflicts
    /// (controllers hold the lock for a whole pass, so there are none).
    pub fn put(&mut self, group: &str, plural: &str, obj: Value) -> Value {
        let (ns, name) = crate::store::obj_key(&obj);
        match self.get(group, plural, &ns, &name) {
            Some(cur) if same(cur, &obj) => obj,
            Some(_) => Value::clone(&self.replace(group, plural, obj)),
            None => obj,
        }
    }

    /// [`StoreInner::put`] answering the stored version (shared, not
    /// copied), for controllers that only read what they wrote.
    pub fn put_arc(&mut self, group: &str, plural: &str, obj: Value) -> Arc<Value> {
        let (ns, name) = crate::store::obj_key(&obj);
        match self.get_arc(group, plural, &ns, &name) {
            Some(cur) if same(cur, &obj) => cur.clone(),
            Some(_) => self.replace(group, plural, obj),
            None => Arc::new(obj),
        }
    }

    fn after_write(&mut self, def: &ResourceDef, obj: &Value) {
        if def.group == "apiextensions.k8s.io"
            && def.plural == "customresourcedefinitions"
            && let Some(row) = resources::from_crd(obj)
        {
            self.register(row);
        }
    }

    fn after_delete(&mut self, def: &ResourceDef, obj: &Value) {
        if def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions" {
            let g = str_at(obj, "/spec/group").to_string();
            let p = str_at(obj, "/spec/names/plural").to_string();
            self.unregister(&g, &p);
        }
        if def.group.is_empty() && def.plural == "namespaces" {
            self.purge_namespace(str_at(obj, "/metadata/name"));
        }
    }

    fn purge_namespace(&mut self, ns: &str) {
        let defs: Vec<ResourceDef> = self
            .resources()
            .iter()
            .filter(|r| r.namespaced)
            .cloned()
            .collect();
        for d in defs {
            let names: Vec<String> = self
                .list(&d.group, &d.plural, Some(ns))
                .iter()
                .map(|o| str_at(o, "/metadata/name").to_string())
                .collect();
            for n in names {
                self.remove(&d.group, &d.plural, ns, &n);
            }
        }
    }

    /// Deletes an object (DELETE): graceful for running pods, deferred while
    /// finalizers remain, immediate otherwise. Returns the object's last state.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let current = self
            .get(&def.group, &def.plural, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(subject(def, name)))?;
        let uid = str_at(&current, "/metadata/uid").to_string();
        if let Some(u) = opts.uid.as_deref().filter(|u| *u != uid) {
            return Err(ApiError::conflict(
                subject(def, name),
                &format!(
                    "Precondition failed: UID in precondition: {u}, UID in object meta: {uid}"
                ),
            ));
        }
        let rv = str_at(&current, "/metadata/resourceVersion");
        if let Some(r) = opts.resource_version.as_deref().filter(|r| *r != rv) {
            return Err(ApiError::conflict(
                subject(def, name),
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {r}, ResourceVersion in object meta: {rv}"
                ),
            ));
        }
        if opts.dry_run {
            return Ok(current);
        }
        if opts.propagation.as_deref() == Some("Orphan") {
            self.orphan_dependents(&uid);
        }
        if opts.propagation.as_deref() == Some("Foreground") && self.has_dependents(&uid) {
            return Ok(self.start_foreground(def, current));
        }
        if def.group.is_empty() && def.plural == "pods" {
            return Ok(self.delete_pod(current, opts.grace));
        }
        let has_finalizers = current
            .ptr("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            let mut next = current.clone();
            if next.ptr("/metadata/deletionTimestamp").is_none() {
                let ts = self.clock.timestamp();
                meta_mut(&mut next).insert("deletionTimestamp".into(), json!(ts));
                meta_mut(&mut next).insert("deletionGracePeriodSeconds".into(), json!(0));
                return Ok(Value::clone(&self.replace(&def.group, &def.plural, next)));
            }
            return Ok(current);
        }
        let gone = self
            .remove(&def.group, &def.plural, ns, name)
            .ok_or_else(|| ApiError::internal("object vanished"))?;
        self.after_delete(def, &gone);
        Ok(Value::clone(&gone))
    }

    /// Graceful pod deletion: unscheduled and finished pods (and grace 0) go at
    /// once; others get `deletionTimestamp` and are removed by the kubelet model.
    pub fn delete_pod(&mut self, pod: Value, grace: Option<i64>) -> Value {
        let (ns, name) = crate::store::obj_key(&pod);
        let spec_grace = pod
            .ptr("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = grace.unwrap_or(spec_grace).max(0);
        let phase = str_at(&pod, "/status/phase");
        let immediate = grace == 0
            || str_at(&pod, "/spec/nodeName").is_empty()
            || phase == "Succeeded"
            || phase == "Failed";
        if immediate {
            return self
                .remove("", "pods", &ns, &name)
                .map_or(pod, |gone| Value::clone(&gone));
        }
        let now = self.clock.now();
        let grace_d = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        let deadline = now + grace_d.min(self.timing.shutdown);
        let key = (ns, name);
        let earlier = self.pod_deadlines.get(&key).is_some_and(|d| *d <= deadline);
        if !earlier {
            self.pod_deadlines.insert(key, deadline);
        }
        if pod.ptr("/metadata/deletionTimestamp").is_some() {
            return pod;
        }
        let mut next = pod;
        let ts = self.clock.timestamp_at(now + grace_d);
        meta_mut(&mut next).insert("deletionTimestamp".into(), json!(ts));
        meta_mut(&mut next).insert("deletionGracePeriodSeconds".into(), json!(grace));
        Value::clone(&self.replace("", "pods", next))
    }

    /// Whether any object names `uid` in its ownerReferences.
    pub fn has_dependents(&self, uid: &str) -> bool {
        self.index().dependents(uid).next().is_some()
    }

    /// Foreground deletion: mark the owner deleting with the `foregroundDeletion`
    /// finalizer; the garbage collector removes dependents, then the finalizer.
    fn start_foreground(&mut self, def: &ResourceDef, current: Value) -> Value {
        let mut next = current.clone();
        let ts = self.clock.timestamp();
        let meta = meta_mut(&mut next);
        meta.entry("deletionTimestamp").or_insert(json!(ts));
        meta.entry("deletionGracePeriodSeconds").or_insert(json!(0));
        let fins = meta.entry("finalizers").or_insert(json!([]));
        if !fins.is_array() {
            *fins = json!([]);
        }
        if let Some(f) = fins
            .as_array_mut()
            .filter(|f| !f.contains(&json!(FOREGROUND)))
        {
            f.push(json!(FOREGROUND));
        }
        if same(&next, &current) {
            current
        } else {
            Value::clone(&self.replace(&def.group, &def.plural, next))
        }
    }

    /// Drops a finalizer; removes the object if it was the last one of a deleting object.
    pub fn remove_finalizer(&mut self, def: &ResourceDef, obj: &Value, finalizer: &str) {
        let mut next = obj.clone();
        if let Some(f) = next
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            f.retain(|x| x != finalizer);
        }
        if let Err(e) = self.write(def, obj.clone(), next) {
            tracing::debug!(error = %e, "could not remove finalizer");
        }
    }

    /// Removes owner references to `uid` from every object (propagationPolicy=Orphan).
    fn orphan_dependents(&mut self, uid: &str) {
        let owned: Vec<(crate::store::ObjRef, Value)> = self
            .index()
            .dependents(uid)
            .filter_map(|r| Some((r.clone(), Value::clone(self.resolve(r)?))))
            .collect();
        for ((group, plural, _, _), mut o) in owned {
            if let Some(refs) = o
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
            }
            self.replace(&group, &plural, o);
        }
    }
}

/// The uids an object's ownerReferences point at.
pub fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.ptr("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// The controller owner reference's uid, if any.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj.ptr("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == json!(true))?["uid"]
        .as_str()
}

fn reset_status(def: &ResourceDef, obj: &mut Value) {
    if def.group == "apiextensions.k8s.io" || def.group == "networking.istio.io" {
        return;
    }
    let keep = def.group.is_empty() && (def.plural == "nodes" || def.plural == "pods");
    if !keep {
        obj["status"] = json!({});
    }
}

/// Copies server-managed metadata from the stored object into an update.
fn keep_server_fields(current: &Value, obj: &mut Value, def: &ResourceDef, ns: &str, name: &str) {
    let m = obj.as_object_mut();
    if let Some(m) = m {
        m.insert("apiVersion".into(), current["apiVersion"].clone());
        m.insert("kind".into(), json!(def.kind));
    }
    let meta = meta_mut(obj);
    meta.insert("name".into(), json!(name));
    if def.namespaced {
        meta.insert("namespace".into(), json!(ns));
    }
    for k in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match current.ptr(&format!("/metadata/{k}")) {
            Some(v) => meta.insert(k.into(), v.clone()),
            None => meta.remove(k),
        };
    }
}

/// Whether anything outside `metadata` and `status` changed.
fn spec_changed(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::store::{Store, Timing};

    fn store() -> Store {
        let s = Store::new(Clock::new(1.0), 1, Timing::default());
        crate::cluster::bootstrap(&mut s.lock(), 1, false);
        s
    }

    fn def(s: &StoreInner, group: &str, plural: &str) -> ResourceDef {
        s.resource(group, plural).cloned().expect("known resource")
    }

    fn deployment() -> Value {
        json!({ "metadata": { "name": "d" }, "spec": { "replicas": 1, "selector": { "matchLabels": { "a": "b" } },
            "template": { "metadata": { "labels": { "a": "b" } }, "spec": { "containers": [{ "name": "c", "image": "i" }] } } } })
    }

    #[tokio::test]
    async fn spec_changes_bump_generation_and_status_is_separate() {
        let s = store();
        let mut g = s.lock();
        let d = def(&g, "apps", "deployments");
        let created = g
            .create(&d, "default", deployment(), false)
            .expect("create");
        assert_eq!(created["metadata"]["generation"], 1);
        assert_eq!(
            created["spec"]["strategy"]["type"], "RollingUpdate",
            "defaulted"
        );

        let mut next = created.clone();
        next["spec"]["replicas"] = json!(3);
        next["status"] = json!({ "replicas": 99 });
        let updated = g
            .update(&d, "default", "d", next, Part::Main, false)
            .expect("update");
        assert_eq!(updated["metadata"]["generation"], 2);
        assert_eq!(updated["status"], json!({}), "main endpoint ignores status");

        let status = json!({ "status": { "replicas": 3 }, "spec": { "replicas": 7 } });
        let updated = g
            .update(&d, "default", "d", status, Part::Status, false)
            .expect("status");
        assert_eq!(
            (
                updated["status"]["replicas"].as_i64(),
                updated["spec"]["replicas"].as_i64()
            ),
            (Some(3), Some(3))
        );
        assert_eq!(
            updated["metadata"]["generation"], 2,
            "status writes do not bump generation"
        );

        let rv = updated["metadata"]["resourceVersion"].clone();
        let same = g
            .update(&d, "default", "d", updated.clone(), Part::Main, false)
            .expect("no-op");
        assert_eq!(
            same["metadata"]["resourceVersion"], rv,
            "no-op updates keep the resourceVersion"
        );
    }

    #[tokio::test]
    async fn validation_and_orphaning() {
        let s = store();
        let mut g = s.lock();
        let d = def(&g, "apps", "deployments");
        let mut bad = deployment();
        bad["spec"]["template"]["metadata"]["labels"] = json!({ "a": "other" });
        let e = g
            .create(&d, "default", bad, false)
            .expect_err("selector mismatch");
        assert_eq!((e.code, e.reason), (422, "Invalid"));

        let owner = g
            .create(&d, "default", deployment(), false)
            .expect("create");
        let cm = def(&g, "", "configmaps");
        let uid = owner["metadata"]["uid"].clone();
        let dep = json!({ "metadata": { "name": "dep", "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": uid }] } });
        g.create(&cm, "default", dep, false).expect("dependent");
        let opts = DeleteOpts {
            propagation: Some("Orphan".into()),
            ..DeleteOpts::default()
        };
        g.delete(&d, "default", "d", &opts).expect("delete");
        let orphan = g
            .get("", "configmaps", "default", "dep")
            .expect("dependent kept");
        assert_eq!(orphan["metadata"]["ownerReferences"], json!([]));
    }
}
