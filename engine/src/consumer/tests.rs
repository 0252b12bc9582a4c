//! Unit tests of the consumer's commit logic: what each client's auto-commit would commit.

use super::*;
use crate::app::{CommitMode, Mark};
use crate::record::TopicId;

const TP0: TopicPartition = TopicPartition::new(TopicId(1), 0);
const TP1: TopicPartition = TopicPartition::new(TopicId(1), 1);

fn consumer(client: &str, commit: CommitMode) -> Consumer {
    let spec = ConsumerSpec {
        group_index: 0,
        member_index: 0,
        group: "g".into(),
        topics: vec![TopicId(1)],
        topic_names: BTreeMap::new(),
        handler: HandlerSpec {
            commit,
            mark: Mark::AfterProcess,
            ..HandlerSpec::default()
        },
        bootstrap: vec![NodeId(0)],
        dlq_topic: None,
    };
    let mut c = Consumer::new(spec, ConsumerConfig::for_client(client, None).unwrap());
    // Position 100 (records up to 99 returned by poll), marks at 60 (processed up to 59).
    for (tp, committed) in [(TP0, Some(50)), (TP1, Some(100))] {
        c.parts.insert(
            tp,
            PartState {
                position: Some(100),
                committed,
                marked: Some(60),
                need: Need::Nothing,
                ..PartState::default()
            },
        );
        c.group.owned.push(tp);
    }
    c
}

#[test]
fn java_auto_commit_commits_positions_not_marks() {
    let c = consumer("java", CommitMode::Auto);
    assert!(c.auto_commit_enabled());
    let offsets = c.auto_commit_offsets(&[TP0, TP1]);
    // TP1 is already committed at its position: nothing newer to commit there.
    assert_eq!(offsets, vec![(TP0, 100, None)]);
}

#[test]
fn sarama_and_librdkafka_auto_commit_commit_marks() {
    for client in ["sarama", "librdkafka"] {
        let c = consumer(client, CommitMode::Auto);
        let offsets = c.auto_commit_offsets(&[TP0, TP1]);
        assert_eq!(offsets, vec![(TP0, 60, None)], "{client}");
    }
}

#[test]
fn manual_commit_modes_turn_auto_commit_off() {
    let c = consumer("sarama", CommitMode::Sync);
    assert!(!c.auto_commit_enabled());
    assert_eq!(c.marked_offsets(), vec![(TP0, 60, None)]);
}

#[test]
fn kafka_go_commits_per_message_unless_given_an_interval() {
    let c = consumer("kafka-go", CommitMode::Auto);
    assert_eq!(c.auto_style, AutoCommitStyle::PerRecordSync);
    let mut cfg = ConsumerConfig::for_client("kafka-go", None).unwrap();
    crate::config::Configurable::set(
        &mut cfg,
        "auto.commit.interval.ms",
        &crate::config::ConfigValue::Int(1000),
    )
    .unwrap();
    assert_eq!(cfg.auto_commit_style(), AutoCommitStyle::Timer);
}

#[test]
fn sync_commits_merge_to_the_newest_offset_per_partition() {
    let mut c = consumer("java", CommitMode::Sync);
    c.start_sync_commit(vec![(TP0, 70, None)]);
    c.start_sync_commit(vec![(TP0, 65, None), (TP1, 120, Some(3))]);
    let sc = c.sync_commit.as_ref().expect("queued");
    assert_eq!(sc.offsets(), &[(TP0, 70, None), (TP1, 120, Some(3))]);
}
