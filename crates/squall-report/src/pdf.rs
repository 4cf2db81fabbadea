//! The PDF report, made here with `pdf-writer` (typst's low-level PDF
//! writer): no LaTeX, pandoc or browser at run time. Text uses the PDF
//! base-14 fonts (Helvetica, Courier), which every reader has, so nothing
//! is embedded and text stays extractable; the layout is a simple flow of
//! wrapped lines with page breaks, and the timeline and availability charts
//! are drawn as vector rectangles.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::html::{all_items, recover_command};
use crate::model::{Item, Outcome, Run};
use crate::score::FORMULA;
use crate::svg::{Mark, lanes};
use crate::time::human_duration;

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Lines of one output kept in the appendix; the journal has the rest.
const OUTPUT_LINES: usize = 40;

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Self::Regular => Name(b"F1"),
            Self::Bold => Name(b"F2"),
            Self::Mono => Name(b"F3"),
        }
    }

    /// Average glyph width as a fraction of the size (Courier is exact).
    fn width(self) -> f32 {
        match self {
            Self::Regular => 0.5,
            Self::Bold => 0.55,
            Self::Mono => 0.6,
        }
    }
}

/// Pages being laid out, top to bottom.
struct Doc {
    pages: Vec<Content>,
    page: Content,
    y: f32,
}

impl Doc {
    fn new() -> Self {
        Self {
            pages: Vec::new(),
            page: Content::new(),
            y: PAGE_H - MARGIN,
        }
    }

    fn new_page(&mut self) {
        let done = std::mem::replace(&mut self.page, Content::new());
        self.pages.push(done);
        self.y = PAGE_H - MARGIN;
    }

    /// Makes room for `h` points, breaking the page if needed.
    fn room(&mut self, h: f32) {
        if self.y - h < MARGIN {
            self.new_page();
        }
    }

    fn line(&mut self, text: &str, font: Font, size: f32, x: f32) {
        let lead = size * 1.35;
        self.room(lead);
        self.y -= lead;
        self.page
            .begin_text()
            .set_font(font.name(), size)
            .next_line(MARGIN + x, self.y)
            .show(Str(&encode(text)))
            .end_text();
    }

    /// Wrapped text, `indent` points from the margin.
    fn text(&mut self, text: &str, font: Font, size: f32, indent: f32) {
        let max = ((TEXT_W - indent) / (size * font.width())).max(10.0) as usize;
        for para in text.lines() {
            for l in wrap(para, max) {
                self.line(&l, font, size, indent);
            }
        }
    }

    fn heading(&mut self, text: &str, size: f32) {
        self.room(size * 4.0);
        self.y -= size * 0.6;
        self.text(text, Font::Bold, size, 0.0);
    }

    fn gap(&mut self, h: f32) {
        self.y -= h;
    }

    fn fill(&mut self, x: f32, y: f32, w: f32, h: f32, rgb: (f32, f32, f32)) {
        self.page
            .set_fill_rgb(rgb.0, rgb.1, rgb.2)
            .rect(MARGIN + x, y, w, h)
            .fill_nonzero()
            .set_fill_rgb(0.0, 0.0, 0.0);
    }
}

/// Text in WinAnsiEncoding; symbols the base fonts lack become ASCII.
fn encode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' '..='~' => out.push(c as u8),
            '\u{A0}'..='\u{FF}' => out.push(c as u32 as u8),
            '—' => out.push(0x97),
            '–' => out.push(0x96),
            '•' => out.push(0x95),
            '…' => out.push(0x85),
            '‘' | '’' => out.push(b'\''),
            '“' | '”' => out.push(b'"'),
            '\t' => out.push(b' '),
            'Σ' => out.extend_from_slice(b"sum"),
            '✔' => out.push(b'+'),
            '✖' => out.push(b'x'),
            '▲' | '⚠' => out.push(b'!'),
            '■' => out.push(b'#'),
            _ => out.push(b'?'),
        }
    }
    out
}

/// Greedy word wrap at `max` characters; long words are cut. Leading
/// spaces (indented JSON) are kept on every line of the paragraph.
fn wrap(text: &str, max: usize) -> Vec<String> {
    let body = text.trim_start_matches(' ');
    let indent = " ".repeat((text.len() - body.len()).min(max / 2));
    let width = max - indent.len();
    wrap_words(body, width)
        .into_iter()
        .map(|l| format!("{indent}{l}"))
        .collect()
}

