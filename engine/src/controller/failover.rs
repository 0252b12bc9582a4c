//! Failover between controllers: when a standby runs for election, with which controller
//! epoch, and when an active controller resigns. Votes and what a new controller holds are in
//! [`super::quorum`].
//!
//! A controller epoch belongs to one controller. ZooKeeper-mode Kafka increments
//! `/controller_epoch` with a conditional write (`KafkaZkClient.
//! registerControllerAndIncrementControllerEpoch`, called from `KafkaController.elect`); KRaft
//! wins an epoch by a majority vote (`QuorumState.transitionToCandidate`, one vote per voter
//! and epoch), which kafsim models. A candidate runs in an epoch above every epoch it has
//! seen: its own, its peers' syncs and votes, and the epochs the brokers follow, which every
//! registration and heartbeat carries (brokers send both to every controller). Without the
//! brokers' epochs, a controller restarted from its disk (whose epoch is the one it had before
//! the crash) ran with the epoch its peer already held while that peer was cut off
//! (`replication_sweep` seed 167); the vote now refuses it too, its log being behind.
//!
//! An active controller that learns of a higher controller epoch (from a broker, a sync or a
//! vote request) resigns, as `KafkaController.onControllerResignation` does when
//! `/controller` changed and KRaft's leader does on a higher epoch
//! (`QuorumController.renounce`); the newer controller's ControllerSync then gives it that
//! state.

use super::{Controller, ControllerTimer, Role};
use crate::node::{Cx, NodeId};
use crate::time::Instant;

impl Controller {
    /// A broker's registration or heartbeat arrived, from a broker that follows controller
    /// epoch `epoch`.
    pub(super) fn on_broker_heard(&mut self, now: Instant, from: NodeId, epoch: u32) {
        self.heard.insert(from, now);
        self.observe_epoch(now, epoch);
    }

    /// Some node follows (or runs for) controller epoch `epoch`: remember it, give up a
    /// candidacy for an older epoch, and resign if it is newer than this controller's own.
    pub(super) fn observe_epoch(&mut self, now: Instant, epoch: u32) {
        if self.candidacy_epoch().is_some_and(|e| e < epoch) {
            // KRaft `QuorumState.transitionToUnattached`: a higher epoch ends a candidacy.
            self.candidacy = None;
        }
        self.highest_epoch_seen = self.highest_epoch_seen.max(epoch);
        if self.role == Role::Active && epoch > self.state.controller_epoch {
            self.renounce();
            // As a standby it waits a full session for the newer controller's sync before it
            // could run again.
            self.last_sync_seen = now;
        }
        assert!(
            self.role == Role::Standby || self.state.controller_epoch >= self.highest_epoch_seen,
            "an active controller at epoch {} below epoch {} it has seen",
            self.state.controller_epoch,
            self.highest_epoch_seen
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

    /// Whether this standby may run for election: no sync for a session timeout while a
    /// majority of brokers still reaches it.
    pub(super) fn may_run(&self, now: Instant) -> bool {
        let silent =
            now.saturating_since(self.last_sync_seen) >= self.config.broker.broker_session_timeout;
        silent && self.majority_of_brokers_heard(now)
    }

    pub(super) fn on_sync_timer(&mut self, cx: &mut Cx) {
        match self.role {
            Role::Active => self.send_sync(cx),
            Role::Standby => {
                if self.candidacy_epoch().is_none() && self.may_run(cx.now()) {
                    self.start_election(cx);
                }
            }
        }
        cx.set_timer_after(
            self.config.broker.broker_heartbeat_interval,
            ControllerTimer::Sync,
        );
    }
}
