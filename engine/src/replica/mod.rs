//! The replica manager (Kafka's `ReplicaManager`): every partition a broker hosts, the
//! produce and fetch paths of a leader with their purgatories, ISR proposals to the
//! controller, the application of LeaderAndIsr, and the replica fetcher ([`fetcher`]) that
//! keeps followers in step. The broker node ([`crate::broker::Broker`]) owns one and routes
//! messages and timers to it; the group coordinator reaches it through [`OffsetsLog`].

pub mod fetcher;
pub mod partition;
pub mod purgatory;

use crate::broker::config::{BreakRule, BrokerConfig};
use crate::broker::timer::ReplicaTimer;
use crate::coordinator::OffsetsLog;
use crate::history::HistoryEvent;
use crate::isr::{self, FollowerProgress};
use crate::log::Log;
use crate::node::{Cx, NodeId};
use crate::protocol::*;
use crate::record::{Record, RecordBatch, TopicPartition};
use crate::time::{ms, Duration, Instant};
use partition::{Partition, PendingIsr, Role};
use purgatory::{DelayedFetch, DelayedProduce, PendingAppend, ProduceOrigin, Purgatory};
use std::collections::BTreeMap;

/// `offsets.commit.timeout.ms` (default 5000): how long a coordinator append may wait.
const OFFSETS_COMMIT_TIMEOUT: Duration = ms(5000);
/// An unanswered AlterPartition is forgotten after this and proposed again if still needed.
const ALTER_PARTITION_RETRY: Duration = ms(5000);

pub struct ReplicaManager {
    pub config: BrokerConfig,
    pub partitions: BTreeMap<TopicPartition, Partition>,
    /// The controller's view of every partition, for MetadataRequest.
    pub metadata: BTreeMap<TopicPartition, PartitionState>,
    pub topics: Vec<(crate::record::TopicId, u32)>,
    pub live_brokers: Vec<NodeId>,
    pub broker_epoch: u64,
    pub controller: Option<NodeId>,
    produces: Purgatory<DelayedProduce>,
    fetches: Purgatory<DelayedFetch>,
    pub(crate) fetcher: fetcher::ReplicaFetcher,
    next_id: u64,
    /// Coordinator append completions, drained by the broker into the coordinator.
    pub coordinator_done: Vec<(u64, ErrorCode)>,
    /// Leadership changes (partition, Some(epoch) | None), drained by the broker.
    pub leadership_changes: Vec<(TopicPartition, Option<u32>)>,
    /// Idempotent-producer state per partition (see [`crate::log::producer_state`]).
    pub producer_states: BTreeMap<TopicPartition, crate::log::producer_state::ProducerStateManager>,
}

