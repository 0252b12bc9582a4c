//! The application driving a producer: what it sends, how fast, and when it stops.
//!
//! Sends are **evenly spaced** at `rate` records per second (a fixed interval, not Poisson:
//! the run is easier to read and the arrival process is not what these scenarios study). Below
//! 1 ms intervals the generator wakes once per millisecond and makes every send that fell due,
//! which bounds the number of timer events at high rates. With `rate = None` ("max") the
//! application sends whenever the producer can take another record, up to
//! [`MAX_SENDS_PER_WAKE`] per handler call so other nodes get their turn at the same instant.
//!
//! Keys are drawn uniformly from `0..keys` with the node's random stream; `keys = 0` sends
//! null keys. Value ids are `value_base + (incarnation << 32) + n`: unique across the run as
//! long as producers' `value_base`s are at least 2^40 apart and a producer restarts fewer than
//! 256 times. The application stops making new sends at `stop_at`; the producer still delivers
//! and retries what it holds.

use crate::compression::MessageProfile;
use crate::node::NodeId;
use crate::record::{Key, TopicId, ValueId};
use crate::time::{Duration, Instant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Most sends the application makes in one handler call ("max" rate or catching up).
pub const MAX_SENDS_PER_WAKE: u32 = 1_000;

/// What one producer application does.
#[derive(Clone, Debug)]
pub struct ProducerSpec {
    /// Run-wide index of the producer (the `producer` of its history events).
    pub index: u32,
    pub topic: TopicId,
    /// Records per second; `None` = as fast as the buffer allows ("max").
    pub rate: Option<f64>,
    /// Distinct keys; 0 = null keys.
    pub keys: u32,
    /// Value size in bytes.
    pub message_size: u32,
    /// What the values look like, for compression (`message_profile`).
    pub message_profile: MessageProfile,
    /// No new sends from this instant on.
    pub stop_at: Instant,
    pub bootstrap: Vec<NodeId>,
    /// Value ids are `value_base + ...` (see the module docs).
    pub value_base: u64,
    /// `[producers.transactions]`: how a transactional producer's application groups its
    /// sends (None for a producer without `transactional.id`).
    pub transactions: Option<TxnWorkload>,
    /// A bench's readiness phase (OpenMessaging Benchmark's `ensureTopicsAreReady`): the
    /// application makes no sends of its own until the host releases it
    /// ([`Workload::release`]), only the probe records the host asks for
    /// ([`Workload::probe`]). `stop_at` counts only from the release.
    pub held: bool,
    /// How long after the process first starts the application makes its first send (its
    /// rate's schedule starts then). Real services are not started in step with one another
    /// or with an operator's fault script; with every producer on one lattice from instant
    /// zero, a scripted fault hits the same phase of every batch cycle in every seed (an
    /// acks=1 leader killed "at 8s" never caught a batch its followers had not fetched yet).
    /// The host draws it per seed; a restart sends at once.
    pub start_phase: Duration,
}

/// `[producers.transactions]`: the application sends `records` records per transaction and
/// aborts a fraction `abort` of its transactions (it commits the rest).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TxnWorkload {
    /// Records per transaction; `None` (`records = "unlimited"`): the application never ends
    /// its transaction, neither when it stops (a forgotten `commitTransaction()`): only the
    /// coordinator's `transaction.timeout.ms` ends it.
    pub records: Option<u32>,
    pub abort: f64,
}

impl TxnWorkload {
    /// The application never commits or aborts of its own accord.
    pub fn never_ends(&self) -> bool {
        self.records.is_none()
    }
}

impl Default for TxnWorkload {
    /// Without a `[producers.transactions]` table: 10 records per transaction, none aborted.
    fn default() -> TxnWorkload {
        TxnWorkload {
            records: Some(10),
            abort: 0.0,
        }
    }
}

/// The application's sending state.
#[derive(Debug)]
pub struct Workload {
    spec: ProducerSpec,
    interval: Option<Duration>,
    incarnation: u64,
    next_n: u64,
    next_due: Instant,
    /// When this incarnation started (or was released): the origin of the rate's schedule.
    started: Instant,
    /// Sends made before `started` (probes): not part of the schedule.
    unscheduled: u64,
    /// Held by a bench's readiness phase (see [`ProducerSpec::held`]).
    held: bool,
    /// Probe records asked for and not sent yet.
    probes: u32,
}

#[cfg(test)]
impl ProducerSpec {
    /// The unit tests' producer: index 0 of `topic`, no rate, keys or transactions, 100-byte
    /// records until `stop_at`, bootstrapping from `bootstrap`.
    pub(crate) fn for_test(topic: TopicId, bootstrap: Vec<NodeId>, stop_at: Instant) -> Self {
        ProducerSpec {
            index: 0,
            topic,
            rate: None,
            keys: 0,
            message_size: 100,
            message_profile: Default::default(),
            stop_at,
            bootstrap,
            value_base: 0,
            transactions: None,
            held: false,
            start_phase: Duration::ZERO,
        }
    }
}

