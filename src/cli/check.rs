//! `kafsim check`: every scenario of the library against its `[expect]` (DESIGN §6). A
//! scenario that breaks a piece of Kafka advice must show its violation within its seeds;
//! its twin that follows the advice must show none. Exit 1 if any expectation is not met.

use super::common;
use kafsim_sim::campaign::{run_seeds, SeedRange};
use kafsim_sim::runner::{run_seed, RunOptions};
use kafsim_sim::scenario;
use kafsim_sim::violation::ViolationKind;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Seeds per scenario (default: each scenario's own `seeds`)
    #[arg(long)]
    seeds: Option<u64>,
    /// Threads (default: all cores)
    #[arg(long)]
    jobs: Option<usize>,
    /// Write a report of every scenario into DIR (summary.md, results.json, index.html)
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Scenario directory (default: ./scenarios, else the source checkout's scenarios/)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// One row of the table.
struct Row {
    name: String,
    expectation: String,
    ok: bool,
    why: String,
    first_failing: Option<u64>,
    seeds: u64,
    wall_seconds: f64,
    /// The slowest catch-up after the heal over seeds and groups (None: some never did).
    catch_up: Option<f64>,
    /// The largest consumer lag of any group in any seed, records.
    peak_lag: u64,
    has_groups: bool,
    /// Sends that ended failed / with an unknown outcome, over every seed.
    sends_failed: u64,
    sends_unknown: u64,
    sink_refused: u64,
}

pub fn main(args: CheckArgs) -> u8 {
    let dir = scenario::library_dir(args.dir.as_deref());
    let files = match scenario::library_files(&dir) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("kafsim check: no scenario files in {}", dir.display());
            return super::EXIT_BAD_INPUT;
        }
        Err(e) => {
            eprintln!("kafsim check: cannot read {}: {e}", dir.display());
            return super::EXIT_BAD_INPUT;
        }
    };
    // Parse everything first: a bad library file is bad input, before anything runs.
    let mut prepared = Vec::new();
    for f in &files {
        match common::load(f) {
            Ok(p) => prepared.push((f.clone(), p)),
            Err(code) => return code,
        }
    }
    let jobs = args.jobs.unwrap_or_else(common::default_jobs).max(1);
    let mut rows = Vec::new();
    let mut report = String::new();
    println!(
        "{:<36} {:<28} {:<8} {:>13} {:>6} {:>8} {:>9} {:>9} {:>22}",
        "scenario",
        "expectation",
        "verdict",
        "first-failing",
        "seeds",
        "wall",
        "catch-up",
        "peak-lag",
        "failed/unknown/refused"
    );
    for (path, p) in &prepared {
        let wall = std::time::Instant::now();
        let count = args.seeds.unwrap_or(p.scenario.seeds);
        let seeds = SeedRange {
            first: 1,
            count,
            shard: None,
        }
        .seeds();
        let results = run_seeds(
            &seeds,
            jobs,
            |seed| run_seed(p, seed, &RunOptions::default()).result,
            |_| {},
        );
        let mut stats = kafsim_sim::campaign::RunStats::default();
        results.iter().for_each(|r| stats.add(&r.stats));
        let mut found: BTreeSet<ViolationKind> = BTreeSet::new();
        let mut first_failing = None;
        for r in &results {
            let failures = common::failures(p, &r.violations);
            if !failures.is_empty() && first_failing.is_none() {
                first_failing = Some(r.seed);
            }
            found.extend(failures.iter().map(|v| v.kind));
        }
        let expected: BTreeSet<ViolationKind> =
            p.scenario.expect.violations.iter().copied().collect();
        let missing: Vec<&str> = expected.difference(&found).map(|k| k.as_str()).collect();
        let unexpected: Vec<&str> = found.difference(&expected).map(|k| k.as_str()).collect();
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("not found: {}", missing.join(", ")));
        }
        if !unexpected.is_empty() {
            why.push(format!("unexpected: {}", unexpected.join(", ")));
        }
        let row = Row {
            name: p.scenario.name.clone(),
            expectation: if expected.is_empty() {
                "none".to_string()
            } else {
                expected
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            ok: why.is_empty(),
            why: why.join("; "),
            first_failing,
            seeds: count,
            wall_seconds: wall.elapsed().as_secs_f64(),
            catch_up: stats.catch_up_seconds(),
            peak_lag: stats.groups.values().map(|g| g.peak_lag).max().unwrap_or(0),
            has_groups: !stats.groups.is_empty(),
            sends_failed: stats.records_failed,
            sends_unknown: stats.records_unknown,
            sink_refused: stats.records_refused,
        };
        print_row(&row);
        if args.report.is_some() {
            let doc = super::run::campaign_json(p, path, None, &seeds, &results, row.wall_seconds);
            report.push_str(&super::campaign_report::markdown(&doc));
            report.push('\n');
        }
        rows.push(row);
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    let wall: f64 = rows.iter().map(|r| r.wall_seconds).sum();
    println!(
        "{} scenarios, {} met their expectation, {failed} did not ({wall:.1} s)",
        rows.len(),
        rows.len() - failed
    );
    if let Some(dir) = &args.report {
        let files = [("summary.md", report)];
        if let Err(e) = kafsim_reports::write_atomically(dir, &files) {
            eprintln!("kafsim check: {e}");
            return super::EXIT_BAD_INPUT;
        }
    }
    if failed == 0 {
        super::EXIT_OK
    } else {
        super::EXIT_FAILURES
    }
}

fn print_row(r: &Row) {
    let verdict = if r.ok { "ok" } else { "FAILED" };
    let first = r.first_failing.map_or("-".to_string(), |s| s.to_string());
    let catch_up = match r.catch_up {
        _ if !r.has_groups => "-".to_string(),
        Some(c) => format!("{c:.1}s"),
        None => "never".to_string(),
    };
    let sends = format!("{}/{}/{}", r.sends_failed, r.sends_unknown, r.sink_refused);
    println!(
        "{:<36} {:<28} {:<8} {:>13} {:>6} {:>7.1}s {catch_up:>9} {:>9} {sends:>22}",
        r.name, r.expectation, verdict, first, r.seeds, r.wall_seconds, r.peak_lag
    );
    if !r.ok {
        println!("    {}", r.why);
    }
}
