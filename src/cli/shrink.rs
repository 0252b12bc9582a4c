//! `kafsim shrink SCENARIO --seed S [--out FILE] [--max-runs N]` (DESIGN §8): a failing seed
//! made into a small scenario that reproduces it.
//!
//! 1. The seed runs as given; its first failure (kind, topic) is the *goal*.
//! 2. The random fault plan is replaced by the faults it fired, scripted on the nodes they hit
//!    (`sim/src/script.rs`), beside the file's own `[[faults.schedule]]`; `random = false`.
//!    This must still reach the goal (the script fires the same operations at the same
//!    nanoseconds), or shrink stops with exit status 1.
//! 3. Delta debugging (Zeller's ddmin) removes faults; then each fault's undo comes sooner and
//!    its times are rounded; then `duration`, producer `rate` and `count`, group `members`,
//!    topic `partitions` and `cluster.brokers` are made smaller (only keys the file writes);
//!    then the faults once more. A change is kept only if the same seed of the changed file
//!    still finds the goal's kind on the goal's topic.
//!
//! Every step is a run of one seed, in a fixed order: the result depends only on the file and
//! the seed. At most `--max-runs` runs (default 200) are spent, each bounded by the scenario's
//! own duration and drain; when the bound is reached the smallest file found so far is
//! written. The file is the user's own text, edited in place (comments and key order kept).

use super::common;
use kafsim_sim::runner::{self, run_seed, Prepared, RunOptions};
use kafsim_sim::scenario::{self, FaultAction, ScheduledFault, Target};
use kafsim_sim::script::duration_text;
use kafsim_sim::violation::{Violation, ViolationKind};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

/// Default bound on the runs one shrink spends.
pub const DEFAULT_MAX_RUNS: u32 = 200;

#[derive(clap::Args)]
pub struct ShrinkArgs {
    /// The scenario file
    scenario: PathBuf,
    /// The failing seed
    #[arg(long)]
    seed: u64,
    /// Where to write the reproduction (default: SCENARIO-NAME-seed-S.toml here)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Most runs (one seed each) to spend
    #[arg(long, default_value_t = DEFAULT_MAX_RUNS)]
    max_runs: u32,
}

pub fn main(args: ShrinkArgs) -> u8 {
    match shrink(args) {
        Ok(code) | Err(code) => code,
    }
}

