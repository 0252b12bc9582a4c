//! The producer's view of the cluster: which broker leads each partition of its topic.
//!
//! Learned with Metadata requests to a known broker (the bootstrap list first), refreshed when
//! a produce error says the leader moved (which errors do differs per client, see
//! [`refreshes_on`]), when a connection fails, and periodically (`metadata.max.age.ms`), at most
//! one request at a time. As in Java since KIP-320, a partition's leader is only
//! replaced by one of an equal or newer leader epoch, so a stale broker's answer cannot move
//! the producer back to a deposed leader.
//!
//! A broker whose connection was reset is *suspect* until it answers: Metadata requests
//! prefer brokers that answered since their last reset. It may be connected again after the
//! client's reconnect backoff (`reconnect.rs`), as a real client reconnects: if its process is
//! still down, the attempt is refused (the host answers `ConnectionRefused`, and nothing sent
//! reached it, see `Producer::on_connection_refused`); if it came back, the connection works.
//! A reset broker the cluster metadata then stops listing as live is *down*: nothing is sent
//! to it until it is listed again (it restarted), as a real client only connects to brokers
//! its metadata names. (Until kafsim's hosts refused connections to a dead process, a reset
//! broker was held down for a 10 s grace, Java's `socket.connection.setup.timeout.ms`, because
//! requests to it vanished (issue 12); that held a producer 10 s away from a broker that had
//! restarted at once after a power loss, where Java reconnects within
//! `reconnect.backoff.max.ms`.) A host that cannot be reached at all (a partition, a host
//! without power) is given up on after the client's own connection setup timeout
//! (`connection_setup.rs`).

use super::config::ClientKind;
use crate::node::NodeId;
use crate::protocol::{ErrorCode, MetadataResponse};
use crate::record::{TopicId, TopicPartition};
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

use super::Producer;
use crate::node::Cx;
use crate::protocol::{Message, MetadataRequest};

