//! Reading a live node: find which kube-proxy mode programmed it (an
//! `ip` / `ip6 kube-proxy` nftables table, IPVS virtual servers, or
//! iptables / ip6tables chains), dump it and parse it into a [`ServiceMap`]
//! (a dual-stack Service port appears once per family). Backs
//! `squall agent dataplane inspect` and, with EndpointSlices, `… stale`.

use serde::{Deserialize, Serialize};

use crate::endpointslice::parse_endpoint_slices;
use crate::error::Result;
use crate::model::ServiceMap;
use crate::parse::{parse_iptables, parse_ipvs, parse_nft};
use crate::runner::{CommandRunner, CommandSpec};
use crate::services::{attach_service_names, parse_services};
use crate::snapshot::{IptablesConfig, dump_tables, dump_tables6};
use crate::stale::{StaleReport, detect_stale};

/// Which kube-proxy mode produced the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// iptables chains (`KUBE-SERVICES` …).
    Iptables,
    /// nftables `ip kube-proxy` table.
    Nftables,
    /// IPVS virtual servers.
    Ipvs,
}

impl std::str::FromStr for ProxyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "iptables" => Ok(Self::Iptables),
            "nftables" | "nft" => Ok(Self::Nftables),
            "ipvs" => Ok(Self::Ipvs),
            other => Err(format!(
                "unknown proxy mode {other:?} (iptables, nftables, ipvs)"
            )),
        }
    }
}

/// A parsed live dump.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Detected mode.
    pub mode: ProxyMode,
    /// What the rules implement.
    pub map: ServiceMap,
    /// The raw dump that was parsed.
    pub raw: String,
}

/// Parse a dump of a known mode (e.g. a file the user saved).
pub fn parse_dump(mode: ProxyMode, text: &str) -> ServiceMap {
    match mode {
        ProxyMode::Iptables => parse_iptables(text),
        ProxyMode::Nftables => parse_nft(text),
        ProxyMode::Ipvs => parse_ipvs(text),
    }
}

/// stdout of a command that succeeded, `None` if it failed or is missing.
async fn try_output<R: CommandRunner + ?Sized>(
    runner: &R,
    program: &str,
    args: &[&str],
) -> Option<String> {
    match runner
        .run(&CommandSpec::new(program, args.iter().copied()))
        .await
    {
        Ok(out) if out.success() => Some(out.stdout),
        _ => None,
    }
}

/// Detect the mode and parse the node's rules.
pub async fn inspect_node<R: CommandRunner + ?Sized>(
    runner: &R,
    cfg: &IptablesConfig,
) -> Result<Inspection> {
    // Both families: a dual-stack node has `ip` and `ip6 kube-proxy`.
    if let Some(ruleset) = try_output(runner, "nft", &["list", "ruleset"]).await {
        let tables = crate::nftables::kube_proxy_tables(&ruleset);
        if !tables.is_empty() {
            let raw: String = tables.into_iter().map(|(_, t)| t).collect();
            return Ok(Inspection {
                mode: ProxyMode::Nftables,
                map: parse_nft(&raw),
                raw,
            });
        }
    }
    if let Some(raw) = try_output(runner, "ipvsadm", &["-S", "-n"]).await
        && raw.lines().any(|l| l.starts_with("-A"))
    {
        return Ok(Inspection {
            mode: ProxyMode::Ipvs,
            map: parse_ipvs(&raw),
            raw,
        });
    }
    let cfg = IptablesConfig {
        tables: vec!["nat".into(), "filter".into()],
        ..cfg.clone()
    };
    // IPv4 and IPv6 rules are parsed apart: a dual-stack Service has the
    // same chain names in both.
    let raw: String = dump_tables(runner, &cfg).await?.into_values().collect();
    let raw6: String = dump_tables6(runner, &cfg).await?.into_values().collect();
    let mut map = parse_iptables(&raw);
    if !raw6.is_empty() {
        map.services.extend(parse_iptables(&raw6).services);
        map.sort();
    }
    Ok(Inspection {
        mode: ProxyMode::Iptables,
        map,
        raw: raw + &raw6,
    })
}

