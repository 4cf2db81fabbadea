//! The `iptables-save` text format as data: a tokenizer for rule arguments,
//! a parser into tables → chains → rules, and the normalised diff that
//! decides whether a node has "recovered". Normalisation drops what changes
//! without changing behaviour — packet counters (`[12:3456]`), `#` comment
//! lines with timestamps, and the order in which chains are declared — and
//! keeps what does: rules, their order inside a chain, chain policies.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Split an iptables rule into arguments the way iptables-restore does:
/// whitespace separates, double quotes group (with `\"` and `\\` escapes).
/// Never fails; an unterminated quote runs to the end of the line.
pub fn split_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                in_token = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    out
}

/// Quote one argument for an iptables-restore line when it needs it.
pub fn quote_arg(arg: &str) -> String {
    let needs = arg.is_empty()
        || arg
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\');
    if !needs {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One `-A CHAIN …` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedRule {
    /// The chain it is appended to.
    pub chain: String,
    /// Its arguments after `-A CHAIN`, unquoted.
    pub args: Vec<String>,
}

impl SavedRule {
    /// The arguments in canonical, re-quoted form — the identity used by
    /// the diff and by generated restore payloads.
    pub fn spec(&self) -> String {
        self.args
            .iter()
            .map(|a| quote_arg(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The target of `-j` / `-g`, if any.
    pub fn target(&self) -> Option<&str> {
        arg_after(&self.args, &["-j", "--jump", "-g", "--goto"])
    }
}

/// The value following the last occurrence of any of `flags` in `args`.
pub fn arg_after<'a>(args: &'a [String], flags: &[&str]) -> Option<&'a str> {
    args.iter()
        .rposition(|a| flags.contains(&a.as_str()))
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// One `*table … COMMIT` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SavedTable {
    /// Chain → policy (`ACCEPT`/`DROP` for built-ins, `-` for user chains).
    pub chains: BTreeMap<String, String>,
    /// Rules in file order.
    pub rules: Vec<SavedRule>,
}

impl SavedTable {
    /// Rules of one chain, in order.
    pub fn chain_rules<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a SavedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// A parsed `iptables-save` dump: table name → table.
pub type SavedRuleset = BTreeMap<String, SavedTable>;

/// Parse `iptables-save` output (with or without `-c` counters). Lines
/// that are not part of the format are skipped, never fatal.
pub fn parse_save(text: &str) -> SavedRuleset {
    let mut tables = SavedRuleset::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            let name = name.trim().to_owned();
            tables.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if line == "COMMIT" {
            current = None;
            continue;
        }
        let Some(table) = current.as_ref().and_then(|t| tables.get_mut(t)) else {
            continue;
        };
        parse_table_line(table, line);
    }
    tables
}

fn parse_table_line(table: &mut SavedTable, line: &str) {
    if let Some(decl) = line.strip_prefix(':') {
        let mut parts = decl.split_whitespace();
        if let Some(chain) = parts.next() {
            let policy = parts.next().unwrap_or("-").to_owned();
            table.chains.insert(chain.to_owned(), policy);
        }
        return;
    }
    // `iptables-save -c` prefixes rules with `[packets:bytes]`.
    let line = match line.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, r)| r.trim_start()),
        None => line,
    };
    let mut args = split_args(line);
    if args.len() >= 2 && (args[0] == "-A" || args[0] == "--append") {
        let rest = args.split_off(2);
        table.rules.push(SavedRule {
            chain: args.swap_remove(1),
            args: rest,
        });
    }
}

/// How one chain differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainDiff {
    /// The chain.
    pub chain: String,
    /// Rules present live but not in the reference.
    pub added: Vec<String>,
    /// Rules in the reference but missing live.
    pub removed: Vec<String>,
    /// Same rules, different order (order decides which rule matches).
    pub reordered: bool,
}

