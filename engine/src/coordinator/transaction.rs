//! The transaction coordinator, hosted by brokers (Kafka's `TransactionCoordinator`,
//! `TransactionStateManager` and `TransactionMarkerChannelManager`).
//!
//! The coordinator of a `transactional.id` is the leader of partition
//! `abs(hash(transactional.id)) % transaction.state.log.num.partitions` of
//! `__transaction_state` (`TransactionStateManager.partitionFor`). Every state transition of an
//! id ([`TxnMetadata`]) is appended to that partition with acks=all before the coordinator
//! acts on it or answers (`TransactionStateManager.appendTransactionToLog`); a broker that
//! becomes the partition's leader reloads the last state of each id from the log and resends
//! the markers of transactions it finds prepared (`loadTransactionsForTxnTopicPartition`,
//! then `TransactionCoordinator.onElection`), so the coordinator fails over with its partition
//! leader and a transition the log lost is lost to the coordinator too.
//!
//! Markers: once PrepareCommit / PrepareAbort is in the log, the coordinator sends
//! WriteTxnMarkers to the leader of every partition of the transaction, retries partitions
//! whose leader moved or was unreachable, cancels on a fenced producer or coordinator epoch
//! (`TransactionMarkerRequestCompletionHandler`), and writes CompleteCommit / CompleteAbort
//! when every partition has its marker (`maybeWriteTxnCompletion`).
//!
//! `transaction.timeout.ms`: every `transaction.abort.timed.out.transaction.cleanup.interval.ms`
//! an ongoing transaction older than its timeout is aborted under a bumped epoch
//! (`abortTimedOutTransactions`), which fences the producer that left it open.
//!
//! Producer ids come from the active controller (Kafka's `ProducerIdManager` asks it for
//! blocks): the coordinator sends it an InitProducerId without a transactional id.

use super::txn_metadata::{TxnAction, TxnMetadata, TxnState};
use super::{coordinator_partition, loaded_epoch_if_leading, OffsetsLog};
use crate::node::{Cx, NodeId};
use crate::protocol::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, CoordinatorType, EndTxnRequest, EndTxnResponse, ErrorCode,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    Message, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use crate::record::{ControlMarker, InternalPayload, Record, TopicId, TopicPartition, ValueId};
use crate::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::broker::timer::TxnTimer;
#[cfg(test)]
use crate::broker::timer::{
    TXN_ABORT_CHECK as TIMER_ABORT_CHECK, TXN_MARKER_RETRY as TIMER_MARKER_RETRY,
    TXN_MARKER_TIMEOUT as TIMER_MARKER_TIMEOUT,
};
#[cfg(test)]
use crate::node::Timer;

/// Append tokens of the transaction coordinator carry this bit, so the broker can tell its
/// completions from the group coordinator's.
pub const TXN_TOKEN_BIT: u64 = 1 << 62;

/// Most transactional ids one coordinator keeps (a bound; Kafka has none).
pub const MAX_TRANSACTIONAL_IDS: usize = 10_000;
/// Most WriteTxnMarkers / InitProducerId requests in flight (a bound).
const MAX_IN_FLIGHT: usize = 10_000;

/// Modelled size of one `__transaction_state` record.
const TXN_RECORD_BYTES: u32 = 96;

/// Broker properties of the coordinator (Kafka names).
#[derive(Clone, Debug)]
pub struct TxnCoordinatorConfig {
    /// The `__transaction_state` topic, if this cluster has one (kafsim creates it only for
    /// scenarios with transactional producers, as Kafka creates it on first use).
    pub topic: Option<TopicId>,
    /// `transaction.state.log.num.partitions` (default 50).
    pub partitions: u32,
    /// `__consumer_offsets` and `offsets.topic.num.partitions`: AddOffsetsToTxn adds the
    /// group's partition of it (`GroupCoordinator.partitionFor`).
    pub offsets_topic: TopicId,
    pub offsets_partitions: u32,
    /// `transaction.version` >= 2 (KIP-890 part 2): bump the epoch at every EndTxn.
    pub bump_on_end: bool,
    /// `transaction.max.timeout.ms` (default 900000).
    pub max_timeout: Duration,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (default 10000).
    pub abort_check_interval: Duration,
    /// Wait before resending markers after a retriable error (the marker channel's
    /// `retry.backoff.ms`, default 100).
    pub retry_backoff: Duration,
    /// Inter-broker `request.timeout.ms` (default 30000): a WriteTxnMarkers without an
    /// answer by then is sent again to the partition's current leader.
    pub request_timeout: Duration,
}

/// One transactional id this coordinator owns.
#[derive(Debug)]
struct Entry {
    meta: TxnMetadata,
    /// Timer key of the id.
    index: u32,
    /// A transition is being appended (`pendingState` in Kafka): other requests wait.
    pending: bool,
    /// Created by this coordinator and not in the log yet: forgotten if its first append
    /// fails.
    new: bool,
}

/// Which request an answer is for: the coordinator builds every answer with [`reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyKind {
    /// InitProducerId with the id and epoch.
    Init,
    /// InitProducerId fenced an ongoing transaction: answered CONCURRENT_TRANSACTIONS (the
    /// client retries and gets a second bump once the abort completes).
    Fence,
    AddPartitions,
    AddOffsets,
    End,
}

/// What to do once a transition is in the log.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Answer a client's request.
    Reply {
        kind: ReplyKind,
        client: NodeId,
        correlation_id: u64,
    },
    /// The coordinator's own transition (timeout abort, completion).
    Nothing,
}

