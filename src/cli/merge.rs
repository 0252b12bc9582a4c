//! `kafsim merge SHARD.json... [--json OUT] [--junit OUT]` (DESIGN §8): the shards of a
//! campaign (`kafsim run --shard I/N --json ...` on N machines) combined into exactly the
//! document the whole campaign gives on one machine, and its JUnit file.
//!
//! Every shard of one campaign must be there, once: the same scenario, the same N, each index
//! 0..N, and together the seeds of one range `first..first+count` split by index % N. Counts
//! are summed; simulated seconds are summed in whole nanoseconds (exact whatever the
//! grouping); `catch_up_seconds` and `peak_lag` are maxima per group; the rates are recomputed
//! from the sums; `wall_seconds` is the sum of the shards' wall seconds (machine time spent,
//! not the elapsed time of the parallel campaign). Exit status as `run`: 0 if no seed failed,
//! 1 if one did, 2 for bad input (nothing is written then).

use super::common;
use super::run::{self, CampaignJson, CoverageJson, StatsJson};
use kafsim_sim::campaign::RunStats;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest shard file read (a shard lists at most 100 violations per failing seed).
const MAX_SHARD_BYTES: u64 = 256 << 20;

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The shards' `run --shard I/N --json` files
    #[arg(required = true, value_name = "SHARD.json")]
    shards: Vec<PathBuf>,
    /// Write the merged campaign as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML file of the merged campaign (one testcase per seed)
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub fn main(args: MergeArgs) -> u8 {
    match run(args) {
        Ok(code) | Err(code) => code,
    }
}

fn run(args: MergeArgs) -> Result<u8, u8> {
    for (path, flag) in [(&args.json, "--json"), (&args.junit, "--junit")] {
        if let Some(p) = path {
            common::check_output(p, flag)?;
        }
    }
    let mut parts = Vec::new();
    for path in &args.shards {
        parts.push((path.clone(), read(path)?));
    }
    let doc = merge(&parts).map_err(|e| {
        eprintln!("kafsim merge: {e}");
        super::EXIT_BAD_INPUT
    })?;
    for seed in &doc.failed_seeds {
        let listed: Vec<&run::ViolationJson> =
            doc.violations.iter().filter(|v| v.seed == *seed).collect();
        let mut kinds: Vec<&str> = listed.iter().map(|v| v.kind.as_str()).collect();
        kinds.dedup();
        println!("FAIL seed {seed}: {}", kinds.join(", "));
        if let Some(v) = listed.first() {
            println!("     {}", v.repro);
        }
    }
    run::print_summary(&doc, None);
    run::write_outputs(
        "merge",
        &doc,
        args.json.as_deref(),
        args.junit.as_deref(),
        None,
    )?;
    Ok(if doc.failed_seeds.is_empty() {
        super::EXIT_OK
    } else {
        super::EXIT_FAILURES
    })
}

fn read(path: &Path) -> Result<CampaignJson, u8> {
    let bad = |message: String| {
        eprintln!("kafsim merge: {}: {message}", path.display());
        super::EXIT_BAD_INPUT
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(bad("is not a file".to_string()));
    }
    if meta.len() > MAX_SHARD_BYTES {
        return Err(bad(format!(
            "is larger than {MAX_SHARD_BYTES} bytes; is it a `kafsim run --json` file?"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "line {}, column {}: {e}\n  hint: give the files written by `kafsim run --shard I/N --json FILE`",
            e.line(),
            e.column()
        ))
    })
}

