//! ISR changes proposed by a leader (Kafka's `Partition.maybeShrinkIsr` / `maybeExpandIsr`
//! and the AlterPartition round trip to the controller, KIP-497).

use super::partition::{PendingIsr, Role};
use super::{distinct, ReplicaManager};
use crate::isr;
use crate::node::{Cx, NodeId};
use crate::protocol::*;
use crate::record::TopicPartition;
use crate::time::{ms, Duration};

/// An unanswered AlterPartition is forgotten after this and proposed again if still needed.
const ALTER_PARTITION_RETRY: Duration = ms(5000);

impl ReplicaManager {
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
    pub(super) fn propose_isr(&mut self, cx: &mut Cx, tp: TopicPartition, new_isr: Vec<NodeId>) {
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
}
