//! The network model: one FIFO link per directed node pair, as TCP gives Kafka.
//!
//! A message leaves its sender once the link's serialisation queue frees up (bandwidth),
//! then travels for base latency + extra latency + jitter; arrivals on one link never
//! overtake each other. The two links between a pair of nodes are one TCP connection, with
//! one *epoch*: closing the connection, a cut or a process death bumps it, and whatever was
//! sent under an older epoch is lost when it reaches the end of its link.
//!
//! A close is graceful (a FIN, as `close()` on a socket without `SO_LINGER` gives): what the
//! closing side had already written to an *established* connection still travels to the peer,
//! which reads it before the FIN (the old epoch stays an *orphan* of that link, see
//! [`Network::close`]); only what travels towards the closing side is lost. A cut, a crash's
//! reset or a connection that never carried anything loses both directions.
//!
//! A partition (symmetric, one-way, isolate, bridge) *blocks* links; it does not destroy what
//! is on them. A message that reaches the end of a blocked link waits there, and the world
//! ([`crate::connection`]) retransmits it as TCP does, after the heal. A message is lost
//! only with its connection, or when a link's capacity is exceeded.
//!
//! Cost model (bench): with a NIC bandwidth set, each node has one full-duplex NIC shared by
//! all its links, as TCP flows share it: fairly. A message's serialisation on the sender's
//! egress takes `bytes / bandwidth` times the number of the sender's links busy sending while
//! it is on the wire (itself included; a link that frees up halfway counts one half), and
//! likewise on the receiver's ingress for the links busy delivering to it; it arrives when both
//! are done, plus latency. This is processor sharing judged when the message starts (flows that
//! start later do not slow it down), so a small produce response does not wait behind a
//! megabyte of replication on the same NIC, as it does not on a real one.

use kafsim_engine::time::duration_nanos;
use kafsim_engine::{Duration, Instant, NodeId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// Most closed connections per link whose data may still be on its way (a bound; a client
/// closes a connection at most once per request timeout).
pub const MAX_ORPHANS: usize = 64;

/// Properties of every link unless a fault overrides them.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation latency.
    pub latency: Duration,
    /// Uniform jitter added to each message, `0..=jitter`.
    pub jitter: Duration,
    /// Bytes per second a link serialises; 0 = unlimited.
    pub bandwidth_bytes_per_sec: u64,
    /// Bytes that may be in flight on one link, including what waits behind a partition. A
    /// send past it is dropped and counted (a real TCP sender would block; the limit only
    /// exists so a runaway node cannot exhaust memory).
    pub capacity_bytes: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_micros(500),
            jitter: Duration::from_micros(100),
            bandwidth_bytes_per_sec: 0,
            capacity_bytes: 256 << 20,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Link {
    /// When the sender side finishes serialising everything queued so far.
    tx_free_at: Instant,
    /// Latest arrival scheduled on this link (FIFO: the next arrival is not earlier).
    last_arrival: Instant,
    /// Bytes sent and not yet delivered or lost (what waits behind a partition included).
    in_flight_bytes: u64,
    /// The connection's epoch, equal on both links of a pair: bumped when the connection
    /// ends; messages sent under an older epoch are dropped on arrival.
    epoch: u64,
    /// How many partitions in force cut this link (each fault lifts only its own cut, so
    /// overlapping partitions end one by one; a heal lifts them all).
    cuts: u16,
    /// A message of the current epoch reached the end of this link or of its reverse: the
    /// connection is established (its handshake got through).
    established: bool,
    /// Epochs of connections this link's sender closed gracefully after they were
    /// established, newest last (at most [`MAX_ORPHANS`]): their messages still arrive.
    orphans: VecDeque<u64>,
    /// The sum of the slow-link faults in force on this link (each ends on its own).
    extra_latency: Duration,
    /// Overrides the configured bandwidth (slow-link fault); 0 = use the config.
    bandwidth_override: u64,
    /// NIC model: when the receiver's ingress has taken everything sent on this link so far.
    rx_free_at: Instant,
}

/// Where a message sent now will be: scheduled to arrive, or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Arrives { at: Instant, link_epoch: u64 },
    Dropped,
}

