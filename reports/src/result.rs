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
    /// Simulated time the run covered, and what was cut at its start: the measured window is
    /// `[warmup_s, duration_s)`. With a readiness phase both count from `load_start_s`
    /// (`warmup_s` = load start + the workload's `warmup`).
    pub duration_s: f64,
    pub warmup_s: f64,
    /// When the load started: the end of the bench's readiness phase, once every consumer
    /// group had its partitions and had read a probe record (docs/commands.md, "kafsim
    /// bench"); `None` for a workload without consumers (its load starts at 0).
    #[serde(default)]
    pub load_start_s: Option<f64>,
    /// Groups that were still not ready when the readiness phase gave up (after 60 s), with
    /// why; empty when every group was ready.
    #[serde(default)]
    pub unready_groups: Vec<String>,
    /// OMB's publish delay: how late sends were handed to the client against their rate's
    /// schedule (acknowledged records sent in the window); `None` when no producer has a rate.
    #[serde(default)]
    pub publish_delay_ms: Option<LatencySummary>,
    #[serde(default)]
    pub publish_delay_avg_ms: f64,
    #[serde(default)]
    pub publish_delay_curve_ms: Vec<CurvePoint>,
    /// Largest backlog sample of the run (records), warm-up included.
    pub backlog_max: u64,
    /// Fault events in time order (at most `MAX_FAULTS`); `faults_dropped` counts the rest.
    pub faults: Vec<FaultMark>,
    pub faults_dropped: u64,
    /// Latency percentile curves for HDR-style charts (see [`CurvePoint`]).
    pub publish_latency_curve_ms: Vec<CurvePoint>,
    pub end_to_end_latency_curve_ms: Vec<CurvePoint>,
    /// What the brokers' disks bound, and how much the page cache throttled (bench runs on a
    /// hardware profile; absent in results written before it existed).
    #[serde(default)]
    pub disk: Option<DiskBound>,
    /// Consumer groups of the workload; 0 = a producer-only workload, whose reports leave out
    /// the consume, end-to-end and backlog sections. `None` (results written before the
    /// field existed) shows them.
    #[serde(default)]
    pub consumer_groups: Option<u32>,
    /// What the checkers found during the bench, one line per kind (and group), with what
    /// it means; empty when nothing was found. Without `kafsim bench --check` only a
    /// `stall` or a `panic` can appear: the history checkers and invariants do not run.
    #[serde(default)]
    pub violations: Vec<ViolationNote>,
}

/// Violations of one kind (for one group, when they name one) found during a bench.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViolationNote {
    pub kind: String,
    pub group: Option<String>,
    pub count: u64,
    /// What it means for this workload, and what to change.
    pub meaning: String,
    /// The first violation's detail.
    pub example: String,
}

impl ViolationNote {
    /// "unseen x3 (group g): MEANING e.g. EXAMPLE".
    pub fn sentence(&self) -> String {
        let group = self
            .group
            .as_ref()
            .map_or(String::new(), |g| format!(" (group {g})"));
        let first = if self.example.is_empty() {
            String::new()
        } else {
            format!(" First: {}.", self.example)
        };
        format!(
            "{} x{}{}: {}{first}",
            self.kind, self.count, group, self.meaning
        )
    }
}

impl BenchResult {
    /// Whether the workload has consumers (reports show consumer sections only then).
    pub fn has_consumers(&self) -> bool {
        self.consumer_groups != Some(0)
    }
}

/// The disk arithmetic of a run: every replica writes every byte once, so the cluster takes
/// in at most `disk_mb_per_sec × brokers / replication_factor` of batch bytes for good; a
/// compressed workload carries `1 / compression_ratio` times more record bytes per disk byte.
/// Above it, writes ride the page cache until dirty data reaches the freerun point and are
/// then throttled (`throttled_s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskBound {
    /// Sequential write bandwidth of one broker's data disks together, MB (10^6 bytes) per s.
    pub disk_mb_per_sec: f64,
    pub brokers: u32,
    /// Replication factor of the produced topics (the largest, when they differ).
    pub replication_factor: u32,
    /// Compressed size of the records as a fraction of their size (1 = uncompressed).
    pub compression_ratio: f64,
    /// The bound, in MiB of records per second (as `publish_mib_per_sec`).
    pub bound_mib_per_sec: f64,
    /// Dirty data a broker's page cache holds before writers are throttled, GB.
    pub freerun_gb: f64,
    /// Per broker: seconds its writers were paused by dirty-page throttling, summed over
    /// writes (concurrent writers each count their own pauses).
    pub throttled_s: Vec<(String, f64)>,
    /// The publish rate of the last (at most) 10 whole seconds of the measured window, MiB
    /// of records per second: what a long full-speed run sustains, to set against the bound.
    #[serde(default)]
    pub last_10s_mib_per_sec: Option<f64>,
}

impl DiskBound {
    /// One sentence with the arithmetic, for every report format.
    pub fn sentence(&self) -> String {
        let compression = if self.compression_ratio < 1.0 {
            format!(" / compressed size {:.2}", self.compression_ratio)
        } else {
            String::new()
        };
        let throttled: Vec<String> = self
            .throttled_s
            .iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(name, s)| format!("{name} {s:.1} s"))
            .collect();
        let throttle = if throttled.is_empty() {
            format!(
                "no writer was throttled: dirty data stayed under the page cache's freerun \
                 point ({:.1} GB per broker)",
                self.freerun_gb
            )
        } else {
            format!(
                "writers were throttled once dirty data passed the page cache's freerun point \
                 ({:.1} GB per broker), pauses summed over writes: {}",
                self.freerun_gb,
                throttled.join(", ")
            )
        };
        let last = self.last_10s_mib_per_sec.map_or(String::new(), |mib| {
            format!(" The last 10 s of the window published {mib:.1} MiB/s.")
        });
        format!(
            "Disk bound: {:.0} MB/s per broker × {} brokers / replication factor {}{} = {:.1} \
             MiB/s of records sustained; {}.{last}",
            self.disk_mb_per_sec,
            self.brokers,
            self.replication_factor,
            compression,
            self.bound_mib_per_sec,
            throttle
        )
    }
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

impl Sweep {
    /// Whether any point's workload has consumers (else the consumer columns and charts are
    /// left out, as for a producer-only run).
    pub(crate) fn has_consumers(&self) -> bool {
        self.points.iter().any(|p| p.result.has_consumers())
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
