//! Stale-rule detection: what the node's rules say ([`ServiceMap`]) against
//! what the API says (EndpointSlices). For each Service port the expected
//! endpoints are chosen the way kube-proxy chooses them — ready endpoints,
//! or serving-and-terminating ones when none is ready — and every
//! difference becomes a JSON-serialisable [`Finding`]: an endpoint in the
//! rules that is not ready or gone from the slices, a ready endpoint the
//! rules lack, and (IPVS) a ready endpoint stuck at weight 0. Rule entries
//! without a name (large-cluster mode) are matched by recomputing the
//! kube-proxy chain hash from the slice's Service port.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::endpointslice::EndpointSlice;
use crate::model::{Protocol, ServiceMap, ServicePort, ServicePortName, join_host_port};

/// Kind of discrepancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// In the rules, present in the slices but not ready (and not part of
    /// the serving-terminating fallback).
    NotReady,
    /// In the rules, absent from every slice of the Service.
    Gone,
    /// Ready in the slices, absent from the rules.
    Missing,
    /// IPVS real server at weight 0 although the endpoint is ready.
    ZeroWeight,
}

/// One discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// `ns/name:port`.
    pub service: String,
    /// Protocol of the Service port.
    pub protocol: Protocol,
    /// `ip:port` of the endpoint.
    pub endpoint: String,
}

/// The result of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StaleReport {
    /// Every discrepancy, sorted.
    pub findings: Vec<Finding>,
    /// Service ports compared (present in both rules and slices, or only in
    /// slices).
    pub services_checked: usize,
    /// Rule entries that could not be tied to any Service port in the
    /// slices (identity shown as name or chain).
    pub unmatched_rules: Vec<String>,
}

