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
//! `txn_librdkafka.rs`.
//!
//! History: `TxnBegin` when the first send of a transaction is made, `TxnValue` for every send
//! in it, and `TxnCommit` / `TxnAbort` when the EndTxn is answered. A transaction that can no
//! longer commit (fatal error before any EndTxn(commit) was sent) is `TxnAbort`: the
//! coordinator aborts it (the fencing InitProducerId or `transaction.timeout.ms`); one whose
//! EndTxn(commit) had been sent is `TxnUnknown`.

use super::{Outcome, Producer};
use crate::history::HistoryEvent;
use crate::node::{Cx, NodeId};
use crate::protocol::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, CoordinatorType, EndTxnRequest,
    EndTxnResponse, ErrorCode, FindCoordinatorRequest, FindCoordinatorResponse,
    InitProducerIdRequest, InitProducerIdResponse, Message,
};
use crate::record::TopicPartition;
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;

use super::workload::TxnWorkload;
use crate::client::ClientKind;

#[path = "txn_librdkafka.rs"]
mod librdkafka;

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

impl Producer {
    /// Whether any batch of the transaction is still queued, in flight, or being handed over
    /// (Java `accumulator.hasIncomplete()`).
    fn txn_has_incomplete(&self) -> bool {
        self.accumulator.queued_records() > 0
            || !self.sender.in_flight_is_empty()
            || self.blocked.is_some()
    }

    /// Whether a transactional request is due now (so the producer polls again at once).
    pub(super) fn txn_request_due(&self, now: Instant) -> bool {
        let Some(t) = self.txn.as_ref() else {
            return false;
        };
        if t.fatal.is_some() {
            return true;
        }
        self.txn_local_end_due() || self.txn_decide(now).is_some()
    }

    /// The transactional request `poll` sends now, if any (before choosing its broker).
    fn txn_decide(&self, now: Instant) -> Option<TxnRequest> {
        let t = self.txn.as_ref()?;
        if now < t.next_attempt || t.in_flight.is_some() {
            return None;
        }
        let needs_init = self.idempotence.as_ref().is_some_and(|i| i.needs_init());
        match t.next_request(self.txn_has_incomplete()) {
            Some(TxnRequest::FindCoordinator) => Some(TxnRequest::FindCoordinator),
            // KIP-360: the bump (or first id) goes once nothing is in flight.
            _ if needs_init && t.fatal.is_none() => (self.sender.in_flight_is_empty()
                && t.coordinator.is_some())
            .then_some(TxnRequest::InitProducerId),
            other => other,
        }
    }

    /// The broker the transactional request in flight went to.
    pub(super) fn txn_in_flight_broker(&self) -> Option<NodeId> {
        self.txn.as_ref()?.in_flight.as_ref().map(|i| i.broker)
    }

    /// When the next transactional request may go, if one waits for a backoff.
    pub(super) fn txn_next_attempt(&self) -> Option<Instant> {
        let t = self.txn.as_ref()?;
        (t.in_flight.is_none()).then_some(t.next_attempt)
    }

