//! [`ProducerConfig::validate`]: the defaults that depend on other settings and the
//! combinations each client rejects when it is constructed (Java `ProducerConfig`'s
//! `postProcessAndValidateIdempotenceConfigs` and `KafkaProducer`'s constructor, sarama
//! `Config.Validate`, kafka-go `NewWriter`, librdkafka `rd_kafka_conf_finalize`).

use super::{
    version_at_least, ClientKind, KafkaGoConstructor, OnError, ProducerConfig, RETRIES_MAX,
};
use crate::compression::CompressionType;
use crate::partitioner::PartitionerKind;
use crate::protocol::Acks;
use crate::time::Duration;

impl ProducerConfig {
    /// Resolve defaults that depend on other settings and reject invalid combinations, as the
    /// client does when it is constructed. Call after the last [`Configurable::set`].
    pub fn validate(&mut self) -> Result<(), String> {
        self.resolve_kafka_go_constructor();
        self.resolve_transactional()?;
        self.resolve_implicit_idempotence();
        self.resolve_librdkafka_idempotence();
        self.check_manual_partition()?;
        if self.enable_idempotence {
            self.check_idempotence()?;
        }
        if self.compression == CompressionType::Zstd
            && self.client == ClientKind::Java
            && !version_at_least(&self.client_version, (2, 1))
        {
            return Err(format!(
                "compression.type=zstd: the Java producer has zstd since 2.1 (KIP-110); this \
                 producer is {}",
                self.client_version
            ));
        }
        if self.client == ClientKind::Librdkafka {
            // librdkafka checks only that messages outlive linger.ms
            // (`rd_kafka_topic_conf_finalize`); 0 is an infinite message.timeout.ms.
            if self
                .delivery_timeout
                .is_some_and(|d| !d.is_zero() && d <= self.linger)
            {
                return Err(
                    "`message.timeout.ms` must be greater than `linger.ms` (librdkafka)".into(),
                );
            }
        } else if self
            .delivery_timeout
            .is_some_and(|d| d < self.linger + self.request_timeout)
        {
            return Err(format!(
                "delivery.timeout.ms should be equal to or larger than linger.ms + \
                 request.timeout.ms ({} ms), as the Java producer requires",
                (self.linger + self.request_timeout).as_millis()
            ));
        }
        Ok(())
    }

    /// kafka-go `NewWriter`: "if config.RequiredAcks == 0 { w.RequiredAcks = RequireAll }",
    /// and `Transport.MetadataTTL = RebalanceInterval` (15 s by default).
    fn resolve_kafka_go_constructor(&mut self) {
        if self.kafka_go_constructor == KafkaGoConstructor::NewWriter {
            if !self.acks_explicit {
                self.acks = Acks::All;
            }
            if !self.metadata_age_explicit {
                self.metadata_max_age = Duration::from_secs(15);
            }
        }
    }

    /// `transactional.id` (Java `ProducerConfig.postProcessAndValidateIdempotenceConfigs`):
    /// transactions need idempotence, so an unset `enable.idempotence` turns on with them
    /// (and an unset `acks` becomes all, as the 2.x client's `maybeOverrideAcksAndRetries`
    /// did); an explicit `enable.idempotence = false` is a ConfigException ("Cannot set a
    /// transactional.id without also enabling idempotence"), and a conflicting explicit
    /// `acks`, `retries` or in-flight limit is rejected by [`Self::check_idempotence`].
    ///
    /// sarama (`Producer.Transaction.ID`, since 1.37) turns nothing on by itself:
    /// `Config.Validate` demands `Producer.Idempotent = true` ("Transactional producer requires
    /// Idempotent to be true"), and idempotence in turn `RequiredAcks = WaitForAll` and
    /// `Net.MaxOpenRequests = 1` (checked by [`Self::check_idempotence`]). librdkafka turns
    /// idempotence on as Java does and derives its timeouts from `transaction.timeout.ms`
    /// ([`Self::resolve_librdkafka_transactional`]). kafka-go has no transactional producer.
    fn resolve_transactional(&mut self) -> Result<(), String> {
        if self.transactional_id.is_none() {
            return Ok(());
        }
        match self.client {
            ClientKind::Java => {}
            ClientKind::Sarama => self.check_sarama_transactional()?,
            ClientKind::KafkaGo => {
                return Err(
                    "transactional.id: the kafka-go Writer has no transactional \
                     producer (segmentio/kafka-go writes without transactions)\nhint: use \
                     client = \"java\" or \"sarama\" for a transactional producer"
                        .into(),
                )
            }
            ClientKind::Librdkafka => self.resolve_librdkafka_transactional()?,
        }
        if self.idempotence_explicit && !self.enable_idempotence {
            return Err(
                "enable.idempotence = false: cannot set a transactional.id without \
                 also enabling idempotence \
                 (Kafka ConfigException)\nhint: remove \"enable.idempotence\" = false"
                    .into(),
            );
        }
        if self.on_error == OnError::Retry {
            return Err(
                "on_error = \"retry\" with transactional.id: a failed send aborts its \
                 transaction, and resending its values in a later one is not modelled\nhint: \
                 use on_error = \"fail\""
                    .into(),
            );
        }
        // Java and librdkafka turn idempotence on with transactions (librdkafka's acks=all
        // follows from idempotence in `resolve_librdkafka_idempotence`); sarama turns nothing
        // on (its Producer.RequiredAcks default, WaitForLocal, is refused by
        // `check_idempotence`).
        if self.client == ClientKind::Librdkafka {
            // Not the Java 3.0.1+ implicit default `resolve_implicit_idempotence` may drop.
            self.enable_idempotence = true;
            self.idempotence_explicit = true;
        }
        if self.client == ClientKind::Java {
            self.enable_idempotence = true;
            self.idempotence_explicit = true;
            if !self.acks_explicit {
                self.acks = Acks::All;
            }
        }
        Ok(())
    }

