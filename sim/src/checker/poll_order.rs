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
//! Assignments, as Jepsen's `poll-skip+nonmonotonic-cases-per-process` does on `:assign` /
//! `:subscribe` (`select-keys last-reads (:value op)`): a member's new assignment keeps the
//! tracking of the partitions it keeps and drops the rest. Kept means: in the member's
//! previous assignment too, and the new generation is the next one (a member that missed a
//! generation, having crashed or been fenced, may have lost the partition to another member
//! meanwhile). Across a rebalance only `nonmonotonic-poll` is relaxed, for the next read of a
//! kept partition: under the eager protocol a member resumes even a partition it keeps from
//! the group's committed offset, which may lie below what it polled, and a restarted member
//! (its crash shows only as a new `Assigned`) cannot be told apart from a rebalanced one. A
//! skip forward over a known value stays a `poll-skip`: the committed offset is never beyond
//! what the member itself read.
//!
//! Generation numbers are compared within one *era* of the group: the coordinator numbers
//! generations afresh when it lost the group's metadata (every replica of its
//! `__consumer_offsets` partition lost the records, e.g. power losses without fsync), so a
//! member that was in generation 1 before the loss and is in the new generation 2 after it did
//! not keep anything, though 2 follows 1. An era ends when some member is assigned a
//! generation no newer than its own previous one, or than the newest the group reached (a
//! generation number comes back only after such a loss).
//!
//! A `PositionReset` (auto.offset.reset, seek) anchors the partition at its offset: the next
//! read must start there (a read after `seek(1)` that starts at 3 skipped 1 and 2 if they
//! are known to hold values; one that starts at 0 went backwards).

use super::dense::RecentMap;
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

/// Where a member's next read of one partition must start, and why.
#[derive(Clone, Copy, Debug)]
struct Track {
    /// The offset the next read must start at.
    expect: u64,
    /// The read that set `expect`; `None` after a position reset (the anchor is the reset).
    previous: Option<LastRead>,
    /// A rebalance kept the partition: the next read may go backwards (eager resume).
    backwards_ok: bool,
}

/// A member's tracking: its last assignment and the partitions it tracks.
#[derive(Default)]
struct Member {
    /// (era of the group, generation) of its last assignment.
    generation: Option<(u32, i32)>,
    assigned: Vec<TopicPartition>,
    tracks: RecentMap<TopicPartition, Track>,
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
    let mut members: RecentMap<(u32, u32), Member> = RecentMap::default();
    // Per group: its era and the newest generation assigned in it.
    let mut eras: HashMap<u32, (u32, i32)> = HashMap::default();
    for entry in history.entries() {
        match &entry.event {
            HistoryEvent::Assigned {
                group,
                member,
                generation,
                partitions,
            } => {
                let m = members.get_or_insert_with((*group, *member), Member::default);
                let era = eras.entry(*group).or_insert((0, *generation));
                let own_repeat = m
                    .generation
                    .is_some_and(|(e, g)| e == era.0 && *generation <= g);
                if own_repeat || *generation < era.1 {
                    *era = (era.0 + 1, *generation); // the coordinator started numbering again
                }
                era.1 = era.1.max(*generation);
                let consecutive = m
                    .generation
                    .is_some_and(|(e, g)| e == era.0 && g.checked_add(1) == Some(*generation));
                let previous = std::mem::take(&mut m.assigned);
                m.tracks.retain(|tp, _| {
                    consecutive && previous.contains(tp) && partitions.contains(tp)
                });
                for track in m.tracks.values_mut() {
                    track.backwards_ok = true;
                }
                m.generation = Some((era.0, *generation));
                m.assigned = partitions.clone();
            }
            HistoryEvent::PositionReset {
                group,
                member,
                partition,
                offset,
                ..
            } => {
                let m = members.get_or_insert_with((*group, *member), Member::default);
                m.tracks.insert(
                    *partition,
                    Track {
                        expect: *offset,
                        previous: None,
                        backwards_ok: false,
                    },
                );
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
                    group: *group,
                    member: *member,
                    partition: *partition,
                    offset: *offset,
                    value: *value,
                    at: entry.at,
                };
                let m = members.get_or_insert_with((*group, *member), Member::default);
                let next = Track {
                    expect: offset + 1,
                    previous: Some(LastRead {
                        offset: *offset,
                        value: *value,
                        at: entry.at,
                    }),
                    backwards_ok: false,
                };
                match m.tracks.get_mut(partition) {
                    Some(track) => {
                        judge(track, &read, index, config, out);
                        *track = next;
                    }
                    None => m.tracks.insert(*partition, next),
                }
            }
            _ => {}
        }
    }
}

