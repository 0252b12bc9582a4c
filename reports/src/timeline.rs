//! Per-second buckets of simulated time: counts, the backlog level and a publish p99.
//!
//! A p99 per second needs a histogram per second; keeping one for every second of a long run
//! would cost ~190 KB each. The simulator reports events in time order, so only the few most
//! recent seconds can still receive samples: a small ring of histograms covers them
//! (`P99_WINDOW_SECONDS`), and a second's p99 is fixed when it leaves the window. A sample
//! older than the window still counts in rates and in the run's histograms, only not in that
//! second's p99 (counted in `late_latency_samples`).

use hdrhistogram::Histogram;

use crate::metrics::new_latency_histogram;
use crate::result::TimelinePoint;

/// The longest run the timeline covers (about 28 hours of simulated time), so a runaway
/// clock cannot exhaust memory.
pub const MAX_TIMELINE_SECONDS: u64 = 100_000;

/// How many of the newest seconds still accept latency samples for their p99.
const P99_WINDOW_SECONDS: u64 = 4;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Second {
    published: u64,
    consumed: u64,
    backlog_last: Option<u64>,
    p99_us: Option<u64>,
}

pub(crate) struct Timeline {
    seconds: Vec<Second>,
    /// Slot `s % P99_WINDOW_SECONDS` holds the publish latencies of open second `s`.
    open: Vec<Histogram<u64>>,
    newest_second: Option<u64>,
    late_latency_samples: u64,
}

impl Timeline {
    pub(crate) fn new() -> Self {
        Timeline {
            seconds: Vec::new(),
            open: (0..P99_WINDOW_SECONDS)
                .map(|_| new_latency_histogram())
                .collect(),
            newest_second: None,
            late_latency_samples: 0,
        }
    }

    /// A record acknowledged at `acked_at_ns` after `latency_us`.
    pub(crate) fn on_publish(&mut self, acked_at_ns: u64, latency_us: u64) {
        let second = self.second_of(acked_at_ns);
        self.seconds[second as usize].published += 1;
        self.advance_to(second);
        if second < self.first_open_second() {
            self.late_latency_samples += 1;
            return;
        }
        let slot = (second % P99_WINDOW_SECONDS) as usize;
        self.open[slot].saturating_record(latency_us);
    }

    pub(crate) fn on_consume(&mut self, polled_at_ns: u64) {
        let second = self.second_of(polled_at_ns);
        self.seconds[second as usize].consumed += 1;
    }

    pub(crate) fn on_backlog(&mut self, t_ns: u64, records: u64) {
        let second = self.second_of(t_ns);
        self.seconds[second as usize].backlog_last = Some(records);
    }

    pub(crate) fn late_latency_samples(&self) -> u64 {
        self.late_latency_samples
    }

    /// The timeline over at least `duration_ns`, longer if samples came later.
    pub(crate) fn finish(mut self, duration_ns: u64) -> Vec<TimelinePoint> {
        if let Some(newest) = self.newest_second {
            self.close_range(self.first_open_second(), newest + 1);
        }
        let covered = duration_ns.div_ceil(NANOS_PER_SECOND);
        let len = covered.max(self.seconds.len() as u64);
        assert!(
            len <= MAX_TIMELINE_SECONDS,
            "reports: timeline of {len} s exceeds MAX_TIMELINE_SECONDS"
        );
        let mut backlog = None;
        (0..len)
            .map(|t_s| {
                let second = self.seconds.get(t_s as usize).copied().unwrap_or_default();
                backlog = second.backlog_last.or(backlog);
                let width_s = bucket_width_s(t_s, duration_ns);
                TimelinePoint {
                    t_s,
                    publish_rate: second.published as f64 / width_s,
                    consume_rate: second.consumed as f64 / width_s,
                    backlog,
                    p99_ms: second.p99_us.map(|us| us as f64 / 1000.0),
                }
            })
            .collect()
    }

    /// The bucket index of `t_ns`, growing the bucket vector to hold it.
    fn second_of(&mut self, t_ns: u64) -> u64 {
        let second = t_ns / NANOS_PER_SECOND;
        assert!(
            second < MAX_TIMELINE_SECONDS,
            "reports: sample at {second} s of simulated time is beyond MAX_TIMELINE_SECONDS ({MAX_TIMELINE_SECONDS})"
        );
        if self.seconds.len() <= second as usize {
            self.seconds.resize(second as usize + 1, Second::default());
        }
        second
    }

    fn first_open_second(&self) -> u64 {
        self.newest_second
            .map_or(0, |newest| newest.saturating_sub(P99_WINDOW_SECONDS - 1))
    }

