//! The controller node: broker liveness (registration, heartbeats, fencing after
//! `broker.session.timeout.ms`), leader election, ISR changes (AlterPartition, KIP-497) with
//! partition epochs, metadata pushed to brokers (LeaderAndIsr doubling as UpdateMetadata),
//! producer-id allocation, topic creation at start, and failover between the controllers of
//! a metadata quorum.
//!
//! Usage: `Controller::new(ControllerConfig { controllers, brokers, topics, broker })`. The
//! controllers are the voters of a KRaft-style metadata quorum ([`quorum`]): the first listed
//! starts active (controller epoch 1) at the cluster's first start; the others are standbys.
//! Every change the active controller makes is appended to the metadata log and reaches
//! brokers (and the requests that caused it are answered) only once a majority of the
//! controllers hold it durably; a standby runs for election, with a higher controller epoch,
//! when no `ControllerSync` arrived from an active controller for a broker session timeout
//! while a majority of brokers still reach it (brokers heartbeat every controller; only the
//! active one answers), and wins only with a majority of votes from controllers whose logs
//! are no more up to date than its own. Brokers follow the highest controller epoch they have
//! seen. With two controllers the majority is both: either one down halts metadata changes
//! until it returns, as in KRaft.
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
//! One controller per epoch, and a new one holds everything the old one published: a
//! candidate runs in an epoch above every epoch it has seen, the epochs the brokers follow
//! included, and an active controller that sees a higher epoch resigns ([`failover`]); a
//! voter grants one vote per epoch, durably, and only to an up-to-date log ([`quorum`]). A
//! controller deposed with changes not yet committed never publishes them. (Before the
//! quorum, a change the active controller published after its last sync reached the standby
//! was unknown to the standby when it took over, and it could give a leader epoch the old one
//! had given to another leader: `replication_sweep` seed 195.)
//!
//! Broker liveness is in [`broker_heartbeat`], partition state (creation, election,
//! AlterPartition, fencing's ISR shrink) in [`replication_control`], leader choice in
//! [`election`], the metadata log, commits and votes in [`quorum`], the durable state in
//! [`state`]; this file routes messages and timers and publishes metadata.

mod broker_heartbeat;
pub mod election;
mod failover;
mod quorum;
#[cfg(test)]
mod quorum_tests;
mod replication_control;
pub mod state;

use crate::broker::config::BrokerConfig;
use crate::history::HistoryEvent;
use crate::node::{Cx, DiskDone, Node, NodeId, NodeTimer, Timer};
use crate::protocol::*;
use crate::record::TopicPartition;
use crate::time::{ms, Instant};
use broker_heartbeat::Liveness;
use quorum::{Candidacy, Committed, Pending, Then};
use state::{ControllerState, LocalMetadataLog, MetadataLog, Vote};
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};

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
    /// A candidacy in this epoch waited its election timeout: run again ([`quorum`]).
    Election(u32),
}

const TIMER_LIVENESS: u16 = 1;
const TIMER_SYNC: u16 = 2;
const TIMER_ELECTION: u16 = 3;

impl From<ControllerTimer> for Timer {
    fn from(t: ControllerTimer) -> Timer {
        match t {
            ControllerTimer::Liveness => Timer::new(TIMER_LIVENESS, 0),
            ControllerTimer::Sync => Timer::new(TIMER_SYNC, 0),
            ControllerTimer::Election(epoch) => Timer::new(TIMER_ELECTION, u64::from(epoch)),
        }
    }
}

impl NodeTimer for ControllerTimer {
    const OWNER: &'static str = "a controller's";