/// What the end of a link does with a message that reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The connection it was sent on has ended: the message is lost.
    Stale,
    /// A partition blocks the link: the message waits for a retransmission.
    Blocked,
    /// Deliverable.
    Open,
}

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub sent: u64,
    pub delivered: u64,
    /// Lost: with their connection, or past a link's capacity.
    pub dropped: u64,
    /// Held behind a partition at least once (and retransmitted or lost later).
    pub delayed: u64,
    pub bytes_sent: u64,
}

/// All links between the nodes of a world.
#[derive(Debug)]
pub struct Network {
    config: LinkConfig,
    /// `links[from][to]`.
    links: Vec<Vec<Link>>,
    /// Per-node NIC bytes per second, each direction; 0 = unlimited (no NIC modelled).
    nic_bytes_per_sec: u64,
    rng: ChaCha8Rng,
    pub(crate) stats: NetworkStats,
}

impl Network {
    pub fn new(config: LinkConfig, rng: ChaCha8Rng) -> Network {
        Network {
            config,
            links: Vec::new(),
            nic_bytes_per_sec: 0,
            rng,
            stats: NetworkStats::default(),
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    pub fn stats(&self) -> NetworkStats {
        self.stats
    }

    /// Model a full-duplex NIC of `bytes_per_sec` per direction on every node (0 = none).
    pub fn set_nic_bandwidth(&mut self, bytes_per_sec: u64) {
        self.nic_bytes_per_sec = bytes_per_sec;
    }

    /// Make room for node `id`.
    pub(crate) fn add_node(&mut self, id: NodeId) {
        let n = id.0 as usize + 1;
        if self.links.len() < n {
            for row in &mut self.links {
                row.resize(n, Link::default());
            }
            self.links.resize_with(n, || vec![Link::default(); n]);
        }
    }

    fn link(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        let n = self.links.len();
        assert!(
            (from.0 as usize) < n && (to.0 as usize) < n,
            "message between unknown nodes {from} -> {to}"
        );
        &mut self.links[from.0 as usize][to.0 as usize]
    }

    /// Schedule a message of `bytes` from `from` to `to` sent at `now`.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        from: NodeId,
        to: NodeId,
        bytes: u32,
    ) -> SendOutcome {
        self.stats.sent += 1;
        self.stats.bytes_sent += bytes as u64;
        let config_bandwidth = self.config.bandwidth_bytes_per_sec;
        let capacity = self.config.capacity_bytes;
        let latency = self.config.latency;
        let jitter_max = duration_nanos(self.config.jitter);
        let jitter = if jitter_max == 0 {
            0
        } else {
            self.rng.gen_range(0..=jitter_max)
        };
        let link = self.link(from, to);
        if link.in_flight_bytes + bytes as u64 > capacity {
            self.stats.dropped += 1;
            return SendOutcome::Dropped;
        }
        let bandwidth = if link.bandwidth_override > 0 {
            link.bandwidth_override
        } else {
            config_bandwidth
        };
        let nic_bandwidth = self.nic_bytes_per_sec;
        let (f, t) = (from.0 as usize, to.0 as usize);
        let start = self.links[f][t].tx_free_at.max(now);
        let flight = latency + self.links[f][t].extra_latency;
        // Links sharing the sender's egress and the receiver's ingress while this message is on
        // them: each busy link counts for the fraction of this message's time it stays busy.
        let on_nic = serialisation_time(bytes, nic_bandwidth);
        let (sharing_out, sharing_in) = if nic_bandwidth > 0 && on_nic > Duration::ZERO {
            let n = self.links.len();
            let own = duration_nanos(on_nic) as f64;
            let share = |busy_until: Instant, from: Instant| -> f64 {
                (duration_nanos(busy_until.saturating_since(from)) as f64 / own).min(1.0)
            };
            let out: f64 = (0..n)
                .filter(|&j| j != t)
                .map(|j| share(self.links[f][j].tx_free_at, start))
                .sum();
            let inn: f64 = (0..n)
                .filter(|&i| i != f)
                .map(|i| share(self.links[i][t].rx_free_at, start + flight))
                .sum();
            (1.0 + out, 1.0 + inn)
        } else {
            (1.0, 1.0)
        };
        let link = &mut self.links[f][t];
        // Unlimited bandwidth (0) serialises instantly.
        let serialisation = serialisation_time(bytes, bandwidth);
        link.tx_free_at = start + serialisation;
        // When the last byte reaches the receiver (before jitter).
        let mut landed = link.tx_free_at + flight;
        if nic_bandwidth > 0 {
            let tx_end = (start + on_nic.mul_f64(sharing_out)).max(link.tx_free_at);
            link.tx_free_at = tx_end;
            let rx_start = (start + flight).max(link.rx_free_at);
            let rx_end = (rx_start + on_nic.mul_f64(sharing_in)).max(tx_end + flight);
            link.rx_free_at = rx_end;
            landed = rx_end;
        }
        let arrival = (landed + Duration::from_nanos(jitter)).max(link.last_arrival);
        link.last_arrival = arrival;
        link.in_flight_bytes += bytes as u64;
        SendOutcome::Arrives {
            at: arrival,
            link_epoch: link.epoch,
        }
    }

    /// A message sent under `link_epoch` reaches the end of its link. A stale or open arrival
    /// is settled here (counted lost or delivered); a blocked one stays in flight until
    /// [`Network::settle`] when it is finally delivered or lost.
    pub(crate) fn arrive(
        &mut self,
        from: NodeId,
        to: NodeId,
        bytes: u32,
        link_epoch: u64,
    ) -> Arrival {
        let link = self.link(from, to);
        if !link.accepts(link_epoch) {
            self.settle(from, to, bytes, false);
            Arrival::Stale
        } else if link.cuts > 0 {
            self.stats.delayed += 1;
            Arrival::Blocked
        } else {
            if link_epoch == link.epoch {
                link.established = true;
                self.link(to, from).established = true;
            }
            self.settle(from, to, bytes, true);
            Arrival::Open
        }
    }

    /// Whether a message sent on `from -> to` under `link_epoch` may still be read by `to`:
    /// its connection is the current one, or one `from` closed gracefully.
    pub fn accepts(&self, from: NodeId, to: NodeId, link_epoch: u64) -> bool {
        self.links[from.0 as usize][to.0 as usize].accepts(link_epoch)
    }

    /// Whether `link_epoch` is an orphan of `from -> to`: a connection `from` closed whose
    /// data still travels.
    pub fn is_orphan(&self, from: NodeId, to: NodeId, link_epoch: u64) -> bool {
        let link = &self.links[from.0 as usize][to.0 as usize];
        link_epoch != link.epoch && link.orphans.contains(&link_epoch)
    }

    /// A message of `bytes` on `from -> to` leaves the network: `delivered`, or lost.
    pub(crate) fn settle(&mut self, from: NodeId, to: NodeId, bytes: u32, delivered: bool) {
        let link = self.link(from, to);
        link.in_flight_bytes = link.in_flight_bytes.saturating_sub(bytes as u64);
        if delivered {
            self.stats.delivered += 1;
        } else {
            self.stats.dropped += 1;
        }
    }

    /// The epoch of the connection between `a` and `b` (the same in both directions).
    pub fn epoch(&self, a: NodeId, b: NodeId) -> u64 {
        let e = self.links[a.0 as usize][b.0 as usize].epoch;
        debug_assert_eq!(e, self.links[b.0 as usize][a.0 as usize].epoch);
        e
    }

    /// Whether the current connection between `from` and `to` is established: something sent
    /// on it reached the other end's host (the handshake got through).
    pub fn established(&self, from: NodeId, to: NodeId) -> bool {
        self.links
            .get(from.0 as usize)
            .and_then(|l| l.get(to.0 as usize))
            .is_some_and(|l| l.established)
    }

    /// A message reached a powered-off host: no kernel answered its handshake, so the
    /// connection is not established (a close then loses what was sent on it, as a cut).
    pub(crate) fn not_established(&mut self, from: NodeId, to: NodeId) {
        self.link(from, to).established = false;
        self.link(to, from).established = false;
    }

    fn node_count(&self) -> u32 {
        self.links.len() as u32
    }

    /// Block `from -> to` (a one-way partition), on top of any cut already in force.
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        let link = self.link(from, to);
        link.cuts = link
            .cuts
            .checked_add(1)
            .expect("at most 65535 partitions on one link");
    }

