//! The producer's view of the cluster: which broker leads each partition of its topic.
//!
//! Learned with Metadata requests to a known broker (the bootstrap list first), refreshed when
//! a produce error says the leader moved (NotLeaderOrFollower, UnknownTopicOrPartition,
//! NotEnoughReplicas, ...) or a connection fails, at most one request at a time and no more
//! often than `retry.backoff.ms`. As in Java since KIP-320, a partition's leader is only
//! replaced by one of an equal or newer leader epoch, so a stale broker's answer cannot move
//! the producer back to a deposed leader.

use crate::node::NodeId;
use crate::protocol::{ErrorCode, MetadataResponse};
use crate::record::{TopicId, TopicPartition};
use crate::time::Instant;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Leader {
    node: NodeId,
    epoch: u32,
}

/// An outstanding Metadata request.
#[derive(Clone, Copy, Debug)]
pub struct MetadataInFlight {
    pub correlation_id: u64,
    pub broker: NodeId,
    pub deadline: Instant,
}

#[derive(Debug)]
pub struct ClientMetadata {
    topic: TopicId,
    /// Brokers to ask: the bootstrap list, then the live brokers the cluster reported.
    brokers: Vec<NodeId>,
    next_broker: usize,
    partition_count: Option<u32>,
    leaders: BTreeMap<u32, Leader>,
    stale: bool,
    pub in_flight: Option<MetadataInFlight>,
    /// No request before this instant (backoff after a failure or a refresh).
    pub next_attempt: Instant,
}

impl ClientMetadata {
    pub fn new(topic: TopicId, bootstrap: Vec<NodeId>) -> ClientMetadata {
        assert!(!bootstrap.is_empty(), "producer has no bootstrap brokers");
        ClientMetadata {
            topic,
            brokers: bootstrap,
            next_broker: 0,
            partition_count: None,
            leaders: BTreeMap::new(),
            stale: true,
            in_flight: None,
            next_attempt: Instant::ZERO,
        }
    }

    pub fn partition_count(&self) -> Option<u32> {
        self.partition_count
    }

    /// The leader of `partition` as last learned.
    pub fn leader(&self, partition: TopicPartition) -> Option<NodeId> {
        debug_assert_eq!(partition.topic, self.topic);
        self.leaders.get(&partition.partition).map(|l| l.node)
    }

    /// Ask for a refresh (the request goes out at the next opportunity).
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Forget a broker's leadership after a failed connection, so no batch goes to it before
    /// fresh metadata arrives.
    pub fn forget_broker(&mut self, broker: NodeId) {
        self.leaders.retain(|_, l| l.node != broker);
        self.stale = true;
    }

    /// Whether a Metadata request should be sent now.
    pub fn should_request(&self, now: Instant) -> bool {
        self.stale && self.in_flight.is_none() && now >= self.next_attempt
    }

    /// The broker to ask next (round robin over the known brokers).
    pub fn pick_broker(&mut self) -> NodeId {
        let broker = self.brokers[self.next_broker % self.brokers.len()];
        self.next_broker = self.next_broker.wrapping_add(1);
        broker
    }

    /// Any known broker, for InitProducerId (Java picks the least loaded node).
    pub fn any_broker(&mut self) -> NodeId {
        self.pick_broker()
    }

    /// Apply a response. Returns false if the topic was missing (retry after backoff).
    pub fn update(&mut self, response: &MetadataResponse) -> bool {
        if !response.brokers.is_empty() {
            self.brokers = response.brokers.clone();
            self.brokers.sort();
        }
        let Some(&(_, count)) = response.topics.iter().find(|(t, _)| *t == self.topic) else {
            return false;
        };
        self.partition_count = Some(count);
        let mut complete = true;
        for pm in &response.partitions {
            let state = &pm.state;
            if state.partition.topic != self.topic {
                continue;
            }
            let current = self.leaders.get(&state.partition.partition).copied();
            match (pm.error, state.leader) {
                (ErrorCode::None, Some(node)) => {
                    if current.is_none_or(|c| c.epoch <= state.leader_epoch) {
                        let epoch = state.leader_epoch;
                        self.leaders
                            .insert(state.partition.partition, Leader { node, epoch });
                    }
                }
                _ => {
                    if current.is_none_or(|c| c.epoch <= state.leader_epoch) {
                        self.leaders.remove(&state.partition.partition);
                    }
                    complete = false;
                }
            }
        }
        self.stale = !complete;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{PartitionMetadata, PartitionState};

    fn response(leader: u32, epoch: u32) -> MetadataResponse {
        let tp = TopicPartition::new(TopicId(0), 0);
        MetadataResponse {
            correlation_id: 1,
            brokers: vec![NodeId(0), NodeId(1)],
            controller: None,
            topics: vec![(TopicId(0), 1)],
            partitions: vec![PartitionMetadata {
                error: ErrorCode::None,
                state: PartitionState {
                    partition: tp,
                    leader: Some(NodeId(leader)),
                    leader_epoch: epoch,
                    isr: vec![NodeId(leader)],
                    partition_epoch: epoch,
                    replicas: vec![NodeId(0), NodeId(1)],
                },
            }],
        }
    }

    #[test]
    fn older_leader_epoch_does_not_replace_newer() {
        let tp = TopicPartition::new(TopicId(0), 0);
        let mut m = ClientMetadata::new(TopicId(0), vec![NodeId(0)]);
        assert!(m.update(&response(1, 5)));
        assert_eq!(m.leader(tp), Some(NodeId(1)));
        m.update(&response(0, 4));
        assert_eq!(m.leader(tp), Some(NodeId(1)), "stale epoch 4 ignored");
        m.update(&response(0, 6));
        assert_eq!(m.leader(tp), Some(NodeId(0)));
        assert_eq!(m.partition_count(), Some(1));
    }

    #[test]
    fn unknown_topic_keeps_metadata_stale() {
        let mut m = ClientMetadata::new(TopicId(3), vec![NodeId(0)]);
        assert!(!m.update(&response(1, 1)));
        assert!(m.should_request(Instant::ZERO));
    }
}
