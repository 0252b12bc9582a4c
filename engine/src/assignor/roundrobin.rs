//! Java's `RoundRobinAssignor` (kafka-python's port, librdkafka's `roundrobin`) and sarama's
//! rewrite of it (sarama >= 1.28.0, PR #1788).
//!
//! All topic-partitions of the subscribed topics are laid out in one sorted list and dealt to
//! the members, sorted by id, in one cycle across topics; a member not subscribed to the
//! partition's topic is skipped. Java sorts by (topic, partition number); sarama sorts by the
//! string `"<topic>-<partition>"`, so `t-10` comes before `t-2` and the deal differs from Java
//! from 11 partitions on.

use super::{add, Assignment, Group};

/// How the list of topic-partitions is sorted before the deal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// By topic, then partition number (Java, kafka-python, librdkafka).
    Java,
    /// By the text `"<topic>-<partition>"` (sarama >= 1.28.0).
    SaramaString,
}

/// One global cycle over the sorted members, skipping non-subscribers.
pub fn assign(group: &Group, order: Order) -> Assignment {
    let by_topic = group.members_by_topic();
    let mut partitions: Vec<(&str, u32)> = Vec::new();
    for topic in by_topic.keys() {
        partitions.extend((0..group.partition_count(topic)).map(|p| (*topic, p)));
    }
    if order == Order::SaramaString {
        partitions.sort_by_cached_key(|(topic, p)| format!("{topic}-{p}"));
    }
    let members = &group.members;
    let mut out = Assignment::new();
    if members.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for (topic, partition) in partitions {
        // Every listed topic has a subscriber, so this finds one within a full cycle.
        let mut skipped = 0;
        while !members[next % members.len()].1.contains(&topic) {
            next += 1;
            skipped += 1;
            assert!(
                skipped <= members.len(),
                "roundrobin: no subscriber for {topic}"
            );
        }
        add(&mut out, members[next % members.len()].0, topic, partition);
        next += 1;
    }
    out
}
