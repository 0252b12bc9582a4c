//! The controller node: broker liveness (registration, heartbeats, fencing after
//! `broker.session.timeout.ms`), leader election, ISR changes (AlterPartition, KIP-497) with
//! partition epochs, metadata pushed to brokers (LeaderAndIsr doubling as UpdateMetadata),
//! producer-id allocation, topic creation at start, and failover to a standby controller.
//!
//! Usage: `Controller::new(ControllerConfig { controllers, brokers, topics, broker })`. The
//! first listed controller starts active (controller epoch 1); the others are standbys that
//! take over, with a higher controller epoch, when no `ControllerSync` arrived from an active
//! controller for a broker session timeout while a majority of brokers still reach them
//! (brokers heartbeat every controller; only the active one answers). Brokers follow the
//! highest controller epoch they have seen.
//!
//! Liveness follows KRaft (`ClusterControlManager`, `BrokerHeartbeatManager`,
//! `ReplicationControlManager`, 3.3 to 4.0): a broker that misses its session
//! (`broker.session.timeout.ms`) is fenced, loses its leaderships and leaves every ISR
//! (`handleBrokerFenced`; the last ISR member of a partition stays). A restarted broker (a
//! new incarnation) is refused with DuplicateBrokerRegistration while its previous
//! incarnation's session is still valid, and retries; once accepted it starts fenced, and is
//! unfenced only when it has acknowledged the metadata as of its registration (KRaft: caught
//! up with the metadata log). Fenced brokers are neither elected nor admitted to an ISR
//! (KIP-841); a restarted broker's replicas rejoin ISRs through follower catch-up and the
//! leader's AlterPartition. ZooKeeper-mode Kafka refuses a quick restart too: the new process
//! cannot create its ephemeral `/brokers/ids` node while the old ZooKeeper session holds it
//! (`KafkaZkClient.checkedEphemeralCreate`, NODEEXISTS).
//!
//! A standby takes over with a controller epoch above every epoch it has seen, the epochs the
//! brokers follow included, and an active controller that sees a higher epoch resigns
//! ([`failover`]): one controller per epoch, as ZooKeeper's conditional `/controller_epoch`
//! update and KRaft's vote guarantee.
//!
//! Known limit (no quorum yet): a change the active controller published to brokers after
//! its last sync reached the standby is unknown to the standby if it takes over, which it
//! does after a session without syncs even when the old active still serves the brokers
//! (syncs held up by TCP retransmission after a partition) or when the old active's
//! changes made while cut off reach brokers late. The new controller can then give a leader
//! epoch the old one already gave to another leader (`replication_sweep` seed 195). Real
//! Kafka publishes only what its quorum (KRaft) or ZooKeeper has committed. A Raft quorum
//! would implement [`state::MetadataLog`] and close this.
//!
//! Broker liveness is in [`broker_heartbeat`], partition state (creation, election,
//! AlterPartition, fencing's ISR shrink) in [`replication_control`], leader choice in
//! [`election`], the replicated state in [`state`]; this file routes messages and timers and
//! publishes metadata.

mod broker_heartbeat;
pub mod election;
mod failover;
mod replication_control;
pub mod state;

use crate::broker::config::BrokerConfig;
use crate::history::HistoryEvent;
use crate::node::{Cx, Node, NodeId, NodeTimer, Timer};
use crate::protocol::*;
use crate::record::TopicPartition;
use crate::time::{ms, Instant};
use broker_heartbeat::Liveness;
use state::{ControllerState, LocalMetadataLog, MetadataLog};
use std::any::Any;
use std::collections::BTreeMap;

/// Controller configuration; shared properties come from the broker config.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Every controller node, in priority order (the first starts active).
    pub controllers: Vec<NodeId>,
    /// Every broker of the cluster (replica placement).
    pub brokers: Vec<NodeId>,
    /// Topics created at first start, `__consumer_offsets` included.
    pub topics: Vec<NewTopic>,
    pub broker: BrokerConfig,
}

