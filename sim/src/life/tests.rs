//! Unit tests of [`super::record_life`]: the stories of a lost, a transactional, a duplicated
//! and a sunk value, each checked line by line.

use super::{record_life, LifeContext};
use crate::checker::test_support::*;
use crate::history::History;
use crate::names::Names;
use crate::nemesis::{AppliedFault, Op};
use crate::scenario::FaultKind;
use kafsim_engine::app::{CommitMode, Mark};
use kafsim_engine::client::ClientKind;
use kafsim_engine::consumer::consume_loop::{mark_rule, MarkRule};
use kafsim_engine::history::{HistoryEvent, ResetCause};
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Instant, NodeId, TopicId, TopicPartition};

fn names() -> Names {
    let mut n = Names::new();
    n.set_node(NodeId(0), "producer-0");
    n.set_node(NodeId(1), "broker-0");
    n.set_node(NodeId(2), "broker-1");
    n.set_node(NodeId(3), "billing/0");
    n.set_topic(TopicId(0), "orders");
    n.set_group(0, "billing");
    n
}

fn appended(broker: u32, base: u64, next: u64, leader: bool) -> HistoryEvent {
    HistoryEvent::Appended {
        broker: NodeId(broker),
        partition: tp(0),
        leader_epoch: 1,
        base_offset: base,
        next_offset: next,
        leader,
    }
}

/// v2 acknowledged at orders/0@1 by broker-0, which then lost leadership to broker-1
/// (whose log ends at 1) and truncated; the group read 0 and then 2.
fn lost_story() -> Story {
    let mut s = Story::new();
    s.send(1, 0, 1, 0, 0).invoke(2, 0, 2, Some(5));
    s.event(2, appended(1, 1, 3, true));
    let hw = |high_watermark| HistoryEvent::HighWatermark {
        broker: NodeId(1),
        partition: tp(0),
        leader_epoch: 1,
        high_watermark,
    };
    s.event(2, hw(1));
    s.event(3, hw(2));
    s.ok(3, 0, 2, 0, 1);
    s.event(3, hw(3)); // already past: no line
    s.event(
        4,
        HistoryEvent::BecameLeader {
            broker: NodeId(2),
            partition: tp(0),
            leader_epoch: 2,
            log_end_offset: 1,
        },
    );
    s.event(
        5,
        HistoryEvent::Truncated {
            broker: NodeId(1),
            partition: tp(0),
            offset: 1,
            reason: "diverging epoch",
        },
    );
    s.event(
        5,
        HistoryEvent::Truncated {
            broker: NodeId(1),
            partition: tp(1),
            offset: 0,
            reason: "other partition",
        },
    );
    s.send(6, 0, 3, 0, 1).send(6, 0, 4, 0, 2);
    s.poll(7, 0, 1, 0, 0, 1)
        .poll(8, 0, 1, 0, 2, 4)
        .poll(9, 0, 0, 0, 3, 4);
    s
}

#[test]
fn a_lost_value_shows_its_append_truncation_and_the_reads_around_it() {
    let (story, names) = (lost_story(), names());
    let lines = record_life(&LifeContext::bare(story.history(), &names), v(2));
    let expected = [
        "2.000ms producer-0: sends v2 (key 5) to topic orders",
        "2.000ms producer-0: broker-0 appended the batch 1..2 as leader in epoch 1: offset 1",
        "3.000ms producer-0: high watermark on broker-0 (epoch 1) passed offset 1: now 2",
        "3.000ms producer-0: got its acknowledgement: orders/0@1",
        "4.000ms producer-0: broker-1 became leader of orders/0 in epoch 2 with log end 1 \
         (has nothing at offset 1)",
        "5.000ms producer-0: broker-0 truncated its log of orders/0 to 1 (diverging epoch): \
         offset 1 is gone from it",
        "never read; reads around orders/0@1:",
        "  before: orders/0@0 read by billing/1 at 7.000ms (v1)",
        "  next higher offset read: orders/0@2 read by billing/1 at 8.000ms (v4)",
    ];
    // The story records every event from node 0 (producer-0); the text names the actor.
    assert_eq!(lines, expected, "{lines:#?}");
}

