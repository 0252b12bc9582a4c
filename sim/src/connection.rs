//! TCP connections between nodes, as far as Kafka's behaviour depends on them.
//!
//! Kafka runs over TCP, and what TCP does with a request under a fault decides whether a
//! client sees a delay, a timeout or a duplicate. The kernel keeps two facts per connection
//! beyond the links of [`crate::network`]:
//!
//! - **What waits behind a partition.** A partition does not destroy a segment on the wire:
//!   the sender retransmits it with exponential backoff (Linux: the retransmission timeout
//!   starts at `TCP_RTO_MIN` = 200 ms and doubles up to `TCP_RTO_MAX` = 120 s), and the first
//!   retransmission after the heal gets through. So a message that reaches a blocked link
//!   waits in a [`Hold`]; the world retransmits it at 200 ms, 600 ms, 1.4 s, 3 s, ... after it
//!   got stuck, and delivers the whole hold, in order, at the first one that finds the link
//!   open. Later messages of the same connection queue behind it (a TCP stream is in order);
//!   each connection (epoch) has its own hold and timer, as each socket has its own
//!   retransmission timer, so after a heal a newer connection, whose backoff is still short,
//!   may deliver before an older one that has backed off for longer. A 1 s partition between
//!   a leader and its follower delays the follower's fetch by about 1.4 s; it does not lose it.
//!   (A connection that stays blocked for `tcp_retries2` ≈ 15 minutes would be reset by the
//!   kernel; every Kafka client closes its own much sooner, on its request timeout.)
//! - **What a closed connection still sends.** A client that times out closes its socket;
//!   the kernel goes on retransmitting what the socket had not delivered yet (an orphaned
//!   socket), `tcp_orphan_retries` times: Linux's default 0 means 8 while the peer was alive
//!   (`tcp_orphan_retries()` in `net/ipv4/tcp_timer.c`: "8 corresponds to >100 seconds with
//!   minimal RTO of 200msec"), so it gives up [`ORPHAN_GIVE_UP`] after the data got stuck.
//!   A partition healed before then delivers the closed connection's requests, and the server
//!   handles them (see [`crate::network::Network::close`]): the delayed request that breaks
//!   transactions without KIP-890 (KAFKA-17754).
//! - **Which connection a request came on.** A response is written to the socket its
//!   request was read from. If that connection has ended since (the client timed out and
//!   closed it, or either process restarted), the response is lost with it, even though the
//!   server sends it after the client has opened a new connection. Without this, the answer
//!   to a request of an earlier connection would reach the client's next incarnation, whose
//!   correlation ids start over. The node interface names peers, not sockets, so the kernel
//!   gives every request it hands to a server a *wire id* of its own in place of the client's
//!   correlation id, remembers the client's id and the connection's epoch, and restores the
//!   client's id on the response (servers echo correlation ids, as Kafka's do).
//!
//! Hosts: [`crate::world::World`] owns one `Connections`. Everything here is ordered
//! (`BTreeMap`) so a run stays a pure function of its seed.

use kafsim_engine::{Duration, NodeId};
use std::collections::{BTreeMap, VecDeque};

/// Linux's minimum (and initial, for an established connection) retransmission timeout.
pub const TCP_RTO_MIN: Duration = Duration::from_millis(200);
/// Linux's maximum retransmission timeout: the backoff stops doubling here.
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);
/// When an orphaned socket gives up the data it could not deliver: after 8 retransmissions
/// whose timeout starts at [`TCP_RTO_MIN`] and doubles, the timer that fires `(2^9 - 1) *
/// 200 ms` after the data got stuck ends it (Linux `retransmits_timed_out`); the last
/// retransmission is at about 51 s.
pub const ORPHAN_GIVE_UP: Duration = Duration::from_millis(102_200);

/// Messages of one direction of a connection waiting behind a partition, oldest first.
#[derive(Debug)]
struct Hold<E> {
    events: VecDeque<E>,
    /// The backoff before the next retransmission after the one scheduled.
    next_rto: Duration,
    /// Tells this hold's retransmissions from those of an earlier hold of the same link.
    generation: u64,
    /// Time from when the hold began to the retransmission scheduled.
    elapsed: Duration,
}

