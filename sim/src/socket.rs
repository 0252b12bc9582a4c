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

/// A muted connection: the connection epoch of the request being handled, and the requests
/// held unread with theirs, in arrival order. A client that closes its connection gracefully
/// leaves what it wrote to be read (Kafka's `closingChannels`), so the queue of one pair may
/// hold requests of an old connection ahead of a new one's, handled one at a time.
#[derive(Debug)]
struct Muted<E> {
    serving: u64,
    unread: VecDeque<(u64, E)>,
}

/// Muted connections `(server, client)` with the requests they hold unread, in arrival order.
#[derive(Debug)]
pub struct Sockets<E> {
    muted: BTreeMap<(NodeId, NodeId), Muted<E>>,
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
    /// A request from `client` arrived at `server` on the connection of `epoch`: returned to
    /// be handled now (the connection is muted from now on), or held (`None`) behind the one
    /// being handled.
    pub fn read(&mut self, server: NodeId, client: NodeId, epoch: u64, request: E) -> Option<E> {
        match self.muted.get_mut(&(server, client)) {
            None => {
                self.muted.insert(
                    (server, client),
                    Muted {
                        serving: epoch,
                        unread: VecDeque::new(),
                    },
                );
                Some(request)
            }
            Some(m) if m.unread.len() >= MAX_UNREAD_PER_CONNECTION => {
                self.dropped += 1;
                None
            }
            Some(m) => {
                m.unread.push_back((epoch, request));
                None
            }
        }
    }

    /// `server` wrote (or, its connection gone, dropped) its answer to `client`'s request of
    /// connection `epoch`: the next unread request, to be handled now (the connection stays
    /// muted for it), or `None` and the connection is unmuted. The answer to a request of a
    /// connection forgotten since unmutes nothing.
    pub fn answered(&mut self, server: NodeId, client: NodeId, epoch: u64) -> Option<E> {
        let m = self.muted.get_mut(&(server, client))?;
        if m.serving != epoch {
            return None;
        }
        match m.unread.pop_front() {
            Some((epoch, next)) => {
                m.serving = epoch;
                Some(next)
            }
            None => {
                self.muted.remove(&(server, client));
                None
            }
        }
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

    /// `server`'s socket to `client` is gone (it closed it): nothing it held will be read.
    pub fn forget(&mut self, server: NodeId, client: NodeId) {
        self.muted.remove(&(server, client));
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
            s.read(B, P, 0, 1),
            Some(1),
            "an idle connection is read at once"
        );
        assert_eq!(s.read(B, P, 0, 2), None);
        assert_eq!(s.read(B, P, 0, 3), None);
        assert_eq!(
            s.read(NodeId(2), P, 0, 9),
            Some(9),
            "another broker's connection"
        );
        assert_eq!(s.answered(B, P, 0), Some(2));
        assert!(s.is_muted(B, P), "muted again for request 2");
        assert_eq!(s.answered(B, P, 0), Some(3));
        assert_eq!(s.answered(B, P, 0), None);
        assert!(!s.is_muted(B, P));
        assert_eq!(s.read(B, P, 0, 4), Some(4));
    }

    #[test]
    fn a_closed_connections_requests_are_read_before_the_next_ones() {
        let mut s = Sockets::default();
        assert_eq!(s.read(B, P, 0, 1), Some(1));
        assert_eq!(s.read(B, P, 0, 2), None);
        // The client closed connection 0 and opened 1.
        assert_eq!(s.read(B, P, 1, 3), None);
        assert_eq!(s.answered(B, P, 0), Some(2), "the lost answer to 1 unmutes");
        assert_eq!(
            s.answered(B, P, 1),
            None,
            "2 is of connection 0, still served"
        );
        assert_eq!(s.answered(B, P, 0), Some(3));
        assert_eq!(s.answered(B, P, 1), None);
        assert!(!s.is_muted(B, P));
    }

    #[test]
    fn an_answer_of_a_forgotten_connection_unmutes_nothing() {
        let mut s = Sockets::default();
        s.read(B, P, 0, 1);
        s.forget_pair(B, P);
        assert_eq!(s.read(B, P, 1, 2), Some(2));
        assert_eq!(s.read(B, P, 1, 3), None);
        assert_eq!(s.answered(B, P, 0), None, "request 1's answer");
        assert!(s.is_muted(B, P));
        assert_eq!(s.answered(B, P, 1), Some(3));
    }

    #[test]
    fn a_lost_connection_forgets_what_it_held() {
        let mut s = Sockets::default();
        s.read(B, P, 0, 1);
        s.read(B, P, 0, 2);
        s.forget_node(P);
        assert!(!s.is_muted(B, P));
        assert_eq!(
            s.answered(B, P, 0),
            None,
            "an answer on a dead connection unmutes nothing"
        );
        s.read(B, P, 0, 3);
        s.forget_pair(P, B);
        assert!(!s.is_muted(B, P));
    }

    #[test]
    fn a_full_connection_drops() {
        let mut s = Sockets::default();
        s.read(B, P, 0, 0);
        for i in 0..MAX_UNREAD_PER_CONNECTION + 3 {
            assert_eq!(s.read(B, P, 0, i + 1), None);
        }
        assert_eq!(s.dropped, 3);
    }
}