    /// Lift one cut of `from -> to`: the link opens when no other partition cuts it.
    pub fn unblock(&mut self, from: NodeId, to: NodeId) {
        let link = self.link(from, to);
        assert!(
            link.cuts > 0,
            "unblock of {from}->{to}: no partition cuts it"
        );
        link.cuts -= 1;
    }

    /// Whether `from -> to` is blocked now.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.links[from.0 as usize][to.0 as usize].cuts > 0
    }

    /// Symmetric partition: nothing crosses between `a` and `b` in either direction.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        self.partition_one_way(a, b);
        self.partition_one_way(b, a);
    }

    /// One-way partition: nothing goes from any of `from` to any of `to`; the reverse works.
    pub fn partition_one_way(&mut self, from: &[NodeId], to: &[NodeId]) {
        self.cut_pairs(from, to, true);
    }

    /// The end of [`Network::partition`] of `a` and `b`: lifts that partition's cuts only.
    pub fn unpartition(&mut self, a: &[NodeId], b: &[NodeId]) {
        self.cut_pairs(a, b, false);
        self.cut_pairs(b, a, false);
    }

    /// The end of [`Network::partition_one_way`].
    pub fn unpartition_one_way(&mut self, from: &[NodeId], to: &[NodeId]) {
        self.cut_pairs(from, to, false);
    }

    /// Add (`cut`) or lift one cut on every link from `from` to `to`.
    fn cut_pairs(&mut self, from: &[NodeId], to: &[NodeId], cut: bool) {
        for &x in from {
            for &y in to {
                match (x != y, cut) {
                    (false, _) => {}
                    (true, true) => self.block(x, y),
                    (true, false) => self.unblock(x, y),
                }
            }
        }
    }

    /// Cut `node` off from every other node, both directions.
    pub fn isolate(&mut self, node: NodeId) {
        let all: Vec<NodeId> = (0..self.node_count()).map(NodeId).collect();
        self.partition(&[node], &all);
    }

    /// Jepsen's bridge: `a` and `b` cannot talk to each other, but `bridge` talks to both.
    pub fn bridge(&mut self, a: &[NodeId], bridge: NodeId, b: &[NodeId]) {
        let a: Vec<NodeId> = a.iter().copied().filter(|&n| n != bridge).collect();
        let b: Vec<NodeId> = b.iter().copied().filter(|&n| n != bridge).collect();
        self.partition(&a, &b);
    }

    /// The end of [`Network::bridge`].
    pub fn unbridge(&mut self, a: &[NodeId], bridge: NodeId, b: &[NodeId]) {
        let a: Vec<NodeId> = a.iter().copied().filter(|&n| n != bridge).collect();
        let b: Vec<NodeId> = b.iter().copied().filter(|&n| n != bridge).collect();
        self.unpartition(&a, &b);
    }

    /// Lift every partition and link degradation.
    pub fn heal(&mut self) {
        for row in &mut self.links {
            for link in row {
                link.cuts = 0;
                link.extra_latency = Duration::ZERO;
                link.bandwidth_override = 0;
            }
        }
    }

    /// Add latency to both directions between `a` and `b` (slow-link fault), on top of the
    /// slow links already in force (two delayed hosts delay what passes both, as `tc netem`
    /// on each host's interface would).
    pub fn slow_link(&mut self, a: NodeId, b: NodeId, extra: Duration) {
        self.link(a, b).extra_latency += extra;
        self.link(b, a).extra_latency += extra;
    }

    /// The end of one [`Network::slow_link`] of `extra`: the others in force stay.
    pub fn unslow_link(&mut self, a: NodeId, b: NodeId, extra: Duration) {
        for (x, y) in [(a, b), (b, a)] {
            let link = self.link(x, y);
            assert!(
                link.extra_latency >= extra,
                "end of a slow link {x}->{y} of {extra:?}: only {:?} in force",
                link.extra_latency
            );
            link.extra_latency -= extra;
        }
    }

    /// Reduce the bandwidth of both directions between `a` and `b`.
    pub fn limit_bandwidth(&mut self, a: NodeId, b: NodeId, bytes_per_sec: u64) {
        self.link(a, b).bandwidth_override = bytes_per_sec.max(1);
        self.link(b, a).bandwidth_override = bytes_per_sec.max(1);
    }

    /// End the connection between `a` and `b`: everything in flight either way is lost when
    /// it reaches the end of its link. The caller delivers the reset notices (the world knows
    /// the latency to use) and drops what waits behind a partition.
    pub(crate) fn cut(&mut self, a: NodeId, b: NodeId) {
        let epoch = self.link(a, b).epoch.max(self.link(b, a).epoch) + 1;
        for (x, y) in [(a, b), (b, a)] {
            let link = self.link(x, y);
            link.epoch = epoch;
            link.in_flight_bytes = 0;
            link.established = false;
            // A cut (or a dead process) resets every socket of the pair, orphans included.
            link.orphans.clear();
        }
    }

    /// `by` closes its connection to `peer` gracefully (a FIN after what it wrote). Linux
    /// keeps sending the data of a closed socket (an *orphan*, `tcp_orphan_retries`), and
    /// Kafka's socket server processes the requests it read before the FIN (`Selector.close`
    /// keeps a channel closed by the remote end in `closingChannels` until its staged
    /// receives are processed): so what `by` sent on an established connection still
    /// reaches `peer` and is handled; what `peer` sends back is lost (`by`'s socket is gone:
    /// its kernel answers with a reset). A connection whose handshake never got through has
    /// nothing to deliver: it ends like a cut. Returns whether `by`'s data goes on.
    pub(crate) fn close(&mut self, by: NodeId, peer: NodeId) -> bool {
        let old = self.link(by, peer).epoch;
        let established = self.link(by, peer).established;
        let kept = self.link(by, peer).in_flight_bytes;
        // Earlier closed sockets go on retransmitting on their own.
        let earlier = std::mem::take(&mut self.link(by, peer).orphans);
        self.cut(by, peer);
        let link = self.link(by, peer);
        link.orphans = earlier;
        if !established {
            return false;
        }
        link.in_flight_bytes = kept;
        if link.orphans.len() == MAX_ORPHANS {
            link.orphans.pop_front();
        }
        link.orphans.push_back(old);
        true
    }
}

