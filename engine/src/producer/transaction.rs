//! Transactions of the Java producer, and the application that runs them.
//!
//! The client side follows apache/kafka `clients/.../producer/internals/TransactionManager.java`
//! (with `Sender.maybeSendAndPollTransactionalRequest` and `KafkaProducer.initTransactions`,
//! `beginTransaction`, `commitTransaction`, `abortTransaction`):
//!
//! - One transactional request at a time, in priority order: FindCoordinator (type
//!   TRANSACTION, keyed by `transactional.id`), InitProducerId (with the `transactional.id` and
//!   `transaction.timeout.ms`), AddPartitionsToTxn for the partitions that got records since
//!   the last add (`newPartitionsInTransaction`), EndTxn. A request that times out or whose
//!   connection drops is sent again after `retry.backoff.ms`, to a coordinator looked up
//!   anew (`TxnRequestHandler.onComplete`: `wasDisconnected` → `lookupCoordinator` +
//!   `reenqueue`).
//! - A batch is drained only for a partition already added (`isSendToPartitionAllowed`).
//! - EndTxn waits until no batch is incomplete (`nextRequest(hasIncompleteBatches)`); a commit
//!   flushes first (`beginFlush`: lingering batches go at once).
//! - Error classes (`maybeTransitionToErrorState`, the handlers' `handleResponse`):
//!   `ProducerFenced` (and `InvalidProducerEpoch` / `InvalidTxnState` answered by the
//!   coordinator) are fatal: the producer is unusable and the application must close it.
//!   Any other failed send of the transaction is an abortable error: the records never
//!   drained fail at once (`abortUndrainedBatches`), the application aborts, and the epoch
//!   is bumped after the abort (`epochBumpRequired`, KIP-360) before the next transaction.
//! - With `transaction.version` 2 (KIP-890 part 2) the coordinator bumps the epoch at every
//!   EndTxn and its answer carries the new one; the client goes on with it (sequences from 0),
//!   as the 4.0 client's EndTxn v5 handling does. The client still adds partitions with
//!   AddPartitionsToTxn (the 4.0 client lets the produce request add them implicitly; the
//!   fencing this protects is the same).
//!
//! The application (`[producers.transactions]`): `initTransactions()`, then per transaction
//! `beginTransaction()`, `records` sends, and `commitTransaction()` (or, for a fraction
//! `abort` of the transactions, `abortTransaction()`); at the end of the run it ends the
//! transaction it has open. On an abortable error it aborts and goes on; on a fatal one it
//! closes the producer and builds a new one with the same `transactional.id` (what a service
//! does, e.g. Spring Kafka's producer factory), whose `initTransactions` fences the old epoch.
//!
//! sarama's transactional producer (IBM/sarama `transaction_manager.go`, `async_producer.go`,
//! 1.37+) runs the same protocol with these differences, each switched on `client`:
//!
//! - Its requests are retried `Producer.Transaction.Retry.Max` times, every
//!   `Producer.Transaction.Retry.Backoff` (the `exec` loops of `initProducerId`,
//!   `publishTxnPartitions`, `endTxn`); a call whose retries run out hands the error back, and
//!   the application calls `CommitTxn` / `AbortTxn` again (IBM/sarama
//!   `examples/txn_producer`), so InitProducerId and EndTxn are modelled as retried for as
//!   long as they fail retriably. AddPartitionsToTxn is different: `publishTxnPartitions` runs
//!   in the broker producer's bridge right before a produce request, and when its retries
//!   run out the produce set fails like a lost connection (`handleError` → `retryBatch`): its
//!   messages use up one of their own `Producer.Retry.Max` retries.
//! - The error classes are sarama's switch statements, not Java's: InitProducerId retries
//!   only COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS, every
//!   other error (CONCURRENT_TRANSACTIONS too, which Java retries) is fatal; EndTxn also
//!   retries CONCURRENT_TRANSACTIONS and treats UNKNOWN_PRODUCER_ID /
//!   INVALID_PRODUCER_ID_MAPPING as abortable (`abortableErrorIfPossible`), the rest fatal; a
//!   failed message (`returnError` → `maybeTransitionToErrorState`) is fatal only for
//!   PRODUCER_FENCED (and authorization / unsupported-version errors kafsim does not produce),
//!   abortable otherwise.
//! - In an error state `publishTxnPartitions` returns the last error before any produce
//!   request goes out, so every queued message is refused, retried and finally fails; there
//!   is no `abortUndrainedBatches`. `AbortTxn` without an error waits for every message
//!   (`inFlight.Wait()`): queued records are still added and written, then aborted by the
//!   markers. `CommitTxn` does not flush either: the broker producer's own triggers
//!   (`Producer.Flush.*`) send what is queued.
//! - sarama's EndTxn is v3 at most: KIP-890 part 2's end-of-transaction epoch bump (EndTxn
//!   v5) never applies to it, whatever the cluster's `transaction.version`.
//! - The modelled sarama speaks InitProducerId v3+ (`Config.Version` >= 2.5): a failed
//!   transaction is aborted and the epoch bumped (KIP-360), as in Java.
//! - A fatal error: the application closes the producer and builds a new one (the
//!   example's `producerProvider`) after `Producer.Transaction.Retry.Backoff`, so a fatal
//!   CONCURRENT_TRANSACTIONS from InitProducerId does not spin.
//!
//! librdkafka's transactional producer (confluentinc/librdkafka `src/rdkafka_txnmgr.c`,
//! `rdkafka_idempotence.c`, `rdkafka_request.c`, 1.7+) is the third variant; its
//! differences (backoffs, error classes, `txn_req_cnt`, EndTxn v1) are in
//! `transaction/librdkafka.rs`.
//!
//! History: `TxnBegin` when the first send of a transaction is made, `TxnValue` for every send
//! in it, and `TxnCommit` / `TxnAbort` when the EndTxn is answered. A transaction that can no
//! longer commit (fatal error before any EndTxn(commit) was sent) is `TxnAbort`: the
//! coordinator aborts it (the fencing InitProducerId or `transaction.timeout.ms`); one whose
//! EndTxn(commit) had been sent is `TxnUnknown`.
//!
//! Files, after Java's classes: this one the `TransactionManager`'s state; `send.rs` the
//! sender's transactional request loop (`Sender.maybeSendAndPollTransactionalRequest`);
//! `handlers.rs` the response handlers (`TxnRequestHandler` and its subclasses);
//! `application.rs` the application's calls (`KafkaProducer.*Transaction`) and the rebuild
//! after a fatal error; `librdkafka.rs` librdkafka's differences.

