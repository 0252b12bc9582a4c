//! `kafsim replay SCENARIO --seed S`: one run, byte for byte the same every time, with the
//! drawn fault plan, every fault applied, every violation with the life of its record, and
//! the trace hash on the last line. Nothing here depends on wall time or thread count.

use super::common;
use kafsim_engine::app::CommitMode;
use kafsim_engine::consumer::consume_loop::mark_rule;
use kafsim_engine::ValueId;
use kafsim_sim::life::{record_life, LifeContext};
use kafsim_sim::perfetto::{chrome_trace, validate, PerfettoInput, MAX_FLOWS};
use kafsim_sim::runner::{run_seed, Prepared, RunOptions, RunOutput};
use kafsim_sim::trace::TraceLevel;
use kafsim_sim::violation::{Violation, ViolationKind};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Violations whose record life is printed (the rest are listed without it).
const MAX_LIVES: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    Text,
    Json,
    Perfetto,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The scenario file
    scenario: PathBuf,
    /// The seed to replay
    #[arg(long)]
    seed: u64,
    /// Also write every delivered event to FILE
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Format of --trace
    #[arg(long, value_enum, default_value_t = TraceFormat::Text)]
    format: TraceFormat,
}

/// Which violations (by index) get their record's life told: the first of each kind that
/// counts as a failure, then the next of those up to [`MAX_LIVES`], then allowed ones while the budget lasts, so that a failure is
/// never left unexplained behind a run of allowed duplicates.
fn lives_to_tell(prepared: &Prepared, violations: &[Violation]) -> Vec<usize> {
    let with_value = || {
        violations
            .iter()
            .enumerate()
            .filter(|(_, v)| v.value.is_some())
    };
    let failing = |v: &Violation| !common::failures(prepared, std::slice::from_ref(v)).is_empty();
    // The first failure of each kind first: a thousand key-order violations must not leave
    // the one sink-loss after them without its story.
    let mut told: Vec<usize> = Vec::new();
    let mut kinds: Vec<ViolationKind> = Vec::new();
    for (i, v) in with_value().filter(|(_, v)| failing(v)) {
        if !kinds.contains(&v.kind) && told.len() < MAX_LIVES {
            kinds.push(v.kind);
            told.push(i);
        }
    }
    let rest: Vec<usize> = with_value()
        .filter(|(i, v)| failing(v) && !told.contains(i))
        .map(|(i, _)| i)
        .take(MAX_LIVES - told.len())
        .collect();
    told.extend(rest);
    let room = MAX_LIVES - told.len();
    told.extend(
        with_value()
            .filter(|(_, v)| !failing(v))
            .map(|(i, _)| i)
            .take(room),
    );
    told
}

pub fn main(args: ReplayArgs) -> u8 {
    match replay(args) {
        Ok(code) | Err(code) => code,
    }
}

