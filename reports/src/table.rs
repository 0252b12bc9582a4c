//! The tables a report shows, as one model: `index.html` and `summary.md` each render a
//! [`Table`] in their own markup ([`crate::html`], [`crate::markdown`]), so the two can only
//! differ in markup, never in which numbers they show or how they are rounded.

use crate::result::{BenchResult, LatencySummary, Sweep};

/// A table as plain, unescaped text: the headings, one row of cells per line, and how many
/// leading columns are labels (left-aligned; the rest are numbers, right-aligned).
pub(crate) struct Table {
    pub label_columns: usize,
    pub headings: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A column of a sweep's comparison table: its heading and a point's cell.
type SweepColumn = (&'static str, fn(&BenchResult) -> String);

impl Table {
    /// A run's throughput and latency: the publish row (send to acknowledgement), then, with
    /// consumers, the consume row (send to the poll that returned the record).
    pub(crate) fn run_summary(result: &BenchResult) -> Table {
        let headings = [
            "",
            "records",
            "records/s",
            "MiB/s",
            "avg ms",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
        ];
        let row = |name: &str,
                   records: u64,
                   rate: f64,
                   mib_per_sec: f64,
                   avg_ms: f64,
                   latency: &LatencySummary| {
            let mut cells = vec![
                name.to_string(),
                records.to_string(),
                format!("{rate:.1}"),
                format!("{mib_per_sec:.2}"),
                format!("{avg_ms:.3}"),
            ];
            let percentiles = [
                latency.p50,
                latency.p95,
                latency.p99,
                latency.p999,
                latency.max,
            ];
            cells.extend(percentiles.iter().map(|ms| format!("{ms:.3}")));
            cells
        };
        let mut rows = vec![row(
            "publish (send to ack)",
            result.records_sent,
            result.publish_rate,
            result.publish_mib_per_sec,
            result.publish_latency_avg_ms,
            &result.publish_latency_ms,
        )];
        if result.has_consumers() {
            rows.push(row(
                "consume (send to poll)",
                result.records_consumed,
                result.consume_rate,
                result.consume_mib_per_sec,
                result.end_to_end_latency_avg_ms,
                &result.end_to_end_latency_ms,
            ));
        }
        Table {
            label_columns: 1,
            headings: headings.map(String::from).to_vec(),
            rows,
        }
    }

    /// A sweep's comparison table: the swept parameters (the label columns), then the result
    /// columns, and one row per point in the sweep's order.
    pub(crate) fn sweep(sweep: &Sweep) -> Table {
        let parameters = sweep.parameters();
        let columns = sweep_columns(sweep);
        let mut headings = parameters.clone();
        headings.extend(columns.iter().map(|(heading, _)| heading.to_string()));
        let rows = sweep
            .points
            .iter()
            .map(|point| {
                let mut row: Vec<String> = parameters
                    .iter()
                    .map(|p| point.value_of(p).to_string())
                    .collect();
                row.extend(columns.iter().map(|(_, cell)| cell(&point.result)));
                row
            })
            .collect();
        Table {
            label_columns: parameters.len(),
            headings,
            rows,
        }
    }
}

/// The comparison table's result columns: throughput and latency, the consumer columns only
/// with consumers, and the disk bound (which compression moves) when known.
fn sweep_columns(sweep: &Sweep) -> Vec<SweepColumn> {
    let mut columns: Vec<SweepColumn> = vec![
        ("publish records/s", |r| format!("{:.1}", r.publish_rate)),
        ("publish MiB/s", |r| format!("{:.2}", r.publish_mib_per_sec)),
    ];
    if sweep.has_consumers() {
        columns.push(("consume records/s", |r| format!("{:.1}", r.consume_rate)));
    }
    columns.push(("publish p99 ms", |r| {
        format!("{:.3}", r.publish_latency_ms.p99)
    }));
    if sweep.has_consumers() {
        columns.push(("end-to-end p99 ms", |r| {
            format!("{:.3}", r.end_to_end_latency_ms.p99)
        }));
    }
    if sweep.points.iter().any(|p| p.result.disk.is_some()) {
        columns.push(("disk bound MiB/s", |r| {
            r.disk
                .as_ref()
                .map_or(String::new(), |d| format!("{:.1}", d.bound_mib_per_sec))
        }));
    }
    columns
}