/// sarama `Metadata.Retry.Backoff` default.
const SARAMA_METADATA_RETRY_BACKOFF: Duration = Duration::from_millis(250);

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
    /// Brokers whose connection was reset and that have not answered since: Metadata requests
    /// avoid them while a proven broker exists (brokers' live lists disagree for a while after
    /// a crash, so "listed again" can be wrong, and a request to a dead process is lost).
    suspect: std::collections::BTreeSet<NodeId>,
    pub in_flight: Option<MetadataInFlight>,
    /// No request before this instant (backoff after a failure or a refresh).
    pub next_attempt: Instant,
    /// When the last complete response arrived, and how long it stays fresh (periodic
    /// refresh: Java `metadata.max.age.ms`, see [`Self::refreshed`]).
    last_refresh: Instant,
    refresh_interval: Duration,
    /// How many responses were applied (sarama's retries wait for a newer one).
    responses: u64,
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
            suspect: std::collections::BTreeSet::new(),
            in_flight: None,
            next_attempt: Instant::ZERO,
            last_refresh: Instant::ZERO,
            refresh_interval: Duration::MAX,
            responses: 0,
        }
    }

    /// A count that grows with every applied response: a batch that remembers it can tell
    /// whether a refresh completed since.
    pub fn version(&self) -> u64 {
        self.responses
    }

    /// The brokers metadata requests may go to.
    pub fn brokers(&self) -> &[NodeId] {
        &self.brokers
    }

    /// A response was applied at `now`; the next periodic refresh is `interval` later (Java
    /// `Metadata.timeToNextUpdate`: `metadata.max.age.ms` after the last full update; kafka-go
    /// `connPool.discover` draws a fresh uniform interval below `MetadataTTL` each time).
    pub fn refreshed(&mut self, now: Instant, interval: Duration) {
        self.last_refresh = now;
        self.refresh_interval = interval;
    }

    /// The instant of the next periodic refresh.
    pub fn next_refresh(&self) -> Option<Instant> {
        let nanos = self
            .last_refresh
            .as_nanos()
            .checked_add(crate::time::duration_nanos(self.refresh_interval))?;
        Some(Instant::from_nanos(nanos).max(self.next_attempt))
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
    /// kafka-go passes `refresh: false`: its `Transport` does not refresh on a connection error.
    pub fn connection_failed(&mut self, broker: NodeId, reset: bool, refresh: bool, now: Instant) {
        self.stale |= refresh;
        if reset {
            self.suspect.insert(broker);
            // A refusal while the metadata shows it dead keeps it dead.
            self.down.entry(broker).or_insert(Down {
                since: now,
                seen_dead: false,
            });
        }
    }

    /// A response arrived from `broker`: it is alive and connected, whatever a reset said.
    pub fn connection_ready(&mut self, broker: NodeId) {
        self.down.remove(&broker);
        self.suspect.remove(&broker);
    }

    /// Whether `broker` may be sent requests at `now` (the reconnect backoff aside): not
    /// when it was reset and the metadata has since shown it dead, until it is listed again.
    pub fn is_up(&self, broker: NodeId, now: Instant) -> bool {
        self.down.get(&broker).is_none_or(|d| {
            debug_assert!(d.since <= now, "down in the future");
            !d.seen_dead
        })
    }

    /// Whether a Metadata request should be sent now.
    pub fn should_request(&self, now: Instant) -> bool {
        let due = self.stale || self.next_refresh().is_some_and(|at| now >= at);
        due && self.in_flight.is_none() && now >= self.next_attempt
    }

    /// The broker to ask next: round robin over the known brokers that `connectable` allows,
    /// preferring those that answered since their last reset, then those that are up (Java
    /// `leastLoadedNode` skips nodes backing off and returns none when every node is). `None`
    /// when no broker may be connected now.
    pub fn pick_broker(
        &mut self,
        now: Instant,
        connectable: impl Fn(NodeId) -> bool,
    ) -> Option<NodeId> {
        let n = self.brokers.len();
        let start = self.next_broker;
        let order: Vec<NodeId> = (0..n).map(|i| self.brokers[(start + i) % n]).collect();
        let usable = |b: &NodeId| connectable(*b) && self.is_up(*b, now);
        let pick = order
            .iter()
            .position(|b| usable(b) && !self.suspect.contains(b))
            .or_else(|| order.iter().position(usable))
            .or_else(|| order.iter().position(|b| connectable(*b)))?;
        self.next_broker = start.wrapping_add(pick + 1);
        Some(order[pick])
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
        self.responses += 1;
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

/// Whether `client` asks for a metadata refresh when a produce attempt fails with `error`
/// (a lost connection is always such a trigger; see `Producer::on_connection_lost`).
///
/// - Java `Sender.completeBatch`: `error.exception() instanceof InvalidMetadataException`
///   (NotLeaderOrFollower, UnknownTopicOrPartition, FencedLeaderEpoch, UnknownLeaderEpoch,
///   NetworkException); NotEnoughReplicas and timeouts are retriable without a refresh.
/// - librdkafka `rd_kafka_handle_Produce_error` / `rd_kafka_err_action`: the
///   `RD_KAFKA_ERR_ACTION_REFRESH` errors (NOT_LEADER_FOR_PARTITION, UNKNOWN_TOPIC_OR_PART,
///   BROKER_NOT_AVAILABLE, `__TRANSPORT`), which go through `rd_kafka_toppar_leader_unavailable`.
/// - sarama: every retried message goes back through `partitionProducer.dispatch`, which
///   abandons its broker and calls `updateLeader` (`client.RefreshMetadata`) before sending
///   again: every retriable error refreshes, and the retry waits for it (see `sender.rs`).
/// - kafka-go: never; the `Transport` only refreshes periodically (`connPool.discover`), and
///   `Writer.writeBatch` retries against the cached layout.
pub fn refreshes_on(client: ClientKind, error: ErrorCode) -> bool {
    use ErrorCode::*;
    match client {
        ClientKind::Java => matches!(
            error,
            NotLeaderOrFollower
                | UnknownTopicOrPartition
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | NetworkException
        ),
        ClientKind::Librdkafka => matches!(
            error,
            NotLeaderOrFollower | UnknownTopicOrPartition | BrokerNotAvailable | NetworkException
        ),
        ClientKind::Sarama => sarama_retriable(error),
        ClientKind::KafkaGo => false,
    }
}

/// sarama `brokerProducer.handleSuccess`: the errors it retries (ErrInvalidMessage,
/// ErrUnknownTopicOrPartition, ErrLeaderNotAvailable, ErrNotLeaderForPartition,
/// ErrRequestTimedOut, ErrNotEnoughReplicas, ErrNotEnoughReplicasAfterAppend); a connection
/// error (`handleError`) is retried too.
pub fn sarama_retriable(error: ErrorCode) -> bool {
    use ErrorCode::*;
    matches!(
        error,
        UnknownTopicOrPartition
            | NotLeaderOrFollower
            | RequestTimedOut
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | NetworkException
    )
}

/// The Metadata requests (one at a time) and what their answers change.
impl Producer {
    pub(super) fn send_metadata_request(&mut self, cx: &mut Cx) {
        let now = cx.now();
        if !self.metadata.should_request(now) {
            return;
        }
        let Some(broker) = self.pick_broker(now) else {
            return; // every broker is backing off; the wake covers the earliest
        };
        let correlation_id = self.sender.correlation_id();
        self.metadata.in_flight = Some(super::metadata::MetadataInFlight {
            correlation_id,
            broker,
            deadline: now + self.config.request_timeout,
        });
        let topics = vec![self.workload.spec().topic];
        cx.send(
            broker,
            Message::MetadataRequest(MetadataRequest {
                correlation_id,
                topics,
            }),
        );
        self.connections.setup.connecting(broker, now);
    }

    pub(super) fn on_metadata_response(&mut self, cx: &mut Cx, from: NodeId, r: MetadataResponse) {
        let expected = self.metadata.in_flight;
        if expected.is_none_or(|m| m.correlation_id != r.correlation_id || m.broker != from) {
            return;
        }
        self.metadata.in_flight = None;
        let now = cx.now();
        let complete = self.metadata.update(&r) && self.metadata.partition_count().is_some();
        if !complete {
            self.metadata.mark_stale();
        }
        let interval = self.metadata_refresh_interval(cx.rng());
        self.metadata.refreshed(now, interval);
        self.metadata.next_attempt = now + self.metadata_backoff(complete);
    }

    /// How long before asking again: Java (`Metadata.timeToAllowUpdate`) and librdkafka
    /// (`topic.metadata.refresh.fast.interval.ms`, defaulting to `retry.backoff.ms`) wait
    /// `retry.backoff.ms` after any response; sarama refreshes once per retry level, each
    /// retry paced by `Producer.Retry.Backoff`, and waits `Metadata.Retry.Backoff` (250 ms)
    /// after an incomplete answer (`client.tryRefreshMetadata`).
    pub(super) fn metadata_backoff(&self, complete: bool) -> Duration {
        match self.config.client {
            ClientKind::Sarama if !complete => SARAMA_METADATA_RETRY_BACKOFF,
            _ => self.config.retry_backoff,
        }
    }

    /// The periodic refresh interval: `metadata.max.age.ms` (Java, librdkafka
    /// `topic.metadata.refresh.interval.ms`, sarama `Metadata.RefreshFrequency`), or for
    /// kafka-go a fresh uniform draw below `MetadataTTL` (`connPool.discover`).
    pub(super) fn metadata_refresh_interval(&self, rng: &mut rand_chacha::ChaCha8Rng) -> Duration {
        let max_age = self.config.metadata_max_age;
        if self.config.client != ClientKind::KafkaGo || max_age.is_zero() {
            return max_age;
        }
        let nanos = crate::time::duration_nanos(max_age);
        Duration::from_nanos(rand::Rng::gen_range(rng, 0..nanos))
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

    fn live(brokers: &[u32]) -> MetadataResponse {
        MetadataResponse {
            brokers: brokers.iter().map(|b| NodeId(*b)).collect(),
            ..response(0, 1)
        }
    }

    #[test]
    fn a_broker_seen_dead_stays_down_until_listed_again() {
        // Issue 12: a reset broker the metadata dropped is not connected again until listed.
        let mut m = ClientMetadata::new(TopicId(0), vec![NodeId(0), NodeId(1)]);
        m.update(&live(&[0, 1]));
        m.connection_failed(NodeId(1), true, true, Instant::ZERO);
        assert!(
            m.is_up(NodeId(1), Instant::from_millis(1)),
            "may be reconnected"
        );
        m.update(&live(&[0]));
        let late = Instant::ZERO + Duration::from_secs(70);
        assert!(!m.is_up(NodeId(1), late), "seen dead: down past the grace");
        m.update(&live(&[0, 1]));
        assert!(m.is_up(NodeId(1), late), "listed again: restarted");
    }

    #[test]
    fn a_reset_without_a_death_may_be_reconnected_at_once() {
        // A host back from a power loss resets its old connections: the client reconnects
        // after its backoff (Java: 50 ms), not after a grace.
        let mut m = ClientMetadata::new(TopicId(0), vec![NodeId(0), NodeId(1)]);
        m.connection_failed(NodeId(1), true, true, Instant::ZERO);
        m.update(&live(&[0, 1]));
        assert!(m.is_up(NodeId(1), Instant::from_millis(50)));
        // A refusal after the metadata showed it dead does not make it up again.
        m.update(&live(&[0]));
        m.connection_failed(NodeId(1), true, true, Instant::from_millis(100));
        assert!(!m.is_up(NodeId(1), Instant::from_millis(100)));
        m.update(&live(&[0, 1]));
        assert!(m.is_up(NodeId(1), Instant::from_millis(200)));
    }

    #[test]
    fn metadata_requests_avoid_a_reset_broker_until_it_answers() {
        let mut m = ClientMetadata::new(TopicId(0), vec![NodeId(0), NodeId(1)]);
        m.update(&live(&[0, 1]));
        m.connection_failed(NodeId(1), true, true, Instant::ZERO);
        m.update(&live(&[0]));
        m.update(&live(&[0, 1])); // listed again, perhaps by a broker with a stale view
        let now = Instant::from_millis(5);
        assert!(m.is_up(NodeId(1), now));
        for _ in 0..4 {
            assert_eq!(m.pick_broker(now, |_| true), Some(NodeId(0)));
        }
        // Only a suspect broker is connectable: it is asked rather than nobody.
        assert_eq!(m.pick_broker(now, |b| b == NodeId(1)), Some(NodeId(1)));
        assert_eq!(m.pick_broker(now, |_| false), None);
        m.connection_ready(NodeId(1));
        let picks: Vec<_> = (0..4)
            .filter_map(|_| m.pick_broker(now, |_| true))
            .collect();
        assert!(picks.contains(&NodeId(1)), "{picks:?}");
    }

    #[test]
    fn periodic_refresh_after_max_age() {
        let mut m = ClientMetadata::new(TopicId(0), vec![NodeId(0)]);
        m.update(&response(0, 1));
        m.refreshed(Instant::from_millis(1_000), Duration::from_secs(300));
        assert!(!m.should_request(Instant::from_millis(300_000)));
        assert!(m.should_request(Instant::from_millis(301_000)));
    }

    #[test]
    fn refresh_triggers_differ_per_client() {
        use ErrorCode::*;
        for client in ClientKind::ALL {
            let not_leader = refreshes_on(client, NotLeaderOrFollower);
            assert_eq!(not_leader, client != ClientKind::KafkaGo, "{client}");
        }
        assert!(!refreshes_on(ClientKind::Java, NotEnoughReplicas));
        assert!(refreshes_on(ClientKind::Sarama, NotEnoughReplicas));
        assert!(!refreshes_on(ClientKind::Librdkafka, NotEnoughReplicas));
    }

    #[test]
    fn unknown_topic_keeps_metadata_stale() {
        let mut m = ClientMetadata::new(TopicId(3), vec![NodeId(0)]);
        assert!(!m.update(&response(1, 1)));
        assert!(m.should_request(Instant::ZERO));
    }
}
