//! Client profiles: the documented producer defaults of each modelled client library, and
//! the versions at which they changed.
//!
//! Sources (the versions are the ones the defaults below were read from):
//! - Java `KafkaProducer` / `ProducerConfig` 3.x: acks=all and enable.idempotence=true since
//!   3.0 (KIP-679; 2.x: acks=1, no idempotence); linger.ms 0, 5 since 4.0 (KIP-1030);
//!   batch.size 16384, buffer.memory 32 MiB, max.block.ms 60000, max.in.flight 5,
//!   retries Integer.MAX_VALUE, delivery.timeout.ms 120000, request.timeout.ms 30000,
//!   retry.backoff.ms 100, max.request.size 1048576, murmur2 keyed partitioning with sticky
//!   null keys (KIP-480, 2.4+).
//! - sarama 1.43 `NewConfig`: Producer.RequiredAcks WaitForLocal (1), Flush.* all zero (no
//!   lingering: a batch goes as soon as the connection can take it), Producer.MaxMessageBytes
//!   1000000, Retry.Max 3, Retry.Backoff 100ms, Idempotent false, Net.MaxOpenRequests 5,
//!   Producer.Timeout 10s (the ack timeout sent to the broker), Net.ReadTimeout 30s,
//!   ChannelBufferSize 256, NewHashPartitioner (FNV-1a) by default; no delivery timeout.
//! - kafka-go 0.4 `Writer`: RequiredAcks RequireNone (0) as the zero value, BatchSize 100
//!   records, BatchBytes 1048576, BatchTimeout 1s, MaxAttempts 10, WriteBackoffMin 100ms,
//!   WriteTimeout 10s, Async false, RoundRobin balancer; one batch in flight per partition
//!   (each partition's writer goroutine retries a batch in place before the next).
//! - librdkafka 2.x `CONFIGURATION.md`: acks=all since 1.0 (-1), enable.idempotence false,
//!   linger.ms (queue.buffering.max.ms) 5 since 1.5.0 (0.5 before), batch.size 1000000,
//!   batch.num.messages 10000, message.max.bytes 1000000, delivery.timeout.ms
//!   (message.timeout.ms) 300000, request.timeout.ms 30000 (the ack timeout the broker
//!   enforces; the client waits socket.timeout.ms 60000), retries INT32_MAX, retry.backoff.ms
//!   100, max.in.flight 1000000, queue.buffering.max.kbytes 1 GiB, partitioner
//!   consistent_random.

use super::config::{ClientKind, KafkaGoConstructor, OnError, ProducerConfig, RETRIES_MAX};
use crate::compression::CompressionType;
use crate::partitioner::PartitionerKind;
use crate::protocol::Acks;
use crate::time::{ms, Duration};

/// A parsed "major.minor[.patch]" version.
type Version = (u32, u32, u32);

/// The newest modelled version of each client, used when a scenario names none.
pub fn newest_version(client: ClientKind) -> &'static str {
    match client {
        ClientKind::Java => "4.0",
        ClientKind::Sarama => "1.43",
        ClientKind::KafkaGo => "0.4.47",
        ClientKind::Librdkafka => "2.6.0",
    }
}

/// The defaults of `client` at `version` (`None` = [`newest_version`]).
pub fn defaults(client: ClientKind, version: Option<&str>) -> Result<ProducerConfig, String> {
    let version_name = version.unwrap_or(newest_version(client));
    let crate::config::ClientVersion(major, minor, patch) =
        crate::config::parse_client_version(version_name)?;
    let v = (major, minor, patch);
    let mut config = match client {
        ClientKind::Java => java(v),
        ClientKind::Sarama => sarama(),
        ClientKind::KafkaGo => kafka_go(),
        ClientKind::Librdkafka => librdkafka(v),
    };
    config.client_version = version_name.to_string();
    Ok(config)
}

