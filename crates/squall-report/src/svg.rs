//! Charts as inline SVG, written by hand: three chart kinds do not justify
//! a plotting crate, and hand-written SVG keeps the HTML file small and
//! free of scripts. Every chart carries a `<title>` and `<desc>` (its text
//! alternative), and marks status with a pattern and a word as well as a
//! colour, so colour is never the only signal.

use std::fmt::Write;

use crate::escape;
use crate::model::{Item, Run};
use crate::monitor::Monitor;
use crate::time::human_duration;

const WIDTH: f64 = 800.0;
const LABEL: f64 = 130.0;
const PLOT: f64 = WIDTH - LABEL - 20.0;
const LANE: f64 = 26.0;

/// How a bar is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Ok,
    Failed,
    NotMet,
    Interrupted,
    Pause,
}

impl Mark {
    fn of(item: &Item) -> Self {
        match item.result() {
            "error" => Self::Failed,
            "not met" => Self::NotMet,
            "interrupted" => Self::Interrupted,
            _ => Self::Ok,
        }
    }

    fn fill(self, id: &str) -> String {
        match self {
            Self::Ok => "#2e7d32".into(),
            Self::Failed => format!("url(#{id}-fail)"),
            Self::NotMet => format!("url(#{id}-notmet)"),
            Self::Interrupted => "#9e9e9e".into(),
            Self::Pause => format!("url(#{id}-pause)"),
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "succeeded",
            Self::Failed => "failed",
            Self::NotMet => "tolerance not met",
            Self::Interrupted => "interrupted",
            Self::Pause => "pause",
        }
    }
}

/// One bar of the timeline, in seconds from the run's start.
#[derive(Clone, Debug)]
pub struct Bar {
    pub start: f64,
    pub end: f64,
    pub mark: Mark,
    pub label: String,
}

/// The timeline's lanes: hypothesis, method, one per overlapping
/// background activity, rollbacks.
pub fn lanes(run: &Run) -> Vec<(String, Vec<Bar>)> {
    let mut hyp = Vec::new();
    for (phase, check) in run.checks() {
        for p in &check.probes {
            push(&mut hyp, p, &format!("hypothesis {phase}: "));
        }
    }
    let mut method = Vec::new();
    let mut background: Vec<Vec<Bar>> = Vec::new();
    for item in &run.method {
        if !item.background {
            push(&mut method, item, "");
            continue;
        }
        let mut bars = Vec::new();
        push(&mut bars, item, "background: ");
        let first = bars.first().map_or(0.0, |b| b.start);
        // First lane whose last bar ended before this one starts.
        match background
            .iter_mut()
            .find(|l| l.last().is_none_or(|b| b.end <= first))
        {
            Some(lane) => lane.extend(bars),
            None => background.push(bars),
        }
    }
    let mut rollbacks = Vec::new();
    for r in &run.rollbacks {
        push(&mut rollbacks, r, "rollback: ");
    }
    let mut out = vec![
        ("Hypothesis".to_owned(), hyp),
        ("Method".to_owned(), method),
    ];
    for (i, lane) in background.into_iter().enumerate() {
        out.push((format!("Background {}", i + 1), lane));
    }
    out.push(("Rollbacks".to_owned(), rollbacks));
    out
}

/// An activity's bar and its pauses, when its times are known.
fn push(bars: &mut Vec<Bar>, item: &Item, prefix: &str) {
    let (Some(start), Some(end)) = (item.start, item.end) else {
        return;
    };
    if let Some(p) = item.pause_before.filter(|p| *p > 0.0) {
        bars.push(pause(start - p, start, &item.name, "before"));
    }
    let mark = Mark::of(item);
    bars.push(Bar {
        start,
        end: end.max(start),
        mark,
        label: format!(
            "{prefix}{} ({}, {})",
            item.name,
            mark.word(),
            dur(end - start)
        ),
    });
    if let Some(p) = item.pause_after.filter(|p| *p > 0.0) {
        bars.push(pause(end, end + p, &item.name, "after"));
    }
}

fn pause(start: f64, end: f64, name: &str, when: &str) -> Bar {
    Bar {
        start: start.max(0.0),
        end,
        mark: Mark::Pause,
        label: format!("pause {when} {name} ({})", dur(end - start)),
    }
}

fn dur(secs: f64) -> String {
    human_duration(secs.max(0.0))
}

/// The run's length for the time axis.
fn span(lanes: &[(String, Vec<Bar>)], run: &Run) -> f64 {
    let last = lanes
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.end))
        .fold(0.0_f64, f64::max);
    run.duration.unwrap_or(0.0).max(last).max(0.001)
}