/// The kernel's view of a node's connections, for [`kafsim_engine::Cx::established`].
impl kafsim_engine::node::Sockets for Network {
    fn established(&self, from: NodeId, to: NodeId) -> bool {
        Network::established(self, from, to)
    }
}

impl Link {
    fn accepts(&self, link_epoch: u64) -> bool {
        link_epoch == self.epoch || self.orphans.contains(&link_epoch)
    }
}

/// Time to put `bytes` on a wire of `bandwidth` bytes per second (0 = unlimited: instant).
fn serialisation_time(bytes: u32, bandwidth: u64) -> Duration {
    Duration::from_nanos(
        (bytes as u64)
            .saturating_mul(1_000_000_000)
            .checked_div(bandwidth)
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng_for;

    fn net(config: LinkConfig) -> Network {
        let mut n = Network::new(config, rng_for(1, 1));
        n.add_node(NodeId(2));
        n
    }

    /// Sends 10 bytes from node `from` to node `to` at time zero, which the sender must not
    /// drop; the link epoch the message left on.
    fn sent(n: &mut Network, from: u32, to: u32) -> u64 {
        match n.send(Instant::ZERO, NodeId(from), NodeId(to), 10) {
            SendOutcome::Arrives { link_epoch, .. } => link_epoch,
            SendOutcome::Dropped => panic!("dropped at the sender"),
        }
    }

    #[test]
    fn bandwidth_queues_messages_behind_each_other() {
        let mut n = net(LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            bandwidth_bytes_per_sec: 1_000_000,
            capacity_bytes: u64::MAX,
        });
        let a = n.send(Instant::ZERO, NodeId(0), NodeId(1), 1000);
        let b = n.send(Instant::ZERO, NodeId(0), NodeId(1), 1000);
        assert_eq!(
            a,
            SendOutcome::Arrives {
                at: Instant::from_millis(2),
                link_epoch: 0
            }
        );
        assert_eq!(
            b,
            SendOutcome::Arrives {
                at: Instant::from_millis(3),
                link_epoch: 0
            }
        );
    }

    #[test]
    fn one_way_partition_blocks_one_direction_and_holds_what_reaches_it() {
        let mut n = net(LinkConfig::default());
        n.partition_one_way(&[NodeId(0)], &[NodeId(1)]);
        // A partition does not drop at the sender: it holds what reaches the far end.
        let link_epoch = sent(&mut n, 0, 1);
        assert_eq!(
            n.arrive(NodeId(0), NodeId(1), 10, link_epoch),
            Arrival::Blocked
        );
        assert_eq!(
            n.links[0][1].in_flight_bytes, 10,
            "held bytes stay in flight"
        );
        let link_epoch = sent(&mut n, 1, 0);
        assert_eq!(
            n.arrive(NodeId(1), NodeId(0), 10, link_epoch),
            Arrival::Open
        );
        assert_eq!(n.stats().delayed, 1);
    }

    #[test]
    fn cut_drops_in_flight() {
        let mut n = net(LinkConfig::default());
        let link_epoch = sent(&mut n, 0, 1);
        n.cut(NodeId(0), NodeId(1));
        assert_eq!(
            n.arrive(NodeId(0), NodeId(1), 10, link_epoch),
            Arrival::Stale
        );
        assert_eq!(n.epoch(NodeId(0), NodeId(1)), n.epoch(NodeId(1), NodeId(0)));
    }

    #[test]
    fn overlapping_partitions_and_slow_links_each_end_on_their_own() {
        let mut n = net(LinkConfig::default());
        let (a, b, c) = (NodeId(0), NodeId(1), NodeId(2));
        n.partition(&[a], &[b, c]);
        n.partition(&[a, c], &[b]);
        n.unpartition(&[a], &[b, c]);
        // The second partition still cuts a from b; the first one's other cut is gone.
        assert!(n.is_blocked(a, b) && n.is_blocked(b, a));
        assert!(!n.is_blocked(a, c) && n.is_blocked(c, b));
        n.unpartition(&[a, c], &[b]);
        assert!(!n.is_blocked(a, b) && !n.is_blocked(c, b));

        n.slow_link(a, b, Duration::from_millis(20));
        n.slow_link(a, b, Duration::from_millis(5));
        n.unslow_link(a, b, Duration::from_millis(20));
        assert_eq!(n.links[0][1].extra_latency, Duration::from_millis(5));
        assert_eq!(n.links[1][0].extra_latency, Duration::from_millis(5));
        // A heal lifts everything at once.
        n.partition(&[a], &[b]);
        n.partition(&[a], &[b]);
        n.heal();
        assert!(!n.is_blocked(a, b));
        assert_eq!(n.links[0][1].extra_latency, Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "no partition cuts it")]
    fn lifting_a_partition_that_is_not_in_force_is_a_bug() {
        let mut n = net(LinkConfig::default());
        n.unpartition(&[NodeId(0)], &[NodeId(1)]);
    }
}
