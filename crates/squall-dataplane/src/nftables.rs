//! kube-proxy's nftables tables (`table ip kube-proxy`, `table ip6
//! kube-proxy`) as undo material. Snapshots already hold the raw
//! `nft list ruleset`; this module cuts kube-proxy's tables out of it,
//! restores them in one atomic `nft -f -` transaction (create-if-missing,
//! delete, re-add — so restoring twice gives the same table), and diffs them
//! after normalising what the kernel does not preserve: counters, `#` lines
//! and the order of set/map elements.

use std::collections::BTreeMap;

use crate::ruleset::{SavedRule, SavedRuleset, SavedTable, split_args};

/// Families kube-proxy creates its table in.
pub const FAMILIES: [&str; 2] = ["ip", "ip6"];
/// kube-proxy's table name.
pub const TABLE: &str = "kube-proxy";

/// Net `{`/`}` depth change of a line, ignoring quoted text.
pub(crate) fn brace_delta(line: &str) -> i64 {
    let mut quoted = false;
    let mut delta = 0;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            '{' if !quoted => delta += 1,
            '}' if !quoted => delta -= 1,
            _ => {}
        }
    }
    delta
}

/// The text of `table <family> kube-proxy { … }` in a ruleset listing.
pub fn extract_table(ruleset: &str, family: &str) -> Option<String> {
    let header = format!("table {family} {TABLE} {{");
    let mut out = String::new();
    let mut depth = 0;
    let mut inside = false;
    for line in ruleset.lines() {
        if !inside && depth == 0 && line.trim() == header {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        depth = (depth + brace_delta(line)).max(0);
        if inside && depth == 0 {
            return Some(out);
        }
    }
    None
}

/// Every kube-proxy table in `ruleset`, as `(family, text)`.
pub fn kube_proxy_tables(ruleset: &str) -> Vec<(&'static str, String)> {
    FAMILIES
        .iter()
        .filter_map(|f| extract_table(ruleset, f).map(|t| (*f, t)))
        .collect()
}

/// An `nft -f -` script that replaces kube-proxy's tables with the ones in
/// `ruleset`, atomically. `None` when `ruleset` holds none.
pub fn restore_script(ruleset: &str) -> Option<String> {
    let tables = kube_proxy_tables(ruleset);
    if tables.is_empty() {
        return None;
    }
    let mut script = String::new();
    for (family, text) in tables {
        // `table …` alone creates it when missing, so `delete` never fails.
        script.push_str(&format!(
            "table {family} {TABLE}\ndelete table {family} {TABLE}\n"
        ));
        script.push_str(&text);
    }
    Some(script)
}

/// Drop `counter packets N bytes M` values, which change with traffic.
fn strip_counters(statement: &str) -> String {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        out.push(words[i]);
        if words[i] == "counter" && words.get(i + 1) == Some(&"packets") {
            i += 5; // counter packets N bytes M
        } else {
            i += 1;
        }
    }
    out.join(" ")
}

/// One table as a [`SavedTable`]: each chain/map/set is a "chain" whose
/// "rules" are its statements, with element lists split and sorted.
fn normalise(table_text: &str) -> SavedTable {
    let mut table = SavedTable::default();
    let mut block = "table".to_owned();
    let mut body = String::new();
    let mut depth = 0;
    let flush = |block: &str, body: &mut String, table: &mut SavedTable| {
        for statement in statements(body) {
            table.rules.push(SavedRule {
                chain: block.to_owned(),
                args: split_args(&statement),
            });
        }
        body.clear();
    };
    for line in table_text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let next = (depth + brace_delta(trimmed)).max(0);
        if depth == 1 && next == 2 {
            flush(&block, &mut body, &mut table);
            block = trimmed.trim_end_matches('{').trim().to_owned();
            table.chains.insert(block.clone(), "-".into());
        } else if depth >= 1 && next >= 1 && !(depth == 2 && next == 1) {
            body.push_str(trimmed);
            body.push('\n');
        }
        if depth == 2 && next == 1 {
            flush(&block, &mut body, &mut table);
            block = "table".to_owned();
        }
        depth = next;
    }
    flush(&block, &mut body, &mut table);
    table
}