/// Pattern definitions shared by a chart's bars.
fn defs(id: &str) -> String {
    format!(
        "<defs><pattern id=\"{id}-fail\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\">\
<rect width=\"6\" height=\"6\" fill=\"#c62828\"/><path d=\"M0 0L6 6M6 0L0 6\" stroke=\"#fff\" stroke-width=\"1\"/></pattern>\
<pattern id=\"{id}-notmet\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"6\" height=\"6\" fill=\"#ef6c00\"/><path d=\"M0 0V6\" stroke=\"#fff\" stroke-width=\"2\"/></pattern>\
<pattern id=\"{id}-pause\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<rect width=\"6\" height=\"6\" fill=\"#e0e0e0\"/><path d=\"M0 0V6\" stroke=\"#9e9e9e\" stroke-width=\"1\"/></pattern></defs>"
    )
}

fn open(id: &str, height: f64, title: &str, desc: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
aria-labelledby=\"{id}-t {id}-d\" class=\"chart\" font-family=\"sans-serif\" font-size=\"12\">\
<title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        escape(title),
        escape(desc)
    )
}

/// Ticks along a time axis of `total` seconds at height `y`.
fn axis(out: &mut String, total: f64, y: f64) {
    let _ = write!(
        out,
        "<line x1=\"{LABEL}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#555\"/>",
        LABEL + PLOT
    );
    for i in 0..=5 {
        let t = total * f64::from(i) / 5.0;
        let x = LABEL + PLOT * f64::from(i) / 5.0;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#555\"/>\
<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            y + 4.0,
            y + 16.0,
            escape(&axis_label(t))
        );
    }
}

fn axis_label(t: f64) -> String {
    if t < 10.0 {
        format!("{t:.1} s")
    } else {
        format!("{t:.0} s")
    }
}

/// The run's timeline as a Gantt chart.
pub fn timeline(run: &Run, id: &str) -> String {
    let lanes = lanes(run);
    let total = span(&lanes, run);
    let height = LANE * lanes.len() as f64 + 60.0;
    let bars: usize = lanes.iter().map(|(_, b)| b.len()).sum();
    let desc = format!(
        "Timeline of the run over {}: {bars} bars in {} lanes ({}). Each bar's status is \
also written in its tooltip and in the tables below.",
        dur(total),
        lanes.len(),
        lanes
            .iter()
            .map(|(l, b)| format!("{l}: {}", b.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut out = open(id, height, &format!("Timeline of {}", run.title), &desc);
    out.push_str(&defs(id));
    for (i, (label, bars)) in lanes.iter().enumerate() {
        let y = 6.0 + LANE * i as f64;
        let _ = write!(
            out,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + 16.0,
            escape(label)
        );
        for b in bars {
            let x = LABEL + PLOT * (b.start.max(0.0) / total);
            let w = (PLOT * ((b.end - b.start.max(0.0)) / total)).max(2.0);
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\" \
stroke=\"#333\" stroke-width=\"0.5\"><title>{}</title></rect>",
                LANE - 6.0,
                b.mark.fill(id),
                escape(&b.label)
            );
        }
    }
    axis(&mut out, total, LANE * lanes.len() as f64 + 10.0);
    legend(&mut out, id, height - 12.0);
    out.push_str("</svg>");
    out
}

fn legend(out: &mut String, id: &str, y: f64) {
    let marks = [
        Mark::Ok,
        Mark::Failed,
        Mark::NotMet,
        Mark::Interrupted,
        Mark::Pause,
    ];
    let mut x = LABEL;
    for m in marks {
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\" stroke=\"#333\" \
stroke-width=\"0.5\"/><text x=\"{}\" y=\"{y}\">{}</text>",
            y - 10.0,
            m.fill(id),
            x + 16.0,
            m.word()
        );
        x += 24.0 + 7.0 * m.word().len() as f64;
    }
}

/// A monitor's measurements: answered and failed samples over time, the
/// outages marked and labelled.
pub fn availability(m: &Monitor, id: &str) -> String {
    let total = m.window.max(0.001);
    let desc = format!(
        "Availability of {} over {}: {:.2}% of {} requests answered; {} outage(s), the longest \
{}; recovery after the last action: {}.",
        m.name,
        dur(total),
        m.availability,
        m.requests,
        m.outages.len(),
        dur(m.longest_ms as f64 / 1000.0),
        m.recovery_ms
            .map_or_else(|| "not measured".into(), |r| dur(r as f64 / 1000.0))
    );
    let mut out = open(id, 150.0, &format!("Availability: {}", m.name), &desc);
    out.push_str(&defs(id));
    out.push_str("<text x=\"4\" y=\"42\">answered</text><text x=\"4\" y=\"82\">failed</text>");
    for (start, end, ok) in &m.spans {
        let x = LABEL + PLOT * (start / total);
        let w = (PLOT * ((end - start) / total)).max(1.0);
        let (y, fill, word) = if *ok {
            (26.0, "#2e7d32".to_owned(), "answered")
        } else {
            (66.0, Mark::Failed.fill(id), "failed")
        };
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"24\" fill=\"{fill}\">\
<title>{word} from {start:.1} s to {end:.1} s</title></rect>"
        );
    }
    for (i, o) in m.outages.iter().enumerate() {
        let x = LABEL + PLOT * (o.start / total);
        let w = (PLOT * (o.duration / total)).max(1.0);
        let label = format!(
            "outage {}: {}{}",
            i + 1,
            dur(o.duration),
            if o.ongoing {
                ", ongoing at the end"
            } else {
                ""
            }
        );
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"20\" width=\"{w:.1}\" height=\"76\" fill=\"none\" \
stroke=\"#b71c1c\" stroke-dasharray=\"4 2\"/><text x=\"{x:.1}\" y=\"14\" fill=\"#b71c1c\">{}</text>",
            escape(&label)
        );
    }
    axis(&mut out, total, 110.0);
    out.push_str("</svg>");
    out
}