impl ReplicaManager {
    pub fn new(config: BrokerConfig) -> ReplicaManager {
        ReplicaManager {
            config,
            partitions: BTreeMap::new(),
            metadata: BTreeMap::new(),
            topics: Vec::new(),
            live_brokers: Vec::new(),
            broker_epoch: 0,
            controller: None,
            produces: Purgatory::default(),
            fetches: Purgatory::default(),
            fetcher: fetcher::ReplicaFetcher::default(),
            next_id: 0,
            coordinator_done: Vec::new(),
            leadership_changes: Vec::new(),
            producer_states: BTreeMap::new(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// What every change to a hosted partition leaves true, checked where it is written
    /// (LeaderAndIsr, an append, a follower's fetch, an ISR answer, a truncation): the HW
    /// within the log; the ISR a set of distinct assigned replicas; a leader named by its
    /// state, in its own ISR (the controller elects from the ISR and never drops a leader
    /// from it without electing another: `PartitionChangeBuilder`), tracking exactly the
    /// other replicas, none of them past its log end; a follower following the leader its
    /// state names; producer state kept for every hosted partition.
    fn check_partition(&self, me: NodeId, tp: TopicPartition) {
        let Some(p) = self.partitions.get(&tp) else {
            return;
        };
        let leo = p.log.log_end_offset();
        assert!(
            p.high_watermark <= leo,
            "{me} {tp}: HW {} past the log end {leo}",
            p.high_watermark
        );
        assert!(
            p.log.log_start_offset() <= p.high_watermark,
            "{me} {tp}: HW {} below the log start {}",
            p.high_watermark,
            p.log.log_start_offset()
        );
        assert!(
            self.producer_states.contains_key(&tp),
            "{me} {tp}: hosted without producer state"
        );
        if let Some(s) = &p.state {
            assert!(
                distinct(&s.replicas),
                "{me} {tp}: replicas {:?} name a broker twice",
                s.replicas
            );
            assert!(
                s.replicas.contains(&me),
                "{me} {tp}: hosted here but assigned to {:?}",
                s.replicas
            );
            assert!(
                distinct(&s.isr),
                "{me} {tp}: ISR {:?} names a broker twice",
                s.isr
            );
            assert!(
                s.isr.iter().all(|r| s.replicas.contains(r)),
                "{me} {tp}: ISR {:?} outside the replicas {:?}",
                s.isr,
                s.replicas
            );
        }
        match &p.role {
            Role::Leader(l) => {
                let s = p.state.as_ref();
                assert!(
                    s.is_some_and(|s| s.leader == Some(me)),
                    "{me} {tp}: leads without a state naming it: {s:?}"
                );
                assert!(
                    s.is_some_and(|s| s.isr.contains(&me)),
                    "{me} {tp}: leads outside its ISR: {s:?}"
                );
                let replicas = s.map_or(0, |s| s.replicas.len());
                assert!(
                    l.followers.len() + 1 == replicas && !l.followers.contains_key(&me),
                    "{me} {tp}: tracks {} followers of {replicas} replicas",
                    l.followers.len()
                );
                assert!(
                    l.followers
                        .keys()
                        .all(|r| s.is_some_and(|s| s.replicas.contains(r))),
                    "{me} {tp}: follower {:?} not a replica",
                    l.followers.keys().collect::<Vec<_>>()
                );
                assert!(
                    l.epoch_start_offset <= leo,
                    "{me} {tp}: the leadership starts at {} past the log end {leo}",
                    l.epoch_start_offset
                );
                assert!(
                    l.followers.values().all(|f| f.log_end_offset <= leo),
                    "{me} {tp}: a follower is past the leader's log end {leo}"
                );
                if let Some(pending) = &l.pending_isr {
                    assert!(
                        distinct(&pending.isr) && pending.isr.contains(&me),
                        "{me} {tp}: proposed ISR {:?} repeats a broker or drops the leader",
                        pending.isr
                    );
                    assert!(
                        pending
                            .isr
                            .iter()
                            .all(|r| s.is_some_and(|s| s.replicas.contains(r))),
                        "{me} {tp}: proposed ISR {:?} outside the replicas",
                        pending.isr
                    );
                }
            }
            Role::Follower { leader, .. } => {
                assert_ne!(*leader, me, "{me} {tp}: follows itself");
                assert!(
                    p.state.as_ref().is_some_and(|s| s.leader == Some(*leader)),
                    "{me} {tp}: follows {leader}, not the leader of its state {:?}",
                    p.state
                );
            }
            Role::Idle => {}
        }
    }

    /// A coordinator loads its partition from the log start, without gaps: a missed record
    /// would be a lost commit or group generation.
    fn assert_whole_log(&self, partition: TopicPartition, batches: &[RecordBatch]) {
        let start = self
            .partitions
            .get(&partition)
            .map_or(0, |p| p.log.log_start_offset());
        assert!(
            batches.first().is_none_or(|b| b.base_offset == start)
                && batches
                    .windows(2)
                    .all(|w| w[0].next_offset() == w[1].base_offset),
            "{partition}: a coordinator load does not read the whole log"
        );
    }

    /// Host a recovered log (at start).
    pub fn add_recovered(&mut self, log: Log, high_watermark: u64) {
        let tp = log.topic_partition();
        assert!(
            !self.partitions.contains_key(&tp),
            "{tp}: recovered twice at one start"
        );
        let ps = crate::log::producer_state::ProducerStateManager::rebuild(log.batches().iter());
        self.producer_states.insert(tp, ps);
        self.partitions
            .insert(tp, Partition::new(log, high_watermark));
    }

    // ---------------------------------------------------------------- LeaderAndIsr

    /// Apply the controller's partition states: newer leader epochs change the role, newer
    /// partition epochs of the same leadership change the ISR; older states are ignored.
    pub fn apply_partition_states(&mut self, cx: &mut Cx, states: Vec<PartitionState>) {
        for s in states {
            let newer_meta = self.metadata.get(&s.partition).is_none_or(|m| {
                (s.leader_epoch, s.partition_epoch) > (m.leader_epoch, m.partition_epoch)
            });
            if !newer_meta {
                continue;
            }
            self.metadata.insert(s.partition, s.clone());
            if s.replicas.contains(&cx.me()) {
                let (tp, epoch) = (s.partition, s.leader_epoch);
                self.apply_local(cx, s);
                // Leader epochs only grow: whatever path it took, the partition now knows at
                // least the epoch it was told.
                assert!(
                    self.partitions[&tp].leader_epoch() >= Some(epoch),
                    "{} {tp}: told epoch {epoch}, holds {:?}",
                    cx.me(),
                    self.partitions[&tp].leader_epoch()
                );
                self.check_partition(cx.me(), tp);
            }
        }
    }

    fn apply_local(&mut self, cx: &mut Cx, s: PartitionState) {
        let tp = s.partition;
        let me = cx.me();
        assert!(
            s.replicas.contains(&me),
            "{me} {tp}: applying the state of a partition it does not host"
        );
        let config = self.config.clone();
        let p = self
            .partitions
            .entry(tp)
            .or_insert_with(|| Partition::new(Log::new(tp), 0));
        self.producer_states.entry(tp).or_default();
        let was_leader = p.is_leader();
        let leader_moved = p.state.as_ref().is_some_and(|l| l.leader != s.leader);
        let same_epoch_move = leader_moved && config.breaks(BreakRule::ReuseLeaderEpoch);
        match p.leader_epoch() {
            Some(e) if s.leader_epoch < e => return,
            Some(e) if s.leader_epoch == e && !same_epoch_move => {
                let local = p.state.as_mut().expect("checked");
                // A new leader always comes with a new leader epoch (`PartitionChangeBuilder`
                // bumps it); only the ReuseLeaderEpoch break moves one within an epoch.
                assert_eq!(
                    local.leader, s.leader,
                    "{me} {tp}: the leader changed within epoch {e}"
                );
                if s.partition_epoch > local.partition_epoch {
                    local.isr = s.isr;
                    local.partition_epoch = s.partition_epoch;
                    if let Role::Leader(l) = &mut p.role {
                        l.pending_isr = None;
                    }
                    self.on_isr_or_hw_change(cx, tp);
                }
                return;
            }
            _ => {}
        }
        assert!(
            p.leader_epoch().is_none_or(|e| e <= s.leader_epoch),
            "{me} {tp}: a role change back to epoch {}",
            s.leader_epoch
        );
        if s.leader == Some(me) {
            p.make_leader(cx, s.clone(), &config);
            // Followers do not track producer state; a new leader rebuilds it from its log.
            self.rebuild_producer_state(tp);
            self.leadership_changes.push((tp, Some(s.leader_epoch)));
            self.on_isr_or_hw_change(cx, tp);
        } else {
            p.make_follower(cx, s, &config);
            if was_leader {
                self.leadership_changes.push((tp, None));
            }
            self.rebuild_producer_state(tp);
            self.fail_delayed(cx, tp);
            self.fetcher_kick(cx);
            assert!(
                !self.partitions[&tp].is_leader(),
                "{me} {tp}: still leads after following"
            );
        }
    }

    /// The controller's live (unfenced) brokers. A follower whose broker was fenced starts
    /// over: it is not eligible for the ISR (KIP-841), and when its broker registers again,
    /// nothing it fetched before the crash (its LEO, when it was last caught up) may count
    /// for the HW until it has caught up anew.
    pub fn set_live_brokers(&mut self, now: Instant, live: Vec<NodeId>) {
        for p in self.partitions.values_mut() {
            if let Role::Leader(l) = &mut p.role {
                for (r, progress) in l.followers.iter_mut() {
                    if !live.contains(r) {
                        *progress = FollowerProgress::at_leadership_start(false, now);
                    }
                }
            }
        }
        assert!(distinct(&live), "live brokers {live:?} named twice");
        self.live_brokers = live;
    }

    fn rebuild_producer_state(&mut self, tp: TopicPartition) {
        if let (Some(p), Some(ps)) = (self.partitions.get(&tp), self.producer_states.get_mut(&tp)) {
            *ps = crate::log::producer_state::ProducerStateManager::rebuild(p.log.batches().iter());
            let leo = p.log.log_end_offset();
            assert!(
                ps.transactions().ongoing().all(|(_, first)| first < leo),
                "{tp}: an open transaction starts past the log end {leo}"
            );
        }
    }

    /// A partition stopped being led here: answer everything waiting on it.
    fn fail_delayed(&mut self, cx: &mut Cx, tp: TopicPartition) {
        self.try_complete_produces(cx, tp);
        for id in self.fetches.watching(tp) {
            self.complete_fetch(cx, id);
        }
        // Nothing may wait on a partition this broker no longer leads: no answer would come.
        // (A produce of several partitions may still wait for the others.)
        assert!(
            self.fetches.watching(tp).is_empty(),
            "{} {tp}: a fetch outlived the leadership",
            cx.me()
        );
        assert!(
            self.produces.watching(tp).iter().all(|id| {
                self.produces
                    .get(*id)
                    .is_some_and(|op| op.pending.iter().all(|pa| pa.partition != tp))
            }),
            "{} {tp}: a produce still waits on it after the leadership",
            cx.me()
        );
    }

    // ---------------------------------------------------------------- produce

    /// ProduceRequest from a client.
    pub fn handle_produce(&mut self, cx: &mut Cx, from: NodeId, req: ProduceRequest) {
        self.handle_produce_refusing(cx, from, req, &[]);
    }

    /// Whether `batch` for `tp` needs KIP-890 verification before this leader appends it: a
    /// transactional batch of a producer with no transaction open on the partition
    /// (`UnifiedLog.maybeStartTransactionVerification`).
    pub fn needs_verification(&self, tp: TopicPartition, batch: &RecordBatch) -> bool {
        let leads = self.partitions.get(&tp).is_some_and(|p| p.is_leader());
        leads
            && batch.is_transactional
            && batch.control.is_none()
            && batch.producer_id >= 0
            && self.producer_states.get(&tp).is_none_or(|ps| {
                ps.transactions()
                    .ongoing_first_offset(batch.producer_id)
                    .is_none()
            })
    }

    /// A ProduceRequest whose `refused` partitions are answered with their error, unappended
    /// (a failed transaction verification); the others are appended as usual.
    pub fn handle_produce_refusing(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: ProduceRequest,
        refused: &[(TopicPartition, ErrorCode)],
    ) {
        let origin = ProduceOrigin::Client {
            node: from,
            correlation_id: req.correlation_id,
        };
        let mut done: Vec<PartitionProduceResponse> = refused
            .iter()
            .map(|(tp, error)| PartitionProduceResponse {
                partition: *tp,
                error: *error,
                base_offset: 0,
                log_start_offset: 0,
            })
            .collect();
        let mut pending = Vec::new();
        let mut appended = Vec::new();
        // One batch per partition, as Kafka's ProduceRequest keys its data by partition.
        assert!(
            req.batches
                .iter()
                .enumerate()
                .all(|(i, (tp, _))| req.batches[..i].iter().all(|(o, _)| o != tp)),
            "{}: a produce from {from} names a partition twice",
            cx.me()
        );
        let mut to_answer = refused.len();
        for (tp, batch) in req.batches {
            if refused.iter().any(|(r, _)| *r == tp) {
                continue;
            }
            to_answer += 1;
            match self.append_to_leader(cx, tp, batch, req.acks, true) {
                Ok(p) => {
                    appended.push(tp);
                    pending.extend(p);
                }
                Err(resp) => done.push(resp),
            }
        }
        // Waiting fetches are completed once the whole request is appended (Kafka 0.8
        // unblocked them after `appendToLocalLog`; today's broker runs them from its action
        // queue after the request), so a follower's answer carries every partition of it.
        for tp in appended {
            self.wake_fetches(cx, tp);
        }
        if req.acks == Acks::None {
            return;
        }
        // Every partition of the request is answered once: now, or when its append settles.
        assert_eq!(
            pending.len() + done.len(),
            to_answer,
            "{}: a produce from {from} lost a partition",
            cx.me()
        );
        self.delay_produce(cx, origin, pending, done, req.timeout);
    }

    /// Answer a produce now if every partition is settled, else park it until the HW (or
    /// fsync) lets it complete or its timeout fires.
    fn delay_produce(
        &mut self,
        cx: &mut Cx,
        origin: ProduceOrigin,
        pending: Vec<PendingAppend>,
        done: Vec<PartitionProduceResponse>,
        timeout: Duration,
    ) {
        let mut op = DelayedProduce {
            origin,
            pending,
            done,
            timer: None,
        };
        settle_appends(&self.partitions, &self.config, &mut op);
        if op.pending.is_empty() {
            self.respond_produce(cx, op);
            return;
        }
        let id = self.next_id();
        op.timer = Some(cx.set_timer_after(timeout, ReplicaTimer::ProduceTimeout(id)));
        let tps: Vec<TopicPartition> = op.pending.iter().map(|p| p.partition).collect();
        assert!(
            self.produces.get(id).is_none(),
            "{}: delayed produce id {id} reused",
            cx.me()
        );
        self.produces.insert(id, op, tps);
    }

    /// Validate and append one batch as leader. `Ok(Some)` = wait for it; `Err` = answered.
    fn append_to_leader(
        &mut self,
        cx: &mut Cx,
        tp: TopicPartition,
        batch: RecordBatch,
        acks: Acks,
        from_client: bool,
    ) -> Result<Option<PendingAppend>, PartitionProduceResponse> {
        let fail = |error| PartitionProduceResponse {
            partition: tp,
            error,
            base_offset: 0,
            log_start_offset: 0,
        };
        let Some(p) = self.partitions.get_mut(&tp).filter(|p| p.is_leader()) else {
            return Err(fail(ErrorCode::NotLeaderOrFollower));
        };
        let min_isr = self.config.effective_min_isr(p.replication_factor());
        let isr_len = p.state.as_ref().map_or(0, |s| s.isr.len());
        if acks == Acks::All && isr_len < min_isr {
            return Err(fail(ErrorCode::NotEnoughReplicas));
        }
        // ---- idempotence hook: the producer state decides duplicates and sequence errors.
        let epoch = p.leader_epoch().expect("leader has a state");
        let ps = self.producer_states.entry(tp).or_default();
        // A coordinator's batch (`AppendOrigin.COORDINATOR`: markers, transactional offset
        // commits) skips the sequence checks; callers fence its epoch themselves.
        if from_client && batch.producer_id >= 0 {
            match ps.check(&batch) {
                Err(e) => return Err(fail(e)),
                Ok(Some(original_base)) => {
                    // A retried batch already in the log may not be committed yet (its first
                    // attempt is still waiting, or timed out). Kafka answers the duplicate
                    // through the same delayed produce as a fresh append, with the original
                    // batch's offsets (`UnifiedLog.append` returns them; `ReplicaManager`
                    // waits for the HW to pass its last offset): never before the ISR has it.
                    let end = original_base + batch.record_count();
                    let pending = PendingAppend {
                        partition: tp,
                        base_offset: original_base,
                        required_offset: if acks == Acks::All { end } else { 0 },
                        end_offset: end,
                        leader_epoch: epoch,
                    };
                    return Ok((acks != Acks::None).then_some(pending));
                }
                Ok(None) => {}
            }
        }
        let leo_before = p.log.log_end_offset();
        let stored = p
            .log
            .append_as_leader(cx, batch, epoch, self.config.flush_policy());
        assert!(
            stored.base_offset == leo_before && stored.partition_leader_epoch == epoch,
            "{} {tp}: stored at {} in epoch {} instead of at {leo_before} in {epoch}",
            cx.me(),
            stored.base_offset,
            stored.partition_leader_epoch
        );
        if stored.producer_id >= 0 {
            ps.on_append(&stored);
        }
        cx.record(HistoryEvent::Appended {
            broker: cx.me(),
            partition: tp,
            leader_epoch: epoch,
            base_offset: stored.base_offset,
            next_offset: stored.next_offset(),
            leader: true,
        });
        let pending = PendingAppend {
            partition: tp,
            base_offset: stored.base_offset,
            required_offset: if acks == Acks::All {
                stored.next_offset()
            } else {
                0
            },
            end_offset: stored.next_offset(),
            leader_epoch: epoch,
        };
        self.on_isr_or_hw_change(cx, tp);
        assert!(
            self.partitions[&tp].high_watermark <= stored.next_offset(),
            "{} {tp}: the HW passed the batch just appended",
            cx.me()
        );
        Ok((acks != Acks::None).then_some(pending))
    }

    /// Append a transaction marker for `producer_id` as the transaction coordinator asks
    /// (`WriteTxnMarkers`; Kafka's `ReplicaManager.appendRecords` with `AppendOrigin.COORDINATOR`
    /// and acks=all): fenced if the partition knows a newer epoch of the producer. The outcome
    /// comes back through [`Self::coordinator_done`] with `token` once the ISR has the marker.
    pub fn append_txn_marker(
        &mut self,
        cx: &mut Cx,
        tp: TopicPartition,
        producer_id: i64,
        producer_epoch: i16,
        marker: crate::record::ControlMarker,
        token: u64,
    ) -> Result<(), ErrorCode> {
        if !self.partitions.get(&tp).is_some_and(|p| p.is_leader()) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let ps = self.producer_states.entry(tp).or_default();
        ps.check_marker(producer_id, producer_epoch)?;
        let batch = RecordBatch::control_marker(producer_id, producer_epoch, marker);
        self.append_for_coordinator(cx, tp, batch, token)?;
        // The marker closed the producer's transaction on this partition.
        assert!(
            self.producer_states[&tp]
                .transactions()
                .ongoing_first_offset(producer_id)
                .is_none(),
            "{} {tp}: producer {producer_id}'s transaction open after its marker",
            cx.me()
        );
        Ok(())
    }

    /// A coordinator's acks=all append (offsets, group metadata, transaction state or a
    /// marker): appended on the leader, answered through [`Self::coordinator_done`] with
    /// `token` once the ISR has it or `OFFSETS_COMMIT_TIMEOUT` runs out.
    fn append_for_coordinator(
        &mut self,
        cx: &mut Cx,
        tp: TopicPartition,
        batch: RecordBatch,
        token: u64,
    ) -> Result<(), ErrorCode> {
        match self.append_to_leader(cx, tp, batch, Acks::All, false) {
            Err(r) => {
                assert_ne!(
                    r.error,
                    ErrorCode::None,
                    "a refused append without an error"
                );
                Err(r.error)
            }
            Ok(pending) => {
                assert!(
                    pending.is_some(),
                    "an acks=all append that waits for nothing"
                );
                self.wake_fetches(cx, tp);
                let origin = ProduceOrigin::Coordinator { token };
                self.delay_produce(
                    cx,
                    origin,
                    pending.into_iter().collect(),
                    Vec::new(),
                    OFFSETS_COMMIT_TIMEOUT,
                );
                Ok(())
            }
        }
    }

    /// New data in `tp`: answer the fetches waiting for it that can now be satisfied.
    fn wake_fetches(&mut self, cx: &mut Cx, tp: TopicPartition) {
        for id in self.fetches.watching(tp) {
            self.try_complete_fetch(cx, id);
        }
    }

    /// Recompute the HW of `tp` and complete what it unblocks.
    pub(crate) fn on_isr_or_hw_change(&mut self, cx: &mut Cx, tp: TopicPartition) {
        let config = self.config.clone();
        let live = &self.live_brokers;
        let moved = self
            .partitions
            .get_mut(&tp)
            .is_some_and(|p| p.maybe_increment_hw(cx, &config, live));
        if moved {
            if let (Some(p), Some(ps)) =
                (self.partitions.get(&tp), self.producer_states.get_mut(&tp))
            {
                ps.on_high_watermark(p.high_watermark);
            }
            for id in self.fetches.watching(tp) {
                if self
                    .fetches
                    .get_mut(id)
                    .is_some_and(|f| f.request.replica_id.is_none())
                {
                    self.try_complete_fetch(cx, id);
                }
            }
        }
        self.try_complete_produces(cx, tp);
        self.check_partition(cx.me(), tp);
    }

    pub(crate) fn try_complete_produces(&mut self, cx: &mut Cx, tp: TopicPartition) {
        for id in self.produces.watching(tp) {
            self.try_complete_produce(cx, id);
        }
    }

    fn try_complete_produce(&mut self, cx: &mut Cx, id: u64) {
        let Some(op) = self.produces.get_mut(id) else {
            return;
        };
        settle_appends(&self.partitions, &self.config, op);
        if op.pending.is_empty() {
            let op = self.produces.remove(id).expect("present");
            assert!(
                op.timer.is_some(),
                "a parked produce {id} without its timeout"
            );
            if let Some(timer) = op.timer {
                cx.cancel_timer(timer);
            }
            self.respond_produce(cx, op);
        }
    }

    /// One of the replica manager's timers is due.
    pub fn on_timer(&mut self, cx: &mut Cx, timer: ReplicaTimer) {
        match timer {
            ReplicaTimer::ProduceTimeout(id) => self.on_produce_timeout(cx, id),
            ReplicaTimer::FetchWait(id) => self.on_fetch_wait(cx, id),
            ReplicaTimer::FetcherTimeout { .. } | ReplicaTimer::FetcherBackoff { .. } => {
                self.on_fetcher_timer(cx, timer)
            }
        }
    }

    /// The produce timeout fired: answer RequestTimedOut for what is still pending.
    pub fn on_produce_timeout(&mut self, cx: &mut Cx, id: u64) {
        let Some(mut op) = self.produces.remove(id) else {
            return;
        };
        assert!(
            !op.pending.is_empty(),
            "{}: produce {id} timed out with nothing pending (it should have been answered)",
            cx.me()
        );
        for pa in std::mem::take(&mut op.pending) {
            op.done.push(PartitionProduceResponse {
                partition: pa.partition,
                error: ErrorCode::RequestTimedOut,
                base_offset: 0,
                log_start_offset: 0,
            });
        }
        self.respond_produce(cx, op);
    }

    fn respond_produce(&mut self, cx: &mut Cx, op: DelayedProduce) {
        assert!(
            op.pending.is_empty(),
            "{}: a produce answered with {} appends unsettled",
            cx.me(),
            op.pending.len()
        );
        match op.origin {
            ProduceOrigin::Client {
                node,
                correlation_id,
            } => cx.send(
                node,
                Message::ProduceResponse(ProduceResponse {
                    correlation_id,
                    partitions: op.done,
                }),
            ),
            ProduceOrigin::Coordinator { token } => {
                // A coordinator appends to one partition at a time.
                assert_eq!(
                    op.done.len(),
                    1,
                    "{}: coordinator append {token} answered for {} partitions",
                    cx.me(),
                    op.done.len()
                );
                let error = op.done.first().map_or(ErrorCode::None, |r| r.error);
                self.coordinator_done.push((token, error));
            }
        }
    }

    // ---------------------------------------------------------------- fetch (leader side)

    /// FetchRequest from a follower or a consumer.
    pub fn handle_fetch(&mut self, cx: &mut Cx, from: NodeId, req: FetchRequest) {
        // A follower fetches for itself, and never from itself (it does not follow itself).
        assert!(
            req.replica_id.is_none_or(|r| r == from && r != cx.me()),
            "{}: a follower fetch of {:?} from {from}",
            cx.me(),
            req.replica_id
        );
        if let Some(replica) = req.replica_id {
            for fp in &req.partitions {
                self.update_follower(cx, replica, fp);
            }
        }
        let (resp, bytes, any_error) = self.read_fetch(&req);
        if bytes >= req.min_bytes as u64 || any_error || req.max_wait.is_zero() {
            cx.send(from, Message::FetchResponse(resp));
            return;
        }
        let id = self.next_id();
        let timer = cx.set_timer_after(req.max_wait, ReplicaTimer::FetchWait(id));
        let tps: Vec<TopicPartition> = req.partitions.iter().map(|p| p.partition).collect();
        self.fetches.insert(
            id,
            DelayedFetch {
                from,
                request: req,
                timer,
            },
            tps,
        );
    }

    /// Record a follower's fetch offset (its LEO) and act on it: ISR expansion, HW advance.
    fn update_follower(&mut self, cx: &mut Cx, replica: NodeId, fp: &FetchPartition) {
        let tp = fp.partition;
        let now = cx.now();
        let Some(p) = self.partitions.get_mut(&tp) else {
            return;
        };
        let epoch = p.leader_epoch();
        let leo = p.log.log_end_offset();
        let hw = p.high_watermark;
        let Role::Leader(l) = &mut p.role else {
            return;
        };
        if fp.current_leader_epoch != epoch || fp.fetch_offset > leo {
            return;
        }
        let Some(progress) = l.followers.get_mut(&replica) else {
            return;
        };
        progress.on_fetch(fp.fetch_offset, leo, now);
        assert!(
            progress.log_end_offset <= leo,
            "{} {tp}: follower {replica} at {} past the leader's end {leo}",
            cx.me(),
            progress.log_end_offset
        );
        let rejoin = isr::can_rejoin(progress, hw, l.epoch_start_offset);
        let in_isr = p.in_maximal_isr(replica);
        // KIP-841 (`Partition.isReplicaIsrEligible`): a follower on a fenced broker (one the
        // controller does not list as live: restarted and not yet caught up with the
        // metadata, or out of its session) is not proposed for the ISR.
        let eligible = self.live_brokers.is_empty() || self.live_brokers.contains(&replica);
        if !in_isr && rejoin && eligible {
            let mut new_isr = p.state.as_ref().expect("leader state").isr.clone();
            assert!(
                !new_isr.contains(&replica),
                "{} {tp}: {replica} rejoins an ISR it is in",
                cx.me()
            );
            new_isr.push(replica);
            self.propose_isr(cx, tp, new_isr);
        }
        self.on_isr_or_hw_change(cx, tp);
    }

    /// Build a fetch response from current state: (response, bytes, any partition errored).
    fn read_fetch(&self, req: &FetchRequest) -> (FetchResponse, u64, bool) {
        let mut bytes = 0u64;
        let mut any_error = false;
        let mut parts = Vec::new();
        for fp in &req.partitions {
            let r = self.read_partition(req, fp);
            any_error |= r.error != ErrorCode::None;
            bytes += r.batches.iter().map(|b| b.wire_size() as u64).sum::<u64>();
            parts.push(r);
        }
        assert_eq!(
            parts.len(),
            req.partitions.len(),
            "a fetch answered for other partitions than it asked"
        );
        let resp = FetchResponse {
            correlation_id: req.correlation_id,
            partitions: parts,
        };
        (resp, bytes, any_error)
    }

    fn read_partition(&self, req: &FetchRequest, fp: &FetchPartition) -> FetchPartitionResponse {
        let mut r = FetchPartitionResponse {
            partition: fp.partition,
            error: ErrorCode::None,
            high_watermark: 0,
            last_stable_offset: 0,
            log_start_offset: 0,
            leader_epoch: 0,
            diverging_epoch: None,
            aborted_transactions: Vec::new(),
            batches: Vec::new(),
        };
        let Some(p) = self.partitions.get(&fp.partition).filter(|p| p.is_leader()) else {
            r.error = ErrorCode::NotLeaderOrFollower;
            return r;
        };
        let epoch = p.leader_epoch().expect("leader");
        r.leader_epoch = epoch;
        r.high_watermark = p.high_watermark;
        assert!(
            p.high_watermark <= p.log.log_end_offset(),
            "{}: a fetch answered with a HW past the log",
            fp.partition
        );
        let txns = self
            .producer_states
            .get(&fp.partition)
            .map(|ps| ps.transactions());
        let lso = txns.map_or(p.high_watermark, |t| t.last_stable_offset(p.high_watermark));
        r.last_stable_offset = lso;
        r.log_start_offset = p.log.log_start_offset();
        match fp.current_leader_epoch {
            Some(e) if e < epoch => r.error = ErrorCode::FencedLeaderEpoch,
            Some(e) if e > epoch => r.error = ErrorCode::UnknownLeaderEpoch,
            _ => {}
        }
        if r.error != ErrorCode::None {
            return r;
        }
        let leo = p.log.log_end_offset();
        if fp.fetch_offset > leo || fp.fetch_offset < p.log.log_start_offset() {
            r.error = ErrorCode::OffsetOutOfRange;
            if req.replica_id.is_some() {
                let latest = p.log.latest_epoch().unwrap_or(epoch);
                r.diverging_epoch = Some(EpochEndOffset {
                    epoch: latest,
                    end_offset: leo,
                });
            }
            return r;
        }
        // `UnifiedLog.read` with `FetchIsolation`: followers read to the LEO, read_uncommitted
        // consumers to the HW, read_committed consumers to the LSO, with the aborted
        // transactions overlapping what they got (`UnifiedLog.addAbortedTransactions`: from
        // the fetch offset to the end of the fetched data).
        let committed =
            req.replica_id.is_none() && req.isolation_level == IsolationLevel::ReadCommitted;
        let max_offset = if req.replica_id.is_some() {
            leo
        } else if committed {
            lso
        } else {
            p.high_watermark
        };
        let max_bytes = fp.partition_max_bytes.min(req.max_bytes);
        r.batches = p.log.read(fp.fetch_offset, max_bytes, max_offset);
        // A consumer never reads past what is committed for its isolation level, and the
        // first batch holds the fetch offset (a gap would skip records).
        assert!(
            lso <= p.high_watermark
                && r.batches
                    .last()
                    .is_none_or(|b| b.next_offset() <= max_offset)
                && r.batches.first().is_none_or(|b| {
                    b.base_offset <= fp.fetch_offset && fp.fetch_offset < b.next_offset()
                }),
            "{}: a read from {} below {max_offset} returned the wrong batches",
            fp.partition,
            fp.fetch_offset
        );
        if committed {
            let upper = r
                .batches
                .last()
                .map_or(fp.fetch_offset, |b| b.next_offset());
            r.aborted_transactions =
                txns.map_or(Vec::new(), |t| t.collect_aborted(fp.fetch_offset, upper));
        }
        r
    }

    /// `DelayedFetch.tryComplete`: a parked fetch is answered once the bytes it may read (up to
    /// the LEO for a follower, up to the high watermark for a consumer) reach its `min_bytes`,
    /// or when a partition of it errs (leadership moved, offset out of range). An append that
    /// the HW has not yet passed gives a consumer nothing to read, so its fetch stays parked
    /// until the followers move the HW (`Partition.maybeIncrementLeaderHW` ->
    /// `tryCompleteDelayedRequests`) or its `max_wait` runs out.
    fn try_complete_fetch(&mut self, cx: &mut Cx, id: u64) {
        let Some(f) = self.fetches.get(id) else {
            return;
        };
        let (_, bytes, any_error) = self.read_fetch(&f.request);
        if bytes >= f.request.min_bytes as u64 || any_error {
            self.complete_fetch(cx, id);
        }
    }

    fn complete_fetch(&mut self, cx: &mut Cx, id: u64) {
        let Some(f) = self.fetches.remove(id) else {
            return;
        };
        cx.cancel_timer(f.timer);
        let (resp, _, _) = self.read_fetch(&f.request);
        cx.send(f.from, Message::FetchResponse(resp));
    }

    /// The max wait of a parked fetch elapsed.
    pub fn on_fetch_wait(&mut self, cx: &mut Cx, id: u64) {
        if let Some(f) = self.fetches.remove(id) {
            let (resp, _, _) = self.read_fetch(&f.request);
            cx.send(f.from, Message::FetchResponse(resp));
        }
    }

    /// ListOffsets: earliest = log start; latest = HW, or the LSO for a read_committed
    /// consumer (`UnifiedLog.fetchOffsetByTimestamp` / `ReplicaManager.fetchOffset` with
    /// `isolationLevel`).
    pub fn handle_list_offsets(&mut self, cx: &mut Cx, from: NodeId, req: ListOffsetsRequest) {
        let committed = req.isolation_level == IsolationLevel::ReadCommitted;
        let partitions = req
            .partitions
            .iter()
            .map(
                |(tp, spec)| match self.partitions.get(tp).filter(|p| p.is_leader()) {
                    None => (*tp, ErrorCode::NotLeaderOrFollower, 0),
                    Some(p) => {
                        let o = match spec {
                            OffsetSpec::Earliest => p.log.log_start_offset(),
                            OffsetSpec::Latest if committed => {
                                self.producer_states.get(tp).map_or(p.high_watermark, |ps| {
                                    ps.transactions().last_stable_offset(p.high_watermark)
                                })
                            }
                            OffsetSpec::Latest => p.high_watermark,
                        };
                        assert!(
                            o <= p.high_watermark,
                            "{tp}: ListOffsets answers {o} above the HW {}",
                            p.high_watermark
                        );
                        assert!(
                            o >= p.log.log_start_offset(),
                            "{tp}: ListOffsets answers {o} below the log start"
                        );
                        (*tp, ErrorCode::None, o)
                    }
                },
            )
            .collect();
        cx.send(
            from,
            Message::ListOffsetsResponse(ListOffsetsResponse {
                correlation_id: req.correlation_id,
                partitions,
            }),
        );
    }

    /// OffsetsForLeaderEpoch, answered by a leader from its epoch cache (KIP-101/KIP-279).
    pub fn handle_offsets_for_leader_epoch(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: OffsetsForLeaderEpochRequest,
    ) {
        let partitions = req
            .partitions
            .iter()
            .map(|&(tp, current, asked)| {
                let undefined = EpochEndOffset {
                    epoch: crate::log::epoch_cache::UNDEFINED_EPOCH,
                    end_offset: 0,
                };
                let Some(p) = self.partitions.get(&tp).filter(|p| p.is_leader()) else {
                    return (tp, ErrorCode::NotLeaderOrFollower, undefined);
                };
                let epoch = p.leader_epoch().expect("leader");
                if current < epoch {
                    return (tp, ErrorCode::FencedLeaderEpoch, undefined);
                }
                if current > epoch {
                    return (tp, ErrorCode::UnknownLeaderEpoch, undefined);
                }
                let (e, end) = p.log.end_offset_for_epoch(asked);
                assert!(
                    e == crate::log::epoch_cache::UNDEFINED_EPOCH || e <= asked.min(epoch),
                    "{tp}: asked for epoch {asked}, answered {e} (leading {epoch})"
                );
                (
                    tp,
                    ErrorCode::None,
                    EpochEndOffset {
                        epoch: e,
                        end_offset: end,
                    },
                )
            })
            .collect();
        cx.send(
            from,
            Message::OffsetsForLeaderEpochResponse(OffsetsForLeaderEpochResponse {
                correlation_id: req.correlation_id,
                partitions,
            }),
        );
    }

    // ---------------------------------------------------------------- ISR

    /// Shrink the ISR of every led partition by its out-of-sync followers
    /// (`isr-expiration`, every `replica.lag.time.max.ms / 2`).
    pub fn maybe_shrink_isrs(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let lag = self.config.replica_lag_time_max;
        let mut proposals = Vec::new();
        for (tp, p) in self.partitions.iter_mut() {
            let Some(state) = p.state.clone() else {
                continue;
            };
            let Role::Leader(l) = &mut p.role else {
                continue;
            };
            if l.pending_isr
                .as_ref()
                .is_some_and(|x| now.saturating_since(x.sent_at) >= ALTER_PARTITION_RETRY)
            {
                l.pending_isr = None;
            }
            if l.pending_isr.is_some() {
                continue;
            }
            let leo = p.log.log_end_offset();
            let out = isr::out_of_sync(&state.isr, cx.me(), |r| l.followers.get(&r), leo, now, lag);
            if !out.is_empty() {
                let new_isr: Vec<NodeId> = state
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| !out.contains(r))
                    .collect();
                // The leader is never out of sync with itself: a shrink keeps it.
                assert!(
                    new_isr.contains(&cx.me()) && new_isr.len() < state.isr.len(),
                    "{} {tp}: shrink of {:?} to {new_isr:?}",
                    cx.me(),
                    state.isr
                );
                proposals.push((*tp, new_isr));
            }
        }
        for (tp, isr) in proposals {
            self.propose_isr(cx, tp, isr);
        }
    }

    /// Send an AlterPartition for `tp` unless one is in flight.
    fn propose_isr(&mut self, cx: &mut Cx, tp: TopicPartition, new_isr: Vec<NodeId>) {
        let Some(controller) = self.controller else {
            return;
        };
        let correlation_id = self.next_id();
        let broker_epoch = self.broker_epoch;
        let Some(p) = self.partitions.get_mut(&tp) else {
            return;
        };
        let Some(state) = p.state.clone() else { return };
        let Role::Leader(l) = &mut p.role else { return };
        if l.pending_isr.is_some() || new_isr == state.isr {
            return;
        }
        assert!(
            distinct(&new_isr)
                && new_isr.contains(&cx.me())
                && new_isr.iter().all(|r| state.replicas.contains(r)),
            "{} {tp}: proposing ISR {new_isr:?} of replicas {:?}",
            cx.me(),
            state.replicas
        );
        l.pending_isr = Some(PendingIsr {
            isr: new_isr.clone(),
            correlation_id,
            sent_at: cx.now(),
        });
        cx.send(
            controller,
            Message::AlterPartitionRequest(AlterPartitionRequest {
                correlation_id,
                broker: cx.me(),
                broker_epoch,
                partition: tp,
                leader_epoch: state.leader_epoch,
                new_isr,
                partition_epoch: state.partition_epoch,
            }),
        );
    }

    /// The controller's answer to an ISR proposal.
    pub fn handle_alter_partition_response(&mut self, cx: &mut Cx, resp: AlterPartitionResponse) {
        let tp = resp.partition;
        let Some(p) = self.partitions.get_mut(&tp) else {
            return;
        };
        let Role::Leader(l) = &mut p.role else { return };
        if l.pending_isr.as_ref().map(|x| x.correlation_id) != Some(resp.correlation_id) {
            return;
        }
        l.pending_isr = None;
        let state = p.state.as_mut().expect("leader state");
        if resp.error == ErrorCode::None
            && resp.leader_epoch == state.leader_epoch
            && resp.partition_epoch > state.partition_epoch
        {
            state.isr = resp.isr;
            state.partition_epoch = resp.partition_epoch;
        }
        assert!(
            p.leader_state().is_some_and(|l| l.pending_isr.is_none()),
            "{} {tp}: an answered ISR proposal still pending",
            cx.me()
        );
        self.on_isr_or_hw_change(cx, tp);
    }

    /// An fsync of a log completed: acks and follower fetches waiting for it may proceed.
    pub fn on_log_synced(&mut self, cx: &mut Cx, tp: TopicPartition, token: u64) {
        let Some(p) = self.partitions.get_mut(&tp) else {
            return;
        };
        if !p.log.on_fsync_done(token) {
            return;
        }
        if p.is_leader() {
            self.try_complete_produces(cx, tp);
        } else {
            self.fetcher_kick(cx);
        }
    }

    /// `log.flush.interval.ms` check over all logs.
    pub fn flush_by_time(&mut self, cx: &mut Cx) {
        let policy = self.config.flush_policy();
        for p in self.partitions.values_mut() {
            p.log.maybe_flush_by_time(cx, policy);
        }
    }

    /// `(partition, HW)` of every hosted partition, for the checkpoint file.
    pub fn high_watermarks(&self) -> Vec<(TopicPartition, u64)> {
        self.partitions
            .iter()
            .map(|(tp, p)| {
                assert!(
                    p.high_watermark <= p.log.log_end_offset(),
                    "{tp}: checkpointing a HW past the log end"
                );
                (*tp, p.high_watermark)
            })
            .collect()
    }
}

/// Whether `nodes` names every node at most once (replica lists, ISRs).
fn distinct(nodes: &[NodeId]) -> bool {
    nodes
        .iter()
        .enumerate()
        .all(|(i, n)| !nodes[..i].contains(n))
}

/// Move the appends of `op` whose outcome is known into its answers.
fn settle_appends(
    partitions: &BTreeMap<TopicPartition, Partition>,
    config: &BrokerConfig,
    op: &mut DelayedProduce,
) {
    let mut still = Vec::new();
    let before = op.pending.len() + op.done.len();
    for pa in std::mem::take(&mut op.pending) {
        let p = partitions.get(&pa.partition);
        let epoch = p.filter(|p| p.is_leader()).and_then(|p| p.leader_epoch());
        let hw = p.map_or(0, |p| p.high_watermark);
        let synced = p.is_some_and(|p| p.log.is_synced_through(pa.end_offset));
        let isr = p.map_or(0, |p| p.maximal_isr_len());
        let min_isr = p.map_or(config.min_insync_replicas as usize, |p| {
            config.effective_min_isr(p.replication_factor())
        }) as u32;
        match purgatory::check_append(&pa, epoch, hw, synced, isr, min_isr) {
            None => still.push(pa),
            Some(error) => op.done.push(PartitionProduceResponse {
                partition: pa.partition,
                error,
                base_offset: if error == ErrorCode::None {
                    pa.base_offset
                } else {
                    0
                },
                log_start_offset: 0,
            }),
        }
    }
    op.pending = still;
    assert_eq!(
        op.pending.len() + op.done.len(),
        before,
        "settling a produce lost or duplicated a partition"
    );
}

impl OffsetsLog for ReplicaManager {
    /// From the controller's metadata this broker holds (what MetadataRequest answers).
    fn leader_of(&self, partition: TopicPartition) -> Option<NodeId> {
        self.metadata.get(&partition).and_then(|s| s.leader)
    }

    fn leader_epoch(&self, partition: TopicPartition) -> Option<u32> {
        self.partitions
            .get(&partition)
            .filter(|p| p.is_leader())
            .and_then(|p| p.leader_epoch())
    }

    fn append(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        token: u64,
    ) -> Result<(), ErrorCode> {
        assert!(
            !records.is_empty(),
            "{} {partition}: a coordinator append of nothing",
            cx.me()
        );
        let batch = RecordBatch::new(records.into());
        self.append_for_coordinator(cx, partition, batch, token)
    }

    fn append_transactional(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        producer: (i64, i16),
        token: u64,
    ) -> Result<(), ErrorCode> {
        let (producer_id, producer_epoch) = producer;
        if !self
            .partitions
            .get(&partition)
            .is_some_and(|p| p.is_leader())
        {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        // `AppendOrigin.COORDINATOR`: no sequence check, only the epoch fence
        // (`ProducerAppendInfo.checkProducerEpoch`).
        let ps = self.producer_states.entry(partition).or_default();
        ps.check_marker(producer_id, producer_epoch)?;
        let mut batch = RecordBatch::new(records.into());
        batch.producer_id = producer_id;
        batch.producer_epoch = producer_epoch;
        batch.is_transactional = true;
        self.append_for_coordinator(cx, partition, batch, token)?;
        // The transactional batch opened (or extends) the producer's transaction here.
        assert!(
            self.producer_states[&partition]
                .transactions()
                .ongoing_first_offset(producer_id)
                .is_some(),
            "{} {partition}: producer {producer_id}'s offsets appended outside a transaction",
            cx.me()
        );
        Ok(())
    }

    fn committed_batches(&self, partition: TopicPartition) -> Vec<RecordBatch> {
        let batches = self
            .partitions
            .get(&partition)
            .map_or(Vec::new(), |p| p.log.read(0, u32::MAX, p.high_watermark));
        self.assert_whole_log(partition, &batches);
        batches
    }

    fn loadable_batches(&self, partition: TopicPartition) -> Vec<RecordBatch> {
        let batches = self.partitions.get(&partition).map_or(Vec::new(), |p| {
            p.log.read(0, u32::MAX, p.log.log_end_offset())
        });
        self.assert_whole_log(partition, &batches);
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::config::KafkaVersion;
    use crate::log::tests::{batch, with_cx, MemDisk, TP};
    use crate::node::Effect;

    /// The controller's state of `partition` on replicas 0 and 1.
    fn state(
        partition: TopicPartition,
        leader: u32,
        leader_epoch: u32,
        isr: Vec<NodeId>,
        partition_epoch: u32,
    ) -> PartitionState {
        PartitionState {
            partition,
            leader: Some(NodeId(leader)),
            leader_epoch,
            isr,
            partition_epoch,
            replicas: vec![NodeId(0), NodeId(1)],
        }
    }

    fn leader_of_tp(isr: Vec<NodeId>) -> (ReplicaManager, MemDisk) {
        leader_of_tp_with(isr, BrokerConfig::default())
    }

    fn leader_of_tp_with(isr: Vec<NodeId>, config: BrokerConfig) -> (ReplicaManager, MemDisk) {
        let mut rm = ReplicaManager::new(config);
        let mut disk = MemDisk::default();
        let state = state(TP, 0, 1, isr, 1);
        with_cx(&mut disk, |cx| rm.apply_partition_states(cx, vec![state]));
        assert_eq!(rm.leadership_changes, vec![(TP, Some(1))]);
        (rm, disk)
    }

    fn follower_fetch(
        partitions: &[TopicPartition],
        offset: u64,
        max_wait: Duration,
    ) -> FetchRequest {
        FetchRequest {
            correlation_id: 7,
            replica_id: Some(NodeId(1)),
            replica_epoch: 0,
            max_wait,
            min_bytes: 1,
            max_bytes: u32::MAX,
            isolation_level: IsolationLevel::ReadUncommitted,
            partitions: partitions
                .iter()
                .map(|&partition| FetchPartition {
                    partition,
                    fetch_offset: offset,
                    current_leader_epoch: Some(1),
                    last_fetched_epoch: None,
                    log_start_offset: 0,
                    partition_max_bytes: 1 << 20,
                })
                .collect(),
        }
    }

    fn produce_one(rm: &mut ReplicaManager, disk: &mut MemDisk, value: u64) {
        let req = ProduceRequest {
            correlation_id: value,
            acks: Acks::Leader,
            timeout: ms(1000),
            transactional_id: None,
            batches: vec![(TP, batch(&[value]))],
        };
        with_cx(disk, |cx| rm.handle_produce(cx, NodeId(5), req));
    }

    /// The fetch responses among `effects`, as (to, records returned).
    fn fetch_responses(effects: &[Effect]) -> Vec<(NodeId, usize)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send {
                    to,
                    msg: Message::FetchResponse(r),
                } => Some((
                    *to,
                    r.partitions
                        .iter()
                        .flat_map(|p| p.batches.iter())
                        .map(|b| b.records.len())
                        .sum(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The error of every produce answer among `effects`, in order.
    fn produce_errors(effects: &[Effect]) -> Vec<ErrorCode> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send {
                    msg: Message::ProduceResponse(r),
                    ..
                } => Some(r.partitions.iter().map(|p| p.error).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn produce_all(rm: &mut ReplicaManager, disk: &mut MemDisk, value: u64) -> Vec<Effect> {
        let req = ProduceRequest {
            correlation_id: value,
            acks: Acks::All,
            timeout: ms(30_000),
            transactional_id: None,
            batches: vec![(TP, batch(&[value]))],
        };
        with_cx(disk, |cx| rm.handle_produce(cx, NodeId(5), req)).1
    }

    /// `DelayedProduce.tryComplete` fails a waiting acks=all append only when the broker no
    /// longer leads (`Partition.checkEnoughReplicasReachOffset` without a leader log), not
    /// when the leader epoch moves on while it still leads.
    #[test]
    fn a_waiting_append_survives_a_new_epoch_of_the_same_leader() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
        assert!(produce_errors(&produce_all(&mut rm, &mut disk, 1)).is_empty());
        // Re-elected in epoch 3 (the metadata skipped epoch 2): still the leader, same log.
        let (_, relead) = with_cx(&mut disk, |cx| {
            rm.apply_partition_states(cx, vec![state(TP, 0, 3, vec![NodeId(0), NodeId(1)], 3)])
        });
        assert!(
            produce_errors(&relead).is_empty(),
            "a new epoch of the same leader must not answer the append: {relead:?}"
        );
        let mut fetch = follower_fetch(&[TP], 1, ms(0));
        fetch.partitions[0].current_leader_epoch = Some(3);
        let (_, caught_up) = with_cx(&mut disk, |cx| rm.handle_fetch(cx, NodeId(1), fetch));
        assert_eq!(produce_errors(&caught_up), vec![ErrorCode::None]);
    }

    #[test]
    fn a_waiting_append_fails_when_the_broker_becomes_a_follower() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
        assert!(produce_errors(&produce_all(&mut rm, &mut disk, 1)).is_empty());
        let (_, demoted) = with_cx(&mut disk, |cx| {
            rm.apply_partition_states(cx, vec![state(TP, 1, 2, vec![NodeId(0), NodeId(1)], 2)])
        });
        assert_eq!(
            produce_errors(&demoted),
            vec![ErrorCode::NotLeaderOrFollower]
        );
    }

    #[test]
    fn a_consumer_fetch_waits_for_the_hw_not_for_the_append() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
        let consumer = NodeId(9);
        let mut fetch = follower_fetch(&[TP], 0, ms(500));
        fetch.replica_id = None;
        let (_, parked) = with_cx(&mut disk, |cx| rm.handle_fetch(cx, consumer, fetch));
        assert!(
            fetch_responses(&parked).is_empty(),
            "nothing to read: parked"
        );
        // The leader appends; the follower has not fetched it, so the HW stays at 0.
        let (_, appended) = with_cx(&mut disk, |cx| {
            let req = ProduceRequest {
                correlation_id: 1,
                acks: Acks::All,
                timeout: ms(1000),
                transactional_id: None,
                batches: vec![(TP, batch(&[1]))],
            };
            rm.handle_produce(cx, NodeId(5), req)
        });
        assert_eq!(rm.partitions[&TP].high_watermark, 0);
        assert!(
            fetch_responses(&appended).is_empty(),
            "an append below nothing the consumer may read must not answer its fetch"
        );
        // The follower fetches from offset 1: the HW moves and the consumer gets the record.
        let (_, moved) = with_cx(&mut disk, |cx| {
            rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(500)))
        });
        assert_eq!(rm.partitions[&TP].high_watermark, 1);
        assert!(
            fetch_responses(&moved).contains(&(consumer, 1)),
            "the HW passing the record answers the parked consumer fetch: {moved:?}"
        );
    }

    #[test]
    fn a_fenced_follower_back_from_a_crash_does_not_hold_the_hw_with_its_old_progress() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
        let hw = |rm: &ReplicaManager| rm.partitions[&TP].high_watermark;
        produce_one(&mut rm, &mut disk, 1);
        with_cx(&mut disk, |cx| {
            rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
        });
        assert_eq!(hw(&rm), 1, "follower 1 caught up");
        // Broker 1 dies; the controller fences it and drops it from the ISR.
        let shrunk = state(TP, 0, 1, vec![NodeId(0)], 2);
        with_cx(&mut disk, |cx| {
            rm.set_live_brokers(cx.now(), vec![NodeId(0)]);
            rm.apply_partition_states(cx, vec![shrunk]);
        });
        produce_one(&mut rm, &mut disk, 2);
        assert_eq!(hw(&rm), 2, "a fenced follower does not count");
        // It restarts and registers; before it has caught up, the HW moves without it.
        with_cx(&mut disk, |cx| {
            rm.set_live_brokers(cx.now(), vec![NodeId(0), NodeId(1)])
        });
        produce_one(&mut rm, &mut disk, 3);
        assert_eq!(
            hw(&rm),
            3,
            "its progress from before the crash is forgotten"
        );
        with_cx(&mut disk, |cx| {
            rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
        });
        produce_one(&mut rm, &mut disk, 4);
        assert_eq!(
            hw(&rm),
            4,
            "fetching from its old end is not being caught up"
        );
    }

    fn config(version: KafkaVersion, min_insync_replicas: u32) -> BrokerConfig {
        BrokerConfig {
            version,
            min_insync_replicas,
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn since_3_7_the_hw_stays_while_the_isr_is_under_min_insync() {
        // RF 2, min.insync.replicas 2, the follower already out of the ISR; acks=1 appends.
        let hw = |version| {
            let (mut rm, mut disk) = leader_of_tp_with(vec![NodeId(0)], config(version, 2));
            produce_one(&mut rm, &mut disk, 1);
            rm.partitions[&TP].high_watermark
        };
        assert_eq!(hw(KafkaVersion::V3_7), 0, "KAFKA-15583: under min ISR");
        assert_eq!(
            hw(KafkaVersion::V3_6),
            1,
            "before 3.7 the lone leader moves it"
        );
    }

    #[test]
    fn since_3_7_min_insync_is_capped_by_the_replication_factor() {
        // RF 2 with both in the ISR and min.insync.replicas 3.
        let outcome = |version| {
            let (mut rm, mut disk) =
                leader_of_tp_with(vec![NodeId(0), NodeId(1)], config(version, 3));
            let req = ProduceRequest {
                correlation_id: 1,
                acks: Acks::All,
                timeout: ms(1000),
                transactional_id: None,
                batches: vec![(TP, batch(&[1]))],
            };
            with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), req));
            with_cx(&mut disk, |cx| {
                rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
            });
            rm.partitions[&TP].high_watermark
        };
        assert_eq!(
            outcome(KafkaVersion::V3_7),
            1,
            "effective min ISR is 2: appended"
        );
        assert_eq!(
            outcome(KafkaVersion::V3_6),
            0,
            "NotEnoughReplicas: nothing appended"
        );
    }

    #[test]
    fn a_waiting_fetch_gets_every_partition_of_a_produce_request() {
        let tp2 = TopicPartition::new(TP.topic, 1);
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
        let led = state(tp2, 0, 1, vec![NodeId(0), NodeId(1)], 1);
        with_cx(&mut disk, |cx| rm.apply_partition_states(cx, vec![led]));
        let fetch = follower_fetch(&[TP, tp2], 0, ms(500));
        let (_, parked) = with_cx(&mut disk, |cx| rm.handle_fetch(cx, NodeId(1), fetch));
        assert!(
            !parked
                .iter()
                .any(|e| matches!(e, crate::node::Effect::Send { .. })),
            "no data yet: the fetch waits"
        );
        let produce = ProduceRequest {
            correlation_id: 1,
            acks: Acks::All,
            timeout: ms(1000),
            transactional_id: None,
            batches: vec![(TP, batch(&[1])), (tp2, batch(&[2]))],
        };
        let (_, effects) = with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), produce));
        let answers: Vec<Vec<usize>> = effects
            .iter()
            .filter_map(|e| match e {
                crate::node::Effect::Send {
                    msg: Message::FetchResponse(r),
                    ..
                } => Some(r.partitions.iter().map(|p| p.batches.len()).collect()),
                _ => None,
            })
            .collect();
        assert_eq!(
            answers,
            vec![vec![1, 1]],
            "one answer, after the whole request was appended, with both partitions' data"
        );
    }

    #[test]
    fn offsets_log_append_completes_when_the_isr_has_it() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
        let records = batch(&[1, 2]).records.to_vec();
        with_cx(&mut disk, |cx| rm.append(cx, TP, records, 9))
            .0
            .unwrap();
        assert_eq!(rm.coordinator_done, vec![(9, ErrorCode::None)]);
        assert_eq!(OffsetsLog::leader_epoch(&rm, TP), Some(1));
        assert_eq!(rm.committed_batches(TP).len(), 1);
    }

    #[test]
    fn offsets_log_append_waits_for_followers_and_fails_on_leadership_loss() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
        let records = batch(&[1]).records.to_vec();
        with_cx(&mut disk, |cx| rm.append(cx, TP, records, 4))
            .0
            .unwrap();
        assert!(
            rm.coordinator_done.is_empty(),
            "follower 1 has not fetched yet"
        );
        assert!(rm.committed_batches(TP).is_empty());
        let follower_led = state(TP, 1, 2, vec![NodeId(0), NodeId(1)], 2);
        with_cx(&mut disk, |cx| {
            rm.apply_partition_states(cx, vec![follower_led])
        });
        assert_eq!(
            rm.coordinator_done,
            vec![(4, ErrorCode::NotLeaderOrFollower)]
        );
        let records = batch(&[2]).records.to_vec();
        let err = with_cx(&mut disk, |cx| rm.append(cx, TP, records, 5)).0;
        assert_eq!(err, Err(ErrorCode::NotLeaderOrFollower));
    }

    #[test]
    fn idempotent_retry_is_answered_with_the_original_offset() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
        let mut b = batch(&[1]);
        b.producer_id = 3;
        b.producer_epoch = 0;
        b.base_sequence = 0;
        let produce = |b: RecordBatch| ProduceRequest {
            correlation_id: 1,
            acks: Acks::Leader,
            timeout: ms(1000),
            transactional_id: None,
            batches: vec![(TP, b)],
        };
        let responses = |effects: Vec<crate::node::Effect>| -> Vec<PartitionProduceResponse> {
            effects
                .into_iter()
                .filter_map(|e| match e {
                    crate::node::Effect::Send {
                        msg: Message::ProduceResponse(r),
                        ..
                    } => Some(r.partitions[0].clone()),
                    _ => None,
                })
                .collect()
        };
        let (_, e1) = with_cx(&mut disk, |cx| {
            rm.handle_produce(cx, NodeId(5), produce(b.clone()))
        });
        let (_, e2) = with_cx(&mut disk, |cx| {
            rm.handle_produce(cx, NodeId(5), produce(b.clone()))
        });
        let (r1, r2) = (responses(e1), responses(e2));
        assert_eq!(r1[0].error, ErrorCode::None);
        assert_eq!(r2[0].error, ErrorCode::None);
        assert_eq!(r1[0].base_offset, r2[0].base_offset);
        assert_eq!(rm.partitions[&TP].log.log_end_offset(), 1, "stored once");
        b.base_sequence = 5;
        let (_, e3) = with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), produce(b)));
        assert_eq!(responses(e3)[0].error, ErrorCode::OutOfOrderSequenceNumber);
    }

    /// A read_committed consumer's fetch of `TP` from `offset`: (values, LSO, aborted list).
    fn committed_fetch(
        rm: &mut ReplicaManager,
        disk: &mut MemDisk,
        offset: u64,
        isolation: IsolationLevel,
    ) -> (Vec<u64>, u64, Vec<(i64, u64)>) {
        let mut fetch = follower_fetch(&[TP], offset, Duration::ZERO);
        fetch.replica_id = None;
        fetch.isolation_level = isolation;
        let (_, effects) = with_cx(disk, |cx| rm.handle_fetch(cx, NodeId(9), fetch));
        let r = effects
            .into_iter()
            .find_map(|e| match e {
                Effect::Send {
                    msg: Message::FetchResponse(r),
                    ..
                } => Some(r.partitions[0].clone()),
                _ => None,
            })
            .expect("answered at once");
        let values = r
            .batches
            .iter()
            .flat_map(|b| b.records.iter().map(|r| r.value.0))
            .collect();
        (values, r.last_stable_offset, r.aborted_transactions)
    }

    #[test]
    fn read_committed_fetches_stop_at_the_lso_and_carry_the_aborted_index() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
        produce_one(&mut rm, &mut disk, 1); // plain, offset 0
        let mut t = batch(&[2, 3]); // transactional, offsets 1..=2
        t.producer_id = 4;
        t.producer_epoch = 0;
        t.base_sequence = 0;
        t.is_transactional = true;
        let req = ProduceRequest {
            correlation_id: 2,
            acks: Acks::All,
            timeout: ms(1000),
            transactional_id: Some("t".into()),
            batches: vec![(TP, t)],
        };
        with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), req));
        produce_one(&mut rm, &mut disk, 4); // plain, offset 3
        assert_eq!(rm.partitions[&TP].high_watermark, 4);
        let rc = IsolationLevel::ReadCommitted;
        assert_eq!(
            committed_fetch(&mut rm, &mut disk, 0, rc),
            (vec![1], 1, vec![])
        );
        assert_eq!(
            committed_fetch(&mut rm, &mut disk, 0, IsolationLevel::ReadUncommitted).0,
            vec![1, 2, 3, 4],
            "read_uncommitted reads to the HW"
        );
        let abort = crate::record::ControlMarker::Abort;
        assert_eq!(
            with_cx(&mut disk, |cx| rm
                .append_txn_marker(cx, TP, 4, -1, abort, 8))
            .0,
            Err(ErrorCode::InvalidProducerEpoch),
            "a marker of an older epoch is fenced"
        );
        with_cx(&mut disk, |cx| rm.append_txn_marker(cx, TP, 4, 0, abort, 9))
            .0
            .unwrap();
        assert_eq!(rm.coordinator_done, vec![(9, ErrorCode::None)]);
        assert_eq!(
            committed_fetch(&mut rm, &mut disk, 1, rc),
            (vec![2, 3, 4], 5, vec![(4, 1)]),
            "the aborted data is returned with its index entry; the client drops it"
        );
        assert_eq!(
            committed_fetch(&mut rm, &mut disk, 4, rc),
            (vec![], 5, vec![(4, 1)]),
            "the abort marker alone is fetched with its entry"
        );
        assert_eq!(
            committed_fetch(&mut rm, &mut disk, 5, rc),
            (vec![], 5, vec![])
        );
    }

    #[test]
    fn list_offsets_latest_is_the_lso_for_read_committed() {
        let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
        let mut t = batch(&[2]);
        t.producer_id = 4;
        t.producer_epoch = 0;
        t.base_sequence = 0;
        t.is_transactional = true;
        let req = ProduceRequest {
            correlation_id: 2,
            acks: Acks::All,
            timeout: ms(1000),
            transactional_id: Some("t".into()),
            batches: vec![(TP, t)],
        };
        with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), req));
        let latest = |rm: &mut ReplicaManager, disk: &mut MemDisk, isolation_level| {
            let req = ListOffsetsRequest {
                correlation_id: 1,
                isolation_level,
                partitions: vec![(TP, OffsetSpec::Latest)],
            };
            let (_, e) = with_cx(disk, |cx| rm.handle_list_offsets(cx, NodeId(9), req));
            e.into_iter()
                .find_map(|e| match e {
                    Effect::Send {
                        msg: Message::ListOffsetsResponse(r),
                        ..
                    } => Some(r.partitions[0].2),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(latest(&mut rm, &mut disk, IsolationLevel::ReadCommitted), 0);
        assert_eq!(
            latest(&mut rm, &mut disk, IsolationLevel::ReadUncommitted),
            1
        );
    }
}