/// Compares one poll with where the member's previous poll (or reset) says it must start.
fn judge(
    track: &Track,
    read: &Read,
    index: &HistoryIndex,
    config: &CheckConfig,
    out: &mut Collector,
) {
    // The skipped offset for a skip, `None` for a backwards read; no violation returns early.
    let skipped = if read.offset < track.expect {
        if track.backwards_ok {
            return;
        }
        None
    } else {
        let committed_only = config.read_committed(read.group);
        match index.first_known_in(read.partition, track.expect, read.offset, committed_only) {
            Some(skipped) => Some(skipped),
            None => return,
        }
    };
    // Details are formatted only for violations: polls are the bulk of a history.
    let who = config.member_name(read.group, read.member);
    let now = format!(
        "{} ({})",
        config.names.at(read.partition, read.offset),
        value_name(read.value)
    );
    let between = match track.previous {
        Some(previous) => format!(
            "{} ({}) at {} then {now}",
            config.names.at(read.partition, previous.offset),
            value_name(previous.value),
            previous.at,
        ),
        None => format!(
            "{now} after its position was reset to {}",
            config.names.at(read.partition, track.expect)
        ),
    };
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

    #[test]
    fn a_kept_partition_stays_tracked_across_the_next_generation() {
        // Jepsen's `select-keys last-reads (:value op)`: a skip across a rebalance that kept
        // the partition is still a skip; going back to the committed offset is not an error.
        let mut s = five_sent();
        s.assign_gen(1, 0, 0, 1, &[0, 1]).poll(2, 0, 0, 0, 1, 2);
        s.assign_gen(3, 0, 0, 2, &[0]).poll(4, 0, 0, 0, 3, 4);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![PollSkip]);
        assert_eq!(found[0].offset, Some(3));
        let mut s = five_sent();
        s.assign_gen(1, 0, 0, 1, &[0]).poll(2, 0, 0, 0, 2, 3);
        s.assign_gen(3, 0, 0, 2, &[0]).poll(4, 0, 0, 0, 1, 2); // eager resume from a commit
        s.poll(5, 0, 0, 0, 1, 2); // but not twice
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![NonmonotonicPoll]);
        assert_eq!(found[0].at.as_millis(), 5);
    }

    #[test]
    fn a_missed_generation_or_a_new_partition_starts_over() {
        let mut s = five_sent();
        s.assign_gen(1, 0, 0, 1, &[0]).poll(2, 0, 0, 0, 0, 1);
        // Generation 2 went on without member 0 (another member read 1..=2).
        s.assign_gen(3, 0, 0, 3, &[0]).poll(4, 0, 0, 0, 3, 4);
        // Partition 1 was not member 0's before generation 4.
        s.send(5, 1, 6, 1, 0)
            .send(5, 1, 7, 1, 1)
            .send(5, 1, 8, 1, 2);
        s.poll(6, 0, 1, 1, 0, 6); // member 1 owned it in generation 3
        s.assign_gen(7, 0, 0, 4, &[0, 1]).poll(8, 0, 0, 1, 2, 8);
        assert_eq!(
            run(check, &s, &config(vec![group(0, false, false)])),
            vec![]
        );
    }

    /// Jepsen's `poll-skip-test` (`jepsen/test/jepsen/tests/kafka_test.clj`): member 0 reads
    /// offsets 1, 2, then 4, then 7; offset 3 is known from member 1's read and 6 from an
    /// acknowledged send, 5 from nothing (a gap in the log). The values a..g (here 1..7) were
    /// sent with unknown outcomes, so only reads place them.
    fn jepsen_poll_skip_story(between: &[(i32, &[u32])]) -> Story {
        let mut s = Story::new();
        for value in [1, 2, 3, 4, 7] {
            s.invoke(0, 3, value, None).info(0, 3, value);
        }
        s.assign_gen(0, 0, 0, 1, &[0]).assign_gen(0, 0, 1, 1, &[0]);
        s.poll(1, 0, 0, 0, 1, 1).poll(1, 0, 0, 0, 2, 2);
        s.poll(3, 0, 1, 0, 3, 3);
        for (generation, parts) in between {
            s.assign_gen(5, 0, 0, *generation, parts);
        }
        s.poll(7, 0, 0, 0, 4, 4);
        s.send(11, 2, 6, 0, 6);
        for (generation, parts) in between {
            s.assign_gen(12, 0, 0, generation + 1, parts);
        }
        s.poll(13, 0, 0, 0, 7, 7);
        s
    }

    #[test]
    fn jepsen_poll_skip_cases() {
        let cfg = config(vec![group(0, false, false)]);
        let skips = |s: &Story| {
            run(check, s, &cfg)
                .iter()
                .map(|v| (v.kind, v.offset, v.at.as_millis()))
                .collect::<Vec<_>>()
        };
        let expected = vec![(PollSkip, Some(4), 7), (PollSkip, Some(7), 13)];
        assert_eq!(skips(&jepsen_poll_skip_story(&[])), expected);
        // Assignments that still cover the partition keep its tracking ...
        assert_eq!(skips(&jepsen_poll_skip_story(&[(2, &[0, 1])])), expected);
        // ... ones that drop it allow the skip.
        assert_eq!(skips(&jepsen_poll_skip_story(&[(2, &[1])])), vec![]);
    }

    /// Jepsen's `nonmonotonic-poll-test`: member 0 reads 1, 2, 3 and then 2, 3, 4.
    #[test]
    fn jepsen_nonmonotonic_poll_cases() {
        let story = |between: Option<&[u32]>| {
            let mut s = Story::new();
            for value in 1..=4 {
                s.send(1, 0, value, 0, value);
            }
            s.assign_gen(1, 0, 0, 1, &[0]);
            for value in 1..=3 {
                s.poll(3, 0, 0, 0, value, value);
            }
            if let Some(parts) = between {
                s.assign_gen(5, 0, 0, 2, parts);
            }
            for value in 2..=4 {
                s.poll(7, 0, 0, 0, value, value);
            }
            s
        };
        let cfg = config(vec![group(0, false, false)]);
        let found = run(check, &story(None), &cfg);
        assert_eq!(kinds(&found), vec![NonmonotonicPoll]);
        assert_eq!(found[0].offset, Some(2));
        assert!(
            found[0].detail.contains("went backwards"),
            "{}",
            found[0].detail
        );
        // An assignment without the partition in between: nothing to compare with.
        assert_eq!(run(check, &story(Some(&[1])), &cfg), vec![]);
        // One that keeps it is a rebalance in kafsim: under the eager protocol the member
        // resumes from the committed offset, which may lie below what it read, so this is
        // the one relaxation kafsim makes where Jepsen (whose `:assign` is a manual
        // assignment, not a rebalance) reports it.
        assert_eq!(run(check, &story(Some(&[0, 1])), &cfg), vec![]);
    }

    #[test]
    fn a_seek_anchors_the_next_read() {
        let mut s = five_sent();
        s.poll(2, 0, 0, 0, 3, 4)
            .reset(3, 0, 0, 0, 1)
            .poll(4, 0, 0, 0, 3, 4);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![PollSkip]);
        assert!(found[0].detail.contains("reset to"), "{}", found[0].detail);
        assert_eq!(found[0].offset, Some(3));
        let mut s = five_sent();
        s.reset(3, 0, 0, 0, 2).poll(4, 0, 0, 0, 0, 1);
        assert_eq!(
            kinds(&run(check, &s, &config(vec![group(0, false, false)]))),
            vec![NonmonotonicPoll]
        );
        let mut s = five_sent();
        s.reset(3, 0, 0, 0, 2)
            .poll(4, 0, 0, 0, 2, 3)
            .poll(5, 0, 0, 0, 3, 4);
        assert_eq!(
            run(check, &s, &config(vec![group(0, false, false)])),
            vec![]
        );
    }

    #[test]
    fn generations_numbered_afresh_after_the_group_was_lost_do_not_carry_tracks() {
        // Member 0 is in generation 1 and resets to offset 0; the coordinator loses the group
        // and numbers afresh: member 1 is in the new generation 1 and reads 0..2; member 0
        // joins the new generation 2 and resumes at member 1's commit, offset 3.
        let mut s = five_sent();
        s.assign_gen(2, 0, 0, 1, &[0]).reset(2, 0, 0, 0, 0);
        s.assign_gen(2, 0, 1, 1, &[]);
        s.assign_gen(3, 0, 1, 1, &[0])
            .poll(4, 0, 1, 0, 0, 1)
            .poll(5, 0, 1, 0, 1, 2)
            .poll(6, 0, 1, 0, 2, 3);
        s.assign_gen(7, 0, 0, 2, &[0]).poll(8, 0, 0, 0, 3, 4);
        let cfg = config(vec![group(0, false, false)]);
        assert_eq!(run(check, &s, &cfg), vec![]);
        // Without the new era (member 1 never repeats a generation), member 0's kept
        // partition must still start where its reset said: a skip over 0..2.
        let mut s = five_sent();
        s.assign_gen(2, 0, 0, 1, &[0]).reset(2, 0, 0, 0, 0);
        s.assign_gen(7, 0, 0, 2, &[0]).poll(8, 0, 0, 0, 3, 4);
        assert_eq!(kinds(&run(check, &s, &cfg)), vec![PollSkip]);
    }
}
