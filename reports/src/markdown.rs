//! `summary.md`: the report's numbers as Markdown tables, for pull requests and wikis.

use std::fmt::Write;

use crate::result::{sections, BenchResult, Sweep};
use crate::table::Table;
use crate::text::{fault_items, left_out, publish_delay_sentence, window_sentence};

/// The summary of a report: the sweep comparison (if any), then one section per run.
pub fn render_markdown(results: &[BenchResult], sweep: Option<&Sweep>) -> String {
    let mut out = String::from("# kafsim bench report\n");
    if let Some(sweep) = sweep {
        out.push_str(&sweep_table(sweep));
    }
    for section in sections(results, sweep) {
        let _ = write!(out, "\n## {}\n\n", escape(&section.heading));
        out.push_str(&run_summary(section.result));
    }
    out
}

/// The comparison table of a sweep: one row per point, one column per swept parameter.
fn sweep_table(sweep: &Sweep) -> String {
    let parameters = sweep.parameters();
    let mut out = format!("\n## Sweep over {}\n\n", escape(&parameters.join(", ")));
    out.push_str(&table(&Table::sweep(sweep)));
    out
}

/// A [`Table`] in Markdown: label columns left-aligned, numbers right-aligned. An empty
/// heading (the run summary's row-name column) is written `| |`.
fn table(table: &Table) -> String {
    let mut out = String::from("|");
    for heading in &table.headings {
        if heading.is_empty() {
            out.push_str(" |");
        } else {
            let _ = write!(out, " {} |", escape(heading));
        }
    }
    out.push_str("\n|");
    out.push_str(&"---|".repeat(table.label_columns));
    out.push_str(&"---:|".repeat(table.headings.len() - table.label_columns));
    out.push('\n');
    for row in &table.rows {
        out.push('|');
        for cell in row {
            let _ = write!(out, " {} |", escape(cell));
        }
        out.push('\n');
    }
    out
}

/// Throughput and latency table of one run, then its backlog and faults.
fn run_summary(result: &BenchResult) -> String {
    let mut out = format!(
        "Simulated {:.1} s; the first {:.1} s ({}) are left out of rates and latencies.\n\n",
        result.duration_s,
        result.warmup_s,
        left_out(result)
    );
    out.push_str(&table(&Table::run_summary(result)));
    if let Some(delay) = &result.publish_delay_ms {
        let _ = writeln!(
            out,
            "\n{}",
            escape(&publish_delay_sentence(result.publish_delay_avg_ms, delay))
        );
    }
    if let Some(line) = window_sentence(result) {
        let _ = writeln!(out, "\n{}", escape(&line));
    }
    if result.has_consumers() {
        let _ = writeln!(
            out,
            "\nLargest consumer backlog: {} records.",
            result.backlog_max
        );
    } else {
        out.push_str("\nNo consumers (a producer-only workload).\n");
    }
    if let Some(disk) = &result.disk {
        let _ = writeln!(out, "\n{}", escape(&disk.sentence()));
    }
    if !result.violations.is_empty() {
        out.push_str("\nViolations found during the bench:\n\n");
        for note in &result.violations {
            let _ = writeln!(out, "- {}", escape(&note.sentence()));
        }
    }
    out.push_str(&fault_list(result));
    out
}

/// The faults injected, as `html.rs` lists them: the same facts in other markup.
fn fault_list(result: &BenchResult) -> String {
    if result.faults.is_empty() {
        return "\nNo faults injected.\n".to_string();
    }
    let mut out = String::from("\nFaults:\n\n");
    for item in fault_items(result) {
        let _ = writeln!(out, "- {}", escape(&item));
    }
    out
}

/// Keeps user text (workload names, labels) from breaking tables or adding markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#'
        ) {
            out.push('\\');
        }
        if c == '\n' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::Recorder;

    fn result(workload: &str, latency_ms: u64) -> BenchResult {
        let mut recorder = Recorder::new(Duration::ZERO);
        for i in 0..100u64 {
            let sent = i * 10_000_000;
            recorder.on_publish(sent, sent + latency_ms * 1_000_000, 1024);
        }
        recorder.on_fault(500_000_000, "crash | broker-0");
        recorder.finish(workload, "default", Duration::from_secs(1))
    }

    #[test]
    fn summary_has_a_section_per_run_with_its_numbers() {
        let text = render_markdown(&[result("fast", 2)], None);
        assert!(text.contains("## fast on default"), "{text}");
        assert!(
            text.contains("| publish (send to ack) | 100 | 100.0 | 0.10 |"),
            "{text}"
        );
        assert!(text.contains("- 0.500 s: crash \\| broker-0"), "{text}");
        assert!(!text.contains("Sweep"));
    }

    #[test]
    fn sweep_table_has_a_row_per_point_and_a_column_per_parameter() {
        let mut sweep = Sweep::default();
        sweep.push(
            vec![
                ("linger.ms".into(), "0".into()),
                ("acks".into(), "1".into()),
            ],
            result("w", 2),
        );
        sweep.push(
            vec![
                ("linger.ms".into(), "5".into()),
                ("acks".into(), "all".into()),
            ],
            result("w", 7),
        );
        let text = render_markdown(&[], Some(&sweep));
        assert!(text.contains("## Sweep over linger.ms, acks"), "{text}");
        assert!(
            text.contains("| linger.ms | acks | publish records/s |"),
            "{text}"
        );
        assert!(
            text.contains("| 5 | all | 100.0 | 0.10 | 0.0 | 7.00"),
            "{text}"
        );
        assert!(
            text.contains("## w on default (linger.ms=0, acks=1)"),
            "{text}"
        );
    }
}