/// Statements of a block body; `elements = { … }` becomes one sorted
/// `element …` statement per element.
fn statements(body: &str) -> Vec<String> {
    let (before, elements, after) = match body.find("elements = {") {
        Some(start) => {
            let rest = &body[start + "elements = {".len()..];
            let end = rest.find('}').unwrap_or(rest.len());
            (
                &body[..start],
                Some(&rest[..end]),
                rest.get(end + 1..).unwrap_or(""),
            )
        }
        None => (body, None, ""),
    };
    let mut out: Vec<String> = before
        .lines()
        .chain(after.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(strip_counters)
        .collect();
    if let Some(list) = elements {
        let mut items: Vec<String> = list
            .split(',')
            .map(|e| {
                format!(
                    "element {}",
                    e.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            })
            .filter(|e| e != "element ")
            .collect();
        items.sort();
        out.extend(items);
    }
    out
}

/// kube-proxy's tables of a ruleset listing, normalised for
/// [`crate::ruleset::diff_rulesets`], keyed `nft <family> kube-proxy`.
pub fn normalised_tables(ruleset: &str) -> SavedRuleset {
    kube_proxy_tables(ruleset)
        .into_iter()
        .map(|(family, text)| (format!("nft {family} {TABLE}"), normalise(&text)))
        .collect::<BTreeMap<_, _>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::diff_rulesets;

    const RULESET: &str = "table ip nat {\n\tchain POSTROUTING {\n\t}\n}\n\
table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n\
\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\
\t\telements = { 10.96.0.1 . tcp . 443 : goto service-A,\n\t\t\t     10.96.0.10 . udp . 53 : goto service-B }\n\t}\n\n\
\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips counter packets 12 bytes 720\n\t}\n\
\tchain service-A {\n\t\tnumgen random mod 1 vmap { 0 : goto endpoint-A }\n\t}\n}\n";

    #[test]
    fn extracts_only_kube_proxy_tables_and_builds_atomic_script() {
        let tables = kube_proxy_tables(RULESET);
        assert_eq!(tables.len(), 1);
        assert!(tables[0].1.starts_with("table ip kube-proxy {"));
        assert!(tables[0].1.trim_end().ends_with('}'));
        assert!(!tables[0].1.contains("POSTROUTING"));
        let script = restore_script(RULESET).expect("script");
        assert!(
            script.starts_with(
                "table ip kube-proxy\ndelete table ip kube-proxy\ntable ip kube-proxy {"
            )
        );
        assert!(restore_script("table ip nat {\n}\n").is_none());
    }

    #[test]
    fn normalising_ignores_element_order_and_counters() {
        let reordered = RULESET
            .replace(
                "10.96.0.1 . tcp . 443 : goto service-A,",
                "10.96.0.10 . udp . 53 : goto service-B,",
            )
            .replacen(
                "10.96.0.10 . udp . 53 : goto service-B }",
                "10.96.0.1 . tcp . 443 : goto service-A }",
                1,
            )
            .replace("packets 12 bytes 720", "packets 99 bytes 9999");
        assert_ne!(reordered, RULESET);
        let d = diff_rulesets(&normalised_tables(RULESET), &normalised_tables(&reordered));
        assert!(d.is_clean(), "{d:?}");
        let table = &normalised_tables(RULESET)["nft ip kube-proxy"];
        assert!(table.chains.contains_key("chain services"));
        assert!(table.chains.contains_key("map service-ips"));
        assert_eq!(
            table.chain_rules("map service-ips").count(),
            3,
            "type + 2 elements"
        );
    }

    #[test]
    fn flushed_chain_shows_in_the_diff() {
        let flushed = RULESET.replace(
            "\t\tip daddr . meta l4proto . th dport vmap @service-ips counter packets 12 bytes 720\n",
            "",
        );
        let d = diff_rulesets(&normalised_tables(RULESET), &normalised_tables(&flushed));
        assert_eq!(d.tables.len(), 1);
        assert_eq!(d.tables[0].chains[0].chain, "chain services");
        assert_eq!(d.tables[0].chains[0].removed.len(), 1);
        let gone = diff_rulesets(&normalised_tables(RULESET), &normalised_tables(""));
        assert!(gone.tables[0].missing);
    }
}
