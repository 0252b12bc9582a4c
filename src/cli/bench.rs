//! `kafsim bench WORKLOAD [--report DIR] [--json FILE] [--sweep "name=v1,v2" ...]`: run a
//! workload on a modelled cluster (its `hardware` profile, `cost.rs`) and report throughput and
//! latency as kafka-producer-perf-test does, with `--json` and an HTML/Markdown report
//! directory, or a comparison over a grid of producer / consumer / broker / topic settings.
//!
//! A benchmark is one seed of the workload (simulated time is deterministic: the same file
//! gives the same numbers on every machine). The workload is a scenario file (DESIGN §5) with
//! `rate`, `message_size`, consumer groups, `warmup`, `hardware` and, if wanted, faults.

mod sweep;

use kafsim_engine::client::ClientKind;
use kafsim_engine::config::ConfigValue;
use kafsim_engine::consumer::config::OffsetReset;
use kafsim_reports::{
    render_json, render_results_json, render_text, write_bench_report, BenchResult, DiskBound,
    OmbShape, Sweep, ViolationNote,
};
use kafsim_sim::cost::{profile, HardwareProfile};
use kafsim_sim::measure::{Measure, MeasureSpec};
use kafsim_sim::runner::{self, RunOptions, Streamed};
use kafsim_sim::scenario::{self, Property, Scenario, ScenarioError};
use kafsim_sim::violation::{Violation, ViolationKind};
use std::path::{Path, PathBuf};
use std::time::Duration;
use sweep::Family;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The workload file (a scenario with rate, message_size, warmup, hardware)
    workload: PathBuf,
    /// Write a report directory (index.html, results.json, summary.md)
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Write the results as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Sweep a producer, consumer or broker property or `partitions` / `replication_factor`
    /// over values, e.g. --sweep "linger.ms=0,5,20" (prefix `producer.`, `consumer.`,
    /// `broker.` or `topic.` when a name is ambiguous; repeat to sweep a grid)
    #[arg(long = "sweep", value_name = "NAME=V1,V2,...")]
    sweeps: Vec<String>,
    /// The seed of the run
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also check the run as `kafsim run` does (history checkers, engine invariants, replica
    /// divergence): keeps the whole history in memory. Without it a bench streams its
    /// history into the measurement and reports only stalls and engine panics.
    #[arg(long)]
    check: bool,
}

/// Why a bench could not run: bad input (exit 2) with its message.
struct BadInput(String);

impl From<ScenarioError> for BadInput {
    fn from(e: ScenarioError) -> BadInput {
        BadInput(e.to_string())
    }
}

pub fn main(args: BenchArgs) -> u8 {
    match run(&args) {
        Ok(()) => super::EXIT_OK,
        Err(BadInput(message)) => {
            eprintln!("kafsim bench: {message}");
            super::EXIT_BAD_INPUT
        }
    }
}

fn run(args: &BenchArgs) -> Result<(), BadInput> {
    let base = scenario::load(&args.workload)?;
    let parameters = args
        .sweeps
        .iter()
        .map(|s| sweep::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BadInput)?;
    let grid = sweep::grid(&parameters).map_err(BadInput)?;
    // Prepare every point first, so a bad value fails before hours of runs.
    let mut prepared = Vec::with_capacity(grid.len());
    for point in &grid {
        let scenario = with_overrides(&base, point)?;
        prepared.push(runner::prepare(scenario).map_err(|e| sweep_error(point, e))?);
    }
    if let Some(dir) = &args.report {
        refuse_foreign_report_dir(dir)?;
    }
    let mut results = Vec::with_capacity(grid.len());
    for (point, p) in grid.iter().zip(&prepared) {
        results.push((point.clone(), bench_one(p, args.seed, args.check)?));
    }
    if parameters.is_empty() {
        let result = results.pop().expect("one run without a sweep").1;
        print!("{}", render_text(&result));
        write_outputs(args, &[result], None, &omb_shape(&base))
    } else {
        let mut sweep = Sweep::default();
        for (point, result) in results {
            sweep.push(point, result);
        }
        print!("{}", comparison_table(&sweep));
        write_outputs(args, &[], Some(&sweep), &omb_shape(&base))
    }
}

