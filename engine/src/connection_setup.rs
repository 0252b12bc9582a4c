//! Connection setup timeouts: how long a client waits for a new TCP connection to a broker
//! that does not answer (a host cut off by a network partition, or dark after a power loss)
//! before it gives up on that connection and tries again. A live host whose process is gone
//! refuses at once (`ConnectionRefused`), and a paused process's kernel still completes the
//! handshake, so the bound matters only for unreachable hosts. Each client's own code:
//!
//! - Java (`ClusterConnectionStates` with `ExponentialBackoff`, KIP-601, 2.7+):
//!   `socket.connection.setup.timeout.ms` (10 s) for a first attempt, doubled per consecutive
//!   failed attempt (`updateConnectionSetupTimeout` on `disconnected` while CONNECTING:
//!   timed out or refused alike) up to `socket.connection.setup.timeout.max.ms` (127 s in
//!   2.7, 30 s since 2.8: "socket setup max should be 30 seconds"), each value drawn with
//!   ±20 % jitter and capped at the maximum; a connection that got established resets it
//!   (`checkingApiVersions`, `ready`, or `disconnected` after CONNECTING). Checked by
//!   `NetworkClient.handleTimedOutConnections`, measured from the connect call. Before 2.7
//!   the client had no bound of its own: the kernel gives up on an unanswered SYN after
//!   `tcp_syn_retries` = 6 retransmissions (1 + 2 + ... + 64 = 127 s).
//! - librdkafka (`rd_kafka_broker_thread_main`'s connect states in rdkafka_broker.c, from
//!   `rkb_ts_connect`; CHANGELOG 1.9.0): `socket.connection.setup.timeout.ms` 30 s, fixed
//!   ("the Java clients has an exponential backoff to this timeout ... this was not
//!   implemented in librdkafka"); before 1.9.0 the kernel's 127 s.
//! - sarama (`Broker.Open` dials with `Config.getDialer`: `net.Dialer{Timeout:
//!   Net.DialTimeout}`, config.go): 30 s, fixed; requests wait for the dial (`b.lock`).
//! - kafka-go: a `Writer` dials through its `Transport` (`connGroup.connect`, transport.go),
//!   within `Transport.DialTimeout` (5 s) but with the default `net.Dialer{Timeout: 3s}`, so
//!   an unanswered SYN fails after 3 s; a `NewWriter` dials with its `Dialer`
//!   (`DefaultDialer.Timeout` 10 s) within the same 5 s. A `Reader` dials with its `Dialer`
//!   (10 s, dialer.go). Fixed.
//!
//! kafsim counts a connection as *connecting* from the first request sent on it until a
//! message arrives from the peer or, when the timeout comes due, the host's kernel says the
//! handshake got through ([`crate::Cx::established`]). Java's jitter is drawn when the
//! earliest possible timeout (0.8 of the value) comes due with the connection still not
//! established: the same distribution as drawing it up front, and a connection that works
//! never takes anything from the node's random stream.