/// Send the answer of `kind` to `to`: one place builds every response of the coordinator
/// (`producer_id` / `producer_epoch` only go in InitProducerId and EndTxn answers).
fn reply(
    cx: &mut Cx,
    to: NodeId,
    kind: ReplyKind,
    correlation_id: u64,
    error: ErrorCode,
    producer_id: i64,
    producer_epoch: i16,
) {
    // Only InitProducerId and EndTxn answers carry the producer; a successful
    // InitProducerId always names a real one.
    assert!(
        matches!(kind, ReplyKind::Init | ReplyKind::End)
            || (producer_id == -1 && producer_epoch == -1),
        "a {kind:?} answer naming producer {producer_id}"
    );
    assert!(
        kind != ReplyKind::Init || error != ErrorCode::None || producer_id >= 0,
        "{}: InitProducerId answered without a producer id",
        cx.me()
    );
    let msg = match kind {
        ReplyKind::Init | ReplyKind::Fence => {
            Message::InitProducerIdResponse(InitProducerIdResponse {
                correlation_id,
                error,
                producer_id,
                producer_epoch,
            })
        }
        ReplyKind::AddPartitions => {
            Message::AddPartitionsToTxnResponse(AddPartitionsToTxnResponse {
                correlation_id,
                error,
            })
        }
        ReplyKind::AddOffsets => Message::AddOffsetsToTxnResponse(AddOffsetsToTxnResponse {
            correlation_id,
            error,
        }),
        ReplyKind::End => Message::EndTxnResponse(EndTxnResponse {
            correlation_id,
            error,
            producer_id,
            producer_epoch,
        }),
    };
    cx.send(to, msg);
}

/// An error answer (no producer id).
fn reply_error(cx: &mut Cx, to: NodeId, kind: ReplyKind, correlation_id: u64, error: ErrorCode) {
    reply(cx, to, kind, correlation_id, error, -1, -1);
}

/// A request that adds partitions to a transaction (AddPartitionsToTxn, AddOffsetsToTxn).
#[derive(Clone, Copy, Debug)]
struct AddAsk<'a> {
    kind: ReplyKind,
    client: NodeId,
    correlation_id: u64,
    transactional_id: &'a str,
    producer_id: i64,
    producer_epoch: i16,
}

#[derive(Debug)]
struct PendingAppend {
    id: Arc<str>,
    partition: TopicPartition,
    next: TxnMetadata,
    then: Then,
}

/// Markers owed for one prepared transaction.
#[derive(Debug)]
struct MarkerJob {
    producer_id: i64,
    epoch: i16,
    marker: ControlMarker,
    coordinator_epoch: u32,
    /// Partitions without their marker yet.
    remaining: BTreeSet<TopicPartition>,
    /// Of those, the ones a WriteTxnMarkers is out for.
    in_flight: BTreeSet<TopicPartition>,
}

#[derive(Debug)]
struct MarkerRequest {
    id: Arc<str>,
    partitions: Vec<TopicPartition>,
}

/// An InitProducerId the coordinator forwarded to the controller for a fresh producer id.
#[derive(Debug)]
struct IdRequest {
    id: Arc<str>,
    client: NodeId,
    correlation_id: u64,
    timeout: Duration,
    /// The client ends its transactions with EndTxn v5+ (KIP-890 part 2 applies).
    transaction_version_2: bool,
}

/// The broker-side transaction coordinator. Inputs: [`Self::handle`],
/// [`Self::on_init_producer_id_response`], [`Self::on_write_txn_markers_response`],
/// [`Self::on_timer`], [`Self::on_leadership`], [`Self::on_append_done`],
/// [`Self::on_connection_reset`]. Outputs through `cx` and [`OffsetsLog::append`].
#[derive(Debug)]
pub struct TransactionCoordinator {
    config: TxnCoordinatorConfig,
    ids: BTreeMap<Arc<str>, Entry>,
    by_index: BTreeMap<u32, Arc<str>>,
    next_index: u32,
    /// `__transaction_state` partitions loaded, with the leader epoch (coordinator epoch).
    owned: BTreeMap<u32, u32>,
    pending: BTreeMap<u64, PendingAppend>,
    jobs: BTreeMap<Arc<str>, MarkerJob>,
    marker_requests: BTreeMap<u64, (NodeId, MarkerRequest)>,
    id_requests: BTreeMap<u64, IdRequest>,
    next_token: u64,
    next_correlation: u64,
    abort_check_scheduled: bool,
    /// WriteTxnMarkers for partitions this very broker leads: Kafka's marker channel sends
    /// them over the network to itself; a node here cannot, so the broker takes them from
    /// [`Self::take_local_markers`] and answers through
    /// [`Self::on_write_txn_markers_response`].
    local: Vec<WriteTxnMarkersRequest>,
}

impl TransactionCoordinator {
    pub fn new(config: TxnCoordinatorConfig) -> TransactionCoordinator {
        assert!(
            config.partitions > 0,
            "transaction.state.log.num.partitions must be positive"
        );
        TransactionCoordinator {
            config,
            ids: BTreeMap::new(),
            by_index: BTreeMap::new(),
            next_index: 0,
            owned: BTreeMap::new(),
            pending: BTreeMap::new(),
            jobs: BTreeMap::new(),
            marker_requests: BTreeMap::new(),
            id_requests: BTreeMap::new(),
            next_token: 0,
            next_correlation: 0,
            abort_check_scheduled: false,
            local: Vec::new(),
        }
    }

    /// Correlation ids of the coordinator's own requests start here (the broker gives it a
    /// range of its own per incarnation, so late answers to a previous process match nothing).
    pub fn set_correlation_base(&mut self, base: u64) {
        assert!(
            base >= self.next_correlation,
            "transaction coordinator correlation ids would go back to {base}"
        );
        self.next_correlation = base;
    }

