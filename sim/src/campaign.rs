//! Campaigns: many seeds of one scenario, on `jobs` threads, with results that do not depend
//! on `jobs` or on thread scheduling.
//!
//! Each seed is an independent single-threaded run; threads only pick the next seed index
//! from a shared counter, and results are stored by index, so the output order is the seed
//! order whatever finished first. A panic inside one run is caught and becomes a `panic`
//! violation of that seed (the panic message and location are its detail); the campaign
//! goes on.

use crate::coverage::Coverage;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::Instant;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Which seeds a campaign runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub first: u64,
    pub count: u64,
    /// `Some((i, n))`: only the seeds whose index (0-based within the range) is `i` mod `n`.
    pub shard: Option<(u64, u64)>,
}

impl SeedRange {
    /// The seeds, in order.
    pub fn seeds(&self) -> Vec<u64> {
        (0..self.count)
            .filter(|i| self.shard.is_none_or(|(shard, of)| i % of == shard))
            .map(|i| self.first.wrapping_add(i))
            .collect()
    }
}

/// Counters every run reports (DESIGN §6 "stats", §8 "Drain").
///
/// Across seeds ([`RunStats::add`]) counts and seconds add up; `catch_up_seconds` and
/// `peak_lag` take the maximum (the worst seed is what a capacity objective is about).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    pub events: u64,
    pub records_produced: u64,
    pub records_acked: u64,
    pub records_consumed: u64,
    /// Sends that definitely failed (SendFail).
    pub records_failed: u64,
    /// Sends whose outcome is unknown (SendInfo).
    pub records_unknown: u64,
    /// Sink writes the group's database refused (SinkRefused: a `dedupe` unique constraint
    /// or the `offsets-in-sink` offset guard): duplicates the service kept out.
    pub records_refused: u64,
    /// Simulated seconds; across seeds `sim_nanos / 1e9`, so that a sum does not depend on
    /// how the seeds were grouped (shards merged give exactly the whole campaign's value).
    pub sim_seconds: f64,
    /// Simulated seconds of the load (safety) phase (across seeds `load_nanos / 1e9`).
    pub load_seconds: f64,
    /// The same two times in whole nanoseconds: integer sums are exact in any order.
    pub sim_nanos: u64,
    pub load_nanos: u64,
    pub wall_seconds: f64,
    /// Per group, by name.
    pub groups: BTreeMap<String, GroupStats>,
    /// Faults fired and states reached (sums over seeds).
    pub coverage: Coverage,
    /// Faults the nemesis applied, by action (`crash`, `partition`, ...): the fault mix.
    pub faults: BTreeMap<String, u64>,
    /// Per producer, by name: sends made against those its rate asked for.
    pub producers: BTreeMap<String, ProducerStats>,
}

/// What one producer's application did against its `rate`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProducerStats {
    /// Sends the application made (resends included).
    pub sent: u64,
    /// Sends its `rate` asked for from its first send (its start phase) to the end of the load
    /// phase (0 without a numeric rate).
    pub asked: u64,
    /// Why such a producer falls short of its rate, in words for the warning.
    pub pace: String,
}

/// What one consumer group did in a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupStats {
    /// The largest lag sampled during the whole run: high watermark minus the next offset the
    /// group reads, summed over its partitions, in records.
    pub peak_lag: u64,
    /// Seconds from the heal until the group had read everything (None: it never did).
    pub catch_up_seconds: Option<f64>,
    pub records_consumed: u64,
}

impl RunStats {
    pub fn add(&mut self, other: &RunStats) {
        self.events += other.events;
        self.records_produced += other.records_produced;
        self.records_acked += other.records_acked;
        self.records_consumed += other.records_consumed;
        self.records_failed += other.records_failed;
        self.records_unknown += other.records_unknown;
        self.records_refused += other.records_refused;
        self.sim_nanos += other.sim_nanos;
        self.load_nanos += other.load_nanos;
        self.sim_seconds = self.sim_nanos as f64 / 1e9;
        self.load_seconds = self.load_nanos as f64 / 1e9;
        self.wall_seconds += other.wall_seconds;
        self.coverage.add(&other.coverage);
        for (action, n) in &other.faults {
            *self.faults.entry(action.clone()).or_insert(0) += n;
        }
        for (name, g) in &other.groups {
            let mine = self.groups.entry(name.clone()).or_default();
            mine.peak_lag = mine.peak_lag.max(g.peak_lag);
            mine.catch_up_seconds = match (mine.catch_up_seconds, g.catch_up_seconds) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            mine.records_consumed += g.records_consumed;
        }
        for (name, p) in &other.producers {
            let mine = self.producers.entry(name.clone()).or_default();
            mine.sent += p.sent;
            mine.asked += p.asked;
            if mine.pace.is_empty() {
                mine.pace.clone_from(&p.pace);
            }
        }
    }

    /// Warnings: producers that made less than half the sends their rate asked for. The
    /// produce rate of the summary is then the application's pace, not the rate the
    /// scenario names, and the warning says why.
    pub fn producer_warnings(&self) -> Vec<String> {
        (self.producers.iter())
            .filter(|(_, p)| p.asked > 0 && p.sent * 2 < p.asked)
            .map(|(name, p)| {
                format!(
                    "warning: {name} made {} of the {} sends its rate asked for: {}",
                    p.sent, p.asked, p.pace
                )
            })
            .collect()
    }