/// The workload's shape in OpenMessaging Benchmark's terms, for `omb.json`.
fn omb_shape(s: &Scenario) -> OmbShape {
    let mut clients: Vec<&str> = s.producers.iter().map(|p| p.client.name()).collect();
    clients.dedup();
    let topics = s.topics.len().max(1) as u32;
    let producers: u32 = s.producers.iter().map(|p| p.count).sum();
    let consumers: u32 = s.consumer_groups.iter().map(|g| g.members).sum();
    OmbShape {
        driver: format!("kafsim {}", clients.join("+")),
        message_size: s.producers.first().map_or(0, |p| p.message_size as u64),
        topics,
        partitions: s.topics.iter().map(|t| t.partitions).sum::<u32>() / topics,
        producers_per_topic: producers / topics,
        consumers_per_topic: consumers / topics,
    }
}

/// Run one prepared workload and measure it: streaming, or with the whole history kept and
/// checked (`--check`).
fn bench_one(p: &runner::Prepared, seed: u64, check: bool) -> Result<BenchResult, BadInput> {
    let s = &p.scenario;
    let hardware = s.hardware.clone().unwrap_or_else(|| "default".to_string());
    let profile = profile(&hardware)
        .ok_or_else(|| BadInput(format!("{}: unknown hardware profile {hardware:?}", s.file)))?;
    let opts = RunOptions {
        world: Some(profile.world_config()),
        keep_history: check,
        stream: !check,
        await_consumers: true,
        ..RunOptions::default()
    };
    let spec = MeasureSpec {
        workload: s.name.clone(),
        hardware,
        warmup: s.warmup.unwrap_or(Duration::ZERO),
        duration: s.duration,
        message_sizes: s
            .producers
            .iter()
            .flat_map(|p| vec![p.message_size; p.count as usize])
            .collect(),
        groups: s.consumer_groups.len() as u32,
        awaits_load_start: !s.consumer_groups.is_empty(),
    };
    let mut measure = Measure::new(&spec);
    let out = runner::run_seed_streaming(p, seed, &opts, &mut |item| match item {
        Streamed::History(entries) => measure.observe(entries),
        Streamed::LoadStart { at, unready } => measure.load_started(at.as_nanos(), unready),
    });
    if let Some(history) = &out.history {
        // --check keeps the history: the load's start is in the output.
        if let Some(ready) = &out.ready {
            measure.load_started(ready.load_start.as_nanos(), &ready.unready);
        }
        measure.observe(history.entries());
    }
    let mut measured = measure.finish(&out.fault_log);
    let mut disk = disk_bound(p, &profile, &out.disk_throttled_s);
    disk.last_10s_mib_per_sec = last_10s_mib_per_sec(&measured.result);
    measured.result.disk = Some(disk);
    measured.result.consumer_groups = Some(spec.groups);
    let stats = out.result.stats;
    eprintln!(
        "{}: {:.1} simulated s in {:.2} wall s ({:.0} records/wall s, {:.0} events/wall s){}",
        s.name,
        stats.sim_seconds,
        stats.wall_seconds,
        stats.records_produced as f64 / stats.wall_seconds.max(1e-9),
        stats.events as f64 / stats.wall_seconds.max(1e-9),
        if measured.untracked > 0 {
            format!(", {} sends not tracked", measured.untracked)
        } else {
            String::new()
        }
    );
    measured.result.violations = violation_notes(p, &out.result.violations);
    for note in &measured.result.violations {
        eprintln!("  violations during the bench: {}", note.sentence());
    }
    Ok(measured.result)
}

/// Most violation notes kept per bench (one per kind and group).
const MAX_VIOLATION_NOTES: usize = 50;