fn replay(args: ReplayArgs) -> Result<u8, u8> {
    let prepared = common::load(&args.scenario)?;
    if let Some(path) = &args.trace {
        common::check_output(path, "--trace")?;
    }
    let trace = if args.trace.is_some() {
        TraceLevel::Events
    } else {
        TraceLevel::Off
    };
    let out = run_seed(
        &prepared,
        args.seed,
        &RunOptions {
            trace,
            keep_history: true,
            ..RunOptions::default()
        },
    );
    let s = &prepared.scenario;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "kafsim replay {} --seed {}",
        args.scenario.display(),
        args.seed
    );
    let _ = writeln!(text, "scenario {}: {}", s.name, s.description);
    for line in &out.plan {
        let _ = writeln!(text, "{line}");
    }
    let _ = writeln!(text, "faults applied:");
    for line in &out.fault_log {
        let _ = writeln!(text, "  {line}");
    }
    let history = out.history.as_ref().expect("replay keeps the history");
    let names = &out.names;
    let marks: Vec<_> = (s.consumer_groups.iter())
        .zip(prepared.consumer_configs())
        .map(|(g, c)| {
            mark_rule(
                c.client,
                g.handler.mark,
                g.handler.commit,
                c.enable_auto_offset_store,
            )
        })
        .collect();
    let workers: Vec<_> = s
        .consumer_groups
        .iter()
        .map(|g| g.handler.workers)
        .collect();
    let read_message: Vec<bool> = (s.consumer_groups.iter())
        .zip(prepared.consumer_configs())
        .map(|(g, c)| g.handler.commit == CommitMode::Auto && c.commits_before_handing_over())
        .collect();
    let offset_resets: Vec<String> = (prepared.consumer_configs().iter())
        .map(|c| c.offset_reset_policy())
        .collect();
    let idempotence: Vec<String> = (prepared.producer_configs().iter())
        .map(|c| c.idempotence_words())
        .collect();
    let life = LifeContext {
        history,
        names,
        faults: &out.faults,
        marks: &marks,
        workers: &workers,
        read_message: &read_message,
        offset_resets: &offset_resets,
        idempotence: &idempotence,
    };
    let topic = |v: &Violation| {
        v.partition
            .map(|tp| format!(" {}", names.tp(tp)))
            .unwrap_or_default()
    };
    let failures = common::failures(&prepared, &out.result.violations);
    let _ = writeln!(
        text,
        "violations: {} ({} count as failures here)",
        out.result.violations.len(),
        failures.len()
    );
    let told = lives_to_tell(&prepared, &out.result.violations);
    for (i, v) in out.result.violations.iter().enumerate() {
        let offset = v.offset.map(|o| format!(" @{o}")).unwrap_or_default();
        let value = v
            .value
            .map(|x| format!(" value {}", x.0))
            .unwrap_or_default();
        let allowed = if common::failures(&prepared, std::slice::from_ref(v)).is_empty() {
            " (allowed)"
        } else {
            ""
        };
        // Multi-line details (a stall's explanation) are indented under their violation.
        let _ = writeln!(
            text,
            "- {}{allowed}{}{offset}{value} at {}: {}",
            v.kind,
            topic(v),
            v.at,
            v.detail.replace('\n', "\n  ")
        );
        if let (Some(value), true) = (v.value, told.contains(&i)) {
            for line in record_life(&life, value) {
                let _ = writeln!(text, "    {line}");
            }
        }
    }
    let st = &out.result.stats;
    let _ = writeln!(
        text,
        "events {}, records produced {} / acknowledged {} / consumed {}, simulated {:.3} s, drained: {}",
        st.events, st.records_produced, st.records_acked, st.records_consumed, st.sim_seconds, out.drained
    );
    let _ = writeln!(text, "{}", super::run::StatsJson::new(st, 0.0).drain_line());
    for (group, g) in &st.groups {
        let _ = writeln!(
            text,
            "  group {group}: read {} records, peak lag {}, caught up {}",
            g.records_consumed,
            g.peak_lag,
            g.catch_up_seconds
                .map_or("never".to_string(), |c| format!("{c:.3} s after the heal"))
        );
    }
    let coverage = super::run::CoverageJson::new(&st.coverage);
    for line in super::run::coverage_lines(&coverage, 1) {
        let _ = writeln!(text, "{line}");
    }
    for line in st.producer_warnings() {
        let _ = writeln!(text, "{line}");
    }
    let kinds = common::describe_kinds(&common::count_kinds(failures.iter().copied()));
    let _ = writeln!(
        text,
        "verdict: {}",
        if failures.is_empty() {
            "ok".to_string()
        } else {
            format!("FAIL ({kinds})")
        }
    );
    if let Some(path) = &args.trace {
        // The records whose lives were told, failures first, as the flows to follow.
        let mut follow: Vec<ValueId> = Vec::new();
        for v in told.iter().filter_map(|&i| out.result.violations[i].value) {
            if !follow.contains(&v) && follow.len() < MAX_FLOWS {
                follow.push(v);
            }
        }
        let contents = trace_file(&out, args.format, &follow);
        common::write_atomic(path, &contents).map_err(|e| {
            eprintln!("kafsim replay: cannot write {}: {e}", path.display());
            super::EXIT_BAD_INPUT
        })?;
    }
    let _ = writeln!(text, "trace-hash: {:016x}", out.result.trace_hash);
    print!("{text}");
    Ok(if failures.is_empty() {
        super::EXIT_OK
    } else {
        super::EXIT_FAILURES
    })
}

/// The `--trace` file: text lines, a JSON array of typed objects, or a Chrome trace.
fn trace_file(out: &RunOutput, format: TraceFormat, follow: &[ValueId]) -> String {
    let names = &out.names;
    match format {
        TraceFormat::Text => out
            .trace_events
            .iter()
            .map(|e| e.text(names) + "\n")
            .collect(),
        TraceFormat::Json => {
            let items: Vec<String> = out
                .trace_events
                .iter()
                .map(|e| e.json(names).to_string())
                .collect();
            format!("[\n{}\n]\n", items.join(",\n"))
        }
        TraceFormat::Perfetto => {
            let history = out.history.as_ref().expect("replay keeps the history");
            let doc = chrome_trace(&PerfettoInput {
                events: &out.trace_events,
                names,
                history,
                follow,
            });
            let errors = validate(&doc);
            assert!(errors.is_empty(), "invalid Chrome trace: {errors:?}");
            doc.to_string() + "\n"
        }
    }
}