impl Workload {
    pub fn new(spec: ProducerSpec) -> Workload {
        let interval = spec.rate.map(|rate| {
            assert!(
                rate.is_finite() && rate > 0.0,
                "producer {}: rate must be positive, got {rate}",
                spec.index
            );
            Duration::from_nanos(((1e9 / rate).round() as u64).max(1))
        });
        Workload {
            interval,
            incarnation: 0,
            next_n: 0,
            next_due: Instant::ZERO,
            started: Instant::ZERO,
            unscheduled: 0,
            held: spec.held,
            probes: 0,
            spec,
        }
    }

    pub fn spec(&self) -> &ProducerSpec {
        &self.spec
    }

    /// Start (or restart) at `now` as the `incarnation`-th life of this producer.
    pub fn start(&mut self, now: Instant, incarnation: u64) {
        assert!(
            incarnation < 256,
            "producer {} restarted 256 times",
            self.spec.index
        );
        self.incarnation = incarnation;
        self.next_n = 0;
        let first = if incarnation == 0 && !self.spec.held {
            now + self.spec.start_phase
        } else {
            now
        };
        self.next_due = first;
        self.started = first;
        self.unscheduled = 0;
        self.held = self.spec.held;
        self.probes = 0;
    }

    /// Send one probe record while held: OMB's `LocalWorker.probeProducers` sends one record
    /// per producer and waits until the consumers have received them.
    pub fn probe(&mut self) {
        if self.held {
            self.probes += 1;
        }
    }

    /// Whether the application is still held by a bench's readiness phase.
    pub fn held(&self) -> bool {
        self.held
    }

    /// The readiness phase is over: the load starts now, its rate's schedule from now, and
    /// the application makes no new sends from `stop_at` on.
    pub fn release(&mut self, now: Instant, stop_at: Instant) {
        if !self.held {
            return;
        }
        self.held = false;
        self.probes = 0;
        self.spec.stop_at = stop_at;
        self.next_due = now;
        self.started = now;
        self.unscheduled = self.next_n;
    }

    /// Whether the application has stopped making new sends.
    pub fn stopped(&self, now: Instant) -> bool {
        now >= self.spec.stop_at
    }

    /// Whether a new send is due at `now` (the caller checks capacity).
    pub fn due(&self, now: Instant) -> bool {
        if self.held {
            return self.probes > 0;
        }
        !self.stopped(now) && now >= self.next_due
    }