fn wrap_words(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let mut word = word.to_owned();
        while word.chars().count() > max {
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            let cut: String = word.chars().take(max).collect();
            word = word.chars().skip(max).collect();
            lines.push(cut);
        }
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > max {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    lines.push(cur);
    lines
}

fn colour(o: Outcome) -> (f32, f32, f32) {
    match o {
        Outcome::Completed => (0.18, 0.49, 0.2),
        Outcome::Deviated => (0.9, 0.32, 0.0),
        Outcome::Failed | Outcome::Aborted => (0.78, 0.16, 0.16),
        Outcome::Interrupted => (0.38, 0.38, 0.38),
        Outcome::Unknown => (0.27, 0.35, 0.39),
    }
}

fn mark_colour(m: Mark) -> (f32, f32, f32) {
    match m {
        Mark::Ok => (0.18, 0.49, 0.2),
        Mark::Failed => (0.78, 0.16, 0.16),
        Mark::NotMet => (0.94, 0.42, 0.0),
        Mark::Interrupted => (0.62, 0.62, 0.62),
        Mark::Pause => (0.85, 0.85, 0.85),
    }
}

/// The whole PDF.
pub fn render(runs: &[Run], title: &str, generated: &str) -> Vec<u8> {
    let mut doc = Doc::new();
    doc.text(title, Font::Bold, 20.0, 0.0);
    doc.text(
        &format!(
            "Generated {generated} by squall from {} journal(s).",
            runs.len()
        ),
        Font::Regular,
        10.0,
        0.0,
    );
    if runs.len() > 1 {
        doc.heading("Runs compared", 15.0);
        for (i, r) in runs.iter().enumerate() {
            doc.text(
                &format!(
                    "{}. {} — {} — {} — score {}",
                    i + 1,
                    r.title,
                    r.outcome.word(),
                    r.duration.map_or_else(|| "—".into(), human_duration),
                    r.score.text()
                ),
                Font::Regular,
                10.0,
                0.0,
            );
        }
    }
    for (i, run) in runs.iter().enumerate() {
        if i > 0 || runs.len() > 1 {
            doc.new_page();
        }
        section(&mut doc, run);
    }
    finish(doc, title)
}

fn section(doc: &mut Doc, run: &Run) {
    doc.heading(&run.title, 16.0);
    doc.room(34.0);
    doc.gap(30.0);
    doc.fill(0.0, doc.y, 150.0, 22.0, colour(run.outcome));
    doc.page
        .begin_text()
        .set_fill_rgb(1.0, 1.0, 1.0)
        .set_font(Font::Bold.name(), 13.0)
        .next_line(MARGIN + 8.0, doc.y + 6.0)
        .show(Str(&encode(&run.outcome.word().to_uppercase())))
        .end_text()
        .set_fill_rgb(0.0, 0.0, 0.0);
    doc.text(run.outcome.meaning(), Font::Regular, 10.0, 0.0);
    if let Some(d) = &run.description {
        doc.text(d.trim(), Font::Regular, 10.0, 0.0);
    }
    summary(doc, run);
    pending(doc, run);
    doc.heading(&format!("Resilience score: {}", run.score.text()), 13.0);
    doc.text(FORMULA, Font::Regular, 8.0, 0.0);
    for p in &run.score.parts {
        let line = format!(
            "{} (weight {}): {:.3} — {}",
            p.name, p.weight, p.ratio, p.detail
        );
        doc.text(&line, Font::Regular, 10.0, 10.0);
    }
    hypothesis(doc, run);
    timeline(doc, run);
    monitors(doc, run);
    for s in &run.series {
        doc.heading(&format!("Metrics: {}", s.name), 13.0);
        for l in &s.lines {
            let last = l.points.last().map_or(0.0, |p| p.1);
            let line = format!("{}: {} points, last {last}", l.label, l.points.len());
            doc.text(&line, Font::Regular, 10.0, 10.0);
        }
    }
    list(doc, "Method", &run.method);
    for (kind, name) in &run.not_reached {
        doc.text(
            &format!("not reached: {kind} {name}"),
            Font::Regular,
            10.0,
            10.0,
        );
    }
    list(doc, "Rollbacks", &run.rollbacks);
    if run.rollbacks.is_empty() {
        doc.text("No rollback was played.", Font::Regular, 10.0, 0.0);
    }
    errors(doc, run);
    appendix(doc, run);
}

fn summary(doc: &mut Doc, run: &Run) {
    let rows = [
        ("Tags", run.tags.join(", ")),
        ("Started", run.start_text.clone()),
        ("Ended", run.end_text.clone().unwrap_or_default()),
        (
            "Duration",
            run.duration.map(human_duration).unwrap_or_default(),
        ),
        ("Executed from", run.node.clone().unwrap_or_default()),
        ("Platform", run.platform.clone().unwrap_or_default()),
        ("Written by", run.writer.clone()),
        ("Run id", run.run_id.clone().unwrap_or_default()),
        ("Signals received", run.signals.join(", ")),
    ];
    doc.gap(4.0);
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        doc.text(&format!("{k}: {v}"), Font::Regular, 10.0, 0.0);
    }
}

