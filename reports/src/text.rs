//! Terminal output in the style of kafka-producer-perf-test, so its readers (and their
//! scripts) find the numbers where they expect them.
//!
//! The publish line follows the tool's final summary (`ProducerPerformance.Stats.printTotal`,
//! Kafka 2.x-3.x): "%d records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms
//! max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th." with one change: the rate
//! has one decimal (as in the tool's per-window lines) instead of `%f`'s six. Its MB are 2^20
//! bytes and its percentiles whole milliseconds (the tool measures whole ms, so they are
//! truncated here too); the exact values are in the JSON. The consume and end-to-end lines
//! follow the same pattern.

use std::fmt::Write;

use crate::result::{BenchResult, LatencySummary};

/// Three lines: publish (perf-test format), consume, end-to-end latency (the last two only
/// when the workload has consumers), then the publish delay (when a producer has a rate),
/// the measured window (with consumers) and the disk arithmetic.
pub fn render_text(result: &BenchResult) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {}.",
        result.records_sent,
        result.publish_rate,
        result.publish_mib_per_sec,
        latency_phrase(result.publish_latency_avg_ms, &result.publish_latency_ms),
    )
    .expect("writing to a String cannot fail");
    if result.has_consumers() {
        writeln!(
            out,
            "{} records consumed, {:.1} records/sec ({:.2} MB/sec).",
            result.records_consumed, result.consume_rate, result.consume_mib_per_sec,
        )
        .expect("writing to a String cannot fail");
        writeln!(
            out,
            "end-to-end: {}.",
            latency_phrase(
                result.end_to_end_latency_avg_ms,
                &result.end_to_end_latency_ms
            ),
        )
        .expect("writing to a String cannot fail");
    }
    if let Some(delay) = &result.publish_delay_ms {
        writeln!(
            out,
            "{}",
            publish_delay_sentence(result.publish_delay_avg_ms, delay)
        )
        .expect("writing to a String cannot fail");
    }
    if let Some(line) = window_sentence(result) {
        writeln!(out, "{line}").expect("writing to a String cannot fail");
    }
    if let Some(disk) = &result.disk {
        writeln!(out, "{}", disk.sentence()).expect("writing to a String cannot fail");
    }
    out
}

/// OMB's publish delay, in milliseconds with microsecond digits (it is often below 1 ms).
pub(crate) fn publish_delay_sentence(avg_ms: f64, d: &LatencySummary) -> String {
    format!(
        "publish delay (send behind the rate's schedule): {avg_ms:.3} ms avg, {:.3} ms 50th, \
         {:.3} ms 99th, {:.3} ms 99.9th, {:.3} ms max.",
        d.p50, d.p99, d.p999, d.max
    )
}

/// The faults injected, one unescaped item each (`1.500 s: crash broker-0`), then how many
/// more there were than the recorder keeps: the list both reports show in their markup.
pub(crate) fn fault_items(result: &BenchResult) -> Vec<String> {
    let mut items: Vec<String> = result
        .faults
        .iter()
        .map(|fault| format!("{:.3} s: {}", fault.t_s, fault.label))
        .collect();
    if result.faults_dropped > 0 {
        items.push(format!("and {} more (not kept)", result.faults_dropped));
    }
    items
}

/// What the cut at the start of a run is, for reports.
pub(crate) fn left_out(result: &BenchResult) -> &'static str {
    if result.load_start_s.is_some() {
        "the readiness phase, until every consumer group could read, and the warm-up"
    } else {
        "the warm-up"
    }
}

/// Where the measured window starts and why, for a workload with consumer groups.
pub(crate) fn window_sentence(result: &BenchResult) -> Option<String> {
    if !matches!(result.consumer_groups, Some(n) if n > 0) {
        return None;
    }
    let start = result.load_start_s?;
    let mut line = format!(
        "load started at {start:.2} s, when every consumer group had its partitions and had \
         read a probe record; measured window: {:.2} s to {:.2} s.",
        result.warmup_s, result.duration_s
    );
    if !result.unready_groups.is_empty() {
        line = format!(
            "load started at {start:.2} s without waiting longer for: {} (60 s per step); \
             measured window: {:.2} s to {:.2} s.",
            result.unready_groups.join("; "),
            result.warmup_s,
            result.duration_s
        );
    }
    Some(line)
}

fn latency_phrase(avg_ms: f64, summary: &LatencySummary) -> String {
    format!(
        "{avg_ms:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th",
        summary.max,
        whole_ms(summary.p50),
        whole_ms(summary.p95),
        whole_ms(summary.p99),
        whole_ms(summary.p999),
    )
}

/// Whole milliseconds, truncated as the perf tool's integer millisecond latencies are.
fn whole_ms(ms: f64) -> u64 {
    ms.floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> BenchResult {
        let summary = LatencySummary {
            p50: 2.7,
            p95: 3.0,
            p99: 3.9,
            p999: 14.2,
            max: 14.0,
        };
        BenchResult {
            workload: "w".into(),
            hardware: "h".into(),
            publish_rate: 821_557.0,
            publish_mib_per_sec: 78.349,
            consume_rate: 800_000.04,
            publish_latency_ms: summary,
            end_to_end_latency_ms: LatencySummary {
                p50: 5.5,
                ..summary
            },
            timeline: Vec::new(),
            consume_mib_per_sec: 76.3,
            records_sent: 500_000,
            bytes_sent: 0,
            records_consumed: 490_000,
            bytes_consumed: 0,
            publish_latency_avg_ms: 2.1,
            end_to_end_latency_avg_ms: 6.0,
            duration_s: 1.0,
            warmup_s: 0.0,
            load_start_s: None,
            unready_groups: Vec::new(),
            publish_delay_ms: None,
            publish_delay_avg_ms: 0.0,
            publish_delay_curve_ms: Vec::new(),
            backlog_max: 0,
            faults: Vec::new(),
            faults_dropped: 0,
            publish_latency_curve_ms: Vec::new(),
            end_to_end_latency_curve_ms: Vec::new(),
            disk: None,
            consumer_groups: None,
            violations: Vec::new(),
        }
    }

    #[test]
    fn publish_line_matches_the_perf_test_format() {
        let text = render_text(&example());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "500000 records sent, 821557.0 records/sec (78.35 MB/sec), 2.10 ms avg latency, \
                 14.00 ms max latency, 2 ms 50th, 3 ms 95th, 3 ms 99th, 14 ms 99.9th.",
                "490000 records consumed, 800000.0 records/sec (76.30 MB/sec).",
                "end-to-end: 6.00 ms avg latency, 14.00 ms max latency, 5 ms 50th, 3 ms 95th, \
                 3 ms 99th, 14 ms 99.9th.",
            ]
        );
    }
}
