//! LeaderAndIsr on a broker (Kafka's `ReplicaManager.becomeLeaderOrFollower` / `applyDelta`,
//! `makeLeaders` / `makeFollowers`): the controller's partition states become roles, ISRs and
//! epochs of the hosted partitions, and what waited on a lost leadership is answered.

use super::partition::{Partition, Role};
use super::{distinct, ReplicaManager};
use crate::broker::config::BreakRule;
use crate::isr::FollowerProgress;
use crate::log::Log;
use crate::node::{Cx, NodeId};
use crate::protocol::*;
use crate::record::TopicPartition;
use crate::time::Instant;

impl ReplicaManager {
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

    pub(super) fn apply_local(&mut self, cx: &mut Cx, s: PartitionState) {
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
            // A newer epoch, the partition's first state, or the ReuseLeaderEpoch break's move
            // within an epoch: applied below (`Partition.makeLeader` / `makeFollower`).
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

    pub(super) fn rebuild_producer_state(&mut self, tp: TopicPartition) {
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
    pub(super) fn fail_delayed(&mut self, cx: &mut Cx, tp: TopicPartition) {
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
}
