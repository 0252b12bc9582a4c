//! `nonmonotonic-poll` and `poll-skip`: while a consumer keeps its assignment, its reads of
//! one partition must advance one record at a time (Jepsen's `poll-skip+nonmonotonic-cases`).
//!
//! Tracked per (group, member, partition), between consecutive polls:
//! - the next offset at or below the previous one is `nonmonotonic-poll`;
//! - a next offset beyond previous + 1 is `poll-skip` only if some offset strictly between them
//!   is known (from any ack or read, anywhere in the history) to hold a value. Offsets no one
//!   knows about (transaction markers, unacknowledged writes) are legitimately invisible. For a
//!   `read_committed` group, offsets holding only values of aborted transactions do not count
//!   either: the fetcher filters them out. Nor do values of transactions the history leaves
//!   open, which the coordinator may have aborted after their producer died.
//!
//! Resets: every `Assigned` of a member clears all its tracking. Jepsen resets on every
//! rebalance: with the eager protocol a member resumes even a partition it keeps from the
//! group's committed offset, which may lie below what it polled, and a restarted member (its
//! crash shows only as a new `Assigned`) cannot be told apart from a rebalanced one. A
//! `PositionReset` (auto.offset.reset, seek) clears that one partition.

use super::index::FastMap as HashMap;
use super::index::HistoryIndex;
use super::{value_name, CheckConfig, Collector};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, TopicPartition, ValueId};

/// A member's previous poll of one partition.
#[derive(Clone, Copy, Debug)]
struct LastRead {
    offset: u64,
    value: ValueId,
    at: Instant,
}

/// One poll being judged.
struct Read {
    group: u32,
    member: u32,
    partition: TopicPartition,
    offset: u64,
    value: ValueId,
    at: Instant,
}

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    // Per (group, member): the last read of each partition since the last reset.
    let mut last: HashMap<(u32, u32), HashMap<TopicPartition, LastRead>> = HashMap::default();
    for entry in history.entries() {
        match entry.event {
            HistoryEvent::Assigned { group, member, .. } => {
                last.remove(&(group, member));
            }
            HistoryEvent::PositionReset {
                group,
                member,
                partition,
                ..
            } => {
                if let Some(reads) = last.get_mut(&(group, member)) {
                    reads.remove(&partition);
                }
            }
            HistoryEvent::Poll {
                group,
                member,
                partition,
                offset,
                value,
                ..
            } => {
                let read = Read {
                    group,
                    member,
                    partition,
                    offset,
                    value,
                    at: entry.at,
                };
                let reads = last.entry((group, member)).or_default();
                if let Some(previous) = reads.get(&partition) {
                    judge(previous, &read, index, config, out);
                }
                reads.insert(
                    partition,
                    LastRead {
                        offset,
                        value,
                        at: entry.at,
                    },
                );
            }
            _ => {}
        }
    }
}