/// What must still be found: a failure of this kind on this topic (None: not on a topic).
#[derive(Clone, Debug, PartialEq)]
struct Goal {
    kind: ViolationKind,
    topic: Option<String>,
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.topic {
            Some(t) => write!(f, "{} on topic {t}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

fn topic_of(prepared: &Prepared, v: &Violation) -> Option<String> {
    v.partition.map(|tp| {
        prepared
            .scenario
            .topics
            .get(tp.topic.0 as usize)
            .map_or_else(|| "__consumer_offsets".to_string(), |t| t.name.clone())
    })
}

/// The file being shrunk: the user's document (faults section rewritten) and its schedule.
#[derive(Clone)]
struct Candidate {
    doc: DocumentMut,
    faults: Vec<Table>,
}

impl Candidate {
    fn render(&self, header: &str) -> String {
        let mut doc = self.doc.clone();
        if !self.faults.is_empty() {
            let mut aot = ArrayOfTables::new();
            for t in &self.faults {
                aot.push(t.clone());
            }
            if let Some(faults) = doc.get_mut("faults").and_then(Item::as_table_mut) {
                faults.insert("schedule", Item::ArrayOfTables(aot));
            }
        }
        format!("{header}{doc}")
    }
}

struct Shrinker<'a> {
    file: String,
    seed: u64,
    goal: Goal,
    header: String,
    runs: u32,
    max_runs: u32,
    best: Candidate,
    _path: &'a Path,
}

impl Shrinker<'_> {
    fn exhausted(&self) -> bool {
        self.runs >= self.max_runs
    }

    /// Whether `c` still finds the goal (one run; false once the bound is reached).
    fn reproduces(&mut self, c: &Candidate) -> bool {
        if self.exhausted() {
            return false;
        }
        let text = c.render(&self.header);
        let Ok(prepared) = scenario::parse(&self.file, &text).and_then(runner::prepare) else {
            return false;
        };
        self.runs += 1;
        let out = run_seed(&prepared, self.seed, &RunOptions::default());
        common::failures(&prepared, &out.result.violations)
            .iter()
            .any(|v| v.kind == self.goal.kind && topic_of(&prepared, v) == self.goal.topic)
    }

    /// Keep `c` if it reproduces.
    fn try_keep(&mut self, c: Candidate) -> bool {
        if self.reproduces(&c) {
            self.best = c;
            true
        } else {
            false
        }
    }

    /// ddmin over the schedule: remove chunks, finer and finer, keeping what reproduces.
    fn remove_faults(&mut self) {
        let mut n = 2usize;
        while self.best.faults.len() >= 2 && !self.exhausted() {
            let len = self.best.faults.len();
            let chunk = len.div_ceil(n);
            let mut removed = false;
            let mut start = 0;
            while start < self.best.faults.len() {
                let end = (start + chunk).min(self.best.faults.len());
                let mut c = self.best.clone();
                c.faults.drain(start..end);
                if self.try_keep(c) {
                    removed = true;
                } else {
                    start = end;
                }
            }
            if removed {
                n = n.saturating_sub(1).max(2);
            } else if chunk <= 1 {
                break;
            } else {
                n = (n * 2).min(self.best.faults.len());
            }
        }
        if self.best.faults.len() == 1 {
            let mut c = self.best.clone();
            c.faults.clear();
            self.try_keep(c);
        }
    }

    /// Each fault's undo sooner (halving), then its times rounded to whole seconds, tenths,
    /// hundredths or milliseconds, whichever still reproduces first.
    fn simplify_faults(&mut self) {
        for i in 0..self.best.faults.len() {
            for _ in 0..4 {
                let Some(d) = duration_of(&self.best.faults[i], "duration") else {
                    break;
                };
                let half = round_to(d / 2, Duration::from_millis(1));
                if half < Duration::from_millis(100) {
                    break;
                }
                let mut c = self.best.clone();
                set_duration(&mut c.faults[i], "duration", half);
                if !self.try_keep(c) {
                    break;
                }
            }
            for key in ["at", "duration"] {
                let Some(d) = duration_of(&self.best.faults[i], key) else {
                    continue;
                };
                for unit in [1000, 100, 10, 1] {
                    let r = round_to(d, Duration::from_millis(unit));
                    if r == d {
                        break;
                    }
                    if r.is_zero() {
                        continue;
                    }
                    let mut c = self.best.clone();
                    set_duration(&mut c.faults[i], key, r);
                    if self.try_keep(c) {
                        break;
                    }
                }
            }
        }
    }

    /// `path` (an integer key the file writes) made smaller: first `floor`, then halving.
    fn reduce_int(&mut self, path: &[Key], floor: i64) {
        let Some(start) = get_int(&self.best.doc, path) else {
            return;
        };
        if start <= floor {
            return;
        }
        let mut c = self.best.clone();
        set_int(&mut c.doc, path, floor);
        if self.try_keep(c) {
            return;
        }
        let mut high = start;
        for _ in 0..6 {
            let next = floor.max(high / 2);
            if next <= floor || next >= high {
                break;
            }
            let mut c = self.best.clone();
            set_int(&mut c.doc, path, next);
            if !self.try_keep(c) {
                break;
            }
            high = next;
        }
    }

    /// The safety phase cut to just after the last fault ends, else halved while it
    /// reproduces (never below the last fault's time).
    fn reduce_duration(&mut self) {
        let Some(current) = self
            .best
            .doc
            .get("duration")
            .and_then(Item::as_str)
            .and_then(|t| scenario::parse_duration(t).ok())
        else {
            return;
        };
        let last = self
            .best
            .faults
            .iter()
            .filter_map(|t| {
                let at = duration_of(t, "at")?;
                Some(at + duration_of(t, "duration").unwrap_or_default())
            })
            .max()
            .unwrap_or_default();
        let floor = round_to(last + Duration::from_millis(1500), Duration::from_secs(1));
        let mut next = floor.max(Duration::from_secs(1));
        if next >= current {
            return;
        }
        loop {
            let mut c = self.best.clone();
            c.doc["duration"] = keep_decor(&c.doc["duration"], Value::from(duration_text(next)));
            if self.try_keep(c) || next >= current / 2 {
                break;
            }
            next = round_to(current / 2, Duration::from_secs(1)).max(floor);
        }
    }
}

/// A key of a path into the document: a table key or an index into an array of tables.
#[derive(Clone, Copy)]
enum Key<'k> {
    Name(&'k str),
    Index(usize),
}

fn get_int(doc: &DocumentMut, path: &[Key]) -> Option<i64> {
    let item = match path {
        [Key::Name(t), Key::Index(i), Key::Name(k)] => {
            doc.get(t)?.as_array_of_tables()?.get(*i)?.get(k)?
        }
        [Key::Name(t), Key::Name(k)] => doc.get(t)?.get(k)?,
        [Key::Name(k)] => doc.get(k)?,
        _ => return None,
    };
    item.as_integer()
}

fn set_int(doc: &mut DocumentMut, path: &[Key], n: i64) {
    let slot: Option<&mut Item> = match path {
        [Key::Name(t), Key::Index(i), Key::Name(k)] => doc
            .get_mut(t)
            .and_then(Item::as_array_of_tables_mut)
            .and_then(|a| a.get_mut(*i))
            .and_then(|t| t.get_mut(k)),
        [Key::Name(t), Key::Name(k)] => doc.get_mut(t).and_then(|t| t.get_mut(k)),
        [Key::Name(k)] => doc.get_mut(k),
        _ => None,
    };
    if let Some(slot) = slot {
        *slot = keep_decor(slot, Value::from(n));
    }
}

/// `value` with the comments and spacing of the value it replaces.
fn keep_decor(old: &Item, mut value: Value) -> Item {
    if let Some(v) = old.as_value() {
        *value.decor_mut() = v.decor().clone();
    }
    Item::Value(value)
}

fn duration_of(t: &Table, key: &str) -> Option<Duration> {
    scenario::parse_duration(t.get(key)?.as_str()?).ok()
}

fn set_duration(t: &mut Table, key: &str, d: Duration) {
    if let Some(slot) = t.get_mut(key) {
        *slot = keep_decor(slot, Value::from(duration_text(d)));
    }
}

fn round_to(d: Duration, unit: Duration) -> Duration {
    let (n, u) = (d.as_nanos(), unit.as_nanos());
    Duration::from_nanos((((n + u / 2) / u) * u) as u64)
}

/// One scheduled fault as a `[[faults.schedule]]` table, in the file's vocabulary.
fn fault_table(f: &ScheduledFault) -> Table {
    let mut t = Table::new();
    t.insert("at", toml_edit::value(duration_text(f.at)));
    t.insert("action", toml_edit::value(f.action.kind().as_str()));
    let target = |t: &mut Table, target: &Target| {
        t.insert("target", toml_edit::value(target.to_string()));
    };
    match &f.action {
        FaultAction::Crash(x)
        | FaultAction::Restart(x)
        | FaultAction::Pause(x)
        | FaultAction::Resume(x)
        | FaultAction::ConsumerCrash(x)
        | FaultAction::ProducerCrash(x)
        | FaultAction::ProducerPartition(x) => target(&mut t, x),
        FaultAction::PowerLoss { target: x, tear } => {
            target(&mut t, x);
            if *tear {
                t.insert("tear", toml_edit::value(true));
            }
        }
        FaultAction::Partition { groups, one_way } => {
            if groups.len() == 1 && groups[0].len() == 1 {
                target(&mut t, &groups[0][0]);
            } else {
                let mut outer = Array::new();
                for g in groups {
                    let inner: Array = g.iter().map(|x| x.to_string()).collect();
                    outer.push(inner);
                }
                t.insert("groups", toml_edit::value(outer));
            }
            if *one_way {
                t.insert("one_way", toml_edit::value(true));
            }
        }
        FaultAction::Heal => {}
        FaultAction::SlowLink { target: x, latency } => {
            target(&mut t, x);
            t.insert("latency", toml_edit::value(duration_text(*latency)));
        }
        FaultAction::SlowDisk { target: x, factor }
        | FaultAction::ConsumerSlowdown { target: x, factor } => {
            target(&mut t, x);
            t.insert("factor", toml_edit::value(*factor));
        }
        FaultAction::AddPartitions { topic, count } => {
            t.insert("topic", toml_edit::value(topic.as_str()));
            t.insert("count", toml_edit::value(*count as i64));
        }
    }
    if let Some(d) = f.undo_after {
        t.insert("duration", toml_edit::value(duration_text(d)));
    }
    t
}

/// Sizes printed before and after.
struct Size {
    faults: String,
    duration: Duration,
    brokers: u32,
    partitions: u32,
    producers: u32,
    rate: String,
    members: u32,
}

fn size_of(s: &scenario::Scenario, faults: String) -> Size {
    let rate: f64 = s
        .producers
        .iter()
        .map(|p| match p.rate {
            scenario::Rate::PerSecond(r) => r * p.count as f64,
            scenario::Rate::Max => f64::INFINITY,
        })
        .sum();
    Size {
        faults,
        duration: s.duration,
        brokers: s.cluster.brokers,
        partitions: s.topics.iter().map(|t| t.partitions).sum(),
        producers: s.total_producers(),
        rate: if rate.is_finite() {
            format!("{rate:.0}/s")
        } else {
            "max".to_string()
        },
        members: s.consumer_groups.iter().map(|g| g.members).sum(),
    }
}

fn shrink(args: ShrinkArgs) -> Result<u8, u8> {
    let path = &args.scenario;
    let prepared = common::load(path)?;
    if args.max_runs == 0 {
        eprintln!("kafsim shrink: --max-runs must be at least 1");
        return Err(super::EXIT_BAD_INPUT);
    }
    let out_path = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-seed-{}.toml",
            prepared.scenario.name.replace(['/', '\\', ' '], "-"),
            args.seed
        ))
    });
    common::check_output(&out_path, "--out")?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("kafsim shrink: {}: {e}", path.display());
        super::EXIT_BAD_INPUT
    })?;
    let doc: DocumentMut = text.parse().map_err(|e| {
        eprintln!("kafsim shrink: {}: {e}", path.display());
        super::EXIT_BAD_INPUT
    })?;

    let original = run_seed(&prepared, args.seed, &RunOptions::default());
    let failures = common::failures(&prepared, &original.result.violations);
    let Some(first) = failures.first() else {
        eprintln!(
            "kafsim shrink: seed {} of {} finds no failure; nothing to shrink\n  hint: `kafsim run {} --seeds N` lists failing seeds",
            args.seed,
            path.display(),
            path.display()
        );
        return Err(super::EXIT_BAD_INPUT);
    };
    let goal = Goal {
        kind: first.kind,
        topic: topic_of(&prepared, first),
    };
    let random_fired = original.random_faults.len();
    let scripted_before = prepared.scenario.faults.schedule.len();
    let before = size_of(
        &prepared.scenario,
        if prepared.scenario.faults.random {
            format!("{random_fired} random (drawn) + {scripted_before} scripted")
        } else {
            format!("{scripted_before} scripted")
        },
    );

    // The random plan becomes the faults it fired, beside the file's own script.
    let mut doc = doc;
    let mut faults: Vec<Table> = Vec::new();
    if let Some(f) = doc.get_mut("faults").and_then(Item::as_table_mut) {
        if let Some(item) = f.remove("schedule") {
            match item {
                Item::ArrayOfTables(a) => faults.extend(a),
                Item::Value(Value::Array(a)) => faults.extend(
                    a.into_iter()
                        .filter_map(|v| v.as_inline_table().cloned())
                        .map(|t| t.into_table()),
                ),
                _ => {}
            }
        }
        if prepared.scenario.faults.random {
            f.insert("random", keep_decor(&f["random"], Value::from(false)));
            f.remove("kinds");
            f.remove("mean_interval");
        }
    }
    faults.extend(original.random_faults.iter().map(fault_table));
    let header = format!(
        "# Shrunk by `kafsim shrink {} --seed {}`: {} ({} found by that seed).\n# Reproduce: kafsim run {} --seed {}\n",
        path.display(),
        args.seed,
        goal,
        failures.len(),
        out_path.display(),
        args.seed
    );
    let mut s = Shrinker {
        file: out_path.display().to_string(),
        seed: args.seed,
        goal: goal.clone(),
        header,
        runs: 0,
        max_runs: args.max_runs,
        best: Candidate { doc, faults },
        _path: path,
    };
    let start = s.best.clone();
    if !s.reproduces(&start) {
        eprintln!(
            "kafsim shrink: seed {} finds {goal}, but its faults written as a script do not ({} runs)\n  hint: this is a kafsim bug (the script must fire what the random plan fired); please report it with the scenario and seed",
            args.seed, s.runs
        );
        return Err(super::EXIT_FAILURES);
    }
    s.remove_faults();
    s.simplify_faults();
    s.reduce_duration();
    let n_producers = s
        .best
        .doc
        .get("producers")
        .and_then(Item::as_array_of_tables)
        .map_or(0, |a| a.len());
    for i in 0..n_producers {
        s.reduce_int(
            &[Key::Name("producers"), Key::Index(i), Key::Name("count")],
            1,
        );
        s.reduce_int(
            &[Key::Name("producers"), Key::Index(i), Key::Name("rate")],
            1,
        );
    }
    let n_groups = s
        .best
        .doc
        .get("consumer_groups")
        .and_then(Item::as_array_of_tables)
        .map_or(0, |a| a.len());
    for i in 0..n_groups {
        s.reduce_int(
            &[
                Key::Name("consumer_groups"),
                Key::Index(i),
                Key::Name("members"),
            ],
            1,
        );
    }
    let n_topics = s
        .best
        .doc
        .get("topics")
        .and_then(Item::as_array_of_tables)
        .map_or(0, |a| a.len());
    for i in 0..n_topics {
        s.reduce_int(
            &[Key::Name("topics"), Key::Index(i), Key::Name("partitions")],
            1,
        );
    }
    s.reduce_int(&[Key::Name("cluster"), Key::Name("brokers")], 1);
    s.remove_faults();

    let text = s.best.render(&s.header);
    let Ok(after) = scenario::parse(&s.file, &text) else {
        eprintln!("kafsim shrink: internal error: the shrunk scenario does not parse");
        return Err(super::EXIT_FAILURES);
    };
    let after = size_of(&after, format!("{} scripted", s.best.faults.len()));
    common::write_atomic(&out_path, &text).map_err(|e| {
        eprintln!("kafsim shrink: cannot write {}: {e}", out_path.display());
        super::EXIT_BAD_INPUT
    })?;
    println!(
        "shrunk {} seed {}: {goal}, in {} runs{}",
        prepared.scenario.name,
        args.seed,
        s.runs,
        if s.exhausted() {
            format!(" (stopped at the bound of {} runs)", args.max_runs)
        } else {
            String::new()
        }
    );
    let rows: [(&str, String, String); 7] = [
        ("faults", before.faults, after.faults),
        (
            "duration",
            duration_text(before.duration),
            duration_text(after.duration),
        ),
        (
            "brokers",
            before.brokers.to_string(),
            after.brokers.to_string(),
        ),
        (
            "partitions",
            before.partitions.to_string(),
            after.partitions.to_string(),
        ),
        (
            "producers",
            before.producers.to_string(),
            after.producers.to_string(),
        ),
        ("rate", before.rate, after.rate),
        (
            "members",
            before.members.to_string(),
            after.members.to_string(),
        ),
    ];
    for (what, b, a) in rows {
        println!("  {what:<11} {b} -> {a}");
    }
    println!("wrote {}", out_path.display());
    println!(
        "reproduce: kafsim run {} --seed {}",
        out_path.display(),
        args.seed
    );
    println!(
        "replay:    kafsim replay {} --seed {}",
        out_path.display(),
        args.seed
    );
    Ok(super::EXIT_OK)
}