    /// When the next send falls due, if the application still sends then.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        if self.held {
            return None; // a probe or the release comes from the host
        }
        let at = match self.interval {
            Some(i) if i < Duration::from_millis(1) => {
                self.next_due.max(now + Duration::from_millis(1))
            }
            _ => self.next_due,
        };
        (at < self.spec.stop_at).then_some(at)
    }

    /// Make the next send: its value id, key and the instant the rate's schedule had it due.
    /// A sync application calls this only after the previous send completed, so its next
    /// send is due no earlier than now.
    ///
    /// The schedule is OpenMessaging Benchmark's (`UniformRateLimiter.acquire`: the n-th send
    /// of a limiter started at `start` is due at `start + n × interval`), kept apart from
    /// `next_due`: a sync application that waited does not send early to catch up, but its
    /// sends stay late against the schedule, which is what the publish delay shows.
    pub fn take(
        &mut self,
        now: Instant,
        rng: &mut ChaCha8Rng,
    ) -> (ValueId, Option<Key>, Option<Instant>) {
        let probe = self.held;
        let scheduled = self.interval.filter(|_| !probe).map(|interval| {
            let offset = crate::time::duration_nanos(interval)
                .saturating_mul(self.next_n - self.unscheduled);
            let at = Instant::from_nanos(self.started.as_nanos().saturating_add(offset));
            assert!(
                at <= now,
                "producer {}: send {} taken at {now} before its schedule {at}",
                self.spec.index,
                self.next_n
            );
            at
        });
        let value = ValueId(self.spec.value_base + (self.incarnation << 32) + self.next_n);
        self.next_n += 1;
        assert!(
            self.next_n < 1 << 32,
            "producer {} ran out of value ids",
            self.spec.index
        );
        if probe {
            // OMB's probe: one record with a fixed key ("key").
            self.probes -= 1;
            return (value, (self.spec.keys > 0).then_some(Key(0)), None);
        }
        let key = (self.spec.keys > 0).then(|| Key(rng.gen_range(0..self.spec.keys)));
        if let Some(interval) = self.interval {
            self.next_due += interval;
        } else {
            self.next_due = now;
        }
        (value, key, scheduled)
    }

    /// A sync application that waited for a send cannot have fallen behind meanwhile: it
    /// sends its next record no earlier than when the previous one completed.
    pub fn resume_after_wait(&mut self, now: Instant) {
        self.next_due = self.next_due.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn spec(rate: Option<f64>, keys: u32) -> ProducerSpec {
        ProducerSpec {
            index: 2,
            topic: TopicId(0),
            rate,
            keys,
            message_size: 100,
            message_profile: MessageProfile::Random,
            stop_at: Instant::from_millis(10),
            bootstrap: vec![NodeId(0)],
            value_base: 1 << 40,
            transactions: None,
            held: false,
            start_phase: Duration::ZERO,
        }
    }

    /// The first life waits out its start phase, then keeps the rate's schedule from there;
    /// a restart sends at once.
    #[test]
    fn the_first_life_starts_its_schedule_after_its_phase() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut w = Workload::new(ProducerSpec {
            start_phase: Duration::from_micros(700),
            stop_at: Instant::from_millis(100),
            ..spec(Some(500.0), 0)
        });
        w.start(Instant::ZERO, 0);
        assert!(!w.due(Instant::from_nanos(699_000)));
        assert_eq!(
            w.next_wake(Instant::ZERO),
            Some(Instant::from_nanos(700_000))
        );
        let (_, _, at) = w.take(Instant::from_nanos(700_000), &mut rng);
        assert_eq!(at, Some(Instant::from_nanos(700_000)));
        assert_eq!(
            w.next_wake(Instant::from_nanos(700_000)),
            Some(Instant::from_nanos(2_700_000))
        );
        w.start(Instant::from_millis(50), 1);
        assert!(w.due(Instant::from_millis(50)), "a restart does not wait");
    }

    #[test]
    fn evenly_spaced_and_unique_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut w = Workload::new(spec(Some(500.0), 0));
        w.start(Instant::ZERO, 1);
        assert!(w.due(Instant::ZERO));
        let (v0, k0, _) = w.take(Instant::ZERO, &mut rng);
        assert_eq!(v0, ValueId((1 << 40) + (1 << 32)));
        assert_eq!(k0, None);
        assert!(!w.due(Instant::from_millis(1)));
        assert_eq!(w.next_wake(Instant::ZERO), Some(Instant::from_millis(2)));
        let (v1, _, _) = w.take(Instant::from_millis(2), &mut rng);
        assert_eq!(v1.0, v0.0 + 1);
        assert!(w.stopped(Instant::from_millis(10)));
        assert!(!w.due(Instant::from_millis(10)));
    }

    #[test]
    fn the_schedule_is_start_plus_n_intervals_even_after_a_wait() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut w = Workload::new(spec(Some(500.0), 0));
        w.start(Instant::from_millis(1), 0);
        let (_, _, s0) = w.take(Instant::from_millis(1), &mut rng);
        assert_eq!(s0, Some(Instant::from_millis(1)));
        // A sync application waited 5 ms for its first send: its next send leaves at 6 ms,
        // 4 ms behind the schedule's 3 ms (the delay stays, it is not forgiven).
        w.resume_after_wait(Instant::from_millis(6));
        assert!(!w.due(Instant::from_millis(5)));
        let (_, _, s1) = w.take(Instant::from_millis(6), &mut rng);
        assert_eq!(s1, Some(Instant::from_millis(3)));
        // Without a rate there is no schedule.
        let mut max = Workload::new(spec(None, 0));
        max.start(Instant::ZERO, 0);
        assert_eq!(max.take(Instant::ZERO, &mut rng).2, None);
    }

    #[test]
    fn a_held_application_sends_only_probes_until_released() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut w = Workload::new(ProducerSpec {
            held: true,
            stop_at: Instant::MAX,
            ..spec(Some(500.0), 3)
        });
        w.start(Instant::ZERO, 0);
        assert!(!w.due(Instant::from_millis(5)));
        assert_eq!(w.next_wake(Instant::ZERO), None);
        w.probe();
        assert!(w.due(Instant::from_millis(5)));
        let (v0, k0, s0) = w.take(Instant::from_millis(5), &mut rng);
        assert_eq!((k0, s0), (Some(Key(0)), None), "a probe has no schedule");
        assert!(!w.due(Instant::from_millis(6)));
        // Released at 100 ms for 10 ms: the schedule starts there.
        w.release(Instant::from_millis(100), Instant::from_millis(110));
        assert!(!w.held());
        assert!(w.due(Instant::from_millis(100)));
        let (v1, _, s1) = w.take(Instant::from_millis(100), &mut rng);
        assert_eq!(v1.0, v0.0 + 1);
        assert_eq!(s1, Some(Instant::from_millis(100)));
        let (_, _, s2) = w.take(Instant::from_millis(103), &mut rng);
        assert_eq!(s2, Some(Instant::from_millis(102)));
        assert!(w.stopped(Instant::from_millis(110)));
        // A restarted incarnation is held again until the host releases it.
        w.start(Instant::from_millis(200), 1);
        assert!(w.held());
    }

    #[test]
    fn keys_are_drawn_from_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut w = Workload::new(spec(None, 3));
        w.start(Instant::ZERO, 0);
        for _ in 0..50 {
            let (_, k, _) = w.take(Instant::ZERO, &mut rng);
            assert!(k.unwrap().0 < 3);
        }
    }

    #[test]
    fn high_rates_wake_once_per_millisecond() {
        let mut w = Workload::new(spec(Some(100_000.0), 0));
        w.start(Instant::ZERO, 0);
        assert_eq!(w.next_wake(Instant::ZERO), Some(Instant::from_millis(1)));
    }
}
