//! The consumer's requests in flight (Kafka's `ConsumerNetworkClient`): sending with a
//! correlation id, the request timeout, reconnecting after a reset, and failing every
//! request to a node whose connection ended, each request's owner told by its [`Req`].
//! Apart from the consumer's protocol logic because every part (fetcher, membership, commits)
//! sends through it.

use super::timer::ConsumerTimer;
use super::{Consumer, Inflight, Req, MAX_INFLIGHT};
use crate::node::{Cx, NodeId};
use crate::protocol::{ErrorCode, Message};
use crate::time::Duration;
use std::collections::BTreeSet;

impl Consumer {
    pub(super) fn send(
        &mut self,
        cx: &mut Cx,
        to: NodeId,
        timeout: Duration,
        req: Req,
        msg: Message,
    ) -> u64 {
        assert!(
            self.inflight.len() < MAX_INFLIGHT,
            "consumer {}/{}: more than {MAX_INFLIGHT} requests in flight",
            self.spec.group,
            self.spec.member_index
        );
        let corr = self.next_corr;
        self.next_corr += 1;
        let broker = !matches!(req, Req::Statement(_));
        let entry = Inflight {
            to,
            sent_at: cx.now(),
            timeout,
            req,
        };
        self.inflight.insert(corr, entry);
        match self.connections.blocked_until(to, cx.now()) {
            Some(until) => {
                self.held.insert(corr, (to, msg));
                cx.set_timer(until, ConsumerTimer::Reconnect(to));
            }
            None => {
                cx.send(to, msg);
                self.opening(to, broker, cx.now());
            }
        }
        corr
    }

    /// A request went to `to`: a connection not known to work is being set up (the
    /// database is the service's own, not a broker the client's setup timeout covers).
    fn opening(&mut self, to: NodeId, broker: bool, now: crate::time::Instant) {
        if broker && !self.connected.contains(&to) {
            self.connections.setup.connecting(to, now);
        }
    }

    /// Give up on connections still not established after the client's connection setup
    /// timeout (Java `NetworkClient.handleTimedOutConnections`: close, fail what waited for
    /// the connection, back off; librdkafka "Connection setup timed out"; sarama's and
    /// kafka-go's dial errors), checked at each tick. One the kernel reports established
    /// has just not answered yet: its requests keep their own timeouts.
    pub(super) fn expire_connection_setups(&mut self, cx: &mut Cx) {
        for peer in self.connections.setup.timed_out_in(cx) {
            self.close_connection(cx, peer);
        }
    }