/// How one table differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableDiff {
    /// The table.
    pub table: String,
    /// Whether the table is missing live altogether.
    pub missing: bool,
    /// Chains declared live but not in the reference.
    pub added_chains: Vec<String>,
    /// Chains in the reference but not declared live.
    pub removed_chains: Vec<String>,
    /// `(chain, reference policy, live policy)` for changed policies.
    pub policy_changes: Vec<(String, String, String)>,
    /// Per-chain rule differences.
    pub chains: Vec<ChainDiff>,
}

/// Live rules against a reference (normally a snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RulesetDiff {
    /// Only tables that differ.
    pub tables: Vec<TableDiff>,
}

impl RulesetDiff {
    /// "Recovered": nothing differs.
    pub fn is_clean(&self) -> bool {
        self.tables.is_empty()
    }

    /// Total number of added plus removed rules, for summaries.
    pub fn rule_changes(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.added.len() + c.removed.len())
            .sum()
    }
}

/// Compare `live` against `reference`, table by table over the reference's
/// tables (a table we did not save is not ours to judge).
pub fn diff_rulesets(reference: &SavedRuleset, live: &SavedRuleset) -> RulesetDiff {
    let tables = reference
        .iter()
        .filter_map(|(name, want)| {
            let diff = match live.get(name) {
                Some(have) => diff_table(name, want, have),
                None => TableDiff {
                    table: name.clone(),
                    missing: true,
                    ..TableDiff::default()
                },
            };
            (diff
                != TableDiff {
                    table: name.clone(),
                    ..TableDiff::default()
                })
            .then_some(diff)
        })
        .collect();
    RulesetDiff { tables }
}

fn diff_table(name: &str, want: &SavedTable, have: &SavedTable) -> TableDiff {
    let mut diff = TableDiff {
        table: name.to_owned(),
        ..TableDiff::default()
    };
    for (chain, policy) in &want.chains {
        match have.chains.get(chain) {
            None => diff.removed_chains.push(chain.clone()),
            Some(p) if p != policy => {
                diff.policy_changes
                    .push((chain.clone(), policy.clone(), p.clone()));
            }
            Some(_) => {}
        }
    }
    diff.added_chains = have
        .chains
        .keys()
        .filter(|c| !want.chains.contains_key(*c))
        .cloned()
        .collect();
    let names: BTreeSet<&str> = want
        .rules
        .iter()
        .chain(&have.rules)
        .map(|r| r.chain.as_str())
        .collect();
    for chain in names {
        let a: Vec<String> = want.chain_rules(chain).map(SavedRule::spec).collect();
        let b: Vec<String> = have.chain_rules(chain).map(SavedRule::spec).collect();
        if let Some(cd) = diff_chain(chain, &a, &b) {
            diff.chains.push(cd);
        }
    }
    diff
}

