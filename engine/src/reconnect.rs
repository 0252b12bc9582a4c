//! Connection states: when a client (producer or consumer) may open a connection to a broker
//! again after one ended (closed by itself on a request timeout, or reset by the peer).
//!
//! Every modelled client closes the connection when a request on it times out, and every
//! request in flight on it fails (`producer/sender.rs`, `consumer/mod.rs`). What differs is
//! how soon each client reconnects (the same `NetworkClient` / `rd_kafka_broker_t` code serves
//! a client's producer and consumer):
//!
//! - Java `ClusterConnectionStates` (`disconnected` / `ready`, `ExponentialBackoff`):
//!   `reconnect.backoff.ms` 50 doubling per consecutive failure up to
//!   `reconnect.backoff.max.ms` 1000, with ±20 % jitter; the count resets when a connection
//!   becomes ready. Kafsim counts a connection as ready when a response arrives on it.
//! - librdkafka `rd_kafka_broker_update_reconnect_backoff` (rdkafka_broker.c):
//!   `reconnect.backoff.ms` 100 doubling up to `reconnect.backoff.max.ms` 10000, jitter
//!   -25 %..+50 % capped at the maximum, and back to the initial value when the last
//!   reconnect was more than the maximum ago. librdkafka computes it at each connection
//!   attempt; kafsim computes it at the disconnect, which is when the next attempt is planned.
//! - sarama (`Broker.Open` on the next use, async_producer.go): no reconnect backoff of its
//!   own; a retried message waits `Producer.Retry.Backoff` and a metadata refresh
//!   (`partitionProducer.dispatch` / `updateLeader`), which the sender models.
//! - kafka-go (`Transport` / `connPool.grabBrokerConn` dials on demand): none either; the
//!   Writer's retry backoff covers it.

