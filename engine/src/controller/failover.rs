//! Failover between the active controller and its standby: when a standby takes over, with
//! which controller epoch, and when an active controller resigns.
//!
//! A controller epoch belongs to one controller. ZooKeeper-mode Kafka increments
//! `/controller_epoch` with a conditional write (`KafkaZkClient.
//! registerControllerAndIncrementControllerEpoch`, called from `KafkaController.elect`); KRaft
//! wins an epoch by a majority vote (`QuorumState.transitionToCandidate`, one vote per voter
//! and epoch). kafsim has no shared store, so a standby takes over with an epoch above every
//! epoch it has seen: its own, its peer's syncs, and the epochs the brokers follow, which
//! every registration and heartbeat carries (brokers send both to every controller). Without
//! the brokers' epochs, a controller restarted from its disk (whose epoch is the one it had
//! before the crash) took over with the epoch its peer already held while that peer was cut
//! off; after the heal neither gave way (a sync of an equal epoch is ignored by an active
//! controller) and both handed out the same leader epochs to different leaders.
//!
//! An active controller that learns of a higher controller epoch (from a broker or from the
//! other controller) resigns, as `KafkaController.onControllerResignation` does when
//! `/controller` changed; the newer controller's ControllerSync then gives it that state.
//!
//! Known limit (no quorum yet): a change the active controller published after its last
//! sync reached the standby is unknown to the standby if it takes over (see the module doc
//! of `controller`).

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

    /// Some node follows controller epoch `epoch`: remember it, and resign if it is newer than
    /// this controller's own.
    pub(super) fn observe_epoch(&mut self, now: Instant, epoch: u32) {
        self.highest_epoch_seen = self.highest_epoch_seen.max(epoch);
        if self.role == Role::Active && epoch > self.state.controller_epoch {
            self.role = Role::Standby;
            // As a standby it waits a full session for the newer controller's sync before it
            // could take over again.
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

    pub(super) fn on_sync_timer(&mut self, cx: &mut Cx) {
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
