//! Client profiles: each modelled consumer client's documented defaults and the behaviours that
//! differ between clients (when auto-commit fires and what it commits).
//!
//! Sources (defaults as of the newest modelled version of each client):
//! - Java (kafka-clients 3.x `ConsumerConfig`): enable.auto.commit true, auto.commit.interval.ms
//!   5000, auto.offset.reset latest, max.poll.records 500, session.timeout.ms 45000 since 3.0
//!   (KIP-735; 10000 before), heartbeat.interval.ms 3000, max.poll.interval.ms 300000,
//!   partition.assignment.strategy [RangeAssignor, CooperativeStickyAssignor] since 3.0 (range
//!   is chosen while every member lists it first), fetch.max.wait.ms 500.
//!   Auto-commit runs inside `poll()` (`maybeAutoCommitOffsetsAsync`) and commits the positions
//!   after the records the previous poll returned; also synchronously before a rebalance
//!   (`onJoinPrepare`) and on close.
//! - sarama (IBM/sarama 1.43 `NewConfig`): Consumer.Offsets.AutoCommit.Enable true, Interval
//!   1 s, Offsets.Initial OffsetNewest, Group.Session.Timeout 10 s, Heartbeat.Interval 3 s,
//!   Rebalance.Timeout 60 s, Rebalance strategy range, MaxWaitTime 500 ms (250 ms before 1.33:
//!   IBM/sarama#2227 "make default MaxWaitTime 500ms", in the v1.33.0 CHANGELOG).
//!   A background loop commits the *marked* offsets (`MarkMessage`) every interval and on close.
//!   sarama has no max.poll.interval: a slow handler is dropped only by a rebalance it cannot
//!   rejoin within Rebalance.Timeout (kafka-go likewise, with RebalanceTimeout).
//! - kafka-go (segmentio/kafka-go 0.4 `ReaderConfig`): CommitInterval 0 = commit synchronously
//!   inside ReadMessage (before the application sees the message), StartOffset FirstOffset,
//!   SessionTimeout 30 s, HeartbeatInterval 3 s, RebalanceTimeout 30 s, MaxWait 10 s,
//!   GroupBalancers [Range, RoundRobin]. ReadMessage returns one message at a time.
//! - librdkafka (2.x CONFIGURATION.md): enable.auto.commit true, auto.commit.interval.ms 5000
//!   (a background timer commits the *stored* offsets, stored when a message is returned to the
//!   application with enable.auto.offset.store=true), auto.offset.reset largest, session.timeout.ms
//!   45000 (since 1.9, KIP-735), heartbeat 3000, max.poll.interval.ms 300000,
//!   partition.assignment.strategy "range,roundrobin", isolation.level read_committed,
//!   fetch.wait.max.ms 500, socket.timeout.ms 60000 (its request timeout); `consumer_poll`
//!   returns one message at a time.

use crate::time::Duration;

pub use crate::client::ClientKind;

impl ClientKind {
    /// The newest modelled version, used when a scenario names none.
    pub fn newest_version(self) -> (u32, u32) {
        match self {
            ClientKind::Java => (3, 7),
            ClientKind::Sarama => (1, 43),
            ClientKind::KafkaGo => (0, 4),
            ClientKind::Librdkafka => (2, 3),
        }
    }
}

/// When the client's auto-commit fires and what it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCommitStyle {
    /// Java: at the start of `poll()` once the interval has passed, the positions after the
    /// records already returned (whether or not the application finished them).
    AtPoll,
    /// sarama / librdkafka / kafka-go with CommitInterval > 0: a background timer commits the
    /// marked (stored) offsets.
    Timer,
    /// kafka-go CommitInterval = 0: ReadMessage commits each message synchronously as it is
    /// read, before the application processes it.
    PerRecordSync,
}

/// The defaults one client version starts from (before scenario overrides).
#[derive(Clone, Debug)]
pub struct ProfileDefaults {
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub earliest: bool,
    pub max_poll_records: u32,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    pub rebalance_timeout: Duration,
    pub fetch_max_wait: Duration,
    pub strategies: Vec<String>,
    pub read_committed: bool,
    /// Periodic metadata refresh (see `partition_watch.rs`).
    pub metadata_max_age: Duration,
}

