//! The producer's view of the cluster: which broker leads each partition of its topic.
//!
//! Learned with Metadata requests to a known broker (the bootstrap list first), refreshed when
//! a produce error says the leader moved (NotLeaderOrFollower, UnknownTopicOrPartition,
//! NotEnoughReplicas, ...) or a connection fails, at most one request at a time and no more
//! often than `retry.backoff.ms`. As in Java since KIP-320, a partition's leader is only
//! replaced by one of an equal or newer leader epoch, so a stale broker's answer cannot move
//! the producer back to a deposed leader.
//!
//! A broker whose connection was reset (its process died) is *down* for the producer: nothing
//! is sent to it, and batches for the partitions it leads wait, as Java's `NetworkClient`
//! keeps them while the node is not connectable. It is up again once the cluster's metadata
//! has dropped it from the live brokers and listed it again (it restarted), or after
//! [`RECONNECT_GRACE`] (Java's `socket.connection.setup.timeout.ms`, 10 s since 2.7, KIP-601),
//! which covers a reset without a death (a cut connection). The simulated network does not
//! refuse connections to a dead process, so without this rule every request to it would be
//! lost silently and wait out `request.timeout.ms`.

use crate::node::NodeId;
use crate::protocol::{ErrorCode, MetadataResponse};
use crate::record::{TopicId, TopicPartition};
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

/// How long a reset broker stays down unless metadata shows it died and came back.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(10);

/// A broker the producer saw reset.
#[derive(Clone, Copy, Debug)]
struct Down {
    since: Instant,
    /// The cluster metadata stopped listing it as live since it went down.
    seen_dead: bool,
}

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
    down: BTreeMap<NodeId, Down>,
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
            down: BTreeMap::new(),
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

    /// A broker's connection failed: refresh metadata. A reset (the process died) also marks
    /// it down (see the module docs).
    pub fn connection_failed(&mut self, broker: NodeId, reset: bool, now: Instant) {
        self.stale = true;
        if reset {
            let seen_dead = false;
            self.down.insert(
                broker,
                Down {
                    since: now,
                    seen_dead,
                },
            );
        }
    }

    /// Whether `broker` may be sent requests at `now`.
    pub fn is_up(&self, broker: NodeId, now: Instant) -> bool {
        self.down
            .get(&broker)
            .is_none_or(|d| now >= d.since + RECONNECT_GRACE)
    }

    /// The leader of `partition` if it is up.
    pub fn usable_leader(&self, partition: TopicPartition, now: Instant) -> Option<NodeId> {
        self.leader(partition).filter(|b| self.is_up(*b, now))
    }

    /// Whether a Metadata request should be sent now.
    pub fn should_request(&self, now: Instant) -> bool {
        self.stale && self.in_flight.is_none() && now >= self.next_attempt
    }

    /// The broker to ask next: round robin over the known brokers that are up (any broker if
    /// none is).
    pub fn pick_broker(&mut self, now: Instant) -> NodeId {
        for _ in 0..self.brokers.len() {
            let broker = self.brokers[self.next_broker % self.brokers.len()];
            self.next_broker = self.next_broker.wrapping_add(1);
            if self.is_up(broker, now) {
                return broker;
            }
        }
        self.brokers[self.next_broker % self.brokers.len()]
    }

    /// A down broker the metadata dropped and then lists again has restarted: it is up.
    fn track_down_brokers(&mut self, live: &[NodeId]) {
        for (broker, down) in self.down.iter_mut() {
            if !live.contains(broker) {
                down.seen_dead = true;
            }
        }
        self.down
            .retain(|broker, down| !(down.seen_dead && live.contains(broker)));
    }

    /// Apply a response. Returns false if the topic was missing (retry after backoff).
    pub fn update(&mut self, response: &MetadataResponse) -> bool {
        if !response.brokers.is_empty() {
            self.brokers = response.brokers.clone();
            self.brokers.sort();
            self.track_down_brokers(&response.brokers);
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
