//! One hosted partition (Kafka's `Partition`): its log, high watermark, the controller's
//! latest state for it, and the local role. As leader it tracks every follower's progress,
//! advances the HW to the lowest LEO of the maximal ISR (plus caught-up non-ISR replicas,
//! as `maybeIncrementLeaderHW` does since Kafka 2.x) and never moves it back; as follower it
//! truncates by the configured protocol, then fetches.

use crate::broker::config::{BreakRule, BrokerConfig, ReplicationProtocol};
use crate::history::HistoryEvent;
use crate::isr::FollowerProgress;
use crate::log::Log;
use crate::node::{Cx, NodeId};
use crate::protocol::PartitionState;
use crate::record::TopicPartition;
use crate::time::Instant;
use std::collections::BTreeMap;

/// A proposed ISR change in flight to the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingIsr {
    pub isr: Vec<NodeId>,
    pub correlation_id: u64,
    pub sent_at: Instant,
}

#[derive(Clone, Debug)]
pub struct LeaderState {
    pub followers: BTreeMap<NodeId, FollowerProgress>,
    pub pending_isr: Option<PendingIsr>,
    /// LEO when this leadership began (Kafka's `leaderEpochStartOffsetOpt`).
    pub epoch_start_offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerPhase {
    /// Waiting for OffsetsForLeaderEpoch answers before fetching (leader-epoch protocol).
    Truncating,
    Fetching,
}

#[derive(Clone, Debug)]
pub enum Role {
    Leader(LeaderState),
    Follower {
        leader: NodeId,
        phase: FollowerPhase,
    },
    /// Known replica without a leader (offline partition) or not yet told.
    Idle,
}

#[derive(Clone, Debug)]
pub struct Partition {
    pub log: Log,
    /// Read freely; written only through [`Partition::set_high_watermark`] (which asserts
    /// HW ≤ log end) by the three places Kafka moves it: the leader's
    /// `maybe_increment_hw`, a follower taking the leader's HW from a fetch response
    /// (`Partition.updateFollowerFetchState` on the follower side:
    /// `ReplicaFetcherThread.processPartitionData`), and a truncation.
    pub high_watermark: u64,
    /// The controller's latest state as applied here (`None` until the first LeaderAndIsr).
    pub state: Option<PartitionState>,
    pub role: Role,
}

impl Partition {
    pub fn new(log: Log, high_watermark: u64) -> Partition {
        let hw = high_watermark.min(log.log_end_offset());
        let p = Partition {
            log,
            high_watermark: hw,
            state: None,
            role: Role::Idle,
        };
        // A checkpointed HW past the recovered log (a power loss took the tail) is cut back.
        assert!(
            p.high_watermark <= p.log.log_end_offset(),
            "{}: starts with a HW past its log",
            p.tp()
        );
        p
    }

    /// The one writer of the HW. A HW above the log end would let consumers read offsets this
    /// replica does not hold.
    pub fn set_high_watermark(&mut self, high_watermark: u64) {
        let leo = self.log.log_end_offset();
        assert!(
            high_watermark <= leo,
            "{}: high watermark {high_watermark} above the log end {leo}",
            self.tp()
        );
        self.high_watermark = high_watermark;
    }

    /// A follower's HW after a fetch response: the leader's, but never above what this
    /// replica holds (`ReplicaFetcherThread.processPartitionData`:
    /// `min(leaderHW, log.logEndOffset)`). It may go down after a truncation.
    pub fn follow_high_watermark(&mut self, leader_high_watermark: u64) {
        let hw = leader_high_watermark.min(self.log.log_end_offset());
        assert!(
            !self.is_leader(),
            "{}: a leader takes its HW from no one",
            self.tp()
        );
        self.set_high_watermark(hw);
    }

    pub fn tp(&self) -> TopicPartition {
        self.log.topic_partition()
    }

    pub fn leader_epoch(&self) -> Option<u32> {
        self.state.as_ref().map(|s| s.leader_epoch)
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }

    /// The number of assigned replicas (0 before the first LeaderAndIsr).
    pub fn replication_factor(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.replicas.len())
    }

