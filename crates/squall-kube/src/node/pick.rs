//! Which nodes `drain_nodes` and `delete_nodes` act on: chaosk8s's
//! `_select_nodes` (name, label selector, nodes hosting certain pods), then
//! an optional random pick of `count` nodes. Two upstream bugs are fixed
//! here (see docs/nodes.md): `pod_namespace` alone (what the book uses)
//! narrows the nodes instead of being ignored, and the random pick draws
//! without replacement, so a node is never drained or deleted twice. The
//! pick is seeded with the same generator as `terminate_pods`, and the seed
//! is part of the output so the journal can replay it.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::{Map, Value, json};
use squall_activity::ActivityError;

use crate::api_error;
use crate::args::opt_str;
use crate::select::Selection;

/// The node selection arguments shared by drain and delete.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeQuery {
    pub name: Option<String>,
    pub label_selector: Option<String>,
    pub pod_label_selector: Option<String>,
    pub pod_namespace: Option<String>,
}

impl NodeQuery {
    pub fn read(args: &Map<String, Value>) -> Result<Self, ActivityError> {
        Ok(Self {
            name: opt_str(args, "name")?,
            label_selector: opt_str(args, "label_selector")?,
            pod_label_selector: opt_str(args, "pod_label_selector")?,
            pod_namespace: opt_str(args, "pod_namespace")?,
        })
    }

    /// The matching nodes in the API's order (by name), without repeats;
    /// chaosk8s's message when there are none.
    pub async fn nodes(&self, client: &kube::Client) -> Result<Vec<String>, ActivityError> {
        let api: Api<Node> = Api::all(client.clone());
        let mut params = ListParams::default();
        if let Some(name) = &self.name {
            params = params.fields(&format!("metadata.name={name}"));
        }
        if let Some(sel) = &self.label_selector {
            params = params.labels(sel);
        }
        let listed = api.list(&params).await.map_err(api_error)?.items;
        let mut names: Vec<String> = listed.into_iter().filter_map(|n| n.metadata.name).collect();
        if let Some(hosts) = self.pod_hosts(client).await? {
            names.retain(|n| hosts.contains(n));
        }
        if names.is_empty() {
            return Err(ActivityError::failed(
                "failed to find a node that matches selector",
            ));
        }
        Ok(names)
    }

    /// The nodes running (not terminating) pods that match the pod
    /// arguments, or `None` when neither is given.
    async fn pod_hosts(
        &self,
        client: &kube::Client,
    ) -> Result<Option<HashSet<String>>, ActivityError> {
        if self.pod_label_selector.is_none() && self.pod_namespace.is_none() {
            return Ok(None);
        }
        let api: Api<Pod> = match &self.pod_namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let params = match &self.pod_label_selector {
            Some(sel) => ListParams::default().labels(sel),
            None => ListParams::default(),
        };
        let pods = api.list(&params).await.map_err(api_error)?.items;
        Ok(Some(
            pods.into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.spec.and_then(|s| s.node_name))
                .collect(),
        ))
    }
}

/// The nodes acted on, and the seed when they were picked at random.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePick {
    pub names: Vec<String>,
    pub seed: Option<u64>,
}

impl NodePick {
    /// Every selected node, in order.
    pub fn every(names: Vec<String>) -> Self {
        Self { names, seed: None }
    }

    /// `count` nodes (at most all of them) at random, without repeats;
    /// `seed` replays an earlier pick. The generator is `terminate_pods`'s,
    /// so seeds mean the same thing in both.
    pub fn random(names: &[String], count: u64, seed: Option<i64>) -> Self {
        let selection = Selection {
            label_selector: None,
            name_pattern: None,
            all: false,
            rand: true,
            percentage: false,
            qty: count,
            ns: String::new(),
            oldest: false,
        };
        let as_pods: Vec<Pod> = names
            .iter()
            .map(|n| {
                let mut p = Pod::default();
                p.metadata.name = Some(n.clone());
                p
            })
            .collect();
        let pick = selection.pick(&as_pods, seed);
        Self {
            names: pick.names,
            seed: pick.seed,
        }
    }

    /// The activity's output: the list of names, as chaosk8s returns it, or
    /// `{"nodes": [...], "seed": N}` for a random pick (like terminate_pods).
    pub fn output(&self) -> Value {
        match self.seed {
            None => json!(self.names),
            Some(seed) => json!({"nodes": self.names, "seed": seed}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn a_random_pick_has_no_repeats_is_capped_and_replays_from_its_seed() {
        let all = names(6);
        let first = NodePick::random(&all, 3, None);
        let seed = first.seed.expect("a random pick has a seed");
        let mut unique = first.names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3, "{first:?}");
        let again = NodePick::random(&all, 3, Some(i64::try_from(seed).unwrap()));
        assert_eq!(again, first);
        assert_eq!(first.output(), json!({"nodes": first.names, "seed": seed}));
        // More than there are: every node once, unlike random.choices.
        let capped = NodePick::random(&all, 10, Some(7));
        let mut sorted = capped.names.clone();
        sorted.sort();
        assert_eq!(sorted, all);
    }

    #[test]
    fn every_node_is_a_plain_list() {
        let pick = NodePick::every(names(2));
        assert_eq!(pick.output(), json!(["node-1", "node-2"]));
    }
}
