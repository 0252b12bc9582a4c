//! `kafsim run SCENARIO`: a fault-injection campaign over many seeds (DESIGN §6).
//!
//! Prints one line per failing seed with its kinds and the exact replay command, then a
//! summary. The failing seeds and their violations do not depend on `--jobs`; `--shard I/N`
//! runs the seeds whose index % N == I so a CI matrix can split a campaign, and the shards'
//! JSON files merge (union of `failed_seeds` and `violations`, sums of `kinds` and of the
//! `stats` counts, maxima of `catch_up_seconds` and `peak_lag`).

use super::common;
use indicatif::{ProgressBar, ProgressStyle};
use kafsim_sim::campaign::{run_seeds, RunStats, SeedRange, SeedResult};
use kafsim_sim::runner::{run_seed, Prepared, RunOptions};
use serde::Serialize;
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

/// The `--json` document (DESIGN §6, field names exactly).
#[derive(Serialize)]
pub struct CampaignJson {
    pub scenario: String,
    pub first_seed: u64,
    pub seeds: u64,
    pub failed_seeds: Vec<u64>,
    pub kinds: BTreeMap<String, u64>,
    pub violations: Vec<ViolationJson>,
    pub stats: StatsJson,
    /// Seeds that produced any violation (failing, or only allowed kinds), in seed order, at
    /// most `MAX_SEED_ROWS`; every other seed passed cleanly.
    pub seed_verdicts: Vec<SeedVerdictJson>,
    /// Faults applied over all seeds, by action (`crash`, `partition`, ...).
    pub fault_mix: BTreeMap<String, u64>,
}

/// One seed's line of the per-seed table.
#[derive(Serialize)]
pub struct SeedVerdictJson {
    pub seed: u64,
    /// `"fail"`, or `"pass"` when every violation of the seed is of an allowed kind.
    pub verdict: &'static str,
    /// Violations by kind (failing and allowed alike).
    pub kinds: BTreeMap<String, u64>,
    pub repro: String,
}

/// Rows of the per-seed table kept in the JSON and the report.
pub const MAX_SEED_ROWS: usize = 1_000;

#[derive(Serialize)]
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
}

/// `stats` (DESIGN §6, §8): counts and seconds are sums over the seeds; `catch_up_seconds`
/// (the slowest group of the slowest seed, null when no group ever caught up) and `peak_lag`
/// (per group, records) are maxima; the rates are simulated records per second, acknowledged
/// over the load phases and read over whole runs.
#[derive(Serialize)]
pub struct StatsJson {
    pub events: u64,
    pub records_produced: u64,
    pub records_acked: u64,
    pub records_consumed: u64,
    pub records_failed: u64,
    pub records_unknown: u64,
    pub catch_up_seconds: Option<f64>,
    pub peak_lag: BTreeMap<String, u64>,
    pub produce_rate: f64,
    pub consume_rate: f64,
    pub sim_seconds: f64,
    pub wall_seconds: f64,
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
            catch_up_seconds: stats.catch_up_seconds(),
            peak_lag: stats
                .groups
                .iter()
                .map(|(g, s)| (g.clone(), s.peak_lag))
                .collect(),
            produce_rate: stats.produce_rate(),
            consume_rate: stats.consume_rate(),
            sim_seconds: stats.sim_seconds,
            wall_seconds,
        }
    }

    /// The drain line of a summary: failed / unknown sends, catch-up, peak lag, rates.
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
            "records failed {} / unknown {}; caught up {} after the heal (slowest); peak lag {}; produced {:.0} records/s, consumed {:.0} records/s",
            self.records_failed,
            self.records_unknown,
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
        range.first,
        &seeds,
        &results,
        wall_seconds,
    );
    for r in &results {
        let failures = common::failures(&prepared, &r.violations);
        if !failures.is_empty() {
            let kinds = common::describe_kinds(&common::count_kinds(failures));
            println!(
                "FAIL seed {}: {kinds}\n     {}",
                r.seed,
                common::repro(&args.scenario, r.seed)
            );
        }
    }
    print_summary(&doc, jobs);
    write_outputs(&args, &prepared, &doc, &results)?;
    Ok(if doc.failed_seeds.is_empty() {
        super::EXIT_OK
    } else {
        super::EXIT_FAILURES
    })
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
pub fn campaign_json(
    prepared: &Prepared,
    path: &Path,
    first_seed: u64,
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
                verdict: if failures.is_empty() { "pass" } else { "fail" },
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
        for v in failures.into_iter().take(MAX_LISTED_PER_SEED) {
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
            });
        }
    }
    CampaignJson {
        scenario: prepared.scenario.name.clone(),
        first_seed,
        seeds: seeds.len() as u64,
        failed_seeds,
        kinds,
        violations,
        fault_mix: stats.faults.clone(),
        stats: StatsJson::new(&stats, wall_seconds),
        seed_verdicts,
    }
}

fn print_summary(doc: &CampaignJson, jobs: usize) {
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
        "simulated {:.1} s in {:.2} wall s on {jobs} threads: {:.0} events/s, {:.0} records/s, {:.1} simulated s per wall s, {:.1} seeds/min",
        s.sim_seconds,
        s.wall_seconds,
        per_wall(s.events as f64),
        per_wall(s.records_produced as f64),
        per_wall(s.sim_seconds),
        per_wall(doc.seeds as f64) * 60.0,
    );
}

fn write_outputs(
    args: &RunArgs,
    prepared: &Prepared,
    doc: &CampaignJson,
    results: &[SeedResult],
) -> Result<(), u8> {
    let io = |what: &Path, e: std::io::Error| {
        eprintln!("kafsim run: cannot write {}: {e}", what.display());
        super::EXIT_BAD_INPUT
    };
    let json = serde_json::to_string_pretty(doc).expect("campaign JSON serialises");
    if let Some(path) = &args.json {
        common::write_atomic(path, &json).map_err(|e| io(path, e))?;
    }
    if let Some(path) = &args.junit {
        common::write_atomic(path, &junit(prepared, &args.scenario, doc, results))
            .map_err(|e| io(path, e))?;
    }
    if let Some(dir) = &args.report {
        super::campaign_report::write(dir, doc, &json).map_err(|e| {
            eprintln!("kafsim run: {e}");
            super::EXIT_BAD_INPUT
        })?;
    }
    Ok(())
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one testsuite, one testcase per seed, one `<failure>` per violation listed.
pub fn junit(
    prepared: &Prepared,
    path: &Path,
    doc: &CampaignJson,
    results: &[SeedResult],
) -> String {
    let name = xml_escape(&doc.scenario);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuite name=\"kafsim.{name}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">\n",
        results.len(),
        doc.failed_seeds.len(),
        doc.stats.wall_seconds
    ));
    for r in results {
        out.push_str(&format!(
            "  <testcase classname=\"kafsim.{name}\" name=\"seed {}\" time=\"{:.3}\">\n",
            r.seed, r.stats.wall_seconds
        ));
        for v in common::failures(prepared, &r.violations)
            .into_iter()
            .take(MAX_LISTED_PER_SEED)
        {
            let message = xml_escape(&format!("{}: {}", v.kind, v.detail));
            let body = xml_escape(&format!(
                "at {} simulated\nreproduce: {}",
                v.at,
                common::repro(path, r.seed)
            ));
            out.push_str(&format!(
                "    <failure type=\"{}\" message=\"{message}\">{body}</failure>\n",
                v.kind
            ));
        }
        out.push_str("  </testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}
