//! The broker node: hosts partition replicas ([`crate::replica::ReplicaManager`]), the
//! group coordinator and the transaction coordinator, appends the transaction markers
//! coordinators ask for (WriteTxnMarkers), registers and heartbeats with the active controller, applies
//! LeaderAndIsr, answers Metadata from its cache, checkpoints high watermarks, and recovers
//! from its own disk on restart.
//!
//! Usage: `Broker::new(config, BrokerIdentity { controllers, offsets_topic, transaction_topic })`. `controllers`
//! lists every controller node; the broker registers with all of them until one (the active
//! one) answers, and from then on obeys the highest controller epoch it has seen.
//! Inputs: [`Node`] callbacks. Inspection (invariants, tests): [`Broker::replicas`],
//! [`Broker::partition`].

pub mod config;
pub mod timer;
pub mod verification;
pub mod version;

use crate::coordinator::transaction::{
    TransactionCoordinator, TxnCoordinatorConfig, TXN_TOKEN_BIT,
};
use crate::coordinator::{CoordinatorConfig, CoordinatorPartitions, GroupCoordinator};
use crate::log::{checkpoint, recovery};
use crate::node::{Cx, DiskData, DiskDone, DiskEntry, FileId, Node, NodeId, NodeTimer, Timer};
use crate::partition_map::PartitionMap;
use crate::protocol::*;
use crate::record::{TopicId, TopicPartition};
use crate::replica::partition::Partition;
use crate::replica::ReplicaManager;
use config::BrokerConfig;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use timer::BrokerTimer;

/// Who a broker is in its cluster.
#[derive(Clone, Debug)]
pub struct BrokerIdentity {
    /// Every controller node (the active one answers registration).
    pub controllers: Vec<NodeId>,
    /// The `__consumer_offsets` topic id, for the group coordinator.
    pub offsets_topic: TopicId,
    /// The `__transaction_state` topic id, for the transaction coordinator; None if the
    /// cluster has none (then FindCoordinator of type Transaction finds no coordinator).
    pub transaction_topic: Option<TopicId>,
}

/// Append tokens of marker writes (WriteTxnMarkers) carry this bit.
const MARKER_TOKEN_BIT: u64 = 1 << 61;

/// A WriteTxnMarkers being appended: answered once every partition's marker is in the ISR
/// or failed.
struct MarkerWrite {
    to: NodeId,
    correlation_id: u64,
    producer_id: i64,
    marker: crate::record::ControlMarker,
    results: Vec<(TopicPartition, ErrorCode)>,
    waiting: usize,
}

const META_FILE: FileId = FileId::Named("broker-meta");
/// Forwarded InitProducerId requests a broker keeps track of.
const MAX_FORWARDED: usize = 10_000;

pub struct Broker {
    config: BrokerConfig,
    identity: BrokerIdentity,
    rm: ReplicaManager,
    coordinator: GroupCoordinator,
    txn_coordinator: TransactionCoordinator,
    marker_writes: BTreeMap<u64, MarkerWrite>,
    /// Marker append token -> (marker write, partition).
    marker_tokens: BTreeMap<u64, (u64, TopicPartition)>,
    next_marker_token: u64,
    incarnation: u64,
    registered: bool,
    /// Registered at least once in this incarnation. Until then LeaderAndIsr is ignored: the
    /// controller may still address the previous incarnation, whose leaderships this process
    /// must not take over at their old epochs.
    ever_registered: bool,
    active_controller: Option<NodeId>,
    highest_controller_epoch: u32,
    last_controller_contact: crate::time::Instant,
    metadata_version: u64,
    next_correlation: u64,
    /// Correlation id of the latest registration request.
    registration_correlation: u64,
    forwarded: BTreeMap<u64, (NodeId, u64)>,
    /// Produce requests held for KIP-890 verification (`verification.rs`).
    verifications: verification::Verifications,
}

