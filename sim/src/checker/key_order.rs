//! `key-order`: per group, per (producer, key), the *first* sink write of each value must come
//! in the order the producer's application invoked the sends. This is the guarantee a keyed
//! service relies on (all records of a key go to one partition, which is read in order).
//!
//! A value written again later (redelivery after a crash or rebalance, at-least-once) is a
//! `sink-duplicate`, judged by [`super::sink`], not an order violation; values never sunk are
//! ignored here (`sink-loss` covers them). Values without a key, or without a recorded invoke,
//! have no order to keep.

use super::index::HistoryIndex;
use super::index::{FastMap as HashMap, FastSet as HashSet};
use super::{value_name, CheckConfig, Collector};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, Key, ValueId};

/// The latest-invoked value of one (group, producer, key) the sink has written so far.
#[derive(Clone, Copy, Debug)]
struct Highest {
    seq: u64,
    value: ValueId,
    at: Instant,
}

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    let mut written: HashSet<(u32, ValueId)> = HashSet::default();
    let mut highest: HashMap<(u32, u32, Key), Highest> = HashMap::default();
    for entry in history.entries() {
        let HistoryEvent::SinkWrite {
            group,
            member,
            partition,
            offset,
            value,
            ..
        } = entry.event
        else {
            continue;
        };
        if !written.insert((group, value)) {
            continue; // a re-delivery: sink-duplicate, not an order question
        }
        let Some(invocation) = index.invocation(value) else {
            continue;
        };
        let Some(key) = invocation.key else {
            continue;
        };
        let slot = highest.entry((group, invocation.producer, key));
        let high = slot.or_insert(Highest {
            seq: invocation.seq,
            value,
            at: entry.at,
        });
        if invocation.seq > high.seq {
            *high = Highest {
                seq: invocation.seq,
                value,
                at: entry.at,
            };
        } else if invocation.seq < high.seq {
            out.push(
                Violation::new(
                    ViolationKind::KeyOrder,
                    entry.at,
                    format!(
                        "{} sank {} (from {}) of {} key {} after {} \
                         (sunk at {}), which was invoked later",
                        config.member_name(group, member),
                        value_name(value),
                        config.names.at(partition, offset),
                        config.names.producer(invocation.producer),
                        key.0,
                        value_name(high.value),
                        high.at,
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
        s.ok(2, 0, 1, 0, 1).ok(2, 0, 2, 0, 0);
        s.sink(3, 0, 0, 0, 2).sink(4, 0, 0, 1, 1);
        let found = run(check, &s, &config(vec![group(0, false, true)]));
        assert_eq!(kinds(&found), vec![KeyOrder]);
        assert_eq!((found[0].value, found[0].at.as_millis()), (Some(v(1)), 4));
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
