//! The network model: one FIFO link per directed node pair, as TCP gives Kafka.
//!
//! A message leaves its sender once the link's serialisation queue frees up (bandwidth),
//! then travels for base latency + extra latency + jitter; arrivals on one link never
//! overtake each other. Faults block links (partitions: symmetric, one-way, isolate, bridge)
//! or cut them (every message in flight is lost and both ends get a reset notice). A message
//! whose link is blocked or cut when it is sent or when it would arrive is dropped silently:
//! the ends learn of it only through their own timeouts.

use kafsim_engine::time::duration_nanos;
use kafsim_engine::{Duration, Instant, NodeId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Properties of every link unless a fault overrides them.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation latency.
    pub latency: Duration,
    /// Uniform jitter added to each message, `0..=jitter`.
    pub jitter: Duration,
    /// Bytes per second a link serialises; 0 = unlimited.
    pub bandwidth_bytes_per_sec: u64,
    /// Bytes that may be in flight on one link. A send past it is dropped and counted (a real
    /// TCP sender would block; the limit only exists so a runaway node cannot exhaust memory).
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
    in_flight_bytes: u64,
    /// Bumped by a cut: messages sent under an older epoch are dropped on arrival.
    epoch: u64,
    blocked: bool,
    extra_latency: Duration,
    /// Overrides the configured bandwidth (slow-link fault); 0 = use the config.
    bandwidth_override: u64,
}

/// Where a message sent now will be: scheduled to arrive, or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Arrives { at: Instant, link_epoch: u64 },
    Dropped,
}

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub bytes_sent: u64,
}

/// All links between the nodes of a world.
#[derive(Debug)]
pub struct Network {
    config: LinkConfig,
    /// `links[from][to]`.
    links: Vec<Vec<Link>>,
    rng: ChaCha8Rng,
    pub(crate) stats: NetworkStats,
}

impl Network {
    pub fn new(config: LinkConfig, rng: ChaCha8Rng) -> Network {
        Network {
            config,
            links: Vec::new(),
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
        if link.blocked || link.in_flight_bytes + bytes as u64 > capacity {
            self.stats.dropped += 1;
            return SendOutcome::Dropped;
        }
        let bandwidth = if link.bandwidth_override > 0 {
            link.bandwidth_override
        } else {
            config_bandwidth
        };
        let start = link.tx_free_at.max(now);
        // Unlimited bandwidth (0) serialises instantly.
        let serialisation = Duration::from_nanos(
            (bytes as u64)
                .saturating_mul(1_000_000_000)
                .checked_div(bandwidth)
                .unwrap_or(0),
        );
        link.tx_free_at = start + serialisation;
        let arrival =
            (link.tx_free_at + latency + link.extra_latency + Duration::from_nanos(jitter))
                .max(link.last_arrival);
        link.last_arrival = arrival;
        link.in_flight_bytes += bytes as u64;
        SendOutcome::Arrives {
            at: arrival,
            link_epoch: link.epoch,
        }
    }

    /// A message sent under `link_epoch` reaches the end of its link: is it delivered?
    pub(crate) fn arrive(&mut self, from: NodeId, to: NodeId, bytes: u32, link_epoch: u64) -> bool {
        let link = self.link(from, to);
        link.in_flight_bytes = link.in_flight_bytes.saturating_sub(bytes as u64);
        let ok = !link.blocked && link.epoch == link_epoch;
        if ok {
            self.stats.delivered += 1;
        } else {
            self.stats.dropped += 1;
        }
        ok
    }

    fn node_count(&self) -> u32 {
        self.links.len() as u32
    }

    /// Block `from -> to` (a one-way partition).
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        self.link(from, to).blocked = true;
    }

    /// Unblock `from -> to`.
    pub fn unblock(&mut self, from: NodeId, to: NodeId) {
        self.link(from, to).blocked = false;
    }

    /// Whether `from -> to` is blocked now.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.links[from.0 as usize][to.0 as usize].blocked
    }

    /// Symmetric partition: nothing crosses between `a` and `b` in either direction.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                if x != y {
                    self.block(x, y);
                    self.block(y, x);
                }
            }
        }
    }

    /// One-way partition: nothing goes from any of `from` to any of `to`; the reverse works.
    pub fn partition_one_way(&mut self, from: &[NodeId], to: &[NodeId]) {
        for &x in from {
            for &y in to {
                if x != y {
                    self.block(x, y);
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

    /// Lift every partition and link degradation.
    pub fn heal(&mut self) {
        for row in &mut self.links {
            for link in row {
                link.blocked = false;
                link.extra_latency = Duration::ZERO;
                link.bandwidth_override = 0;
            }
        }
    }

    /// Add latency to both directions between `a` and `b` (slow-link fault).
    pub fn slow_link(&mut self, a: NodeId, b: NodeId, extra: Duration) {
        self.link(a, b).extra_latency = extra;
        self.link(b, a).extra_latency = extra;
    }

    /// Reduce the bandwidth of both directions between `a` and `b`.
    pub fn limit_bandwidth(&mut self, a: NodeId, b: NodeId, bytes_per_sec: u64) {
        self.link(a, b).bandwidth_override = bytes_per_sec.max(1);
        self.link(b, a).bandwidth_override = bytes_per_sec.max(1);
    }

    /// Drop everything in flight between `a` and `b`, both directions. The caller delivers
    /// the reset notices (the world knows the latency to use).
    pub(crate) fn cut(&mut self, a: NodeId, b: NodeId) {
        for (x, y) in [(a, b), (b, a)] {
            let link = self.link(x, y);
            link.epoch += 1;
            link.in_flight_bytes = 0;
        }
    }
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
    fn one_way_partition_blocks_one_direction() {
        let mut n = net(LinkConfig::default());
        n.partition_one_way(&[NodeId(0)], &[NodeId(1)]);
        assert_eq!(
            n.send(Instant::ZERO, NodeId(0), NodeId(1), 10),
            SendOutcome::Dropped
        );
        assert!(matches!(
            n.send(Instant::ZERO, NodeId(1), NodeId(0), 10),
            SendOutcome::Arrives { .. }
        ));
    }

    #[test]
    fn cut_drops_in_flight() {
        let mut n = net(LinkConfig::default());
        let SendOutcome::Arrives { link_epoch, .. } =
            n.send(Instant::ZERO, NodeId(0), NodeId(1), 10)
        else {
            panic!("dropped")
        };
        n.cut(NodeId(0), NodeId(1));
        assert!(!n.arrive(NodeId(0), NodeId(1), 10, link_epoch));
    }
}
