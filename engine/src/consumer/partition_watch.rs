//! How a group member learns that a subscribed topic gained partitions, and whether it then
//! asks for a rebalance. No client is told: each finds out from its own metadata, and the
//! partitions nobody owns are not read until a rebalance hands them out.
//!
//! - Java (`ConsumerCoordinator`): metadata is refreshed every `metadata.max.age.ms` (300 s)
//!   and after errors; every update makes a new `MetadataSnapshot` (partition counts of the
//!   subscribed topics). Only the member that computed the assignment keeps the snapshot it
//!   used (`assignmentSnapshot`, set in `onLeaderElected`), and `rejoinNeededOrPending`
//!   requests a rejoin when the current snapshot no longer matches it. Followers never do.
//! - sarama (`consumerGroup.newSession`): only the leader runs `loopCheckPartitionNumbers`,
//!   which compares the client's cached partition counts with those of the session's
//!   assignment every `Metadata.RefreshFrequency` (10 min; the cache is refreshed by the
//!   client's background updater at the same frequency) and cancels the session on a change.
//! - librdkafka (`rd_kafka_cgrp_metadata_update_check`): every member compares the subscribed
//!   topics' partition counts on each metadata update (`topic.metadata.refresh.interval.ms`,
//!   300 s) and rejoins when they changed.
//! - kafka-go (`Generation.partitionWatcher`): only with `WatchPartitionChanges` (off by
//!   default), every member reads the topic's partitions every `PartitionWatchInterval` (5 s)
//!   and ends the generation when the count changed. Without it a kafka-go group never
//!   notices: the new partitions stay unread until some other rebalance.
//!
//! kafsim models the periodic refresh as a metadata request every `metadata.max.age.ms`
//! (each client's own interval and property name, see `alias.rs`), and the comparison as a
//! snapshot of partition counts taken when the assignment was computed (the leader) or
//! received (clients where every member watches).

use super::profile::ClientKind;
use crate::record::TopicId;
use std::collections::BTreeMap;

/// Which members of a group compare partition counts and ask for a rebalance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watcher {
    /// Only the member that computed the assignment (Java, sarama).
    Leader,
    /// Every member (librdkafka; kafka-go with `WatchPartitionChanges`).
    Every,
    /// Nobody (kafka-go by default): no periodic refresh either.
    Nobody,
}

/// The watcher of `client`; `kafka_go_watch` is kafka-go's `WatchPartitionChanges`.
pub fn watcher(client: ClientKind, kafka_go_watch: bool) -> Watcher {
    match client {
        ClientKind::Java | ClientKind::Sarama => Watcher::Leader,
        ClientKind::Librdkafka => Watcher::Every,
        ClientKind::KafkaGo if kafka_go_watch => Watcher::Every,
        ClientKind::KafkaGo => Watcher::Nobody,
    }
}

/// The partition counts an assignment was made with, and whether `now` differs from them
/// for any topic of the snapshot (a topic missing from `now` is no change: the metadata
/// answer was partial).
pub fn changed(snapshot: &BTreeMap<TopicId, u32>, now: &BTreeMap<TopicId, u32>) -> bool {
    snapshot
        .iter()
        .any(|(t, n)| now.get(t).is_some_and(|m| m != n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_watches_follows_each_client() {
        assert_eq!(watcher(ClientKind::Java, false), Watcher::Leader);
        assert_eq!(watcher(ClientKind::Sarama, false), Watcher::Leader);
        assert_eq!(watcher(ClientKind::Librdkafka, false), Watcher::Every);
        assert_eq!(watcher(ClientKind::KafkaGo, false), Watcher::Nobody);
        assert_eq!(watcher(ClientKind::KafkaGo, true), Watcher::Every);
    }

    #[test]
    fn a_grown_topic_is_a_change_a_missing_one_is_not() {
        let snap: BTreeMap<TopicId, u32> = [(TopicId(0), 4), (TopicId(1), 2)].into();
        assert!(!changed(&snap, &snap.clone()));
        assert!(changed(&snap, &[(TopicId(0), 6), (TopicId(1), 2)].into()));
        assert!(!changed(&snap, &[(TopicId(1), 2)].into()));
    }
}
