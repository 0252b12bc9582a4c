//! Every timer a producer sets or is signalled with, as one type. The kernel carries a
//! [`Timer`] (a numeric kind and a key); this file is the one place that encodes a
//! [`ProducerTimer`] into it and decodes it back, so a new timer is one variant here and a
//! kind no producer sets cannot be mistaken for one (it panics: a routing bug).
//!
//! The numeric kinds are part of every trace (`timer kind:key`), so they never change.

use crate::node::{NodeTimer, Timer};
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

impl NodeTimer for ProducerTimer {
    const OWNER: &'static str = "a producer's";

    fn try_decode(t: Timer) -> Option<ProducerTimer> {
        Some(match t.kind {
            WAKE => ProducerTimer::Wake(t.key),
            PROBE => ProducerTimer::Probe,
            RELEASE => ProducerTimer::Release(Instant::from_nanos(t.key)),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::assert_timers_round_trip;

    #[test]
    fn every_producer_timer_round_trips_with_its_trace_kind() {
        assert_timers_round_trip(&[
            (ProducerTimer::Wake(7), 1, 7),
            (ProducerTimer::Probe, 2, 0),
            (ProducerTimer::Release(Instant::from_nanos(9)), 3, 9),
        ]);
    }

    #[test]
    #[should_panic(expected = "not a producer's")]
    fn an_unknown_kind_is_a_routing_bug() {
        ProducerTimer::decode(Timer::new(99, 0));
    }
}
