//! `kafsim run --report DIR` and `kafsim check --report DIR`: a small self-contained report of
//! a campaign (index.html, summary.md, results.json), written atomically through the reports
//! crate (a temporary sibling directory moved into place; a non-empty directory that is not a
//! previous report is refused).

use super::run::CampaignJson;
use kafsim_reports::{write_atomically, ReportError};
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
    md.push_str("\n| seed | kind | partition | offset | value | at (ms) | detail |\n|---|---|---|---|---|---|---|\n");
    for v in &doc.violations {
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
    h.push_str("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}</style></head><body>");
    let _ = write!(h, "<h1>kafsim run: {}</h1>", html_escape(&doc.scenario));
    let _ = write!(
        h,
        "<p>{}, failed {}.</p>",
        html_escape(&doc.describe_seeds()),
        doc.failed_seeds.len()
    );
    h.push_str("<table><tr><th>kind</th><th>count</th></tr>");
    for (k, n) in &doc.kinds {
        let _ = write!(h, "<tr><td>{k}</td><td>{n}</td></tr>");
    }
    h.push_str("</table><h2>Violations</h2><table><tr><th>seed</th><th>kind</th><th>partition</th><th>offset</th><th>value</th><th>at (ms)</th><th>detail</th><th>reproduce</th></tr>");
    for v in &doc.violations {
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

pub fn write(dir: &Path, doc: &CampaignJson, json: &str) -> Result<(), ReportError> {
    let files = [
        ("index.html", html(doc)),
        ("summary.md", markdown(doc)),
        ("results.json", json.to_string()),
    ];
    write_atomically(dir, &files)
}