use crate::node::NodeId;
use crate::protocol::ErrorCode;
use crate::record::TopicPartition;
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;

use super::workload::TxnWorkload;
use crate::client::ClientKind;

mod application;
mod handlers;
mod librdkafka;
mod send;

/// Java `TransactionManager.ADD_PARTITIONS_RETRY_BACKOFF_MS`: the short backoff after
/// CONCURRENT_TRANSACTIONS on the first AddPartitions of a transaction (the previous one's
/// markers are still being written).
const ADD_PARTITIONS_RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// Most times the application rebuilds its producer after a fatal error (a bound; after it,
/// every send fails).
pub const MAX_PRODUCER_REBUILDS: u32 = 1_000;

/// A transactional request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TxnRequest {
    FindCoordinator,
    InitProducerId,
    AddPartitions(Vec<TopicPartition>),
    /// `sendOffsetsToTransaction`: AddOffsetsToTxn to the transaction coordinator, then the
    /// group coordinator is looked up and sent TxnOffsetCommit (see `ctp.rs`).
    AddOffsets,
    FindGroupCoordinator,
    TxnOffsetCommit,
    EndTxn {
        commit: bool,
    },
}

#[derive(Clone, Debug)]
struct InFlight {
    correlation_id: u64,
    broker: NodeId,
    deadline: Instant,
    request: TxnRequest,
}

/// Where the application is in its transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppTxn {
    /// `initTransactions()` (or the epoch bump after an abort) has not returned.
    Initializing,
    /// Between transactions.
    Ready,
    /// In transaction `txn`, `records` sends made.
    Open { txn: u64, records: u32 },
    /// `commitTransaction()` / `abortTransaction()` called for `txn`.
    Ending { txn: u64, commit: bool },
}

