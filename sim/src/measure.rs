//! Turning a run's history into benchmark numbers: publish latency (`SendInvoke` ->
//! `SendOk`), end-to-end latency (`SendInvoke` -> the first `Poll` of the value by each
//! group), the backlog per second (acknowledged minus consumed) and the faults of the
//! nemesis log, fed to a [`kafsim_reports::Recorder`]. It lives in the simulator, not in the
//! `kafsim` binary: the binary runs commands and writes their output, the analysis is the
//! library's (and testable without the command line).
//!
//! **The load's start.** A bench with consumers has a readiness phase (sim `readiness.rs`,
//! OpenMessaging Benchmark's `ensureTopicsAreReady`): the runner says when the load started
//! ([`Measure::load_started`]) and the window is `[start + warmup, start + duration)`. The
//! probe records sent before are in no measurement.
//!
//! Publish delay: a `SendInvoke`'s `scheduled` instant to the send, for acknowledged sends
//! (OMB's `intendedSendTime` to `sendTime`, recorded on success).
//!
//! Memory is bounded: a value's send time is kept only until it is acknowledged and read by
//! every group (or failed), and at most [`MAX_TRACKED`] values are tracked at once; sends
//! beyond that are counted in [`Measured::untracked`] and left out of the latencies.

#[cfg(test)]
use crate::history::History;
use crate::history::HistoryEntry;
use kafsim_engine::history::HistoryEvent;
use kafsim_reports::{BenchResult, Recorder};
use rustc_hash::FxHashMap;
use std::time::Duration;

/// Values tracked at once (about 40 bytes each: at most ~400 MB).
pub const MAX_TRACKED: usize = 10_000_000;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What the measurement needs to know about the workload.
#[derive(Clone, Debug)]
pub struct MeasureSpec {
    pub workload: String,
    pub hardware: String,
    pub warmup: Duration,
    /// The safety phase: records sent in it are measured; the run's drain is not.
    pub duration: Duration,
    /// Value bytes per record, by run-wide producer index.
    pub message_sizes: Vec<u32>,
    /// Consumer groups reading the produced topics.
    pub groups: u32,
    /// Whether the run has a readiness phase: nothing is measured before
    /// [`Measure::load_started`].
    pub awaits_load_start: bool,
}

/// A value sent and not yet fully accounted for.
#[derive(Clone, Copy, Debug)]
struct Open {
    sent_ns: u64,
    bytes: u32,
    acked: bool,
    /// Groups that have not read it yet (one bit per group, first 64 groups).
    unread: u64,
    /// The rate schedule's instant for this send, if its producer has a rate.
    scheduled_ns: Option<u64>,
}

/// The measured result and what could not be measured.
#[derive(Debug)]
pub struct Measured {
    pub result: BenchResult,
    /// Sends not tracked because [`MAX_TRACKED`] values were open.
    pub untracked: u64,
}

/// Walk `history` (in time order) and `fault_log` into a [`BenchResult`] (the tests' way in;
/// a bench feeds [`Measure`] as the run goes).
#[cfg(test)]
pub fn measure(spec: &MeasureSpec, history: &History, fault_log: &[String]) -> Measured {
    let mut m = Measure::new(spec);
    m.observe(history.entries());
    m.finish(fault_log)
}

/// The measurement, fed the history as it happens (a streaming bench keeps no history):
/// what it holds is the values in flight, the histograms and the per-second timeline.
pub struct Measure<'a> {
    spec: &'a MeasureSpec,
    recorder: Recorder,
    groups: u32,
    all_groups: u64,
    end_ns: u64,
    open: FxHashMap<u64, Open>,
    untracked: u64,
    acked: u64,
    consumed: u64,
    next_sample_ns: u64,
    last_ns: u64,
    /// When the load started (0 without a readiness phase); `None` while it has not.
    start_ns: Option<u64>,
    unready: Vec<String>,
}