/// Every timer a controller sets: encoded to the kernel's [`Timer`] by `From` and decoded by
/// [`NodeTimer::decode`], the one place that knows their numeric kinds (which appear in
/// traces and never change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ControllerTimer {
    /// Check which brokers' sessions expired (active controller).
    Liveness,
    /// Sync with the other controllers (standby failover).
    Sync,
}

const TIMER_LIVENESS: u16 = 1;
const TIMER_SYNC: u16 = 2;

impl From<ControllerTimer> for Timer {
    fn from(t: ControllerTimer) -> Timer {
        match t {
            ControllerTimer::Liveness => Timer::new(TIMER_LIVENESS, 0),
            ControllerTimer::Sync => Timer::new(TIMER_SYNC, 0),
        }
    }
}

impl NodeTimer for ControllerTimer {
    const OWNER: &'static str = "a controller's";

    fn try_decode(t: Timer) -> Option<ControllerTimer> {
        match t.kind {
            TIMER_LIVENESS => Some(ControllerTimer::Liveness),
            TIMER_SYNC => Some(ControllerTimer::Sync),
            _ => None,
        }
    }
}
/// Liveness checks per second: fencing is at most this late.
const LIVENESS_CHECK_MS: u64 = 250;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Active,
    Standby,
}

pub struct Controller {
    config: ControllerConfig,
    state: ControllerState,
    role: Role,
    store: Box<dyn MetadataLog>,
    live: BTreeMap<NodeId, Liveness>,
    next_broker_epoch: u64,
    last_sync_seen: Instant,
    highest_epoch_seen: u32,
    /// When each broker was last heard from (heartbeats and registrations go to every
    /// controller): a standby only takes over while a majority of brokers can reach it, so a
    /// standby cut off from the cluster does not seize control with stale state.
    heard: BTreeMap<NodeId, Instant>,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        assert!(!config.controllers.is_empty(), "no controllers configured");
        Controller {
            config,
            state: ControllerState::default(),
            role: Role::Standby,
            store: Box::new(LocalMetadataLog),
            live: BTreeMap::new(),
            next_broker_epoch: 1,
            last_sync_seen: Instant::ZERO,
            highest_epoch_seen: 0,
            heard: BTreeMap::new(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }
    pub fn state(&self) -> &ControllerState {
        &self.state
    }
    pub fn is_active(&self) -> bool {
        self.role == Role::Active
    }

    fn become_active(&mut self, cx: &mut Cx, first_boot: bool) {
        self.role = Role::Active;
        // Above every epoch this controller, its peer's syncs and the brokers' heartbeats showed
        // (`failover`: one controller per epoch).
        self.state.controller_epoch = self.highest_epoch_seen.max(self.state.controller_epoch) + 1;
        self.highest_epoch_seen = self.state.controller_epoch;
        self.live.clear();
        for &b in &self.config.brokers {
            self.live.insert(b, Liveness::new(cx.now(), 0));
        }
        if first_boot && self.state.partitions.is_empty() {
            self.create_topics(cx, self.config.topics.clone());
        }
        self.state.version += 1;
        self.store.commit(cx, &self.state);
        self.send_sync(cx);
        for b in self.config.brokers.clone() {
            self.send_leader_and_isr(cx, b, None);
        }
    }

    fn record_isr(&self, cx: &mut Cx, p: &PartitionState) {
        cx.record(HistoryEvent::IsrChanged {
            partition: p.partition,
            leader_epoch: p.leader_epoch,
            isr: p.isr.clone(),
        });
    }

    /// Commit changed partitions, then tell every live broker and the standby.
    fn publish(&mut self, cx: &mut Cx, changed: Vec<TopicPartition>) {
        if !changed.is_empty() {
            self.broadcast(cx, &changed);
        }
    }

    /// Commit a change of the live broker set (with the partitions it changed, maybe none)
    /// and tell every live broker and the standby: leaders learn who is eligible for ISRs.
    fn publish_to_brokers(&mut self, cx: &mut Cx, changed: Vec<TopicPartition>) {
        self.broadcast(cx, &changed);
    }

    /// Commit a new state version, record the ISRs of `changed`, and send the state to the
    /// standby and to every unfenced live broker.
    fn broadcast(&mut self, cx: &mut Cx, changed: &[TopicPartition]) {
        self.state.version += 1;
        self.store.commit(cx, &self.state);
        for tp in changed {
            let p = self.state.partitions[tp].clone();
            self.record_isr(cx, &p);
        }
        self.send_sync(cx);
        let brokers: Vec<NodeId> = self
            .live
            .iter()
            .filter(|(_, l)| !l.fenced)
            .map(|(b, _)| *b)
            .collect();
        for b in brokers {
            self.send_leader_and_isr(cx, b, Some(changed));
        }
    }

    /// LeaderAndIsr (and metadata) to `broker`: the `changed` partitions, or all of them.
    fn send_leader_and_isr(
        &mut self,
        cx: &mut Cx,
        broker: NodeId,
        changed: Option<&[TopicPartition]>,
    ) {
        let partitions = match changed {
            Some(tps) => tps
                .iter()
                .map(|tp| self.state.partitions[tp].clone())
                .collect(),
            None => self.state.partitions.values().cloned().collect(),
        };
        let live_brokers = self
            .live
            .iter()
            .filter(|(_, l)| !l.fenced)
            .map(|(b, _)| *b)
            .collect();
        let broker_epoch = self.live.get(&broker).map_or(0, |l| l.broker_epoch);
        cx.send(
            broker,
            Message::LeaderAndIsrRequest(LeaderAndIsrRequest {
                correlation_id: self.state.version,
                controller: cx.me(),
                controller_epoch: self.state.controller_epoch,
                broker_epoch,
                live_brokers,
                topics: self.state.topics.clone(),
                full: changed.is_none(),
                partitions,
            }),
        );
    }

    fn send_sync(&mut self, cx: &mut Cx) {
        let msg = ControllerSync {
            controller_epoch: self.state.controller_epoch,
            version: self.state.version,
            topics: self.state.topics.clone(),
            partitions: self.state.partitions.values().cloned().collect(),
            next_producer_id: self.state.next_producer_id,
            broker_incarnations: self
                .state
                .incarnations
                .iter()
                .map(|(b, i)| (*b, *i))
                .collect(),
        };
        for &c in &self.config.controllers {
            if c != cx.me() {
                cx.send(c, Message::ControllerSync(msg.clone()));
            }
        }
    }

    fn on_init_producer_id(&mut self, cx: &mut Cx, from: NodeId, req: InitProducerIdRequest) {
        let (id, epoch) = if req.producer_id >= 0 && req.producer_epoch < i16::MAX - 1 {
            (req.producer_id, req.producer_epoch + 1)
        } else {
            let id = self.state.next_producer_id;
            self.state.next_producer_id += 1;
            self.state.version += 1;
            self.store.commit(cx, &self.state);
            self.send_sync(cx);
            (id, 0)
        };
        cx.send(
            from,
            Message::InitProducerIdResponse(InitProducerIdResponse {
                correlation_id: req.correlation_id,
                error: ErrorCode::None,
                producer_id: id,
                producer_epoch: epoch,
            }),
        );
    }

    fn on_sync(&mut self, cx: &mut Cx, from: NodeId, sync: ControllerSync) {
        self.observe_epoch(cx.now(), sync.controller_epoch);
        if sync.controller_epoch < self.highest_epoch_seen {
            // The state of a controller that a newer one replaced (`failover`).
            return;
        }
        let newer = sync.controller_epoch > self.state.controller_epoch
            || (sync.controller_epoch == self.state.controller_epoch && self.role == Role::Standby);
        if !newer {
            return;
        }
        self.role = Role::Standby;
        self.last_sync_seen = cx.now();
        self.state = ControllerState {
            controller_epoch: sync.controller_epoch,
            version: sync.version,
            topics: sync.topics,
            partitions: sync
                .partitions
                .into_iter()
                .map(|p| (p.partition, p))
                .collect(),
            next_producer_id: sync.next_producer_id,
            incarnations: sync.broker_incarnations.into_iter().collect(),
        };
        self.store.commit(cx, &self.state);
        cx.send(
            from,
            Message::ControllerSyncAck(ControllerSyncAck {
                controller_epoch: sync.controller_epoch,
                version: sync.version,
            }),
        );
    }
}

impl Node for Controller {
    fn on_start(&mut self, cx: &mut Cx) {
        let loaded = self.store.load(cx.disk());
        let first_boot = loaded.is_none();
        if let Some(s) = loaded {
            self.highest_epoch_seen = s.controller_epoch;
            self.state = s;
        } else {
            self.state.next_producer_id = 1000;
        }
        self.last_sync_seen = cx.now();
        let primary = self.config.controllers[0] == cx.me();
        if self.config.controllers.len() == 1 || (primary && first_boot) {
            self.become_active(cx, first_boot);
        }
        cx.set_timer_after(ms(LIVENESS_CHECK_MS), ControllerTimer::Liveness);
        cx.set_timer_after(
            self.config.broker.broker_heartbeat_interval,
            ControllerTimer::Sync,
        );
    }

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        assert!(
            sent_to_controllers(&msg),
            "{}: {} is never sent to a controller",
            cx.me(),
            msg.kind()
        );
        if let Message::ControllerSync(s) = msg {
            return self.on_sync(cx, from, s);
        }
        match &msg {
            Message::BrokerHeartbeatRequest(r) => {
                self.on_broker_heard(cx.now(), from, r.controller_epoch)
            }
            Message::BrokerRegistrationRequest(r) => {
                self.on_broker_heard(cx.now(), from, r.controller_epoch)
            }
            _ => {}
        }
        if self.role != Role::Active {
            // Brokers heartbeat every controller; only the active one answers (module doc).
            return;
        }
        match msg {
            Message::BrokerRegistrationRequest(r) => self.on_registration(cx, from, r),
            Message::BrokerHeartbeatRequest(r) => self.on_heartbeat(cx, from, r),
            Message::AlterPartitionRequest(r) => self.on_alter_partition(cx, from, r),
            Message::InitProducerIdRequest(r) => self.on_init_producer_id(cx, from, r),
            Message::LeaderAndIsrResponse(r) if r.error == ErrorCode::None => {
                self.on_metadata_acked(cx, from, r.correlation_id)
            }
            Message::CreatePartitionsRequest(r) => {
                let error = self.create_partitions(cx, r.topic, r.count);
                cx.send(
                    from,
                    Message::CreatePartitionsResponse(CreatePartitionsResponse {
                        correlation_id: r.correlation_id,
                        error,
                    }),
                );
            }
            Message::CreateTopicsRequest(r) => {
                let before: Vec<_> = self.state.partitions.keys().copied().collect();
                self.create_topics(cx, r.topics);
                let changed = self
                    .state
                    .partitions
                    .keys()
                    .filter(|tp| !before.contains(tp))
                    .copied()
                    .collect();
                self.publish(cx, changed);
                cx.send(
                    from,
                    Message::CreateTopicsResponse(CreateTopicsResponse {
                        correlation_id: r.correlation_id,
                        error: ErrorCode::None,
                    }),
                );
            }
            // Ignored, each for a reason:
            // - a LeaderAndIsr refused (STALE_CONTROLLER_EPOCH): the broker follows a newer
            //   controller, whose ControllerSync will make this one a standby;
            // - ControllerSyncAck: the active controller does not wait for its standby (no
            //   quorum; the known limit in the module doc);
            // - a connection notice: the controller keeps no request state per connection; a
            //   LeaderAndIsr lost with it is sent again at the broker's next heartbeat
            //   (`on_heartbeat` resends while the broker's acked version is behind).
            Message::LeaderAndIsrResponse(_)
            | Message::ControllerSyncAck(_)
            | Message::ConnectionReset
            | Message::ConnectionRefused => {}
            other => unreachable!(
                "{}: {} is never sent to a controller",
                cx.me(),
                other.kind()
            ),
        }
    }

    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match ControllerTimer::decode(timer) {
            ControllerTimer::Liveness => {
                if self.role == Role::Active {
                    self.check_liveness(cx);
                }
                cx.set_timer_after(ms(LIVENESS_CHECK_MS), ControllerTimer::Liveness);
            }
            ControllerTimer::Sync => self.on_sync_timer(cx),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Whether `msg` is of a kind anything sends to a controller: brokers (registration,
/// heartbeats, AlterPartition, InitProducerId for a transaction coordinator's new id, metadata
/// acknowledgements), the operator's admin client (CreateTopics, CreatePartitions), the other
/// controller (ControllerSync and its ack), and the host's connection notices. Exhaustive, no
/// wildcard: a new message kind must be placed here on purpose.
fn sent_to_controllers(msg: &Message) -> bool {
    match msg {
        Message::ConnectionReset
        | Message::ConnectionRefused
        | Message::BrokerRegistrationRequest(_)
        | Message::BrokerHeartbeatRequest(_)
        | Message::AlterPartitionRequest(_)
        | Message::InitProducerIdRequest(_)
        | Message::LeaderAndIsrResponse(_)
        | Message::CreateTopicsRequest(_)
        | Message::CreatePartitionsRequest(_)
        | Message::ControllerSync(_)
        | Message::ControllerSyncAck(_) => true,
        Message::MetadataRequest(_)
        | Message::MetadataResponse(_)
        | Message::ProduceRequest(_)
        | Message::ProduceResponse(_)
        | Message::FetchRequest(_)
        | Message::FetchResponse(_)
        | Message::ListOffsetsRequest(_)
        | Message::ListOffsetsResponse(_)
        | Message::OffsetsForLeaderEpochRequest(_)
        | Message::OffsetsForLeaderEpochResponse(_)
        | Message::InitProducerIdResponse(_)
        | Message::AddPartitionsToTxnRequest(_)
        | Message::AddPartitionsToTxnResponse(_)
        | Message::EndTxnRequest(_)
        | Message::EndTxnResponse(_)
        | Message::WriteTxnMarkersRequest(_)
        | Message::WriteTxnMarkersResponse(_)
        | Message::AddOffsetsToTxnRequest(_)
        | Message::AddOffsetsToTxnResponse(_)
        | Message::TxnOffsetCommitRequest(_)
        | Message::TxnOffsetCommitResponse(_)
        | Message::FindCoordinatorRequest(_)
        | Message::FindCoordinatorResponse(_)
        | Message::JoinGroupRequest(_)
        | Message::JoinGroupResponse(_)
        | Message::SyncGroupRequest(_)
        | Message::SyncGroupResponse(_)
        | Message::HeartbeatRequest(_)
        | Message::HeartbeatResponse(_)
        | Message::LeaveGroupRequest(_)
        | Message::LeaveGroupResponse(_)
        | Message::OffsetCommitRequest(_)
        | Message::OffsetCommitResponse(_)
        | Message::OffsetFetchRequest(_)
        | Message::OffsetFetchResponse(_)
        | Message::BrokerRegistrationResponse(_)
        | Message::BrokerHeartbeatResponse(_)
        | Message::LeaderAndIsrRequest(_)
        | Message::AlterPartitionResponse(_)
        | Message::CreateTopicsResponse(_)
        | Message::CreatePartitionsResponse(_)
        | Message::DatabaseRequest(_)
        | Message::DatabaseResponse(_) => false,
    }
}