    /// What every entry point leaves true: each owned id has its timer index; an id is
    /// marked pending exactly while one append of it is in flight, for its own partition;
    /// marker jobs belong to prepared ids and ask only for partitions still owed; the bounds
    /// hold.
    fn check(&self) {
        assert!(
            self.ids.len() <= MAX_TRANSACTIONAL_IDS,
            "transaction coordinator: {} ids",
            self.ids.len()
        );
        super::assert_timer_indexes(&self.by_index, &self.ids, |e| e.index, "transactional id");
        assert!(
            self.marker_requests.len() <= MAX_IN_FLIGHT,
            "transaction coordinator: {} WriteTxnMarkers in flight",
            self.marker_requests.len()
        );
        assert!(
            self.id_requests.len() <= MAX_IN_FLIGHT,
            "transaction coordinator: {} producer id requests in flight",
            self.id_requests.len()
        );
        assert!(
            self.pending
                .values()
                .all(|p| self.ids.get(&p.id).is_some_and(|e| e.pending)),
            "transaction coordinator: an append in flight for an id not marked pending"
        );
        assert_eq!(
            self.ids.values().filter(|e| e.pending).count(),
            self.pending.len(),
            "transaction coordinator: an id marked pending without its append"
        );
        assert!(
            self.pending
                .values()
                .all(|p| self.partition_for(&p.id) == Some(p.partition)),
            "transaction coordinator: an id's state appended to another partition"
        );
        assert!(
            self.owned.keys().all(|p| *p < self.config.partitions),
            "transaction coordinator: owns a partition __transaction_state does not have"
        );
        assert!(
            self.marker_requests
                .values()
                .all(|(_, r)| !r.partitions.is_empty()),
            "transaction coordinator: a WriteTxnMarkers in flight for no partition"
        );
        assert!(
            self.jobs.iter().all(|(id, job)| self
                .ids
                .get(id)
                .is_none_or(|e| e.meta.producer_id == job.producer_id)),
            "transaction coordinator: markers owed under another producer id than the id's"
        );
        assert!(
            self.jobs
                .values()
                .all(|job| job.in_flight.is_subset(&job.remaining)),
            "transaction coordinator: a marker in flight that is not owed"
        );
        assert!(
            self.jobs.keys().all(|id| self.ids.get(id).is_some_and(|e| {
                matches!(
                    e.meta.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort
                )
            })),
            "transaction coordinator: markers owed for an id that is not prepared"
        );
    }

    /// The `__transaction_state` partition of `transactional_id`
    /// (`TransactionStateManager.partitionFor`), if the cluster has the topic.
    pub fn partition_for(&self, transactional_id: &str) -> Option<TopicPartition> {
        let topic = self.config.topic?;
        let tp = coordinator_partition(topic, self.config.partitions, transactional_id);
        assert!(
            tp.partition < self.config.partitions,
            "{transactional_id}: coordinated by {tp}, outside __transaction_state"
        );
        Some(tp)
    }

    /// Whether the broker should hand `msg` to [`Self::handle`].
    pub fn accepts(msg: &Message) -> bool {
        match msg {
            Message::FindCoordinatorRequest(r) => r.key_type == CoordinatorType::Transaction,
            Message::InitProducerIdRequest(r) => r.transactional_id.is_some(),
            Message::AddPartitionsToTxnRequest(_)
            | Message::AddOffsetsToTxnRequest(_)
            | Message::EndTxnRequest(_) => true,
            _ => false,
        }
    }

    /// Marker writes addressed to this broker itself, to append locally.
    pub fn take_local_markers(&mut self) -> Vec<WriteTxnMarkersRequest> {
        std::mem::take(&mut self.local)
    }

    /// Whether a response is an answer to one of this coordinator's own requests.
    pub fn awaits(&self, msg: &Message) -> bool {
        match msg {
            Message::InitProducerIdResponse(r) => self.id_requests.contains_key(&r.correlation_id),
            Message::WriteTxnMarkersResponse(r) => {
                self.marker_requests.contains_key(&r.correlation_id)
            }
            _ => false,
        }
    }

    /// The state of `transactional_id` if this coordinator owns it (inspection and tests).
    pub fn state(&self, transactional_id: &str) -> Option<(i64, i16, TxnState)> {
        let e = self.ids.get(transactional_id)?;
        Some((e.meta.producer_id, e.meta.epoch, e.meta.state))
    }

    /// The transactional id and state this coordinator has for `producer_id`, if it owns one
    /// (stall explanations: does anyone know of a transaction open on a partition?).
    pub fn find_producer(&self, producer_id: i64) -> Option<(&str, &TxnMetadata)> {
        self.ids
            .iter()
            .find(|(_, e)| e.meta.producer_id == producer_id)
            .map(|(id, e)| (&**id, &e.meta))
    }

    fn take_token(&mut self) -> u64 {
        self.next_token += 1;
        assert!(
            self.next_token < TXN_TOKEN_BIT,
            "transaction coordinator tokens exhausted"
        );
        TXN_TOKEN_BIT | self.next_token
    }

