//! The Markdown report, written for GitHub (a pull-request comment or a
//! file in a repository): tables, a status symbol beside each word, and
//! outputs folded in `<details>`. GitHub strips inline SVG, so the charts'
//! facts appear as tables instead.

use std::fmt::Write;

use crate::html::{all_items, groups, recover_command};
use crate::model::{Item, Run};
use crate::score::FORMULA;
use crate::show;
use crate::time::human_duration;

/// The whole Markdown document.
pub fn render(runs: &[Run], title: &str, generated: &str) -> String {
    let mut out = format!(
        "# {}\n\nGenerated {generated} by squall from {} journal(s).\n",
        cell(title),
        runs.len()
    );
    if runs.len() > 1 {
        comparison(&mut out, runs);
    }
    for (i, run) in runs.iter().enumerate() {
        section(&mut out, run, i, runs.len() > 1);
    }
    out
}

/// Text safe inside a table cell: pipes escaped, newlines flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn dur(d: Option<f64>) -> String {
    d.map_or_else(|| "—".into(), human_duration)
}

fn comparison(out: &mut String, runs: &[Run]) {
    out.push_str(
        "\n## Runs compared\n\n| # | Experiment | Outcome | Started | Duration | Score | Longest outage |\n\
|---|---|---|---|---|---|---|\n",
    );
    for (i, r) in runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} | {} | {} | {} |",
            i + 1,
            cell(&r.title),
            r.outcome.symbol(),
            r.outcome.word(),
            cell(&r.start_text),
            dur(r.duration),
            r.score.text(),
            r.longest_outage_ms()
                .map_or_else(|| "—".into(), |v| human_duration(v as f64 / 1000.0))
        );
    }
    for (title, group) in groups(runs) {
        let _ = write!(
            out,
            "\n### Trend: {}\n\n| Run | Started | Outcome | Score |\n|---|---|---|---|\n",
            cell(title)
        );
        for (n, r) in group.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} {} | {} |",
                n + 1,
                cell(&r.start_text),
                r.outcome.symbol(),
                r.outcome.word(),
                r.score.text()
            );
        }
    }
}

fn section(out: &mut String, run: &Run, i: usize, several: bool) {
    let num = if several {
        format!("{}. ", i + 1)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "\n## {num}{}\n\n**{} {}** — {}\n",
        cell(&run.title),
        run.outcome.symbol(),
        run.outcome.word().to_uppercase(),
        run.outcome.meaning()
    );
    if let Some(d) = &run.description {
        let _ = write!(out, "\n{}\n", d.trim());
    }
    summary(out, run);
    if !run.pending_undo.is_empty() {
        let _ = write!(
            out,
            "\n> [!WARNING]\n> **{} change(s) were not undone.** The system may still carry the \
injected faults. Apply the pending undo records with `{}`:\n",
            run.pending_undo.len(),
            recover_command(run)
        );
        for u in &run.pending_undo {
            let _ = writeln!(out, "> - `{}`", cell(u));
        }
    }
    score(out, run);
    hypothesis(out, run);
    monitors(out, run);
    series(out, run);
    activities(out, "Method", &run.method);
    if !run.not_reached.is_empty() {
        out.push_str("\nNot reached (the run stopped first):\n\n");
        for (kind, name) in &run.not_reached {
            let _ = writeln!(out, "- {kind} {}", cell(name));
        }
    }
    activities(out, "Rollbacks", &run.rollbacks);
    if run.rollbacks.is_empty() {
        out.push_str("\nNo rollback was played.\n");
    }
    errors(out, run);
    appendix(out, run);
}

fn summary(out: &mut String, run: &Run) {
    out.push_str("\n| | |\n|---|---|\n");
    let rows = [
        ("Outcome", run.outcome.word().to_owned()),
        ("Tags", run.tags.join(", ")),
        ("Started", run.start_text.clone()),
        ("Ended", run.end_text.clone().unwrap_or_default()),
        ("Duration", dur(run.duration)),
        ("Executed from", run.node.clone().unwrap_or_default()),
        ("Platform", run.platform.clone().unwrap_or_default()),
        ("Written by", run.writer.clone()),
        ("Run id", run.run_id.clone().unwrap_or_default()),
        ("Signals received", run.signals.join(", ")),
    ];
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(out, "| **{k}** | {} |", cell(v));
    }
}

