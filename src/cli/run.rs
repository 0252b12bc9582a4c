//! `kafsim run SCENARIO`: a fault-injection campaign over many seeds (DESIGN §6).
//!
//! Prints one line per failing seed with its kinds and the exact replay command, then a
//! summary. The failing seeds and their violations do not depend on `--jobs`; `--shard I/N`
//! runs the seeds whose index % N == I so a CI matrix can split a campaign, and the shards'
//! JSON files merge (union of `failed_seeds` and `violations`, sums of `kinds` and of the
//! `stats` counts, maxima of `catch_up_seconds` and `peak_lag`).

use super::common;
use indicatif::{ProgressBar, ProgressStyle};
use kafsim_sim::campaign::{run_seeds, GroupStats, ProducerStats, RunStats, SeedRange, SeedResult};
use kafsim_sim::coverage::{Coverage, FaultCount, FaultNote, STATES};
use kafsim_sim::runner::{run_seed, Prepared, RunOptions};
use kafsim_sim::violation::{Violation, ViolationKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Violations listed per seed in JSON and JUnit (the `kinds` counts are always complete).
pub const MAX_LISTED_PER_SEED: usize = 100;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The scenario file
    scenario: PathBuf,
    /// Number of seeds (default: the scenario's `seeds`)
    #[arg(long)]
    seeds: Option<u64>,
    /// Run exactly this one seed
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    seed: Option<u64>,
    /// First seed of the range
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Threads (default: all cores); results do not depend on it
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only the seeds whose index % N == I (e.g. 0/4)
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Write the campaign result as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML file (one testcase per seed, one failure per violation)
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a campaign report (index.html, summary.md, results.json) into DIR
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// No progress bar
    #[arg(long)]
    no_progress: bool,
}

/// The `--json` document (DESIGN §6, §8, field names exactly). It is also what `kafsim merge`
/// reads back: everything a merged campaign needs (the exact sums, the per-group catch-up)
/// is in it, so that merging shards gives the whole campaign's document.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CampaignJson {
    pub scenario: String,
    /// The first seed of the range; absent in a shard's file, whose seeds are not a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seed: Option<u64>,
    /// How many seeds ran (in a shard's file: that shard's seeds).
    pub seeds: u64,
    /// `--shard I/N`: which shard this file is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// With `--shard`: exactly the seeds this shard ran, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_list: Option<Vec<u64>>,
    pub failed_seeds: Vec<u64>,
    pub kinds: BTreeMap<String, u64>,
    pub violations: Vec<ViolationJson>,
    pub stats: StatsJson,
    /// Absent in files written before coverage existed (then empty).
    #[serde(default)]
    pub coverage: CoverageJson,
    /// Seeds that produced any violation (failing, or only allowed kinds), in seed order, at
    /// most `MAX_SEED_ROWS`; every other seed passed cleanly.
    #[serde(default)]
    pub seed_verdicts: Vec<SeedVerdictJson>,
    /// Faults applied over all seeds, by action (`crash`, `partition`, ...).
    #[serde(default)]
    pub fault_mix: BTreeMap<String, u64>,
}

/// `coverage`: per requested fault kind how often it fired and how often a client-visible
/// effect followed; per interesting state the runs that reached it and its occurrences; the
/// scripted faults that did less than asked; and the warnings the summary prints (a
/// requested fault kind that never fired or never affected a client, a scripted fault whose
/// target named no node or whose duration the load phase cut short). See
/// `kafsim_sim::coverage`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct CoverageJson {
    pub faults: BTreeMap<String, FaultCoverageJson>,
    pub states: BTreeMap<String, StateCoverageJson>,
    pub warnings: Vec<String>,
    /// By what happened (the warning's text before its runs): the runs it happened in and
    /// the lowest seed's reason, so that `merge` rebuilds the warnings of merged shards.
    /// Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scripted: BTreeMap<String, ScriptedWarningJson>,
}