impl StaleReport {
    /// Whether the rules agree with the slices.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Expected state of one Service port, from its slices.
#[derive(Debug, Default)]
struct Expected {
    /// Endpoints kube-proxy should program.
    usable: BTreeSet<String>,
    /// Every endpoint address in any slice, usable or not.
    known: BTreeSet<String>,
}

type Key = (ServicePortName, Protocol);

/// Group slices by Service port and apply kube-proxy's endpoint choice.
fn expected_from_slices(slices: &[EndpointSlice]) -> BTreeMap<Key, Expected> {
    let mut ready: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    let mut fallback: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    let mut out: BTreeMap<Key, Expected> = BTreeMap::new();
    for slice in slices.iter().filter(|s| s.is_proxied()) {
        let svc = slice.service_name().unwrap_or_default();
        for port in &slice.ports {
            let (Some(number), Some(protocol)) = (port.port, port.protocol()) else {
                continue;
            };
            let name = ServicePortName {
                namespace: slice.metadata.namespace.clone(),
                name: svc.to_owned(),
                port_name: port.name.clone().unwrap_or_default(),
            };
            let key = (name, protocol);
            let exp = out.entry(key.clone()).or_default();
            for ep in &slice.endpoints {
                let Some(ip) = ep.addresses.first() else {
                    continue;
                };
                let addr = join_host_port(ip, number);
                exp.known.insert(addr.clone());
                if ep.is_ready() {
                    ready.entry(key.clone()).or_default().insert(addr);
                } else if ep.is_serving_terminating() {
                    fallback.entry(key.clone()).or_default().insert(addr);
                }
            }
        }
    }
    for (key, exp) in &mut out {
        exp.usable = ready
            .remove(key)
            .filter(|r| !r.is_empty())
            .or_else(|| fallback.remove(key))
            .unwrap_or_default();
    }
    out
}

/// Whether a rule entry implements the Service port `key`.
fn rule_matches(rule: &ServicePort, key: &Key) -> bool {
    if rule.protocol != key.1 {
        return false;
    }
    match (&rule.name, &rule.chain) {
        (Some(name), _) => *name == key.0,
        (None, Some(chain)) => key.0.chain_suffixes(key.1).iter().any(|h| h == chain),
        (None, None) => false,
    }
}

/// Whether an `ip:port` (`[ip]:port` for IPv6) is IPv6.
fn is_v6(addr: &str) -> bool {
    addr.starts_with('[')
}

/// Compare the rules with the slices. The slices are taken to be complete
/// (every slice of the cluster, as the API lists them): a named Service port
/// in the rules without any slice is reported as `gone`. To check a subset
/// of namespaces, filter the [`ServiceMap`] to them first.
pub fn detect_stale(rules: &ServiceMap, slices: &[EndpointSlice]) -> StaleReport {
    let expected = expected_from_slices(slices);
    let mut report = StaleReport {
        services_checked: expected.len(),
        ..StaleReport::default()
    };
    let mut matched = vec![false; rules.services.len()];
    for (key, exp) in &expected {
        let entries: Vec<(usize, &ServicePort)> = rules
            .services
            .iter()
            .enumerate()
            .filter(|(_, r)| rule_matches(r, key))
            .collect();
        let mut programmed: BTreeMap<String, Option<u32>> = BTreeMap::new();
        // Which address families the node's rules cover for this port (a
        // single-stack node must not report the other family as missing;
        // a dual-stack one must report both).
        let mut families: BTreeSet<bool> = BTreeSet::new();
        for (i, rule) in &entries {
            matched[*i] = true;
            if let Some(ip) = &rule.cluster_ip {
                families.insert(ip.contains(':'));
            }
            for ep in &rule.endpoints {
                families.insert(is_v6(&ep.address()));
                programmed.insert(ep.address(), ep.weight);
            }
        }
        let ctx = (key, exp, &families);
        compare_service(ctx, &programmed, &mut report.findings);
    }
    for (rule, _) in rules
        .services
        .iter()
        .zip(&matched)
        .filter(|(r, m)| !**m && !r.endpoints.is_empty())
    {
        match &rule.name {
            // A named Service port with no slice at all: the Service (or
            // port) was deleted and its rules were left behind.
            Some(name) => {
                report
                    .findings
                    .extend(
                        rule.endpoints
                            .iter()
                            .filter(|ep| ep.weight != Some(0))
                            .map(|ep| Finding {
                                kind: FindingKind::Gone,
                                service: name.to_string(),
                                protocol: rule.protocol,
                                endpoint: ep.address(),
                            }),
                    )
            }
            None => report.unmatched_rules.push(identity(rule)),
        }
    }
    report.findings.sort();
    report.findings.dedup();
    report
}

fn compare_service(
    (key, exp, families): (&Key, &Expected, &BTreeSet<bool>),
    programmed: &BTreeMap<String, Option<u32>>,
    findings: &mut Vec<Finding>,
) {
    let finding = |kind, endpoint: &str| Finding {
        kind,
        service: key.0.to_string(),
        protocol: key.1,
        endpoint: endpoint.to_owned(),
    };
    for (addr, weight) in programmed {
        let usable = exp.usable.contains(addr);
        if usable && *weight == Some(0) {
            findings.push(finding(FindingKind::ZeroWeight, addr));
        } else if !usable && *weight != Some(0) {
            // IPVS weight 0 for a removed endpoint is graceful termination
            // in progress, not a stale rule.
            let kind = if exp.known.contains(addr) {
                FindingKind::NotReady
            } else {
                FindingKind::Gone
            };
            findings.push(finding(kind, addr));
        }
    }
    for addr in &exp.usable {
        let rule_family = families.is_empty() || families.contains(&is_v6(addr));
        if !programmed.contains_key(addr) && rule_family {
            findings.push(finding(FindingKind::Missing, addr));
        }
    }
}

fn identity(rule: &ServicePort) -> String {
    match (&rule.name, &rule.chain, &rule.cluster_ip) {
        (Some(name), _, _) => name.to_string(),
        (None, Some(chain), _) => chain.clone(),
        (None, None, Some(ip)) => format!("{ip}:{}", rule.port.unwrap_or(0)),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::parse_endpoint_slices;
    use crate::model::{Endpoint, RuleSource};

    fn slices(eps: &str) -> Vec<EndpointSlice> {
        let json = format!(
            r#"[{{"metadata":{{"name":"web-1","namespace":"demo","labels":{{"kubernetes.io/service-name":"web"}}}},
              "addressType":"IPv4","endpoints":[{eps}],"ports":[{{"name":"http","port":8080}}]}}]"#
        );
        parse_endpoint_slices(&json).expect("slices")
    }

    fn rules(name: Option<&str>, chain: Option<String>, eps: &[(&str, Option<u32>)]) -> ServiceMap {
        let mut sp = ServicePort::new(Protocol::Tcp);
        sp.name = name.and_then(ServicePortName::parse);
        sp.chain = chain;
        sp.endpoints = eps
            .iter()
            .map(|(ip, w)| Endpoint {
                ip: (*ip).into(),
                port: 8080,
                probability: None,
                weight: *w,
                share: None,
            })
            .collect();
        ServiceMap {
            source: RuleSource::Iptables,
            services: vec![sp],
        }
    }

    /// A dual-stack Service: one IPv4 and one IPv6 slice, each with two
    /// ready endpoints.
    fn dual_stack_slices() -> Vec<EndpointSlice> {
        let mut all = slices(r#"{"addresses":["10.0.0.1"]},{"addresses":["10.0.0.2"]}"#);
        let json = r#"[{"metadata":{"name":"web-6","namespace":"demo","labels":{"kubernetes.io/service-name":"web"}},
            "addressType":"IPv6","endpoints":[{"addresses":["fd00::1"]},{"addresses":["fd00::2"]}],
            "ports":[{"name":"http","port":8080}]}]"#;
        all.extend(parse_endpoint_slices(json).expect("slices"));
        all
    }

    #[test]
    fn dual_stack_rules_are_judged_per_family() {
        let s = dual_stack_slices();
        let v4 = rules(
            Some("demo/web:http"),
            None,
            &[("10.0.0.1", None), ("10.0.0.2", None)],
        );
        assert!(
            detect_stale(&v4, &s).is_clean(),
            "an IPv4-only node is not missing the IPv6 endpoints"
        );
        // A dual-stack node whose IPv6 rules lost an endpoint.
        let mut both = v4.clone();
        let mut v6 = rules(Some("demo/web:http"), None, &[("fd00::1", None)]).services;
        v6[0].cluster_ip = Some("fd00:96::10".into());
        both.services.extend(v6.clone());
        let report = detect_stale(&both, &s);
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.findings[0].kind, FindingKind::Missing);
        assert_eq!(report.findings[0].endpoint, "[fd00::2]:8080");
        // Its IPv6 rules flushed to no endpoint at all: both are missing.
        v6[0].endpoints.clear();
        let mut flushed = v4;
        flushed.services.extend(v6);
        let report = detect_stale(&flushed, &s);
        let missing: Vec<&str> = report
            .findings
            .iter()
            .map(|f| f.endpoint.as_str())
            .collect();
        assert_eq!(missing, ["[fd00::1]:8080", "[fd00::2]:8080"]);
    }

    #[test]
    fn in_sync_rules_are_clean() {
        let s = slices(
            r#"{"addresses":["10.0.0.1"]},{"addresses":["10.0.0.2"],"conditions":{"ready":true}}"#,
        );
        let r = rules(
            Some("demo/web:http"),
            None,
            &[("10.0.0.1", None), ("10.0.0.2", None)],
        );
        let report = detect_stale(&r, &s);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.services_checked, 1);
    }

    #[test]
    fn reports_not_ready_gone_and_missing() {
        let s = slices(
            r#"{"addresses":["10.0.0.1"],"conditions":{"ready":false}},{"addresses":["10.0.0.3"]}"#,
        );
        let r = rules(
            Some("demo/web:http"),
            None,
            &[("10.0.0.1", None), ("10.0.0.2", None)],
        );
        let kinds: Vec<(FindingKind, String)> = detect_stale(&r, &s)
            .findings
            .into_iter()
            .map(|f| (f.kind, f.endpoint))
            .collect();
        assert_eq!(
            kinds,
            [
                (FindingKind::NotReady, "10.0.0.1:8080".into()),
                (FindingKind::Gone, "10.0.0.2:8080".into()),
                (FindingKind::Missing, "10.0.0.3:8080".into()),
            ]
        );
    }

    #[test]
    fn terminating_fallback_is_expected_when_nothing_is_ready() {
        let s = slices(
            r#"{"addresses":["10.0.0.1"],"conditions":{"ready":false,"serving":true,"terminating":true}}"#,
        );
        let r = rules(Some("demo/web:http"), None, &[("10.0.0.1", None)]);
        assert!(detect_stale(&r, &s).is_clean());
    }

    #[test]
    fn unnamed_rules_match_by_chain_hash() {
        let suffix = ServicePortName::parse("demo/web:http")
            .expect("name")
            .chain_suffixes(Protocol::Tcp)[0]
            .clone();
        let s = slices(r#"{"addresses":["10.0.0.1"]}"#);
        let r = rules(None, Some(suffix), &[("10.0.0.9", None)]);
        let report = detect_stale(&r, &s);
        assert_eq!(report.findings.len(), 2, "{report:?}");
        assert!(report.unmatched_rules.is_empty());
        let other = rules(None, Some("NOTAHASH".into()), &[("10.0.0.9", None)]);
        assert_eq!(detect_stale(&other, &s).unmatched_rules, ["NOTAHASH"]);
    }

    #[test]
    fn rules_of_a_deleted_service_are_gone() {
        let s = slices(r#"{"addresses":["10.0.0.1"]}"#);
        let mut r = rules(Some("demo/web:http"), None, &[("10.0.0.1", None)]);
        let mut old = r.services[0].clone();
        old.name = ServicePortName::parse("demo/old:http");
        r.services.push(old);
        let report = detect_stale(&r, &s);
        assert_eq!(report.findings.len(), 1, "{report:?}");
        assert_eq!(report.findings[0].kind, FindingKind::Gone);
        assert_eq!(report.findings[0].service, "demo/old:http");
        assert!(report.unmatched_rules.is_empty());
    }

    #[test]
    fn ipvs_weights_zero_for_ready_is_stale_but_draining_is_not() {
        let s = slices(r#"{"addresses":["10.0.0.1"]}"#);
        let r = rules(
            Some("demo/web:http"),
            None,
            &[("10.0.0.1", Some(0)), ("10.0.0.2", Some(0))],
        );
        let report = detect_stale(&r, &s);
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].kind, FindingKind::ZeroWeight);
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["findings"][0]["kind"], "zero-weight");
    }
}