/// An acks=0 send has no offset: the story never prints the sentinel, and the crash of a
/// broker while the send was in flight is in it (the history cannot name the broker the
/// record went to); a fault after the acknowledgement on an uninvolved node is not.
#[test]
fn an_acks0_loss_shows_the_fault_that_hit_it_in_flight_and_no_sentinel_offset() {
    let mut s = Story::new();
    s.invoke(10, 0, 9, None)
        .ok(15, 0, 9, 0, kafsim_engine::producer::OFFSET_UNKNOWN);
    let history = s.history().clone();
    let names = names();
    let crash = |ms, node| AppliedFault {
        at: Instant::from_millis(ms),
        kind: Some(FaultKind::Crash),
        op: Op::Crash(vec![NodeId(node)]),
        undo_after: None,
        note: String::new(),
    };
    let faults = [crash(12, 1), crash(30, 2)];
    let cx = LifeContext {
        faults: &faults,
        ..LifeContext::bare(&history, &names)
    };
    let lines = record_life(&cx, v(9));
    assert_eq!(
        lines,
        [
            "10.000ms producer-0: sends v9 (key none) to topic orders",
            "12.000ms fault: crash broker-0",
            "15.000ms producer-0: got its acknowledgement: orders/0 (no offset: acks=0)",
        ],
        "{lines:#?}"
    );
}

/// A partition is in a record's story when it cuts nodes of the story (or the cluster) apart,
/// not when it isolates some other client: with many producers, the others' outages would
/// bury the story. Its own undo follows the same rule.
#[test]
fn a_partition_of_another_client_is_not_in_the_story() {
    let mut s = Story::new();
    s.invoke(10, 0, 9, None).ok(15, 0, 9, 0, 7);
    let history = s.history().clone();
    let mut names = names();
    names.set_node(NodeId(4), "producer-1");
    let all: Vec<NodeId> = (0..5).map(NodeId).collect();
    let isolate = |ms, node: u32| {
        let rest: Vec<NodeId> = all.iter().copied().filter(|n| n.0 != node).collect();
        AppliedFault {
            at: Instant::from_millis(ms),
            kind: Some(FaultKind::Partition),
            op: Op::Partition(vec![vec![NodeId(node)], rest]),
            undo_after: None,
            note: String::new(),
        }
    };
    let lift = |f: &AppliedFault, ms| AppliedFault {
        at: Instant::from_millis(ms),
        kind: None,
        op: Op::Lift(Box::new(f.op.clone())),
        undo_after: None,
        note: String::new(),
    };
    let (other, own) = (isolate(20, 4), isolate(30, 0));
    let faults = [other.clone(), own.clone(), lift(&other, 40), lift(&own, 50)];
    let cx = LifeContext {
        faults: &faults,
        ..LifeContext::bare(&history, &names)
    };
    let lines = record_life(&cx, v(9));
    let faults: Vec<&String> = lines.iter().filter(|l| l.contains("fault:")).collect();
    assert_eq!(faults.len(), 2, "{lines:#?}");
    assert!(
        faults[0].starts_with("30.000ms fault: partition [producer-0] | [broker-0,"),
        "{lines:#?}"
    );
    assert!(
        faults[1].starts_with("50.000ms fault: heal partition [producer-0] |"),
        "{lines:#?}"
    );
}

/// A value sent in a transaction: its story says how the transaction ended and which
/// values it held (replay's "committed transaction T of producer P with values ...").
#[test]
fn a_transactional_value_tells_how_its_transaction_ended_and_what_it_held() {
    let names = names();
    for (commit, word) in [(true, "committed"), (false, "aborted")] {
        let mut s = Story::new();
        s.txn_value(1, 0, 7, 1).send(1, 0, 1, 0, 0);
        s.txn_value(2, 0, 7, 2).send(2, 0, 2, 0, 1);
        s.txn_value(2, 0, 8, 3).send(2, 0, 3, 0, 2);
        if commit {
            s.txn_commit(3, 0, 7);
        } else {
            s.txn_abort(3, 0, 7);
        }
        let history = s.history().clone();
        let lines = record_life(&LifeContext::bare(&history, &names), v(2));
        let want =
            format!("3.000ms producer-0: {word} transaction 7 of producer-0 with values v1, v2");
        assert!(lines.contains(&want), "{lines:#?}");
    }
}

