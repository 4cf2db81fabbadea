//! The HTML report: one self-contained file, inline CSS and SVG only (no
//! script, font or image is fetched), with real headings, table headers,
//! text alternatives for every chart, a layout that fits a phone and
//! prints cleanly, and status shown by word and symbol as well as colour.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::{Check, Item, Outcome, Run};
use crate::score::FORMULA;
use crate::time::human_duration;
use crate::{escape, show, svg};

const CSS: &str = "
:root{color-scheme:light}
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1b1b;
max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.8rem;margin:.2em 0}h2{font-size:1.45rem;border-bottom:2px solid #ddd;
margin-top:2.2rem}h3{font-size:1.15rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
.scroll{overflow-x:auto}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
.outcome{display:inline-block;padding:.25rem .8rem;border-radius:.3rem;color:#fff;font-weight:700;
font-size:1.2rem}
.completed{background:#2e7d32}.deviated{background:#e65100}.failed,.aborted{background:#c62828}
.interrupted{background:#616161}.unknown{background:#455a64}
.warn{border:3px solid #c62828;background:#ffebee;padding:.6rem 1rem;border-radius:.3rem}
.bad{color:#b71c1c;font-weight:700}.good{color:#1b5e20}
.score{font-size:2rem;font-weight:700}
svg.chart{width:100%;height:auto;max-width:800px}
figure{margin:1rem 0}figcaption{font-size:.9em;color:#444}
details{margin:.3rem 0}summary{cursor:pointer}
.meta th{width:11rem}
@media print{body{max-width:none;font-size:11pt}
section.run{break-before:page}h2,h3{break-after:avoid}figure,table{break-inside:avoid}}
";

/// The whole HTML document.
pub fn render(runs: &[Run], title: &str, generated: &str) -> String {
    let mut out = String::with_capacity(16_384 + runs.len() * 8_192);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"generator\" content=\"squall report\"><title>{}</title><style>{CSS}</style></head>\
<body><header><h1>{}</h1><p>Generated {} by squall from {} journal(s).</p></header><main>",
        escape(title),
        escape(title),
        escape(generated),
        runs.len()
    );
    if runs.len() > 1 {
        comparison(&mut out, runs);
    }
    for (i, run) in runs.iter().enumerate() {
        section(&mut out, run, i, runs.len() > 1);
    }
    out.push_str("</main></body></html>\n");
    out
}

fn outcome_badge(o: Outcome) -> String {
    format!(
        "<span class=\"outcome {0}\">{1} {0}</span>",
        o.word(),
        o.symbol()
    )
}

fn opt_dur(d: Option<f64>) -> String {
    d.map_or_else(|| "—".into(), human_duration)
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "—".into(), |v| human_duration(v as f64 / 1000.0))
}

/// The first page for several journals: a comparison table, then the
/// trend of each experiment that ran more than once.
fn comparison(out: &mut String, runs: &[Run]) {
    out.push_str(
        "<section><h2 id=\"comparison\">Runs compared</h2><div class=\"scroll\"><table>\
<caption>One row per journal, in the order given</caption><thead><tr><th scope=\"col\">#</th>\
<th scope=\"col\">Experiment</th><th scope=\"col\">Outcome</th><th scope=\"col\">Started</th>\
<th scope=\"col\">Duration</th><th scope=\"col\">Score</th><th scope=\"col\">Longest outage</th>\
<th scope=\"col\">Failed activities</th></tr></thead><tbody>",
    );
    for (i, r) in runs.iter().enumerate() {
        let failed = r.method.iter().filter(|i| i.failed()).count();
        let _ = write!(
            out,
            "<tr><td>{}</td><td><a href=\"#run-{i}\">{}</a></td><td>{} {}</td><td>{}</td><td>{}</td>\
<td>{}</td><td>{}</td><td>{failed}</td></tr>",
            i + 1,
            escape(&r.title),
            r.outcome.symbol(),
            r.outcome.word(),
            escape(&started(r)),
            opt_dur(r.duration),
            r.score.text(),
            ms(r.longest_outage_ms()),
        );
    }
    out.push_str("</tbody></table></div>");
    for (n, (title, group)) in groups(runs).into_iter().enumerate() {
        let _ = write!(
            out,
            "<h3>Trend: {}</h3><figure>{}<figcaption>Score of each of the {} runs of this \
experiment, oldest first.</figcaption></figure>",
            escape(title),
            svg::trend(title, &group, &format!("trend-{n}")),
            group.len()
        );
    }
    out.push_str("</section>");
}

/// Experiments that appear more than once, their runs oldest first.
pub fn groups(runs: &[Run]) -> Vec<(&str, Vec<&Run>)> {
    let mut by: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by.entry(r.title.as_str()).or_default().push(r);
    }
    by.into_iter()
        .filter(|(_, g)| g.len() > 1)
        .map(|(t, mut g)| {
            g.sort_by_key(|a| a.start);
            (t, g)
        })
        .collect()
}

fn started(r: &Run) -> String {
    r.start
        .map_or_else(|| r.start_text.clone(), |s| s.display())
}

fn ended(r: &Run) -> String {
    let text = r.end_text.clone().unwrap_or_default();
    crate::time::parse_time(&text).map_or(text, crate::time::Instant::display)
}

fn section(out: &mut String, run: &Run, i: usize, several: bool) {
    let _ = write!(
        out,
        "<section class=\"run\" id=\"run-{i}\" aria-labelledby=\"run-{i}-h\"><h2 id=\"run-{i}-h\">{}{}</h2>",
        if several {
            format!("{}. ", i + 1)
        } else {
            String::new()
        },
        escape(&run.title)
    );
    summary(out, run);
    pending(out, run);
    score(out, run);
    hypothesis(out, run);
    let _ = write!(
        out,
        "<h3>Timeline</h3><figure>{}<figcaption>Every activity against time from the start of \
the run; background activities in their own lanes. Hover a bar for its name and status.\
</figcaption></figure>",
        svg::timeline(run, &format!("tl-{i}"))
    );
    monitors(out, run, i);
    series(out, run, i);
    activities(out, "Method", &run.method);
    not_reached(out, run);
    activities(out, "Rollbacks", &run.rollbacks);
    if run.rollbacks.is_empty() {
        out.push_str("<p>No rollback was played.</p>");
    }
    errors(out, run);
    appendix(out, run);
    out.push_str("</section>");
}

fn summary(out: &mut String, run: &Run) {
    let _ = write!(
        out,
        "<p>{} <strong>{}</strong></p>",
        outcome_badge(run.outcome),
        run.outcome.meaning()
    );
    if let Some(d) = &run.description {
        let _ = write!(out, "<p>{}</p>", escape(d));
    }
    out.push_str("<table class=\"meta\"><caption>At a glance</caption><tbody>");
    let rows = [
        ("Outcome", run.outcome.word().to_owned()),
        ("Tags", run.tags.join(", ")),
        ("Started", started(run)),
        ("Ended", ended(run)),
        ("Duration", opt_dur(run.duration)),
        ("Executed from", run.node.clone().unwrap_or_default()),
        ("Platform", run.platform.clone().unwrap_or_default()),
        ("Written by", run.writer.clone()),
        ("Run id", run.run_id.clone().unwrap_or_default()),
        ("Signals received", run.signals.join(", ")),
        ("Journal", run.source.clone()),
    ];
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{k}</th><td>{}</td></tr>",
            escape(v)
        );
    }
    out.push_str("</tbody></table>");
}

/// The command that applies undo records a run left pending.
pub fn recover_command(run: &Run) -> String {
    match &run.ledger {
        Some(l) => format!("squall recover --ledger {l}"),
        None => "squall recover".into(),
    }
}

fn pending(out: &mut String, run: &Run) {
    if run.pending_undo.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<div class=\"warn\" role=\"alert\"><h3>⚠ Warning: {} change(s) were not undone</h3>\
<p>The run ended with undo records still pending. The system may still carry the injected \
faults. Apply them with:</p><pre><code>{}</code></pre><ul>",
        run.pending_undo.len(),
        escape(&recover_command(run))
    );
    for u in &run.pending_undo {
        let _ = write!(out, "<li><code>{}</code></li>", escape(u));
    }
    out.push_str("</ul></div>");
}

