//! Every timer a producer sets or is signalled with, as one type. The kernel carries a
//! [`Timer`] (a numeric kind and a key); this file is the one place that encodes a
//! [`ProducerTimer`] into it and decodes it back, so a new timer is one variant here and a
//! kind no producer sets cannot be mistaken for one (it panics: a routing bug).
//!
//! The numeric kinds are part of every trace (`timer kind:key`), so they never change.

use crate::node::Timer;
use crate::time::Instant;

const WAKE: u16 = 1;
const PROBE: u16 = 2;
const RELEASE: u16 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerTimer {
    /// The application's or the sender's next deadline (key: the wake generation; only the
    /// latest one counts, an earlier one firing late is ignored).
    Wake(u64),
    /// Host signal: send one probe record (a bench's readiness phase).
    Probe,
    /// Host signal: start the load, which stops at the instant given.
    Release(Instant),
}

impl From<ProducerTimer> for Timer {
    fn from(t: ProducerTimer) -> Timer {
        match t {
            ProducerTimer::Wake(generation) => Timer::new(WAKE, generation),
            ProducerTimer::Probe => Timer::new(PROBE, 0),
            ProducerTimer::Release(stop_at) => Timer::new(RELEASE, stop_at.as_nanos()),
        }
    }
}

impl ProducerTimer {
    /// The timer a producer set (or was signalled with).
    pub fn decode(t: Timer) -> ProducerTimer {
        match t.kind {
            WAKE => ProducerTimer::Wake(t.key),
            PROBE => ProducerTimer::Probe,
            RELEASE => ProducerTimer::Release(Instant::from_nanos(t.key)),
            other => unreachable!("timer kind {other} is not a producer's"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_producer_timer_round_trips_with_its_trace_kind() {
        let all = [
            (ProducerTimer::Wake(7), 1),
            (ProducerTimer::Probe, 2),
            (ProducerTimer::Release(Instant::from_nanos(9)), 3),
        ];
        for (t, kind) in all {
            let encoded = Timer::from(t);
            assert_eq!(encoded.kind, kind);
            assert_eq!(ProducerTimer::decode(encoded), t);
        }
    }

    #[test]
    #[should_panic(expected = "not a producer's")]
    fn an_unknown_kind_is_a_routing_bug() {
        ProducerTimer::decode(Timer::new(99, 0));
    }
}