/// Fields every profile sets the same way; each profile overrides what differs.
fn base(client: ClientKind) -> ProducerConfig {
    ProducerConfig {
        client,
        client_version: String::new(),
        compression: CompressionType::None,
        compression_levels: Vec::new(),
        acks: Acks::All,
        enable_idempotence: false,
        linger: ms(0),
        batch_size: 16_384,
        batch_records: None,
        buffer_memory: 32 << 20,
        max_block: ms(60_000),
        max_in_flight: 5,
        one_batch_per_partition_in_flight: false,
        retries: RETRIES_MAX,
        retry_backoff: ms(100),
        retry_backoff_max: ms(100),
        reconnect_backoff: ms(50),
        reconnect_backoff_max: ms(1_000),
        metadata_max_age: ms(300_000),
        request_timeout: ms(30_000),
        ack_timeout: ms(30_000),
        delivery_timeout: Some(ms(120_000)),
        delivery_timeout_explicit: false,
        max_request_size: 1_048_576,
        partitioner: PartitionerKind::JavaMurmur2,
        sticky_linger: ms(0),
        sync: false,
        max_outstanding_records: 50_000,
        idempotence_explicit: false,
        on_error: OnError::Fail,
        partition: None,
        acks_explicit: false,
        metadata_age_explicit: false,
        max_in_flight_explicit: false,
        retries_explicit: false,
        socket_timeout_explicit: false,
        kafka_go_constructor: KafkaGoConstructor::Writer,
        sarama_flush: Default::default(),
        transactional_id: None,
        transaction_timeout: ms(60_000),
        sarama_txn_retry: Default::default(),
        connection_setup: crate::connection_setup::defaults(client, (u32::MAX, 0)),
    }
}

fn java(v: Version) -> ProducerConfig {
    let mut c = base(ClientKind::Java);
    let since_3_0 = v >= (3, 0, 0);
    c.acks = if since_3_0 { Acks::All } else { Acks::Leader };
    c.enable_idempotence = since_3_0;
    c.linger = if v >= (4, 0, 0) { ms(5) } else { ms(0) };
    // KIP-580 (3.7): retries back off exponentially, retry.backoff.max.ms 1000.
    c.retry_backoff_max = if v >= (3, 7, 0) { ms(1_000) } else { ms(100) };
    // KIP-480: the sticky partitioner switches partition when a batch is sent; there is no
    // time-based switch by default.
    c.sticky_linger = ms(0);
    c.connection_setup = crate::connection_setup::defaults(ClientKind::Java, (v.0, v.1));
    c
}

fn sarama() -> ProducerConfig {
    let mut c = base(ClientKind::Sarama);
    c.acks = Acks::Leader;
    c.linger = ms(0);
    c.batch_size = 1_000_000;
    c.max_request_size = 100 << 20;
    c.retries = 3;
    c.request_timeout = ms(30_000);
    c.ack_timeout = ms(10_000);
    c.delivery_timeout = None;
    // ChannelBufferSize 256 messages bounds sarama's input; its buffered records are bounded
    // by Producer.MaxMessageBytes per partition in flight. Modelled as buffer.memory.
    c.buffer_memory = 256 * 1_000_000;
    c.partitioner = PartitionerKind::SaramaHash;
    // No reconnect backoff (Broker.Open on the next use); Metadata.RefreshFrequency 10 min.
    c.reconnect_backoff = Duration::ZERO;
    c.reconnect_backoff_max = Duration::ZERO;
    c.metadata_max_age = ms(600_000);
    c
}

fn kafka_go() -> ProducerConfig {
    let mut c = base(ClientKind::KafkaGo);
    c.acks = Acks::None;
    c.linger = Duration::from_secs(1);
    c.batch_size = 1_048_576;
    c.batch_records = Some(100);
    c.max_request_size = 1_048_576;
    c.retries = 9; // MaxAttempts 10
    c.retry_backoff = ms(100); // WriteBackoffMin
    c.retry_backoff_max = ms(1_000); // WriteBackoffMax
    c.reconnect_backoff = Duration::ZERO;
    c.reconnect_backoff_max = Duration::ZERO;
    c.metadata_max_age = ms(6_000); // Transport.MetadataTTL
    c.request_timeout = ms(10_000); // WriteTimeout
    c.ack_timeout = ms(10_000);
    c.delivery_timeout = None;
    c.one_batch_per_partition_in_flight = true;
    c.sync = true;
    // Transport.DialTimeout; the Writer's dialer bounds the TCP connect below it.
    let dial = crate::connection_setup::KAFKA_GO_DIAL_TIMEOUT;
    c.connection_setup = (dial, dial);
    c.partitioner = PartitionerKind::KafkaGoRoundRobin;
    c
}

