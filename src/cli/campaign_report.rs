//! `kafsim run --report DIR` and `kafsim check --report DIR`: a small self-contained report of
//! a campaign (index.html, summary.md, results.json), written atomically through the reports
//! crate (a temporary sibling directory moved into place; a non-empty directory that is not a
//! previous report is refused).

use super::run::{CampaignJson, ViolationJson};
use kafsim_reports::{write_atomically, ReportError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown summary of one campaign.
pub fn markdown(doc: &CampaignJson) -> String {
    let mut md = format!("# kafsim run: {}\n\n", doc.scenario);
    let _ = writeln!(
        md,
        "{}, failed {}.\n",
        doc.describe_seeds(),
        doc.failed_seeds.len()
    );
    md.push_str("| kind | count |\n|---|---|\n");
    for (k, n) in &doc.kinds {
        let _ = writeln!(md, "| {k} | {n} |");
    }
    md.push_str(&seed_table_md(doc));
    md.push_str(&fault_mix_md(doc));
    if doc.violations.len() > MAX_VIOLATION_ROWS {
        let _ = writeln!(md, "\n{}:", shown_words(doc));
    }
    md.push_str("\n| seed | kind | partition | offset | value | at (ms) | detail |\n|---|---|---|---|---|---|---|\n");
    for v in shown_violations(&doc.violations) {
        let part = match (&v.topic, v.partition) {
            (Some(t), Some(p)) => format!("{t}/{p}"),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {part} | {} | {} | {:.3} | {} |",
            v.seed,
            v.kind,
            v.offset.map(|o| o.to_string()).unwrap_or_default(),
            v.value.map(|o| o.to_string()).unwrap_or_default(),
            v.at_ms,
            v.detail.replace('|', "\\|").replace('\n', "<br>")
        );
    }
    let s = &doc.stats;
    let _ = writeln!(
        md,
        "\nEvents {}, records produced {}, acknowledged {}, consumed {}; {:.1} simulated s in {:.2} wall s.",
        s.events, s.records_produced, s.records_acked, s.records_consumed, s.sim_seconds, s.wall_seconds
    );
    let _ = writeln!(md, "{}.", s.drain_line());
    md
}

/// A plain HTML page of the same content (no scripts, no external resources).
pub fn html(doc: &CampaignJson) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kafsim run</title>",
    );
    h.push_str("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}td.fail{color:#b00;font-weight:bold}td.pass{color:#070}</style></head><body>");
    let _ = write!(h, "<h1>kafsim run: {}</h1>", html_escape(&doc.scenario));
    let _ = write!(
        h,
        "<p>{}, failed {}.</p>",
        html_escape(&doc.describe_seeds()),
        doc.failed_seeds.len()
    );
    h.push_str("<h2>Failures by kind</h2>");
    if doc.kinds.is_empty() {
        h.push_str("<p>No failures.</p>");
    } else {
        h.push_str(&kinds_chart(&doc.kinds));
        h.push_str("<table><tr><th>kind</th><th>count</th></tr>");
        for (k, n) in &doc.kinds {
            let _ = write!(h, "<tr><td>{k}</td><td>{n}</td></tr>");
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Seeds</h2>");
    let clean = doc.seeds as usize - doc.seed_verdicts.len().min(doc.seeds as usize);
    let _ = write!(
        h,
        "<p>{clean} of {} seeds passed with no violation at all; the others:</p>",
        doc.seeds
    );
    h.push_str("<table><tr><th>seed</th><th>verdict</th><th>violations by kind</th><th>reproduce</th></tr>");
    for row in &doc.seed_verdicts {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            row.seed,
            row.verdict,
            row.verdict,
            html_escape(&kinds_phrase(&row.kinds)),
            html_escape(&row.repro)
        );
    }
    h.push_str("</table><h2>Fault mix</h2>");
    if doc.fault_mix.is_empty() {
        h.push_str("<p>No faults were injected.</p>");
    } else {
        let _ = write!(h, "<p>Faults applied over all {} seeds:</p>", doc.seeds);
        h.push_str("<table><tr><th>action</th><th>applied</th><th>per seed</th></tr>");
        for (action, n) in &doc.fault_mix {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{n}</td><td>{:.1}</td></tr>",
                html_escape(action),
                *n as f64 / doc.seeds.max(1) as f64
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Violations</h2>");
    if doc.violations.len() > MAX_VIOLATION_ROWS {
        let _ = write!(h, "<p>{}.</p>", shown_words(doc));
    }
    h.push_str("<table><tr><th>seed</th><th>kind</th><th>partition</th><th>offset</th><th>value</th><th>at (ms)</th><th>detail</th><th>reproduce</th></tr>");
    for v in shown_violations(&doc.violations) {
        let part = match (&v.topic, v.partition) {
            (Some(t), Some(p)) => format!("{t}/{p}"),
            _ => String::new(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td><code>{}</code></td></tr>",
            v.seed,
            v.kind,
            html_escape(&part),
            v.offset.map(|o| o.to_string()).unwrap_or_default(),
            v.value.map(|o| o.to_string()).unwrap_or_default(),
            v.at_ms,
            html_escape(&v.detail).replace('\n', "<br>"),
            html_escape(&v.repro)
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// Violation rows shown in the report (results.json has them all).
const MAX_VIOLATION_ROWS: usize = 200;

/// The violations the report's table shows, in the document's order: every seed's first
/// violation of each kind, then the others in order, up to [`MAX_VIOLATION_ROWS`]. The first
/// 200 in order were often one seed's thousand violations of one kind, which hid that other
/// seeds failed differently.
fn shown_violations(all: &[ViolationJson]) -> Vec<&ViolationJson> {
    if all.len() <= MAX_VIOLATION_ROWS {
        return all.iter().collect();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut shown = vec![false; all.len()];
    let mut count = 0;
    for (i, v) in all.iter().enumerate() {
        if count < MAX_VIOLATION_ROWS && seen.insert((v.seed, v.kind.as_str())) {
            shown[i] = true;
            count += 1;
        }
    }
    for flag in shown.iter_mut() {
        if count == MAX_VIOLATION_ROWS {
            break;
        }
        if !*flag {
            *flag = true;
            count += 1;
        }
    }
    all.iter()
        .zip(shown)
        .filter_map(|(v, s)| s.then_some(v))
        .collect()
}

/// The sentence above a cut table.
fn shown_words(doc: &CampaignJson) -> String {
    format!(
        "{MAX_VIOLATION_ROWS} of {} violations: each seed's first of each kind, then the others \
         in order (all are in results.json)",
        doc.violations.len()
    )
}

/// "lost-write x3, duplicate x1".
fn kinds_phrase(kinds: &BTreeMap<String, u64>) -> String {
    kinds
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seed_table_md(doc: &CampaignJson) -> String {
    let mut md = String::from("\n## Seeds\n\n");
    let clean = doc.seeds as usize - doc.seed_verdicts.len().min(doc.seeds as usize);
    let _ = writeln!(
        md,
        "{clean} of {} seeds passed with no violation at all; the others:\n",
        doc.seeds
    );
    md.push_str("| seed | verdict | violations by kind | reproduce |\n|---|---|---|---|\n");
    for row in &doc.seed_verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | `{}` |",
            row.seed,
            row.verdict,
            kinds_phrase(&row.kinds),
            row.repro
        );
    }
    md
}

fn fault_mix_md(doc: &CampaignJson) -> String {
    let mut md = String::from("\n## Fault mix\n\n");
    if doc.fault_mix.is_empty() {
        md.push_str("No faults were injected.\n");
        return md;
    }
    md.push_str("| action | applied | per seed |\n|---|---|---|\n");
    for (action, n) in &doc.fault_mix {
        let _ = writeln!(
            md,
            "| {action} | {n} | {:.1} |",
            *n as f64 / doc.seeds.max(1) as f64
        );
    }
    md
}

/// A horizontal bar chart of failures per kind, inline SVG (no scripts, no fonts fetched).
fn kinds_chart(kinds: &BTreeMap<String, u64>) -> String {
    const ROW: usize = 24;
    const LABEL: usize = 200;
    const BAR: f64 = 500.0;
    let max = kinds.values().copied().max().unwrap_or(1).max(1) as f64;
    let height = ROW * kinds.len() + 10;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" \
         role=\"img\" aria-label=\"failures per kind\" font-family=\"sans-serif\" font-size=\"13\">",
        LABEL as f64 + BAR + 80.0
    );
    for (i, (kind, n)) in kinds.iter().enumerate() {
        let y = i * ROW + 5;
        let width = (*n as f64 / max * BAR).max(1.0);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{width:.1}\" height=\"{}\" fill=\"#c0392b\"/>\
             <text x=\"{:.1}\" y=\"{}\">{n}</text>",
            LABEL - 8,
            y + ROW / 2 + 4,
            html_escape(kind),
            ROW - 6,
            LABEL as f64 + width + 6.0,
            y + ROW / 2 + 4,
        );
    }
    svg.push_str("</svg>");
    svg
}

pub fn write(dir: &Path, doc: &CampaignJson, json: &str) -> Result<(), ReportError> {
    let files = [
        ("index.html", html(doc)),
        ("summary.md", markdown(doc)),
        ("results.json", json.to_string()),
    ];
    write_atomically(dir, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(seed: u64, kind: &str, offset: u64) -> ViolationJson {
        ViolationJson {
            seed,
            kind: kind.to_string(),
            topic: Some("orders".into()),
            partition: Some(0),
            offset: Some(offset),
            value: None,
            at_ms: 0.0,
            detail: String::new(),
            repro: String::new(),
            node: None,
            event: None,
        }
    }

    /// 250 key-order violations of seed 2 come first; seed 3's lost write and seed 4's
    /// duplicate still get a row, and the table keeps the document's order.
    #[test]
    fn a_cut_table_shows_every_seeds_first_violation_of_each_kind() {
        let mut all: Vec<ViolationJson> = (0..250).map(|o| violation(2, "key-order", o)).collect();
        all.extend((0..60).map(|o| violation(3, "lost-write", o)));
        all.push(violation(4, "duplicate", 7));
        let shown = shown_violations(&all);
        assert_eq!(shown.len(), MAX_VIOLATION_ROWS);
        let first = |seed, kind: &str| {
            shown
                .iter()
                .position(|v| v.seed == seed && v.kind == kind)
                .unwrap_or_else(|| panic!("no row of seed {seed} {kind}"))
        };
        assert_eq!(first(3, "lost-write"), MAX_VIOLATION_ROWS - 2);
        assert_eq!(first(4, "duplicate"), MAX_VIOLATION_ROWS - 1);
        assert_eq!(shown[0].offset, Some(0));
        assert_eq!(shown[197].offset, Some(197));
        // Uncut, every violation is shown as it is.
        let few = &all[..MAX_VIOLATION_ROWS];
        assert_eq!(shown_violations(few).len(), MAX_VIOLATION_ROWS);
        assert_eq!(shown_violations(few)[199].offset, Some(199));
    }
}
