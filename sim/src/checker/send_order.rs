//! `nonmonotonic-send`: per producer and partition, a send invoked later and acknowledged
//! landed at a lower offset than an earlier-invoked acknowledged send (Jepsen's
//! `nonmonotonic-send`). Kafka promises this for one partition only with
//! `max.in.flight.requests.per.connection=1` or the idempotent producer (KIP-98, ordering kept
//! for up to 5 in-flight requests since Kafka 1.0); a retrying non-idempotent producer with
//! more in flight may reorder, and the scenario then allows the kind.
//!
//! A value's position is its first `SendOk`, or, for a send whose outcome the producer never
//! learned (`SendInfo`), the first poll of it: Jepsen's version order is built from reads as
//! well as writes, so an `info` send seen by a consumer has a known offset too. Values without
//! a `SendInvoke` have no invoke order and are ignored. The violation becomes evident at the
//! later of the two acknowledgements (or reads).

use super::dense::RecentMap;
use super::index::{FastMap, HistoryIndex};
use super::{value_name, CheckConfig, Collector};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, TopicPartition, ValueId};

/// One acknowledged send of a (producer, partition), keyed for the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Landed {
    producer: u32,
    partition: TopicPartition,
    seq: u64,
    offset: u64,
    at: Instant,
    value: ValueId,
}

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    // Per (producer, partition), in history order: acknowledgements arrive almost in invoke
    // order, so each run is nearly sorted and no per-record data is sorted as a whole.
    let mut runs: RecentMap<(u32, TopicPartition), Vec<Landed>> = RecentMap::default();
    // Values placed only by reads (their send's outcome unknown): their earliest read, as a
    // position in `runs`. Rare, so a hash map.
    let mut read_only: FastMap<ValueId, (u32, TopicPartition, usize)> = FastMap::default();
    for entry in history.entries() {
        if let HistoryEvent::Poll {
            partition,
            offset,
            value,
            ..
        } = entry.event
        {
            // A position known only from a read.
            if index.ack(value).is_some() {
                continue;
            }
            if let Some(invocation) = index.invocation(value) {
                let landed = Landed {
                    producer: invocation.producer,
                    partition,
                    seq: invocation.seq,
                    offset,
                    at: entry.at,
                    value,
                };
                match read_only.get(&value) {
                    // The earliest read (then the lowest offset read at that time) places it.
                    Some(&(producer, first_partition, i)) => {
                        let first = &mut runs.get_mut(&(producer, first_partition)).unwrap()[i];
                        if (landed.at, landed.offset) < (first.at, first.offset) {
                            if first_partition == partition {
                                *first = landed;
                            } else {
                                // Moves to another run: leave a tombstone (u64::MAX seq).
                                first.seq = u64::MAX;
                                push(&mut runs, &mut read_only, landed);
                            }
                        }
                    }
                    None => push(&mut runs, &mut read_only, landed),
                }
            }
            continue;
        }
        let HistoryEvent::SendOk { value, .. } = entry.event else {
            continue;
        };
        let (Some(ack), Some(invocation)) = (index.ack(value), index.invocation(value)) else {
            continue;
        };
        if ack.at != entry.at || ack.offset == super::OFFSET_UNKNOWN {
            // A later acknowledgement of the same value (only the first counts), or an acks=0
            // acknowledgement, which carries no offset.
            continue;
        }
        // Allocated once for every acknowledgement it will hold (a run of hundreds of
        // thousands of sends otherwise doubles and copies itself some twenty times).
        let run = runs.get_or_insert_with((ack.producer, ack.partition), || {
            Vec::with_capacity(index.first_acks(ack.producer, ack.partition))
        });
        if run.last().is_some_and(|l| l.value == value) {
            continue; // two acknowledgements at the same instant: one position
        }
        run.push(Landed {
            producer: ack.producer,
            partition: ack.partition,
            seq: invocation.seq,
            offset: ack.offset,
            at: ack.at,
            value,
        });
    }
    for run in runs.values_mut() {
        // Invoke sequence numbers are distinct per value: sorting by them alone is the order
        // (sorting is cheap on a nearly sorted run, and skipped on a sorted one).
        if !run.is_sorted_by_key(|l| l.seq) {
            run.sort_by_key(|l| l.seq);
        }
        run.dedup_by_key(|l| l.value);
        while run.last().is_some_and(|l| l.seq == u64::MAX) {
            run.pop();
        }
        scan(run, config, out);
    }
}

/// Adds a read-only position to its run and remembers where.
fn push(
    runs: &mut RecentMap<(u32, TopicPartition), Vec<Landed>>,
    read_only: &mut FastMap<ValueId, (u32, TopicPartition, usize)>,
    landed: Landed,
) {
    let run = runs.get_or_insert_with((landed.producer, landed.partition), Vec::new);
    read_only.insert(landed.value, (landed.producer, landed.partition, run.len()));
    run.push(landed);
}

