//! API errors and their wire form.
//!
//! Every failure the simulator reports to a client is an [`ApiError`], and every
//! `ApiError` turns into the same `Status` object a real kube-apiserver returns
//! (kind, reason, message, details, code), so clients that branch on `reason` or
//! on `details.causes` (kubectl drain, kube-rs) behave as they would on a cluster.

use serde_json::{Value, json};

/// A failure answered to an API client as a `Status` object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code (404, 409, 422, 429, ...).
    pub code: u16,
    /// The machine-readable `reason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message, worded like the apiserver's.
    pub message: String,
    /// The `details` object (name, group, kind, causes, retryAfterSeconds).
    pub details: Option<Value>,
}

/// Identifies an object in error messages: `pods "web-1"` or `deployments.apps "web"`.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// API group ("" for the core group).
    pub group: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Subject<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({ "name": self.name, "kind": self.resource });
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 for a named object.
    pub fn not_found(s: Subject<'_>) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", s.qualified(), s.name),
        );
        e.details = Some(s.details());
        e
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        e.details = Some(json!({}));
        e
    }

    /// 409 when creating an object whose name is taken.
    pub fn already_exists(s: Subject<'_>) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", s.qualified(), s.name),
        );
        e.details = Some(s.details());
        e
    }

    /// 409 on a stale `resourceVersion` or a failed precondition.
    pub fn conflict(s: Subject<'_>, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                s.qualified(),
                s.name
            ),
        );
        e.details = Some(s.details());
        e
    }

    /// The standard optimistic-concurrency conflict.
    pub fn stale(s: Subject<'_>) -> Self {
        Self::conflict(
            s,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one field cause, worded like apimachinery's field errors.
    pub fn invalid(
        kind: &str,
        name: &str,
        group: &str,
        field: &str,
        reason: &str,
        detail: &str,
    ) -> Self {
        let cause_msg = format!("{}: {detail}", cause_prefix(reason));
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {field}: {cause_msg}"),
        );
        let mut d = json!({
            "name": name, "kind": kind,
            "causes": [{ "reason": reason, "message": cause_msg, "field": field }]
        });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        e.details = Some(d);
        e
    }

    /// 400 for malformed requests (bad JSON, bad selector, name mismatch).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 413 for a request body over the apiserver's limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 410 when a watch asks for history the server no longer holds.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 for a patch content type the server does not understand.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// 429 with explicit details (used by eviction).
    pub fn too_many_requests(message: impl Into<String>, details: Value) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.details = Some(details);
        e
    }

    /// 500 for invariant failures inside the simulator.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The `Status` object sent on the wire.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s["code"] = json!(self.code);
        s
    }

    /// `Retry-After` header value, if the details carry one.
    pub fn retry_after(&self) -> Option<u64> {
        self.details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64)
    }
}

fn cause_prefix(reason: &str) -> &'static str {
    match reason {
        "FieldValueRequired" => "Required value",
        "FieldValueDuplicate" => "Duplicate value",
        "FieldValueNotSupported" => "Unsupported value",
        "FieldValueForbidden" => "Forbidden",
        _ => "Invalid value",
    }
}

/// The `Status` a successful delete-like or eviction call returns.
pub fn success_status(code: u16) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code })
}

/// Result alias for API operations.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_group_qualified_resource() {
        let e = ApiError::not_found(Subject {
            group: "apps",
            resource: "deployments",
            name: "web",
        });
        let s = e.to_status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn conflict_uses_apiserver_wording() {
        let e = ApiError::stale(Subject {
            group: "",
            resource: "pods",
            name: "p",
        });
        assert_eq!(e.code, 409);
        assert!(e.message.starts_with(
            "Operation cannot be fulfilled on pods \"p\": the object has been modified"
        ));
    }

    #[test]
    fn invalid_carries_field_cause() {
        let e = ApiError::invalid(
            "Pod",
            "",
            "",
            "metadata.name",
            "FieldValueRequired",
            "name or generateName is required",
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(
            s["message"],
            "Pod \"\" is invalid: metadata.name: Required value: name or generateName is required"
        );
    }
}