/// The client's transaction state (Java `TransactionManager`) and the application's loop.
#[derive(Debug)]
pub struct TransactionManager {
    transactional_id: String,
    timeout: Duration,
    workload: TxnWorkload,
    coordinator: Option<NodeId>,
    in_flight: Option<InFlight>,
    next_attempt: Instant,
    /// Partitions added to the ongoing transaction (`partitionsInTransaction`).
    added: BTreeSet<TopicPartition>,
    /// Partitions with records of the transaction, not added yet (`newPartitionsInTransaction`).
    new_partitions: BTreeSet<TopicPartition>,
    /// An AddPartitions succeeded in this transaction (`transactionStarted`).
    started: bool,
    /// `ABORTABLE_ERROR`: the error the application must abort for.
    pub(super) abortable: Option<ErrorCode>,
    /// `epochBumpRequired`: InitProducerId after the abort.
    bump_after_abort: bool,
    /// `FATAL_ERROR`, handled at the next poll (the application closes the producer).
    pub(super) fatal: Option<ErrorCode>,
    /// An EndTxn(commit) of the current transaction was sent: it may have committed.
    commit_sent: bool,
    app: AppTxn,
    /// The consumer's application drives the transactions (consume-transform-produce,
    /// `ctp.rs`) instead of `[producers.transactions]`.
    pub(super) external: bool,
    /// `sendOffsetsToTransaction` of the current transaction, until its TxnOffsetCommit is
    /// answered.
    pub(super) offsets: Option<super::ctp::TxnOffsets>,
    /// The group coordinator TxnOffsetCommit goes to (`coordinator(GROUP)`).
    pub(super) group_coordinator: Option<NodeId>,
    /// How the last transaction the external application ended came out, until it takes it.
    pub(super) outcome: Option<super::ctp::TxnOutcome>,
    /// Transaction numbers are `incarnation << 32 | n`, unique across restarts.
    incarnation: u64,
    next_n: u64,
    rebuilds: u32,
    /// Whose transaction manager this is (Java's or sarama's; see the module docs).
    client: ClientKind,
    /// sarama `Producer.Transaction.Retry.Max`.
    retry_max: u32,
    /// sarama: AddPartitionsToTxn attempts failed in a row (one `publishTxnPartitions`).
    add_failures: u32,
    /// sarama: the error that failed `publishTxnPartitions` after its retries; the produce
    /// sets waiting for those partitions fail like a lost connection at the next poll.
    add_gave_up: Option<ErrorCode>,
    /// librdkafka `rk_eos.txn_req_cnt`: AddPartitionsToTxn requests sent in this transaction
    /// and not definitely refused; EndTxn is sent only if it is above zero.
    pub(super) req_cnt: u32,
    /// librdkafka: times the current EndTxn was retried (`rkbuf_retries`, for its backoff).
    pub(super) end_txn_retries: u32,
}

/// Counters of the transactions a producer ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnStats {
    pub committed: u64,
    pub aborted: u64,
    pub unknown: u64,
    /// Producers closed and rebuilt after a fatal error (fenced).
    pub rebuilds: u64,
}

impl TransactionManager {
    pub fn new(transactional_id: String, timeout: Duration, workload: TxnWorkload) -> Self {
        assert!(workload.records != Some(0), "a transaction needs a record");
        assert!((0.0..=1.0).contains(&workload.abort), "abort is a fraction");
        TransactionManager {
            transactional_id,
            timeout,
            workload,
            coordinator: None,
            in_flight: None,
            next_attempt: Instant::ZERO,
            added: BTreeSet::new(),
            new_partitions: BTreeSet::new(),
            started: false,
            abortable: None,
            bump_after_abort: false,
            fatal: None,
            commit_sent: false,
            app: AppTxn::Initializing,
            external: false,
            offsets: None,
            group_coordinator: None,
            outcome: None,
            incarnation: 0,
            next_n: 0,
            rebuilds: 0,
            client: ClientKind::Java,
            retry_max: u32::MAX,
            add_failures: 0,
            add_gave_up: None,
            req_cnt: 0,
            end_txn_retries: 0,
        }
    }

    /// The transaction manager of `client` (sarama: with its `Producer.Transaction.Retry.Max`).
    pub fn for_client(mut self, client: ClientKind, retry_max: u32) -> Self {
        assert!(
            matches!(
                client,
                ClientKind::Java | ClientKind::Sarama | ClientKind::Librdkafka
            ),
            "{} has no modelled transactional producer",
            client.name()
        );
        self.client = client;
        self.retry_max = retry_max;
        self
    }

    /// Whether this is sarama's transaction manager.
    fn sarama(&self) -> bool {
        self.client == ClientKind::Sarama
    }

    /// Whether this is librdkafka's transaction manager.
    pub(super) fn librdkafka(&self) -> bool {
        self.client == ClientKind::Librdkafka
    }