/// One scripted fault that did less than asked: in how many runs, and the lowest seed's
/// reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ScriptedWarningJson {
    pub runs: u64,
    pub seed: u64,
    pub why: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FaultCoverageJson {
    pub fired: u64,
    pub affected_clients: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StateCoverageJson {
    pub runs: u64,
    pub count: u64,
}

impl CoverageJson {
    pub fn new(c: &Coverage) -> CoverageJson {
        CoverageJson {
            faults: c
                .faults
                .iter()
                .map(|(k, f)| {
                    let json = FaultCoverageJson {
                        fired: f.fired,
                        affected_clients: f.affected,
                    };
                    (k.clone(), json)
                })
                .collect(),
            states: STATES
                .iter()
                .map(|s| {
                    let (runs, count) = c.states.get(*s).copied().unwrap_or_default();
                    (s.to_string(), StateCoverageJson { runs, count })
                })
                .collect(),
            warnings: c.warnings(),
            scripted: (c.scripted.iter())
                .map(|(what, n)| {
                    let json = ScriptedWarningJson {
                        runs: n.runs,
                        seed: n.seed,
                        why: n.why.clone(),
                    };
                    (what.clone(), json)
                })
                .collect(),
        }
    }

    /// Back to the sums, for `merge` (a shard's file covers `runs` seeds).
    pub fn to_coverage(&self, runs: u64) -> Coverage {
        Coverage {
            faults: self
                .faults
                .iter()
                .map(|(k, f)| {
                    let count = FaultCount {
                        fired: f.fired,
                        affected: f.affected_clients,
                    };
                    (k.clone(), count)
                })
                .collect(),
            states: self
                .states
                .iter()
                .filter(|(_, st)| st.runs > 0 || st.count > 0)
                .map(|(k, st)| (k.clone(), (st.runs, st.count)))
                .collect(),
            scripted: (self.scripted.iter())
                .map(|(what, n)| {
                    let note = FaultNote {
                        runs: n.runs,
                        seed: n.seed,
                        why: n.why.clone(),
                    };
                    (what.clone(), note)
                })
                .collect(),
            runs,
        }
    }
}

/// One seed's line of the per-seed table.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SeedVerdictJson {
    pub seed: u64,
    /// `"fail"`, or `"pass"` when every violation of the seed is of an allowed kind.
    pub verdict: String,
    /// Violations by kind (failing and allowed alike).
    pub kinds: BTreeMap<String, u64>,
    pub repro: String,
}

/// Rows of the per-seed table kept in the JSON and the report.
pub const MAX_SEED_ROWS: usize = 1_000;