/// A commit the coordinator stored is in the story even when its answer never reached the
/// member (lost in its crash); with the member's own successful `Commit`, the story says
/// nothing of a lost answer and does not repeat the commit.
#[test]
fn a_commit_stored_by_the_coordinator_covers_the_record_and_says_whether_it_was_answered() {
    let story_of = |answered: bool| {
        let mut s = Story::new();
        s.send(1, 0, 7, 0, 5);
        s.poll(10, 0, 0, 0, 5, 7);
        s.event(
            12,
            HistoryEvent::OffsetsStored {
                group: "billing".into(),
                member: NodeId(3),
                generation: 3,
                partition: tp(0),
                offset: 6,
            },
        );
        if answered {
            s.event(
                13,
                HistoryEvent::Commit {
                    group: 0,
                    member: 0,
                    generation: 3,
                    partition: tp(0),
                    offset: 6,
                    error: ErrorCode::None,
                },
            );
        }
        let names = names();
        record_life(&LifeContext::bare(s.history(), &names), v(7))
    };
    let covering = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("which covers offset 5"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let lost = covering(&story_of(false));
    assert_eq!(
        lost,
        [
            "12.000ms producer-0: as coordinator of billing, stored billing/0's commit of \
          orders/0 offset 6 (generation 3), which covers offset 5: billing will not read it \
          again; its answer never reached billing/0"
        ],
    );
    let heard = covering(&story_of(true));
    assert_eq!(heard.len(), 1, "{heard:#?}");
    assert!(!heard[0].contains("never reached"), "{heard:#?}");
}

/// A zombie's sink-duplicate (consume-transform-produce): billing/0 polls v7 in
/// generation 3, billing/1 takes the partition in generation 4 and commits past it; then
/// billing/0 commits in generation 3 (its offsets carried no generation, so they were
/// accepted), and the final read finds two outputs of v7. The story names the zombie's
/// commit and both outputs, and does not call the value unwritten.
#[test]
fn a_zombies_duplicate_names_its_stale_commit_and_both_outputs() {
    let mut s = Story::new();
    s.send(1, 0, 7, 0, 5);
    let assigned = |member, generation| HistoryEvent::Assigned {
        group: 0,
        member,
        generation,
        partitions: vec![tp(0)],
    };
    let commit = |member, generation, offset| HistoryEvent::Commit {
        group: 0,
        member,
        generation,
        partition: tp(0),
        offset,
        error: ErrorCode::None,
    };
    let output = |offset| HistoryEvent::OutputRecord {
        group: 0,
        partition: TopicPartition::new(TopicId(1), 0),
        offset,
        value: v(7),
    };
    s.event(2, assigned(0, 3));
    s.poll(10, 0, 0, 0, 5, 7);
    s.event(20, assigned(1, 4));
    s.event(22, commit(1, 4, 9));
    s.event(30, commit(0, 3, 6));
    s.event(40, output(0));
    s.event(40, output(1));
    let history = s.history();
    let mut names = names();
    names.set_topic(TopicId(1), "invoices");
    let cx = LifeContext {
        history,
        names: &names,
        faults: &[],
        marks: &[rule(ClientKind::Java, Mark::AfterProcess)],
        workers: &[],
        read_message: &[],
        offset_resets: &[],
        idempotence: &[],
    };
    let lines = record_life(&cx, v(7));
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once(": ").map_or(l.as_str(), |(_, t)| t))
        .collect();
    let zombie = "committed orders/0 offset 6 in generation 3, though the group is in \
                  generation 4: a zombie's commit, accepted";
    assert!(texts.iter().any(|t| t.ends_with(zombie)), "{lines:#?}");
    for at in ["invoices/0@0", "invoices/0@1"] {
        let found = format!("the final read found an output of it that billing committed, at {at}");
        assert!(texts.iter().any(|t| t.ends_with(&found)), "{lines:#?}");
    }
    assert!(
        !texts
            .iter()
            .any(|t| t.contains("never wrote it to its sink")),
        "{lines:#?}"
    );
    // A commit in the group's current generation is no zombie's.
    assert_eq!(
        texts.iter().filter(|t| t.contains("zombie")).count(),
        1,
        "{lines:#?}"
    );
}