    fn take_correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }

    /// Whether this broker leads and has loaded the partition of `id`.
    fn owns(&self, id: &str, log: &dyn OffsetsLog) -> Option<TopicPartition> {
        let tp = self.partition_for(id)?;
        let loaded = loaded_epoch_if_leading(&self.owned, tp, log)?;
        let owned = (log.leader_epoch(tp) == Some(loaded)).then_some(tp);
        assert!(
            owned.is_none_or(|tp| Some(tp.topic) == self.config.topic),
            "{id}: owned through {tp}, outside __transaction_state"
        );
        owned
    }

    /// KIP-890 part 1 for a partition leader on this broker: whether `partitions` are in the
    /// ongoing transaction of `transactional_id` at `producer_id` / `producer_epoch` (what a
    /// verify-only AddPartitionsToTxn answers).
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        log: &dyn OffsetsLog,
    ) -> ErrorCode {
        if self.owns(transactional_id, log).is_none() {
            return ErrorCode::NotCoordinator;
        }
        match self.ids.get(transactional_id) {
            None => ErrorCode::InvalidProducerIdMapping,
            Some(entry) => Self::verify_entry(entry, producer_id, producer_epoch, partitions),
        }
    }

    fn verify_entry(
        entry: &Entry,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> ErrorCode {
        partitions
            .iter()
            .map(|p| entry.meta.verify(producer_id, producer_epoch, *p))
            .find(|e| *e != ErrorCode::None)
            .unwrap_or(ErrorCode::None)
    }

    /// Handle a client request ([`Self::accepts`]).
    pub fn handle(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        msg: Message,
        controller: Option<NodeId>,
        log: &mut dyn OffsetsLog,
    ) {
        self.check();
        match msg {
            Message::FindCoordinatorRequest(r) => self.find_coordinator(cx, from, r, log),
            Message::InitProducerIdRequest(r) => {
                self.init_producer_id(cx, from, r, controller, log)
            }
            Message::AddPartitionsToTxnRequest(r) => self.add_partitions(cx, from, r, log),
            Message::AddOffsetsToTxnRequest(r) => self.add_offsets(cx, from, r, log),
            Message::EndTxnRequest(r) => self.end_txn(cx, from, r, log),
            other => panic!("{}: not a transaction request: {}", cx.me(), other.kind()),
        }
    }

    fn find_coordinator(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: FindCoordinatorRequest,
        log: &dyn OffsetsLog,
    ) {
        let coordinator = self.partition_for(&r.key).and_then(|tp| log.leader_of(tp));
        let error = match coordinator {
            Some(_) => ErrorCode::None,
            None => ErrorCode::CoordinatorNotAvailable,
        };
        let resp = FindCoordinatorResponse {
            correlation_id: r.correlation_id,
            error,
            coordinator,
        };
        cx.send(from, Message::FindCoordinatorResponse(resp));
    }

    fn init_producer_id(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: InitProducerIdRequest,
        controller: Option<NodeId>,
        log: &mut dyn OffsetsLog,
    ) {
        // `accepts` routes only an InitProducerId naming a transactional id here.
        assert!(
            r.transactional_id.is_some(),
            "{}: an idempotent producer's InitProducerId at the transaction coordinator",
            cx.me()
        );
        let id: Arc<str> = Arc::from(r.transactional_id.as_deref().unwrap_or_default());
        let reply =
            |cx: &mut Cx, error| reply_error(cx, from, ReplyKind::Init, r.correlation_id, error);
        let Some(tp) = self.owns(&id, log) else {
            return reply(cx, ErrorCode::NotCoordinator);
        };
        // `transaction.timeout.ms` of the producer, at most `transaction.max.timeout.ms`
        // (`validateTransactionTimeoutMs`).
        let timeout = r.transaction_timeout.unwrap_or(self.config.max_timeout);
        if timeout > self.config.max_timeout || timeout == Duration::ZERO {
            return reply(cx, ErrorCode::InvalidTransactionTimeout);
        }
        let Some(entry) = self.ids.get(&id) else {
            if self.ids.len() >= MAX_TRANSACTIONAL_IDS || self.id_requests.len() >= MAX_IN_FLIGHT {
                return reply(cx, ErrorCode::CoordinatorNotAvailable);
            }
            let Some(controller) = controller else {
                return reply(cx, ErrorCode::CoordinatorNotAvailable);
            };
            let correlation_id = self.take_correlation();
            self.id_requests.insert(
                correlation_id,
                IdRequest {
                    id,
                    client: from,
                    correlation_id: r.correlation_id,
                    timeout,
                    transaction_version_2: r.transaction_version_2,
                },
            );
            let ask = InitProducerIdRequest {
                correlation_id,
                transactional_id: None,
                producer_id: -1,
                producer_epoch: -1,
                transaction_timeout: None,
                transaction_version_2: false,
            };
            return cx.send(controller, Message::InitProducerIdRequest(ask));
        };
        if entry.pending {
            return reply(cx, ErrorCode::ConcurrentTransactions);
        }
        let mut next = entry.meta.clone();
        next.timeout = timeout;
        let epoch = next.epoch;
        let then = match next.init_producer_id() {
            TxnAction::Reply(ErrorCode::None) => Then::Reply {
                kind: ReplyKind::Init,
                client: from,
                correlation_id: r.correlation_id,
            },
            TxnAction::Reply(e) => return reply(cx, e),
            TxnAction::WriteMarkers { .. } => Then::Reply {
                kind: ReplyKind::Fence,
                client: from,
                correlation_id: r.correlation_id,
            },
        };
        // InitProducerId always bumps: the previous instance of the producer is fenced.
        assert!(
            next.epoch > epoch,
            "{}: {id}: InitProducerId kept epoch {epoch}",
            cx.me()
        );
        self.persist(cx, id, tp, next, then, log);
    }

    /// The controller's answer with a fresh producer id for a new transactional id.
    pub fn on_init_producer_id_response(
        &mut self,
        cx: &mut Cx,
        r: InitProducerIdResponse,
        log: &mut dyn OffsetsLog,
    ) {
        self.check();
        let Some(ask) = self.id_requests.remove(&r.correlation_id) else {
            return;
        };
        let reply = |cx: &mut Cx, error| {
            reply_error(cx, ask.client, ReplyKind::Init, ask.correlation_id, error)
        };
        if r.error != ErrorCode::None {
            return reply(cx, ErrorCode::CoordinatorNotAvailable);
        }
        // The controller hands out ids from its block only on success.
        assert!(
            r.producer_id >= 0,
            "{}: controller answered producer id {}",
            cx.me(),
            r.producer_id
        );
        let Some(tp) = self.owns(&ask.id, log) else {
            return reply(cx, ErrorCode::NotCoordinator);
        };
        if self.ids.contains_key(&ask.id) {
            // Another InitProducerId of the same id got there first: the client retries.
            return reply(cx, ErrorCode::ConcurrentTransactions);
        }
        // KIP-890 part 2 needs the cluster's `transaction.version` 2 and a client that ends
        // its transactions with EndTxn v5+ (one client per transactional.id).
        let bump_on_end = self.config.bump_on_end && ask.transaction_version_2;
        let next = TxnMetadata::new(r.producer_id, ask.timeout, bump_on_end);
        let index = self.next_index;
        assert!(
            !self.by_index.contains_key(&index),
            "{}: transactional id index {index} taken",
            cx.me()
        );
        self.next_index += 1;
        self.by_index.insert(index, ask.id.clone());
        self.ids.insert(
            ask.id.clone(),
            Entry {
                meta: next.clone(),
                index,
                pending: false,
                new: true,
            },
        );
        let then = Then::Reply {
            kind: ReplyKind::Init,
            client: ask.client,
            correlation_id: ask.correlation_id,
        };
        self.persist(cx, ask.id, tp, next, then, log);
    }

    fn add_partitions(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: AddPartitionsToTxnRequest,
        log: &mut dyn OffsetsLog,
    ) {
        if r.verify_only {
            let error = match (
                self.owns(&r.transactional_id, log),
                self.ids.get(r.transactional_id.as_str()),
            ) {
                (None, _) => ErrorCode::NotCoordinator,
                (Some(_), None) => ErrorCode::InvalidProducerIdMapping,
                (Some(_), Some(entry)) => {
                    Self::verify_entry(entry, r.producer_id, r.producer_epoch, &r.partitions)
                }
            };
            return reply_error(cx, from, ReplyKind::AddPartitions, r.correlation_id, error);
        }
        let asked = AddAsk {
            kind: ReplyKind::AddPartitions,
            client: from,
            correlation_id: r.correlation_id,
            transactional_id: &r.transactional_id,
            producer_id: r.producer_id,
            producer_epoch: r.producer_epoch,
        };
        self.add(cx, asked, &r.partitions, log);
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction as
    /// any partition does (`TransactionCoordinator.handleAddPartitionsToTransaction` with
    /// `offsetTopicPartition`), so its marker makes the group's pending transactional
    /// offsets visible (commit) or discards them (abort).
    fn add_offsets(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: AddOffsetsToTxnRequest,
        log: &mut dyn OffsetsLog,
    ) {
        let partition = coordinator_partition(
            self.config.offsets_topic,
            self.config.offsets_partitions,
            &r.group,
        );
        let asked = AddAsk {
            kind: ReplyKind::AddOffsets,
            client: from,
            correlation_id: r.correlation_id,
            transactional_id: &r.transactional_id,
            producer_id: r.producer_id,
            producer_epoch: r.producer_epoch,
        };
        self.add(cx, asked, &[partition], log);
    }

    /// Add `partitions` to the ongoing transaction of the asking producer, persisting the new
    /// state unless every partition is in it already.
    fn add(
        &mut self,
        cx: &mut Cx,
        asked: AddAsk<'_>,
        partitions: &[TopicPartition],
        log: &mut dyn OffsetsLog,
    ) {
        let answer = |cx: &mut Cx, error| {
            reply_error(cx, asked.client, asked.kind, asked.correlation_id, error)
        };
        let Some(tp) = self.owns(asked.transactional_id, log) else {
            return answer(cx, ErrorCode::NotCoordinator);
        };
        let Some(entry) = self.ids.get(asked.transactional_id) else {
            return answer(cx, ErrorCode::InvalidProducerIdMapping);
        };
        if entry.pending {
            return answer(cx, ErrorCode::ConcurrentTransactions);
        }
        let mut next = entry.meta.clone();
        let now = cx.now();
        match next.add_partitions(now, asked.producer_id, asked.producer_epoch, partitions) {
            TxnAction::Reply(ErrorCode::None) => {}
            TxnAction::Reply(e) => return answer(cx, e),
            TxnAction::WriteMarkers { .. } => unreachable!("adding partitions writes no markers"),
        }
        if next == entry.meta {
            // Every partition is in the transaction already: nothing to write.
            return answer(cx, ErrorCode::None);
        }
        assert!(
            partitions.iter().all(|tp| next.partitions.contains(tp))
                && next.state == TxnState::Ongoing,
            "{}: {}: added partitions missing from the transaction",
            cx.me(),
            asked.transactional_id
        );
        let id: Arc<str> = Arc::from(asked.transactional_id);
        let then = Then::Reply {
            kind: asked.kind,
            client: asked.client,
            correlation_id: asked.correlation_id,
        };
        self.persist(cx, id, tp, next, then, log);
    }

    fn end_txn(&mut self, cx: &mut Cx, from: NodeId, r: EndTxnRequest, log: &mut dyn OffsetsLog) {
        let reply = |cx: &mut Cx, error, producer_id, producer_epoch| {
            reply(
                cx,
                from,
                ReplyKind::End,
                r.correlation_id,
                error,
                producer_id,
                producer_epoch,
            )
        };
        let Some(tp) = self.owns(&r.transactional_id, log) else {
            return reply(cx, ErrorCode::NotCoordinator, -1, -1);
        };
        let Some(entry) = self.ids.get(r.transactional_id.as_str()) else {
            return reply(cx, ErrorCode::InvalidProducerIdMapping, -1, -1);
        };
        if entry.pending {
            return reply(cx, ErrorCode::ConcurrentTransactions, -1, -1);
        }
        let mut next = entry.meta.clone();
        match next.end_txn(r.producer_id, r.producer_epoch, r.commit) {
            TxnAction::Reply(e) => reply(cx, e, next.producer_id, next.epoch),
            TxnAction::WriteMarkers { .. } => {
                assert_eq!(
                    next.state,
                    if r.commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    },
                    "{}: EndTxn prepared the other outcome",
                    cx.me()
                );
                let id: Arc<str> = Arc::from(r.transactional_id.as_str());
                let then = Then::Reply {
                    kind: ReplyKind::End,
                    client: from,
                    correlation_id: r.correlation_id,
                };
                self.persist(cx, id, tp, next, then, log);
            }
        }
    }

    /// Append `next` as the new state of `id`; act on it once the ISR has it.
    fn persist(
        &mut self,
        cx: &mut Cx,
        id: Arc<str>,
        partition: TopicPartition,
        next: TxnMetadata,
        then: Then,
        log: &mut dyn OffsetsLog,
    ) {
        let payload = InternalPayload::TransactionMetadata {
            transactional_id: id.clone(),
            metadata: next.clone(),
        };
        // One transition at a time per id (Kafka's `pendingState`), and only a legal one.
        assert!(
            self.ids.get(&id).is_none_or(|e| {
                !e.pending
                    && next.producer_id == e.meta.producer_id
                    && next.epoch >= e.meta.epoch
                    && next.state.valid_previous().contains(&e.meta.state)
            }),
            "{}: {id}: persisting {:?} over {:?}",
            cx.me(),
            next.state,
            self.ids.get(&id).map(|e| e.meta.state)
        );
        let record = Record {
            value: ValueId(0),
            key: None,
            size: TXN_RECORD_BYTES,
            create_time: cx.now(),
            payload: Some(Arc::new(payload)),
        };
        let token = self.take_token();
        match log.append(cx, partition, vec![record], token) {
            Ok(()) => {
                if let Some(e) = self.ids.get_mut(&id) {
                    e.pending = true;
                }
                let p = PendingAppend {
                    id,
                    partition,
                    next,
                    then,
                };
                assert!(
                    self.pending.insert(token, p).is_none(),
                    "{}: append token {token:#x} reused",
                    cx.me()
                );
            }
            Err(e) => self.after_failed_append(cx, &id, then, e),
        }
    }

    /// Completion of an [`OffsetsLog::append`] of this coordinator.
    pub fn on_append_done(
        &mut self,
        cx: &mut Cx,
        token: u64,
        result: ErrorCode,
        log: &mut dyn OffsetsLog,
    ) {
        assert!(
            token & TXN_TOKEN_BIT != 0,
            "{}: append token {token:#x} is not the transaction coordinator's",
            cx.me()
        );
        let Some(p) = self.pending.remove(&token) else {
            return; // unloaded meanwhile, and the client answered
        };
        let Some(entry) = self.ids.get_mut(&p.id) else {
            return;
        };
        entry.pending = false;
        if result != ErrorCode::None {
            return self.after_failed_append(cx, &p.id, p.then, result);
        }
        assert!(
            p.next.epoch >= entry.meta.epoch,
            "{}: {}: producer epoch would go back from {} to {}",
            cx.me(),
            p.id,
            entry.meta.epoch,
            p.next.epoch
        );
        entry.meta = p.next;
        entry.new = false;
        let meta = entry.meta.clone();
        if let Then::Reply {
            kind,
            client,
            correlation_id,
        } = p.then
        {
            // Kafka answers EndTxn once the prepare state is in the log; the markers follow
            // asynchronously.
            let (error, producer_id, producer_epoch) = match kind {
                ReplyKind::Init | ReplyKind::End => (ErrorCode::None, meta.producer_id, meta.epoch),
                ReplyKind::Fence => (ErrorCode::ConcurrentTransactions, -1, -1),
                ReplyKind::AddPartitions | ReplyKind::AddOffsets => (ErrorCode::None, -1, -1),
            };
            reply(
                cx,
                client,
                kind,
                correlation_id,
                error,
                producer_id,
                producer_epoch,
            );
        }
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            let coordinator_epoch = self.owned.get(&p.partition.partition).copied();
            if let Some(coordinator_epoch) = coordinator_epoch {
                self.start_markers(cx, p.id, &meta, coordinator_epoch, log);
            }
        }
    }

    /// `appendTransactionToLog`'s error mapping: a partition this broker no longer leads is
    /// NOT_COORDINATOR, anything else COORDINATOR_NOT_AVAILABLE (the client retries; the
    /// cached state is unchanged, as the write may or may not be in the log).
    fn after_failed_append(&mut self, cx: &mut Cx, id: &Arc<str>, then: Then, error: ErrorCode) {
        assert_ne!(
            error,
            ErrorCode::None,
            "{}: {id}: a failed append without an error",
            cx.me()
        );
        let error = match error {
            ErrorCode::NotLeaderOrFollower | ErrorCode::UnknownTopicOrPartition => {
                ErrorCode::NotCoordinator
            }
            _ => ErrorCode::CoordinatorNotAvailable,
        };
        match then {
            Then::Reply {
                kind,
                client,
                correlation_id,
            } => {
                let init = matches!(kind, ReplyKind::Init | ReplyKind::Fence);
                if init && self.ids.get(id).is_some_and(|e| e.new) {
                    // A new id whose first state never reached the log: forget it.
                    self.forget(id);
                }
                reply_error(cx, client, kind, correlation_id, error);
            }
            Then::Nothing => {
                // A completion or timeout abort: retried by the next abort check / marker
                // retry while this broker still owns the id.
                if let Some(e) = self.ids.get(id) {
                    let at = cx.now() + self.config.retry_backoff;
                    cx.set_timer(at, TxnTimer::MarkerRetry(e.index));
                }
            }
        }
    }

    fn forget(&mut self, id: &str) {
        if let Some(e) = self.ids.remove(id) {
            self.by_index.remove(&e.index);
        }
        self.jobs.remove(id);
        assert!(
            self.pending.values().all(|p| &*p.id != id),
            "{id}: forgotten with an append in flight"
        );
    }

    /// The prepared transaction of `id` is in the log: send its markers.
    fn start_markers(
        &mut self,
        cx: &mut Cx,
        id: Arc<str>,
        meta: &TxnMetadata,
        coordinator_epoch: u32,
        log: &mut dyn OffsetsLog,
    ) {
        assert!(
            matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort),
            "{}: {id}: markers for a {:?} transaction",
            cx.me(),
            meta.state
        );
        let marker = if meta.state == TxnState::PrepareCommit {
            ControlMarker::Commit
        } else {
            ControlMarker::Abort
        };
        let job = MarkerJob {
            producer_id: meta.producer_id,
            epoch: meta.epoch,
            marker,
            coordinator_epoch,
            remaining: meta.partitions.clone(),
            in_flight: BTreeSet::new(),
        };
        self.jobs.insert(id.clone(), job);
        self.send_markers(cx, &id, log);
    }

    /// Send WriteTxnMarkers for every owed partition not already asked, grouped by leader
    /// (`addTxnMarkersToBrokerQueue`); complete the transaction when none is owed.
    fn send_markers(&mut self, cx: &mut Cx, id: &Arc<str>, log: &mut dyn OffsetsLog) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        if job.remaining.is_empty() {
            self.jobs.remove(id);
            return self.complete(cx, id, log);
        }
        let mut by_leader: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        let mut leaderless = false;
        for tp in job.remaining.difference(&job.in_flight) {
            match log.leader_of(*tp) {
                Some(leader) => by_leader.entry(leader).or_default().push(*tp),
                None => leaderless = true,
            }
        }
        let (producer_id, epoch, marker, coordinator_epoch) = (
            job.producer_id,
            job.epoch,
            job.marker,
            job.coordinator_epoch,
        );
        for (leader, partitions) in by_leader {
            assert!(
                !partitions.is_empty(),
                "a WriteTxnMarkers without partitions"
            );
            if self.marker_requests.len() >= MAX_IN_FLIGHT {
                leaderless = true;
                break;
            }
            let correlation_id = self.take_correlation();
            let req = WriteTxnMarkersRequest {
                correlation_id,
                producer_id,
                producer_epoch: epoch,
                coordinator_epoch,
                marker,
                partitions: partitions.clone(),
            };
            if let Some(job) = self.jobs.get_mut(id) {
                assert!(
                    partitions
                        .iter()
                        .all(|tp| job.remaining.contains(tp) && !job.in_flight.contains(tp)),
                    "{}: {id}: a marker asked twice or not owed",
                    cx.me()
                );
                job.in_flight.extend(partitions.iter().copied());
            }
            let request = MarkerRequest {
                id: id.clone(),
                partitions,
            };
            self.marker_requests
                .insert(correlation_id, (leader, request));
            assert!(
                self.marker_requests.len() <= MAX_IN_FLIGHT,
                "{}: more than {MAX_IN_FLIGHT} WriteTxnMarkers in flight",
                cx.me()
            );
            if leader == cx.me() {
                self.local.push(req);
            } else {
                cx.send(leader, Message::WriteTxnMarkersRequest(req));
            }
            let at = cx.now() + self.config.request_timeout;
            cx.set_timer(at, TxnTimer::MarkerTimeout(correlation_id));
        }
        if leaderless {
            self.schedule_retry(cx, id);
        }
    }

    fn schedule_retry(&mut self, cx: &mut Cx, id: &str) {
        if let Some(e) = self.ids.get(id) {
            let at = cx.now() + self.config.retry_backoff;
            cx.set_timer(at, TxnTimer::MarkerRetry(e.index));
        }
    }

    /// A leader's answer to WriteTxnMarkers (`TransactionMarkerRequestCompletionHandler`).
    pub fn on_write_txn_markers_response(
        &mut self,
        cx: &mut Cx,
        r: WriteTxnMarkersResponse,
        log: &mut dyn OffsetsLog,
    ) {
        self.check();
        let Some((_, request)) = self.marker_requests.remove(&r.correlation_id) else {
            return;
        };
        let id = request.id;
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let mut retry = false;
        for tp in &request.partitions {
            job.in_flight.remove(tp);
            let error = r
                .results
                .iter()
                .find(|(p, _)| p == tp)
                .map_or(ErrorCode::NetworkException, |(_, e)| *e);
            match error {
                ErrorCode::None => {
                    job.remaining.remove(tp);
                }
                // The producer or coordinator epoch moved on: this transaction's markers are
                // someone else's business now; stop sending them.
                ErrorCode::InvalidProducerEpoch
                | ErrorCode::ProducerFenced
                | ErrorCode::TransactionCoordinatorFenced => {
                    self.jobs.remove(&id);
                    return;
                }
                // UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS(_AFTER_
                // APPEND), REQUEST_TIMED_OUT and the rest: retry with the current leader.
                _ => retry = true,
            }
        }
        assert!(
            request
                .partitions
                .iter()
                .all(|tp| !job.in_flight.contains(tp)),
            "{}: {id}: answered markers still in flight",
            cx.me()
        );
        if retry {
            self.schedule_retry(cx, &id);
        } else if job.in_flight.is_empty() {
            self.send_markers(cx, &id, log);
        }
    }

    /// Every marker is written: append CompleteCommit / CompleteAbort.
    fn complete(&mut self, cx: &mut Cx, id: &Arc<str>, log: &mut dyn OffsetsLog) {
        let Some(tp) = self.owns(id, log) else {
            return;
        };
        let Some(entry) = self.ids.get(id) else {
            return;
        };
        if entry.pending
            || !matches!(
                entry.meta.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            )
        {
            return;
        }
        assert!(
            !self.jobs.contains_key(id),
            "{}: {id} completed with markers owed",
            cx.me()
        );
        let mut next = entry.meta.clone();
        next.markers_written();
        self.persist(cx, id.clone(), tp, next, Then::Nothing, log);
    }

    /// A broker connection ended: the markers asked of it are asked again (of the
    /// partitions' current leaders) after the backoff.
    pub fn on_connection_reset(&mut self, cx: &mut Cx, peer: NodeId) {
        let lost: Vec<u64> = self
            .marker_requests
            .iter()
            .filter(|(_, (to, _))| *to == peer)
            .map(|(c, _)| *c)
            .collect();
        for correlation_id in lost {
            self.drop_marker_request(cx, correlation_id);
        }
        assert!(
            self.marker_requests.values().all(|(to, _)| *to != peer),
            "{}: a WriteTxnMarkers to {peer} outlived its connection",
            cx.me()
        );
    }

    fn drop_marker_request(&mut self, cx: &mut Cx, correlation_id: u64) {
        let Some((_, request)) = self.marker_requests.remove(&correlation_id) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(&request.id) {
            for tp in &request.partitions {
                job.in_flight.remove(tp);
            }
            assert!(
                job.in_flight.is_subset(&job.remaining),
                "{}: {}: markers in flight that are not owed",
                cx.me(),
                request.id
            );
            self.schedule_retry(cx, &request.id);
        }
    }

    /// A transaction coordinator timer is due.
    pub fn on_timer(&mut self, cx: &mut Cx, timer: TxnTimer, log: &mut dyn OffsetsLog) {
        self.check();
        match timer {
            TxnTimer::AbortCheck => {
                assert!(
                    self.abort_check_scheduled,
                    "{}: an abort check nobody scheduled",
                    cx.me()
                );
                self.abort_timed_out(cx, log);
                cx.set_timer_after(self.config.abort_check_interval, timer);
            }
            TxnTimer::MarkerRetry(index) => {
                let Some(id) = self.by_index.get(&index).cloned() else {
                    return;
                };
                if self.jobs.contains_key(&id) {
                    self.send_markers(cx, &id, log);
                } else {
                    // A completion whose append failed.
                    self.complete(cx, &id, log);
                }
            }
            TxnTimer::MarkerTimeout(correlation_id) => {
                // Kafka's marker channel is a `NetworkClient`: a request past its timeout
                // disconnects the broker (`NetworkClient.handleTimedOutRequests`), failing
                // every request in flight to it; they are resent on a new connection. (What the
                // closed connection had written may still arrive: TCP delivers it.)
                match self.marker_requests.get(&correlation_id) {
                    Some((to, _)) if *to != cx.me() => {
                        let to = *to;
                        cx.close_connection(to);
                        self.on_connection_reset(cx, to);
                    }
                    _ => self.drop_marker_request(cx, correlation_id),
                }
            }
        }
    }

    /// `abortTimedOutTransactions`: abort (under a bumped epoch) every ongoing transaction
    /// older than its `transaction.timeout.ms`.
    fn abort_timed_out(&mut self, cx: &mut Cx, log: &mut dyn OffsetsLog) {
        let now = cx.now();
        let expired: Vec<(Arc<str>, TxnMetadata)> = self
            .ids
            .iter()
            .filter(|(_, e)| !e.pending)
            .filter_map(|(id, e)| {
                let mut next = e.meta.clone();
                next.maybe_time_out(now).map(|_| (id.clone(), next))
            })
            .collect();
        for (id, next) in expired {
            assert_eq!(
                next.state,
                TxnState::PrepareAbort,
                "{}: {id}: a timed-out transaction not aborted",
                cx.me()
            );
            if let Some(tp) = self.owns(&id, log) {
                self.persist(cx, id, tp, next, Then::Nothing, log);
            }
        }
    }

    /// The broker became leader (`Some(epoch)`) or stopped leading (`None`) a
    /// `__transaction_state` partition.
    pub fn on_leadership(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        leader_epoch: Option<u32>,
        log: &mut dyn OffsetsLog,
    ) {
        if Some(partition.topic) != self.config.topic {
            return;
        }
        if leader_epoch.is_some() && self.owned.get(&partition.partition) == leader_epoch.as_ref() {
            return;
        }
        self.unload(cx, partition);
        if let Some(epoch) = leader_epoch {
            self.load(cx, partition, epoch, log);
        }
        self.check();
    }

    fn in_partition(&self, id: &str, partition: TopicPartition) -> bool {
        self.partition_for(id) == Some(partition)
    }

    /// Forget the ids of `partition`; answer what waits on their appends.
    fn unload(&mut self, cx: &mut Cx, partition: TopicPartition) {
        self.owned.remove(&partition.partition);
        let tokens: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.partition == partition)
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            if let Some(p) = self.pending.remove(&token) {
                self.after_failed_append(cx, &p.id, p.then, ErrorCode::NotLeaderOrFollower);
            }
        }
        let ids: Vec<Arc<str>> = self
            .ids
            .keys()
            .filter(|id| self.in_partition(id, partition))
            .cloned()
            .collect();
        for id in ids {
            self.forget(&id);
        }
        let requests: Vec<u64> = self
            .marker_requests
            .iter()
            .filter(|(_, (_, r))| !self.ids.contains_key(&r.id))
            .map(|(c, _)| *c)
            .collect();
        for c in requests {
            self.marker_requests.remove(&c);
        }
        assert!(
            !self.owned.contains_key(&partition.partition)
                && self.ids.keys().all(|id| !self.in_partition(id, partition))
                && self.pending.values().all(|p| p.partition != partition),
            "{}: {partition} unloaded with ids or appends left",
            cx.me()
        );
    }

    /// Rebuild the ids of `partition` from its log (the last state of each wins) and resend
    /// the markers of prepared transactions.
    fn load(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        epoch: u32,
        log: &mut dyn OffsetsLog,
    ) {
        assert!(
            !self.owned.contains_key(&partition.partition),
            "{}: {partition} loaded over a load",
            cx.me()
        );
        let mut last: BTreeMap<Arc<str>, TxnMetadata> = BTreeMap::new();
        for batch in log.loadable_batches(partition) {
            for record in batch.records.iter() {
                if let Some(InternalPayload::TransactionMetadata {
                    transactional_id,
                    metadata,
                }) = record.payload.as_deref()
                {
                    // Every id of a partition is written there, and every state written was
                    // a legal one.
                    assert!(
                        self.in_partition(transactional_id, partition),
                        "{}: {transactional_id} loaded from {partition}",
                        cx.me()
                    );
                    metadata.check();
                    last.insert(transactional_id.clone(), metadata.clone());
                }
            }
        }
        self.owned.insert(partition.partition, epoch);
        if !self.abort_check_scheduled {
            self.abort_check_scheduled = true;
            cx.set_timer_after(self.config.abort_check_interval, TxnTimer::AbortCheck);
        }
        for (id, meta) in last {
            if self.ids.len() >= MAX_TRANSACTIONAL_IDS {
                break;
            }
            let index = self.next_index;
            self.next_index += 1;
            self.by_index.insert(index, id.clone());
            let prepared = matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort);
            self.ids.insert(
                id.clone(),
                Entry {
                    meta: meta.clone(),
                    index,
                    pending: false,
                    new: false,
                },
            );
            if prepared {
                self.start_markers(cx, id, &meta, epoch, log);
            }
        }
    }
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
