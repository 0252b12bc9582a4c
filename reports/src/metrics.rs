//! The `Recorder`: what the simulator feeds while a benchmark runs, in simulated nanoseconds.
//!
//! Latencies go into HDR histograms in microseconds with 3 significant digits (0.1% error,
//! as HdrHistogram users expect), so memory is fixed whatever the record count. Samples sent
//! before the warm-up ends are left out of the histograms and the rates (the cluster is still
//! filling its batches and caches) but stay on the per-second timeline, so the chart shows
//! the warm-up as it was.
//!
//! The consume rate counts records *polled* in the measured window `[warm-up, duration)`,
//! whenever they were sent (OpenMessaging Benchmark's `consumeRate`): a consumer reading a
//! backlog written before the window is measured at the rate it reads. End-to-end latency
//! samples are the records *sent* in the window, whenever they were read.
//!
//! A bench whose load starts after a readiness phase measures the window `[load start +
//! warm-up, load start + duration)` ([`Recorder::window_from`]).
//!
//! Publish delay (OMB's `publishDelayLatency`, `WorkerStats.recordProducerSuccess`): how late
//! a send was handed to the client against its rate's schedule, `sendTime -
//! intendedSendTime`, for acknowledged records sent in the window.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::result::{BenchResult, CurvePoint, FaultMark, LatencySummary};
use crate::timeline::Timeline;

/// Latencies above one hour are recorded as one hour (a stuck record, not a measurement).
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// HDR histogram precision: 3 significant digits.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Fault events kept for the charts; later ones are only counted.
pub const MAX_FAULTS: usize = 1_000;
/// Fault labels are cut to this many characters so a chart stays readable.
const MAX_FAULT_LABEL_CHARS: usize = 80;

/// The percentile curve goes to 99.999% at most (-log10(1 - p) = 5) ...
const CURVE_X_MAX: f64 = 5.0;
/// ... in steps of 0.05 on that axis (at most 101 points per curve).
const CURVE_X_STEP: f64 = 0.05;

const NANOS_PER_MICRO: u64 = 1_000;
const BYTES_PER_MIB: f64 = 1_048_576.0;

/// A latency histogram with the crate's bounds and precision.
pub(crate) fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_max(LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS)
        .expect("reports: constant histogram bounds are valid")
}

/// Collects a run's measurements. Feed it in simulated time; call [`Recorder::finish`] once.
pub struct Recorder {
    /// Start of the measured window (the end of the warm-up).
    warmup_ns: u64,
    publish_delay_us: Histogram<u64>,
    /// End of the measured window (polls at or after it are not in the consume rate).
    end_ns: u64,
    records_consumed: u64,
    publish_us: Histogram<u64>,
    end_to_end_us: Histogram<u64>,
    bytes_sent: u64,
    bytes_consumed: u64,
    backlog_max: u64,
    timeline: Timeline,
    faults: Vec<FaultMark>,
    faults_dropped: u64,
}

impl Recorder {
    /// A recorder that leaves out samples sent before `warmup`, and counts every poll after
    /// it in the consume rate.
    pub fn new(warmup: Duration) -> Self {
        Recorder {
            warmup_ns: duration_ns(warmup),
            publish_delay_us: new_latency_histogram(),
            end_ns: u64::MAX,
            records_consumed: 0,
            publish_us: new_latency_histogram(),
            end_to_end_us: new_latency_histogram(),
            bytes_sent: 0,
            bytes_consumed: 0,
            backlog_max: 0,
            timeline: Timeline::new(),
            faults: Vec::new(),
            faults_dropped: 0,
        }
    }

    /// A recorder measuring the window `[warmup, duration)`: polls after `duration` (the run's
    /// drain) still give end-to-end samples of records sent in the window but are not part of
    /// the consume rate.
    pub fn window(warmup: Duration, duration: Duration) -> Self {
        Recorder {
            end_ns: duration_ns(duration),
            ..Recorder::new(warmup)
        }
    }

    /// A recorder measuring `[start + warmup, start + duration)`: a load that started at
    /// `start` (after a bench's readiness phase); finish it with `start + duration`.
    pub fn window_from(start: Duration, warmup: Duration, duration: Duration) -> Self {
        Recorder::window(start + warmup, start + duration)
    }