impl CampaignJson {
    /// The seeds the document covers, in order.
    pub fn seed_list(&self) -> Vec<u64> {
        match (&self.seed_list, self.first_seed) {
            (Some(list), _) => list.clone(),
            (None, Some(first)) => (0..self.seeds).map(|i| first.wrapping_add(i)).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// "Seeds 20 (first 1)" or "Seeds 10 (shard 1/2: 2, 4, ...)" for reports.
    pub fn describe_seeds(&self) -> String {
        match (&self.shard, self.first_seed) {
            (Some(shard), _) => {
                let list = self.seed_list();
                let shown: Vec<String> = list.iter().take(8).map(|s| s.to_string()).collect();
                let more = if list.len() > 8 { ", ..." } else { "" };
                format!(
                    "Seeds {} (shard {shard}: {}{more})",
                    self.seeds,
                    shown.join(", ")
                )
            }
            (None, first) => format!("Seeds {} (first {})", self.seeds, first.unwrap_or(0)),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ViolationJson {
    pub seed: u64,
    pub kind: String,
    pub topic: Option<String>,
    pub partition: Option<u32>,
    pub offset: Option<u64>,
    pub value: Option<u64>,
    pub at_ms: f64,
    pub detail: String,
    pub repro: String,
    /// A `panic`: the node that panicked, by its name (`broker-2`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A `panic`: the event it was handling (`a FetchRequest from broker-0`); absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// `stats` (DESIGN §6, §8): counts and seconds are sums over the seeds; `catch_up_seconds`
/// (the slowest group of the slowest seed, null when no group ever caught up) and `peak_lag`
/// (per group, records) are maxima; the rates are simulated records per second, acknowledged
/// over the load phases and read over whole runs. `load_seconds` and `catch_up` (per group: the
/// slowest catch-up of any seed, null when it never caught up) are what `merge` needs to
/// recompute the rates and `catch_up_seconds` of merged shards exactly.
///
/// It mirrors `sim::campaign::RunStats` field by field on purpose: it is the JSON contract,
/// with defaults for older files, and must not move when the simulator's counters do.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StatsJson {
    pub events: u64,
    pub records_produced: u64,
    pub records_acked: u64,
    pub records_consumed: u64,
    pub records_failed: u64,
    pub records_unknown: u64,
    /// Sink writes refused as duplicates (absent in files of older versions: 0).
    #[serde(default)]
    pub records_refused: u64,
    pub catch_up_seconds: Option<f64>,
    pub peak_lag: BTreeMap<String, u64>,
    pub produce_rate: f64,
    pub consume_rate: f64,
    pub sim_seconds: f64,
    pub load_seconds: f64,
    pub catch_up: BTreeMap<String, Option<f64>>,
    pub wall_seconds: f64,
    /// Per producer: sends made and sends its rate asked for (absent in older files).
    #[serde(default)]
    pub producers: BTreeMap<String, ProducerJson>,
}

/// One producer's sends against its rate, and why such a producer falls short.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProducerJson {
    pub sent: u64,
    pub asked: u64,
    pub pace: String,
}

impl StatsJson {
    pub fn new(stats: &RunStats, wall_seconds: f64) -> StatsJson {
        StatsJson {
            events: stats.events,
            records_produced: stats.records_produced,
            records_acked: stats.records_acked,
            records_consumed: stats.records_consumed,
            records_failed: stats.records_failed,
            records_unknown: stats.records_unknown,
            records_refused: stats.records_refused,
            catch_up_seconds: stats.catch_up_seconds(),
            peak_lag: stats
                .groups
                .iter()
                .map(|(g, s)| (g.clone(), s.peak_lag))
                .collect(),
            produce_rate: stats.produce_rate(),
            consume_rate: stats.consume_rate(),
            sim_seconds: stats.sim_seconds,
            load_seconds: stats.load_seconds,
            catch_up: stats
                .groups
                .iter()
                .map(|(g, s)| (g.clone(), s.catch_up_seconds))
                .collect(),
            wall_seconds,
            producers: (stats.producers.iter())
                .map(|(name, p)| {
                    let json = ProducerJson {
                        sent: p.sent,
                        asked: p.asked,
                        pace: p.pace.clone(),
                    };
                    (name.clone(), json)
                })
                .collect(),
        }
    }

    /// The counters back as a [`RunStats`] (what `merge` adds up): the simulated times in
    /// whole nanoseconds, as the runs counted them.
    pub fn to_run_stats(&self) -> RunStats {
        let nanos = |s: f64| (s * 1e9).round() as u64;
        let mut stats = RunStats {
            events: self.events,
            records_produced: self.records_produced,
            records_acked: self.records_acked,
            records_consumed: self.records_consumed,
            records_failed: self.records_failed,
            records_unknown: self.records_unknown,
            records_refused: self.records_refused,
            sim_seconds: self.sim_seconds,
            load_seconds: self.load_seconds,
            sim_nanos: nanos(self.sim_seconds),
            load_nanos: nanos(self.load_seconds),
            wall_seconds: self.wall_seconds,
            groups: BTreeMap::new(),
            // Coverage travels in the document's own `coverage` field.
            coverage: Coverage::default(),
            // The fault mix travels beside the stats (`CampaignJson::fault_mix`).
            faults: BTreeMap::new(),
            producers: (self.producers.iter())
                .map(|(name, p)| {
                    let stats = ProducerStats {
                        sent: p.sent,
                        asked: p.asked,
                        pace: p.pace.clone(),
                    };
                    (name.clone(), stats)
                })
                .collect(),
        };
        for (name, peak_lag) in &self.peak_lag {
            stats.groups.insert(
                name.clone(),
                GroupStats {
                    peak_lag: *peak_lag,
                    catch_up_seconds: self.catch_up.get(name).copied().flatten(),
                    records_consumed: 0,
                },
            );
        }
        stats
    }

    /// The drain line of a summary: failed / unknown sends, refused sink writes, catch-up,
    /// peak lag, rates.
    pub fn drain_line(&self) -> String {
        let catch_up = match self.catch_up_seconds {
            _ if self.peak_lag.is_empty() => "-".to_string(),
            Some(c) => format!("{c:.1} s"),
            None => "never".to_string(),
        };
        let lags: Vec<String> = self
            .peak_lag
            .iter()
            .map(|(g, l)| format!("{g} {l}"))
            .collect();
        format!(
            "records failed {} / unknown {}; sink writes refused as duplicates {}; caught up {} after the heal (slowest); peak lag {}; produced {:.0} records/s, consumed {:.0} records/s",
            self.records_failed,
            self.records_unknown,
            self.records_refused,
            catch_up,
            if lags.is_empty() { "-".to_string() } else { lags.join(", ") },
            self.produce_rate,
            self.consume_rate,
        )
    }
}

pub fn main(args: RunArgs) -> u8 {
    match run(args) {
        Ok(code) | Err(code) => code,
    }
}

fn run(args: RunArgs) -> Result<u8, u8> {
    let prepared = common::load(&args.scenario)?;
    let shard = match &args.shard {
        Some(s) => Some(common::parse_shard(s).map_err(|e| {
            eprintln!("kafsim run: {e}");
            super::EXIT_BAD_INPUT
        })?),
        None => None,
    };
    for (path, flag) in [(&args.json, "--json"), (&args.junit, "--junit")] {
        if let Some(p) = path {
            common::check_output(p, flag)?;
        }
    }
    let range = match args.seed {
        Some(seed) => SeedRange {
            first: seed,
            count: 1,
            shard: None,
        },
        None => SeedRange {
            first: args.first_seed,
            count: args.seeds.unwrap_or(prepared.scenario.seeds),
            shard,
        },
    };
    let seeds = range.seeds();
    let jobs = args.jobs.unwrap_or_else(common::default_jobs).max(1);
    let bar = progress(seeds.len() as u64, args.no_progress);
    let wall = std::time::Instant::now();
    let results = run_seeds(
        &seeds,
        jobs,
        |seed| run_seed(&prepared, seed, &RunOptions::default()).result,
        |_| bar.inc(1),
    );
    bar.finish_and_clear();
    let wall_seconds = wall.elapsed().as_secs_f64();

    let doc = campaign_json(
        &prepared,
        &args.scenario,
        range.shard,
        &seeds,
        &results,
        wall_seconds,
    );
    for r in &results {
        let failures = common::failures(&prepared, &r.violations);
        if !failures.is_empty() {
            let kinds = common::describe_kinds(&common::count_kinds(failures.iter().copied()));
            println!(
                "FAIL seed {}: {kinds}\n     {}",
                r.seed,
                common::repro(&args.scenario, r.seed)
            );
            // A panic ends the run: say where at once (its replay tells the rest).
            for v in failures.iter().filter(|v| v.kind == ViolationKind::Panic) {
                println!("     {}", panic_line(v));
            }
        }
    }
    print_summary(&doc, Some(jobs));
    write_outputs(
        "run",
        &doc,
        args.json.as_deref(),
        args.junit.as_deref(),
        args.report.as_deref(),
    )?;
    Ok(if doc.failed_seeds.is_empty() {
        super::EXIT_OK
    } else {
        super::EXIT_FAILURES
    })
}

/// `panic at 3000.000ms in broker-0, handling a ControllerSyncAck from rogue: MESSAGE at
/// FILE:LINE`: the first line of a panic's detail with where it happened.
pub fn panic_line(v: &Violation) -> String {
    let message = v.detail.lines().next().unwrap_or_default();
    match (&v.node, &v.event) {
        (Some(node), Some(event)) => {
            format!("panic at {} in {node}, handling {event}: {message}", v.at)
        }
        _ => format!("panic at {}: {message}", v.at),
    }
}

fn progress(len: u64, disabled: bool) -> ProgressBar {
    if disabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {elapsed_precise}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Build the JSON document of a campaign (also the basis of the summary and the report).
/// `seeds` are the seeds that ran, in order; with a `shard` (I, N) the document says which
/// shard and lists them instead of claiming a range.
pub fn campaign_json(
    prepared: &Prepared,
    path: &Path,
    shard: Option<(u64, u64)>,
    seeds: &[u64],
    results: &[SeedResult],
    wall_seconds: f64,
) -> CampaignJson {
    let mut stats = RunStats::default();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed_seeds = Vec::new();
    let mut violations = Vec::new();
    let topic_name = |id: u32| {
        prepared
            .scenario
            .topics
            .get(id as usize)
            .map_or_else(|| "__consumer_offsets".to_string(), |t| t.name.clone())
    };
    let mut seed_verdicts = Vec::new();
    for r in results {
        stats.add(&r.stats);
        let failures = common::failures(prepared, &r.violations);
        if !r.violations.is_empty() && seed_verdicts.len() < MAX_SEED_ROWS {
            seed_verdicts.push(SeedVerdictJson {
                seed: r.seed,
                verdict: if failures.is_empty() { "pass" } else { "fail" }.to_string(),
                kinds: common::count_kinds(&r.violations)
                    .into_iter()
                    .map(|(k, n)| (k.as_str().to_string(), n))
                    .collect(),
                repro: common::repro(path, r.seed),
            });
        }
        if failures.is_empty() {
            continue;
        }
        failed_seeds.push(r.seed);
        for (k, n) in common::count_kinds(failures.iter().copied()) {
            *kinds.entry(k.as_str().to_string()).or_insert(0) += n;
        }
        for v in listed(&failures) {
            violations.push(ViolationJson {
                seed: r.seed,
                kind: v.kind.as_str().to_string(),
                topic: v.partition.map(|tp| topic_name(tp.topic.0)),
                partition: v.partition.map(|tp| tp.partition),
                offset: v.offset,
                value: v.value.map(|x| x.0),
                at_ms: v.at.as_nanos() as f64 / 1e6,
                detail: v.detail.clone(),
                repro: common::repro(path, r.seed),
                node: v.node.clone(),
                event: v.event.clone(),
            });
        }
    }
    CampaignJson {
        scenario: prepared.scenario.name.clone(),
        first_seed: match shard {
            Some(_) => None,
            None => Some(seeds.first().copied().unwrap_or(1)),
        },
        seeds: seeds.len() as u64,
        shard: shard.map(|(i, n)| format!("{i}/{n}")),
        seed_list: shard.map(|_| seeds.to_vec()),
        failed_seeds,
        kinds,
        violations,
        coverage: CoverageJson::new(&stats.coverage),
        fault_mix: stats.faults.clone(),
        stats: StatsJson::new(&stats, wall_seconds),
        seed_verdicts,
    }
}

/// The violations of one seed that the JSON lists: at most [`MAX_LISTED_PER_SEED`], in the
/// run's order, and always the first of every kind, so that the JUnit failure of a seed
/// (written from the JSON alone) names all its kinds.
fn listed<'a>(failures: &[&'a Violation]) -> Vec<&'a Violation> {
    let mut keep = vec![false; failures.len()];
    let mut seen = std::collections::BTreeSet::new();
    for (i, v) in failures.iter().enumerate() {
        if seen.insert(v.kind) {
            keep[i] = true;
        }
    }
    let mut room = MAX_LISTED_PER_SEED.saturating_sub(seen.len());
    for k in keep.iter_mut() {
        if !*k && room > 0 {
            *k = true;
            room -= 1;
        }
    }
    failures
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(v, _)| *v)
        .collect()
}

/// The summary of a campaign; `threads` is None for merged shards (their wall seconds are the
/// sum of the shards').
pub fn print_summary(doc: &CampaignJson, threads: Option<usize>) {
    let s = &doc.stats;
    let per_wall = |x: f64| {
        if s.wall_seconds > 0.0 {
            x / s.wall_seconds
        } else {
            0.0
        }
    };
    println!(
        "scenario {}: {} seeds run, {} failed",
        doc.scenario,
        doc.seeds,
        doc.failed_seeds.len()
    );
    for (kind, n) in &doc.kinds {
        println!("  {kind}: {n}");
    }
    println!(
        "events {}, records produced {} / acknowledged {} / consumed {}",
        s.events, s.records_produced, s.records_acked, s.records_consumed
    );
    println!("{}", s.drain_line());
    println!(
        "simulated {:.1} s in {:.2} wall s {}: {:.0} events/s, {:.0} records/s, {:.1} simulated s per wall s, {:.1} seeds/min",
        s.sim_seconds,
        s.wall_seconds,
        match threads {
            Some(jobs) => format!("on {jobs} threads"),
            None => "summed over the shards".to_string(),
        },
        per_wall(s.events as f64),
        per_wall(s.records_produced as f64),
        per_wall(s.sim_seconds),
        per_wall(doc.seeds as f64) * 60.0,
    );
    // Memory is the process's own peak, so only a campaign run here (not merged shards)
    // reports it, and only a single seed divides it by its records.
    if let (Some(_), Some(peak)) = (threads, peak_resident_bytes()) {
        let mib = peak as f64 / (1u64 << 20) as f64;
        if doc.seeds == 1 && s.records_produced > 0 {
            println!(
                "peak memory {mib:.0} MiB, {} bytes per simulated record",
                peak / s.records_produced
            );
        } else {
            println!("peak memory {mib:.0} MiB");
        }
    }
    for line in coverage_lines(&doc.coverage, doc.seeds) {
        println!("{line}");
    }
    for line in doc.stats.to_run_stats().producer_warnings() {
        println!("{line}");
    }
}

/// The process's peak resident memory (Linux's `VmHWM` in `/proc/self/status`); `None`
/// where that file does not exist.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The coverage summary: faults fired (and affecting clients), states reached, warnings.
pub fn coverage_lines(c: &CoverageJson, runs: u64) -> Vec<String> {
    let mut out = Vec::new();
    if !c.faults.is_empty() {
        let faults: Vec<String> = c
            .faults
            .iter()
            .map(|(k, f)| {
                format!(
                    "{k} fired {} (affected clients {})",
                    f.fired, f.affected_clients
                )
            })
            .collect();
        out.push(format!("coverage: faults {}", faults.join(", ")));
    }
    let states: Vec<String> = c
        .states
        .iter()
        .map(|(k, st)| format!("{k} {} in {}/{runs} runs", st.count, st.runs))
        .collect();
    out.push(format!("coverage: states {}", states.join(", ")));
    out.extend(c.warnings.iter().cloned());
    out
}

/// Write the `--json`, `--junit` and `--report` outputs of a campaign document (`run` and
/// `merge`); exit status 2 if one cannot be written.
pub fn write_outputs(
    command: &str,
    doc: &CampaignJson,
    json_path: Option<&Path>,
    junit_path: Option<&Path>,
    report: Option<&Path>,
) -> Result<(), u8> {
    let io = |what: &Path, e: std::io::Error| {
        eprintln!("kafsim {command}: cannot write {}: {e}", what.display());
        super::EXIT_BAD_INPUT
    };
    let json = serde_json::to_string_pretty(doc).expect("campaign JSON serialises");
    if let Some(path) = json_path {
        common::write_atomic(path, &json).map_err(|e| io(path, e))?;
    }
    if let Some(path) = junit_path {
        common::write_atomic(path, &junit(doc)).map_err(|e| io(path, e))?;
    }
    if let Some(dir) = report {
        super::campaign_report::write(dir, doc, &json).map_err(|e| {
            eprintln!("kafsim {command}: {e}");
            super::EXIT_BAD_INPUT
        })?;
    }
    Ok(())
}

/// JUnit XML of a campaign document (the same for a run and for merged shards).
pub fn junit(doc: &CampaignJson) -> String {
    super::junit::from_campaign(doc)
}