    /// Committed ISR plus proposed additions: what the HW and acks=all wait for.
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut isr = self.state.as_ref().map_or(Vec::new(), |s| s.isr.clone());
        if let Some(p) = self.leader_state().and_then(|l| l.pending_isr.as_ref()) {
            for r in &p.isr {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        assert_eq!(
            isr.len(),
            self.maximal_isr_len(),
            "{}: two views of the maximal ISR",
            self.tp()
        );
        assert!(
            isr.iter().enumerate().all(|(i, r)| !isr[..i].contains(r)),
            "{}: maximal ISR {isr:?} names a replica twice",
            self.tp()
        );
        isr
    }

    /// Whether `r` is in the maximal ISR (without building it: this is on the fetch path).
    pub fn in_maximal_isr(&self, r: NodeId) -> bool {
        let found = self.state.as_ref().is_some_and(|s| s.isr.contains(&r))
            || self
                .leader_state()
                .and_then(|l| l.pending_isr.as_ref())
                .is_some_and(|p| p.isr.contains(&r));
        debug_assert_eq!(
            found,
            self.maximal_isr().contains(&r),
            "two views of the maximal ISR"
        );
        found
    }

    /// Size of the maximal ISR.
    pub fn maximal_isr_len(&self) -> usize {
        let committed = self.state.as_ref().map_or(0, |s| s.isr.len());
        let added = self
            .leader_state()
            .and_then(|l| l.pending_isr.as_ref())
            .map_or(0, |p| {
                let isr = self.state.as_ref().map(|s| s.isr.as_slice()).unwrap_or(&[]);
                p.isr.iter().filter(|r| !isr.contains(r)).count()
            });
        assert!(
            committed + added <= self.replication_factor(),
            "{}: a maximal ISR of {} from {} replicas",
            self.tp(),
            committed + added,
            self.replication_factor()
        );
        committed + added
    }

    /// Kafka's `Partition.isUnderMinIsr`: the committed ISR is smaller than the effective
    /// `min.insync.replicas` (see [`BrokerConfig::effective_min_isr`]).
    pub fn is_under_min_isr(&self, config: &BrokerConfig) -> bool {
        let isr = self.state.as_ref().map_or(0, |s| s.isr.len());
        isr < config.effective_min_isr(self.replication_factor())
    }

    /// Leader epochs only grow: the broker applies a partition state only if its epoch is not
    /// older than the one it has (`ReplicaManager.becomeLeaderOrFollower` drops a stale
    /// LeaderAndIsr; KRaft deltas come in metadata-log order).
    fn assert_epoch_does_not_go_back(&self, state: &PartitionState) {
        if let Some(current) = &self.state {
            assert!(
                state.leader_epoch >= current.leader_epoch,
                "{}: leader epoch would go back from {} to {}",
                self.tp(),
                current.leader_epoch,
                state.leader_epoch
            );
        }
    }

    /// Become leader of `state.leader_epoch` (Kafka's `makeLeader`).
    pub fn make_leader(&mut self, cx: &mut Cx, state: PartitionState, config: &BrokerConfig) {
        self.assert_epoch_does_not_go_back(&state);
        assert_eq!(
            state.leader,
            Some(cx.me()),
            "{}: made leader by a state that names another",
            self.tp()
        );
        assert!(
            state.isr.contains(&cx.me()) && state.isr.iter().all(|r| state.replicas.contains(r)),
            "{}: a leader's ISR {:?} must hold it and only replicas {:?}",
            self.tp(),
            state.isr,
            state.replicas
        );
        let now = cx.now();
        let followers = state
            .replicas
            .iter()
            .filter(|r| **r != cx.me())
            .map(|r| {
                (
                    *r,
                    FollowerProgress::at_leadership_start(state.isr.contains(r), now),
                )
            })
            .collect();
        if config.replication_protocol == ReplicationProtocol::LeaderEpoch {
            self.log.assign_epoch_start(cx, state.leader_epoch);
        }
        cx.record(HistoryEvent::BecameLeader {
            broker: cx.me(),
            partition: self.tp(),
            leader_epoch: state.leader_epoch,
            log_end_offset: self.log.log_end_offset(),
        });
        self.role = Role::Leader(LeaderState {
            followers,
            pending_isr: None,
            epoch_start_offset: self.log.log_end_offset(),
        });
        assert!(
            config.replication_protocol != ReplicationProtocol::LeaderEpoch
                || self.log.latest_epoch() == Some(state.leader_epoch),
            "{}: leads epoch {} but its log's latest epoch is {:?}",
            self.tp(),
            state.leader_epoch,
            self.log.latest_epoch()
        );
        self.state = Some(state);
    }

    /// Become a follower of `state.leader` (or idle if the partition has no leader). In the
    /// legacy protocol the log is cut to the HW at once (pre-KIP-101 `makeFollower`).
    pub fn make_follower(&mut self, cx: &mut Cx, state: PartitionState, config: &BrokerConfig) {
        self.assert_epoch_does_not_go_back(&state);
        assert_ne!(
            state.leader,
            Some(cx.me()),
            "{}: made follower of itself",
            self.tp()
        );
        self.role = match state.leader {
            None => Role::Idle,
            Some(leader) => {
                let phase = match config.replication_protocol {
                    ReplicationProtocol::HighWatermark => {
                        self.truncate(cx, self.high_watermark, "high-watermark");
                        FollowerPhase::Fetching
                    }
                    ReplicationProtocol::LeaderEpoch
                        if config.breaks(BreakRule::SkipTruncation) =>
                    {
                        FollowerPhase::Fetching
                    }
                    ReplicationProtocol::LeaderEpoch => FollowerPhase::Truncating,
                };
                Role::Follower { leader, phase }
            }
        };
        assert!(
            self.high_watermark <= self.log.log_end_offset() && !self.is_leader(),
            "{}: a follower still leading or with its HW past its log",
            self.tp()
        );
        self.state = Some(state);
    }

    /// Truncate the log (and the HW with it) and record the fact.
    pub fn truncate(&mut self, cx: &mut Cx, offset: u64, reason: &'static str) {
        let before = self.log.log_end_offset();
        if self.log.truncate_to(cx, offset) {
            cx.record(HistoryEvent::Truncated {
                broker: cx.me(),
                partition: self.tp(),
                offset,
                reason,
            });
        }
        assert!(
            self.log.log_end_offset() <= before.min(offset.max(self.log.log_start_offset())),
            "{}: truncated to {offset} but the log ends at {}",
            self.tp(),
            self.log.log_end_offset()
        );
        let hw = self.high_watermark.min(self.log.log_end_offset());
        self.set_high_watermark(hw);
    }

    /// Kafka's `maybeIncrementLeaderHW`: the HW is the lowest log end of the followers in the
    /// (maximal) ISR and of those caught up within `replica.lag.time.max.ms` that may join it.
    /// A follower on a broker the controller no longer lists as live (fenced: its session
    /// expired) may not join (KIP-841's `isReplicaIsrEligible`), so a dead follower does not
    /// hold the HW back once the controller has dropped it from the ISR. Since 3.7
    /// (KAFKA-15583, `isUnderMinIsr`) the HW does not move at all while the committed ISR is
    /// smaller than the effective `min.insync.replicas`. Returns whether the HW advanced.
    pub fn maybe_increment_hw(
        &mut self,
        cx: &mut Cx,
        config: &BrokerConfig,
        live_brokers: &[NodeId],
    ) -> bool {
        let Role::Leader(l) = &self.role else {
            return false;
        };
        if config.version.hw_requires_min_isr() && self.is_under_min_isr(config) {
            return false;
        }
        let now = cx.now();
        let leo = self.log.log_end_offset();
        let mut new_hw = leo;
        if !config.breaks(BreakRule::SkipHwRule) {
            for (r, p) in &l.followers {
                let eligible = live_brokers.is_empty() || live_brokers.contains(r);
                let counts = self.in_maximal_isr(*r)
                    || (eligible && p.is_caught_up(leo, now, config.replica_lag_time_max))
                    || (config.breaks(BreakRule::AllowHwRegression) && p.has_fetched());
                if counts && p.log_end_offset < new_hw {
                    new_hw = p.log_end_offset;
                }
            }
        }
        let regress = config.breaks(BreakRule::AllowHwRegression) && new_hw < self.high_watermark;
        if new_hw <= self.high_watermark && !regress {
            return false;
        }
        // Within a leader epoch the HW only grows (Kafka's `maybeIncrementLeaderHW` moves it
        // only forward); the `AllowHwRegression` break rule is the one deliberate exception.
        assert!(
            new_hw >= self.high_watermark || regress,
            "{}: leader HW would go back from {} to {new_hw}",
            self.tp(),
            self.high_watermark
        );
        assert!(
            new_hw >= self.log.log_start_offset(),
            "{}: HW below the log start",
            self.tp()
        );
        // The HW never passes a member of the maximal ISR (one that has not fetched in this
        // leadership has an unknown LEO, 0 here, and holds it at the epoch's start); only the
        // `SkipHwRule` break takes the leader's LEO alone.
        assert!(
            config.breaks(BreakRule::SkipHwRule)
                || l.followers
                    .iter()
                    .all(|(r, f)| !self.in_maximal_isr(*r) || new_hw <= f.log_end_offset),
            "{}: HW {new_hw} past the LEO of a member of the maximal ISR",
            self.tp()
        );
        self.set_high_watermark(new_hw);
        cx.record(HistoryEvent::HighWatermark {
            broker: cx.me(),
            partition: self.tp(),
            leader_epoch: self.leader_epoch().unwrap_or(0),
            high_watermark: new_hw,
        });
        true
    }
}