use crate::client::ClientKind;
use crate::node::NodeId;
use crate::time::{Duration, Instant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Linux's give-up time for an unanswered SYN with `tcp_syn_retries` = 6 (initial RTO 1 s,
/// doubling: 1 + 2 + 4 + 8 + 16 + 32 + 64 s): the bound of a client that has none of its own.
pub const KERNEL_SYN_TIMEOUT: Duration = Duration::from_secs(127);

/// Java `ClusterConnectionStates.CONNECTION_SETUP_TIMEOUT_JITTER`.
const JAVA_JITTER: f64 = 0.2;

/// A client's connection setup timeout: the first attempt's value, the most it grows to
/// (equal to `initial`: no growth) and the jitter of each drawn value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SetupTimeout {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl SetupTimeout {
    /// A fixed timeout (sarama, kafka-go, librdkafka, the kernel's).
    pub fn fixed(value: Duration) -> SetupTimeout {
        SetupTimeout {
            initial: value,
            max: value,
            jitter: 0.0,
        }
    }

    /// Java's: `socket.connection.setup.timeout.ms` growing to `.max.ms`, ±20 %. As
    /// `ExponentialBackoff`, an initial value above the maximum is a constant maximum, and a
    /// constant one is not jittered.
    pub fn java(initial: Duration, max: Duration) -> SetupTimeout {
        let initial = initial.min(max);
        let jitter = if max > initial { JAVA_JITTER } else { 0.0 };
        SetupTimeout {
            initial,
            max,
            jitter,
        }
    }

    /// The value before jitter after `failures` consecutive failed attempts
    /// (`ExponentialBackoff.backoff`: `initial · 2^min(failures, log2(max / initial))`).
    pub fn nominal(&self, failures: u32) -> Duration {
        if self.max <= self.initial {
            return self.initial;
        }
        let initial_ms = self.initial.as_millis().max(1) as f64;
        let exp_max = (self.max.as_millis() as f64 / initial_ms).log2();
        let term = initial_ms * 2f64.powf((failures as f64).min(exp_max));
        Duration::from_millis(term as u64)
    }

    /// The longest one attempt may wait: the maximum (Java caps the jittered value at it).
    pub fn longest(&self) -> Duration {
        self.max.max(self.initial)
    }

    /// The earliest instant an attempt begun at `since` after `failures` failures can time out.
    fn earliest(&self, since: Instant, failures: u32) -> Instant {
        let low = self.nominal(failures).as_secs_f64() * (1.0 - self.jitter);
        since + Duration::from_nanos((low * 1e9) as u64).min(self.max)
    }

    /// Draw the attempt's timeout (`random(1 - jitter, 1 + jitter) · nominal`, capped).
    fn draw(&self, failures: u32, rng: &mut ChaCha8Rng) -> Duration {
        let nominal = self.nominal(failures);
        if self.jitter == 0.0 {
            return nominal;
        }
        let factor = rng.gen_range(1.0 - self.jitter..1.0 + self.jitter);
        let ms = (factor * nominal.as_millis() as f64) as u64;
        Duration::from_millis(ms).min(self.max)
    }
}

/// Each client's default `(socket.connection.setup.timeout.ms, .max.ms)` at `version`
/// (major, minor); the two are equal where the timeout does not grow.
pub fn defaults(client: ClientKind, version: (u32, u32)) -> (Duration, Duration) {
    let s = Duration::from_secs;
    match client {
        ClientKind::Java if version >= (2, 8) => (s(10), s(30)),
        ClientKind::Java if version >= (2, 7) => (s(10), s(127)),
        ClientKind::Java => (KERNEL_SYN_TIMEOUT, KERNEL_SYN_TIMEOUT),
        ClientKind::Librdkafka if version >= (1, 9) => (s(30), s(30)),
        ClientKind::Librdkafka => (KERNEL_SYN_TIMEOUT, KERNEL_SYN_TIMEOUT),
        ClientKind::Sarama => (s(30), s(30)),
        // The Reader's Dialer and the Writer's Transport differ: see `kafka_go_writer`.
        ClientKind::KafkaGo => (s(10), s(10)),
    }
}

/// kafka-go's `Transport.DialTimeout` default (transport.go `dialTimeout`).
pub const KAFKA_GO_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeout of a kafka-go Writer whose `Transport.DialTimeout` is `dial_timeout`: a
/// `Writer` literal's transport connects with the 3 s `net.Dialer` (`defaultDialer` in
/// transport.go, or `DefaultTransport`'s), a `NewWriter`'s with its `Dialer` (10 s), both
/// within `DialTimeout`.
pub fn kafka_go_writer(dial_timeout: Duration, new_writer: bool) -> Duration {
    let dialer = if new_writer {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(3)
    };
    dial_timeout.min(dialer)
}

/// The policy of a client with these settings.
pub fn policy(client: ClientKind, initial: Duration, max: Duration) -> SetupTimeout {
    match client {
        ClientKind::Java => SetupTimeout::java(initial, max),
        _ => SetupTimeout::fixed(initial),
    }
}

/// The two keys, in a client config's known-key list.
pub const KEYS: [&str; 2] = [
    "socket.connection.setup.timeout.ms",
    "socket.connection.setup.timeout.max.ms",
];

