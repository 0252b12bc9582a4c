//! Broker liveness at the controller (Kafka's `ClusterControlManager` for registration and
//! `BrokerHeartbeatManager` for sessions): a broker registers, heartbeats within
//! `broker.session.timeout.ms`, and is fenced when its session lapses, which takes it out of
//! every ISR it was in. Apart from partition state because liveness is the controller's only
//! clock-driven decision and the one a network partition exercises.

use super::quorum::Then;
use super::Controller;
use crate::node::{Cx, NodeId};
use crate::protocol::*;
use crate::time::Instant;

/// What the active controller knows about a registered broker (not replicated: a new active
/// controller starts with everyone live for one session timeout, as KRaft does).
#[derive(Clone, Copy, Debug)]
pub(super) struct Liveness {
    pub(super) last_heartbeat: Instant,
    /// 0 until the broker registers with this controller.
    pub(super) broker_epoch: u64,
    pub(super) fenced: bool,
    pub(super) acked_version: u64,
    /// Registered but fenced until it acknowledges this metadata version (KRaft unfences a
    /// new registration once the broker has caught up with the metadata log).
    pub(super) catching_up_to: Option<u64>,
}

impl Liveness {
    pub(super) fn new(now: Instant, broker_epoch: u64) -> Liveness {
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

impl Controller {
    pub(super) fn is_live(&self, n: NodeId) -> bool {
        self.live.get(&n).is_some_and(|l| !l.fenced)
    }

    pub(super) fn on_registration(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: BrokerRegistrationRequest,
    ) {
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
        // Append the registration whether or not partitions changed; the version the broker
        // then gets in full, once committed, is the one it must acknowledge.
        self.publish_to_brokers(cx, changed, vec![Then::Full(from)]);
        if let Some(l) = self.live.get_mut(&from).filter(|l| l.fenced) {
            l.catching_up_to = Some(self.state.version);
        }
    }

    /// A broker acknowledged metadata `version`: unfence it if it was catching up, elect
    /// leaders for partitions it can now lead, and tell everyone it is live.
    pub(super) fn on_metadata_acked(&mut self, cx: &mut Cx, from: NodeId, version: u64) {
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
        self.publish_to_brokers(cx, changed, Vec::new());
    }

    pub(super) fn on_heartbeat(&mut self, cx: &mut Cx, from: NodeId, req: BrokerHeartbeatRequest) {
        // Brokers only ever get committed metadata (`quorum`).
        let version = self.committed_version();
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
            resend = version.is_some_and(|v| l.acked_version < v);
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

    pub(super) fn check_liveness(&mut self, cx: &mut Cx) {
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
        self.publish_to_brokers(cx, changed, Vec::new());
    }
}