pub fn defaults(client: ClientKind, version: (u32, u32)) -> ProfileDefaults {
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    match client {
        ClientKind::Java => ProfileDefaults {
            enable_auto_commit: true,
            auto_commit_interval: ms(5000),
            earliest: false,
            max_poll_records: 500,
            session_timeout: if version.0 >= 3 { s(45) } else { s(10) },
            heartbeat_interval: s(3),
            max_poll_interval: s(300),
            rebalance_timeout: s(300),
            fetch_max_wait: ms(500),
            strategies: if version.0 >= 3 {
                names(&["range", "cooperative-sticky"])
            } else {
                names(&["range"])
            },
            read_committed: false,
            metadata_max_age: s(300),
        },
        ClientKind::Sarama => ProfileDefaults {
            enable_auto_commit: true,
            auto_commit_interval: s(1),
            earliest: false,
            max_poll_records: 500,
            session_timeout: s(10),
            heartbeat_interval: s(3),
            max_poll_interval: s(60),
            rebalance_timeout: s(60),
            fetch_max_wait: if version >= (1, 33) { ms(500) } else { ms(250) },
            strategies: names(&["range"]),
            read_committed: false,
            metadata_max_age: s(600),
        },
        ClientKind::KafkaGo => ProfileDefaults {
            enable_auto_commit: true,
            auto_commit_interval: Duration::ZERO,
            earliest: true,
            max_poll_records: 1,
            session_timeout: s(30),
            heartbeat_interval: s(3),
            max_poll_interval: s(30),
            rebalance_timeout: s(30),
            fetch_max_wait: s(10),
            strategies: names(&["range", "roundrobin"]),
            read_committed: false,
            metadata_max_age: s(5),
        },
        ClientKind::Librdkafka => ProfileDefaults {
            enable_auto_commit: true,
            auto_commit_interval: ms(5000),
            earliest: false,
            max_poll_records: 1,
            session_timeout: if version >= (1, 9) { s(45) } else { s(10) },
            heartbeat_interval: s(3),
            max_poll_interval: s(300),
            rebalance_timeout: s(300),
            fetch_max_wait: ms(500),
            strategies: names(&["range", "roundrobin"]),
            read_committed: true,
            metadata_max_age: s(300),
        },
    }
}

/// The auto-commit style of a client given its interval (kafka-go switches on it).
pub fn auto_commit_style(client: ClientKind, interval: Duration) -> AutoCommitStyle {
    match client {
        ClientKind::Java => AutoCommitStyle::AtPoll,
        ClientKind::Sarama | ClientKind::Librdkafka => AutoCommitStyle::Timer,
        ClientKind::KafkaGo if interval.is_zero() => AutoCommitStyle::PerRecordSync,
        ClientKind::KafkaGo => AutoCommitStyle::Timer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pick_version_specific_defaults() {
        let old = defaults(ClientKind::Java, (2, 8));
        let new = defaults(ClientKind::Java, (3, 0));
        assert_eq!(old.session_timeout, Duration::from_secs(10));
        assert_eq!(new.session_timeout, Duration::from_secs(45));
        assert_eq!(new.strategies, vec!["range", "cooperative-sticky"]);
    }

    #[test]
    fn auto_commit_styles_follow_the_client() {
        let (z, one) = (Duration::ZERO, Duration::from_secs(1));
        for (client, interval, style) in [
            (ClientKind::Java, z, AutoCommitStyle::AtPoll),
            (ClientKind::KafkaGo, z, AutoCommitStyle::PerRecordSync),
            (ClientKind::KafkaGo, one, AutoCommitStyle::Timer),
            (ClientKind::Sarama, one, AutoCommitStyle::Timer),
        ] {
            assert_eq!(auto_commit_style(client, interval), style, "{client:?}");
        }
    }
}
