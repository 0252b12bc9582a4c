//! Every timer a consumer sets or is signalled with, as one type. The kernel carries a
//! [`Timer`] (a numeric kind and a key); this file is the one place that encodes a
//! [`ConsumerTimer`] into it and decodes it back, so [`super::Consumer`] matches its timers
//! exhaustively and a kind no consumer sets panics (a routing bug) instead of being dropped.
//!
//! The producer a consumer's application hosts for consume-transform-produce
//! ([`super::ctp`]) sets its own timers through [`crate::node::Cx::hosted`], which adds
//! [`HOSTED_TIMER_BASE`] to their kinds; they come back as [`ConsumerTimer::Hosted`].
//!
//! The numeric kinds are part of every trace (`timer kind:key`), so they never change.

use crate::node::{NodeId, NodeTimer, Timer};
use crate::time::Instant;

const TICK: u16 = 1;
const HEARTBEAT: u16 = 2;
const AUTO_COMMIT: u16 = 3;
const PROCESS: u16 = 4;
const BATCH: u16 = 5;
const RECONNECT: u16 = 6;
const RESUME: u16 = 7;
const PAUSE: u16 = 8;
const SLOWDOWN: u16 = 9;

/// Kinds at or above this are the hosted producer's, shifted by it.
pub const HOSTED_TIMER_BASE: u16 = 0x100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerTimer {
    /// Housekeeping (request timeouts, backoffs, `max.poll.interval.ms`).
    Tick,
    /// Send a heartbeat (the heartbeat epoch it was set in; a stale one is ignored).
    Heartbeat(u64),
    /// A background auto-commit (sarama, librdkafka, kafka-go with CommitInterval).
    AutoCommit,
    /// A processor (by index) finished its record.
    Process(usize),
    /// The batch handler's timeout (the batch sequence).
    Batch(u64),
    /// The reconnect backoff towards a broker ended.
    Reconnect(NodeId),
    /// The application resumes its paused partitions.
    Resume,
    /// Host signal: pause fetching until this instant (a bench's backlog phase).
    Pause(Instant),
    /// Host signal: the application's processing is this many times slower from now on
    /// (an `f64`'s bits; a `consumer-slowdown` fault, 1.0 when it is undone).
    Slowdown(u64),
    /// A timer of the hosted producer, in the producer's own encoding.
    Hosted(Timer),
}

impl From<ConsumerTimer> for Timer {
    fn from(t: ConsumerTimer) -> Timer {
        match t {
            ConsumerTimer::Tick => Timer::new(TICK, 0),
            ConsumerTimer::Heartbeat(epoch) => Timer::new(HEARTBEAT, epoch),
            ConsumerTimer::AutoCommit => Timer::new(AUTO_COMMIT, 0),
            ConsumerTimer::Process(i) => Timer::new(PROCESS, i as u64),
            ConsumerTimer::Batch(seq) => Timer::new(BATCH, seq),
            ConsumerTimer::Reconnect(node) => Timer::new(RECONNECT, u64::from(node.0)),
            ConsumerTimer::Resume => Timer::new(RESUME, 0),
            ConsumerTimer::Pause(until) => Timer::new(PAUSE, until.as_nanos()),
            ConsumerTimer::Slowdown(bits) => Timer::new(SLOWDOWN, bits),
            ConsumerTimer::Hosted(inner) => {
                let kind = inner
                    .kind
                    .checked_add(HOSTED_TIMER_BASE)
                    .expect("hosted timer kind overflows");
                Timer::new(kind, inner.key)
            }
        }
    }
}

impl NodeTimer for ConsumerTimer {
    const OWNER: &'static str = "a consumer's";

    fn try_decode(t: Timer) -> Option<ConsumerTimer> {
        Some(match t.kind {
            TICK => ConsumerTimer::Tick,
            HEARTBEAT => ConsumerTimer::Heartbeat(t.key),
            AUTO_COMMIT => ConsumerTimer::AutoCommit,
            PROCESS => ConsumerTimer::Process(t.key as usize),
            BATCH => ConsumerTimer::Batch(t.key),
            RECONNECT => ConsumerTimer::Reconnect(NodeId(t.key as u32)),
            RESUME => ConsumerTimer::Resume,
            PAUSE => ConsumerTimer::Pause(Instant::from_nanos(t.key)),
            SLOWDOWN => ConsumerTimer::Slowdown(t.key),
            kind if kind >= HOSTED_TIMER_BASE => {
                ConsumerTimer::Hosted(Timer::new(kind - HOSTED_TIMER_BASE, t.key))
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::assert_timers_round_trip;

    #[test]
    fn every_consumer_timer_round_trips_with_its_trace_kind() {
        assert_timers_round_trip(&[
            (ConsumerTimer::Tick, 1, 0),
            (ConsumerTimer::Heartbeat(3), 2, 3),
            (ConsumerTimer::AutoCommit, 3, 0),
            (ConsumerTimer::Process(2), 4, 2),
            (ConsumerTimer::Batch(5), 5, 5),
            (ConsumerTimer::Reconnect(NodeId(4)), 6, 4),
            (ConsumerTimer::Resume, 7, 0),
            (ConsumerTimer::Pause(Instant::from_nanos(11)), 8, 11),
            (
                ConsumerTimer::Slowdown(2.5f64.to_bits()),
                9,
                2.5f64.to_bits(),
            ),
            (ConsumerTimer::Hosted(Timer::new(1, 6)), 0x101, 6),
        ]);
    }

    #[test]
    #[should_panic(expected = "not a consumer's")]
    fn an_unknown_kind_is_a_routing_bug() {
        ConsumerTimer::decode(Timer::new(10, 0));
    }
}
