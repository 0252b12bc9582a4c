//! `key-order`: per group, per (producer, key), the *first* sink write of each value must come
//! in the order the producer's application invoked the sends. This is the guarantee a keyed
//! service relies on (all records of a key go to one partition, which is read in order).
//!
//! A value written again later (redelivery after a crash or rebalance, at-least-once) is a
//! `sink-duplicate`, judged by [`super::sink`], not an order violation; values never sunk are
//! ignored here (`sink-loss` covers them). Values without a key, or without a recorded invoke,
//! have no order to keep.

use super::dense::{RecentMap, ValueTable};
use super::index::FastMap as HashMap;
use super::index::HistoryIndex;
use super::{value_name, CheckConfig, Collector};
use crate::history::{History, HistoryEntry};
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, Key, TopicPartition, ValueId};

/// The latest-invoked value of one (group, producer, key) the sink has written so far.
#[derive(Clone, Copy, Debug)]
struct Highest {
    seq: u64,
    value: ValueId,
    /// When it was sunk, by which member, from where, and when the producer invoked it.
    at: Instant,
    member: u32,
    partition: TopicPartition,
    offset: u64,
    invoked_at: Instant,
}

/// A group's first sink write of one value: what key order judges.
#[derive(Clone, Copy, Debug)]
pub struct FirstSinkWrite {
    pub at: Instant,
    pub group: u32,
    pub member: u32,
    pub partition: TopicPartition,
    pub offset: u64,
    pub value: ValueId,
}

impl FirstSinkWrite {
    /// The sink write `entry` records, if it records one (whether it is the group's first
    /// of the value is for the caller to know).
    pub fn of(entry: &HistoryEntry) -> Option<FirstSinkWrite> {
        match entry.event {
            HistoryEvent::SinkWrite {
                group,
                member,
                partition,
                offset,
                value,
                ..
            } => Some(FirstSinkWrite {
                at: entry.at,
                group,
                member,
                partition,
                offset,
                value,
            }),
            _ => None,
        }
    }
}

/// Per (group, producer, key), the latest-invoked value sunk so far: the state of the check,
/// fed each group's first sink write of each value in history order (by [`check`], or by the
/// sink checker's pass, which keeps the table of first writes anyway).
#[derive(Default)]
pub struct KeyOrder {
    /// Per (group, producer), by key.
    highest: RecentMap<(u32, u32), ByKey>,
}

/// How far past its length a [`ByKey`] vector grows for one key; keys further out are sparse.
const MAX_KEY_GROWTH: usize = 1 << 16;

/// A map from keys to `Highest`: a vector indexed by the key's number (a workload's keys are
/// numbered from 0), and a hash map for keys far beyond it (crafted histories only).
#[derive(Default)]
struct ByKey {
    dense: Vec<Option<Highest>>,
    sparse: HashMap<Key, Highest>,
}

impl ByKey {
    /// The key's entry, `this` if it had none.
    fn get_or_insert(&mut self, key: Key, this: Highest) -> &mut Highest {
        let i = key.0 as usize;
        let dense = i < self.dense.len() || i <= self.dense.len() * 2 + MAX_KEY_GROWTH;
        // A key lives in the sparse map only if it was put there while beyond the dense range.
        if dense && (self.sparse.is_empty() || !self.sparse.contains_key(&key)) {
            if i >= self.dense.len() {
                self.dense.resize(i + 1, None);
            }
            self.dense[i].get_or_insert(this)
        } else {
            self.sparse.entry(key).or_insert(this)
        }
    }
}

/// Key order on its own: its own table of the values each group has written.
pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    // Per group, the values it has written.
    let mut written: RecentMap<u32, ValueTable<()>> = RecentMap::default();
    let mut order = KeyOrder::default();
    for entry in history.entries() {
        let Some(write) = FirstSinkWrite::of(entry) else {
            continue;
        };
        let sunk = written.get_or_insert_with(write.group, || index.value_table());
        let before = sunk.len();
        sunk.insert_if_absent(write.value, ());
        if sunk.len() == before {
            continue; // a re-delivery: sink-duplicate, not an order question
        }
        order.first_write(write, index, config, out);
    }
}

