//! The replica manager (Kafka's `ReplicaManager`): every partition a broker hosts, the
//! produce and fetch paths of a leader with their purgatories, ISR proposals to the
//! controller, the application of LeaderAndIsr, and the replica fetcher ([`fetcher`]) that
//! keeps followers in step. The broker node ([`crate::broker::Broker`]) owns one and routes
//! messages and timers to it; the group coordinator reaches it through
//! [`crate::coordinator::OffsetsLog`].
//!
//! One module per path, named after Kafka's: [`leader_and_isr`] (roles from the controller),
//! [`produce`] (`appendRecords`, `DelayedProduce`), [`fetch`] (`fetchMessages`,
//! `DelayedFetch`), [`alter_partition`] (ISR shrink and expansion), [`list_offsets`]
//! (ListOffsets, OffsetsForLeaderEpoch), [`partition_writer`] (the coordinators' appends and
//! loads); this file keeps the state, the per-partition invariants and the HW hub.

mod alter_partition;
mod fetch;
pub mod fetch_session;
pub mod fetch_session_handler;
pub mod fetcher;
mod leader_and_isr;
mod list_offsets;
pub mod partition;
mod partition_writer;
mod produce;
pub mod purgatory;

use crate::broker::config::BrokerConfig;
use crate::broker::timer::ReplicaTimer;
use crate::log::Log;
use crate::node::{Cx, NodeId};
use crate::partition_map::PartitionMap;
use crate::protocol::*;
use crate::record::TopicPartition;
use partition::{Partition, Role};
use purgatory::{DelayedFetch, DelayedProduce, Purgatory};
use std::collections::BTreeMap;

pub struct ReplicaManager {
    pub config: BrokerConfig,
    pub partitions: PartitionMap<Partition>,
    /// The controller's view of every partition, for MetadataRequest.
    pub metadata: BTreeMap<TopicPartition, PartitionState>,
    pub topics: Vec<(crate::record::TopicId, u32)>,
    pub live_brokers: Vec<NodeId>,
    pub broker_epoch: u64,
    pub controller: Option<NodeId>,
    produces: Purgatory<DelayedProduce>,
    fetches: Purgatory<DelayedFetch>,
    /// The incremental fetch sessions this broker holds as a leader (KIP-227).
    pub(crate) fetch_sessions: fetch_session::FetchSessionCache,
    pub(crate) fetcher: fetcher::ReplicaFetcher,
    next_id: u64,
    /// Coordinator append completions, drained by the broker into the coordinator.
    pub coordinator_done: Vec<(u64, ErrorCode)>,
    /// Leadership changes (partition, Some(epoch) | None), drained by the broker.
    pub leadership_changes: Vec<(TopicPartition, Option<u32>)>,
    /// Idempotent-producer state per partition (see [`crate::log::producer_state`]).
    pub producer_states: PartitionMap<crate::log::producer_state::ProducerStateManager>,
    /// Grows whenever what this broker leads may have changed: a partition led or no longer
    /// led (a new leader epoch included) or a leader's HW moved. The simulator's invariants
    /// read it to skip, after an event, the walk of a broker whose leaderships did not
    /// change (see [`ReplicaManager::leadership_version`]).
    leadership_version: u64,
}

impl ReplicaManager {
    pub fn new(config: BrokerConfig) -> ReplicaManager {
        let slots = config.max_incremental_fetch_session_cache_slots;
        ReplicaManager {
            config,
            partitions: PartitionMap::new(),
            metadata: BTreeMap::new(),
            topics: Vec::new(),
            live_brokers: Vec::new(),
            broker_epoch: 0,
            controller: None,
            produces: Purgatory::default(),
            fetches: Purgatory::default(),
            fetch_sessions: fetch_session::FetchSessionCache::new(slots),
            fetcher: fetcher::ReplicaFetcher::default(),
            next_id: 0,
            coordinator_done: Vec::new(),
            leadership_changes: Vec::new(),
            producer_states: PartitionMap::new(),
            leadership_version: 0,
        }
    }

    /// A count that changes whenever the set of partitions this broker leads, their leader
    /// epochs or their HWs may have changed; when it is the same as after an earlier event,
    /// none of them changed. Every writer of those is in this module: `apply_local` (roles
    /// and epochs) and [`Self::after_hw_update`] (every HW a leader computes).
    pub fn leadership_version(&self) -> u64 {
        self.leadership_version
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

    /// Recompute the HW of `tp` and complete what it unblocks.
    pub(crate) fn on_isr_or_hw_change(&mut self, cx: &mut Cx, tp: TopicPartition) {
        // Borrowed field by field, not cloned: the config holds a map.
        let (config, live) = (&self.config, &self.live_brokers);
        let moved = self
            .partitions
            .get_mut(&tp)
            .is_some_and(|p| p.maybe_increment_hw(cx, config, live));
        self.after_hw_update(cx, tp, moved);
    }

    /// What follows a HW recomputation of `tp` (`moved`: the HW advanced): the producer
    /// state's and the waiting consumers' view of the HW, the waiting produces, the partition's
    /// invariants.
    pub(super) fn after_hw_update(&mut self, cx: &mut Cx, tp: TopicPartition, moved: bool) {
        // Only a leader computes its HW (a follower takes the leader's).
        assert!(
            !moved || self.partitions.get(&tp).is_some_and(|p| p.is_leader()),
            "{} {tp}: a HW computed on a partition it does not lead",
            cx.me()
        );
        if moved {
            self.leadership_version += 1;
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
        self.try_complete_produces_on(cx, tp);
        self.check_partition(cx.me(), tp);
    }

    /// The fast path of a follower fetch that moved neither the HW nor the ISR of `tp`
    /// skips what [`Self::after_hw_update`] would do; in debug builds (every test) this proves
    /// the skipped work would have done nothing. A waiting append settles only on a move of
    /// the HW, an fsync or the loss of leadership (see [`purgatory::check_append`]: the ISR's
    /// size only picks the outcome of one that settles), none of which a fetch that moved no
    /// HW makes; and the only state the fetch changed, the follower's progress, is checked
    /// where it changes (its LEO within the leader's), so the partition's invariants hold
    /// as they held after its last change, where they were checked.
    pub(super) fn assert_nothing_to_complete(&self, me: NodeId, tp: TopicPartition) {
        if !cfg!(debug_assertions) {
            return;
        }
        for id in self.produces.watching(tp) {
            let op = self.produces.get(id).expect("watched");
            assert!(
                op.pending.iter().all(|pa| produce::append_outcome(
                    &self.partitions,
                    &self.config,
                    pa
                )
                .is_none()),
                "{me} {tp}: a follower fetch that moved no HW skipped a produce it completes"
            );
        }
        self.check_partition(me, tp);
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

    /// An fsync of a log completed: acks and follower fetches waiting for it may proceed.
    pub fn on_log_synced(&mut self, cx: &mut Cx, tp: TopicPartition, token: u64) {
        let Some(p) = self.partitions.get_mut(&tp) else {
            return;
        };
        if !p.log.on_fsync_done(token) {
            return;
        }
        if p.is_leader() {
            self.try_complete_produces_on(cx, tp);
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

#[cfg(test)]
mod tests;