/// The bench's violations, one note per kind and group, each with what it means here. The
/// checkers keep 1000 violations of a kind and add one "N more KIND violations not kept";
/// that N is added to the kind's count instead of making a note of its own.
fn violation_notes(p: &runner::Prepared, violations: &[Violation]) -> Vec<ViolationNote> {
    let mut notes: Vec<ViolationNote> = Vec::new();
    let mut more: Vec<(ViolationKind, u64)> = Vec::new();
    for v in violations {
        if let Some(n) = v
            .detail
            .split_once(" more ")
            .filter(|(_, rest)| rest.contains("violations not kept"))
            .and_then(|(n, _)| n.parse::<u64>().ok())
        {
            more.push((v.kind, n));
            continue;
        }
        // Delivery checkers name the group last: "... never read by GROUP by the end".
        let group = v
            .detail
            .split_once(" never read by ")
            .map(|(_, rest)| rest.split(' ').next().unwrap_or(rest).trim_end_matches(','))
            .filter(|g| p.group_config(g).is_some())
            .map(str::to_string);
        if let Some(note) = notes
            .iter_mut()
            .find(|n| n.kind == v.kind.as_str() && n.group == group)
        {
            note.count += 1;
            continue;
        }
        if notes.len() >= MAX_VIOLATION_NOTES {
            continue;
        }
        notes.push(ViolationNote {
            kind: v.kind.as_str().to_string(),
            meaning: violation_meaning(p, v.kind, group.as_deref()),
            group,
            count: 1,
            example: v.detail.clone(),
        });
    }
    for (kind, n) in more {
        match notes.iter_mut().find(|note| note.kind == kind.as_str()) {
            Some(note) => note.count += n,
            None => notes.push(ViolationNote {
                kind: kind.as_str().to_string(),
                meaning: violation_meaning(p, kind, None),
                group: None,
                count: n,
                example: String::new(),
            }),
        }
    }
    notes
}

/// What a violation kind means in a bench, with the likely cause when the workload shows it.
fn violation_meaning(p: &runner::Prepared, kind: ViolationKind, group: Option<&str>) -> String {
    let latest = group
        .and_then(|g| p.group_config(g))
        .filter(|c| c.auto_offset_reset == OffsetReset::Latest);
    match (kind, latest) {
        (ViolationKind::Unseen, Some(config)) => format!(
            "acknowledged records this group never read. It starts at the newest offset ({} default: {}), so it skips everything produced before it had its partitions; set \"auto.offset.reset\" = \"earliest\" to read them.",
            config.client.name(),
            match config.client {
                ClientKind::Sarama => "Consumer.Offsets.Initial = OffsetNewest",
                ClientKind::KafkaGo => "StartOffset = LastOffset",
                _ => "auto.offset.reset = latest",
            }
        ),
        (ViolationKind::Unseen, None) => "acknowledged records no consumer of the group read by the end of the run and its drain (the consumers fell behind or stopped)."
            .to_string(),
        (ViolationKind::LostWrite, _) => "acknowledged records the group read past without ever seeing them: a real loss."
            .to_string(),
        (ViolationKind::Duplicate, _) => "records delivered more than once.".to_string(),
        (ViolationKind::SinkLoss, _) => {
            "acknowledged records that never reached the group's sink (the database its \
             handler writes to)."
                .to_string()
        }
        (ViolationKind::Stall, _) => {
            let newest: Vec<&str> = p
                .scenario
                .consumer_groups
                .iter()
                .map(|g| g.group.as_str())
                .filter(|g| {
                    p.group_config(g)
                        .is_some_and(|c| c.auto_offset_reset == OffsetReset::Latest)
                })
                .collect();
            if newest.is_empty() {
                "the run stopped making progress.".to_string()
            } else {
                format!(
                    "the run stopped making progress. Group(s) {} start at the newest offset \
                     (auto.offset.reset = latest; sarama's default Consumer.Offsets.Initial = \
                     OffsetNewest): a group that joins after the producers stopped has \
                     nothing to read.",
                    newest.join(", ")
                )
            }
        }
        (ViolationKind::Lag, _) => "a group did not catch up within [expect] catch_up_within."
            .to_string(),
        _ => "see docs/scenarios.md, \"Violation kinds\".".to_string(),
    }
}

