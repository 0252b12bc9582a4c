//! Kafka's socket server reads **one request per connection at a time**. Once a network
//! thread (`Processor`) has read a request it mutes the channel, and unmutes it only after the
//! response has been written (`SocketServer`; Kafka 0.8 cleared `OP_READ` the same way). A
//! producer pipelines up to `max.in.flight.requests.per.connection` requests, but the broker
//! works on them one after another: while an acks=all produce waits in the purgatory for the
//! followers, the producer's next requests wait unread in the broker's socket buffer.
//!
//! That is what makes synchronous replication cost throughput: a broker completes at most one
//! produce request per client connection per replication round trip, whatever the client's
//! in-flight limit (Kreps 2014: 421,823 records/s with acks=all against 786,980 with acks=1 on
//! the same cluster, `benches/KREPS2014.md`).
//!
//! This is I/O-layer behaviour, so the kernel models it, not the engine: a muted request has
//! already crossed the network (its bytes left the link) and is handed to the broker, and
//! charged CPU, only when the broker has answered the one before it.
//!
//! Scope: nodes the world runs as brokers ([`crate::cost::CostClass::Broker`]; the runner
//! marks every broker so, with or without a CPU model), and produce requests that expect an
//! answer (acks 1 or all). A producer's connection carries little else; the consumers and
//! replica fetchers modelled here keep at most one fetch in flight (per fetcher thread, each
//! of which has its own connection in Kafka), so muting
//! their connections would change nothing; group requests travel on the Java client's
//! separate coordinator connection.

use kafsim_engine::node::NodeId;
use kafsim_engine::protocol::{Acks, Message};
use std::collections::{BTreeMap, VecDeque};

/// Requests one muted connection may hold unread; past it the kernel drops them (a real
/// socket would push back with TCP flow control; no client modelled here pipelines so many).
pub const MAX_UNREAD_PER_CONNECTION: usize = 4_096;

/// Whether the broker mutes the connection `msg` arrives on until it has answered it.
pub fn mutes(msg: &Message) -> bool {
    matches!(msg, Message::ProduceRequest(r) if r.acks != Acks::None)
}

/// Whether `msg`, sent by a broker, is the answer that unmutes its connection.
pub fn unmutes(msg: &Message) -> bool {
    matches!(msg, Message::ProduceResponse(_))
}

/// Muted connections `(server, client)` with the requests they hold unread, in arrival order.
#[derive(Debug)]
pub struct Sockets<E> {
    muted: BTreeMap<(NodeId, NodeId), VecDeque<E>>,
    /// Requests dropped because a connection held [`MAX_UNREAD_PER_CONNECTION`].
    pub dropped: u64,
}

impl<E> Default for Sockets<E> {
    fn default() -> Self {
        Sockets {
            muted: BTreeMap::new(),
            dropped: 0,
        }
    }
}

impl<E> Sockets<E> {
    /// A request from `client` arrived at `server`: returned to be handled now (the
    /// connection is muted from now on), or held (`None`) behind the one being handled.
    pub fn read(&mut self, server: NodeId, client: NodeId, request: E) -> Option<E> {
        match self.muted.get_mut(&(server, client)) {
            None => {
                self.muted.insert((server, client), VecDeque::new());
                Some(request)
            }
            Some(unread) if unread.len() >= MAX_UNREAD_PER_CONNECTION => {
                self.dropped += 1;
                None
            }
            Some(unread) => {
                unread.push_back(request);
                None
            }
        }
    }

    /// `server` wrote its answer to `client`: the next unread request, to be handled now (the
    /// connection stays muted for it), or `None` and the connection is unmuted.
    pub fn answered(&mut self, server: NodeId, client: NodeId) -> Option<E> {
        let unread = self.muted.get_mut(&(server, client))?;
        let next = unread.pop_front();
        if next.is_none() {
            self.muted.remove(&(server, client));
        }
        next
    }

    /// Every connection of `node` is gone, with what it held unread.
    pub fn forget_node(&mut self, node: NodeId) {
        self.muted.retain(|&(s, c), _| s != node && c != node);
    }

    /// The connection between `a` and `b` is gone.
    pub fn forget_pair(&mut self, a: NodeId, b: NodeId) {
        self.muted.remove(&(a, b));
        self.muted.remove(&(b, a));
    }

    /// Whether `server` is handling a request of `client` (for tests).
    pub fn is_muted(&self, server: NodeId, client: NodeId) -> bool {
        self.muted.contains_key(&(server, client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: NodeId = NodeId(1);
    const P: NodeId = NodeId(7);

    #[test]
    fn requests_wait_behind_the_one_being_handled_in_order() {
        let mut s = Sockets::default();
        assert_eq!(
            s.read(B, P, 1),
            Some(1),
            "an idle connection is read at once"
        );
        assert_eq!(s.read(B, P, 2), None);
        assert_eq!(s.read(B, P, 3), None);
        assert_eq!(
            s.read(NodeId(2), P, 9),
            Some(9),
            "another broker's connection"
        );
        assert_eq!(s.answered(B, P), Some(2));
        assert!(s.is_muted(B, P), "muted again for request 2");
        assert_eq!(s.answered(B, P), Some(3));
        assert_eq!(s.answered(B, P), None);
        assert!(!s.is_muted(B, P));
        assert_eq!(s.read(B, P, 4), Some(4));
    }

    #[test]
    fn a_lost_connection_forgets_what_it_held() {
        let mut s = Sockets::default();
        s.read(B, P, 1);
        s.read(B, P, 2);
        s.forget_node(P);
        assert!(!s.is_muted(B, P));
        assert_eq!(
            s.answered(B, P),
            None,
            "an answer on a dead connection unmutes nothing"
        );
        s.read(B, P, 3);
        s.forget_pair(P, B);
        assert!(!s.is_muted(B, P));
    }

    #[test]
    fn a_full_connection_drops() {
        let mut s = Sockets::default();
        s.read(B, P, 0);
        for i in 0..MAX_UNREAD_PER_CONNECTION + 3 {
            assert_eq!(s.read(B, P, i + 1), None);
        }
        assert_eq!(s.dropped, 3);
    }
}
