//! Every timer a broker sets, as one type: its own (heartbeat, checkpoints, ISR expiration,
//! flush, KIP-890 verification), the replica manager's ([`ReplicaTimer`]), the transaction
//! coordinator's ([`TxnTimer`]) and the group coordinator's ([`GroupTimer`]). The kernel
//! carries a [`Timer`] (a numeric kind and a key); this file is the one place that encodes
//! them into it and decodes them back, so each component matches its own timers
//! exhaustively and a kind no broker sets panics (a routing bug) instead of being dropped.
//!
//! The numeric kinds are part of every trace (`timer kind:key`), so they never change.

use crate::node::{NodeId, NodeTimer, Timer};

const HEARTBEAT: u16 = 10;
const HW_CHECKPOINT: u16 = 11;
const ISR_EXPIRATION: u16 = 12;
const FLUSH: u16 = 13;
const VERIFY_TIMEOUT: u16 = 14;
const PRODUCE_TIMEOUT: u16 = 20;
const FETCH_WAIT: u16 = 21;
const FETCHER_TIMEOUT: u16 = 22;
const FETCHER_BACKOFF: u16 = 23;
pub(crate) const TXN_ABORT_CHECK: u16 = 0x3000;
pub(crate) const TXN_MARKER_RETRY: u16 = 0x3001;
pub(crate) const TXN_MARKER_TIMEOUT: u16 = 0x3002;
const GROUP_JOIN_DEADLINE: u16 = 0x4000;
const GROUP_SESSION: u16 = 0x4001;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerTimer {
    /// Send the next heartbeat to the controller.
    Heartbeat,
    /// Write `replication-offset-checkpoint`.
    HwCheckpoint,
    /// `isr-expiration`: shrink the ISRs of out-of-sync followers.
    IsrExpiration,
    /// `log.flush.interval.ms` check.
    Flush,
    /// A KIP-890 verification of this correlation id got no answer in time.
    VerifyTimeout(u64),
    Replica(ReplicaTimer),
    Transaction(TxnTimer),
    Group(GroupTimer),
}

/// The replica manager's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaTimer {
    /// A delayed produce (by id) reached its timeout.
    ProduceTimeout(u64),
    /// A parked fetch (by id) waited its `max_wait`.
    FetchWait(u64),
    /// The request in flight of one fetcher thread towards `leader` got no answer in time.
    FetcherTimeout { leader: NodeId, fetcher: u32 },
    /// A fetcher thread's backoff ended.
    FetcherBackoff { leader: NodeId, fetcher: u32 },
}

/// The transaction coordinator's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnTimer {
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    AbortCheck,
    /// Resend the markers still owed by the id with this timer index.
    MarkerRetry(u32),
    /// The WriteTxnMarkers of this correlation id got no answer in time.
    MarkerTimeout(u64),
}

/// The group coordinator's timers: `group` is the group's timer index, `seq` the rebalance
/// sequence (join deadline) or the member's sequence (session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupTimer {
    JoinDeadline { group: u32, seq: u32 },
    Session { group: u32, seq: u32 },
}

fn pair(high: u32, low: u32) -> u64 {
    ((high as u64) << 32) | low as u64
}