    /// An ending transaction that never added a partition completes without an EndTxn.
    fn txn_local_end_due(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| {
            matches!(t.app, AppTxn::Ending { .. })
                && !t.needs_end_txn()
                && t.new_partitions.is_empty()
                && t.offsets.is_none()
                && t.in_flight.is_none()
                && !self.txn_has_incomplete()
        })
    }

    /// The transactional half of `poll`: act on a fatal error, abort undrained batches of
    /// an aborting transaction, complete a transaction that needs no EndTxn, and send the
    /// next transactional request.
    pub(super) fn send_transactional_request(&mut self, cx: &mut Cx) {
        let Some(t) = self.txn.as_ref() else { return };
        if let Some(error) = t.fatal {
            self.rebuild_after_fatal(cx, error);
            return;
        }
        let aborting =
            t.abortable.is_some() || matches!(t.app, AppTxn::Ending { commit: false, .. });
        if t.sarama() {
            self.sarama_refuse_produce_sets(cx);
        } else if aborting {
            for batch in self.accumulator.take_undrained() {
                self.complete_batch(cx, batch, Outcome::Fail(ErrorCode::TransactionAborted));
            }
        }
        if self.txn_local_end_due() {
            self.finish_transaction(cx, None);
        }
        let now = cx.now();
        let Some(request) = self.txn_decide(now) else {
            return;
        };
        let t = self.txn.as_ref().expect("transactional");
        // A coordinator is the node a FindCoordinator answer named, with its address: every
        // client connects to it whether or not its own metadata lists the broker as live
        // (Java `TransactionManager.lookupCoordinator` hands the answer's `Node` to
        // `NetworkClient`; librdkafka `rd_kafka_txn_coord_set` adds the broker from the
        // answer; sarama `Client.RefreshTransactionCoordinator` opens the answer's broker).
        // Only the reconnect backoff holds it: a coordinator whose process is dead refuses
        // the connection, and the lookup starts again.
        let connectable = |c: &NodeId| self.connections.can_connect(*c, now);
        let broker = match request {
            TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator => self.pick_broker(now),
            TxnRequest::TxnOffsetCommit => t.group_coordinator.filter(connectable),
            _ => t.coordinator.filter(connectable),
        };
        let Some(broker) = broker else {
            // Nothing to connect to now: look again after the backoff.
            let backoff = self.config.transaction_retry_backoff();
            let t = self.txn.as_mut().expect("transactional");
            t.next_attempt = now + backoff;
            match request {
                TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator => {}
                TxnRequest::TxnOffsetCommit => t.group_coordinator = None,
                _ => t.coordinator = None,
            }
            return;
        };
        self.send_txn_request(cx, broker, request);
    }

    /// sarama's bridge calls `publishTxnPartitions` before every produce request. In an
    /// error state it returns the last error unsent, and after `Producer.Transaction.Retry.Max`
    /// failed AddPartitionsToTxn it returns that error: either way the produce set fails as
    /// if its connection broke (`brokerProducer.handleError` → `retryBatch`), so each of its
    /// messages uses up a retry (`Producer.Retry.Max`, `Producer.Retry.Backoff`) and fails
    /// once they are spent (`returnError`: abortable, see `on_send_failed`).
    fn sarama_refuse_produce_sets(&mut self, cx: &mut Cx) {
        let t = self.txn.as_mut().expect("transactional");
        let now = cx.now();
        let (error, pending) = match (t.abortable, t.add_gave_up.take()) {
            (Some(error), _) => (error, None),
            (None, Some(error)) => (error, Some(t.new_partitions.clone())),
            (None, None) => return,
        };
        let refused = self
            .accumulator
            .take_due(now, |tp| pending.as_ref().is_none_or(|p| p.contains(&tp)));
        for mut batch in refused {
            batch.attempts += 1;
            self.retry_or_complete(cx, batch, error, "retries exhausted");
        }
    }

    fn send_txn_request(&mut self, cx: &mut Cx, broker: NodeId, request: TxnRequest) {
        let correlation_id = self.sender.correlation_id();
        let (producer_id, producer_epoch) = self
            .idempotence
            .as_ref()
            .map_or((-1, -1), |i| (i.producer_id(), i.producer_epoch()));
        let t = self.txn.as_mut().expect("transactional");
        let id = t.transactional_id.clone();
        let msg = match &request {
            TxnRequest::FindCoordinator => {
                Message::FindCoordinatorRequest(FindCoordinatorRequest {
                    correlation_id,
                    key: id,
                    key_type: CoordinatorType::Transaction,
                })
            }
            TxnRequest::InitProducerId => Message::InitProducerIdRequest(InitProducerIdRequest {
                correlation_id,
                transactional_id: Some(id),
                producer_id,
                producer_epoch,
                transaction_timeout: Some(t.timeout),
                transaction_version_2: t.client == ClientKind::Java
                    && super::config::version_at_least(&self.config.client_version, (4, 0)),
            }),
            TxnRequest::AddPartitions(partitions) => {
                if t.librdkafka() {
                    t.req_cnt += 1;
                }
                Message::AddPartitionsToTxnRequest(AddPartitionsToTxnRequest {
                    correlation_id,
                    transactional_id: id,
                    producer_id,
                    producer_epoch,
                    partitions: partitions.clone(),
                    verify_only: false,
                })
            }
            TxnRequest::AddOffsets
            | TxnRequest::FindGroupCoordinator
            | TxnRequest::TxnOffsetCommit => super::ctp::offsets_message(
                t,
                correlation_id,
                &request,
                producer_id,
                producer_epoch,
            ),
            TxnRequest::EndTxn { commit } => {
                if *commit {
                    t.commit_sent = true;
                }
                Message::EndTxnRequest(EndTxnRequest {
                    correlation_id,
                    transactional_id: id,
                    producer_id,
                    producer_epoch,
                    commit: *commit,
                })
            }
        };
        t.in_flight = Some(InFlight {
            correlation_id,
            broker,
            deadline: cx.now() + self.config.request_timeout,
            request,
        });
        cx.send(broker, msg);
    }

    /// Take the in-flight request `correlation_id` from `from`, if it is the one out.
    pub(super) fn take_txn_in_flight(
        &mut self,
        from: NodeId,
        correlation_id: u64,
    ) -> Option<TxnRequest> {
        let t = self.txn.as_mut()?;
        let matches = t
            .in_flight
            .as_ref()
            .is_some_and(|i| i.correlation_id == correlation_id && i.broker == from);
        matches.then(|| t.in_flight.take().expect("checked").request)
    }

    /// Retry the request later; with `refind`, after looking the coordinator up again.
    pub(super) fn txn_retry(&mut self, now: Instant, refind: bool, backoff: Duration) {
        let t = self.txn.as_mut().expect("transactional");
        if refind {
            t.coordinator = None;
        }
        t.next_attempt = now + backoff;
    }

    /// A transactional request's connection was lost or it timed out: send it again after
    /// `retry.backoff.ms` to a coordinator looked up anew.
    pub(super) fn txn_connection_lost(&mut self, cx: &mut Cx, broker: NodeId) {
        let now = cx.now();
        let lost = self.txn.as_ref().is_some_and(|t| t.in_flight_to(broker));
        if !lost {
            return;
        }
        let t = self.txn.as_mut().expect("transactional");
        let request = t.in_flight.take().expect("checked").request;
        if t.librdkafka() {
            self.librdkafka_connection_lost(cx, now, request);
            return;
        }
        let backoff = self.config.transaction_retry_backoff();
        match request {
            TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator => {
                self.txn_retry(now, false, backoff)
            }
            // `TxnOffsetCommitHandler`: a disconnect looks the group coordinator up again.
            TxnRequest::TxnOffsetCommit => {
                t.group_coordinator = None;
                self.txn_retry(now, false, backoff)
            }
            TxnRequest::AddPartitions(_) => {
                // sarama: a network error is a failed attempt of `publishTxnPartitions`.
                self.sarama_add_failed(ErrorCode::NetworkException);
                self.txn_retry(now, true, backoff)
            }
            _ => self.txn_retry(now, true, backoff),
        }
    }

    pub(super) fn on_find_coordinator_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: FindCoordinatorResponse,
    ) {
        let Some(request) = self.take_txn_in_flight(from, r.correlation_id) else {
            return;
        };
        let backoff = self.config.transaction_retry_backoff();
        match (r.error, r.coordinator) {
            (ErrorCode::None, Some(node)) => {
                let t = self.txn.as_mut().expect("transactional");
                if request == TxnRequest::FindGroupCoordinator {
                    t.group_coordinator = Some(node);
                } else {
                    t.coordinator = Some(node);
                }
            }
            // librdkafka: the coordinator query timer (`rd_kafka_txn_coord_set(NULL)` →
            // `rd_kafka_txn_coord_timer_start(rk, 500)`).
            _ if self.config.client == ClientKind::Librdkafka => {
                self.txn_retry(cx.now(), false, librdkafka::COORD_QUERY_BACKOFF)
            }
            _ => self.txn_retry(cx.now(), false, backoff),
        }
    }

    /// InitProducerId of a transactional producer (`InitProducerIdHandler.handleResponse`).
    pub(super) fn on_txn_init_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: InitProducerIdResponse,
    ) {
        if self.take_txn_in_flight(from, r.correlation_id).is_none() {
            return;
        }
        let now = cx.now();
        let backoff = self.config.transaction_retry_backoff();
        let librdkafka = self.config.client == ClientKind::Librdkafka;
        match r.error {
            ErrorCode::None => {
                let idem = self
                    .idempotence
                    .as_mut()
                    .expect("transactions are idempotent");
                if idem.producer_id() >= 0 {
                    self.stats.epoch_bumps += 1;
                }
                idem.on_init(r.producer_id, r.producer_epoch);
                self.accumulator.clear_sequences();
                let t = self.txn.as_mut().expect("transactional");
                if t.app == AppTxn::Initializing {
                    t.app = AppTxn::Ready;
                }
            }
            e if librdkafka => self.librdkafka_init_failed(now, e),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, backoff)
            }
            // sarama `initProducerId`: only these three are retried; the rest, with
            // CONCURRENT_TRANSACTIONS, are fatal.
            ErrorCode::CoordinatorLoadInProgress if self.config.client == ClientKind::Sarama => {
                self.txn_retry(now, false, backoff)
            }
            e if self.config.client == ClientKind::Sarama => {
                self.txn.as_mut().expect("transactional").fatal = Some(e)
            }
            e if e.is_retriable() => self.txn_retry(now, false, backoff),
            e => self.txn.as_mut().expect("transactional").fatal = Some(e),
        }
    }

    /// sarama `publishTxnPartitions`: a failed attempt; after `Producer.Transaction.Retry.Max`
    /// retries the produce sets waiting for the partitions fail (see
    /// `sarama_refuse_produce_sets`), and the next produce set starts a new round.
    fn sarama_add_failed(&mut self, error: ErrorCode) {
        let t = self.txn.as_mut().expect("transactional");
        if !t.sarama() {
            return;
        }
        t.add_failures += 1;
        if t.add_failures > t.retry_max {
            t.add_failures = 0;
            t.add_gave_up = Some(error);
        }
    }

    /// sarama's AddPartitionsToTxn answer (`publishTxnPartitions`' switch).
    fn on_sarama_add_partitions_error(&mut self, now: Instant, error: ErrorCode) {
        let backoff = self.config.transaction_retry_backoff();
        let t = self.txn.as_mut().expect("transactional");
        match error {
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.sarama_add_failed(error);
                self.txn_retry(now, true, backoff);
            }
            ErrorCode::UnknownTopicOrPartition | ErrorCode::CoordinatorLoadInProgress => {
                self.sarama_add_failed(error);
                self.txn_retry(now, false, backoff);
            }
            ErrorCode::ConcurrentTransactions => {
                let short = if t.added.is_empty() {
                    ADD_PARTITIONS_RETRY_BACKOFF.min(backoff)
                } else {
                    backoff
                };
                self.sarama_add_failed(error);
                self.txn_retry(now, false, short);
            }
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerIdMapping => {
                // `abortableErrorIfPossible` (a 2.5+ coordinator bumps after the abort).
                t.new_partitions.clear();
                t.bump_after_abort = true;
                t.abortable.get_or_insert(error);
            }
            // OPERATION_NOT_ATTEMPTED / TOPIC_AUTHORIZATION_FAILED would be abortable; kafsim
            // sends neither. Everything else is fatal (`removeAllPartitionsOnFatalOrAbortedError`).
            e => {
                t.new_partitions.clear();
                t.fatal = Some(e);
            }
        }
    }

    /// `AddPartitionsToTxnHandler.handleResponse`.
    pub(super) fn on_add_partitions_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: AddPartitionsToTxnResponse,
    ) {
        let Some(TxnRequest::AddPartitions(partitions)) =
            self.take_txn_in_flight(from, r.correlation_id)
        else {
            return;
        };
        let now = cx.now();
        let backoff = self.config.transaction_retry_backoff();
        let t = self.txn.as_mut().expect("transactional");
        if t.librdkafka() {
            self.librdkafka_add_partitions_response(now, partitions, r.error);
            return;
        }
        if r.error == ErrorCode::None {
            t.add_failures = 0;
        } else if t.sarama() {
            self.on_sarama_add_partitions_error(now, r.error);
            return;
        }
        match r.error {
            ErrorCode::None => {
                for tp in partitions {
                    t.new_partitions.remove(&tp);
                    t.added.insert(tp);
                }
                t.started = true;
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, backoff)
            }
            ErrorCode::ConcurrentTransactions if t.added.is_empty() => {
                let short = ADD_PARTITIONS_RETRY_BACKOFF.min(backoff);
                self.txn_retry(now, false, short)
            }
            e if e.is_retriable() => self.txn_retry(now, false, backoff),
            ErrorCode::InvalidProducerEpoch
            | ErrorCode::ProducerFenced
            | ErrorCode::InvalidTxnState => t.fatal = Some(r.error),
            e => {
                // UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_ID_MAPPING (`abortableErrorIfPossible`)
                // and partition errors: abort, then bump.
                t.new_partitions.clear();
                t.bump_after_abort = true;
                t.abortable.get_or_insert(e);
            }
        }
    }

    /// `EndTxnHandler.handleResponse`.
    pub(super) fn on_end_txn_response(&mut self, cx: &mut Cx, from: NodeId, r: EndTxnResponse) {
        let Some(request) = self.take_txn_in_flight(from, r.correlation_id) else {
            return;
        };
        let now = cx.now();
        if self.config.client == ClientKind::Librdkafka {
            let commit = matches!(request, TxnRequest::EndTxn { commit: true });
            self.librdkafka_end_txn_response(cx, commit, r);
            return;
        }
        let backoff = self.config.transaction_retry_backoff();
        let sarama = self.config.client == ClientKind::Sarama;
        match r.error {
            ErrorCode::None => self.finish_transaction(cx, Some((r.producer_id, r.producer_epoch))),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, backoff)
            }
            // sarama `endTxn`: these two retried; UNKNOWN_PRODUCER_ID and
            // INVALID_PRODUCER_ID_MAPPING abortable (`abortableErrorIfPossible`); the rest fatal.
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::ConcurrentTransactions if sarama => {
                self.txn_retry(now, false, backoff)
            }
            e @ (ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerIdMapping) if sarama => {
                self.txn
                    .as_mut()
                    .expect("transactional")
                    .set_abortable(e, true)
            }
            e if sarama => self.txn.as_mut().expect("transactional").fatal = Some(e),
            e if e.is_retriable() => self.txn_retry(now, false, backoff),
            // PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE and the unhandled
            // rest are fatal. (UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_ID_MAPPING are abortable
            // with a bump in Java; the rebuilt producer's InitProducerId bumps as well.)
            e => self.txn.as_mut().expect("transactional").fatal = Some(e),
        }
    }

    /// The transaction ended as the application asked (`completeTransaction`). `ids`: the
    /// EndTxn answer's producer id and epoch (None when no EndTxn was needed).
    pub(super) fn finish_transaction(&mut self, cx: &mut Cx, ids: Option<(i64, i16)>) {
        let producer = self.producer_index();
        let t = self.txn.as_mut().expect("transactional");
        let AppTxn::Ending { txn, commit } = t.app else {
            return; // a late answer to a transaction already given up
        };
        let event = if commit {
            self.stats_txn.committed += 1;
            HistoryEvent::TxnCommit { producer, txn }
        } else {
            self.stats_txn.aborted += 1;
            HistoryEvent::TxnAbort { producer, txn }
        };
        cx.record(event);
        if t.external {
            t.outcome = Some(if commit {
                super::ctp::TxnOutcome::Committed
            } else {
                super::ctp::TxnOutcome::Aborted
            });
        }
        t.offsets = None;
        let bump = t.bump_after_abort && !commit;
        t.added.clear();
        t.new_partitions.clear();
        t.started = false;
        t.commit_sent = false;
        t.abortable = None;
        t.bump_after_abort = false;
        t.req_cnt = 0;
        t.end_txn_retries = 0;
        t.app = if bump {
            AppTxn::Initializing
        } else {
            AppTxn::Ready
        };
        self.accumulator.set_flushing(false);
        let idem = self
            .idempotence
            .as_mut()
            .expect("transactions are idempotent");
        if bump {
            idem.request_bump();
        } else if let Some((pid, epoch)) = ids {
            // KIP-890 part 2: the coordinator bumped the epoch at this EndTxn.
            if pid == idem.producer_id() && epoch > idem.producer_epoch() {
                idem.on_init(pid, epoch);
                self.accumulator.clear_sequences();
            }
        }
    }

    /// The application's side before each send: begin a transaction if none is open, end
    /// one that is complete, failed or outlived the run. False if no send may be made now.
    pub(super) fn txn_before_send(&mut self, cx: &mut Cx) -> bool {
        let producer = self.producer_index();
        let Some(t) = self.txn.as_mut() else {
            return true;
        };
        if !t.accepts_sends() {
            return false;
        }
        if t.app == AppTxn::Ready {
            let txn = (t.incarnation << 32) | t.next_n;
            t.next_n += 1;
            t.app = AppTxn::Open { txn, records: 0 };
            cx.record(HistoryEvent::TxnBegin { producer, txn });
        }
        true
    }

    /// A send of value `value` was made: it belongs to the open transaction.
    pub(super) fn txn_sent(&mut self, cx: &mut Cx, value: crate::record::ValueId) {
        let producer = self.producer_index();
        let Some(t) = self.txn.as_mut() else { return };
        let AppTxn::Open { txn, records } = t.app else {
            unreachable!("a transactional send outside a transaction")
        };
        t.app = AppTxn::Open {
            txn,
            records: records + 1,
        };
        cx.record(HistoryEvent::TxnValue {
            producer,
            txn,
            value,
        });
    }

    /// The application ends its open transaction when it has its records, when an abortable
    /// error occurred (commit would throw it; the application aborts), or when the run stops.
    pub(super) fn txn_maybe_end(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let stopped = self.workload.stopped(now);
        let Some(t) = self.txn.as_mut() else { return };
        if t.fatal.is_some() || t.external {
            return;
        }
        let (txn, commit_wanted) = match t.app {
            AppTxn::Open { txn, records } => {
                // An application that never ends its transaction (`records = "unlimited"`)
                // ends it only to abort on an error its sends reported.
                let more = t.workload.records.is_none_or(|n| records < n);
                let stops = stopped && !t.workload.never_ends();
                if t.abortable.is_none() && more && !stops {
                    return;
                }
                (txn, true)
            }
            AppTxn::Ending { txn, commit: true } if t.abortable.is_some() => (txn, false),
            _ => return,
        };
        let commit = commit_wanted
            && t.abortable.is_none()
            && !(t.workload.abort > 0.0 && rand::Rng::gen_bool(cx.rng(), t.workload.abort));
        t.app = AppTxn::Ending { txn, commit };
        if t.sarama() {
            // sarama `finishTransaction` only waits (`inFlight.Wait()`): no flush, and an abort
            // still adds and writes what is queued.
            return;
        }
        if commit {
            self.accumulator.set_flushing(true);
        } else {
            // `beginAbort`: no partitions are added any more.
            t.new_partitions.clear();
            self.accumulator.set_flushing(false);
        }
    }

    /// A record of the transaction failed (`handleFailedBatch` → `maybeTransitionToErrorState`).
    pub(super) fn txn_record_failed(&mut self, error: ErrorCode) {
        if let Some(t) = self.txn.as_mut() {
            t.on_send_failed(error);
        }
    }

    /// A fatal error: the application closes the producer (its connections, so nothing in
    /// flight is answered any more; everything incomplete ends failed or unknown) and builds
    /// a new one with the same `transactional.id`.
    fn rebuild_after_fatal(&mut self, cx: &mut Cx, error: ErrorCode) {
        let producer = self.producer_index();
        let t = self.txn.as_mut().expect("transactional");
        let ended = match t.app {
            AppTxn::Open { txn, .. } | AppTxn::Ending { txn, .. } => Some((txn, t.commit_sent)),
            _ => None,
        };
        if let Some((txn, commit_sent)) = ended {
            if commit_sent {
                self.stats_txn.unknown += 1;
                cx.record(HistoryEvent::TxnUnknown {
                    producer,
                    txn,
                    reason: "producer fenced while committing",
                });
            } else {
                self.stats_txn.aborted += 1;
                cx.record(HistoryEvent::TxnAbort { producer, txn });
            }
        }
        let t = self.txn.as_mut().expect("transactional");
        let mut brokers: BTreeSet<NodeId> =
            t.in_flight.take().map(|i| i.broker).into_iter().collect();
        // Close first: the completions below see the transaction still open and change
        // nothing (it is given up already); the state is reset after them.
        for (broker, batches) in self.sender.take_all_in_flight() {
            brokers.insert(broker);
            for mut b in batches {
                b.maybe_written = true;
                let outcome = Outcome::Unknown("producer closed after a fatal error");
                self.complete_batch(cx, b, outcome);
            }
        }
        for batch in self.accumulator.purge() {
            let outcome = if batch.maybe_written {
                Outcome::Unknown("producer closed after a fatal error")
            } else {
                Outcome::Fail(error)
            };
            self.complete_batch(cx, batch, outcome);
        }
        for broker in brokers {
            cx.close_connection(broker);
        }
        let t = self.txn.as_mut().expect("transactional");
        if t.external && ended.is_some() {
            t.outcome = Some(super::ctp::TxnOutcome::Fenced);
        }
        t.offsets = None;
        t.group_coordinator = None;
        t.coordinator = None;
        t.added.clear();
        t.new_partitions.clear();
        t.started = false;
        t.abortable = None;
        t.bump_after_abort = false;
        t.req_cnt = 0;
        t.end_txn_retries = 0;
        t.fatal = None;
        t.commit_sent = false;
        t.app = AppTxn::Initializing;
        t.next_attempt = cx.now();
        if t.sarama() {
            t.next_attempt = cx.now() + self.config.transaction_retry_backoff();
            t.add_failures = 0;
            t.add_gave_up = None;
        }
        t.rebuilds += 1;
        let exhausted = t.rebuilds >= MAX_PRODUCER_REBUILDS;
        self.stats_txn.rebuilds += 1;
        self.accumulator.set_flushing(false);
        self.idempotence = Some(super::idempotence::IdempotenceState::new());
        if exhausted {
            self.fatal = Some(error);
        }
    }

    /// Counters of this producer's transactions (zero for a plain producer).
    pub fn txn_stats(&self) -> &TxnStats {
        &self.stats_txn
    }

    /// Number the transactions of this life of the producer.
    pub(super) fn txn_start(&mut self, incarnation: u64) {
        if let Some(t) = self.txn.as_mut() {
            t.incarnation = incarnation;
            t.next_n = 0;
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
        use super::super::{ProducerConfig, ProducerSpec};
        use crate::protocol::MetadataResponse;
        use crate::testkit::Host;
        let mut config = ProducerConfig::for_client("java", None).unwrap();
        config.transactional_id = Some("orders-app".into());
        config.validate().unwrap();
        let spec = ProducerSpec {
            index: 0,
            topic: TopicId(0),
            rate: None,
            keys: 0,
            message_size: 100,
            message_profile: Default::default(),
            stop_at: Instant::from_millis(60_000),
            bootstrap: vec![NodeId(0), NodeId(1)],
            value_base: 0,
            transactions: None,
            held: false,
        };
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