    /// The reconnect backoff towards `to` is over: send what waited for it, in order.
    pub(super) fn on_reconnect_timer(&mut self, cx: &mut Cx, to: NodeId) {
        if self.connections.blocked_until(to, cx.now()).is_some() {
            return; // closed again meanwhile; a later timer sends
        }
        let ready: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, (peer, _))| *peer == to)
            .map(|(c, _)| *c)
            .collect();
        for corr in ready {
            if let Some((peer, msg)) = self.held.remove(&corr) {
                cx.send(peer, msg);
                let broker = self
                    .inflight
                    .get(&corr)
                    .is_some_and(|f| !matches!(f.req, Req::Statement(_)));
                self.opening(peer, broker, cx.now());
            }
        }
    }

    pub(super) fn take_corr(&mut self) -> u64 {
        self.next_corr
    }

    /// Fail the requests whose timeout passed. A request that went out and got no answer
    /// closes its connection, as every client does, and with it every other request in flight
    /// to that broker: Java `NetworkClient.handleTimedOutRequests` (`request.timeout.ms`:
    /// `processTimeoutDisconnection` closes the node, in-flight requests fail as
    /// disconnected), sarama (`Net.ReadTimeout` fails the broker's connection), kafka-go (a
    /// deadline error closes the conn), librdkafka (`socket.timeout.ms` with
    /// `socket.max.fails = 1`: "request(s) timed out: disconnect"). Closing is what keeps a
    /// request given up on from being delivered later (TCP retransmits it after a partition
    /// heals). A request still held by the reconnect backoff never left: it just fails.
    pub(super) fn expire_requests(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let expired: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.sent_at + f.timeout <= now)
            .map(|(c, _)| *c)
            .collect();
        let mut close: BTreeSet<NodeId> = BTreeSet::new();
        for corr in expired {
            let was_held = self.held.remove(&corr).is_some();
            if let Some(f) = self.inflight.remove(&corr) {
                if !was_held {
                    close.insert(f.to);
                }
                self.fail_request(cx, f, ErrorCode::RequestTimedOut);
            }
        }
        for peer in close {
            self.close_connection(cx, peer);
        }
    }

    /// Close the connection to `peer` and fail everything still in flight to it (the
    /// closing side gets no notice of its own), then back off before reconnecting.
    fn close_connection(&mut self, cx: &mut Cx, peer: NodeId) {
        cx.close_connection(peer);
        self.ctp_connection_closed(cx, peer);
        self.connected.remove(&peer);
        self.failed_at.insert(peer, cx.now());
        let now = cx.now();
        self.connections.disconnected(peer, now, cx.rng());
        self.fail_all_to(cx, peer);
        self.coordinator_dead(peer);
        self.meta.invalidate_leader(peer);
    }

    /// Fail every request to `peer` (its connection is gone).
    pub(super) fn fail_all_to(&mut self, cx: &mut Cx, peer: NodeId) {
        let dead: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.to == peer)
            .map(|(c, _)| *c)
            .collect();
        for corr in dead {
            self.held.remove(&corr);
            if let Some(f) = self.inflight.remove(&corr) {
                self.fail_request(cx, f, ErrorCode::NetworkException);
            }
        }
    }

    /// A request got no answer (timeout) or its connection died. As Java's NetworkClient on a
    /// disconnect, ask for fresh metadata: the broker may have lost its leaderships.
    fn fail_request(&mut self, cx: &mut Cx, f: Inflight, error: ErrorCode) {
        if let Req::Statement(which) = f.req {
            return self.statement_failed(cx, which);
        }
        let backoff = cx.now() + self.config.retry_backoff;
        self.failed_at.insert(f.to, cx.now());
        self.meta.invalidate_leader(f.to);
        self.meta.wanted = true;
        match f.req {
            Req::Metadata => self.meta.not_before = backoff,
            Req::FindCoordinator => self.group.find_not_before = backoff,
            Req::Join | Req::Sync => {
                self.coordinator_dead(f.to);
                self.group.rejoin_after_failure(backoff);
            }
            Req::Heartbeat => self.group.heartbeat_inflight = false,
            Req::Leave => {}
            Req::Commit(ctx) => {
                self.coordinator_dead(f.to);
                self.on_commit_result(cx, ctx, &[], error);
            }
            Req::OffsetFetch(tps) | Req::ListOffsets(tps) => {
                for tp in tps {
                    if let Some(p) = self.parts.get_mut(&tp) {
                        p.busy = false;
                    }
                }
                if matches!(
                    error,
                    ErrorCode::RequestTimedOut | ErrorCode::NetworkException
                ) {
                    self.coordinator_dead(f.to);
                }
            }
            Req::Fetch(tps) => {
                self.fetching.remove(&f.to);
                for (tp, _) in tps {
                    if let Some(p) = self.parts.get_mut(&tp) {
                        p.busy = false;
                    }
                }
                self.meta.invalidate_leader(f.to);
            }
            Req::DeadLetter { processor } => {
                self.meta.invalidate_leader(f.to);
                self.dead_letter_failed(processor, backoff);
            }
            Req::Statement(_) => unreachable!("handled above"),
        }
    }

    pub(super) fn coordinator_dead(&mut self, node: NodeId) {
        if self.group.coordinator == Some(node) {
            self.group.coordinator = None;
        }
    }

    pub(super) fn on_connection_reset(&mut self, cx: &mut Cx, from: NodeId) {
        self.connections.setup.ended(from);
        self.connected.remove(&from);
        self.failed_at.insert(from, cx.now());
        self.fail_all_to(cx, from);
        self.coordinator_dead(from);
        self.meta.invalidate_leader(from);
    }
}