fn pending(doc: &mut Doc, run: &Run) {
    if run.pending_undo.is_empty() {
        return;
    }
    doc.heading(
        &format!(
            "WARNING: {} change(s) were not undone",
            run.pending_undo.len()
        ),
        13.0,
    );
    doc.fill(-6.0, doc.y, 3.0, 16.0, colour(Outcome::Failed));
    doc.text(
        "The run ended with undo records still pending; the system may still carry the \
injected faults. Apply them with:",
        Font::Regular,
        10.0,
        0.0,
    );
    doc.text(&recover_command(run), Font::Mono, 10.0, 10.0);
    for u in &run.pending_undo {
        doc.text(&format!("• {u}"), Font::Regular, 9.0, 10.0);
    }
}

fn hypothesis(doc: &mut Doc, run: &Run) {
    doc.heading("Steady-state hypothesis", 13.0);
    let checks = run.checks();
    if checks.is_empty() {
        doc.text(
            "No steady-state hypothesis was checked.",
            Font::Regular,
            10.0,
            0.0,
        );
    }
    for (phase, check) in checks {
        let met = match check.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "unknown",
        };
        doc.text(&format!("{phase} the method: {met}"), Font::Bold, 10.0, 0.0);
        for p in &check.probes {
            let tol = p.tolerance.as_ref().map(crate::show).unwrap_or_default();
            doc.text(
                &format!("{} — tolerance {tol} — {}", p.name, p.result()),
                Font::Regular,
                10.0,
                10.0,
            );
        }
    }
}

fn timeline(doc: &mut Doc, run: &Run) {
    let lanes = lanes(run);
    let total = lanes
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.end))
        .fold(run.duration.unwrap_or(0.0), f64::max)
        .max(0.001);
    doc.heading("Timeline", 13.0);
    let lane_h = 16.0;
    doc.room(lane_h * lanes.len() as f32 + 20.0);
    let label_w = 90.0;
    let plot = TEXT_W - label_w;
    for (label, bars) in &lanes {
        doc.y -= lane_h;
        doc.page
            .begin_text()
            .set_font(Font::Regular.name(), 8.0)
            .next_line(MARGIN, doc.y + 4.0)
            .show(Str(&encode(label)))
            .end_text();
        for b in bars {
            let x = label_w + plot * (b.start.max(0.0) / total) as f32;
            let w = (plot * ((b.end - b.start.max(0.0)) / total) as f32).max(1.5);
            doc.fill(x, doc.y + 2.0, w, lane_h - 4.0, mark_colour(b.mark));
        }
    }
    doc.text(
        &format!(
            "0 s to {}. Green succeeded, red failed, orange tolerance not met, grey \
interrupted, light grey pauses; each is listed below.",
            human_duration(total)
        ),
        Font::Regular,
        8.0,
        label_w,
    );
}