impl Broker {
    pub fn new(config: BrokerConfig, identity: BrokerIdentity) -> Broker {
        let coordinator = GroupCoordinator::new(CoordinatorConfig {
            offsets_partitions: config.offsets_topic_partitions,
            offsets_topic: identity.offsets_topic,
            initial_rebalance_delay: config.group_initial_rebalance_delay,
        });
        let txn_coordinator = TransactionCoordinator::new(TxnCoordinatorConfig {
            topic: identity.transaction_topic,
            partitions: config.transaction_state_partitions,
            offsets_topic: identity.offsets_topic,
            offsets_partitions: config.offsets_topic_partitions,
            bump_on_end: config.transaction_version >= 2,
            max_timeout: config.transaction_max_timeout,
            abort_check_interval: crate::time::ms(10_000),
            retry_backoff: crate::time::ms(100),
            request_timeout: crate::time::ms(30_000),
        });
        Broker {
            rm: ReplicaManager::new(config.clone()),
            txn_coordinator,
            marker_writes: BTreeMap::new(),
            marker_tokens: BTreeMap::new(),
            next_marker_token: 0,
            config,
            identity,
            coordinator,
            incarnation: 0,
            registered: false,
            ever_registered: false,
            active_controller: None,
            highest_controller_epoch: 0,
            last_controller_contact: crate::time::Instant::ZERO,
            metadata_version: 0,
            next_correlation: 0,
            registration_correlation: 0,
            forwarded: BTreeMap::new(),
            verifications: Default::default(),
        }
    }

    /// Every hosted replica.
    pub fn replicas(&self) -> &PartitionMap<Partition> {
        &self.rm.partitions
    }

    pub fn partition(&self, tp: TopicPartition) -> Option<&Partition> {
        self.rm.partitions.get(&tp)
    }

    /// Changes whenever what this broker leads (partitions, leader epochs, HWs) may have
    /// changed (see [`ReplicaManager::leadership_version`]).
    pub fn leadership_version(&self) -> u64 {
        self.rm.leadership_version()
    }