/// Where `client`'s loop marks with the handler's `mark` (auto-commit, librdkafka's default
/// offset store).
fn rule(client: ClientKind, mark: Mark) -> MarkRule {
    mark_rule(client, mark, CommitMode::Auto, true)
}

/// The consumer side of a sink-loss: billing/0 polls v7 at orders/0@5, marks it before
/// processing, its auto-commit covers offset 5, it crashes before the sink write, and
/// billing/1 takes the partition over and resumes at 6.
fn sink_loss_lines(marks: &[MarkRule], workers: &[u32]) -> Vec<String> {
    let mut s = Story::new();
    s.send(1, 0, 7, 0, 5);
    s.event(
        2,
        HistoryEvent::Assigned {
            group: 0,
            member: 0,
            generation: 3,
            partitions: vec![tp(0)],
        },
    );
    s.poll(10, 0, 0, 0, 5, 7);
    let commit = |member, generation, offset, error| HistoryEvent::Commit {
        group: 0,
        member,
        generation,
        partition: tp(0),
        offset,
        error,
    };
    s.event(11, commit(0, 3, 6, ErrorCode::RebalanceInProgress));
    s.event(12, commit(0, 3, 6, ErrorCode::None));
    s.event(13, commit(0, 3, 7, ErrorCode::None)); // already covered: no line
    s.event(
        20,
        HistoryEvent::Assigned {
            group: 0,
            member: 1,
            generation: 4,
            partitions: vec![tp(0)],
        },
    );
    s.event(
        21,
        HistoryEvent::Resumed {
            group: 0,
            member: 1,
            generation: 4,
            partition: tp(0),
            offset: 6,
        },
    );
    // The consumer's events come from billing/0's node.
    let history: History = s
        .history()
        .entries()
        .cloned()
        .map(|mut e| {
            if matches!(
                e.event,
                HistoryEvent::Poll { .. } | HistoryEvent::Commit { .. }
            ) {
                e.node = NodeId(3);
            }
            e
        })
        .collect();
    let names = names();
    let faults = [AppliedFault {
        at: Instant::from_millis(15),
        kind: Some(FaultKind::ConsumerCrash),
        op: Op::Crash(vec![NodeId(3)]),
        undo_after: None,
        note: String::new(),
    }];
    let cx = LifeContext {
        history: &history,
        names: &names,
        faults: &faults,
        marks,
        workers,
        read_message: &[false],
        offset_resets: &[],
        idempotence: &[],
    };
    record_life(&cx, v(7))
}

#[test]
fn a_sink_loss_tells_mark_commit_crash_rebalance_and_resume_in_time_order() {
    let lines = sink_loss_lines(&[rule(ClientKind::Java, Mark::BeforeProcess)], &[1]);
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| match l.starts_with("=>") {
            true => l.as_str(),
            false => l.split_once(": ").map_or(l.as_str(), |(_, t)| t),
        })
        .collect();
    let expected = [
        "sends v7 (key none) to topic orders",
        "got its acknowledgement: orders/0@5",
        "polled it (generation 3) at orders/0@5",
        "marks offset 5 as poll hands it over, before processing (mark = before-process): \
         its next commit will say 6",
        "its commit of orders/0 offset 6, which would cover offset 5, failed \
         (RebalanceInProgress)",
        "committed orders/0 offset 6 (generation 3), which covers offset 5: billing will not \
         read it again",
        "crash billing/0",
        "billing/1 owns orders/0 in generation 4 after a rebalance",
        "billing/1 resumed orders/0 in generation 4 at the committed offset 6, past this \
         record: it will not be read again",
        "=> billing polled orders/0@5 and committed past it, but never wrote it to its \
         sink: billing/0 committed offset 6 at 12.000ms before billing/0 had processed it \
         (mark = before-process: a record is marked when it is handed over), and billing/0 \
         crashed at 15.000ms before processing it; whoever owned the partition next resumed \
         after it",
    ];
    assert_eq!(texts, expected, "{lines:#?}");
    assert!(lines[6].starts_with("15.000ms fault: crash"), "{lines:#?}");
}