fn monitors(doc: &mut Doc, run: &Run) {
    for m in &run.monitors {
        doc.heading(&format!("Availability: {}", m.name), 13.0);
        let total = m.window.max(0.001);
        doc.room(24.0);
        doc.y -= 18.0;
        for (s, e, ok) in &m.spans {
            let x = (TEXT_W * (*s / total) as f32).min(TEXT_W);
            let w = (TEXT_W * ((e - s) / total) as f32).max(0.5);
            let c = if *ok { Mark::Ok } else { Mark::Failed };
            doc.fill(x, doc.y, w, 14.0, mark_colour(c));
        }
        doc.text(
            &format!(
                "{:.2}% available ({} of {} requests failed); {} outage(s), the longest {}; \
time to recovery {}.",
                m.availability,
                m.failures,
                m.requests,
                m.outages.len(),
                human_duration(m.longest_ms as f64 / 1000.0),
                m.recovery_ms.map_or_else(
                    || "not measured".into(),
                    |r| human_duration(r as f64 / 1000.0)
                )
            ),
            Font::Regular,
            10.0,
            0.0,
        );
    }
}

fn list(doc: &mut Doc, heading: &str, items: &[Item]) {
    doc.heading(heading, 13.0);
    for i in items {
        let line = format!(
            "{} {} — {} — {}{}",
            i.kind,
            i.name,
            i.result(),
            i.duration.map(human_duration).unwrap_or_default(),
            if i.background { " (background)" } else { "" }
        );
        doc.text(&line, Font::Regular, 10.0, 10.0);
    }
}

fn errors(doc: &mut Doc, run: &Run) {
    let failed: Vec<&Item> = all_items(run).filter(|i| i.error.is_some()).collect();
    if failed.is_empty() {
        return;
    }
    doc.heading("Errors", 13.0);
    for i in failed {
        doc.text(&format!("{} {}", i.kind, i.name), Font::Bold, 10.0, 0.0);
        doc.text(
            i.error.as_deref().unwrap_or_default(),
            Font::Mono,
            8.0,
            10.0,
        );
    }
}

fn appendix(doc: &mut Doc, run: &Run) {
    doc.heading("Appendix: outputs", 13.0);
    for i in all_items(run) {
        doc.text(&format!("{} {}", i.kind, i.name), Font::Bold, 9.0, 0.0);
        let body = serde_json::to_string_pretty(&i.output).unwrap_or_default();
        let lines: Vec<&str> = body.lines().collect();
        let kept = lines.len().min(OUTPUT_LINES);
        doc.text(&lines[..kept].join("\n"), Font::Mono, 7.0, 10.0);
        if lines.len() > kept {
            doc.text(
                &format!("… {} more lines in the journal", lines.len() - kept),
                Font::Regular,
                8.0,
                10.0,
            );
        }
    }
}

/// Writes the pages, fonts and document information.
fn finish(mut doc: Doc, title: &str) -> Vec<u8> {
    doc.new_page();
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let fonts = [Ref::new(4), Ref::new(5), Ref::new(6)];
    let first_page = 7;
    let page_ids: Vec<Ref> = (0..doc.pages.len())
        .map(|i| Ref::new(first_page + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(page_ids.len() as i32);
    pdf.document_info(info)
        .title(TextStr(title))
        .creator(TextStr("squall report"))
        .producer(TextStr("squall (pdf-writer)"));
    for (id, base) in fonts
        .iter()
        .zip([&b"Helvetica"[..], &b"Helvetica-Bold"[..], &b"Courier"[..]])
    {
        pdf.type1_font(*id)
            .base_font(Name(base))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (content, id) in doc.pages.into_iter().zip(&page_ids) {
        let content_id = Ref::new(id.get() + 1);
        let mut page = pdf.page(*id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(content_id);
        let mut res = page.resources();
        let mut f = res.fonts();
        for (font, fid) in [Font::Regular, Font::Bold, Font::Mono].iter().zip(fonts) {
            f.pair(font.name(), fid);
        }
        f.finish();
        res.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_and_cuts_long_ones() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 3), vec![""]);
        assert_eq!(wrap("  \"a\": 1", 20), vec!["  \"a\": 1"]);
        assert_eq!(wrap("  aaa bbb", 7), vec!["  aaa", "  bbb"]);
    }

    #[test]
    fn encodes_to_win_ansi() {
        assert_eq!(encode("a—é✔✖?"), vec![b'a', 0x97, 0xE9, b'+', b'x', b'?']);
        assert_eq!(encode("Σ"), b"sum".to_vec());
    }
}