    /// Moves the window so that it ends at `second`, fixing the p99 of seconds that leave it.
    fn advance_to(&mut self, second: u64) {
        match self.newest_second {
            None => self.newest_second = Some(second),
            Some(newest) if second > newest => {
                let old_first = self.first_open_second();
                let new_first = second.saturating_sub(P99_WINDOW_SECONDS - 1);
                self.close_range(old_first, new_first.min(newest + 1));
                self.newest_second = Some(second);
            }
            Some(_) => {}
        }
    }

    /// Fixes the p99 of seconds `[from, to)` and empties their ring slots for reuse.
    fn close_range(&mut self, from: u64, to: u64) {
        assert!(
            to.saturating_sub(from) <= P99_WINDOW_SECONDS,
            "reports: closing {from}..{to} s, more seconds than the p99 window holds"
        );
        for second in from..to {
            let slot = (second % P99_WINDOW_SECONDS) as usize;
            let histogram = &mut self.open[slot];
            if !histogram.is_empty() {
                self.seconds[second as usize].p99_us = Some(histogram.value_at_quantile(0.99));
                histogram.reset();
            }
        }
    }
}

/// Width of bucket `t_s` in seconds: 1, except a partial last second of the run.
fn bucket_width_s(t_s: u64, duration_ns: u64) -> f64 {
    let start_ns = t_s * NANOS_PER_SECOND;
    let end_ns = start_ns + NANOS_PER_SECOND;
    if start_ns < duration_ns && duration_ns < end_ns {
        (duration_ns - start_ns) as f64 / NANOS_PER_SECOND as f64
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;

    #[test]
    fn counts_land_in_their_second_and_rates_scale_a_partial_last_second() {
        let mut timeline = Timeline::new();
        for i in 0..10 {
            timeline.on_publish(i * SECOND / 10, 1_000);
        }
        for i in 0..4 {
            timeline.on_consume(SECOND + i * SECOND / 8);
        }
        let points = timeline.finish(SECOND + SECOND / 2);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].publish_rate, 10.0);
        assert_eq!(points[0].consume_rate, 0.0);
        assert_eq!(points[1].consume_rate, 8.0, "4 records in half a second");
        assert_eq!(points[1].publish_rate, 0.0);
    }

    #[test]
    fn backlog_carries_forward_and_is_null_before_the_first_sample() {
        let mut timeline = Timeline::new();
        timeline.on_backlog(2 * SECOND, 50);
        timeline.on_backlog(2 * SECOND + 5, 70);
        timeline.on_backlog(4 * SECOND, 10);
        let backlog: Vec<Option<u64>> = timeline
            .finish(6 * SECOND)
            .iter()
            .map(|p| p.backlog)
            .collect();
        assert_eq!(
            backlog,
            vec![None, None, Some(70), Some(70), Some(10), Some(10)]
        );
    }

    #[test]
    fn p99_per_second_is_from_that_seconds_acks_only() {
        let mut timeline = Timeline::new();
        for second in 0..10u64 {
            let latency_us = (second + 1) * 1_000;
            for i in 0..100 {
                timeline.on_publish(second * SECOND + i * 1_000, latency_us);
            }
        }
        let points = timeline.finish(12 * SECOND);
        for (second, point) in points.iter().enumerate().take(10) {
            let expected_ms = (second + 1) as f64;
            let p99_ms = point.p99_ms.expect("acks in this second");
            assert!(
                (p99_ms - expected_ms).abs() <= expected_ms * 0.001,
                "second {second}: p99 {p99_ms} ms, expected {expected_ms}"
            );
        }
        assert_eq!(points[10].p99_ms, None, "no acks, no p99");
    }

    #[test]
    fn a_sample_older_than_the_window_counts_in_rates_but_not_in_p99() {
        let mut timeline = Timeline::new();
        timeline.on_publish(10 * SECOND, 1_000);
        timeline.on_publish(SECOND, 900_000);
        assert_eq!(timeline.late_latency_samples(), 1);
        let points = timeline.finish(11 * SECOND);
        assert_eq!(points[1].publish_rate, 1.0);
        assert_eq!(points[1].p99_ms, None);
        assert_eq!(points[10].p99_ms, Some(1.0));
    }

    #[test]
    fn a_slightly_late_sample_within_the_window_still_counts_in_p99() {
        let mut timeline = Timeline::new();
        timeline.on_publish(5 * SECOND, 1_000);
        timeline.on_publish(3 * SECOND, 7_000);
        assert_eq!(timeline.late_latency_samples(), 0);
        let points = timeline.finish(6 * SECOND);
        let p99_ms = points[3].p99_ms.expect("the late sample is in second 3");
        assert!((p99_ms - 7.0).abs() < 0.01, "p99 {p99_ms} ms");
    }

    #[test]
    #[should_panic(expected = "MAX_TIMELINE_SECONDS")]
    fn a_sample_beyond_the_timeline_limit_panics() {
        let mut timeline = Timeline::new();
        timeline.on_consume(MAX_TIMELINE_SECONDS * SECOND);
    }
}