/// A worker pool that marks after processing: the cause is the pool's out-of-order marks.
#[test]
fn a_worker_pool_sink_loss_names_the_out_of_order_mark() {
    let lines = sink_loss_lines(&[rule(ClientKind::Java, Mark::AfterProcess)], &[4]);
    let last = lines.last().expect("an explanation");
    assert!(
        last.contains(
            "billing/0 committed offset 6 at 12.000ms before billing/0 had processed it \
             (workers = 4: each worker marks the records it finished, and a partition's \
             mark is the highest of them, so it passes records still queued for a slower \
             worker), and billing/0 crashed at 15.000ms before processing it"
        ),
        "{lines:#?}"
    );
    // The poll loop itself marking after processing gives no such cause.
    let lines = sink_loss_lines(&[rule(ClientKind::Java, Mark::AfterProcess)], &[1]);
    let last = lines.last().expect("an explanation");
    assert!(!last.contains("workers"), "{lines:#?}");
    assert!(last.contains("before billing/0 had processed it, and billing/0 crashed"));
}

/// Each client's loop marks where it really does, and the story says so: sarama's claim
/// loop when it takes the message up, librdkafka's default offset store as poll hands it
/// over (whatever the handler's `mark`).
#[test]
fn the_mark_line_and_the_cause_name_the_client_s_own_mark_point() {
    let sarama = sink_loss_lines(&[rule(ClientKind::Sarama, Mark::BeforeProcess)], &[1]);
    assert!(
        sarama.iter().any(|l| l.ends_with(
            "billing/0: marks offset 5 once its loop takes it up, before processing it \
             (mark = before-process): a commit after that will say 6"
        )),
        "{sarama:#?}"
    );
    assert!(
        sarama.last().unwrap().contains(
            "(mark = before-process: a record is marked when its loop takes it up, before \
             processing it)"
        ),
        "{sarama:#?}"
    );
    let librdkafka = sink_loss_lines(&[rule(ClientKind::Librdkafka, Mark::AfterProcess)], &[1]);
    assert!(
        librdkafka.iter().any(|l| l.ends_with(
            "billing/0: marks offset 5 as poll hands it over, before processing \
             (enable.auto.offset.store = true, librdkafka's default): its next commit will \
             say 6"
        )),
        "{librdkafka:#?}"
    );
    assert!(
        (librdkafka.last().unwrap()).contains(
            "(enable.auto.offset.store = true, librdkafka's default: a record is marked when \
             it is handed over)"
        ),
        "{librdkafka:#?}"
    );
    // With the store off, the handler's `mark` = after-process holds: no mark at the poll.
    let stored = mark_rule(
        ClientKind::Librdkafka,
        Mark::AfterProcess,
        CommitMode::Auto,
        false,
    );
    let lines = sink_loss_lines(&[stored], &[1]);
    assert!(
        !lines.iter().any(|l| l.contains("marks offset")),
        "{lines:#?}"
    );
}

#[test]
fn a_sunk_value_has_no_loss_explanation_and_an_unknown_one_says_so() {
    let mut s = lost_story();
    s.poll(10, 1, 0, 0, 1, 2)
        .sink(11, 1, 0, 1, 2)
        .dead_letter(12, 1, 2);
    let names = names();
    let cx = LifeContext::bare(s.history(), &names);
    let lines = record_life(&cx, v(2));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("never read") || l.contains("=>")),
        "{lines:#?}"
    );
    assert!(lines[lines.len() - 3].ends_with("group-1/0 polled it (no assignment) at orders/0@1"));
    assert!(lines[lines.len() - 2].contains("group-1/0 wrote it to the sink of group-1"));
    assert!(lines[lines.len() - 1].contains("group-1/0 sent it to the dead-letter topic"));
    assert_eq!(
        record_life(&cx, v(99)),
        vec!["v99 does not appear in the history".to_string()]
    );
}

