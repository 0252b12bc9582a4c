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
//! Known limit (no quorum yet): if only the link between the two controllers breaks, the
//! standby takes over with the state of the last sync, and changes the old active made since
//! are forgotten; brokers obey the higher controller epoch. A Raft quorum would implement
//! [`state::MetadataLog`] and close this.

pub mod election;
pub mod state;

use crate::broker::config::{BreakRule, BrokerConfig};
use crate::history::HistoryEvent;
use crate::node::{Cx, Node, NodeId, Timer};
use crate::protocol::*;
use crate::record::{TopicId, TopicPartition};
use crate::time::{ms, Instant};
use election::Elected;
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
/// [`ControllerTimer::decode`], the one place that knows their numeric kinds (which appear in
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

impl ControllerTimer {
    fn decode(t: Timer) -> ControllerTimer {
        match t.kind {
            TIMER_LIVENESS => ControllerTimer::Liveness,
            TIMER_SYNC => ControllerTimer::Sync,
            other => unreachable!("timer kind {other} is not a controller's"),
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

/// What the active controller knows about a registered broker (not replicated: a new active
/// controller starts with everyone live for one session timeout, as KRaft does).
#[derive(Clone, Copy, Debug)]
struct Liveness {
    last_heartbeat: Instant,
    /// 0 until the broker registers with this controller.
    broker_epoch: u64,
    fenced: bool,
    acked_version: u64,
    /// Registered but fenced until it acknowledges this metadata version (KRaft unfences a
    /// new registration once the broker has caught up with the metadata log).
    catching_up_to: Option<u64>,
}

impl Liveness {
    fn new(now: Instant, broker_epoch: u64) -> Liveness {
        Liveness {
            last_heartbeat: now,
            broker_epoch,
            fenced: false,
            acked_version: 0,
            catching_up_to: None,
        }
    }

    /// KRaft's `BrokerHeartbeatManager.hasValidSession`: live and heard within the session.
    fn has_valid_session(&self, now: Instant, session: crate::time::Duration) -> bool {
        !self.fenced && now.saturating_since(self.last_heartbeat) < session
    }
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
    /// When each broker was last heard from (heartbeats go to every controller): a standby
    /// only takes over while a majority of brokers can reach it, so a standby cut off from
    /// the cluster does not seize control with stale state.
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

    fn is_live(&self, n: NodeId) -> bool {
        self.live.get(&n).is_some_and(|l| !l.fenced)
    }

    fn become_active(&mut self, cx: &mut Cx, first_boot: bool) {
        self.role = Role::Active;
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

    fn create_topics(&mut self, cx: &mut Cx, topics: Vec<NewTopic>) {
        for t in topics {
            if self.state.topics.iter().any(|(id, _)| *id == t.topic) {
                continue;
            }
            let placement = state::assign_replicas(
                &self.config.brokers,
                t.topic,
                t.partitions,
                t.replication_factor,
            );
            for (p, replicas) in placement.into_iter().enumerate() {
                let tp = TopicPartition::new(t.topic, p as u32);
                let ps = PartitionState {
                    partition: tp,
                    leader: Some(replicas[0]),
                    leader_epoch: 0,
                    isr: replicas.clone(),
                    partition_epoch: 0,
                    replicas,
                };
                self.record_isr(cx, &ps);
                self.state.partitions.insert(tp, ps);
            }
            self.state.topics.push((t.topic, t.partitions));
        }
    }

    /// CreatePartitions: grow `topic` to `count` partitions (KRaft
    /// `ReplicationControlManager.createPartitions`). A count equal to or below the current one
    /// is refused with INVALID_PARTITIONS ("Topic already has N partition(s)"); the new
    /// partitions get the topic's replication factor, placed over the unfenced brokers (the
    /// replica placer only sees usable brokers: too few is INVALID_REPLICATION_FACTOR), an
    /// ISR of the active replicas and the first of them as leader
    /// (`buildPartitionRegistration`). The change is published like any other: brokers create
    /// the logs, and clients learn of the partitions only from their next metadata response.
    fn create_partitions(&mut self, cx: &mut Cx, topic: TopicId, count: u32) -> ErrorCode {
        let Some(slot) = self.state.topics.iter().position(|(t, _)| *t == topic) else {
            return ErrorCode::UnknownTopicOrPartition;
        };
        let current = self.state.topics[slot].1;
        if count <= current {
            return ErrorCode::InvalidPartitions;
        }
        let rf = self
            .state
            .partitions
            .get(&TopicPartition::new(topic, 0))
            .map_or(1, |p| p.replicas.len() as u32);
        let usable: Vec<NodeId> = self
            .config
            .brokers
            .iter()
            .copied()
            .filter(|b| self.is_live(*b))
            .collect();
        if (usable.len() as u32) < rf {
            return ErrorCode::InvalidReplicationFactor;
        }
        // The placer continues the topic's striping from the first new partition id.
        let placement = state::assign_replicas(&usable, topic, count, rf);
        let mut changed = Vec::new();
        for (p, replicas) in placement.into_iter().enumerate().skip(current as usize) {
            let tp = TopicPartition::new(topic, p as u32);
            let ps = PartitionState {
                partition: tp,
                leader: Some(replicas[0]),
                leader_epoch: 0,
                isr: replicas.clone(),
                partition_epoch: 0,
                replicas,
            };
            self.state.partitions.insert(tp, ps);
            changed.push(tp);
        }
        self.state.topics[slot].1 = count;
        self.publish(cx, changed);
        ErrorCode::None
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

    /// Elect new leaders where `pred` says the leader must change or the partition is offline.
    fn elect_where(
        &mut self,
        cx: &mut Cx,
        must_move: &dyn Fn(&PartitionState) -> bool,
    ) -> Vec<TopicPartition> {
        let unclean = self.config.broker.unclean_leader_election;
        let out_of_isr = self.config.broker.breaks(BreakRule::ElectOutOfIsr);
        let bump = !self.config.broker.breaks(BreakRule::ReuseLeaderEpoch);
        let live: BTreeMap<NodeId, bool> = self.live.iter().map(|(b, l)| (*b, !l.fenced)).collect();
        let is_live = |n: NodeId| live.get(&n).copied().unwrap_or(false);
        let mut changed = Vec::new();
        for (tp, p) in self.state.partitions.iter_mut() {
            let offline = p.leader.is_none();
            if !offline && !must_move(p) {
                continue;
            }
            let e = election::elect(p, &is_live, unclean, out_of_isr);
            if offline && e == Elected::None {
                continue;
            }
            election::apply_with(p, e, &is_live, bump);
            changed.push(*tp);
        }
        let _ = cx;
        changed
    }

    fn on_registration(&mut self, cx: &mut Cx, from: NodeId, req: BrokerRegistrationRequest) {
        let prev = self.state.incarnations.get(&from).copied();
        let restarted = prev.is_some_and(|i| i != req.incarnation);
        let session = self.config.broker.broker_session_timeout;
        let old_session_valid = self
            .live
            .get(&from)
            .is_some_and(|l| l.has_valid_session(cx.now(), session));
        if restarted && old_session_valid {
            // `ClusterControlManager.registerBroker`: "Another broker is registered with that
            // broker id." The new process retries until the old session has expired.
            cx.send(
                from,
                Message::BrokerRegistrationResponse(BrokerRegistrationResponse {
                    correlation_id: req.correlation_id,
                    error: ErrorCode::DuplicateBrokerRegistration,
                    broker_epoch: 0,
                    controller_epoch: self.state.controller_epoch,
                }),
            );
            return;
        }
        let mut changed = Vec::new();
        if restarted && !self.live.get(&from).is_some_and(|l| l.fenced) {
            // The old session ran out but the liveness check has not fenced it yet: do now
            // what that check would do, so the old process's leaderships and ISR places go.
            changed = self.fence_partitions(cx, from);
        }
        let epoch = self.next_broker_epoch;
        self.next_broker_epoch += 1;
        self.state.incarnations.insert(from, req.incarnation);
        let mut liveness = Liveness::new(cx.now(), epoch);
        // A new incarnation registers fenced (`RegisterBrokerRecord.fenced`), to be unfenced
        // once it has the metadata as of its registration (`catching_up_to`, set below).
        liveness.fenced = restarted;
        self.live.insert(from, liveness);
        cx.send(
            from,
            Message::BrokerRegistrationResponse(BrokerRegistrationResponse {
                correlation_id: req.correlation_id,
                error: ErrorCode::None,
                broker_epoch: epoch,
                controller_epoch: self.state.controller_epoch,
            }),
        );
        if !restarted {
            changed.extend(self.elect_where(cx, &|_| false));
        }
        changed.sort();
        changed.dedup();
        // Commit the registration (and tell the standby) whether or not partitions changed;
        // the version the broker then gets in full is the one it must acknowledge.
        self.publish_to_brokers(cx, changed);
        if let Some(l) = self.live.get_mut(&from).filter(|l| l.fenced) {
            l.catching_up_to = Some(self.state.version);
        }
        self.send_leader_and_isr(cx, from, None);
    }

    /// A broker acknowledged metadata `version`: unfence it if it was catching up, elect
    /// leaders for partitions it can now lead, and tell everyone it is live.
    fn on_metadata_acked(&mut self, cx: &mut Cx, from: NodeId, version: u64) {
        let Some(l) = self.live.get_mut(&from) else {
            return;
        };
        l.acked_version = l.acked_version.max(version);
        if l.catching_up_to.is_none_or(|v| l.acked_version < v) {
            return;
        }
        l.catching_up_to = None;
        l.fenced = false;
        l.last_heartbeat = cx.now();
        let changed = self.elect_where(cx, &|_| false);
        self.publish_to_brokers(cx, changed);
    }

    fn on_heartbeat(&mut self, cx: &mut Cx, from: NodeId, req: BrokerHeartbeatRequest) {
        let version = self.state.version;
        // A registered broker still catching up is fenced but keeps its registration: it
        // heartbeats on (KRaft answers `isFenced` until it is unfenced) and is not told to
        // register again; `fenced` in the answer means "register again".
        let known = self.live.get_mut(&from).filter(|l| {
            l.broker_epoch == req.broker_epoch && (!l.fenced || l.catching_up_to.is_some())
        });
        let ok = known.is_some();
        let mut resend = false;
        if let Some(l) = known {
            l.last_heartbeat = cx.now();
            resend = l.acked_version < version;
        }
        cx.send(
            from,
            Message::BrokerHeartbeatResponse(BrokerHeartbeatResponse {
                correlation_id: req.correlation_id,
                error: if ok {
                    ErrorCode::None
                } else {
                    ErrorCode::StaleBrokerEpoch
                },
                fenced: !ok,
                controller_epoch: self.state.controller_epoch,
            }),
        );
        if resend {
            self.send_leader_and_isr(cx, from, None);
        }
    }

    fn check_liveness(&mut self, cx: &mut Cx) {
        let timeout = self.config.broker.broker_session_timeout;
        let now = cx.now();
        let expired: Vec<NodeId> = self
            .live
            .iter()
            .filter(|(_, l)| !l.fenced && now.saturating_since(l.last_heartbeat) >= timeout)
            .map(|(b, _)| *b)
            .collect();
        for b in expired {
            self.fence(cx, b);
        }
    }

    /// A broker missed its session: move its leaderships and drop it from every ISR.
    fn fence(&mut self, cx: &mut Cx, b: NodeId) {
        // A change of the live set even if no partition changed: leaders must stop counting
        // it as eligible for their ISRs.
        let changed = self.fence_partitions(cx, b);
        self.publish_to_brokers(cx, changed);
    }

    /// Mark `b` fenced, move its leaderships and drop it from every ISR it is not the last
    /// member of (`ReplicationControlManager.handleBrokerFenced`); the changed partitions.
    fn fence_partitions(&mut self, cx: &mut Cx, b: NodeId) -> Vec<TopicPartition> {
        let l = self.live.get_mut(&b).expect("fencing an unknown broker");
        l.fenced = true;
        l.catching_up_to = None;
        let mut changed = self.elect_where(cx, &|p| p.leader == Some(b));
        for (tp, p) in self.state.partitions.iter_mut() {
            if p.leader.is_some() && p.leader != Some(b) && p.isr.contains(&b) {
                p.isr.retain(|r| *r != b);
                p.partition_epoch += 1;
                changed.push(*tp);
            }
        }
        changed.sort();
        changed.dedup();
        changed
    }

    fn on_alter_partition(&mut self, cx: &mut Cx, from: NodeId, req: AlterPartitionRequest) {
        let error = self.validate_alter(from, &req);
        if error == ErrorCode::None {
            let p = self
                .state
                .partitions
                .get_mut(&req.partition)
                .expect("validated");
            p.isr = req.new_isr.clone();
            p.partition_epoch += 1;
            self.publish(cx, vec![req.partition]);
        }
        let p = self.state.partitions.get(&req.partition);
        cx.send(
            from,
            Message::AlterPartitionResponse(AlterPartitionResponse {
                correlation_id: req.correlation_id,
                error,
                partition: req.partition,
                leader_epoch: p.map_or(0, |p| p.leader_epoch),
                isr: p.map_or(Vec::new(), |p| p.isr.clone()),
                partition_epoch: p.map_or(0, |p| p.partition_epoch),
            }),
        );
    }

    fn validate_alter(&self, from: NodeId, req: &AlterPartitionRequest) -> ErrorCode {
        let Some(p) = self.state.partitions.get(&req.partition) else {
            return ErrorCode::UnknownTopicOrPartition;
        };
        if self.live.get(&from).map(|l| l.broker_epoch) != Some(req.broker_epoch) {
            return ErrorCode::StaleBrokerEpoch;
        }
        if p.leader != Some(from) || req.leader_epoch != p.leader_epoch {
            return ErrorCode::FencedLeaderEpoch;
        }
        if req.partition_epoch != p.partition_epoch {
            return ErrorCode::InvalidUpdateVersion;
        }
        let valid_members = req.new_isr.contains(&from)
            && req
                .new_isr
                .iter()
                .all(|r| p.replicas.contains(r) && (p.isr.contains(r) || self.is_live(*r)));
        if !valid_members {
            return ErrorCode::InvalidRequest;
        }
        ErrorCode::None
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
        self.highest_epoch_seen = self.highest_epoch_seen.max(sync.controller_epoch);
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

    /// Whether more than half of the brokers were heard within a session timeout.
    fn majority_of_brokers_heard(&self, now: Instant) -> bool {
        let session = self.config.broker.broker_session_timeout;
        let heard = self
            .heard
            .values()
            .filter(|t| now.saturating_since(**t) < session)
            .count();
        2 * heard > self.config.brokers.len()
    }

    fn on_sync_timer(&mut self, cx: &mut Cx) {
        match self.role {
            Role::Active => self.send_sync(cx),
            Role::Standby => {
                let silent = cx.now().saturating_since(self.last_sync_seen)
                    >= self.config.broker.broker_session_timeout;
                if silent && self.majority_of_brokers_heard(cx.now()) {
                    self.become_active(cx, false);
                }
            }
        }
        cx.set_timer_after(
            self.config.broker.broker_heartbeat_interval,
            ControllerTimer::Sync,
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
        if let Message::ControllerSync(s) = msg {
            return self.on_sync(cx, from, s);
        }
        if matches!(
            msg,
            Message::BrokerHeartbeatRequest(_) | Message::BrokerRegistrationRequest(_)
        ) {
            self.heard.insert(from, cx.now());
        }
        if self.role != Role::Active {
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
            _ => {}
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