impl KeyOrder {
    /// Judges a group's first sink write of a value (a re-delivery is a `sink-duplicate`,
    /// not an order question).
    pub fn first_write(
        &mut self,
        write: FirstSinkWrite,
        index: &HistoryIndex,
        config: &CheckConfig,
        out: &mut Collector,
    ) {
        let FirstSinkWrite {
            at,
            group,
            member,
            partition,
            offset,
            value,
        } = write;
        let Some(invocation) = index.invocation(value) else {
            return;
        };
        let Some(key) = invocation.key else {
            return;
        };
        let this = Highest {
            seq: invocation.seq,
            value,
            at,
            member,
            partition,
            offset,
            invoked_at: invocation.at,
        };
        let keys = self
            .highest
            .get_or_insert_with((group, invocation.producer), ByKey::default);
        let high = keys.get_or_insert(key, this);
        if invocation.seq > high.seq {
            *high = this;
        } else if invocation.seq < high.seq {
            // Both records, where each was read from and when, so the finding explains
            // itself: two partitions means the key moved (partitions added, a non-hashing
            // partitioner); one partition means either the log holds them out of send order
            // (the later send at the lower offset: the producer's retries reordered them) or
            // the service wrote the higher offset first (workers, a redelivery).
            let keyless =
                (config.keyless_partitioners.iter()).find(|(p, _)| *p == invocation.producer);
            let where_ = match keyless {
                _ if high.partition == partition && high.offset < offset => format!(
                    "both from one partition, read in log order, but the log holds the later \
                     send at the lower offset: {}'s sends landed out of order (a retried \
                     request overtaken by a later one, which needs retries without \
                     idempotence and more than one request in flight; see nonmonotonic-send)",
                    config.names.producer(invocation.producer)
                ),
                _ if high.partition == partition => {
                    "both from one partition, the higher offset written first: the service \
                     reordered them"
                        .to_string()
                }
                Some((_, name)) => format!(
                    "the key's records were in two partitions, read independently: {}'s \
                     partitioner ({name}) does not place records by their key",
                    config.names.producer(invocation.producer)
                ),
                None => "the key's records were in two partitions, read independently".into(),
            };
            out.push(
                Violation::new(
                    ViolationKind::KeyOrder,
                    at,
                    format!(
                        "{} sank {} of {} key {} (from {}, sent at {}) at {}, after {} sank {} \
                         (from {}, sent later at {}) at {}: {}",
                        config.member_name(group, member),
                        value_name(value),
                        config.names.producer(invocation.producer),
                        key.0,
                        config.names.at(partition, offset),
                        invocation.at,
                        at,
                        config.member_name(group, high.member),
                        value_name(high.value),
                        config.names.at(high.partition, high.offset),
                        high.invoked_at,
                        high.at,
                        where_,
                    ),
                )
                .at_partition(partition)
                .at_offset(offset)
                .of_value(value),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checker::test_support::*;
    use crate::violation::ViolationKind::*;

    #[test]
    fn sinking_a_key_out_of_invoke_order_fires() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, Some(7)).invoke(1, 0, 2, Some(7));
        // The log holds them in send order (v1 @0, v2 @1); the service sank @1 first.
        s.ok(2, 0, 1, 0, 0).ok(2, 0, 2, 0, 1);
        s.sink(3, 0, 0, 1, 2).sink(4, 0, 0, 0, 1);
        let found = run(check, &s, &config(vec![group(0, false, true)]));
        assert_eq!(kinds(&found), vec![KeyOrder]);
        assert_eq!((found[0].value, found[0].at.as_millis()), (Some(v(1)), 4));
        let d = &found[0].detail;
        assert!(
            d.ends_with("the higher offset written first: the service reordered them"),
            "{d}"
        );
        assert!(!d.contains("landed out of order"), "{d}");
    }

    #[test]
    fn a_key_the_producer_reordered_in_the_log_blames_the_producer_not_the_service() {
        // v2 was sent after v1 but its batch landed first (a retried batch overtaken): the
        // service read the partition in offset order and sank v2 (@0) before v1 (@1).
        let mut s = Story::new();
        s.invoke(1, 0, 1, Some(7)).invoke(1, 0, 2, Some(7));
        s.ok(2, 0, 2, 0, 0).ok(3, 0, 1, 0, 1);
        s.sink(4, 0, 0, 0, 2).sink(5, 0, 0, 1, 1);
        let found = run(check, &s, &config(vec![group(0, false, true)]));
        assert_eq!(kinds(&found), vec![KeyOrder]);
        let d = &found[0].detail;
        assert!(d.contains("read in log order"), "{d}");
        assert!(d.contains("producer-0's sends landed out of order"), "{d}");
        assert!(!d.contains("the service reordered"), "{d}");
    }

    #[test]
    fn a_key_that_moved_partitions_is_explained_with_both_partitions_and_times() {
        // Partitions were added: key 7's first record stayed on partition 0, its second went
        // to partition 3 and was read first.
        let mut s = Story::new();
        s.invoke(100, 0, 1, Some(7)).ok(101, 0, 1, 0, 40);
        s.invoke(200, 0, 2, Some(7)).ok(201, 0, 2, 3, 0);
        s.sink(300, 0, 3, 0, 2).sink(900, 0, 0, 40, 1);
        let found = run(check, &s, &config(vec![group(0, false, true)]));
        assert_eq!(kinds(&found), vec![KeyOrder]);
        let d = &found[0].detail;
        for part in [
            "key 7",
            "@40",
            "@0",
            "sent at 100.000ms",
            "sent later at 200.000ms",
        ] {
            assert!(d.contains(part), "{part:?} missing from {d}");
        }
        assert!(d.contains("two partitions"), "{d}");
        assert!(!d.contains("partitioner"), "{d}");
    }

    #[test]
    fn a_key_spread_by_a_keyless_partitioner_names_it() {
        let mut s = Story::new();
        s.invoke(100, 0, 1, Some(7)).ok(101, 0, 1, 0, 40);
        s.invoke(200, 0, 2, Some(7)).ok(201, 0, 2, 1, 0);
        s.sink(300, 0, 1, 0, 2).sink(900, 0, 0, 40, 1);
        let mut c = config(vec![group(0, false, true)]);
        c.keyless_partitioners = vec![(0, "kafka-go-round-robin")];
        let found = run(check, &s, &c);
        assert_eq!(kinds(&found), vec![KeyOrder]);
        let d = &found[0].detail;
        assert!(
            d.ends_with(
                "read independently: producer-0's partitioner (kafka-go-round-robin) does not \
                 place records by their key"
            ),
            "{d}"
        );
        // Another producer's keyless partitioner says nothing about this one.
        c.keyless_partitioners = vec![(1, "kafka-go-round-robin")];
        let found = run(check, &s, &c);
        assert!(
            !found[0].detail.contains("partitioner"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn keys_far_apart_are_judged_as_near_ones() {
        // Key 70 000 lies beyond the dense range when first seen (sparse); key 65 000 then
        // grows the range over it: v1, of key 70 000 again, must still meet v3.
        let mut s = Story::new();
        s.invoke(1, 0, 1, Some(70_000))
            .invoke(1, 0, 2, Some(65_000))
            .invoke(1, 0, 3, Some(70_000))
            .invoke(1, 0, 4, Some(1 << 30))
            .invoke(1, 0, 5, Some(1 << 30));
        s.sink(2, 0, 0, 0, 3)
            .sink(3, 0, 0, 1, 2)
            .sink(4, 0, 0, 2, 1)
            .sink(5, 0, 0, 3, 5)
            .sink(6, 0, 0, 4, 4);
        let found = run(check, &s, &config(vec![group(0, false, true)]));
        assert_eq!(kinds(&found), vec![KeyOrder, KeyOrder]);
        assert_eq!((found[0].value, found[1].value), (Some(v(1)), Some(v(4))));
    }

    #[test]
    fn redelivery_after_a_crash_is_not_a_key_order_violation() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, Some(7))
            .invoke(1, 0, 2, Some(7))
            .invoke(1, 0, 3, Some(7));
        s.sink(2, 0, 0, 0, 1).sink(3, 0, 0, 1, 2);
        // Member crashed before committing: it re-reads from offset 0 and writes again.
        s.sink(5, 0, 0, 0, 1)
            .sink(6, 0, 0, 1, 2)
            .sink(7, 0, 0, 2, 3);
        // Other keys, other producers and other groups interleave freely; 9 is never sunk.
        s.invoke(8, 1, 9, Some(7))
            .invoke(8, 1, 8, Some(7))
            .invoke(8, 0, 4, Some(3));
        s.sink(9, 0, 1, 0, 8)
            .sink(9, 0, 1, 1, 4)
            .sink(10, 1, 0, 0, 1);
        assert_eq!(run(check, &s, &config(vec![group(0, false, true)])), vec![]);
    }
}