/// A reset past an unread record names its cause and the group's policy in the client's
/// words; a seek by the application says so instead.
#[test]
fn a_reset_past_a_record_names_its_cause_and_the_reset_policy() {
    let reset = |at, offset, cause| {
        (
            at,
            HistoryEvent::PositionReset {
                group: 0,
                member: 0,
                partition: tp(0),
                offset,
                cause,
            },
        )
    };
    let mut s = Story::new();
    s.send(1, 0, 1, 0, 0);
    for (at, e) in [
        reset(2, 1, ResetCause::NoCommittedOffset),
        reset(3, 1, ResetCause::OutOfRange),
        reset(4, 1, ResetCause::Seek),
        reset(5, 0, ResetCause::NoCommittedOffset),
    ] {
        s.event(at, e);
    }
    let names = names();
    let policy = ["auto.offset.reset = latest (librdkafka's default)".to_string()];
    let cx = LifeContext {
        offset_resets: &policy,
        idempotence: &[],
        ..LifeContext::bare(s.history(), &names)
    };
    let lines = record_life(&cx, v(1));
    let resets: Vec<&str> = (lines.iter())
        .filter(|l| l.contains("reset its position"))
        .map(|l| l.split_once(": ").map_or(l.as_str(), |(_, rest)| rest))
        .collect();
    assert_eq!(
        resets,
        [
            "billing/0 reset its position of orders/0 to 1, past this record: the group had no \
             committed offset for it, and auto.offset.reset = latest (librdkafka's default)",
            "billing/0 reset its position of orders/0 to 1, past this record: its position was out of \
             range (OffsetOutOfRange), and auto.offset.reset = latest (librdkafka's default)",
            "billing/0 reset its position of orders/0 to 1, past this record: the application sought \
             there",
        ],
        "{lines:#?}"
    );
}

/// A sink duplicate explains itself: billing/0 wrote v7 to its sink, every commit that would
/// have covered it failed, and billing/1 resumed the partition at the committed offset, at
/// the record, and wrote it again. A resume past the record after the sink write is no news.
#[test]
fn a_sink_duplicate_names_the_failed_commits_and_the_resume_that_read_it_again() {
    let resumed = |offset| HistoryEvent::Resumed {
        group: 0,
        member: 1,
        generation: 4,
        partition: tp(0),
        offset,
    };
    let commit = |offset, error| HistoryEvent::Commit {
        group: 0,
        member: 0,
        generation: 3,
        partition: tp(0),
        offset,
        error,
    };
    let story = |resume_at: u64| {
        let mut s = Story::new();
        s.send(1, 0, 7, 0, 5);
        s.poll(10, 0, 0, 0, 5, 7).sink(10, 0, 0, 5, 7);
        s.event(11, commit(9, ErrorCode::NetworkException));
        s.event(12, commit(9, ErrorCode::NetworkException));
        s.event(13, commit(9, ErrorCode::NotCoordinator));
        s.event(20, resumed(resume_at));
        let names = names();
        let cx = LifeContext::bare(s.history(), &names);
        record_life(&cx, v(7))
    };
    let lines = story(5);
    let failed: Vec<&String> = lines.iter().filter(|l| l.contains("failed")).collect();
    assert_eq!(
        failed.len(),
        2,
        "one line for the first failure, one at the resume: {lines:#?}"
    );
    assert!(failed[0].ends_with(
        "its commit of orders/0 offset 9, which would cover offset 5, failed (NetworkException)"
    ));
    assert!(
        failed[1].ends_with(
            "billing/1 resumed orders/0 in generation 4 at the committed offset 5, at or before \
         this record: it will be read again (3 commits that would have covered it, from \
         billing/0, failed between 11.000ms and 13.000ms, the last with NotCoordinator)"
        ),
        "{lines:#?}"
    );
    // Resumed past the record after the sink write: not printed.
    assert!(!story(6).iter().any(|l| l.contains("resumed")));
}