fn diff_chain(chain: &str, want: &[String], have: &[String]) -> Option<ChainDiff> {
    if want == have {
        return None;
    }
    let mut pool: BTreeMap<&str, isize> = BTreeMap::new();
    for r in want {
        *pool.entry(r).or_default() += 1;
    }
    let mut added = Vec::new();
    for r in have {
        match pool.get_mut(r.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => added.push(r.clone()),
        }
    }
    let mut removed = Vec::new();
    for r in want {
        if let Some(n) = pool.get_mut(r.as_str())
            && *n > 0
        {
            *n -= 1;
            removed.push(r.clone());
        }
    }
    let reordered = added.is_empty() && removed.is_empty();
    Some(ChainDiff {
        chain: chain.to_owned(),
        added,
        removed,
        reordered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# Generated by iptables-save v1.8.9 on Mon\n*nat\n\
:PREROUTING ACCEPT [10:600]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n\
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -j KUBE-SVC-A\n\
-A KUBE-SVC-A -j RETURN\nCOMMIT\n# Completed on Mon\n";

    #[test]
    fn split_args_handles_quotes_and_escapes() {
        assert_eq!(
            split_args(r#"-m comment --comment "ns/a:b cluster IP" -j X"#),
            ["-m", "comment", "--comment", "ns/a:b cluster IP", "-j", "X"]
        );
        assert_eq!(
            split_args(r#"--comment "say \"hi\"""#),
            ["--comment", "say \"hi\""]
        );
        assert_eq!(split_args(r#"--comment "open"#), ["--comment", "open"]);
        assert_eq!(split_args(r#"x """#), ["x", ""]);
        assert_eq!(quote_arg("a b"), "\"a b\"");
        assert_eq!(split_args(&quote_arg(r#"q"\"#)), [r#"q"\"#]);
    }

    #[test]
    fn parse_reads_tables_chains_rules_and_counters() {
        let rs = parse_save(BEFORE);
        let nat = &rs["nat"];
        assert_eq!(nat.chains["PREROUTING"], "ACCEPT");
        assert_eq!(nat.chains["KUBE-SVC-A"], "-");
        assert_eq!(nat.rules.len(), 3);
        assert_eq!(nat.rules[1].target(), Some("KUBE-SVC-A"));
        let counted = parse_save("*nat\n[3:180] -A OUTPUT -j KUBE-SERVICES\nCOMMIT\n");
        assert_eq!(counted["nat"].rules[0].chain, "OUTPUT");
    }

    #[test]
    fn diff_ignores_counters_comments_and_declaration_order() {
        let reordered_decls = "*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SERVICES - [0:0]\n\
:PREROUTING ACCEPT [999:1]\n\
[5:300] -A PREROUTING -m comment --comment \"kubernetes service portals\"   -j KUBE-SERVICES\n\
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -j KUBE-SVC-A\n-A KUBE-SVC-A -j RETURN\nCOMMIT\n";
        let d = diff_rulesets(&parse_save(BEFORE), &parse_save(reordered_decls));
        assert!(d.is_clean(), "{d:?}");
    }

    #[test]
    fn diff_reports_flushed_rules_chains_and_reorders() {
        let flushed = "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
        let d = diff_rulesets(&parse_save(BEFORE), &parse_save(flushed));
        assert!(!d.is_clean());
        let t = &d.tables[0];
        assert_eq!(t.removed_chains, ["KUBE-SERVICES", "KUBE-SVC-A"]);
        assert_eq!(d.rule_changes(), 3);
        let swapped = "*nat\n:X - [0:0]\n-A X -j A\n-A X -j B\nCOMMIT\n";
        let back = "*nat\n:X - [0:0]\n-A X -j B\n-A X -j A\nCOMMIT\n";
        let d = diff_rulesets(&parse_save(swapped), &parse_save(back));
        assert!(d.tables[0].chains[0].reordered);
        let d = diff_rulesets(&parse_save(BEFORE), &SavedRuleset::new());
        assert!(d.tables[0].missing);
    }

    #[test]
    fn diff_reports_added_rules_and_policy_changes() {
        let live = BEFORE
            .replace(":PREROUTING ACCEPT", ":PREROUTING DROP")
            .replace("COMMIT", "-A KUBE-SVC-A -j DROP\nCOMMIT");
        let d = diff_rulesets(&parse_save(BEFORE), &parse_save(&live));
        let t = &d.tables[0];
        assert_eq!(
            t.policy_changes,
            [("PREROUTING".into(), "ACCEPT".into(), "DROP".into())]
        );
        assert_eq!(t.chains[0].added, ["-j DROP"]);
        assert!(t.chains[0].removed.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn quoting_round_trips_any_argument(arg in "\\PC*") {
            proptest::prop_assert_eq!(split_args(&quote_arg(&arg)), vec![arg]);
        }

        #[test]
        fn parsing_and_diffing_arbitrary_text_never_panics(a in "\\PC*", b in "(\\*nat|:X - \\[0:0\\]|-A X [a-z\" ]*|COMMIT|\\[1:2\\] -A Y)(\n(-A X [a-z\" ]*|COMMIT|\\*filter))*") {
            let (ra, rb) = (parse_save(&a), parse_save(&b));
            let d = diff_rulesets(&rb, &rb);
            proptest::prop_assert!(d.is_clean(), "a ruleset never differs from itself");
            let _ = diff_rulesets(&ra, &rb);
        }
    }
}