/// Compares one poll with the member's previous poll of the same partition.
fn judge(
    previous: &LastRead,
    read: &Read,
    index: &HistoryIndex,
    config: &CheckConfig,
    out: &mut Collector,
) {
    // The skipped offset for a skip, `None` for a backwards read; no violation returns early.
    let skipped = if read.offset <= previous.offset {
        None
    } else {
        let committed_only = config.read_committed(read.group);
        let lo = previous.offset + 1;
        match index.first_known_in(read.partition, lo, read.offset, committed_only) {
            Some(skipped) => Some(skipped),
            None => return,
        }
    };
    // Details are formatted only for violations: polls are the bulk of a history.
    let who = config.member_name(read.group, read.member);
    let between = format!(
        "{} ({}) at {} then {} ({})",
        config.names.at(read.partition, previous.offset),
        value_name(previous.value),
        previous.at,
        config.names.at(read.partition, read.offset),
        value_name(read.value),
    );
    let violation = match skipped {
        None => Violation::new(
            ViolationKind::NonmonotonicPoll,
            read.at,
            format!("{who} went backwards: read {between}"),
        ),
        Some(skipped) => Violation::new(
            ViolationKind::PollSkip,
            read.at,
            format!("{who} skipped offset {skipped} (known to hold a value): read {between}"),
        ),
    };
    out.push(
        violation
            .at_partition(read.partition)
            .at_offset(read.offset)
            .of_value(read.value),
    );
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checker::test_support::*;
    use crate::violation::ViolationKind::*;

    /// Values 1..=5 acknowledged at offsets 0..=4 of partition 0.
    fn five_sent() -> Story {
        let mut s = Story::new();
        for i in 0..5 {
            s.send(1, 0, i + 1, 0, i);
        }
        s
    }

    #[test]
    fn skipping_a_known_offset_is_a_poll_skip() {
        let mut s = five_sent();
        s.assign(2, 0, 0, &[0])
            .poll(3, 0, 0, 0, 0, 1)
            .poll(4, 0, 0, 0, 2, 3);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![PollSkip]);
        assert_eq!((found[0].offset, found[0].at.as_millis()), (Some(2), 4));
        assert!(found[0].detail.contains("offset 1"), "{}", found[0].detail);
    }

    #[test]
    fn reading_backwards_or_again_is_nonmonotonic() {
        let mut s = five_sent();
        s.poll(3, 0, 0, 0, 1, 2)
            .poll(4, 0, 0, 0, 2, 3)
            .poll(5, 0, 0, 0, 2, 3);
        s.poll(6, 0, 0, 0, 0, 1);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![NonmonotonicPoll, NonmonotonicPoll]);
        assert_eq!(found[1].offset, Some(0));
    }

    #[test]
    fn a_gap_no_one_knows_about_is_not_a_skip() {
        // Offset 2 is a transaction marker: no ack or read ever names it.
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .send(1, 0, 2, 0, 1)
            .send(1, 0, 3, 0, 3);
        s.poll(2, 0, 0, 0, 0, 1)
            .poll(2, 0, 0, 0, 1, 2)
            .poll(3, 0, 0, 0, 3, 3);
        assert_eq!(
            run(check, &s, &config(vec![group(0, false, false)])),
            vec![]
        );
    }

    #[test]
    fn aborted_or_open_values_are_skipped_only_by_read_committed() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .txn_value(1, 0, 5, 2)
            .send(1, 0, 2, 0, 1)
            .txn_abort(2, 0, 5);
        // Transaction 6 never ends in the history: its producer died.
        s.txn_value(2, 1, 6, 4).send(2, 1, 4, 0, 2);
        s.send(3, 0, 3, 0, 3);
        s.poll(4, 0, 0, 0, 0, 1).poll(4, 1, 0, 0, 0, 1);
        s.poll(5, 0, 0, 0, 3, 3).poll(5, 1, 0, 0, 3, 3);
        let cfg = config(vec![group(0, true, false), group(1, false, false)]);
        let found = run(check, &s, &cfg);
        assert_eq!(kinds(&found), vec![PollSkip]);
        assert!(found[0].detail.starts_with("g1/0 "), "{}", found[0].detail);
        // A committed transaction's value must not be skipped, even by read_committed.
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .txn_value(1, 0, 5, 2)
            .send(1, 0, 2, 0, 1)
            .txn_commit(2, 0, 5);
        s.poll(4, 0, 0, 0, 0, 1).poll(5, 0, 0, 0, 3, 3);
        assert_eq!(kinds(&run(check, &s, &cfg)), vec![PollSkip]);
    }

    #[test]
    fn a_rebalance_or_position_reset_between_polls_resets() {
        let mut s = five_sent();
        s.assign(2, 0, 0, &[0]).poll(3, 0, 0, 0, 2, 3);
        s.assign(4, 0, 0, &[0]).poll(5, 0, 0, 0, 0, 1); // resumed from an older commit
        s.reset(6, 0, 0, 0, 4).poll(7, 0, 0, 0, 4, 5);
        // Another member's polls are tracked apart.
        s.poll(8, 0, 1, 0, 3, 4);
        assert_eq!(
            run(check, &s, &config(vec![group(0, false, false)])),
            vec![]
        );
    }
}