/// A value in its topic twice explains itself: each copy with the leader append that made it,
/// the application's single send, and the producer's idempotence in the user's words. The
/// same value read twice at one offset (a re-read, not a copy) gets no such line, and neither
/// does a copy in another topic (a consume-transform-produce output carries its input's id).
#[test]
fn a_duplicate_names_each_copys_append_and_why_the_retry_was_not_recognized() {
    let names = names();
    let story = |first_offset: u64, second_offset: u64, second_topic: u32| {
        let mut s = Story::new();
        s.invoke(1, 0, 7, None);
        s.event(2, appended(1, 4, 5, true)); // the first request: its answer never came
        s.event(9, appended(1, 6, 7, true)); // the client's retry
        s.ok(10, 0, 7, 0, 6);
        s.poll(12, 0, 0, 0, first_offset, 7);
        let second = HistoryEvent::Poll {
            group: 0,
            member: 0,
            partition: TopicPartition {
                topic: TopicId(second_topic),
                partition: 0,
            },
            offset: second_offset,
            value: v(7),
            key: None,
        };
        s.event(13, second);
        s
    };
    let idempotence = ["not idempotent (kafka-go's Writer has no idempotent mode)".to_string()];
    let lines = |s: &Story| {
        let mut cx = LifeContext::bare(s.history(), &names);
        cx.idempotence = &idempotence;
        record_life(&cx, v(7))
    };
    let copies = lines(&story(4, 6, 0));
    assert!(
        copies.contains(
            &"2.000ms producer-0: broker-0 appended the batch at 4 as leader in epoch 1: \
              offset 4, where another copy of this value is found"
                .to_string()
        ),
        "{copies:#?}"
    );
    let sum_up = copies.last().expect("lines");
    assert_eq!(
        sum_up,
        "=> v7 is in orders 2 times: orders/0@4 (appended by broker-0 in epoch 1 at 2.000ms), \
         orders/0@6 (appended by broker-0 in epoch 1 at 9.000ms). producer-0's application sent \
         it once: each copy after the first is its client's retry of the batch, sent because \
         the request before it went unanswered (a timeout or a closed connection) although the \
         leader had appended it; producer-0 is not idempotent (kafka-go's Writer has no \
         idempotent mode), so the leader cannot tell a retried batch from a new one",
        "{copies:#?}"
    );
    // Read twice at the offset it was acknowledged at: one position, no copies.
    let reread = lines(&story(6, 6, 0));
    assert!(
        reread
            .iter()
            .all(|l| !l.contains("is in orders") && !l.contains("another copy")),
        "{reread:#?}"
    );
    // The second position is in another topic: not a copy.
    let output = lines(&story(6, 6, 1));
    assert!(
        output.iter().all(|l| !l.starts_with("=> v7 is in")),
        "{output:#?}"
    );
}

/// A group that reads the value downstream of a consume-transform-produce (in the output
/// topic, where it carries its input's id) has its resume told at its own position: reader
/// read v7 at out/0@9, and after its crash resumed out/0 at the committed offset 9. A resume
/// of the input partition at that offset is about another record and is not told as this one's.
#[test]
fn a_downstream_reader_s_resume_is_told_at_its_position_in_the_output_topic() {
    let mut names = names();
    names.set_topic(TopicId(1), "out");
    names.set_group(1, "reader");
    names.set_node(NodeId(4), "reader/0");
    let out = TopicPartition::new(TopicId(1), 0);
    let resumed = |partition, offset| HistoryEvent::Resumed {
        group: 1,
        member: 0,
        generation: 3,
        partition,
        offset,
    };
    let story = |partition| {
        let mut s = Story::new();
        s.send(1, 0, 7, 0, 5);
        s.poll(10, 0, 0, 0, 5, 7);
        s.event(
            11,
            HistoryEvent::Poll {
                group: 1,
                member: 0,
                partition: out,
                offset: 9,
                value: v(7),
                key: None,
            },
        );
        s.event(30, resumed(partition, 9));
        s
    };
    let lines = |s: &Story| record_life(&LifeContext::bare(s.history(), &names), v(7));
    let told = lines(&story(out));
    assert!(
        told.iter().any(|l| l.ends_with(
            "reader/0 resumed out/0 in generation 3 at the committed offset 9, at or before \
             this record: it will be read again"
        )),
        "{told:#?}"
    );
    let other = lines(&story(tp(0)));
    assert!(other.iter().all(|l| !l.contains("resumed")), "{other:#?}");
}