/// The publish rate of the last (at most) 10 whole seconds of the measured window, in MiB of
/// records per second (the window's bytes per record times the timeline's acknowledgements).
fn last_10s_mib_per_sec(r: &BenchResult) -> Option<f64> {
    if r.records_sent == 0 {
        return None;
    }
    let bytes_per_record = r.bytes_sent as f64 / r.records_sent as f64;
    let whole: Vec<f64> = r
        .timeline
        .iter()
        .filter(|p| p.t_s as f64 >= r.warmup_s && (p.t_s + 1) as f64 <= r.duration_s)
        .map(|p| p.publish_rate)
        .collect();
    let last = &whole[whole.len().saturating_sub(10)..];
    (!last.is_empty())
        .then(|| last.iter().sum::<f64>() / last.len() as f64 * bytes_per_record / 1_048_576.0)
}

/// The disk arithmetic of a run on `profile` (see [`DiskBound`]).
fn disk_bound(
    p: &runner::Prepared,
    profile: &HardwareProfile,
    throttled_s: &[(String, f64)],
) -> DiskBound {
    let s = &p.scenario;
    let produced: Vec<&str> = s.producers.iter().map(|p| p.topic.as_str()).collect();
    let replication_factor = s
        .topics
        .iter()
        .filter(|t| produced.contains(&t.name.as_str()))
        .map(|t| t.replication_factor)
        .max()
        .unwrap_or(1);
    let brokers = s.cluster.brokers;
    let compression_ratio = p.compression_ratio();
    let bound_bytes =
        profile.disk_bound_bytes_per_sec(brokers, replication_factor) as f64 / compression_ratio;
    DiskBound {
        disk_mb_per_sec: profile.disk_bytes_per_sec as f64 / 1e6,
        brokers,
        replication_factor,
        compression_ratio,
        bound_mib_per_sec: bound_bytes / (1u64 << 20) as f64,
        freerun_gb: profile.dirty_thresholds().freerun_bytes() as f64 / 1e9,
        throttled_s: throttled_s.to_vec(),
        last_10s_mib_per_sec: None,
    }
}

/// `base` with a sweep point's assignments applied, each to the family its name belongs to
/// (`sweep::family`): every topic, the cluster, every consumer group or every producer.
fn with_overrides(base: &Scenario, point: &[(String, String)]) -> Result<Scenario, BadInput> {
    let mut s = base.clone();
    for (name, value) in point {
        let (family, key) = sweep::family(name, &s).map_err(BadInput)?;
        match family {
            Family::Topic => set_topic_key(&mut s, name, key, value)?,
            Family::Broker => set_property(&mut s.cluster.config, key, value),
            Family::Consumer => {
                for group in &mut s.consumer_groups {
                    set_property(&mut group.config, key, value);
                }
            }
            Family::Producer => {
                for producer in &mut s.producers {
                    set_property(&mut producer.config, key, value);
                }
            }
        }
    }
    Ok(s)
}

/// `partitions` / `replication_factor` of every topic.
fn set_topic_key(s: &mut Scenario, name: &str, key: &str, value: &str) -> Result<(), BadInput> {
    let n: u32 = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
        BadInput(format!(
            "--sweep {name}={value}: expected a positive integer"
        ))
    })?;
    if key == "replication_factor" && n > s.cluster.brokers {
        return Err(BadInput(format!(
            "--sweep {name}={value}: the cluster has only {} brokers",
            s.cluster.brokers
        )));
    }
    for topic in &mut s.topics {
        if key == "partitions" {
            topic.partitions = n;
        } else {
            topic.replication_factor = n;
        }
    }
    Ok(())
}

/// Set (or add) property `key` in a config list; the engine judges the value in `prepare`.
fn set_property(config: &mut Vec<Property>, key: &str, value: &str) {
    let value = config_value(value);
    match config.iter_mut().find(|p| p.key == key) {
        Some(existing) => existing.value = value,
        None => config.push(Property {
            key: key.to_string(),
            value,
            line: 0,
            column: 0,
        }),
    }
}