    /// sarama `Config.Validate`: a `Producer.Transaction.ID` needs sarama 1.37+ (where the
    /// transactional producer appeared) and an explicit `Producer.Idempotent = true`.
    fn check_sarama_transactional(&self) -> Result<(), String> {
        if !version_at_least(&self.client_version, (1, 37)) {
            return Err(format!(
                "transactional.id: sarama has a transactional producer \
                 (Producer.Transaction.ID) since 1.37; this producer is sarama {}\nhint: set \
                 client_version = \"1.37\" or newer",
                self.client_version
            ));
        }
        if !self.enable_idempotence {
            return Err(
                "transactional.id: sarama's Config.Validate refuses a transactional producer \
                 without idempotence (\"Transactional producer requires Idempotent to be \
                 true\")\nhint: add \"enable.idempotence\" = true (Producer.Idempotent), \
                 acks = \"all\" (Producer.RequiredAcks = WaitForAll) and \
                 \"max.in.flight.requests.per.connection\" = 1 (Net.MaxOpenRequests)"
                    .into(),
            );
        }
        Ok(())
    }

    /// librdkafka (`rd_kafka_conf_finalize`, `rd_kafka_topic_conf_finalize` in
    /// src/rdkafka_conf.c; CONFIGURATION.md `transactional.id`, `transaction.timeout.ms`):
    /// - the transactional producer exists since 1.4.0; kafsim models it from 1.7.0, where
    ///   KIP-360 made idempotence errors abortable (CHANGELOG v1.7.0) instead of fatal;
    /// - `enable.idempotence` is turned on unless set to false ("`transactional.id` requires
    ///   `enable.idempotence=true`"), and with it max.in.flight <= 5, retries, acks=all;
    /// - `message.timeout.ms` (kafsim `delivery.timeout.ms`) defaults to
    ///   `transaction.timeout.ms`, and an explicit larger one is refused ("`message.timeout.ms`
    ///   must be set <= `transaction.timeout.ms`");
    /// - `socket.timeout.ms`, how long the client waits for any answer (kafsim's client-side
    ///   `request_timeout`), unless set (at most `transaction.timeout.ms` + 100), becomes
    ///   max(`transaction.timeout.ms` - 100, 900) "to make sure
    ///   at least one request can be sent before the transaction times out". The ack timeout
    ///   put into produce requests (librdkafka's `request.timeout.ms`) is unchanged.
    fn resolve_librdkafka_transactional(&mut self) -> Result<(), String> {
        if !version_at_least(&self.client_version, (1, 7)) {
            return Err(format!(
                "transactional.id: kafsim models librdkafka's transactional producer from \
                 1.7.0 (KIP-360: before it, librdkafka 1.4-1.6 treated idempotence errors of a \
                 transaction as fatal); this producer is librdkafka {}\nhint: set \
                 client_version = \"1.7.0\" or newer",
                self.client_version
            ));
        }
        if self.idempotence_explicit && !self.enable_idempotence {
            return Err(
                "enable.idempotence = false: librdkafka refuses it with a transactional.id \
                 (\"`transactional.id` requires `enable.idempotence=true`\")\nhint: remove \
                 \"enable.idempotence\" = false"
                    .into(),
            );
        }
        match self.delivery_timeout {
            Some(t) if self.delivery_timeout_explicit && t > self.transaction_timeout => {
                return Err(format!(
                    "message.timeout.ms = {}: librdkafka requires `message.timeout.ms` <= \
                     `transaction.timeout.ms` ({}) with a transactional.id\nhint: lower \
                     message.timeout.ms (delivery.timeout.ms) or leave it unset: it defaults to \
                     transaction.timeout.ms",
                    t.as_millis(),
                    self.transaction_timeout.as_millis()
                ))
            }
            Some(_) if self.delivery_timeout_explicit => {}
            _ => self.delivery_timeout = Some(self.transaction_timeout),
        }
        if self.socket_timeout_explicit {
            if self.transaction_timeout + Duration::from_millis(100) < self.request_timeout {
                return Err(format!(
                    "socket.timeout.ms = {}: librdkafka requires `socket.timeout.ms` <= \
                     `transaction.timeout.ms` + 100 ({}) with a transactional.id\nhint: lower \
                     socket.timeout.ms or leave it unset: it defaults to \
                     transaction.timeout.ms - 100",
                    self.request_timeout.as_millis(),
                    (self.transaction_timeout + Duration::from_millis(100)).as_millis()
                ));
            }
            return Ok(());
        }
        let socket = self
            .transaction_timeout
            .saturating_sub(Duration::from_millis(100))
            .max(Duration::from_millis(900));
        self.request_timeout = socket;
        Ok(())
    }

