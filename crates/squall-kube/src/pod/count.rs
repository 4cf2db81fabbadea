//! `count_pods` without holding the namespace in memory: the pods are
//! listed in pages of [`PAGE`] and each item is decoded only as far as its
//! phase, so counting 10,000 pods neither builds 10,000 typed `Pod`s nor
//! keeps more than one page.

use kube::api::ListParams;
use kube::core::Request;
use serde::Deserialize;
use squall_activity::{ActivityCtx, ActivityError};

use crate::api_error;
use crate::connect::kube;

/// Pods per list request, as kubectl asks for.
const PAGE: u32 = 500;

/// One page of a pod list, read only for counting.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Default, Deserialize)]
struct Meta {
    #[serde(rename = "continue", default)]
    next: Option<String>,
}

/// A pod reduced to its phase; every other field is skipped unparsed.
#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    phase: Option<String>,
}

/// How many pods in `ns` match `selector` (and are in `phase`, if given).
pub(super) async fn count(
    ctx: &ActivityCtx,
    ns: &str,
    selector: Option<&str>,
    phase: Option<&str>,
) -> Result<usize, ActivityError> {
    let client = kube(ctx)?.client();
    let request = Request::new(format!("/api/v1/namespaces/{ns}/pods"));
    let mut params = ListParams::default().limit(PAGE);
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let mut n = 0;
    loop {
        let req = request.list(&params).map_err(|e| {
            ActivityError::Failed(format!("cannot build the pod list request: {e}"))
        })?;
        let page: Page = client.request(req).await.map_err(api_error)?;
        n += page.items.iter().filter(|p| matches(p, phase)).count();
        // The server ends the list with no (or an empty) continue token.
        match page.metadata.next.filter(|t| !t.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(n),
        }
    }
}

fn matches(pod: &Item, phase: Option<&str>) -> bool {
    let actual = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    phase.is_none_or(|want| actual == Some(want))
}