/// Scores of repeated runs of one experiment, oldest first.
pub fn trend(title: &str, runs: &[&Run], id: &str) -> String {
    let points: Vec<(usize, u32, String)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let when = r
                .start
                .map_or_else(|| r.start_text.clone(), |s| s.display());
            Some((i, r.score.value?, when))
        })
        .collect();
    let desc = format!(
        "Resilience score of {} runs of \"{title}\", oldest first: {}.",
        runs.len(),
        points
            .iter()
            .map(|(_, v, w)| format!("{v} on {w}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut out = open(id, 200.0, &format!("Score trend: {title}"), &desc);
    let x = |i: usize| LABEL + PLOT * (i as f64 + 0.5) / runs.len().max(1) as f64;
    let y = |v: u32| 160.0 - 1.4 * f64::from(v);
    for v in [0, 50, 100] {
        let _ = write!(
            out,
            "<line x1=\"{LABEL}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#ccc\"/>\
<text x=\"{2}\" y=\"{3}\" text-anchor=\"end\">{v}</text>",
            y(v),
            LABEL + PLOT,
            LABEL - 6.0,
            y(v) + 4.0
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|(i, v, _)| format!("{:.1},{:.1}", x(*i), y(*v)))
        .collect();
    let _ = write!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    for (i, v, when) in &points {
        let _ = write!(
            out,
            "<circle cx=\"{0:.1}\" cy=\"{1:.1}\" r=\"4\" fill=\"#1565c0\"><title>{2}: {v}</title></circle>\
<text x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\">{v}</text>\
<text x=\"{0:.1}\" y=\"190\" text-anchor=\"middle\" font-size=\"10\">run {4}</text>",
            x(*i),
            y(*v),
            escape(when),
            y(*v) - 8.0,
            i + 1
        );
    }
    out.push_str("</svg>");
    out
}

/// Colours for lines, told apart by dash pattern as well.
const LINES: [(&str, &str); 4] = [
    ("#1565c0", ""),
    ("#c62828", "6 3"),
    ("#2e7d32", "2 2"),
    ("#6a1b9a", "8 3 2 3"),
];

/// A time series chart: each line labelled in a legend with its dash.
pub fn lines(s: &crate::series::Series, id: &str) -> String {
    let (lo, hi) = s.range();
    let span = if hi > lo { hi - lo } else { 1.0 };
    let total = s
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let desc = format!(
        "{} series from {}, over {}: values from {lo} to {hi}. {}",
        s.lines.len(),
        s.name,
        dur(total),
        s.lines
            .iter()
            .map(|l| format!(
                "{}: {} points, last {}",
                l.label,
                l.points.len(),
                l.points.last().map_or(0.0, |p| p.1)
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let shown = s.lines.len().min(LINES.len());
    let height = 190.0 + 16.0 * shown as f64;
    let mut out = open(id, height, &format!("Metrics: {}", s.name), &desc);
    let y = |v: f64| 150.0 - 130.0 * (v - lo) / span;
    let _ = write!(
        out,
        "<text x=\"{0}\" y=\"24\" text-anchor=\"end\">{hi}</text><text x=\"{0}\" y=\"154\" \
text-anchor=\"end\">{lo}</text><line x1=\"{LABEL}\" y1=\"20\" x2=\"{LABEL}\" y2=\"150\" stroke=\"#555\"/>",
        LABEL - 6.0
    );
    for (n, l) in s.lines.iter().take(shown).enumerate() {
        let (colour, dash) = LINES[n];
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", LABEL + PLOT * t / total, y(*v)))
            .collect();
        let _ = write!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" \
stroke-dasharray=\"{dash}\"><title>{}</title></polyline>\
<line x1=\"{LABEL}\" y1=\"{2:.1}\" x2=\"{3}\" y2=\"{2:.1}\" stroke=\"{colour}\" stroke-width=\"2\" \
stroke-dasharray=\"{dash}\"/><text x=\"{4}\" y=\"{5:.1}\">{1}</text>",
            pts.join(" "),
            escape(&l.label),
            180.0 + 16.0 * n as f64,
            LABEL + 30.0,
            LABEL + 36.0,
            184.0 + 16.0 * n as f64,
        );
    }
    axis(&mut out, total, 150.0);
    out.push_str("</svg>");
    out
}