/// Merge the shards' documents into the whole campaign's. Errors name the file at fault.
pub fn merge(parts: &[(PathBuf, CampaignJson)]) -> Result<CampaignJson, String> {
    let (first_path, first) = parts.first().ok_or("no shard files given")?;
    let mut of: Option<u64> = None;
    let mut seen: BTreeMap<u64, &Path> = BTreeMap::new();
    for (path, doc) in parts {
        let name = path.display();
        if doc.scenario != first.scenario {
            return Err(format!(
                "{name} is a campaign of scenario \"{}\", {} of \"{}\"",
                doc.scenario,
                first_path.display(),
                first.scenario
            ));
        }
        let Some(shard) = &doc.shard else {
            return Err(format!(
                "{name} is not a shard (no \"shard\" field)\n  hint: write shards with `kafsim run SCENARIO --shard I/N --json FILE`"
            ));
        };
        let (i, n) = common::parse_shard(shard).map_err(|e| format!("{name}: {e}"))?;
        if of.is_some_and(|of| of != n) {
            return Err(format!(
                "{name} is shard {shard}, but {} is of {} shards",
                first_path.display(),
                of.unwrap_or(0)
            ));
        }
        of = Some(n);
        if let Some(other) = seen.insert(i, path) {
            return Err(format!(
                "shard {i}/{n} is given twice: {} and {name}",
                other.display()
            ));
        }
        let list = doc
            .seed_list
            .as_ref()
            .ok_or_else(|| format!("{name}: shard {shard} without \"seed_list\""))?;
        if list.len() as u64 != doc.seeds {
            return Err(format!(
                "{name}: \"seeds\" is {} but \"seed_list\" has {} seeds",
                doc.seeds,
                list.len()
            ));
        }
    }
    let n = of.unwrap_or(1);
    let missing: Vec<String> = (0..n)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shards missing: {} (a merged campaign needs all {n})",
            missing.join(", ")
        ));
    }

    // The seeds: together one range, each shard holding the indices i (mod n).
    let mut seeds: Vec<(u64, &Path, u64)> = Vec::new();
    for (path, doc) in parts {
        let (i, _) = common::parse_shard(doc.shard.as_deref().unwrap_or_default())?;
        for s in doc.seed_list() {
            seeds.push((s, path, i));
        }
    }
    seeds.sort();
    let first_seed = seeds
        .first()
        .map(|s| s.0)
        .ok_or("the shards ran no seeds")?;
    for (k, (seed, path, i)) in seeds.iter().enumerate() {
        let expected = first_seed + k as u64;
        if *seed != expected {
            return Err(format!(
                "the shards' seeds are not one range: seed {expected} is missing or {seed} ({}) appears twice",
                path.display()
            ));
        }
        if k as u64 % n != *i {
            return Err(format!(
                "{}: seed {seed} is index {k} of the campaign, not of shard {i}/{n}",
                path.display()
            ));
        }
    }

    let mut stats = RunStats::default();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed_seeds = Vec::new();
    let mut violations = Vec::new();
    let mut wall_seconds = 0.0;
    let mut coverage = kafsim_sim::coverage::Coverage::default();
    let mut seed_verdicts = Vec::new();
    let mut fault_mix: BTreeMap<String, u64> = BTreeMap::new();
    for (_, doc) in parts {
        seed_verdicts.extend(doc.seed_verdicts.iter().cloned());
        for (action, n) in &doc.fault_mix {
            *fault_mix.entry(action.clone()).or_insert(0) += n;
        }
        stats.add(&doc.stats.to_run_stats());
        coverage.add(&doc.coverage.to_coverage(doc.seeds));
        wall_seconds += doc.stats.wall_seconds;
        for (k, c) in &doc.kinds {
            *kinds.entry(k.clone()).or_insert(0) += c;
        }
        failed_seeds.extend(doc.failed_seeds.iter().copied());
        violations.extend(doc.violations.iter().cloned());
    }
    failed_seeds.sort_unstable();
    // A stable sort by seed keeps each seed's violations in the run's order.
    violations.sort_by_key(|v| v.seed);
    seed_verdicts.sort_by_key(|v| v.seed);
    seed_verdicts.truncate(super::run::MAX_SEED_ROWS);
    Ok(CampaignJson {
        scenario: first.scenario.clone(),
        first_seed: Some(first_seed),
        seeds: seeds.len() as u64,
        shard: None,
        seed_list: None,
        failed_seeds,
        kinds,
        violations,
        stats: StatsJson::new(&stats, wall_seconds),
        coverage: CoverageJson::new(&coverage),
        seed_verdicts,
        fault_mix,
    })
}