fn librdkafka(v: Version) -> ProducerConfig {
    let mut c = base(ClientKind::Librdkafka);
    c.acks = if v >= (1, 0, 0) {
        Acks::All
    } else {
        Acks::Leader
    };
    c.linger = if v >= (1, 5, 0) {
        ms(5)
    } else {
        Duration::from_micros(500)
    };
    c.batch_size = 1_000_000;
    c.batch_records = Some(10_000);
    c.max_request_size = 1_000_000;
    c.max_in_flight = 1_000_000;
    c.delivery_timeout = Some(ms(300_000));
    c.buffer_memory = 1 << 30;
    c.partitioner = PartitionerKind::LibrdkafkaConsistentRandom;
    c.sticky_linger = ms(10); // sticky.partitioning.linger.ms
    c.reconnect_backoff = ms(100);
    c.reconnect_backoff_max = ms(10_000);
    // KIP-580 in 2.3.0: retries back off exponentially up to retry.backoff.max.ms 1000.
    c.retry_backoff_max = if v >= (2, 3, 0) { ms(1_000) } else { ms(100) };
    // socket.timeout.ms (60 s) is how long the client waits; request.timeout.ms (30 s) is only
    // the ack timeout it writes into produce requests (rdkafka_conf.c).
    c.request_timeout = ms(60_000);
    c.ack_timeout = ms(30_000);
    c.connection_setup = crate::connection_setup::defaults(ClientKind::Librdkafka, (v.0, v.1));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigValue, Configurable};

    #[test]
    fn java_defaults_changed_at_3_0_and_4_0() {
        let old = ProducerConfig::for_client("java", Some("2.8")).unwrap();
        assert_eq!((old.acks, old.enable_idempotence), (Acks::Leader, false));
        let three = ProducerConfig::for_client("java", Some("3.7")).unwrap();
        assert_eq!((three.acks, three.enable_idempotence), (Acks::All, true));
        assert_eq!(three.linger, ms(0));
        let four = ProducerConfig::for_client("java", None).unwrap();
        assert_eq!(four.linger, ms(5));
        assert_eq!(four.batch_size, 16_384);
        assert_eq!(four.delivery_timeout, Some(ms(120_000)));
    }

    #[test]
    fn other_profiles() {
        let s = ProducerConfig::for_client("sarama", None).unwrap();
        assert_eq!(
            (s.acks, s.retries, s.enable_idempotence),
            (Acks::Leader, 3, false)
        );
        assert_eq!(s.partitioner, PartitionerKind::SaramaHash);
        let g = ProducerConfig::for_client("kafka-go", None).unwrap();
        assert_eq!(
            (g.acks, g.batch_records, g.sync),
            (Acks::None, Some(100), true)
        );
        assert_eq!(g.linger, Duration::from_secs(1));
        let r = ProducerConfig::for_client("librdkafka", None).unwrap();
        assert_eq!(
            (r.acks, r.linger, r.batch_size),
            (Acks::All, ms(5), 1_000_000)
        );
        let r14 = ProducerConfig::for_client("librdkafka", Some("1.4.0")).unwrap();
        assert_eq!(r14.linger, Duration::from_micros(500));
    }

    #[test]
    fn bad_client_and_version_are_errors() {
        assert!(ProducerConfig::for_client("pykafka", None).is_err());
        assert!(ProducerConfig::for_client("java", Some("three")).is_err());
        assert!(ProducerConfig::for_client("java", Some("3.7.1.2")).is_err());
    }

    #[test]
    fn overrides_use_java_names() {
        let mut c = ProducerConfig::for_client("sarama", None).unwrap();
        c.set("acks", &ConfigValue::Str("all".into())).unwrap();
        c.set("linger.ms", &ConfigValue::Int(7)).unwrap();
        c.set("sync", &ConfigValue::Bool(true)).unwrap();
        assert_eq!((c.acks, c.linger, c.sync), (Acks::All, ms(7), true));
        c.set("acks", &ConfigValue::Int(-1)).unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.set("acks", &ConfigValue::Str("2".into())).is_err());
        assert!(c.set("lingr.ms", &ConfigValue::Int(1)).is_err());
        assert!(c.set("kafka-go.BatchSize", &ConfigValue::Int(10)).is_err());
    }

    #[test]
    fn producer_and_consumer_read_client_versions_alike() {
        // Issue #18: "v0.4.47" was accepted for a kafka-go consumer group and refused for a
        // kafka-go producer.
        let p = defaults(ClientKind::KafkaGo, Some("v0.4.47")).unwrap();
        assert_eq!(p.client_version, "v0.4.47");
        let c = crate::consumer::ConsumerConfig::for_client("kafka-go", Some("v0.4.47"));
        assert!(c.is_ok());
        let e = defaults(ClientKind::Java, Some("3.x")).unwrap_err();
        assert!(e.contains("MAJOR.MINOR"), "{e}");
    }

    #[test]
    fn kafka_go_fields_only_for_kafka_go() {
        let mut g = ProducerConfig::for_client("kafka-go", None).unwrap();
        g.set("kafka-go.BatchSize", &ConfigValue::Int(10)).unwrap();
        g.set("kafka-go.BatchTimeout", &ConfigValue::Str("20ms".into()))
            .unwrap();
        g.set("kafka-go.BatchBytes", &ConfigValue::Int(4096))
            .unwrap();
        assert_eq!(
            (g.batch_records, g.linger, g.batch_size),
            (Some(10), ms(20), 4096)
        );
        assert!(g
            .set("kafka-go.BatchTimeout", &ConfigValue::Str("1d".into()))
            .is_err());
    }

    #[test]
    fn explicit_idempotence_conflicts_are_errors() {
        let mut c = ProducerConfig::for_client("java", Some("3.7")).unwrap();
        c.set("enable.idempotence", &ConfigValue::Bool(true))
            .unwrap();
        c.set("acks", &ConfigValue::Str("1".into())).unwrap();
        let err = c.validate().unwrap_err();
        assert!(err.contains("acks=all"), "{err}");

        let mut c = ProducerConfig::for_client("java", Some("3.7")).unwrap();
        c.set("enable.idempotence", &ConfigValue::Bool(true))
            .unwrap();
        c.set(
            "max.in.flight.requests.per.connection",
            &ConfigValue::Int(6),
        )
        .unwrap();
        assert!(c.validate().unwrap_err().contains("<= 5"));

        let mut g = ProducerConfig::for_client("kafka-go", None).unwrap();
        g.set("enable.idempotence", &ConfigValue::Bool(true))
            .unwrap();
        assert!(g.validate().is_err());
    }

    #[test]
    fn implicit_idempotence_yields_to_conflicting_settings() {
        let mut c = ProducerConfig::for_client("java", Some("3.7")).unwrap();
        c.set("acks", &ConfigValue::Str("1".into())).unwrap();
        c.validate().unwrap();
        assert!(!c.enable_idempotence);
        let mut d = ProducerConfig::for_client("java", Some("3.7")).unwrap();
        d.validate().unwrap();
        assert!(d.enable_idempotence);
    }

    /// librdkafka adjusts what the user left unset when idempotence is on (CONFIGURATION.md,
    /// `enable.idempotence`) and refuses only what the user set incompatibly.
    #[test]
    fn librdkafka_idempotence_adjusts_unset_settings_and_refuses_set_ones() {
        let mut c = ProducerConfig::for_client("librdkafka", None).unwrap();
        assert!(c.max_in_flight > 5, "librdkafka's default is 1000000");
        c.set("enable.idempotence", &ConfigValue::Bool(true))
            .unwrap();
        c.validate().unwrap();
        assert_eq!(
            (c.max_in_flight, c.retries, c.acks),
            (5, RETRIES_MAX, Acks::All)
        );

        let mut d = ProducerConfig::for_client("librdkafka", None).unwrap();
        d.set("enable.idempotence", &ConfigValue::Bool(true))
            .unwrap();
        d.set(
            "max.in.flight.requests.per.connection",
            &ConfigValue::Int(6),
        )
        .unwrap();
        assert!(d.validate().unwrap_err().contains("<= 5"));

        let mut e = ProducerConfig::for_client("librdkafka", None).unwrap();
        e.set("enable.idempotence", &ConfigValue::Bool(true))
            .unwrap();
        e.set("acks", &ConfigValue::Str("1".into())).unwrap();
        assert!(e.validate().unwrap_err().contains("acks=all"));
    }

    fn librdkafka_txn(version: &str) -> ProducerConfig {
        let mut c = ProducerConfig::for_client("librdkafka", Some(version)).unwrap();
        c.set("transactional.id", &ConfigValue::Str("app".into()))
            .unwrap();
        c
    }

    /// `rd_kafka_conf_finalize`: a transactional.id turns idempotence on (with its
    /// max.in.flight 5, retries and acks=all) and derives message.timeout.ms and
    /// socket.timeout.ms from transaction.timeout.ms; without one nothing changes.
    #[test]
    fn librdkafka_transactional_id_derives_idempotence_and_timeouts() {
        let mut plain = ProducerConfig::for_client("librdkafka", None).unwrap();
        plain.validate().unwrap();
        assert!(!plain.enable_idempotence);
        assert_eq!(plain.delivery_timeout, Some(ms(300_000)));
        assert_eq!(plain.request_timeout, ms(60_000), "socket.timeout.ms");
        assert_eq!(plain.ack_timeout, ms(30_000), "request.timeout.ms");

        let mut c = librdkafka_txn("2.6.0");
        c.validate().unwrap();
        assert!(c.enable_idempotence);
        assert_eq!((c.max_in_flight, c.acks), (5, Acks::All));
        assert_eq!(c.transaction_timeout, ms(60_000));
        assert_eq!(c.delivery_timeout, Some(ms(60_000)), "message.timeout.ms");
        assert_eq!(c.request_timeout, ms(59_900), "socket.timeout.ms");
        assert_eq!(
            c.ack_timeout,
            ms(30_000),
            "request.timeout.ms is the broker's"
        );

        let mut short = librdkafka_txn("2.6.0");
        short
            .set("transaction.timeout.ms", &ConfigValue::Int(1_000))
            .unwrap();
        short.validate().unwrap();
        assert_eq!(short.request_timeout, ms(900), "at least 900 ms");
        assert_eq!(short.delivery_timeout, Some(ms(1_000)));
    }

    #[test]
    fn librdkafka_transactional_refuses_what_it_refuses() {
        let mut c = librdkafka_txn("2.6.0");
        c.set("delivery.timeout.ms", &ConfigValue::Int(60_001))
            .unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.contains("<= `transaction.timeout.ms`"), "{e}");
        let mut ok = librdkafka_txn("2.6.0");
        ok.set("delivery.timeout.ms", &ConfigValue::Int(30_000))
            .unwrap();
        ok.validate().unwrap();
        assert_eq!(
            ok.delivery_timeout,
            Some(ms(30_000)),
            "an explicit one stays"
        );

        let mut off = librdkafka_txn("2.6.0");
        off.set("enable.idempotence", &ConfigValue::Bool(false))
            .unwrap();
        let e = off.validate().unwrap_err();
        assert!(e.contains("requires `enable.idempotence=true`"), "{e}");

        let mut old = librdkafka_txn("1.6.0");
        let e = old.validate().unwrap_err();
        assert!(e.contains("1.7.0") && e.contains("1.6.0"), "{e}");
        librdkafka_txn("1.7.0").validate().unwrap();

        let mut r = librdkafka_txn("2.6.0");
        let e = r
            .set("transaction.timeout.ms", &ConfigValue::Int(999))
            .unwrap_err();
        assert!(e.contains("1000"), "{e}");
        let mut j = ProducerConfig::for_client("java", None).unwrap();
        j.set("transaction.timeout.ms", &ConfigValue::Int(999))
            .unwrap();
    }

    /// librdkafka's client waits `socket.timeout.ms`; its `request.timeout.ms` is only the
    /// ack timeout written into produce requests (CONFIGURATION.md, rdkafka_request.c).
    #[test]
    fn librdkafka_request_timeout_is_the_brokers_and_socket_timeout_the_clients() {
        let mut c = ProducerConfig::for_client("librdkafka", None).unwrap();
        c.set("request.timeout.ms", &ConfigValue::Int(5_000))
            .unwrap();
        assert_eq!((c.request_timeout, c.ack_timeout), (ms(60_000), ms(5_000)));
        c.set("socket.timeout.ms", &ConfigValue::Int(20_000))
            .unwrap();
        assert_eq!((c.request_timeout, c.ack_timeout), (ms(20_000), ms(5_000)));
        let e = c
            .set("socket.timeout.ms", &ConfigValue::Int(5))
            .unwrap_err();
        assert!(e.contains("10"), "{e}");
        let mut j = ProducerConfig::for_client("java", None).unwrap();
        let e = j
            .set("socket.timeout.ms", &ConfigValue::Int(20_000))
            .unwrap_err();
        assert!(e.contains("request.timeout.ms"), "{e}");
        // An explicit socket.timeout.ms stays with a transactional.id, within its bound.
        let mut t = librdkafka_txn("2.6.0");
        t.set("socket.timeout.ms", &ConfigValue::Int(10_000))
            .unwrap();
        t.validate().unwrap();
        assert_eq!(t.request_timeout, ms(10_000));
        let mut t = librdkafka_txn("2.6.0");
        t.set("socket.timeout.ms", &ConfigValue::Int(60_101))
            .unwrap();
        let e = t.validate().unwrap_err();
        assert!(e.contains("transaction.timeout.ms` + 100"), "{e}");
    }

    #[test]
    fn delivery_timeout_must_cover_linger_and_request_timeout() {
        let mut c = ProducerConfig::for_client("java", None).unwrap();
        c.set("delivery.timeout.ms", &ConfigValue::Int(1000))
            .unwrap();
        assert!(c.validate().is_err());
    }
}