/// Set one of [`KEYS`] (milliseconds) on a client's `(initial, max)`: every client takes the
/// first (sarama's `Net.DialTimeout`, kafka-go's `Transport.DialTimeout` / `Dialer.Timeout`
/// through their aliases), which for a client without growth is the maximum too; only Java
/// has the second. A version without the property is an error, as the client's own
/// configuration refuses (librdkafka) or ignores (Java) it.
pub fn set(
    client: ClientKind,
    version: (u32, u32),
    key: &str,
    value: Duration,
    setting: &mut (Duration, Duration),
) -> Result<(), String> {
    let (since, since_name) = match client {
        ClientKind::Java => ((2, 7), "Java 2.7 (KIP-601)"),
        ClientKind::Librdkafka => ((1, 9), "librdkafka 1.9.0"),
        _ => ((0, 0), ""),
    };
    if version < since {
        return Err(format!(
            "{key}: the property exists since {since_name}; this client is {}.{}, which \
             waits for the kernel to give up on an unanswered SYN (127 s)\nhint: set a newer \
             client_version or remove the key",
            version.0, version.1
        ));
    }
    match (key, client) {
        ("socket.connection.setup.timeout.max.ms", ClientKind::Java) => setting.1 = value,
        ("socket.connection.setup.timeout.max.ms", other) => {
            return Err(format!(
                "{key} is Java's: {} keeps one fixed connection setup timeout, which does \
                 not grow\nhint: set socket.connection.setup.timeout.ms (the client's own \
                 name: {})",
                other.name(),
                own_name(other)
            ))
        }
        (_, ClientKind::Java) => setting.0 = value,
        _ => *setting = (value, value),
    }
    Ok(())
}

/// The client's own name for its connection setup timeout.
fn own_name(client: ClientKind) -> &'static str {
    match client {
        ClientKind::Sarama => "Net.DialTimeout",
        ClientKind::KafkaGo => "Transport.DialTimeout for a Writer, Dialer.Timeout for a Reader",
        _ => "socket.connection.setup.timeout.ms",
    }
}

/// How the drain's liveness window names a client's longest connection setup wait: the
/// client's own setting (Java's maximum, since the timeout grows to it), or the kernel's SYN
/// timeout for a version without one.
pub fn window_name(client: ClientKind, version: (u32, u32), producer: bool) -> &'static str {
    let old = match client {
        ClientKind::Java => version < (2, 7),
        ClientKind::Librdkafka => version < (1, 9),
        _ => false,
    };
    match (client, producer) {
        _ if old && producer => "producer TCP connect (no setup timeout: kernel tcp_syn_retries)",
        _ if old => "consumer TCP connect (no setup timeout: kernel tcp_syn_retries)",
        (ClientKind::Java, true) => "java producer socket.connection.setup.timeout.max.ms",
        (ClientKind::Java, false) => "java consumer socket.connection.setup.timeout.max.ms",
        (ClientKind::Librdkafka, true) => "librdkafka producer socket.connection.setup.timeout.ms",
        (ClientKind::Librdkafka, false) => "librdkafka consumer socket.connection.setup.timeout.ms",
        (ClientKind::Sarama, true) => "sarama producer Net.DialTimeout",
        (ClientKind::Sarama, false) => "sarama consumer Net.DialTimeout",
        (ClientKind::KafkaGo, true) => "kafka-go Writer dial timeout (Transport.DialTimeout)",
        (ClientKind::KafkaGo, false) => "kafka-go Reader Dialer.Timeout",
    }
}

/// One connection attempt in progress.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    since: Instant,
    /// Drawn once the earliest timeout passed with the connection not yet established.
    deadline: Option<Instant>,
}

#[derive(Clone, Copy, Debug, Default)]
struct NodeSetup {
    /// Consecutive attempts that ended before the connection was established (Java
    /// `failedConnectAttempts`).
    failures: u32,
    attempt: Option<Attempt>,
    /// The current connection works (it was established and has not ended since).
    connected: bool,
}

/// The connection attempts of one client, per broker.
#[derive(Clone, Debug)]
pub struct ConnectionSetup {
    policy: SetupTimeout,
    nodes: BTreeMap<NodeId, NodeSetup>,
}

impl ConnectionSetup {
    pub fn new(policy: SetupTimeout) -> ConnectionSetup {
        assert!(
            policy.initial > Duration::ZERO,
            "a zero connection setup timeout"
        );
        ConnectionSetup {
            policy,
            nodes: BTreeMap::new(),
        }
    }

    pub fn policy(&self) -> SetupTimeout {
        self.policy
    }

    /// A request goes to `broker` on a connection not known to work: an attempt starts at
    /// `now` unless one is under way.
    pub fn connecting(&mut self, broker: NodeId, now: Instant) {
        let node = self.nodes.entry(broker).or_default();
        if node.attempt.is_none() && !node.connected {
            node.attempt = Some(Attempt {
                since: now,
                deadline: None,
            });
        }
    }

