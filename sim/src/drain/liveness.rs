//! The liveness window of the drain: how long a run may go without progress before it is a
//! `stall`, derived from the scenario's own timeouts (see [`Liveness::of`]).

use super::{DRAIN_CAP_WINDOWS, MIN_DRAIN_CAP};
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::connection_setup;
use kafsim_engine::consumer::config::ConsumerConfig;
use kafsim_engine::producer::config::ProducerConfig;
use kafsim_engine::Duration;

/// How long the run may go without any progress before it is a `stall`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    pub window: Duration,
    /// The timeout the window is derived from, by its Kafka name, e.g.
    /// "consumer max.poll.interval.ms".
    pub longest: String,
    pub longest_value: Duration,
    /// Hard cap of an automatic drain.
    pub cap: Duration,
}

impl Liveness {
    /// From the prepared configurations. The timeouts that can legitimately delay progress:
    /// a consumer waits out `session.timeout.ms` before a dead member's partitions move,
    /// `max.poll.interval.ms` (Java's rebalance timeout) before a slow member is dropped and
    /// for a rebalance to complete, `request.timeout.ms` for an unanswered request; a producer
    /// waits `request.timeout.ms`, up to `delivery.timeout.ms` for a batch, `max.block.ms` in
    /// send(); a broker waits `replica.lag.time.max.ms` before shrinking the ISR (acks=all
    /// waits with it), `replica.socket.timeout.ms` for a lost follower fetch, the controller
    /// `broker.session.timeout.ms` before it fences a dead broker, the coordinator
    /// `group.initial.rebalance.delay.ms`; and a client waits its connection setup timeout
    /// for a broker it cannot reach (`connection_setup.rs`: the longest of each client's, Java
    /// growing to `socket.connection.setup.timeout.max.ms`, librdkafka's and sarama's 30 s,
    /// the kernel's 127 s for a client version without one). Recovering from one fault can take one such wait
    /// to notice the failure and another for what follows (a request times out against a dead
    /// leader, then the group rebalances), hence twice the longest.
    pub fn of<'a>(
        broker: &BrokerConfig,
        producers: impl IntoIterator<Item = &'a ProducerConfig>,
        consumers: impl IntoIterator<Item = &'a ConsumerConfig>,
    ) -> Liveness {
        let mut timeouts: Vec<(&str, Duration)> = vec![
            (
                "broker replica.lag.time.max.ms",
                broker.replica_lag_time_max,
            ),
            (
                "broker replica.socket.timeout.ms",
                broker.replica_socket_timeout,
            ),
            (
                "controller broker.session.timeout.ms",
                broker.broker_session_timeout,
            ),
            (
                "coordinator group.initial.rebalance.delay.ms",
                broker.group_initial_rebalance_delay,
            ),
        ];
        // After every other timeout, so an equal one keeps its name.
        let mut setups: Vec<(&str, Duration)> = Vec::new();
        for p in producers {
            timeouts.push(("producer request.timeout.ms", p.request_timeout));
            timeouts.push(("producer max.block.ms", p.max_block));
            if let Some(d) = p.delivery_timeout {
                timeouts.push(("producer delivery.timeout.ms", d));
            }
            if p.transactional_id.is_some() {
                // A transaction its producer left open blocks read_committed consumers (the
                // LSO) until the coordinator aborts it.
                timeouts.push(("producer transaction.timeout.ms", p.transaction_timeout));
            }
            let version = kafsim_engine::config::ClientVersion::parse(&p.client_version)
                .map_or((u32::MAX, 0), |v| v.major_minor());
            setups.push((
                connection_setup::window_name(p.client, version, true),
                p.setup_timeout().longest(),
            ));
        }
        for c in consumers {
            timeouts.push(("consumer session.timeout.ms", c.session_timeout));
            timeouts.push(("consumer max.poll.interval.ms", c.max_poll_interval));
            timeouts.push(("consumer rebalance timeout", c.rebalance_timeout));
            timeouts.push(("consumer request.timeout.ms", c.request_timeout));
            setups.push((
                connection_setup::window_name(c.client, c.client_version, false),
                c.setup_timeout().longest(),
            ));
        }
        timeouts.extend(setups);
        // The first of equal timeouts names the window (a stable choice).
        let (name, longest) =
            timeouts
                .iter()
                .fold(timeouts[0], |best, t| if t.1 > best.1 { *t } else { best });
        let window = longest * 2;
        Liveness {
            window,
            longest: name.to_string(),
            longest_value: longest,
            cap: MIN_DRAIN_CAP.max(window * DRAIN_CAP_WINDOWS as u32),
        }
    }
}