impl<'a> Measure<'a> {
    pub fn new(spec: &'a MeasureSpec) -> Measure<'a> {
        let groups = spec.groups.min(64);
        Measure {
            spec,
            recorder: Recorder::window(spec.warmup, spec.duration),
            groups,
            all_groups: if groups == 64 {
                u64::MAX
            } else {
                (1u64 << groups) - 1
            },
            end_ns: nanos(spec.duration),
            open: FxHashMap::default(),
            untracked: 0,
            acked: 0,
            consumed: 0,
            next_sample_ns: NANOS_PER_SECOND,
            last_ns: 0,
            start_ns: (!spec.awaits_load_start).then_some(0),
            unready: Vec::new(),
        }
    }

    /// The readiness phase ended at `at_ns`: the load starts, and the measured window is
    /// `[at + warmup, at + duration)`. `unready` names the groups that were not ready.
    pub fn load_started(&mut self, at_ns: u64, unready: &[String]) {
        assert!(
            self.start_ns.is_none(),
            "bench: the load started twice (at {at_ns} ns)"
        );
        let at = Duration::from_nanos(at_ns);
        self.start_ns = Some(at_ns);
        self.unready = unready.to_vec();
        self.recorder = Recorder::window_from(at, self.spec.warmup, self.spec.duration);
        self.end_ns = nanos(at + self.spec.duration);
    }

    /// Takes in the next history entries (in time order).
    pub fn observe<'e>(&mut self, entries: impl IntoIterator<Item = &'e HistoryEntry>) {
        for entry in entries {
            self.entry(entry);
        }
    }

    fn entry(&mut self, entry: &HistoryEntry) {
        let at = entry.at.as_nanos();
        self.last_ns = at;
        while self.groups > 0 && at >= self.next_sample_ns {
            self.recorder.on_backlog(
                self.next_sample_ns - 1,
                backlog(self.acked, self.consumed, self.groups),
            );
            self.next_sample_ns += NANOS_PER_SECOND;
        }
        let open = &mut self.open;
        match &entry.event {
            HistoryEvent::SendInvoke {
                producer,
                value,
                scheduled,
                ..
            } => {
                // Probes before the load's start, and sends after the window, are not measured.
                if self.start_ns.is_none_or(|start| at < start) || at >= self.end_ns {
                    return;
                }
                if open.len() >= MAX_TRACKED {
                    self.untracked += 1;
                    return;
                }
                let bytes = self
                    .spec
                    .message_sizes
                    .get(*producer as usize)
                    .copied()
                    .unwrap_or(0);
                open.insert(
                    value.0,
                    Open {
                        sent_ns: at,
                        bytes,
                        acked: false,
                        unread: self.all_groups,
                        scheduled_ns: scheduled.map(|s| s.as_nanos()),
                    },
                );
            }
            HistoryEvent::SendOk { value, .. } => {
                let Some(o) = open.get_mut(&value.0) else {
                    return;
                };
                if !o.acked {
                    o.acked = true;
                    self.acked += 1;
                    self.recorder.on_publish(o.sent_ns, at, o.bytes as u64);
                    if let Some(scheduled) = o.scheduled_ns {
                        self.recorder.on_publish_delay(scheduled, o.sent_ns);
                    }
                }
                if o.unread == 0 {
                    open.remove(&value.0);
                }
            }
            HistoryEvent::SendFail { value, .. } | HistoryEvent::SendInfo { value, .. } => {
                // No acknowledgement to measure; a read of it (SendInfo: it may be in the
                // log) is still an end-to-end sample while it stays open.
                if let Some(o) = open.get(&value.0) {
                    if o.unread == 0 || matches!(entry.event, HistoryEvent::SendFail { .. }) {
                        open.remove(&value.0);
                    }
                }
            }
            HistoryEvent::Poll { group, value, .. } => {
                let Some(o) = open.get_mut(&value.0) else {
                    return;
                };
                let bit = if *group < 64 { 1u64 << group } else { 0 };
                if o.unread & bit == 0 {
                    return; // a re-read (redelivery after a rebalance or a crash)
                }
                o.unread &= !bit;
                self.consumed += 1;
                self.recorder.on_consume(o.sent_ns, at, o.bytes as u64);
                if o.unread == 0 && o.acked {
                    open.remove(&value.0);
                }
            }
            _ => {}
        }
    }

    /// The result, with the faults of the nemesis log.
    pub fn finish(mut self, fault_log: &[String]) -> Measured {
        let spec = self.spec;
        while self.groups > 0 && self.next_sample_ns <= self.last_ns.max(self.end_ns) {
            self.recorder.on_backlog(
                self.next_sample_ns - 1,
                backlog(self.acked, self.consumed, self.groups),
            );
            self.next_sample_ns += NANOS_PER_SECOND;
        }
        // The runner always ends the fault phase with a heal line; alone, it marks nothing.
        let faults: Vec<(u64, &str)> = fault_log
            .iter()
            .filter_map(|line| parse_fault_line(line))
            .collect();
        let any_fault = faults.iter().any(|(_, label)| !label.starts_with("heal"));
        for (t_ns, label) in faults.into_iter().filter(|_| any_fault) {
            self.recorder.on_fault(t_ns, label);
        }
        // A readiness phase that never ended (a run stopped early): measure from 0.
        let start_ns = *self.start_ns.get_or_insert(0);
        let mut result = self.recorder.finish(
            &spec.workload,
            &spec.hardware,
            Duration::from_nanos(start_ns) + spec.duration,
        );
        if spec.awaits_load_start {
            result.load_start_s = Some(start_ns as f64 / 1e9);
            result.unready_groups = self.unready;
        }
        Measured {
            result,
            untracked: self.untracked,
        }
    }
}