    /// Whether ending the transaction needs an EndTxn: the coordinator may know of it. Java
    /// and sarama: an AddPartitions (or AddOffsets) succeeded (`transactionStarted`);
    /// librdkafka: one was sent and not definitely refused (`txn_req_cnt`, so a timed-out
    /// AddPartitionsToTxn that did land is ended too; CHANGELOG v1.7.0).
    pub(super) fn needs_end_txn(&self) -> bool {
        if self.librdkafka() {
            self.req_cnt > 0 || self.started
        } else {
            self.started
        }
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    pub fn app(&self) -> AppTxn {
        self.app
    }

    /// The application never ends its transactions (`records = "unlimited"`).
    pub fn never_ends(&self) -> bool {
        self.workload.never_ends()
    }

    /// `transaction.timeout.ms` this producer asks for.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Java `isSendToPartitionAllowed`: batches of a partition go only once it is added.
    pub fn send_allowed(&self, tp: TopicPartition) -> bool {
        let sarama_refuses = self.sarama() && self.abortable.is_some();
        self.fatal.is_none() && !sarama_refuses && self.added.contains(&tp)
    }

    /// Java `maybeAddPartition`: a record for `tp` makes it a partition to add.
    pub fn maybe_add_partition(&mut self, tp: TopicPartition) {
        if !self.added.contains(&tp) {
            self.new_partitions.insert(tp);
        }
    }

    /// AddPartitionsToTxn succeeded for `partitions` (Java `AddPartitionsToTxnHandler`,
    /// librdkafka `rd_kafka_txn_handle_AddPartitionsToTxn`): they are in the transaction.
    fn partitions_added(&mut self, partitions: Vec<TopicPartition>) {
        for tp in partitions {
            self.new_partitions.remove(&tp);
            self.added.insert(tp);
        }
        self.started = true;
    }

    /// Whether the application may hand over a record now (it is in or between transactions,
    /// with no error to act on).
    pub fn accepts_sends(&self) -> bool {
        self.fatal.is_none()
            && self.abortable.is_none()
            && matches!(self.app, AppTxn::Ready | AppTxn::Open { .. })
    }

    /// The application ends transaction `txn`: commit, or abort (`beginAbort`: no partition
    /// is added any more, and the offsets are not sent).
    pub(super) fn set_ending(&mut self, txn: u64, commit: bool) {
        self.app = AppTxn::Ending { txn, commit };
        if !commit && !self.sarama() {
            self.new_partitions.clear();
            self.offsets = None;
        }
    }

    /// The transaction has a partition (or the group's offsets) at the coordinator
    /// (`transactionStarted`).
    pub(super) fn mark_started(&mut self) {
        self.started = true;
    }

    /// `fatalError`.
    pub(super) fn set_fatal(&mut self, error: ErrorCode) {
        self.fatal.get_or_insert(error);
    }

    /// `abortableError`; with `bump`, `abortableErrorIfPossible` (the epoch is bumped after
    /// the abort).
    pub(super) fn set_abortable(&mut self, error: ErrorCode, bump: bool) {
        if bump {
            self.bump_after_abort = true;
        }
        self.abortable.get_or_insert(error);
    }

    /// The deadline of the request in flight.
    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|i| i.deadline)
    }

    fn in_flight_to(&self, broker: NodeId) -> bool {
        self.in_flight.as_ref().is_some_and(|i| i.broker == broker)
    }

    /// A send of the transaction failed with `error` (`maybeTransitionToErrorState`).
    fn on_send_failed(&mut self, error: ErrorCode) {
        let in_txn = matches!(self.app, AppTxn::Open { .. } | AppTxn::Ending { .. });
        if !in_txn || self.fatal.is_some() || error == ErrorCode::TransactionAborted {
            return;
        }
        if self.librdkafka() {
            self.librdkafka_send_failed(error);
            return;
        }
        if error == ErrorCode::ProducerFenced {
            self.fatal = Some(error);
            return;
        }
        let completing = matches!(self.app, AppTxn::Ending { .. });
        if !completing {
            self.bump_after_abort = true;
        }
        self.abortable.get_or_insert(error);
    }

    /// The request the client would send next, ignoring time and connections.
    fn next_request(&self, has_incomplete: bool) -> Option<TxnRequest> {
        if self.fatal.is_some() || self.in_flight.is_some() {
            return None;
        }
        if self.coordinator.is_none() {
            return Some(TxnRequest::FindCoordinator);
        }
        // sarama `publishTxnPartitions`: in an error state it returns the error unsent.
        let refuses = self.sarama() && self.abortable.is_some();
        if !self.new_partitions.is_empty() && !refuses {
            return Some(TxnRequest::AddPartitions(
                self.new_partitions.iter().copied().collect(),
            ));
        }
        if let Some(request) = self.offsets_request() {
            return Some(request);
        }
        match self.app {
            // A commit in an error state never sends EndTxn(commit): Java's `beginCommit`
            // throws the error (`maybeFailWithError`), sarama's `finishTransaction` returns
            // `lastError`; the application aborts instead (`txn_maybe_end`).
            AppTxn::Ending { commit: true, .. } if self.abortable.is_some() => None,
            AppTxn::Ending { commit, .. } if !has_incomplete && self.offsets.is_none() => {
                Some(TxnRequest::EndTxn { commit })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TopicId;

    /// A coordinator is connected to even when the producer's metadata lists its broker as
    /// dead: a partition had the controller fence broker 1 and reset the producer's
    /// connection, the producer's last metadata answer left it out, and FindCoordinator now
    /// names it again. Waiting for the metadata to list it (up to `metadata.max.age.ms`, 5
    /// min) looped on FindCoordinator in a user's consume-transform-produce run for 260 s
    /// after the heal; Java connects to the answer's node at once.
    #[test]
    fn a_coordinator_is_connected_to_though_the_metadata_lists_it_dead() {
        use super::super::{Producer, ProducerConfig, ProducerSpec};
        use crate::protocol::Message;
        use crate::protocol::MetadataResponse;
        use crate::testkit::Host;
        let mut config = ProducerConfig::for_client("java", None).unwrap();
        config.transactional_id = Some("orders-app".into());
        config.validate().unwrap();
        let spec = ProducerSpec::for_test(
            TopicId(0),
            vec![NodeId(0), NodeId(1)],
            Instant::from_millis(60_000),
        );
        let mut p = Producer::new(spec, config);
        p.metadata
            .connection_failed(NodeId(1), true, true, Instant::from_millis(1_000));
        p.metadata.update(&MetadataResponse {
            correlation_id: 0,
            brokers: vec![NodeId(0)],
            controller: None,
            topics: Vec::new(),
            partitions: Vec::new(),
        });
        let later = Instant::from_millis(5_000);
        assert!(
            !p.metadata.is_up(NodeId(1), later),
            "the metadata shows it dead"
        );
        p.txn.as_mut().unwrap().coordinator = Some(NodeId(1));
        let mut host = Host::new(NodeId(9));
        host.now = later;
        host.call(|cx| p.send_transactional_request(cx));
        let sent = host.sent();
        assert!(
            matches!(
                sent.as_slice(),
                [(NodeId(1), Message::InitProducerIdRequest(_))]
            ),
            "{sent:?}"
        );
        assert_eq!(p.txn.as_ref().unwrap().coordinator, Some(NodeId(1)));
    }

    const A: TopicPartition = TopicPartition::new(TopicId(0), 0);

    fn manager() -> TransactionManager {
        TransactionManager::new(
            "t-0".into(),
            Duration::from_millis(60_000),
            TxnWorkload::default(),
        )
    }

    #[test]
    fn requests_come_in_java_priority_order() {
        let mut t = manager();
        assert_eq!(t.next_request(false), Some(TxnRequest::FindCoordinator));
        t.coordinator = Some(NodeId(3));
        assert_eq!(t.next_request(false), None, "nothing to add or end");
        t.app = AppTxn::Open { txn: 0, records: 1 };
        t.maybe_add_partition(A);
        assert!(!t.send_allowed(A), "not added yet");
        assert_eq!(
            t.next_request(false),
            Some(TxnRequest::AddPartitions(vec![A]))
        );
        t.new_partitions.clear();
        t.added.insert(A);
        assert!(t.send_allowed(A));
        t.maybe_add_partition(A);
        assert!(
            t.new_partitions.is_empty(),
            "an added partition is not added again"
        );
        t.app = AppTxn::Ending {
            txn: 0,
            commit: true,
        };
        assert_eq!(
            t.next_request(true),
            None,
            "EndTxn waits for incomplete batches"
        );
        assert_eq!(
            t.next_request(false),
            Some(TxnRequest::EndTxn { commit: true })
        );
    }

    #[test]
    fn fenced_is_fatal_and_other_send_failures_are_abortable() {
        let mut t = manager();
        t.app = AppTxn::Open { txn: 0, records: 1 };
        t.on_send_failed(ErrorCode::TransactionAborted);
        assert!(t.accepts_sends(), "our own aborts are no new error");
        t.on_send_failed(ErrorCode::RequestTimedOut);
        assert_eq!(t.abortable, Some(ErrorCode::RequestTimedOut));
        assert!(t.bump_after_abort, "KIP-360: bump after the abort");
        assert!(!t.accepts_sends());
        assert_eq!(t.fatal, None);
        t.on_send_failed(ErrorCode::ProducerFenced);
        assert_eq!(t.fatal, Some(ErrorCode::ProducerFenced));
        assert_eq!(
            t.next_request(false),
            None,
            "a fatal producer sends nothing"
        );
    }
}