fn split(key: u64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

impl From<BrokerTimer> for Timer {
    fn from(t: BrokerTimer) -> Timer {
        match t {
            BrokerTimer::Heartbeat => Timer::new(HEARTBEAT, 0),
            BrokerTimer::HwCheckpoint => Timer::new(HW_CHECKPOINT, 0),
            BrokerTimer::IsrExpiration => Timer::new(ISR_EXPIRATION, 0),
            BrokerTimer::Flush => Timer::new(FLUSH, 0),
            BrokerTimer::VerifyTimeout(correlation_id) => {
                Timer::new(VERIFY_TIMEOUT, correlation_id)
            }
            BrokerTimer::Replica(r) => match r {
                ReplicaTimer::ProduceTimeout(id) => Timer::new(PRODUCE_TIMEOUT, id),
                ReplicaTimer::FetchWait(id) => Timer::new(FETCH_WAIT, id),
                ReplicaTimer::FetcherTimeout { leader, fetcher } => {
                    Timer::new(FETCHER_TIMEOUT, pair(leader.0, fetcher))
                }
                ReplicaTimer::FetcherBackoff { leader, fetcher } => {
                    Timer::new(FETCHER_BACKOFF, pair(leader.0, fetcher))
                }
            },
            BrokerTimer::Transaction(t) => match t {
                TxnTimer::AbortCheck => Timer::new(TXN_ABORT_CHECK, 0),
                TxnTimer::MarkerRetry(index) => Timer::new(TXN_MARKER_RETRY, u64::from(index)),
                TxnTimer::MarkerTimeout(correlation_id) => {
                    Timer::new(TXN_MARKER_TIMEOUT, correlation_id)
                }
            },
            BrokerTimer::Group(g) => match g {
                GroupTimer::JoinDeadline { group, seq } => {
                    Timer::new(GROUP_JOIN_DEADLINE, pair(group, seq))
                }
                GroupTimer::Session { group, seq } => Timer::new(GROUP_SESSION, pair(group, seq)),
            },
        }
    }
}

impl NodeTimer for BrokerTimer {
    const OWNER: &'static str = "a broker's";

    fn try_decode(t: Timer) -> Option<BrokerTimer> {
        let (high, low) = split(t.key);
        Some(match t.kind {
            HEARTBEAT => BrokerTimer::Heartbeat,
            HW_CHECKPOINT => BrokerTimer::HwCheckpoint,
            ISR_EXPIRATION => BrokerTimer::IsrExpiration,
            FLUSH => BrokerTimer::Flush,
            VERIFY_TIMEOUT => BrokerTimer::VerifyTimeout(t.key),
            PRODUCE_TIMEOUT => BrokerTimer::Replica(ReplicaTimer::ProduceTimeout(t.key)),
            FETCH_WAIT => BrokerTimer::Replica(ReplicaTimer::FetchWait(t.key)),
            FETCHER_TIMEOUT => BrokerTimer::Replica(ReplicaTimer::FetcherTimeout {
                leader: NodeId(high),
                fetcher: low,
            }),
            FETCHER_BACKOFF => BrokerTimer::Replica(ReplicaTimer::FetcherBackoff {
                leader: NodeId(high),
                fetcher: low,
            }),
            TXN_ABORT_CHECK => BrokerTimer::Transaction(TxnTimer::AbortCheck),
            TXN_MARKER_RETRY => BrokerTimer::Transaction(TxnTimer::MarkerRetry(t.key as u32)),
            TXN_MARKER_TIMEOUT => BrokerTimer::Transaction(TxnTimer::MarkerTimeout(t.key)),
            GROUP_JOIN_DEADLINE => BrokerTimer::Group(GroupTimer::JoinDeadline {
                group: high,
                seq: low,
            }),
            GROUP_SESSION => BrokerTimer::Group(GroupTimer::Session {
                group: high,
                seq: low,
            }),
            _ => return None,
        })
    }
}

/// The timers of a component the broker hosts: encoded as the broker's own (one numbering),
/// decoded only as the component's, so a timer routed to the wrong component panics.
macro_rules! component_timer {
    ($component:ident, $variant:ident, $owner:literal) => {
        impl From<$component> for Timer {
            fn from(t: $component) -> Timer {
                BrokerTimer::$variant(t).into()
            }
        }

        impl NodeTimer for $component {
            const OWNER: &'static str = $owner;

            fn try_decode(t: Timer) -> Option<$component> {
                match BrokerTimer::try_decode(t)? {
                    BrokerTimer::$variant(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}

component_timer!(ReplicaTimer, Replica, "a replica manager's");
component_timer!(TxnTimer, Transaction, "a transaction coordinator's");
component_timer!(GroupTimer, Group, "a group coordinator's");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::assert_timers_round_trip;

    #[test]
    fn every_broker_timer_round_trips_with_its_trace_kind_and_key() {
        let leader = NodeId(3);
        let all = [
            (BrokerTimer::Heartbeat, 10, 0),
            (BrokerTimer::HwCheckpoint, 11, 0),
            (BrokerTimer::IsrExpiration, 12, 0),
            (BrokerTimer::Flush, 13, 0),
            (BrokerTimer::VerifyTimeout(5), 14, 5),
            (BrokerTimer::Replica(ReplicaTimer::ProduceTimeout(6)), 20, 6),
            (BrokerTimer::Replica(ReplicaTimer::FetchWait(7)), 21, 7),
            (
                BrokerTimer::Replica(ReplicaTimer::FetcherTimeout { leader, fetcher: 1 }),
                22,
                (3 << 32) | 1,
            ),
            (
                BrokerTimer::Replica(ReplicaTimer::FetcherBackoff { leader, fetcher: 2 }),
                23,
                (3 << 32) | 2,
            ),
            (BrokerTimer::Transaction(TxnTimer::AbortCheck), 0x3000, 0),
            (
                BrokerTimer::Transaction(TxnTimer::MarkerRetry(4)),
                0x3001,
                4,
            ),
            (
                BrokerTimer::Transaction(TxnTimer::MarkerTimeout(8)),
                0x3002,
                8,
            ),
            (
                BrokerTimer::Group(GroupTimer::JoinDeadline { group: 2, seq: 9 }),
                0x4000,
                (2 << 32) | 9,
            ),
            (
                BrokerTimer::Group(GroupTimer::Session { group: 1, seq: 4 }),
                0x4001,
                (1 << 32) | 4,
            ),
        ];
        assert_timers_round_trip(&all);
    }

    #[test]
    #[should_panic(expected = "not a broker's")]
    fn an_unknown_kind_is_a_routing_bug() {
        BrokerTimer::decode(Timer::new(0x2fff, 0));
    }
}