    /// Whether an attempt to `broker` is under way.
    pub fn is_connecting(&self, broker: NodeId) -> bool {
        self.nodes.get(&broker).is_some_and(|n| n.attempt.is_some())
    }

    /// The connection to `broker` works (a message arrived on it, or the kernel says its
    /// handshake got through): the timeout is back to its first value.
    pub fn established(&mut self, broker: NodeId) {
        let node = self.nodes.entry(broker).or_default();
        node.attempt = None;
        node.failures = 0;
        node.connected = true;
    }

    /// The connection to `broker` ended: an attempt that never got established counts as a
    /// failure (the next one waits longer, Java only); a working connection's end resets.
    pub fn ended(&mut self, broker: NodeId) {
        if let Some(node) = self.nodes.get_mut(&broker) {
            node.connected = false;
            if node.attempt.take().is_some() {
                node.failures = node.failures.saturating_add(1);
            } else {
                node.failures = 0;
            }
        }
    }

    /// When the next attempt may time out (a wake-up for the caller), if any is under way.
    pub fn next_check(&self) -> Option<Instant> {
        self.nodes
            .values()
            .filter_map(|n| {
                let a = n.attempt?;
                Some(
                    a.deadline
                        .unwrap_or_else(|| self.policy.earliest(a.since, n.failures)),
                )
            })
            .min()
    }

    /// The brokers whose attempt timed out at `now`, oldest broker id first. An attempt the
    /// kernel reports `established` is over (it worked); the caller closes the others'
    /// connections and calls [`ConnectionSetup::ended`] for them.
    pub fn timed_out(
        &mut self,
        now: Instant,
        rng: &mut ChaCha8Rng,
        established: impl Fn(NodeId) -> bool,
    ) -> Vec<NodeId> {
        let policy = self.policy;
        let mut out = Vec::new();
        for (broker, node) in self.nodes.iter_mut() {
            let Some(attempt) = node.attempt.as_mut() else {
                continue;
            };
            if policy.earliest(attempt.since, node.failures) > now {
                continue;
            }
            if established(*broker) {
                node.attempt = None;
                node.failures = 0;
                node.connected = true;
                continue;
            }
            let deadline = *attempt
                .deadline
                .get_or_insert_with(|| attempt.since + policy.draw(node.failures, rng));
            if deadline <= now {
                out.push(*broker);
            }
        }
        out
    }