    /// The controller's latest state of `tp` as this broker knows it.
    pub fn metadata(&self, tp: TopicPartition) -> Option<&PartitionState> {
        self.rm.metadata.get(&tp)
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The transaction coordinator this broker hosts (inspection and tests).
    pub fn transaction_coordinator(&self) -> &TransactionCoordinator {
        &self.txn_coordinator
    }

    /// The last stable offset of a partition this broker leads (what a read_committed
    /// fetch is bounded by).
    pub fn last_stable_offset(&self, tp: TopicPartition) -> Option<u64> {
        let p = self.rm.partitions.get(&tp).filter(|p| p.is_leader())?;
        let hw = p.high_watermark;
        Some(
            self.rm
                .producer_states
                .get(&tp)
                .map_or(hw, |ps| ps.transactions().last_stable_offset(hw)),
        )
    }

    /// Transactions open on `tp` as its leader sees them: (producer id, producer epoch of the
    /// batch that opened it, its first offset), oldest first (stall explanations).
    pub fn open_transactions(&self, tp: TopicPartition) -> Vec<(i64, i16, u64)> {
        let (Some(p), Some(ps)) = (
            self.rm.partitions.get(&tp),
            self.rm.producer_states.get(&tp),
        ) else {
            return Vec::new();
        };
        let mut open: Vec<(i64, i16, u64)> = ps
            .transactions()
            .ongoing()
            .map(|(pid, first)| {
                let batches = p.log.batches();
                let i = batches.partition_point(|b| b.base_offset < first);
                let epoch = batches
                    .get(i)
                    .filter(|b| b.base_offset == first && b.producer_id == pid)
                    .map_or(-1, |b| b.producer_epoch);
                (pid, epoch, first)
            })
            .collect();
        open.sort_by_key(|t| t.2);
        open
    }

    pub fn is_registered(&self) -> bool {
        self.registered
    }

    fn next_correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    fn recover(&mut self, cx: &mut Cx) {
        let mut incarnation = 0;
        for e in cx.disk().read(META_FILE) {
            if let DiskData::Blob(b) = &e.data {
                if let Some(n) = b.downcast_ref::<u64>() {
                    incarnation = *n;
                }
            }
        }
        self.incarnation = incarnation + 1;
        // Correlation ids unique across incarnations: late answers to a previous process of
        // this broker (delivered after a quick restart) match nothing.
        self.next_correlation = self.incarnation << 40;
        self.rm.fetcher.set_correlation_base(self.incarnation << 40);
        // Fetch session ids too: a follower still holding a session of the previous process
        // must find none (FETCH_SESSION_ID_NOT_FOUND), not another follower's.
        self.rm.fetch_sessions.set_id_base(self.incarnation << 40);
        self.txn_coordinator
            .set_correlation_base((self.incarnation << 40) | (1 << 39));
        let blob: Arc<dyn Any + Send + Sync> = Arc::new(self.incarnation);
        cx.disk()
            .overwrite(META_FILE, vec![DiskEntry::new(DiskData::Blob(blob), 8)]);
        cx.disk_fsync(META_FILE, 0);
        let hws = checkpoint::read_high_watermarks(cx.disk());
        for file in cx.disk().files() {
            if let FileId::Log(tp) = file {
                let (log, report) = recovery::load(tp, cx.disk());
                if report.entries_cut > 0 {
                    cx.record(crate::history::HistoryEvent::Truncated {
                        broker: cx.me(),
                        partition: tp,
                        offset: log.log_end_offset(),
                        reason: "recovery",
                    });
                }
                let hw = hws.get(&tp).copied().unwrap_or(0);
                self.rm.add_recovered(log, hw);
            }
        }
    }

    fn register(&mut self, cx: &mut Cx) {
        let correlation_id = self.next_correlation();
        self.registration_correlation = correlation_id;
        let req = BrokerRegistrationRequest {
            correlation_id,
            broker: cx.me(),
            incarnation: self.incarnation,
            controller_epoch: self.highest_controller_epoch,
        };
        for &c in &self.identity.controllers {
            cx.send(c, Message::BrokerRegistrationRequest(req.clone()));
        }
    }

    fn on_heartbeat_timer(&mut self, cx: &mut Cx) {
        let lost = cx.now().saturating_since(self.last_controller_contact)
            >= self.config.broker_session_timeout;
        if self.registered && lost {
            self.registered = false;
        }
        match (self.registered, self.active_controller) {
            (true, Some(_)) => {
                // Every controller hears the heartbeat (only the active one answers): a
                // standby uses it to know it is not cut off before it takes over.
                let correlation_id = self.next_correlation();
                let req = BrokerHeartbeatRequest {
                    correlation_id,
                    broker: cx.me(),
                    broker_epoch: self.rm.broker_epoch,
                    controller_epoch: self.highest_controller_epoch,
                };
                for &c in &self.identity.controllers {
                    cx.send(c, Message::BrokerHeartbeatRequest(req.clone()));
                }
            }
            _ => self.register(cx),
        }
        cx.set_timer_after(
            self.config.broker_heartbeat_interval,
            BrokerTimer::Heartbeat,
        );
    }

    /// Follow the controller with the highest epoch; false if `epoch` is stale.
    fn follow_controller(&mut self, from: NodeId, epoch: u32) -> bool {
        if epoch < self.highest_controller_epoch {
            return false;
        }
        if epoch > self.highest_controller_epoch || self.active_controller.is_none() {
            self.highest_controller_epoch = epoch;
            self.active_controller = Some(from);
            self.rm.controller = Some(from);
        }
        true
    }

    fn on_leader_and_isr(&mut self, cx: &mut Cx, from: NodeId, req: LeaderAndIsrRequest) {
        if !self.ever_registered {
            return;
        }
        if !self.follow_controller(req.controller, req.controller_epoch) {
            cx.send(
                from,
                Message::LeaderAndIsrResponse(LeaderAndIsrResponse {
                    correlation_id: self.metadata_version,
                    error: ErrorCode::StaleControllerEpoch,
                    partitions: Vec::new(),
                }),
            );
            return;
        }
        if req.broker_epoch != 0 && req.broker_epoch < self.rm.broker_epoch {
            // Made for this broker's previous registration (KIP-380: ZooKeeper-mode
            // `KafkaApis.handleLeaderAndIsrRequest` answers STALE_BROKER_EPOCH; a KRaft broker
            // replays the metadata log up to date before it acts on it). A controller that
            // commits through its quorum can deliver such a request after the registration
            // that replaced it. 0: made before this controller knew any registration.
            cx.send(
                from,
                Message::LeaderAndIsrResponse(LeaderAndIsrResponse {
                    correlation_id: self.metadata_version,
                    error: ErrorCode::StaleBrokerEpoch,
                    partitions: Vec::new(),
                }),
            );
            return;
        }
        self.last_controller_contact = cx.now();
        if req.full || req.correlation_id == self.metadata_version + 1 {
            self.metadata_version = req.correlation_id;
        }
        self.rm.set_live_brokers(cx.now(), req.live_brokers);
        self.rm.topics = req.topics;
        self.rm.apply_partition_states(cx, req.partitions);
        cx.send(
            from,
            Message::LeaderAndIsrResponse(LeaderAndIsrResponse {
                correlation_id: self.metadata_version,
                error: ErrorCode::None,
                partitions: Vec::new(),
            }),
        );
    }

    fn on_metadata(&mut self, cx: &mut Cx, from: NodeId, req: MetadataRequest) {
        let wanted = |t: TopicId| req.topics.is_empty() || req.topics.contains(&t);
        let partitions = self
            .rm
            .metadata
            .values()
            .filter(|s| wanted(s.partition.topic))
            .map(|s| PartitionMetadata {
                error: ErrorCode::None,
                state: s.clone(),
            })
            .collect();
        cx.send(
            from,
            Message::MetadataResponse(MetadataResponse {
                correlation_id: req.correlation_id,
                brokers: self.rm.live_brokers.clone(),
                controller: self.active_controller,
                topics: self
                    .rm
                    .topics
                    .iter()
                    .copied()
                    .filter(|(t, _)| wanted(*t))
                    .collect(),
                partitions,
            }),
        );
    }

    /// InitProducerId: forwarded to the active controller, which owns the id blocks.
    fn on_init_producer_id(&mut self, cx: &mut Cx, from: NodeId, mut req: InitProducerIdRequest) {
        let Some(c) = self
            .active_controller
            .filter(|_| self.forwarded.len() < MAX_FORWARDED)
        else {
            cx.send(
                from,
                Message::InitProducerIdResponse(InitProducerIdResponse {
                    correlation_id: req.correlation_id,
                    error: ErrorCode::CoordinatorNotAvailable,
                    producer_id: -1,
                    producer_epoch: -1,
                }),
            );
            return;
        };
        let mine = self.next_correlation();
        self.forwarded.insert(mine, (from, req.correlation_id));
        req.correlation_id = mine;
        cx.send(c, Message::InitProducerIdRequest(req));
    }

    /// WriteTxnMarkers from a transaction coordinator (`KafkaApis.handleWriteTxnMarkersRequest`:
    /// `ReplicaManager.appendRecords` of the control batch with `AppendOrigin.COORDINATOR`
    /// and acks=all per partition): append the marker to each partition this broker leads
    /// and answer once each is in the ISR or failed.
    fn on_write_txn_markers(&mut self, cx: &mut Cx, from: NodeId, req: WriteTxnMarkersRequest) {
        let mut write = MarkerWrite {
            to: from,
            correlation_id: req.correlation_id,
            producer_id: req.producer_id,
            marker: req.marker,
            results: Vec::new(),
            waiting: 0,
        };
        let full = self.marker_writes.len() >= MAX_FORWARDED;
        self.next_marker_token += 1;
        let write_id = self.next_marker_token;
        for tp in &req.partitions {
            if full {
                write.results.push((*tp, ErrorCode::RequestTimedOut));
                continue;
            }
            self.next_marker_token += 1;
            let token = MARKER_TOKEN_BIT | self.next_marker_token;
            let appended = self.rm.append_txn_marker(
                cx,
                *tp,
                req.producer_id,
                req.producer_epoch,
                req.marker,
                token,
            );
            match appended {
                Ok(()) => {
                    write.waiting += 1;
                    self.marker_tokens.insert(token, (write_id, *tp));
                }
                Err(e) => write.results.push((*tp, e)),
            }
        }
        if write.waiting == 0 {
            self.answer_marker_write(cx, write);
        } else {
            self.marker_writes.insert(write_id, write);
        }
    }

    fn on_marker_written(&mut self, cx: &mut Cx, token: u64, result: ErrorCode) {
        let Some((write_id, tp)) = self.marker_tokens.remove(&token) else {
            return;
        };
        let Some(write) = self.marker_writes.get_mut(&write_id) else {
            return;
        };
        write.results.push((tp, result));
        write.waiting -= 1;
        let (producer_id, marker) = (write.producer_id, write.marker);
        if result == ErrorCode::None && tp.topic == self.identity.offsets_topic {
            // `KafkaApis.handleWriteTxnMarkersRequest`: once a marker is in an offsets
            // partition, the group coordinator completes the producer's pending offsets.
            self.coordinator.on_txn_marker(cx, producer_id, tp, marker);
        }
        let Some(write) = self.marker_writes.get_mut(&write_id) else {
            return;
        };
        if write.waiting == 0 {
            let write = self
                .marker_writes
                .remove(&write_id)
                .expect("marker write just seen");
            self.answer_marker_write(cx, write);
        }
    }

    /// Answer a marker write: over the network, or straight to this broker's own
    /// transaction coordinator when it asked.
    fn answer_marker_write(&mut self, cx: &mut Cx, write: MarkerWrite) {
        let resp = WriteTxnMarkersResponse {
            correlation_id: write.correlation_id,
            producer_id: write.producer_id,
            results: write.results,
        };
        if write.to == cx.me() {
            self.txn_coordinator
                .on_write_txn_markers_response(cx, resp, &mut self.rm);
        } else {
            cx.send(write.to, Message::WriteTxnMarkersResponse(resp));
        }
    }

    /// Hand the replica manager's queued events to the coordinators, and the transaction
    /// coordinator's marker writes for this broker's own partitions to the replica manager.
    fn drain_to_coordinator(&mut self, cx: &mut Cx) {
        loop {
            let done = std::mem::take(&mut self.rm.coordinator_done);
            let changes = std::mem::take(&mut self.rm.leadership_changes);
            let local = self.txn_coordinator.take_local_markers();
            if done.is_empty() && changes.is_empty() && local.is_empty() {
                return;
            }
            let me = cx.me();
            for req in local {
                self.on_write_txn_markers(cx, me, req);
            }
            for (tp, epoch) in changes {
                if tp.topic == self.identity.offsets_topic {
                    self.coordinator.on_leadership(cx, tp, epoch, &mut self.rm);
                } else if Some(tp.topic) == self.identity.transaction_topic {
                    self.txn_coordinator
                        .on_leadership(cx, tp, epoch, &mut self.rm);
                }
            }
            for (token, result) in done {
                if token & MARKER_TOKEN_BIT != 0 {
                    self.on_marker_written(cx, token, result);
                } else if token & TXN_TOKEN_BIT != 0 {
                    self.txn_coordinator
                        .on_append_done(cx, token, result, &mut self.rm);
                } else {
                    self.coordinator
                        .on_append_done(cx, token, result, &mut self.rm);
                }
            }
        }
    }

    fn dispatch(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        if TransactionCoordinator::accepts(&msg) {
            let controller = self.active_controller;
            self.txn_coordinator
                .handle(cx, from, msg, controller, &mut self.rm);
            return;
        }
        if self.txn_coordinator.awaits(&msg) {
            match msg {
                Message::InitProducerIdResponse(r) => self
                    .txn_coordinator
                    .on_init_producer_id_response(cx, r, &mut self.rm),
                Message::WriteTxnMarkersResponse(r) => self
                    .txn_coordinator
                    .on_write_txn_markers_response(cx, r, &mut self.rm),
                other => unreachable!("awaits only its own responses: {}", other.kind()),
            }
            return;
        }
        if GroupCoordinator::accepts(&msg) {
            self.coordinator.handle(cx, from, msg, &mut self.rm);
            return;
        }
        match msg {
            // A refused connection lost nothing the broker's client side needs to tell apart.
            Message::ConnectionReset | Message::ConnectionRefused => {
                self.rm.on_connection_reset(cx, from);
                self.txn_coordinator.on_connection_reset(cx, from);
                self.on_verification_connection_reset(cx, from);
            }
            Message::WriteTxnMarkersRequest(r) => self.on_write_txn_markers(cx, from, r),
            Message::ProduceRequest(r) => self.on_produce(cx, from, r),
            Message::AddPartitionsToTxnResponse(r)
                if self.awaits_verification(r.correlation_id) =>
            {
                self.on_verification_response(cx, from, r)
            }
            Message::FetchRequest(r) => self.rm.handle_fetch(cx, from, r),
            Message::FetchResponse(r) => self.rm.handle_fetch_response(cx, from, r),
            Message::ListOffsetsRequest(r) => self.rm.handle_list_offsets(cx, from, r),
            Message::OffsetsForLeaderEpochRequest(r) => {
                self.rm.handle_offsets_for_leader_epoch(cx, from, r)
            }
            Message::OffsetsForLeaderEpochResponse(r) => self.rm.handle_epoch_response(cx, from, r),
            Message::MetadataRequest(r) => self.on_metadata(cx, from, r),
            Message::InitProducerIdRequest(r) => self.on_init_producer_id(cx, from, r),
            Message::InitProducerIdResponse(mut r) => {
                if let Some((client, corr)) = self.forwarded.remove(&r.correlation_id) {
                    r.correlation_id = corr;
                    cx.send(client, Message::InitProducerIdResponse(r));
                }
            }
            Message::BrokerRegistrationResponse(r)
                if r.error == ErrorCode::None
                    && r.correlation_id == self.registration_correlation
                    && self.follow_controller(from, r.controller_epoch) =>
            {
                self.registered = true;
                self.ever_registered = true;
                self.rm.broker_epoch = r.broker_epoch;
                self.active_controller = Some(from);
                self.rm.controller = Some(from);
                self.last_controller_contact = cx.now();
            }
            Message::BrokerHeartbeatResponse(r)
                if Some(from) == self.active_controller
                    && r.controller_epoch >= self.highest_controller_epoch =>
            {
                self.last_controller_contact = cx.now();
                if r.fenced {
                    self.registered = false;
                    self.register(cx);
                }
            }
            Message::LeaderAndIsrRequest(r) => self.on_leader_and_isr(cx, from, r),
            Message::AlterPartitionResponse(r) => self.rm.handle_alter_partition_response(cx, r),
            // Late answers to requests this broker no longer tracks (a verification that timed
            // out, markers of a coordinator that moved on, a registration or heartbeat of a
            // controller superseded or refused): dropped, as Kafka's NetworkClient drops a
            // response whose request is gone.
            Message::AddPartitionsToTxnResponse(_)
            | Message::WriteTxnMarkersResponse(_)
            | Message::BrokerRegistrationResponse(_)
            | Message::BrokerHeartbeatResponse(_) => {}
            other => unreachable!("{}: {} is never sent to a broker", cx.me(), other.kind()),
        }
    }
}

impl Node for Broker {
    fn on_start(&mut self, cx: &mut Cx) {
        self.recover(cx);
        self.last_controller_contact = cx.now();
        self.register(cx);
        cx.set_timer_after(
            self.config.broker_heartbeat_interval,
            BrokerTimer::Heartbeat,
        );
        cx.set_timer_after(
            self.config.hw_checkpoint_interval,
            BrokerTimer::HwCheckpoint,
        );
        cx.set_timer_after(
            self.config.replica_lag_time_max / 2,
            BrokerTimer::IsrExpiration,
        );
        if let Some(interval) = self.config.flush_interval {
            cx.set_timer_after(interval, BrokerTimer::Flush);
        }
    }

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        self.dispatch(cx, from, msg);
        self.drain_to_coordinator(cx);
    }

    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match BrokerTimer::decode(timer) {
            BrokerTimer::Transaction(t) => self.txn_coordinator.on_timer(cx, t, &mut self.rm),
            BrokerTimer::Group(t) => self.coordinator.on_timer(cx, t, &mut self.rm),
            BrokerTimer::Replica(t) => self.rm.on_timer(cx, t),
            BrokerTimer::VerifyTimeout(correlation_id) => {
                self.on_verification_timeout(cx, correlation_id)
            }
            BrokerTimer::Heartbeat => self.on_heartbeat_timer(cx),
            BrokerTimer::HwCheckpoint => {
                checkpoint::write_high_watermarks(cx, self.rm.high_watermarks());
                cx.set_timer_after(self.config.hw_checkpoint_interval, timer);
            }
            BrokerTimer::IsrExpiration => {
                self.rm.maybe_shrink_isrs(cx);
                cx.set_timer_after(self.config.replica_lag_time_max / 2, timer);
            }
            BrokerTimer::Flush => {
                self.rm.flush_by_time(cx);
                if let Some(interval) = self.config.flush_interval {
                    cx.set_timer_after(interval, timer);
                }
            }
        }
        self.drain_to_coordinator(cx);
    }

    fn on_disk(&mut self, cx: &mut Cx, done: DiskDone) {
        if let FileId::Log(tp) = done.file {
            self.rm.on_log_synced(cx, tp, done.token);
        }
        self.drain_to_coordinator(cx);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