    fn try_decode(t: Timer) -> Option<ControllerTimer> {
        match t.kind {
            TIMER_LIVENESS => Some(ControllerTimer::Liveness),
            TIMER_SYNC => Some(ControllerTimer::Sync),
            TIMER_ELECTION => u32::try_from(t.key).ok().map(ControllerTimer::Election),
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
    /// What brokers may see: the last version a majority of controllers holds ([`quorum`]);
    /// `None` until this controller, active, has committed a version of its own epoch.
    committed: Option<Committed>,
    /// Versions appended but not yet committed, oldest first.
    pending: VecDeque<Pending>,
    /// The highest version each other controller acknowledged as durable in this epoch.
    acked: BTreeMap<NodeId, u64>,
    /// The last vote this controller cast (durable: `quorum-state`).
    voted: Option<Vote>,
    /// A vote written but not yet fsynced: its answer (or its count) waits.
    unflushed_vote: Option<Vote>,
    /// A sync taken but not yet fsynced: (leader, epoch, version), acknowledged once durable.
    unflushed_sync: Option<(NodeId, u32, u64)>,
    candidacy: Option<Candidacy>,
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
            committed: None,
            pending: VecDeque::new(),
            acked: BTreeMap::new(),
            voted: None,
            unflushed_vote: None,
            unflushed_sync: None,
            candidacy: None,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }
    /// The latest state: on the active controller it includes versions not yet committed.
    pub fn state(&self) -> &ControllerState {
        &self.state
    }
    /// The version brokers may see (active controller only).
    pub fn committed_version(&self) -> Option<u64> {
        self.committed.as_ref().map(|c| c.state.version)
    }
    pub fn is_active(&self) -> bool {
        self.role == Role::Active
    }

    /// Become the active controller of `epoch` (won by a majority vote, or the first start)
    /// and publish the whole state to every broker once this epoch's first version commits.
    fn become_active(&mut self, cx: &mut Cx, epoch: u32) {
        assert!(
            epoch > self.state.controller_epoch && epoch >= self.highest_epoch_seen,
            "{}: active at epoch {epoch}, its log at epoch {}, epoch {} seen",
            cx.me(),
            self.state.controller_epoch,
            self.highest_epoch_seen
        );
        self.role = Role::Active;
        self.candidacy = None;
        self.pending.clear();
        self.acked.clear();
        self.committed = None;
        self.state.controller_epoch = epoch;
        self.highest_epoch_seen = epoch;
        self.live.clear();
        for &b in &self.config.brokers {
            self.live.insert(b, Liveness::new(cx.now(), 0));
        }
        if self.state.topics.is_empty() {
            // No controller's log holds topics yet (a winner's log is at least as up to date
            // as a majority's): create the configured ones.
            self.create_topics(cx, self.config.topics.clone());
        }
        let then = self.config.brokers.iter().map(|b| Then::Full(*b)).collect();
        self.append(cx, Vec::new(), false, then);
    }

    fn record_isr(&self, cx: &mut Cx, p: &PartitionState) {
        cx.record(HistoryEvent::IsrChanged {
            partition: p.partition,
            leader_epoch: p.leader_epoch,
            isr: p.isr.clone(),
        });
    }

    /// Append changed partitions; once committed, tell every live broker.
    fn publish(&mut self, cx: &mut Cx, changed: Vec<TopicPartition>, then: Vec<Then>) {
        if changed.is_empty() {
            for t in then {
                if let Then::Reply(to, msg) = t {
                    cx.send(to, msg);
                }
            }
            return;
        }
        self.append(cx, changed, true, then);
    }

    /// Append a change of the live broker set (with the partitions it changed, maybe none);
    /// once committed, tell every live broker: leaders learn who is eligible for ISRs.
    fn publish_to_brokers(&mut self, cx: &mut Cx, changed: Vec<TopicPartition>, then: Vec<Then>) {
        self.append(cx, changed, true, then);
    }

    /// LeaderAndIsr (and metadata) to `broker`: the `changed` partitions, or all of them, as
    /// of the last committed version (nothing before this epoch's first commit).
    fn send_leader_and_isr(
        &mut self,
        cx: &mut Cx,
        broker: NodeId,
        changed: Option<&[TopicPartition]>,
    ) {
        let Some(c) = &self.committed else {
            return;
        };
        let partitions = match changed {
            Some(tps) => tps
                .iter()
                .map(|tp| c.state.partitions[tp].clone())
                .collect(),
            None => c.state.partitions.values().cloned().collect(),
        };
        let broker_epoch = c.broker_epochs.get(&broker).copied().unwrap_or(0);
        cx.send(
            broker,
            Message::LeaderAndIsrRequest(LeaderAndIsrRequest {
                correlation_id: c.state.version,
                controller: cx.me(),
                controller_epoch: c.state.controller_epoch,
                broker_epoch,
                live_brokers: c.live_brokers.clone(),
                topics: c.state.topics.clone(),
                full: changed.is_none(),
                partitions,
            }),
        );
    }

    fn on_init_producer_id(&mut self, cx: &mut Cx, from: NodeId, req: InitProducerIdRequest) {
        let bump = req.producer_id >= 0 && req.producer_epoch < i16::MAX - 1;
        let (id, epoch) = if bump {
            (req.producer_id, req.producer_epoch + 1)
        } else {
            (self.state.next_producer_id, 0)
        };
        let reply = Message::InitProducerIdResponse(InitProducerIdResponse {
            correlation_id: req.correlation_id,
            error: ErrorCode::None,
            producer_id: id,
            producer_epoch: epoch,
        });
        if bump {
            cx.send(from, reply);
        } else {
            // A new id is answered once its allocation commits: a new controller must not
            // hand it out again (KRaft: the ProducerIdsRecord).
            self.state.next_producer_id += 1;
            self.append(cx, Vec::new(), false, vec![Then::Reply(from, reply)]);
        }
    }
}

impl Node for Controller {
    fn on_start(&mut self, cx: &mut Cx) {
        let loaded = self.store.load(cx.disk());
        self.voted = self.store.load_vote(cx.disk());
        let first_boot = loaded.is_none() && self.voted.is_none();
        if let Some(s) = loaded {
            self.state = s;
        } else {
            self.state.next_producer_id = 1000;
        }
        self.highest_epoch_seen = self
            .state
            .controller_epoch
            .max(self.voted.map_or(0, |v| v.epoch));
        self.last_sync_seen = cx.now();
        let primary = self.config.controllers[0] == cx.me();
        if self.config.controllers.len() == 1 {
            // A quorum of one: its own vote is the majority.
            let epoch = self.highest_epoch_seen + 1;
            self.become_active(cx, epoch);
        } else if primary && first_boot {
            self.bootstrap(cx);
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
        // The quorum's own messages, whatever this controller's role.
        let msg = match msg {
            Message::ControllerSync(s) => return self.on_sync(cx, from, s),
            Message::ControllerSyncAck(a) => return self.on_sync_ack(cx, from, a),
            Message::VoteRequest(r) => return self.on_vote_request(cx, from, r),
            Message::VoteResponse(r) => return self.on_vote_response(cx, from, r),
            other => other,
        };
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
                let reply = |error| {
                    Message::CreatePartitionsResponse(CreatePartitionsResponse {
                        correlation_id: r.correlation_id,
                        error,
                    })
                };
                match self.create_partitions(r.topic, r.count) {
                    Ok(changed) => {
                        self.publish(cx, changed, vec![Then::Reply(from, reply(ErrorCode::None))])
                    }
                    Err(error) => cx.send(from, reply(error)),
                }
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
                let reply = Message::CreateTopicsResponse(CreateTopicsResponse {
                    correlation_id: r.correlation_id,
                    error: ErrorCode::None,
                });
                self.publish(cx, changed, vec![Then::Reply(from, reply)]);
            }
            // Ignored, each for a reason:
            // - a LeaderAndIsr refused (STALE_CONTROLLER_EPOCH): the broker follows a newer
            //   controller, whose ControllerSync will make this one a standby;
            // - a connection notice: the controller keeps no request state per connection; a
            //   LeaderAndIsr lost with it is sent again at the broker's next heartbeat
            //   (`on_heartbeat` resends while the broker's acked version is behind).
            Message::LeaderAndIsrResponse(_)
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
            ControllerTimer::Election(epoch) => self.on_election_timeout(cx, epoch),
        }
    }

    fn on_disk(&mut self, cx: &mut Cx, done: DiskDone) {
        self.on_flushed(cx, done);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Whether `msg` is of a kind anything sends to a controller: brokers (registration,
/// heartbeats, AlterPartition, InitProducerId for a transaction coordinator's new id, metadata
/// acknowledgements), the operator's admin client (CreateTopics, CreatePartitions), the other
/// controllers (ControllerSync and its ack, votes), and the host's connection notices. Exhaustive, no
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
        | Message::ControllerSyncAck(_)
        | Message::VoteRequest(_)
        | Message::VoteResponse(_) => true,
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