    /// [`ConnectionSetup::timed_out`] at the handler's instant, asking its host's kernel
    /// which connections are established and drawing from the node's random stream.
    pub fn timed_out_in(&mut self, cx: &mut crate::node::Cx) -> Vec<NodeId> {
        let now = cx.now();
        let established: BTreeSet<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.attempt.is_some())
            .map(|(b, _)| *b)
            .filter(|b| cx.established(*b))
            .collect();
        self.timed_out(now, cx.rng(), |b| established.contains(&b))
    }

    /// The value (before jitter) the next attempt to `broker` would get.
    pub fn current(&self, broker: NodeId) -> Duration {
        let failures = self.nodes.get(&broker).map_or(0, |n| n.failures);
        self.policy.nominal(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const B: NodeId = NodeId(4);

    /// Attempts that never get established, each retried at once: the waits.
    fn waits(policy: SetupTimeout, n: usize) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut s = ConnectionSetup::new(policy);
        let mut now = Instant::from_millis(1_000);
        let mut out = Vec::new();
        for _ in 0..n {
            s.connecting(B, now);
            let start = now;
            loop {
                let check = s.next_check().expect("an attempt");
                assert!(check >= now);
                now = check;
                if s.timed_out(now, &mut rng, |_| false) == vec![B] {
                    break;
                }
            }
            s.ended(B);
            out.push(now.saturating_since(start).as_millis() as u64);
        }
        out
    }

    #[test]
    fn java_grows_from_10_s_to_30_s_with_20_percent_jitter() {
        let (initial, max) = defaults(ClientKind::Java, (4, 0));
        assert_eq!((initial.as_millis(), max.as_millis()), (10_000, 30_000));
        let w = waits(policy(ClientKind::Java, initial, max), 6);
        for (i, wait) in w.iter().enumerate() {
            let nominal = 10_000.0 * 2f64.powf((i as f64).min(3f64.log2()));
            let (low, high) = (nominal * 0.8, (nominal * 1.2).min(30_000.0));
            assert!(
                (*wait as f64) >= low - 1.0 && (*wait as f64) <= high,
                "attempt {i}: {wait} ms (nominal {nominal}): {w:?}"
            );
        }
        assert!(w[0] < 12_001 && w[1] >= 16_000 && w[3] >= 24_000, "{w:?}");
        assert!(
            w.iter().all(|x| *x <= 30_000),
            "capped at the maximum: {w:?}"
        );
    }

    #[test]
    fn java_2_7_grows_to_127_s_and_older_ones_wait_for_the_kernel() {
        assert_eq!(
            defaults(ClientKind::Java, (2, 7)),
            (Duration::from_secs(10), Duration::from_secs(127))
        );
        let (i, m) = defaults(ClientKind::Java, (2, 6));
        assert_eq!(waits(policy(ClientKind::Java, i, m), 2), vec![127_000; 2]);
    }

    #[test]
    fn an_established_connection_resets_the_growth() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = ConnectionSetup::new(SetupTimeout::java(
            Duration::from_secs(10),
            Duration::from_secs(30),
        ));
        for _ in 0..3 {
            s.connecting(B, Instant::ZERO);
            s.ended(B);
        }
        assert_eq!(s.current(B), Duration::from_secs(30));
        // The kernel says the next attempt got through: no timeout, and back to 10 s.
        s.connecting(B, Instant::ZERO);
        let late = Instant::ZERO + Duration::from_secs(60);
        assert!(s.timed_out(late, &mut rng, |_| true).is_empty());
        assert!(!s.is_connecting(B));
        assert_eq!(s.current(B), Duration::from_secs(10));
        // A working connection that ends resets too.
        s.connecting(B, late);
        s.ended(B);
        s.connecting(B, late);
        s.established(B);
        s.ended(B);
        assert_eq!(s.current(B), Duration::from_secs(10));
    }

    #[test]
    fn sarama_librdkafka_and_kafka_go_wait_a_fixed_time() {
        let cases = [
            (ClientKind::Sarama, (1, 43), 30_000),
            (ClientKind::Librdkafka, (2, 6), 30_000),
            (ClientKind::Librdkafka, (1, 8), 127_000),
            (ClientKind::KafkaGo, (0, 4), 10_000),
        ];
        for (client, version, ms) in cases {
            let (i, m) = defaults(client, version);
            assert_eq!(waits(policy(client, i, m), 3), vec![ms; 3], "{client:?}");
        }
        assert_eq!(
            kafka_go_writer(KAFKA_GO_DIAL_TIMEOUT, false),
            Duration::from_secs(3)
        );
        assert_eq!(
            kafka_go_writer(KAFKA_GO_DIAL_TIMEOUT, true),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn the_keys_follow_each_client() {
        let ms = Duration::from_millis;
        let mut java = defaults(ClientKind::Java, (3, 9));
        set(ClientKind::Java, (3, 9), KEYS[0], ms(2_000), &mut java).unwrap();
        set(ClientKind::Java, (3, 9), KEYS[1], ms(8_000), &mut java).unwrap();
        assert_eq!(java, (ms(2_000), ms(8_000)));
        let mut sarama = defaults(ClientKind::Sarama, (1, 43));
        set(ClientKind::Sarama, (1, 43), KEYS[0], ms(5_000), &mut sarama).unwrap();
        assert_eq!(sarama, (ms(5_000), ms(5_000)));
        let e = set(ClientKind::Sarama, (1, 43), KEYS[1], ms(1), &mut sarama).unwrap_err();
        assert!(e.contains("Net.DialTimeout"), "{e}");
        let e = set(ClientKind::Java, (2, 6), KEYS[0], ms(1), &mut java).unwrap_err();
        assert!(e.contains("2.7"), "{e}");
        let e = set(ClientKind::Librdkafka, (1, 8), KEYS[0], ms(1), &mut java).unwrap_err();
        assert!(e.contains("1.9.0"), "{e}");
    }

    #[test]
    fn a_connection_that_works_draws_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let before = rng.clone();
        let mut s = ConnectionSetup::new(SetupTimeout::java(
            Duration::from_secs(10),
            Duration::from_secs(30),
        ));
        s.connecting(B, Instant::ZERO);
        let early = Instant::ZERO + Duration::from_millis(7_999);
        assert!(s.timed_out(early, &mut rng, |_| false).is_empty());
        s.established(B);
        assert_eq!(s.next_check(), None);
        assert_eq!(rng.gen::<u64>(), before.clone().gen::<u64>());
    }
}