fn score(out: &mut String, run: &Run) {
    let _ = write!(
        out,
        "<h3>Resilience score</h3><p class=\"score\">{}</p><p><small>{}</small></p>",
        run.score.text(),
        escape(FORMULA)
    );
    if run.score.parts.is_empty() {
        out.push_str("<p>The journal measured nothing the score uses.</p>");
        return;
    }
    out.push_str(
        "<table><caption>Inputs of the score</caption><thead><tr><th scope=\"col\">Part</th>\
<th scope=\"col\">Weight</th><th scope=\"col\">Ratio</th><th scope=\"col\">From</th></tr></thead><tbody>",
    );
    for p in &run.score.parts {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
            p.name,
            p.weight,
            p.ratio,
            escape(&p.detail)
        );
    }
    out.push_str("</tbody></table>");
}

fn hypothesis(out: &mut String, run: &Run) {
    out.push_str("<h3>Steady-state hypothesis</h3>");
    if let Some(t) = &run.hypothesis_title {
        let _ = write!(out, "<p>{}</p>", escape(t));
    }
    let checks = run.checks();
    if checks.is_empty() {
        out.push_str("<p>No steady-state hypothesis was checked.</p>");
        return;
    }
    for (n, (phase, check)) in checks.iter().enumerate() {
        check_table(out, phase, n, check);
    }
}

fn met_word(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "<span class=\"good\">✔ met</span>",
        Some(false) => "<span class=\"bad\">✖ not met</span>",
        None => "unknown",
    }
}

