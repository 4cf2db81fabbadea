//! The default cluster a simulator starts with: the standard namespaces, N
//! Ready nodes (`node-1`…) with addresses, pod CIDRs, zone labels and the
//! usual well-known labels, the `kubernetes` service, the Istio CRD objects,
//! and optionally the kube-system workloads (kube-proxy, CoreDNS).

use serde_json::{Value, json};

use crate::resources::{self, ResourceDef};
use crate::store::StoreInner;

/// Zones the default nodes are spread over, round robin.
const ZONES: &[&str] = &["zone-a", "zone-b", "zone-c"];

fn create(store: &mut StoreInner, group: &str, plural: &str, ns: &str, obj: Value) {
    if let Some(def) = store.resource(group, plural).cloned()
        && let Err(e) = store.create(&def, ns, obj, false)
    {
        tracing::warn!(error = %e, "bootstrap object rejected");
    }
}

/// Creates the default cluster objects.
pub fn bootstrap(store: &mut StoreInner, nodes: usize, system_pods: bool) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj =
            json!({ "metadata": { "name": ns, "labels": { "kubernetes.io/metadata.name": ns } } });
        create(store, "", "namespaces", "", obj);
    }
    for i in 1..=nodes {
        create(store, "", "nodes", "", node(i));
    }
    let api = json!({
        "metadata": { "name": "kubernetes", "labels": { "component": "apiserver", "provider": "kubernetes" } },
        "spec": { "clusterIP": "10.96.0.1", "ports": [{ "name": "https", "port": 443, "targetPort": 6443 }] }
    });
    create(store, "", "services", "default", api);
    let istio: Vec<ResourceDef> = store
        .resources()
        .iter()
        .filter(|r| r.group == "networking.istio.io")
        .cloned()
        .collect();
    for def in istio {
        create(
            store,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            resources::crd_for(&def),
        );
    }
    if system_pods {
        kube_system(store);
    }
}

fn node(i: usize) -> Value {
    let name = format!("node-{i}");
    let zone = ZONES[(i - 1) % ZONES.len()];
    json!({
        "metadata": { "name": name, "labels": {
            "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "sim",
            "node.kubernetes.io/instance-type": "sim.standard"
        } },
        "spec": { "podCIDR": format!("10.244.{i}.0/24"), "podCIDRs": [format!("10.244.{i}.0/24")] },
        "status": { "addresses": [
            { "type": "InternalIP", "address": format!("172.18.0.{}", i + 1) },
            { "type": "Hostname", "address": name }
        ] }
    })
}

/// kube-proxy (a host-network DaemonSet) and CoreDNS (a Deployment behind `kube-dns`).
fn kube_system(store: &mut StoreInner) {
    let proxy = json!({
        "metadata": { "name": "kube-proxy", "labels": { "k8s-app": "kube-proxy" } },
        "spec": { "selector": { "matchLabels": { "k8s-app": "kube-proxy" } }, "template": {
            "metadata": { "labels": { "k8s-app": "kube-proxy" } },
            "spec": { "hostNetwork": true, "priorityClassName": "system-node-critical",
                      "tolerations": [{ "operator": "Exists" }],
                      "containers": [{ "name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.33.0" }] } } }
    });
    create(store, "apps", "daemonsets", "kube-system", proxy);
    let dns = json!({
        "metadata": { "name": "coredns", "labels": { "k8s-app": "kube-dns" } },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "k8s-app": "kube-dns" } }, "template": {
            "metadata": { "labels": { "k8s-app": "kube-dns" } },
            "spec": { "priorityClassName": "system-cluster-critical",
                      "containers": [{ "name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.0",
                                       "ports": [{ "name": "dns", "containerPort": 53, "protocol": "UDP" },
                                                 { "name": "dns-tcp", "containerPort": 53 }, { "name": "metrics", "containerPort": 9153 }] }] } } }
    });
    create(store, "apps", "deployments", "kube-system", dns);
    let svc = json!({
        "metadata": { "name": "kube-dns", "labels": { "k8s-app": "kube-dns" } },
        "spec": { "clusterIP": "10.96.0.10", "selector": { "k8s-app": "kube-dns" }, "ports": [
            { "name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53 },
            { "name": "dns-tcp", "port": 53, "targetPort": 53 },
            { "name": "metrics", "port": 9153, "targetPort": 9153 }
        ] }
    });
    create(store, "", "services", "kube-system", svc);
}
