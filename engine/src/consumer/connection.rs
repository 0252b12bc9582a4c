//! The consumer's connections to brokers: when it may open one again after closing it.
//!
//! Every client closes its connection to a broker when a request on it goes unanswered for
//! the request timeout (see [`super::Consumer::expire_requests`]), and then waits before
//! connecting again:
//! - Java (`ClusterConnectionStates` with `ExponentialBackoff`): `reconnect.backoff.ms` (50)
//!   times 2^failures, capped at `reconnect.backoff.max.ms` (1000), times a jitter factor drawn
//!   from [0.8, 1.2) (`RECONNECT_BACKOFF_JITTER = 0.2`). `disconnected()` computes the backoff
//!   from the failures so far and then counts one more; `ready()` resets the count.
//! - librdkafka (`rd_kafka_broker_update_reconnect_backoff`): `reconnect.backoff.ms` (100),
//!   doubled after every attempt up to `reconnect.backoff.max.ms` (10000), with a -25 % .. +50 %
//!   jitter; the backoff restarts from the base when the last attempt is older than the max.
//! - sarama and kafka-go have no reconnect backoff of their own: sarama's `Broker.Open` and
//!   kafka-go's dialer connect on the next request (their retry backoffs, modelled elsewhere,
//!   pace the requests instead).
//!
//! kafsim has one connection per pair of nodes, so closing the connection to a broker also
//! fails what this consumer had in flight to that broker's group coordinator. Java keeps the
//! coordinator on a separate connection (node id `Integer.MAX_VALUE - coordinator id`), so a
//! timed-out fetch there leaves the coordinator requests alone: a known simplification.

use super::profile::ClientKind;
use crate::node::NodeId;
use crate::time::{Duration, Instant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// One client's reconnect backoff policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconnectBackoff {
    /// Connect again on the next request.
    None,
    /// Java's `ExponentialBackoff(base, 2, max, 0.2)`.
    Java { base: Duration, max: Duration },
    /// librdkafka's doubling backoff with -25 % .. +50 % jitter.
    Librdkafka { base: Duration, max: Duration },
}

impl ReconnectBackoff {
    /// The default policy of `client`.
    pub fn for_client(client: ClientKind) -> ReconnectBackoff {
        let ms = Duration::from_millis;
        match client {
            ClientKind::Java => ReconnectBackoff::Java {
                base: ms(50),
                max: ms(1000),
            },
            ClientKind::Librdkafka => ReconnectBackoff::Librdkafka {
                base: ms(100),
                max: ms(10_000),
            },
            ClientKind::Sarama | ClientKind::KafkaGo => ReconnectBackoff::None,
        }
    }
}

/// Reconnect state of one broker.
#[derive(Clone, Copy, Debug, Default)]
struct Peer {
    /// Java: failed attempts since the last good connection.
    failures: u32,
    /// librdkafka: the backoff the next failure starts from (0 = the base).
    next_ms: u64,
    /// librdkafka `rkb_ts_reconnect`: when the last reconnect was allowed.
    last_attempt: Instant,
    /// No new connection before this instant.
    not_before: Instant,
}

/// The consumer's reconnect state per broker.
#[derive(Debug)]
pub struct Connections {
    policy: ReconnectBackoff,
    peers: BTreeMap<NodeId, Peer>,
}

impl Connections {
    pub fn new(policy: ReconnectBackoff) -> Connections {
        Connections {
            policy,
            peers: BTreeMap::new(),
        }
    }

    /// The connection to `peer` was closed at `now`: returns when it may be opened again.
    pub fn closed(&mut self, peer: NodeId, now: Instant, rng: &mut ChaCha8Rng) -> Instant {
        let p = self.peers.entry(peer).or_default();
        let wait_ms = match self.policy {
            ReconnectBackoff::None => 0,
            ReconnectBackoff::Java { base, max } => {
                let exp = p.failures.min(62);
                let term = base.as_millis() as f64 * 2f64.powi(exp as i32);
                let jittered = (term * rng.gen_range(0.8..1.2)) as u64;
                p.failures += 1;
                jittered.min(max.as_millis() as u64)
            }
            ReconnectBackoff::Librdkafka { base, max } => {
                let (base, max) = (base.as_millis() as u64, max.as_millis() as u64);
                if p.next_ms == 0 || p.last_attempt + Duration::from_millis(max) < now {
                    p.next_ms = base;
                }
                let low = p.next_ms * 3 / 4;
                let high = (p.next_ms * 3 / 2).max(low + 1);
                let wait = rng.gen_range(low..high).min(max);
                p.next_ms = (p.next_ms * 2).min(max);
                p.last_attempt = now + Duration::from_millis(wait);
                wait
            }
        };
        p.not_before = now + Duration::from_millis(wait_ms);
        p.not_before
    }

    /// `peer` answered: the connection is good (Java `ready()` resets the failure count).
    pub fn ready(&mut self, peer: NodeId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.failures = 0;
        }
    }

    /// When a connection to `peer` may be opened (`None`: at once).
    pub fn backing_off(&self, peer: NodeId, now: Instant) -> Option<Instant> {
        self.peers
            .get(&peer)
            .map(|p| p.not_before)
            .filter(|t| *t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn waits(policy: ReconnectBackoff, n: usize) -> Vec<u64> {
        let mut c = Connections::new(policy);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let now = Instant::ZERO + Duration::from_secs(1);
        (0..n)
            .map(|_| {
                c.closed(NodeId(1), now, &mut rng)
                    .saturating_since(now)
                    .as_millis() as u64
            })
            .collect()
    }

    #[test]
    fn java_backoff_doubles_from_50ms_to_1s_with_20_percent_jitter() {
        let w = waits(ReconnectBackoff::for_client(ClientKind::Java), 8);
        assert!((40..60).contains(&w[0]), "{w:?}");
        assert!((80..120).contains(&w[1]), "{w:?}");
        assert!((160..240).contains(&w[2]), "{w:?}");
        assert_eq!(w[7], 1000, "{w:?}");
    }

    #[test]
    fn java_backoff_restarts_after_a_good_connection() {
        let mut c = Connections::new(ReconnectBackoff::for_client(ClientKind::Java));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let now = Instant::ZERO;
        for _ in 0..5 {
            c.closed(NodeId(1), now, &mut rng);
        }
        c.ready(NodeId(1));
        let wait = c.closed(NodeId(1), now, &mut rng).saturating_since(now);
        assert!(wait < Duration::from_millis(60), "{wait:?}");
        assert!(c.backing_off(NodeId(1), now).is_some());
        assert!(c
            .backing_off(NodeId(1), now + Duration::from_secs(1))
            .is_none());
    }

    #[test]
    fn librdkafka_backoff_doubles_from_100ms_to_10s() {
        let w = waits(ReconnectBackoff::for_client(ClientKind::Librdkafka), 10);
        assert!((75..150).contains(&w[0]), "{w:?}");
        assert!((150..300).contains(&w[1]), "{w:?}");
        assert!(
            (7500..=10_000).contains(&w[9]),
            "capped at 10 s less the jitter: {w:?}"
        );
    }

    #[test]
    fn sarama_and_kafka_go_reconnect_at_once() {
        for client in [ClientKind::Sarama, ClientKind::KafkaGo] {
            let w = waits(ReconnectBackoff::for_client(client), 3);
            assert_eq!(w, vec![0, 0, 0]);
        }
    }
}
