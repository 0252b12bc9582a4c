//! `index.html`: one self-contained page, charts as inline SVG, style inline, no script.
//!
//! Nothing is fetched: no external stylesheet, font, script or image, so the report opens
//! the same from a CI artifact, an e-mail attachment or an air-gapped laptop.

use std::fmt::Write;

use crate::charts;
use crate::result::{sections, BenchResult, Sweep};
use crate::table::Table;
use crate::text::{fault_items, left_out, publish_delay_sentence, window_sentence};
use crate::write::ReportError;

type RunChart = fn(&BenchResult) -> Result<String, ReportError>;
type SweepChart = fn(&Sweep) -> Result<String, ReportError>;

/// Charts drawn for each run, in page order, and whether each is about consumers (left out
/// for a producer-only workload). Publish and end-to-end latency get a panel each: they
/// differ by orders of magnitude, and one axis would flatten one of them.
const RUN_CHARTS: [(RunChart, bool); 5] = [
    (charts::throughput_chart, false),
    (charts::publish_latency_chart, false),
    (charts::end_to_end_latency_chart, true),
    (charts::backlog_chart, true),
    (charts::p99_chart, false),
];
/// Charts drawn for a sweep: throughput, then publish and end-to-end p99 against the swept
/// values (a panel each).
/// Charts of a sweep, and whether each is about consumers (left out without them).
const SWEEP_CHARTS: [(SweepChart, bool); 3] = [
    (charts::sweep_throughput_chart, false),
    (charts::sweep_publish_p99_chart, false),
    (charts::sweep_end_to_end_p99_chart, true),
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;\
margin:2rem auto;max-width:1000px;padding:0 1rem;color:#222;line-height:1.4}\
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}\
table{border-collapse:collapse;margin:1rem 0;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;display:block}\
.note{color:#555;font-size:.9rem}code{background:#f3f3f3;padding:0 .2rem}";

/// The whole page for `results` and `sweep` (see [`crate::write_report`]).
pub fn render_html(results: &[BenchResult], sweep: Option<&Sweep>) -> Result<String, ReportError> {
    let mut page =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str("<title>kafsim bench report</title>\n");
    let _ = writeln!(page, "<style>{STYLE}</style>\n</head>\n<body>");
    page.push_str("<h1>kafsim bench report</h1>\n");
    page.push_str(
        "<p class=\"note\">All times are simulated time. Rates and latency percentiles leave out \
         the warm-up, and with consumer groups the readiness phase before it (shaded on the \
         time charts); the time charts show them. \
         MiB = 2<sup>20</sup> bytes. Dashed red lines mark injected faults.</p>\n",
    );
    if let Some(sweep) = sweep {
        page.push_str(&sweep_section(sweep)?);
    }
    for (index, section) in sections(results, sweep).iter().enumerate() {
        let _ = writeln!(
            page,
            "<section id=\"run-{}\">\n<h2>{}</h2>",
            index + 1,
            escape(&section.heading)
        );
        page.push_str(&run_body(section.result)?);
        page.push_str("</section>\n");
    }
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

fn sweep_section(sweep: &Sweep) -> Result<String, ReportError> {
    let parameters = sweep.parameters();
    let mut out = format!(
        "<section id=\"sweep\">\n<h2>Sweep over {}</h2>\n",
        escape(&parameters.join(", "))
    );
    out.push_str(&table(&Table::sweep(sweep)));
    for (chart, about_consumers) in SWEEP_CHARTS {
        if about_consumers && !sweep.has_consumers() {
            continue;
        }
        out.push_str(&figure(chart(sweep)?));
    }
    out.push_str("</section>\n");
    Ok(out)
}

fn run_body(result: &BenchResult) -> Result<String, ReportError> {
    let mut out = format!(
        "<p>Workload <code>{}</code> on hardware <code>{}</code>: {:.1} s simulated, the first \
         {:.1} s left out ({}).{}</p>\n",
        escape(&result.workload),
        escape(&result.hardware),
        result.duration_s,
        result.warmup_s,
        left_out(result),
        if result.has_consumers() {
            format!(" Largest consumer backlog: {} records.", result.backlog_max)
        } else {
            " No consumers (a producer-only workload).".to_string()
        },
    );
    out.push_str(&table(&Table::run_summary(result)));
    if let Some(delay) = &result.publish_delay_ms {
        out.push_str(&format!(
            "<p>{}</p>\n",
            escape(&publish_delay_sentence(result.publish_delay_avg_ms, delay))
        ));
    }
    if let Some(line) = window_sentence(result) {
        out.push_str(&format!("<p>{}</p>\n", escape(&line)));
    }
    if let Some(disk) = &result.disk {
        out.push_str(&format!("<p>{}</p>\n", escape(&disk.sentence())));
    }
    if !result.violations.is_empty() {
        out.push_str("<p><strong>Violations found during the bench:</strong></p>\n<ul>\n");
        for note in &result.violations {
            out.push_str(&format!("<li>{}</li>\n", escape(&note.sentence())));
        }
        out.push_str("</ul>\n");
    }
    for (chart, about_consumers) in RUN_CHARTS {
        if about_consumers && !result.has_consumers() {
            continue;
        }
        out.push_str(&figure(chart(result)?));
    }
    out.push_str(&fault_list(result));
    Ok(out)
}

/// `<table>` markup of a [`Table`] (the style right-aligns all but the first column).
fn table(table: &Table) -> String {
    let mut out = String::from("<table>\n<tr>");
    for heading in &table.headings {
        let _ = write!(out, "<th>{}</th>", escape(heading));
    }
    out.push_str("</tr>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn fault_list(result: &BenchResult) -> String {
    if result.faults.is_empty() {
        return "<p class=\"note\">No faults injected.</p>\n".to_string();
    }
    let mut out = String::from("<h3>Faults</h3>\n<ul>\n");
    for item in fault_items(result) {
        let _ = writeln!(out, "<li>{}</li>", escape(&item));
    }
    out.push_str("</ul>\n");
    out
}

fn figure(svg: String) -> String {
    format!("<figure>\n{svg}\n</figure>\n")
}

/// HTML-escapes user text (workload names, labels, parameter values).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(workload: &str) -> BenchResult {
        let mut recorder = crate::Recorder::new(Duration::from_secs(1));
        for i in 0..3_000u64 {
            let sent = i * 1_000_000;
            recorder.on_publish(sent, sent + 2_000_000 + (i % 7) * 100_000, 100);
            recorder.on_consume(sent, sent + 4_000_000, 100);
            recorder.on_backlog(sent, i % 50);
        }
        recorder.on_fault(1_500_000_000, "crash <broker-0>");
        recorder.finish(workload, "default", Duration::from_secs(3))
    }

    #[test]
    fn every_chart_is_inline_svg() {
        let mut sweep = crate::Sweep::default();
        sweep.push(vec![("acks".into(), "1".into())], result("w"));
        sweep.push(vec![("acks".into(), "all".into())], result("w"));
        let page = render_html(&[result("single")], Some(&sweep)).unwrap();
        let runs = 3;
        assert_eq!(
            page.matches("<svg").count(),
            runs * RUN_CHARTS.len() + SWEEP_CHARTS.len()
        );
        assert_eq!(page.matches("</svg>").count(), page.matches("<svg").count());
        assert!(page.contains("<h2>Sweep over acks</h2>"));
        assert!(page.contains("<td>all</td>"));
    }

    #[test]
    fn a_producer_only_sweep_has_no_consumer_columns_or_charts() {
        let producers_only = |name: &str| BenchResult {
            consumer_groups: Some(0),
            ..result(name)
        };
        let mut sweep = crate::Sweep::default();
        sweep.push(vec![("acks".into(), "1".into())], producers_only("w"));
        sweep.push(vec![("acks".into(), "all".into())], producers_only("w"));
        let page = render_html(&[], Some(&sweep)).unwrap();
        assert!(
            !page.contains("consume records/s"),
            "no consumer column or series"
        );
        assert!(!page.contains("End-to-end p99 latency by swept value"));
        assert!(page.contains("Publish p99 latency by swept value"));
        let summary = crate::render_markdown(&[], Some(&sweep));
        assert!(!summary.contains("consume records/s"));
        assert!(!summary.contains("end-to-end p99 ms"));
    }

    #[test]
    fn a_run_that_measured_nothing_still_renders() {
        let empty =
            crate::Recorder::new(Duration::ZERO).finish("idle", "default", Duration::from_secs(1));
        let page =
            render_html(std::slice::from_ref(&empty), Some(&crate::Sweep::default())).unwrap();
        // An empty sweep has no point with consumers: no end-to-end sweep chart.
        assert_eq!(
            page.matches("<svg").count(),
            RUN_CHARTS.len() + SWEEP_CHARTS.len() - 1
        );
        assert!(crate::render_text(&empty).starts_with("0 records sent, 0.0 records/sec"));
        let json: serde_json::Value = serde_json::from_str(&crate::render_json(&empty)).unwrap();
        assert_eq!(json["end_to_end_latency_ms"]["p99"], 0.0);
    }

    #[test]
    fn user_text_is_escaped() {
        let page = render_html(&[result("a<b>&c")], None).unwrap();
        assert!(page.contains("a&lt;b&gt;&amp;c"));
        assert!(!page.contains("a<b>"));
        assert!(page.contains("crash &lt;broker-0&gt;"));
        assert!(!page.contains("<broker-0>"), "escaped in the SVG too");
    }

    #[test]
    fn fetches_nothing_from_the_network() {
        let page = render_html(&[result("w")], None).unwrap();
        for pattern in [
            "src=",
            "href=\"http",
            "href='http",
            "url(",
            "@import",
            "<script",
            "<link",
        ] {
            assert!(!page.contains(pattern), "page contains {pattern}");
        }
        let outside: Vec<&str> = page
            .match_indices("http")
            .map(|(at, _)| &page[at.saturating_sub(7)..at + 30])
            .filter(|context| !context.contains("xmlns=\"http://www.w3.org/2000/svg\""))
            .collect();
        assert!(outside.is_empty(), "URLs outside xmlns: {outside:?}");
    }
}