    /// The slowest group's catch-up time, if every group caught up in some seed.
    pub fn catch_up_seconds(&self) -> Option<f64> {
        self.groups
            .values()
            .map(|g| g.catch_up_seconds)
            .try_fold(0.0f64, |m, c| c.map(|c| m.max(c)))
            .filter(|_| !self.groups.is_empty())
    }

    /// Records acknowledged per simulated second of load.
    pub fn produce_rate(&self) -> f64 {
        if self.load_seconds > 0.0 {
            self.records_acked as f64 / self.load_seconds
        } else {
            0.0
        }
    }

    /// Records read per simulated second of the whole run.
    pub fn consume_rate(&self) -> f64 {
        if self.sim_seconds > 0.0 {
            self.records_consumed as f64 / self.sim_seconds
        } else {
            0.0
        }
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedResult {
    pub seed: u64,
    /// Every violation found, in a deterministic order.
    pub violations: Vec<Violation>,
    pub stats: RunStats,
    pub trace_hash: u64,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Route panics of campaign threads into a thread-local instead of stderr, so a caught engine
/// panic becomes a violation detail rather than noise. Installed once per process; panics
/// outside [`catch_run`] still print as usual.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAPTURING.with(|c| *c.borrow());
            if captured {
                let msg = match info.payload().downcast_ref::<&str>() {
                    Some(s) => s.to_string(),
                    None => info
                        .payload()
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| "panic".to_string()),
                };
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                default(info);
            }
        }));
    });
}

thread_local! {
    static CAPTURING: RefCell<bool> = const { RefCell::new(false) };
}

/// Run `f`; a panic inside it is returned as `Err(message with location)`. Calls nest: the
/// runner catches an engine panic itself (to explain it with the world's state, see
/// `runner::panicked`) inside the campaign's catch of everything else.
pub fn catch_run<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_panic_hook();
    let outer = CAPTURING.with(|c| std::mem::replace(&mut *c.borrow_mut(), true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| *c.borrow_mut() = outer);
    result.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// A `panic` violation for a run that panicked.
pub fn panic_violation(message: String) -> Violation {
    Violation::new(ViolationKind::Panic, Instant::ZERO, message)
}

/// Run `run_one` for every seed on `jobs` threads. `on_done` is called as each seed
/// finishes (in completion order: for progress bars only); the returned results are in seed
/// order.
pub fn run_seeds<F, P>(seeds: &[u64], jobs: usize, run_one: F, on_done: P) -> Vec<SeedResult>
where
    F: Fn(u64) -> SeedResult + Sync,
    P: Fn(&SeedResult) + Sync,
{
    let jobs = jobs.clamp(1, seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SeedResult>>> = Mutex::new(vec![None; seeds.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let result = match catch_run(|| run_one(seed)) {
                    Ok(r) => r,
                    Err(message) => SeedResult {
                        seed,
                        violations: vec![panic_violation(message)],
                        stats: RunStats::default(),
                        trace_hash: 0,
                    },
                };
                on_done(&result);
                results
                    .lock()
                    .expect("no thread panics while holding the lock")[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .expect("lock not poisoned")
        .into_iter()
        .map(|r| r.expect("every seed ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(seed: u64) -> SeedResult {
        if seed % 7 == 3 {
            panic!("engine bug on seed {seed}");
        }
        let violations = if seed.is_multiple_of(5) {
            vec![Violation::new(
                ViolationKind::LostWrite,
                Instant::from_millis(seed),
                "lost",
            )]
        } else {
            vec![]
        };
        SeedResult {
            seed,
            violations,
            stats: RunStats {
                events: seed,
                ..RunStats::default()
            },
            trace_hash: seed * 31,
        }
    }

    #[test]
    fn results_do_not_depend_on_jobs_and_panics_become_violations() {
        let seeds = SeedRange {
            first: 1,
            count: 40,
            shard: None,
        }
        .seeds();
        let one = run_seeds(&seeds, 1, fake, |_| {});
        let four = run_seeds(&seeds, 4, fake, |_| {});
        assert_eq!(one, four);
        let panicked: Vec<u64> = one
            .iter()
            .filter(|r| r.violations.iter().any(|v| v.kind == ViolationKind::Panic))
            .map(|r| r.seed)
            .collect();
        assert_eq!(panicked, vec![3, 10, 17, 24, 31, 38]);
        let detail = &one[2].violations[0].detail;
        assert!(
            detail.contains("engine bug on seed 3") && detail.contains("campaign.rs"),
            "{detail}"
        );
    }

    /// The runner catches engine panics inside the campaign's catch: after the inner catch
    /// returns, a panic of the outer one is still captured with its message.
    #[test]
    fn catches_nest() {
        let outer = catch_run(|| {
            let inner = catch_run(|| -> () { panic!("inner") });
            assert!(inner.unwrap_err().starts_with("inner at "));
            panic!("outer after inner");
        });
        let message = outer.unwrap_err();
        assert!(
            message.starts_with("outer after inner at ") && message.contains("campaign.rs"),
            "{message}"
        );
    }

    #[test]
    fn shards_partition_the_campaign() {
        let all = SeedRange {
            first: 100,
            count: 10,
            shard: None,
        }
        .seeds();
        let mut union: Vec<u64> = (0..3)
            .flat_map(|i| {
                SeedRange {
                    first: 100,
                    count: 10,
                    shard: Some((i, 3)),
                }
                .seeds()
            })
            .collect();
        union.sort();
        assert_eq!(union, all);
    }
}