/// A command-line value as the TOML file would have typed it.
fn config_value(text: &str) -> ConfigValue {
    if let Ok(i) = text.parse::<i64>() {
        ConfigValue::Int(i)
    } else if let Ok(b) = text.parse::<bool>() {
        ConfigValue::Bool(b)
    } else if let Ok(f) = text.parse::<f64>() {
        ConfigValue::Float(f)
    } else {
        ConfigValue::Str(text.to_string())
    }
}

/// A configuration error of a sweep point names the point (its values came from --sweep).
fn sweep_error(point: &[(String, String)], e: ScenarioError) -> BadInput {
    if point.is_empty() || e.line != 0 {
        return e.into();
    }
    let label: Vec<String> = point.iter().map(|(k, v)| format!("{k}={v}")).collect();
    BadInput(format!("--sweep point {}: {e}", label.join(", ")))
}

/// Fail before running when --report points at a directory that `write_report` will refuse.
fn refuse_foreign_report_dir(dir: &Path) -> Result<(), BadInput> {
    let Ok(mut entries) = std::fs::read_dir(dir) else {
        return Ok(()); // missing (created later) or not a directory (write_report says so)
    };
    if entries.next().is_some() && !dir.join(kafsim_reports::REPORT_MARKER).is_file() {
        return Err(BadInput(format!(
            "refusing to write the report into {}: it is not empty and not a previous kafsim \
             report; choose a new or empty directory",
            dir.display()
        )));
    }
    Ok(())
}

fn write_outputs(
    args: &BenchArgs,
    results: &[BenchResult],
    sweep: Option<&Sweep>,
    omb: &OmbShape,
) -> Result<(), BadInput> {
    if let Some(path) = &args.json {
        let text = match (results, sweep) {
            ([one], None) => render_json(one),
            _ => render_results_json(results, sweep),
        };
        std::fs::write(path, text)
            .map_err(|e| BadInput(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(dir) = &args.report {
        write_bench_report(dir, results, sweep, omb).map_err(|e| BadInput(e.to_string()))?;
        eprintln!("report written to {}", dir.display());
    }
    Ok(())
}

/// One line per sweep point: its values, then throughput and latencies (the consumer
/// columns only when a point has consumers), then the disk bound (which compression moves).
fn comparison_table(sweep: &Sweep) -> String {
    let names = sweep.parameters();
    let consumers = sweep.points.iter().any(|p| p.result.has_consumers());
    type Column = (&'static str, fn(&BenchResult) -> String);
    let mut columns: Vec<Column> = vec![
        ("records/s", |r| format!("{:.1}", r.publish_rate)),
        ("MB/s", |r| format!("{:.2}", r.publish_mib_per_sec)),
        ("publish p50 ms", |r| {
            format!("{:.2}", r.publish_latency_ms.p50)
        }),
        ("publish p99 ms", |r| {
            format!("{:.2}", r.publish_latency_ms.p99)
        }),
    ];
    if consumers {
        columns.extend([
            (
                "e2e p50 ms",
                (|r| format!("{:.2}", r.end_to_end_latency_ms.p50)) as fn(&BenchResult) -> String,
            ),
            ("e2e p99 ms", |r| {
                format!("{:.2}", r.end_to_end_latency_ms.p99)
            }),
            ("consumed/s", |r| format!("{:.1}", r.consume_rate)),
        ]);
    }
    columns.push(("disk bound MiB/s", |r| {
        r.disk
            .as_ref()
            .map_or(String::new(), |d| format!("{:.1}", d.bound_mib_per_sec))
    }));
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = names.clone();
    header.extend(columns.iter().map(|(h, _)| h.to_string()));
    rows.push(header);
    for point in &sweep.points {
        let mut row: Vec<String> = names
            .iter()
            .map(|n| point.value_of(n).to_string())
            .collect();
        row.extend(columns.iter().map(|(_, cell)| cell(&point.result)));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:>w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_values_are_typed_like_toml() {
        assert_eq!(config_value("5"), ConfigValue::Int(5));
        assert_eq!(config_value("true"), ConfigValue::Bool(true));
        assert_eq!(config_value("0.5"), ConfigValue::Float(0.5));
        assert_eq!(config_value("all"), ConfigValue::Str("all".into()));
    }
}