/// Compare a rule map with EndpointSlice JSON, naming IPVS entries from
/// optional Service JSON first.
pub fn stale_from_json(
    mut map: ServiceMap,
    slices_json: &str,
    services_json: Option<&str>,
) -> Result<StaleReport> {
    if let Some(json) = services_json {
        attach_service_names(&mut map, &parse_services(json)?);
    }
    let slices = parse_endpoint_slices(slices_json)?;
    Ok(detect_stale(&map, &slices))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{CommandOutput, FakeReply, FakeRunner};

    fn cfg() -> IptablesConfig {
        IptablesConfig {
            lock_path: None,
            ..IptablesConfig::default()
        }
    }

    const NAT: &str = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-H - [0:0]\n:KUBE-SEP-A - [0:0]\n\
-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m comment --comment \"demo/web:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-H\n\
-A KUBE-SVC-H -j KUBE-SEP-A\n-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.0.0.1:8080\nCOMMIT\n";

    #[tokio::test]
    async fn falls_back_to_iptables_when_no_nft_table_or_ipvs() {
        let f = FakeRunner::new();
        f.on(
            &["nft"],
            FakeReply::Output(CommandOutput::failed(1, "No such file or directory")),
        )
        .on(&["ipvsadm"], FakeReply::NotFound)
        .on_ok(&["iptables-save", "-t", "nat"], NAT);
        let got = inspect_node(&f, &cfg()).await.expect("inspect");
        assert_eq!(got.mode, ProxyMode::Iptables);
        assert_eq!(got.map.endpoint_count(), 1);
    }

    #[tokio::test]
    async fn ip6tables_rules_are_read_beside_the_ipv4_ones() {
        let f = FakeRunner::new();
        f.on(&["nft"], FakeReply::NotFound)
            .on(&["ipvsadm"], FakeReply::NotFound)
            .on_ok(&["iptables-save", "-t", "nat"], NAT)
            .on_ok(
                &["ip6tables-save", "-t", "nat"],
                &NAT.replace("10.96.0.5/32", "fd00::5/128")
                    .replace("10.0.0.1:8080", "[fd00:1::1]:8080"),
            );
        let got = inspect_node(&f, &cfg()).await.expect("inspect");
        let mut eps: Vec<String> = got
            .map
            .services
            .iter()
            .flat_map(|s| s.endpoints.iter().map(|e| e.address()))
            .collect();
        eps.sort();
        assert_eq!(eps, ["10.0.0.1:8080", "[fd00:1::1]:8080"]);
        assert_eq!(got.map.services.len(), 2, "one entry per family");
    }

    #[tokio::test]
    async fn prefers_nft_table_then_ipvs() {
        let f = FakeRunner::new();
        f.on_ok(&["nft"], "table ip kube-proxy {\n}\n");
        assert_eq!(
            inspect_node(&f, &cfg()).await.expect("nft").mode,
            ProxyMode::Nftables
        );
        let f = FakeRunner::new();
        f.on(&["nft"], FakeReply::NotFound).on_ok(
            &["ipvsadm"],
            "-A -t 10.96.0.1:443 -s rr\n-a -t 10.96.0.1:443 -r 172.18.0.2:6443 -m -w 1\n",
        );
        let got = inspect_node(&f, &cfg()).await.expect("ipvs");
        assert_eq!(got.mode, ProxyMode::Ipvs);
        assert_eq!(got.map.endpoint_count(), 1);
    }

    #[test]
    fn stale_from_json_names_ipvs_entries_via_services() {
        let map = parse_dump(
            ProxyMode::Ipvs,
            "-A -t 10.96.120.15:80 -s rr\n-a -t 10.96.120.15:80 -r 10.244.9.9:8080 -m -w 1\n",
        );
        let services = r#"[{"metadata":{"name":"web","namespace":"demo"},
            "spec":{"clusterIP":"10.96.120.15","ports":[{"name":"http","port":80}]}}]"#;
        let slices = r#"[{"metadata":{"name":"w","namespace":"demo","labels":{"kubernetes.io/service-name":"web"}},
            "addressType":"IPv4","endpoints":[{"addresses":["10.244.1.5"]}],"ports":[{"name":"http","port":8080}]}]"#;
        let report = stale_from_json(map.clone(), slices, Some(services)).expect("report");
        assert_eq!(report.findings.len(), 2, "{report:?}");
        let unnamed = stale_from_json(map, slices, None).expect("report");
        assert_eq!(unnamed.unmatched_rules, ["tcp/10.96.120.15:80"]);
        assert!(stale_from_json(parse_dump(ProxyMode::Ipvs, ""), "nope", None).is_err());
        assert_eq!("nft".parse::<ProxyMode>(), Ok(ProxyMode::Nftables));
    }
}