/// Records acknowledged but not yet read, summed over groups.
fn backlog(acked: u64, consumed: u64, groups: u32) -> u64 {
    (acked * groups as u64).saturating_sub(consumed)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A nemesis log line is `<ms>.<us>ms <what happened>` (simulated time first).
pub fn parse_fault_line(line: &str) -> Option<(u64, &str)> {
    let (time, label) = line.split_once(' ')?;
    let ms = time.strip_suffix("ms")?;
    let (whole, frac) = ms.split_once('.').unwrap_or((ms, "0"));
    let whole: u64 = whole.parse().ok()?;
    let micros: u64 = format!("{frac:0<3}")[..3].parse().ok()?;
    Some((whole * 1_000_000 + micros * 1_000, label.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafsim_engine::{Instant, NodeId, TopicId, TopicPartition, ValueId};

    const MS: u64 = 1_000_000;

    fn entry(at_ns: u64, event: HistoryEvent) -> HistoryEntry {
        HistoryEntry {
            at: Instant::from_nanos(at_ns),
            node: NodeId(0),
            event,
        }
    }

    fn invoke(at: u64, v: u64) -> HistoryEntry {
        entry(
            at,
            HistoryEvent::SendInvoke {
                producer: 0,
                value: ValueId(v),
                key: None,
                topic: TopicId(0),
                scheduled: None,
            },
        )
    }

    fn ok(at: u64, v: u64) -> HistoryEntry {
        entry(
            at,
            HistoryEvent::SendOk {
                producer: 0,
                value: ValueId(v),
                partition: TopicPartition::new(TopicId(0), 0),
                offset: v,
            },
        )
    }

    fn poll(at: u64, group: u32, v: u64) -> HistoryEntry {
        entry(
            at,
            HistoryEvent::Poll {
                group,
                member: 0,
                partition: TopicPartition::new(TopicId(0), 0),
                offset: v,
                value: ValueId(v),
                key: None,
            },
        )
    }

    fn spec(groups: u32) -> MeasureSpec {
        MeasureSpec {
            workload: "w".into(),
            hardware: "default".into(),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(3),
            message_sizes: vec![100],
            groups,
            awaits_load_start: false,
        }
    }

    /// One record per ms for 3 s: acked 2 ms after sending, polled 5 ms after.
    fn steady(groups: u32) -> History {
        let mut events = Vec::new();
        for i in 0..3_000u64 {
            let t = i * MS;
            events.push((t, 0, invoke(t, i)));
            events.push((t + 2 * MS, 1, ok(t + 2 * MS, i)));
            for g in 0..groups {
                events.push((t + 5 * MS, 2 + g, poll(t + 5 * MS, g, i)));
            }
        }
        events.sort_by_key(|(t, order, _)| (*t, *order));
        events.into_iter().map(|(_, _, e)| e).collect()
    }

    #[test]
    fn latencies_and_rates_come_from_invoke_ok_and_poll() {
        let m = measure(&spec(1), &steady(1), &[]);
        let r = &m.result;
        // Sent after the 1 s warm-up: 2000 records over 2 s.
        assert_eq!(r.records_sent, 2_000);
        assert!(
            (r.publish_rate - 1_000.0).abs() < 1e-6,
            "{}",
            r.publish_rate
        );
        assert!((r.publish_latency_ms.p50 - 2.0).abs() < 0.01);
        assert!((r.end_to_end_latency_ms.p99 - 5.0).abs() < 0.01);
        assert_eq!(r.records_consumed, 2_000);
        assert_eq!(r.bytes_sent, 200_000);
        // 5 records read behind, 2 of them not yet acknowledged ... at most 5 in flight.
        assert!(r.backlog_max <= 5, "backlog {}", r.backlog_max);
        assert_eq!(m.untracked, 0);
    }

    #[test]
    fn fed_in_slices_it_measures_what_it_measures_whole() {
        let whole = measure(&spec(2), &steady(2), &[]);
        let spec = spec(2);
        let mut m = Measure::new(&spec);
        for slice in steady(2).entries().cloned().collect::<Vec<_>>().chunks(7) {
            m.observe(slice);
        }
        let sliced = m.finish(&[]);
        assert_eq!(sliced.result, whole.result);
        assert!(whole.result.records_consumed > 0);
    }

    #[test]
    fn each_group_reads_once_and_rereads_do_not_count() {
        let mut h: Vec<HistoryEntry> = steady(2).entries().cloned().collect();
        // A re-read of value 1500 by group 0 after everything.
        h.push(poll(4_000 * MS, 0, 1_500));
        let m = measure(&spec(2), &h.into_iter().collect(), &[]);
        assert_eq!(m.result.records_consumed, 4_000);
    }

    #[test]
    fn without_consumers_nothing_is_consumed_and_no_backlog_is_sampled() {
        let m = measure(&spec(0), &steady(0), &[]);
        assert_eq!(m.result.records_consumed, 0);
        assert!(m.result.timeline.iter().all(|p| p.backlog.is_none()));
    }

    #[test]
    fn a_consumer_that_stops_reading_shows_a_growing_backlog() {
        let h: History = steady(1)
            .entries()
            .filter(|e| {
                !matches!(e.event, HistoryEvent::Poll { .. }) || e.at.as_nanos() < MS * 1_000
            })
            .cloned()
            .collect();
        let m = measure(&spec(1), &h, &[]);
        assert!(m.result.backlog_max >= 1_900, "{}", m.result.backlog_max);
    }

    #[test]
    fn the_window_counts_from_the_load_start_and_probes_are_not_measured() {
        let spec = MeasureSpec {
            awaits_load_start: true,
            ..spec(1)
        };
        let mut m = Measure::new(&spec);
        // A probe at 0.5 s, read at 0.6 s (the readiness phase), then the load from 2 s:
        // one record a ms for 3 s, acked after 2 ms and read after 5 ms.
        m.observe(&[
            invoke(500 * MS, 99_999),
            ok(502 * MS, 99_999),
            poll(600 * MS, 0, 99_999),
        ]);
        m.load_started(2_000 * MS, &[]);
        let mut events = Vec::new();
        for i in 0..3_000u64 {
            let t = 2_000 * MS + i * MS;
            events.push((t, 0, invoke(t, i)));
            events.push((t + 2 * MS, 1, ok(t + 2 * MS, i)));
            events.push((t + 5 * MS, 2, poll(t + 5 * MS, 0, i)));
        }
        events.sort_by_key(|(t, order, _)| (*t, *order));
        let entries: Vec<HistoryEntry> = events.into_iter().map(|(_, _, e)| e).collect();
        m.observe(&entries);
        let r = m.finish(&[]).result;
        // The window is [3 s, 5 s): 2000 records sent in it.
        assert_eq!(r.load_start_s, Some(2.0));
        assert_eq!(r.warmup_s, 3.0);
        assert_eq!(r.duration_s, 5.0);
        assert_eq!(r.records_sent, 2_000);
        assert!(
            (r.end_to_end_latency_ms.max - 5.0).abs() < 0.01,
            "no probe latency"
        );
        assert!(r.unready_groups.is_empty());
    }

    #[test]
    fn without_a_readiness_phase_the_window_counts_from_zero() {
        let m = measure(&spec(1), &steady(1), &[]);
        assert_eq!(m.result.load_start_s, None);
        assert_eq!(m.result.warmup_s, 1.0);
    }

    #[test]
    fn publish_delay_is_the_send_behind_its_schedule() {
        let mut h: Vec<HistoryEntry> = steady(0).entries().cloned().collect();
        for e in &mut h {
            if let HistoryEvent::SendInvoke { scheduled, .. } = &mut e.event {
                *scheduled = Some(Instant::from_nanos(e.at.as_nanos().saturating_sub(300_000)));
            }
        }
        let m = measure(&spec(0), &h.into_iter().collect(), &[]);
        let delay = m.result.publish_delay_ms.expect("scheduled sends");
        assert!((delay.p50 - 0.3).abs() < 0.001, "{delay:?}");
        assert!(measure(&spec(0), &steady(0), &[])
            .result
            .publish_delay_ms
            .is_none());
    }

    #[test]
    fn faults_come_from_the_nemesis_log() {
        let log = vec![
            "1500.250ms crash broker-1".to_string(),
            "not a fault line".to_string(),
        ];
        let m = measure(&spec(0), &steady(0), &log);
        assert_eq!(m.result.faults.len(), 1);
        assert_eq!(m.result.faults[0].label, "crash broker-1");
        assert!((m.result.faults[0].t_s - 1.50025).abs() < 1e-9);
        assert_eq!(
            parse_fault_line("30000.000ms heal: all faults lifted"),
            Some((30_000_000_000, "heal: all faults lifted"))
        );
        assert_eq!(parse_fault_line("12ms x"), Some((12_000_000, "x")));
        assert_eq!(parse_fault_line("soon crash"), None);
    }
}