/// Scans one producer's sends to one partition in invoke order, comparing each with the
/// highest offset an earlier-invoked send landed at.
fn scan(run: &[Landed], config: &CheckConfig, out: &mut Collector) {
    let mut highest: Option<Landed> = None;
    for send in run {
        match highest {
            Some(high) if send.offset < high.offset => out.push(
                Violation::new(
                    ViolationKind::NonmonotonicSend,
                    send.at.max(high.at),
                    format!(
                        "{} invoked {} after {} but it landed at {}, below {}",
                        config.names.producer(send.producer),
                        value_name(send.value),
                        value_name(high.value),
                        config.names.at(send.partition, send.offset),
                        config.names.at(high.partition, high.offset),
                    ),
                )
                .at_partition(send.partition)
                .at_offset(send.offset)
                .of_value(send.value)
                .with_other(high.value),
            ),
            Some(high) if send.offset == high.offset => {} // inconsistent-offsets reports it
            _ => highest = Some(*send),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checker::test_support::*;
    use crate::violation::ViolationKind::*;

    #[test]
    fn later_invoke_at_lower_offset_fires_at_the_later_ack() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, None).invoke(2, 0, 2, None);
        s.ok(3, 0, 2, 0, 5).ok(4, 0, 1, 0, 6);
        let found = run(check, &s, &config(vec![]));
        assert_eq!(kinds(&found), vec![NonmonotonicSend]);
        assert_eq!((found[0].value, found[0].offset), (Some(v(2)), Some(5)));
        assert_eq!(found[0].at.as_millis(), 4);
        assert!(found[0].detail.contains("v1"), "{}", found[0].detail);
    }

    #[test]
    fn in_order_sends_and_other_producers_or_partitions_are_clean() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, None)
            .invoke(1, 0, 2, None)
            .invoke(1, 0, 3, None);
        s.invoke(1, 1, 4, None).invoke(1, 0, 5, None);
        // Producer 1 interleaves below producer 0; producer 0's partition 1 send is lower.
        s.ok(2, 0, 1, 0, 3)
            .ok(2, 1, 4, 0, 1)
            .ok(3, 0, 2, 0, 4)
            .ok(3, 0, 5, 1, 0);
        s.ok(4, 0, 3, 0, 9);
        // A failed send between two acknowledged ones is skipped over.
        s.invoke(5, 0, 6, None)
            .fail(5, 0, 6)
            .invoke(6, 0, 7, None)
            .ok(7, 0, 7, 0, 10);
        assert_eq!(run(check, &s, &config(vec![])), vec![]);
    }

    /// Jepsen's `nonmonotonic-send-test`: a producer sends c, d (landing at 3, 4), then a, b
    /// (landing at 1, 2).
    #[test]
    fn jepsen_nonmonotonic_send_case() {
        let mut s = Story::new();
        s.send(0, 0, 3, 0, 3).send(1, 0, 4, 0, 4);
        s.send(10, 0, 1, 0, 1).send(11, 0, 2, 0, 2);
        let found = run(check, &s, &config(vec![]));
        assert_eq!(kinds(&found), vec![NonmonotonicSend, NonmonotonicSend]);
        assert_eq!((found[0].value, found[0].offset), (Some(v(1)), Some(1)));
        assert!(found[0].detail.contains("below"), "{}", found[0].detail);
        // The same sends in order are clean.
        let mut s = Story::new();
        s.send(0, 0, 1, 0, 1).send(1, 0, 2, 0, 2);
        s.send(10, 0, 3, 0, 3).send(11, 0, 4, 0, 4);
        assert_eq!(run(check, &s, &config(vec![])), vec![]);
    }

    /// The same with the later sends' outcomes unknown: their positions come from reads only
    /// (Jepsen builds its version order from every read), and a read placing them below the
    /// earlier acknowledged sends is the same violation.
    #[test]
    fn jepsen_nonmonotonic_send_known_from_reads() {
        let mut s = Story::new();
        s.send(0, 0, 3, 0, 3).send(1, 0, 4, 0, 4);
        s.invoke(10, 0, 1, None).invoke(10, 0, 2, None);
        s.info(11, 0, 1).info(11, 0, 2);
        assert_eq!(run(check, &s, &config(vec![])), vec![]);
        s.poll(20, 0, 0, 0, 1, 1).poll(20, 0, 0, 0, 2, 2);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![NonmonotonicSend, NonmonotonicSend]);
        assert_eq!(found[0].at.as_millis(), 20);
    }

    #[test]
    fn an_info_sends_offset_seen_by_a_poll_counts() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, None).invoke(2, 0, 2, None);
        s.info(3, 0, 1).ok(4, 0, 2, 0, 5);
        assert_eq!(
            run(check, &s, &config(vec![])),
            vec![],
            "v1's position unknown"
        );
        s.poll(6, 0, 0, 0, 7, 1);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![NonmonotonicSend]);
        assert_eq!((found[0].value, found[0].at.as_millis()), (Some(v(2)), 6));
    }
}