fn score(out: &mut String, run: &Run) {
    let _ = write!(
        out,
        "\n### Resilience score: {}\n\n<sub>{FORMULA}</sub>\n",
        run.score.text()
    );
    if run.score.parts.is_empty() {
        return;
    }
    out.push_str("\n| Part | Weight | Ratio | From |\n|---|---|---|---|\n");
    for p in &run.score.parts {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {} |",
            p.name,
            p.weight,
            p.ratio,
            cell(&p.detail)
        );
    }
}

fn hypothesis(out: &mut String, run: &Run) {
    out.push_str("\n### Steady-state hypothesis\n");
    if let Some(t) = &run.hypothesis_title {
        let _ = write!(out, "\n{}\n", cell(t));
    }
    let checks = run.checks();
    if checks.is_empty() {
        out.push_str("\nNo steady-state hypothesis was checked.\n");
    }
    for (phase, check) in checks {
        let met = match check.met {
            Some(true) => "✔ met",
            Some(false) => "✖ not met",
            None => "unknown",
        };
        let _ = write!(
            out,
            "\n**{phase} the method: {met}**\n\n| Probe | Tolerance | Result |\n|---|---|---|\n"
        );
        for p in &check.probes {
            let tol = p.tolerance.as_ref().map(show).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | `{}` | {} |",
                cell(&p.name),
                cell(&tol),
                result(p)
            );
        }
    }
}

fn result(i: &Item) -> String {
    let sym = if i.failed() {
        "✖"
    } else if i.status.is_none() {
        "■"
    } else {
        "✔"
    };
    format!("{sym} {}", i.result())
}

fn monitors(out: &mut String, run: &Run) {
    for m in &run.monitors {
        let _ = write!(
            out,
            "\n### Availability: {}\n\n| Availability | Requests | Failed | Outages | Longest outage | Time to recovery |\n\
|---|---|---|---|---|---|\n| {:.2}% | {} | {} | {} | {} | {} |\n",
            cell(&m.name),
            m.availability,
            m.requests,
            m.failures,
            m.outages.len(),
            human_duration(m.longest_ms as f64 / 1000.0),
            m.recovery_ms
                .map_or_else(|| "—".into(), |r| human_duration(r as f64 / 1000.0))
        );
        for (n, o) in m.outages.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}- outage {}: from {:.1} s, {}{}",
                if n == 0 { "\n" } else { "" },
                n + 1,
                o.start,
                human_duration(o.duration),
                if o.ongoing {
                    " (ongoing at the end)"
                } else {
                    ""
                }
            );
        }
    }
}

fn series(out: &mut String, run: &Run) {
    for s in &run.series {
        let _ = write!(
            out,
            "\n### Metrics: {}\n\n| Series | Points | Min | Max | Last |\n|---|---|---|---|---|\n",
            cell(&s.name)
        );
        for l in &s.lines {
            let vals = l.points.iter().map(|p| p.1);
            let min = vals.clone().fold(f64::INFINITY, f64::min);
            let max = vals.fold(f64::NEG_INFINITY, f64::max);
            let last = l.points.last().map_or(0.0, |p| p.1);
            let _ = writeln!(
                out,
                "| {} | {} | {min} | {max} | {last} |",
                cell(&l.label),
                l.points.len()
            );
        }
    }
}

fn activities(out: &mut String, heading: &str, items: &[Item]) {
    let _ = writeln!(out, "\n### {heading}");
    if items.is_empty() {
        return;
    }
    out.push_str("\n| Type | Name | Provider | Background | Duration | Result |\n|---|---|---|---|---|---|\n");
    for i in items {
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | {} | {} | {} |",
            cell(&i.kind),
            cell(&i.name),
            cell(&i.provider),
            if i.background { "yes" } else { "no" },
            dur(i.duration),
            result(i)
        );
    }
}

fn errors(out: &mut String, run: &Run) {
    let failed: Vec<&Item> = all_items(run).filter(|i| i.error.is_some()).collect();
    if failed.is_empty() {
        return;
    }
    out.push_str("\n### Errors\n");
    for i in failed {
        let _ = write!(
            out,
            "\n**{} {}**\n\n```text\n{}\n```\n",
            i.kind,
            cell(&i.name),
            i.error.as_deref().unwrap_or_default().replace("```", "'''")
        );
    }
}

fn appendix(out: &mut String, run: &Run) {
    out.push_str("\n### Appendix: outputs\n");
    for i in all_items(run) {
        let body = serde_json::to_string_pretty(&i.output)
            .unwrap_or_default()
            .replace("```", "'''");
        let _ = write!(
            out,
            "\n<details><summary>{} {} — {}</summary>\n\n```json\n{body}\n```\n\n</details>\n",
            i.kind,
            crate::escape(&i.name),
            i.result()
        );
    }
}