    /// A record of `bytes` sent at `sent_at_ns` was acknowledged at `acked_at_ns`.
    pub fn on_publish(&mut self, sent_at_ns: u64, acked_at_ns: u64, bytes: u64) {
        assert!(
            acked_at_ns >= sent_at_ns,
            "reports: record acknowledged at {acked_at_ns} ns before it was sent at {sent_at_ns} ns"
        );
        let latency_us = (acked_at_ns - sent_at_ns) / NANOS_PER_MICRO;
        self.timeline.on_publish(acked_at_ns, latency_us);
        if sent_at_ns >= self.warmup_ns {
            self.publish_us.saturating_record(latency_us);
            self.bytes_sent += bytes;
        }
    }

    /// An acknowledged record was handed to its client at `sent_at_ns` while its rate's
    /// schedule had it due at `intended_at_ns` (OMB's publish delay; only records whose
    /// producer has a rate have a schedule).
    pub fn on_publish_delay(&mut self, intended_at_ns: u64, sent_at_ns: u64) {
        assert!(
            sent_at_ns >= intended_at_ns,
            "reports: record sent at {sent_at_ns} ns before its schedule at {intended_at_ns} ns"
        );
        if sent_at_ns >= self.warmup_ns {
            self.publish_delay_us
                .saturating_record((sent_at_ns - intended_at_ns) / NANOS_PER_MICRO);
        }
    }

    /// A record of `bytes` sent at `sent_at_ns` was returned by a poll at `polled_at_ns`.
    pub fn on_consume(&mut self, sent_at_ns: u64, polled_at_ns: u64, bytes: u64) {
        assert!(
            polled_at_ns >= sent_at_ns,
            "reports: record polled at {polled_at_ns} ns before it was sent at {sent_at_ns} ns"
        );
        let latency_us = (polled_at_ns - sent_at_ns) / NANOS_PER_MICRO;
        self.timeline.on_consume(polled_at_ns);
        if sent_at_ns >= self.warmup_ns {
            self.end_to_end_us.saturating_record(latency_us);
        }
        if (self.warmup_ns..self.end_ns).contains(&polled_at_ns) {
            self.records_consumed += 1;
            self.bytes_consumed += bytes;
        }
    }

    /// The consumers' total backlog (records produced but not yet consumed) at `t_ns`.
    pub fn on_backlog(&mut self, t_ns: u64, records: u64) {
        self.timeline.on_backlog(t_ns, records);
        self.backlog_max = self.backlog_max.max(records);
    }

    /// A fault (crash, partition, ...) happened at `t_ns`; `label` names it on the charts.
    pub fn on_fault(&mut self, t_ns: u64, label: &str) {
        if self.faults.len() >= MAX_FAULTS {
            self.faults_dropped += 1;
            return;
        }
        self.faults.push(FaultMark {
            t_s: t_ns as f64 / 1e9,
            label: label.chars().take(MAX_FAULT_LABEL_CHARS).collect(),
        });
    }

    /// Publish samples that arrived too late for their second's timeline p99 (see timeline.rs).
    pub fn late_latency_samples(&self) -> u64 {
        self.timeline.late_latency_samples()
    }