/// A request a server has read and not answered yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OpenRequest {
    server: NodeId,
    client: NodeId,
    /// The id the client gave it.
    correlation_id: u64,
    /// The epoch of the connection it came on.
    epoch: u64,
}

/// What a due retransmission does.
#[derive(Debug)]
pub enum Retransmit<E> {
    /// The hold it was for is gone (its connection ended); nothing to do.
    Stale,
    /// The link is still blocked: try again after this long.
    Again(Duration),
    /// The link is open: deliver these, in order, now.
    Release(VecDeque<E>),
}

/// The connection state the kernel keeps beyond the links. See the module docs.
#[derive(Debug)]
pub struct Connections<E> {
    /// By `(from, to, connection epoch)`.
    holds: BTreeMap<(NodeId, NodeId, u64), Hold<E>>,
    next_generation: u64,
    /// Requests servers have read and will answer, by wire id.
    pending: BTreeMap<u64, OpenRequest>,
    next_wire_id: u64,
    /// Responses not delivered because their request's connection had ended.
    pub responses_lost: u64,
    /// Messages of closed connections whose kernel gave up retransmitting them.
    pub orphans_given_up: u64,
}

impl<E> Default for Connections<E> {
    fn default() -> Self {
        Connections {
            holds: BTreeMap::new(),
            next_generation: 0,
            pending: BTreeMap::new(),
            next_wire_id: 0,
            responses_lost: 0,
            orphans_given_up: 0,
        }
    }
}

impl<E> Connections<E> {
    /// Whether messages of connection `epoch` of `from -> to` wait behind a partition
    /// (later ones of the same connection must queue).
    pub fn is_holding(&self, from: NodeId, to: NodeId, epoch: u64) -> bool {
        !self.holds.is_empty() && self.holds.contains_key(&(from, to, epoch))
    }