    /// `partitioner = "manual"` needs the application's choice, and only it uses one.
    fn check_manual_partition(&self) -> Result<(), String> {
        match (self.partitioner, &self.partition) {
            (PartitionerKind::Manual, None) => Err(
                "partitioner = \"manual\" needs the application's choice of partition, and \
                 none is given\nhint: add partition = \"key % N\" (the key modulo N) or \
                 partition = \"0\" next to it"
                    .into(),
            ),
            (kind, Some(_)) if !kind.honours_explicit() => Err(format!(
                "partition: the {kind} partitioner ignores the partition a record names \
                 (sarama honours it only through NewManualPartitioner, kafka-go never)\nhint: \
                 set partitioner = \"manual\""
            )),
            _ => Ok(()),
        }
    }

    /// Java 3.0.1+: idempotence is on by default only while no conflicting option is set; a
    /// user who asked for acks=1 without mentioning idempotence gets a non-idempotent producer.
    fn resolve_implicit_idempotence(&mut self) {
        if self.enable_idempotence && !self.idempotence_explicit {
            let conflicts = self.acks != Acks::All || self.max_in_flight > 5 || self.retries == 0;
            if conflicts {
                self.enable_idempotence = false;
            }
        }
    }

    /// librdkafka (`enable.idempotence` in CONFIGURATION.md, `rd_kafka_conf_finalize`): with
    /// idempotence on, `max.in.flight.requests.per.connection=5`, `retries=INT32_MAX` and
    /// `acks=all` are adjusted automatically when the user did not set them; only a
    /// user-supplied incompatible value makes the producer fail to start.
    fn resolve_librdkafka_idempotence(&mut self) {
        if self.client != ClientKind::Librdkafka || !self.enable_idempotence {
            return;
        }
        if !self.max_in_flight_explicit {
            self.max_in_flight = self.max_in_flight.min(5);
        }
        if !self.retries_explicit {
            self.retries = RETRIES_MAX;
        }
        if !self.acks_explicit {
            self.acks = Acks::All;
        }
    }

    fn check_idempotence(&self) -> Result<(), String> {
        if self.client == ClientKind::KafkaGo {
            return Err(
                "enable.idempotence: the kafka-go Writer has no idempotent producer".into(),
            );
        }
        if self.acks != Acks::All {
            return Err(
                "enable.idempotence=true requires acks=all: the broker can only \
                        de-duplicate what every in-sync replica has (Kafka ConfigException)"
                    .into(),
            );
        }
        if self.retries == 0 {
            return Err(
                "enable.idempotence=true requires retries > 0 (Kafka ConfigException)".into(),
            );
        }
        let max_in_flight = if self.client == ClientKind::Sarama {
            1
        } else {
            5
        };
        if self.max_in_flight > max_in_flight {
            return Err(format!(
                "enable.idempotence=true requires max.in.flight.requests.per.connection <= \
                 {max_in_flight} for {}: the broker caches only the last 5 batches per producer \
                 (Kafka ConfigException; sarama demands Net.MaxOpenRequests=1)",
                self.client.name()
            ));
        }
        Ok(())
    }
}