    /// The result of a run that lasted `duration` of simulated time (warm-up included).
    pub fn finish(mut self, workload: &str, hardware: &str, duration: Duration) -> BenchResult {
        let duration_ns = duration_ns(duration);
        assert!(
            duration_ns > self.warmup_ns,
            "reports: run of {duration:?} is not longer than its warm-up of {} ns",
            self.warmup_ns
        );
        assert!(
            self.end_ns == u64::MAX || self.end_ns == duration_ns,
            "reports: a recorder of the window ending at {} ns finished at {duration_ns} ns",
            self.end_ns
        );
        let measured_s = (duration_ns - self.warmup_ns) as f64 / 1e9;
        self.faults.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        BenchResult {
            workload: workload.to_string(),
            hardware: hardware.to_string(),
            publish_rate: self.publish_us.len() as f64 / measured_s,
            publish_mib_per_sec: self.bytes_sent as f64 / BYTES_PER_MIB / measured_s,
            consume_rate: self.records_consumed as f64 / measured_s,
            publish_latency_ms: summarize(&self.publish_us),
            end_to_end_latency_ms: summarize(&self.end_to_end_us),
            timeline: self.timeline.finish(duration_ns),
            consume_mib_per_sec: self.bytes_consumed as f64 / BYTES_PER_MIB / measured_s,
            records_sent: self.publish_us.len(),
            bytes_sent: self.bytes_sent,
            records_consumed: self.records_consumed,
            bytes_consumed: self.bytes_consumed,
            publish_latency_avg_ms: self.publish_us.mean() / 1000.0,
            end_to_end_latency_avg_ms: self.end_to_end_us.mean() / 1000.0,
            duration_s: duration_ns as f64 / 1e9,
            warmup_s: self.warmup_ns as f64 / 1e9,
            backlog_max: self.backlog_max,
            faults: self.faults,
            faults_dropped: self.faults_dropped,
            publish_latency_curve_ms: percentile_curve(&self.publish_us),
            end_to_end_latency_curve_ms: percentile_curve(&self.end_to_end_us),
            publish_delay_ms: (!self.publish_delay_us.is_empty())
                .then(|| summarize(&self.publish_delay_us)),
            publish_delay_avg_ms: self.publish_delay_us.mean() / 1000.0,
            publish_delay_curve_ms: percentile_curve(&self.publish_delay_us),
            load_start_s: None,
            unready_groups: Vec::new(),
            disk: None,
            consumer_groups: None,
            violations: Vec::new(),
        }
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).expect("reports: duration beyond u64 nanoseconds")
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// p50/p95/p99/p99.9/max of a histogram in milliseconds (zeros when it is empty).
pub(crate) fn summarize(histogram: &Histogram<u64>) -> LatencySummary {
    LatencySummary {
        p50: us_to_ms(histogram.value_at_quantile(0.50)),
        p95: us_to_ms(histogram.value_at_quantile(0.95)),
        p99: us_to_ms(histogram.value_at_quantile(0.99)),
        p999: us_to_ms(histogram.value_at_quantile(0.999)),
        max: us_to_ms(histogram.max()),
    }
}

/// The latency at percentiles evenly spaced on the -log10(1 - p) axis of HDR charts, up to
/// where a single sample is left (beyond, every percentile is the max), at most 99.999%.
pub(crate) fn percentile_curve(histogram: &Histogram<u64>) -> Vec<CurvePoint> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let x_last = (histogram.len() as f64).log10().min(CURVE_X_MAX);
    let steps = (x_last / CURVE_X_STEP + 1e-9).floor() as u32;
    (0..=steps)
        .map(|step| {
            let x = f64::from(step) * CURVE_X_STEP;
            let quantile = 1.0 - 10f64.powf(-x);
            CurvePoint {
                percentile: round_to(quantile * 100.0, 1e6),
                ms: us_to_ms(histogram.value_at_quantile(quantile)),
            }
        })
        .collect()
}