    /// Queue `event` of connection `epoch` behind a partition of `from -> to`. When this
    /// starts a hold, returns the delay of its first retransmission and the hold's
    /// generation, for the caller to schedule [`Connections::retransmit`].
    pub fn hold(
        &mut self,
        from: NodeId,
        to: NodeId,
        epoch: u64,
        event: E,
    ) -> Option<(Duration, u64)> {
        if let Some(hold) = self.holds.get_mut(&(from, to, epoch)) {
            hold.events.push_back(event);
            return None;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        self.holds.insert(
            (from, to, epoch),
            Hold {
                events: VecDeque::from([event]),
                next_rto: (TCP_RTO_MIN * 2).min(TCP_RTO_MAX),
                generation,
                elapsed: TCP_RTO_MIN,
            },
        );
        Some((TCP_RTO_MIN, generation))
    }

    /// A retransmission of the hold `generation` of connection `epoch` of `from -> to` is
    /// due; `blocked` says whether the link is still blocked, `orphan` whether the
    /// connection was closed by `from` (its data is dropped once the hold is
    /// [`ORPHAN_GIVE_UP`] old; the close notice behind it stays, `keep`).
    #[allow(clippy::too_many_arguments)]
    pub fn retransmit(
        &mut self,
        from: NodeId,
        to: NodeId,
        epoch: u64,
        generation: u64,
        blocked: bool,
        orphan: bool,
        keep: impl Fn(&E) -> bool,
    ) -> Retransmit<E> {
        let key = (from, to, epoch);
        let Some(hold) = self.holds.get_mut(&key) else {
            return Retransmit::Stale;
        };
        if hold.generation != generation {
            return Retransmit::Stale;
        }
        // Linux checks the limit when the timer fires, before retransmitting
        // (`tcp_write_timeout`): the last attempt of an orphan is the one before.
        if orphan && hold.elapsed >= ORPHAN_GIVE_UP {
            let before = hold.events.len();
            hold.events.retain(&keep);
            self.orphans_given_up += (before - hold.events.len()) as u64;
            if hold.events.is_empty() {
                self.holds.remove(&key);
                return Retransmit::Stale;
            }
        }
        if blocked {
            let rto = hold.next_rto;
            hold.next_rto = (rto * 2).min(TCP_RTO_MAX);
            hold.elapsed += rto;
            return Retransmit::Again(rto);
        }
        let hold = self.holds.remove(&key).expect("looked up above");
        assert!(!hold.events.is_empty(), "a hold is never empty");
        Retransmit::Release(hold.events)
    }

    /// The connection between `a` and `b` ended: drop what waits behind a partition either
    /// way. Returns how many held messages were dropped. (Requests read on it stay open: the
    /// server may still answer them, and [`Connections::answer`] loses the answer.)
    pub fn end(&mut self, a: NodeId, b: NodeId) -> usize {
        self.end_towards(a, b) + self.end_towards(b, a)
    }

    /// `by` closed its connection to `peer` gracefully: what `peer` sent towards it is lost
    /// (returns how many held messages), what `by` sent keeps waiting for the heal.
    pub fn end_towards(&mut self, by: NodeId, peer: NodeId) -> usize {
        let keys: Vec<(NodeId, NodeId, u64)> = self
            .holds
            .range((peer, by, 0)..=(peer, by, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        keys.iter()
            .filter_map(|k| self.holds.remove(k))
            .map(|hold| hold.events.len())
            .sum()
    }

    /// Drop what connection `epoch` of `from -> to` holds (it never got through and was
    /// closed). Returns how many messages.
    pub fn end_one(&mut self, from: NodeId, to: NodeId, epoch: u64) -> usize {
        self.holds
            .remove(&(from, to, epoch))
            .map_or(0, |hold| hold.events.len())
    }

    /// The epoch of the connection open request `wire_id` was read on.
    pub fn request_epoch(&self, wire_id: u64) -> Option<u64> {
        self.pending.get(&wire_id).map(|open| open.epoch)
    }

    /// `server` read a request with `correlation_id` from `client` on the connection of
    /// `epoch`, and will answer it: the wire id to hand the server in its place.
    pub fn request_read(
        &mut self,
        server: NodeId,
        client: NodeId,
        correlation_id: u64,
        epoch: u64,
    ) -> u64 {
        self.next_wire_id += 1;
        let wire_id = self.next_wire_id;
        let open = OpenRequest {
            server,
            client,
            correlation_id,
            epoch,
        };
        assert!(
            self.pending.insert(wire_id, open).is_none(),
            "wire ids are unique"
        );
        assert!(
            self.pending.len() < 10_000_000,
            "unanswered requests grow without bound"
        );
        wire_id
    }

    /// `server` answers `wire_id` to `client`, whose connection is now of `epoch`: the
    /// client's correlation id to restore, or `None` when the response has no socket to go
    /// to (the request's connection ended, or no such request is open).
    pub fn answer(
        &mut self,
        server: NodeId,
        client: NodeId,
        wire_id: u64,
        epoch: u64,
    ) -> Option<u64> {
        let open = self.pending.remove(&wire_id)?;
        assert!(
            open.server == server && open.client == client,
            "{server} answered {client} a request {} had read from {}",
            open.server,
            open.client
        );
        (open.epoch == epoch).then_some(open.correlation_id)
    }

    /// `server` died: the requests it had read will never be answered.
    pub fn forget_server(&mut self, server: NodeId) {
        self.pending.retain(|_, open| open.server != server);
    }

    /// Requests read and not answered yet (bounded by what clients have in flight).
    pub fn open_requests(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);

    #[test]
    fn a_hold_retransmits_with_doubling_backoff_then_releases_in_order() {
        let mut c = Connections::default();
        let (first, generation) = c.hold(A, B, 0, 1).expect("starts a hold");
        assert_eq!(first, TCP_RTO_MIN);
        assert_eq!(c.hold(A, B, 0, 2), None, "joins the hold");
        assert!(c.is_holding(A, B, 0) && !c.is_holding(B, A, 0));
        let backoffs: Vec<Duration> = (0..3)
            .map(
                |_| match c.retransmit(A, B, 0, generation, true, false, |_| false) {
                    Retransmit::Again(d) => d,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(
            backoffs,
            [400, 800, 1600].map(Duration::from_millis).to_vec()
        );
        match c.retransmit(A, B, 0, generation, false, false, |_| false) {
            Retransmit::Release(events) => assert_eq!(Vec::from(events), vec![1, 2]),
            other => panic!("{other:?}"),
        }
        assert!(!c.is_holding(A, B, 0));
        assert!(matches!(
            c.retransmit(A, B, 0, generation, false, false, |_| false),
            Retransmit::Stale
        ));
    }

    #[test]
    fn the_backoff_stops_at_tcp_rto_max() {
        let mut c = Connections::default();
        let (_, generation) = c.hold(A, B, 0, ()).unwrap();
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            if let Retransmit::Again(d) = c.retransmit(A, B, 0, generation, true, false, |_| false)
            {
                last = d;
            }
        }
        assert_eq!(last, TCP_RTO_MAX);
    }

    #[test]
    fn ending_a_connection_drops_its_holds() {
        let mut c = Connections::default();
        let (_, old) = c.hold(A, B, 0, 1).unwrap();
        c.hold(B, A, 0, 2);
        assert_eq!(c.end(A, B), 2);
        assert!(matches!(
            c.retransmit(A, B, 0, old, false, false, |_| false),
            Retransmit::Stale
        ));
        // A new hold of the same link is not released by the old one's timer.
        let (_, new) = c.hold(A, B, 0, 3).unwrap();
        assert_ne!(old, new);
        assert!(matches!(
            c.retransmit(A, B, 0, old, false, false, |_| false),
            Retransmit::Stale
        ));
    }

    #[test]
    fn an_orphaned_hold_gives_up_after_tcp_orphan_retries_and_keeps_its_close_notice() {
        let mut c = Connections::default();
        // 1 and 2 were written before the close, 0 is the FIN after them.
        let (_, generation) = c.hold(A, B, 0, 1).unwrap();
        c.hold(A, B, 0, 2);
        c.hold(A, B, 0, 0);
        // The time (since the data got stuck) of the retransmission being made.
        let mut at = TCP_RTO_MIN;
        loop {
            let r = c.retransmit(A, B, 0, generation, true, true, |e| *e == 0);
            if c.orphans_given_up > 0 {
                break;
            }
            match r {
                Retransmit::Again(d) => at += d,
                other => panic!("{other:?}"),
            }
            assert!(at < ORPHAN_GIVE_UP * 2, "never gave up");
        }
        assert_eq!(c.orphans_given_up, 2);
        assert_eq!(at, ORPHAN_GIVE_UP, "the timer after the 8th retransmission");
        match c.retransmit(A, B, 0, generation, false, true, |e| *e == 0) {
            Retransmit::Release(events) => assert_eq!(Vec::from(events), vec![0]),
            other => panic!("{other:?}"),
        }
        // A connection still open is never given up.
        let (_, generation) = c.hold(A, B, 1, 5).unwrap();
        for _ in 0..12 {
            c.retransmit(A, B, 1, generation, true, false, |_| false);
        }
        assert!(c.is_holding(A, B, 1));
    }

    #[test]
    fn each_connection_has_its_own_retransmission_timer() {
        let mut c = Connections::default();
        // Connection 0 got stuck first and has backed off; connection 1 is new.
        let (_, old) = c.hold(A, B, 0, 1).unwrap();
        for _ in 0..6 {
            c.retransmit(A, B, 0, old, true, true, |_| false);
        }
        let (first, new) = c.hold(A, B, 1, 2).unwrap();
        assert_eq!(first, TCP_RTO_MIN);
        assert!(c.is_holding(A, B, 0) && c.is_holding(A, B, 1));
        // The heal: the new connection's timer fires first and delivers its data alone.
        match c.retransmit(A, B, 1, new, false, false, |_| false) {
            Retransmit::Release(events) => assert_eq!(Vec::from(events), vec![2]),
            other => panic!("{other:?}"),
        }
        assert!(c.is_holding(A, B, 0));
        assert_eq!(c.end_towards(B, A), 1, "the old connection's data");
    }

    #[test]
    fn a_response_goes_only_to_the_connection_its_request_came_on() {
        let mut c: Connections<()> = Connections::default();
        // The same client id twice (a restarted client starts over): two wire ids.
        let first = c.request_read(B, A, 7, 3);
        let second = c.request_read(B, A, 7, 4);
        assert_ne!(first, second);
        assert_eq!(
            c.answer(B, A, first, 4),
            None,
            "its connection (3) has ended"
        );
        assert_eq!(c.answer(B, A, second, 4), Some(7));
        assert_eq!(c.answer(B, A, second, 4), None, "answered once");
        c.request_read(B, A, 8, 4);
        c.forget_server(B);
        assert_eq!(c.open_requests(), 0);
    }
}
