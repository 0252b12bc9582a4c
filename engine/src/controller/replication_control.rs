//! Partition state at the controller (Kafka's `ReplicationControlManager`): topic and
//! partition creation with replica placement, leader election among the live ISR (clean
//! unless `unclean.leader.election.enable`), AlterPartition from leaders with its epoch
//! checks, and shrinking the ISR of a fenced broker. Apart from broker liveness because this
//! is where leader epochs and ISRs are written, and asserted.

use super::election::{self, Elected};
use super::quorum::Then;
use super::state;
use super::Controller;
use crate::broker::config::BreakRule;
use crate::node::{Cx, NodeId};
use crate::protocol::*;
use crate::record::{TopicId, TopicPartition};
use std::collections::BTreeMap;

impl Controller {
    pub(super) fn create_topics(&mut self, cx: &mut Cx, topics: Vec<NewTopic>) {
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
                let ps = new_partition(tp, replicas);
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
    /// The new partitions (to publish), or the error to answer with.
    pub(super) fn create_partitions(
        &mut self,
        topic: TopicId,
        count: u32,
    ) -> Result<Vec<TopicPartition>, ErrorCode> {
        let Some(slot) = self.state.topics.iter().position(|(t, _)| *t == topic) else {
            return Err(ErrorCode::UnknownTopicOrPartition);
        };
        let current = self.state.topics[slot].1;
        if count <= current {
            return Err(ErrorCode::InvalidPartitions);
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
            return Err(ErrorCode::InvalidReplicationFactor);
        }
        // The placer continues the topic's striping from the first new partition id.
        let placement = state::assign_replicas(&usable, topic, count, rf);
        let mut changed = Vec::new();
        for (p, replicas) in placement.into_iter().enumerate().skip(current as usize) {
            let tp = TopicPartition::new(topic, p as u32);
            self.state
                .partitions
                .insert(tp, new_partition(tp, replicas));
            changed.push(tp);
        }
        self.state.topics[slot].1 = count;
        Ok(changed)
    }

    /// Elect new leaders where `pred` says the leader must change or the partition is offline.
    pub(super) fn elect_where(
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

    /// Mark `b` fenced, move its leaderships and drop it from every ISR it is not the last
    /// member of (`ReplicationControlManager.handleBrokerFenced`); the changed partitions.
    pub(super) fn fence_partitions(&mut self, cx: &mut Cx, b: NodeId) -> Vec<TopicPartition> {
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

    pub(super) fn on_alter_partition(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: AlterPartitionRequest,
    ) {
        let error = self.validate_alter(from, &req);
        if error == ErrorCode::None {
            let p = self
                .state
                .partitions
                .get_mut(&req.partition)
                .expect("validated");
            p.isr = req.new_isr.clone();
            p.partition_epoch += 1;
        }
        let p = self.state.partitions.get(&req.partition);
        let reply = Message::AlterPartitionResponse(AlterPartitionResponse {
            correlation_id: req.correlation_id,
            error,
            partition: req.partition,
            leader_epoch: p.map_or(0, |p| p.leader_epoch),
            isr: p.map_or(Vec::new(), |p| p.isr.clone()),
            partition_epoch: p.map_or(0, |p| p.partition_epoch),
        });
        if error == ErrorCode::None {
            // Answered once the new ISR commits (KRaft answers AlterPartition from the
            // deferred event queue): the leader must not act on an ISR a new controller
            // would not know.
            self.publish(cx, vec![req.partition], vec![Then::Reply(from, reply)]);
        } else {
            cx.send(from, reply);
        }
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
}

/// A partition as it is created (KRaft's `ReplicationControlManager.createTopic` and
/// `createPartitions`): the first replica leads, leader and partition epochs are 0, every
/// replica is in the ISR (the placer only chose usable brokers).
fn new_partition(tp: TopicPartition, replicas: Vec<NodeId>) -> PartitionState {
    assert!(!replicas.is_empty(), "{tp}: a partition without replicas");
    PartitionState {
        partition: tp,
        leader: Some(replicas[0]),
        leader_epoch: 0,
        isr: replicas.clone(),
        partition_epoch: 0,
        replicas,
    }
}
