//! The result of one benchmark run, shaped as the `--json` document of issue 8.
//!
//! Field names are a public contract: `workload`, `hardware`, `publish_rate`,
//! `publish_mib_per_sec`, `consume_rate`, `publish_latency_ms` and `end_to_end_latency_ms`
//! (each `{p50, p95, p99, p999, max}`), and `timeline` (`{t_s, publish_rate, consume_rate,
//! backlog, p99_ms}` per second of simulated time). Everything else here is extra, under names
//! of its own, so tools written against the schema keep working.

use serde::{Deserialize, Serialize};

/// Everything one run measured. Rates are per second of simulated time after the warm-up;
/// MiB are 2^20 bytes, as Kafka's perf tools count "MB".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub workload: String,
    pub hardware: String,
    /// Acknowledged records per second (records sent at or after the warm-up).
    pub publish_rate: f64,
    pub publish_mib_per_sec: f64,
    /// Records polled per second in the measured window (whenever they were sent: a backlog
    /// read counts).
    pub consume_rate: f64,
    /// Send to acknowledgement.
    pub publish_latency_ms: LatencySummary,
    /// Send to the poll that returned the record.
    pub end_to_end_latency_ms: LatencySummary,
    /// One point per second of simulated time, warm-up included.
    pub timeline: Vec<TimelinePoint>,

    // Extra fields (not in the schema).
    pub consume_mib_per_sec: f64,
    /// Acknowledged records counted in `publish_rate` (warm-up excluded).
    pub records_sent: u64,
    pub bytes_sent: u64,
    /// Records polled in the measured window `[warmup_s, duration_s)`: `consume_rate` times
    /// its length.
    pub records_consumed: u64,
    pub bytes_consumed: u64,
    pub publish_latency_avg_ms: f64,
    pub end_to_end_latency_avg_ms: f64,
    /// Simulated time the run covered, and the warm-up cut at its start.
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Largest backlog sample of the run (records), warm-up included.
    pub backlog_max: u64,
    /// Fault events in time order (at most `MAX_FAULTS`); `faults_dropped` counts the rest.
    pub faults: Vec<FaultMark>,
    pub faults_dropped: u64,
    /// Latency percentile curves for HDR-style charts (see [`CurvePoint`]).
    pub publish_latency_curve_ms: Vec<CurvePoint>,
    pub end_to_end_latency_curve_ms: Vec<CurvePoint>,
}

/// Latency percentiles in milliseconds. All zero when nothing was measured (the record
/// counts of [`BenchResult`] tell the two cases apart).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One second of simulated time, `[t_s, t_s + 1)`; a last partial second is scaled to a rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub t_s: u64,
    /// Records acknowledged in this second, per second.
    pub publish_rate: f64,
    /// Records polled in this second, per second.
    pub consume_rate: f64,
    /// The last backlog sample up to the end of this second (records); null before the first.
    pub backlog: Option<u64>,
    /// Publish latency p99 of the records acknowledged in this second; null if there were none.
    pub p99_ms: Option<f64>,
}

/// A fault event to mark on time axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultMark {
    pub t_s: f64,
    pub label: String,
}

/// One point of a latency percentile curve: `percentile` in percent (0 to below 100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub percentile: f64,
    pub ms: f64,
}

/// A parameter sweep: the same workload run once per assignment of the swept parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub points: Vec<SweepPoint>,
}

/// One run of a sweep: the parameter values it used (in the order the sweep lists them, e.g.
/// `[("linger.ms", "5"), ("acks", "all")]`) and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub assignments: Vec<(String, String)>,
    pub result: BenchResult,
}

impl Sweep {
    /// Adds the run made with `assignments`.
    pub fn push(&mut self, assignments: Vec<(String, String)>, result: BenchResult) {
        self.points.push(SweepPoint {
            assignments,
            result,
        });
    }

    /// The names of the swept parameters, in first-seen order.
    pub fn parameters(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for point in &self.points {
            for (name, _) in &point.assignments {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }
}

impl SweepPoint {
    /// The value this point gave `parameter`, or "" when it did not set it.
    pub fn value_of(&self, parameter: &str) -> &str {
        self.assignments
            .iter()
            .find(|(name, _)| name == parameter)
            .map_or("", |(_, value)| value.as_str())
    }

    /// A short label such as `acks=all, linger.ms=5`, for axes and headings.
    pub fn label(&self) -> String {
        let parts: Vec<String> = self
            .assignments
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        parts.join(", ")
    }
}

/// A run as a report shows it: a heading and its result. Standalone runs come first, then
/// the sweep's points (headed by their parameter values).
pub(crate) struct Section<'a> {
    pub(crate) heading: String,
    pub(crate) result: &'a BenchResult,
}

pub(crate) fn sections<'a>(
    results: &'a [BenchResult],
    sweep: Option<&'a Sweep>,
) -> Vec<Section<'a>> {
    let standalone = results.iter().map(|result| Section {
        heading: format!("{} on {}", result.workload, result.hardware),
        result,
    });
    let swept = sweep
        .into_iter()
        .flat_map(|sweep| &sweep.points)
        .map(|point| Section {
            heading: format!(
                "{} on {} ({})",
                point.result.workload,
                point.result.hardware,
                point.label()
            ),
            result: &point.result,
        });
    standalone.chain(swept).collect()
}