use crate::client::ClientKind;
use crate::connection_setup::{ConnectionSetup, SetupTimeout, KERNEL_SYN_TIMEOUT};
use crate::node::NodeId;
use crate::time::{Duration, Instant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Each client's default `reconnect.backoff.ms` / `reconnect.backoff.max.ms` (zero: none).
pub fn defaults(client: ClientKind) -> (Duration, Duration) {
    let ms = Duration::from_millis;
    match client {
        ClientKind::Java => (ms(50), ms(1_000)),
        ClientKind::Librdkafka => (ms(100), ms(10_000)),
        ClientKind::Sarama | ClientKind::KafkaGo => (Duration::ZERO, Duration::ZERO),
    }
}

/// Java `ClusterConnectionStates.RECONNECT_BACKOFF_JITTER`.
const JAVA_JITTER: f64 = 0.2;

#[derive(Clone, Copy, Debug, Default)]
struct NodeConnection {
    /// Consecutive failed connections (Java `failedAttempts`).
    failed_attempts: u32,
    /// No new connection before this instant.
    blocked_until: Instant,
    /// librdkafka `rkb_reconnect_backoff_ms`: the next backoff before jitter.
    next_backoff: Duration,
}

/// Reconnect backoff of every broker a client talks to.
#[derive(Clone, Debug)]
pub struct ConnectionStates {
    client: ClientKind,
    initial: Duration,
    max: Duration,
    nodes: BTreeMap<NodeId, NodeConnection>,
    /// The connection attempts under way and their setup timeouts (`connection_setup.rs`):
    /// Java keeps both in `ClusterConnectionStates`, and every end of a connection counts
    /// for both.
    pub setup: ConnectionSetup,
}

impl ConnectionStates {
    /// `initial` / `max`: `reconnect.backoff.ms` / `reconnect.backoff.max.ms` (zero: none).
    pub fn new(client: ClientKind, initial: Duration, max: Duration) -> ConnectionStates {
        ConnectionStates {
            client,
            initial,
            max: max.max(initial),
            nodes: BTreeMap::new(),
            setup: ConnectionSetup::new(SetupTimeout::fixed(KERNEL_SYN_TIMEOUT)),
        }
    }

    /// The same with the client's connection setup timeout.
    pub fn with_setup(mut self, policy: SetupTimeout) -> ConnectionStates {
        self.setup = ConnectionSetup::new(policy);
        self
    }

    /// The connection to `broker` ended at `now`: plan the earliest reconnect.
    pub fn disconnected(&mut self, broker: NodeId, now: Instant, rng: &mut ChaCha8Rng) {
        self.setup.ended(broker);
        if self.initial == Duration::ZERO {
            return;
        }
        let (client, initial, max) = (self.client, self.initial, self.max);
        let node = self.nodes.entry(broker).or_default();
        let backoff = match client {
            ClientKind::Librdkafka => librdkafka_backoff(node, initial, max, now, rng),
            _ => java_backoff(node.failed_attempts, initial, max, rng),
        };
        node.failed_attempts = node.failed_attempts.saturating_add(1);
        node.blocked_until = now + backoff;
    }

    /// A response arrived from `broker`: its connection works (Java `ready` resets the count).
    pub fn ready(&mut self, broker: NodeId) {
        self.setup.established(broker);
        if let Some(node) = self.nodes.get_mut(&broker) {
            node.failed_attempts = 0;
        }
    }

    /// Whether a request may be sent to `broker` at `now` (a new connection may be opened).
    pub fn can_connect(&self, broker: NodeId, now: Instant) -> bool {
        self.nodes
            .get(&broker)
            .is_none_or(|n| now >= n.blocked_until)
    }

    /// When `broker` may be connected again, if it is still backing off at `now`.
    pub fn blocked_until(&self, broker: NodeId, now: Instant) -> Option<Instant> {
        self.nodes
            .get(&broker)
            .map(|n| n.blocked_until)
            .filter(|at| *at > now)
    }
}

/// Java `ExponentialBackoff.backoff(attempts)` with base 2 and ±20 % jitter (reconnects,
/// and KIP-580 retries).
pub(crate) fn java_backoff(
    attempts: u32,
    initial: Duration,
    max: Duration,
    rng: &mut ChaCha8Rng,
) -> Duration {
    let initial_ms = initial.as_millis() as f64;
    let max_ms = max.as_millis() as f64;
    if max_ms <= initial_ms {
        return initial;
    }
    let exp_max = (max_ms / initial_ms).log2();
    let term = initial_ms * 2f64.powf((attempts as f64).min(exp_max));
    let factor = rng.gen_range(1.0 - JAVA_JITTER..1.0 + JAVA_JITTER);
    let ms = ((factor * term) as u64).min(max.as_millis() as u64);
    Duration::from_millis(ms)
}

/// librdkafka `rd_kafka_broker_update_reconnect_backoff`.
fn librdkafka_backoff(
    node: &mut NodeConnection,
    initial: Duration,
    max: Duration,
    now: Instant,
    rng: &mut ChaCha8Rng,
) -> Duration {
    if node.next_backoff == Duration::ZERO || node.blocked_until + max < now {
        node.next_backoff = initial;
    }
    let base = node.next_backoff.as_millis() as u64;
    let low = base * 3 / 4;
    let high = (base * 3 / 2).max(low + 1);
    let backoff = Duration::from_millis(rng.gen_range(low..=high).min(max.as_millis() as u64));
    node.next_backoff = (node.next_backoff * 2).min(max);
    backoff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ms;
    use rand::SeedableRng;

    const B: NodeId = NodeId(3);

    fn backoffs(client: ClientKind, initial: u64, max: u64, n: usize) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut c = ConnectionStates::new(client, ms(initial), ms(max));
        let mut now = Instant::from_millis(1_000);
        (0..n)
            .map(|_| {
                c.disconnected(B, now, &mut rng);
                let until = c.blocked_until(B, now).expect("backing off");
                assert!(!c.can_connect(B, now));
                assert!(c.can_connect(B, until));
                let wait = until.saturating_since(now).as_millis() as u64;
                now = until;
                wait
            })
            .collect()
    }

    #[test]
    fn java_doubles_from_50_ms_to_1_s_with_20_percent_jitter() {
        let waits = backoffs(ClientKind::Java, 50, 1_000, 8);
        for (i, w) in waits.iter().enumerate() {
            // 50 · 2^min(i, log2(1000/50)), jittered ±20 %, capped at 1000.
            let nominal = 50.0 * 2f64.powf((i as f64).min(20f64.log2()));
            let (low, high) = (nominal * 0.8 - 1.0, (nominal * 1.2).min(1_000.0));
            assert!(
                (*w as f64) >= low && (*w as f64) <= high,
                "attempt {i}: {w} ms (nominal {nominal})"
            );
        }
        assert!(waits[7] >= 800, "capped near 1 s: {waits:?}");
    }

    #[test]
    fn java_ready_resets_the_failure_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut c = ConnectionStates::new(ClientKind::Java, ms(50), ms(1_000));
        let now = Instant::from_millis(10);
        for _ in 0..6 {
            c.disconnected(B, now, &mut rng);
        }
        assert!(c.blocked_until(B, now).unwrap() >= now + ms(800));
        c.ready(B);
        c.disconnected(B, now, &mut rng);
        assert!(c.blocked_until(B, now).unwrap() <= now + ms(60));
    }

    #[test]
    fn librdkafka_doubles_from_100_ms_to_10_s() {
        let waits = backoffs(ClientKind::Librdkafka, 100, 10_000, 10);
        let mut base = 100u64;
        for (i, w) in waits.iter().enumerate() {
            assert!(
                *w >= base * 3 / 4 && *w <= (base * 3 / 2).min(10_000),
                "attempt {i}: {w} ms (base {base})"
            );
            base = (base * 2).min(10_000);
        }
    }

    #[test]
    fn librdkafka_resets_after_a_quiet_period() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut c = ConnectionStates::new(ClientKind::Librdkafka, ms(100), ms(10_000));
        let mut now = Instant::from_millis(0);
        for _ in 0..5 {
            c.disconnected(B, now, &mut rng);
            now = c.blocked_until(B, now).unwrap();
        }
        assert!(c.blocked_until(B, Instant::ZERO).is_some());
        // A connection that lived longer than reconnect.backoff.max.ms starts over at 100 ms.
        let later = now + ms(20_000);
        c.disconnected(B, later, &mut rng);
        assert!(c.blocked_until(B, later).unwrap() <= later + ms(150));
    }

    #[test]
    fn sarama_and_kafka_go_reconnect_at_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for client in [ClientKind::Sarama, ClientKind::KafkaGo] {
            let mut c = ConnectionStates::new(client, Duration::ZERO, Duration::ZERO);
            c.disconnected(B, Instant::ZERO, &mut rng);
            assert!(c.can_connect(B, Instant::ZERO), "{client}");
        }
    }
}