fn round_to(value: f64, scale: f64) -> f64 {
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const SECOND: u64 = 1_000_000_000;

    fn assert_close(actual: f64, expected: f64, what: &str) {
        // 3 significant digits: within 0.1% (HdrHistogram reports the bucket's top value).
        let tolerance = expected.abs() * 0.001 + 1e-9;
        assert!(
            (actual - expected).abs() <= tolerance,
            "{what}: {actual}, expected {expected}"
        );
    }

    /// One record per microsecond of latency from 1 us to 100 ms, all after the warm-up.
    fn uniform_recorder() -> Recorder {
        let mut recorder = Recorder::new(Duration::ZERO);
        for i in 1..=100_000u64 {
            let sent = i * 10_000;
            recorder.on_publish(sent, sent + i * 1_000, 100);
        }
        recorder
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let result = uniform_recorder().finish("w", "h", Duration::from_secs(2));
        let summary = result.publish_latency_ms;
        assert_close(summary.p50, 50.0, "p50");
        assert_close(summary.p95, 95.0, "p95");
        assert_close(summary.p99, 99.0, "p99");
        assert_close(summary.p999, 99.9, "p99.9");
        assert_close(summary.max, 100.0, "max");
        assert_close(result.publish_latency_avg_ms, 50.0005, "avg");
    }

    #[test]
    fn percentiles_of_a_two_point_distribution() {
        // 990 records at 1 ms and 10 at 100 ms: p99 is still 1 ms, p99.9 is 100 ms.
        let mut recorder = Recorder::new(Duration::ZERO);
        for i in 0..1_000u64 {
            let latency = if i % 100 == 0 { 100 * MS } else { MS };
            recorder.on_consume(i * MS, i * MS + latency, 10);
        }
        let result = recorder.finish("w", "h", Duration::from_secs(2));
        let summary = result.end_to_end_latency_ms;
        assert_close(summary.p50, 1.0, "p50");
        assert_close(summary.p99, 1.0, "p99");
        assert_close(summary.p999, 100.0, "p99.9");
        assert_close(summary.max, 100.0, "max");
        assert_eq!(result.publish_latency_ms.max, 0.0, "nothing was published");
    }

    #[test]
    fn warmup_samples_are_left_out_of_histograms_and_rates_but_not_the_timeline() {
        let mut recorder = Recorder::new(Duration::from_secs(1));
        // During the warm-up: 100 slow records. After it: 300 fast ones over 2 s.
        for i in 0..100u64 {
            recorder.on_publish(i * MS, i * MS + 500 * MS, 1_000);
            recorder.on_consume(i * MS, i * MS + 600 * MS, 1_000);
        }
        for i in 0..300u64 {
            let sent = SECOND + i * 5 * MS;
            recorder.on_publish(sent, sent + 2 * MS, 1_000);
            recorder.on_consume(sent, sent + 3 * MS, 1_000);
        }
        let result = recorder.finish("w", "h", Duration::from_secs(3));
        assert_eq!(result.records_sent, 300);
        assert_eq!(result.records_consumed, 300);
        assert_close(result.publish_rate, 150.0, "publish rate over 2 s");
        assert_close(result.consume_rate, 150.0, "consume rate over 2 s");
        assert_close(result.publish_latency_ms.max, 2.0, "no warm-up latency");
        assert_close(result.end_to_end_latency_ms.max, 3.0, "no warm-up latency");
        let timeline_acks: f64 = result.timeline.iter().map(|p| p.publish_rate).sum();
        assert_eq!(
            timeline_acks, 400.0,
            "the timeline shows warm-up records too"
        );
        let first_p99 = result.timeline[0].p99_ms.expect("warm-up acks at 0.5 s");
        assert_close(first_p99, 500.0, "warm-up p99 on the timeline");
    }

    #[test]
    fn the_consume_rate_counts_polls_in_the_window_whenever_the_records_were_sent() {
        // A backlog written in the first second and read from 2 s to 4 s, 1000 records a
        // second, with the window [2 s, 3 s): 1000 polls in it, none of them sent in it.
        let mut recorder = Recorder::window(Duration::from_secs(2), Duration::from_secs(3));
        for i in 0..2_000u64 {
            recorder.on_publish(i * MS / 2, i * MS / 2 + MS, 100);
            recorder.on_consume(i * MS / 2, 2 * SECOND + i * MS, 100);
        }
        let result = recorder.finish("w", "h", Duration::from_secs(3));
        assert_eq!(result.records_consumed, 1_000);
        assert_close(result.consume_rate, 1_000.0, "consume rate in the window");
        assert_eq!(result.bytes_consumed, 100_000);
        assert_eq!(result.publish_rate, 0.0, "nothing was sent in the window");
        assert_eq!(
            result.end_to_end_latency_ms.max, 0.0,
            "no record sent in the window"
        );
    }

    #[test]
    fn a_window_from_a_load_start_measures_after_its_warm_up() {
        // The load started at 2 s; warm-up 1 s, duration 2 s: the window is [3 s, 4 s).
        let mut recorder = Recorder::window_from(
            Duration::from_secs(2),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        for i in 0..2_000u64 {
            let sent = 2 * SECOND + i * MS;
            recorder.on_publish(sent, sent + MS, 10);
            recorder.on_publish_delay(sent - 100_000, sent);
            recorder.on_consume(sent, sent + 2 * MS, 10);
        }
        let result = recorder.finish("w", "h", Duration::from_secs(4));
        assert_eq!(result.records_sent, 1_000);
        assert_close(result.publish_rate, 1_000.0, "rate over the 1 s window");
        // Polled in [3 s, 4 s): sent in [2.998 s, 3.998 s).
        assert_eq!(result.records_consumed, 1_000);
        assert_eq!(result.warmup_s, 3.0);
        let delay = result.publish_delay_ms.expect("a schedule");
        assert_close(delay.p50, 0.1, "delay");
    }

    #[test]
    fn without_a_schedule_there_is_no_publish_delay() {
        let mut recorder = Recorder::new(Duration::ZERO);
        recorder.on_publish(MS, 2 * MS, 10);
        let result = recorder.finish("w", "h", Duration::from_secs(1));
        assert!(result.publish_delay_ms.is_none());
    }

    #[test]
    fn mib_are_two_to_the_twentieth_bytes() {
        let mut recorder = Recorder::new(Duration::ZERO);
        // 10 records of 1 MiB each over 10 s: 1 record/s, 1 MiB/s (not 1.048576 MB/s).
        for i in 0..10u64 {
            recorder.on_publish(i * SECOND, i * SECOND + MS, 1 << 20);
            recorder.on_consume(i * SECOND, i * SECOND + MS, 1 << 20);
        }
        let result = recorder.finish("w", "h", Duration::from_secs(10));
        assert_eq!(result.publish_mib_per_sec, 1.0);
        assert_eq!(result.consume_mib_per_sec, 1.0);
        assert_eq!(result.bytes_sent, 10 << 20);
    }

    #[test]
    fn faults_are_kept_sorted_and_bounded() {
        let mut recorder = Recorder::new(Duration::ZERO);
        recorder.on_fault(2 * SECOND, "restart broker-0");
        recorder.on_fault(SECOND, "crash broker-0");
        for _ in 0..MAX_FAULTS {
            recorder.on_fault(3 * SECOND, "partition");
        }
        let result = recorder.finish("w", "h", Duration::from_secs(4));
        assert_eq!(result.faults.len(), MAX_FAULTS);
        assert_eq!(result.faults_dropped, 2);
        assert_eq!(result.faults[0].label, "crash broker-0");
        assert_eq!(result.faults[0].t_s, 1.0);
    }

    #[test]
    fn backlog_max_is_the_largest_sample() {
        let mut recorder = Recorder::new(Duration::ZERO);
        recorder.on_backlog(0, 5);
        recorder.on_backlog(SECOND, 900);
        recorder.on_backlog(2 * SECOND, 40);
        let result = recorder.finish("w", "h", Duration::from_secs(3));
        assert_eq!(result.backlog_max, 900);
        assert_eq!(result.timeline[2].backlog, Some(40));
    }

    #[test]
    fn percentile_curve_is_monotonic_and_stops_where_one_sample_is_left() {
        let result = uniform_recorder().finish("w", "h", Duration::from_secs(2));
        let curve = &result.publish_latency_curve_ms;
        // 100 000 samples: -log10(1 - p) reaches 5 (99.999%).
        assert_eq!(curve.len(), 101);
        assert_eq!(curve[0].percentile, 0.0);
        assert_eq!(curve[20].percentile, 90.0);
        assert_eq!(curve[40].percentile, 99.0);
        assert_eq!(curve[100].percentile, 99.999);
        assert_close(curve[40].ms, 99.0, "p99 on the curve");
        for pair in curve.windows(2) {
            assert!(pair[0].ms <= pair[1].ms, "curve decreases: {pair:?}");
        }
        let few = Recorder::new(Duration::ZERO);
        let empty = few.finish("w", "h", Duration::from_secs(1));
        assert!(empty.publish_latency_curve_ms.is_empty());
    }

    #[test]
    fn a_histogram_has_a_fixed_size_whatever_it_records() {
        let mut histogram = new_latency_histogram();
        let slots = histogram.distinct_values();
        // 23 552 u64 counters (~190 KB), the cost of 3 digits up to one hour.
        assert!(slots < 30_000, "{slots} counters per histogram");
        for value in [0, 1, 1_000, LATENCY_MAX_US, u64::MAX] {
            histogram.saturating_record(value);
        }
        assert_eq!(
            histogram.distinct_values(),
            slots,
            "recording never grows it"
        );
        assert_eq!(
            histogram.max(),
            histogram.highest_equivalent(LATENCY_MAX_US)
        );
    }

    #[test]
    #[should_panic(expected = "before it was sent")]
    fn an_ack_before_its_send_panics() {
        Recorder::new(Duration::ZERO).on_publish(10, 5, 1);
    }
}