fn check_table(out: &mut String, phase: &str, n: usize, check: &Check) {
    let _ = write!(
        out,
        "<div class=\"scroll\"><table><caption>{phase} the method{}: {}</caption><thead><tr>\
<th scope=\"col\">Probe</th><th scope=\"col\">Tolerance</th><th scope=\"col\">Result</th>\
</tr></thead><tbody>",
        if phase == "during" {
            format!(" (check {n})")
        } else {
            String::new()
        },
        met_word(check.met)
    );
    for p in &check.probes {
        let tol = p.tolerance.as_ref().map(show).unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&p.name),
            escape(&tol),
            result(p)
        );
    }
    out.push_str("</tbody></table></div>");
}

fn result(i: &Item) -> String {
    let word = i.result();
    if i.failed() {
        format!("<span class=\"bad\">✖ {word}</span>")
    } else if word == "interrupted" {
        format!("■ {word}")
    } else {
        format!("<span class=\"good\">✔ {word}</span>")
    }
}

fn monitors(out: &mut String, run: &Run, i: usize) {
    for (n, m) in run.monitors.iter().enumerate() {
        let _ = write!(
            out,
            "<h3 id=\"av-{i}-{n}-h\">Availability: {}</h3><figure>{}<figcaption>Requests answered and failed over the \
monitor's window; outages framed and labelled.</figcaption></figure><table><caption>What the \
monitor measured</caption><tbody><tr><th scope=\"row\">Availability</th><td>{:.2}% ({} of {} \
requests failed)</td></tr><tr><th scope=\"row\">Outages</th><td>{}</td></tr><tr><th scope=\"row\">\
Longest outage</th><td>{}</td></tr><tr><th scope=\"row\">Time to recovery</th><td>{}</td></tr>\
</tbody></table>",
            escape(&m.name),
            svg::availability(m, &format!("av-{i}-{n}")),
            m.availability,
            m.failures,
            m.requests,
            m.outages.len(),
            ms(Some(m.longest_ms)),
            ms(m.recovery_ms),
        );
    }
}

fn series(out: &mut String, run: &Run, i: usize) {
    for (n, s) in run.series.iter().enumerate() {
        let (lo, hi) = s.range();
        let _ = write!(
            out,
            "<h3>Metrics: {}</h3><figure>{}<figcaption>{} series from {lo} to {hi}{}.</figcaption></figure>",
            escape(&s.name),
            svg::lines(s, &format!("ts-{i}-{n}")),
            s.lines.len(),
            if s.lines.len() > 4 {
                "; the first 4 are drawn"
            } else {
                ""
            }
        );
    }
}

fn activities(out: &mut String, heading: &str, items: &[Item]) {
    let _ = write!(out, "<h3>{heading}</h3>");
    if items.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<div class=\"scroll\"><table><caption>{heading}: {} activities</caption><thead><tr>\
<th scope=\"col\">Type</th><th scope=\"col\">Name</th><th scope=\"col\">Provider</th>\
<th scope=\"col\">Background</th><th scope=\"col\">Duration</th><th scope=\"col\">Result</th>\
</tr></thead><tbody>",
        items.len()
    );
    for i in items {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&i.kind),
            escape(&i.name),
            escape(&i.provider),
            if i.background { "yes" } else { "no" },
            opt_dur(i.duration),
            result(i)
        );
    }
    out.push_str("</tbody></table></div>");
}

fn not_reached(out: &mut String, run: &Run) {
    if run.not_reached.is_empty() {
        return;
    }
    out.push_str("<p>Not reached (the run stopped first):</p><ul>");
    for (kind, name) in &run.not_reached {
        let _ = write!(out, "<li>{} {}</li>", escape(kind), escape(name));
    }
    out.push_str("</ul>");
}

fn errors(out: &mut String, run: &Run) {
    let failed: Vec<&Item> = all_items(run).filter(|i| i.error.is_some()).collect();
    if failed.is_empty() {
        return;
    }
    out.push_str("<h3>Errors</h3>");
    for i in failed {
        let _ = write!(
            out,
            "<h4>{} {}</h4><pre>{}</pre>",
            escape(&i.kind),
            escape(&i.name),
            escape(i.error.as_deref().unwrap_or_default())
        );
    }
}

/// Every record of a run: hypothesis probes, method, rollbacks.
pub fn all_items(run: &Run) -> impl Iterator<Item = &Item> {
    run.checks()
        .into_iter()
        .flat_map(|(_, c)| c.probes.iter())
        .chain(run.method.iter())
        .chain(run.rollbacks.iter())
}

fn appendix(out: &mut String, run: &Run) {
    out.push_str("<h3>Appendix: outputs</h3>");
    for i in all_items(run) {
        let body = serde_json::to_string_pretty(&i.output).unwrap_or_default();
        let _ = write!(
            out,
            "<details><summary>{} {} — {}</summary><pre>{}</pre></details>",
            escape(&i.kind),
            escape(&i.name),
            i.result(),
            escape(&body)
        );
    }
}
