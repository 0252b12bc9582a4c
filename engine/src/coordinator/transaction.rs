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
//!
//! This file holds the coordinator's state, its invariants ([`TransactionCoordinator::check`])
//! and the entry points that route to the parts, one module per Kafka class or request so
//! each stays small enough to read against its Kafka counterpart: [`producer_id`]
//! (InitProducerId), [`add_partitions`] (AddPartitionsToTxn, AddOffsetsToTxn),
//! [`state_manager`] (`TransactionStateManager`: appends, load, unload) and
//! [`marker_channel`] (`TransactionMarkerChannelManager`). EndTxn stays here: it only
//! validates and hands the prepared state to the state manager.

mod add_partitions;
mod marker_channel;
mod producer_id;
mod state_manager;

use super::txn_metadata::{TxnAction, TxnMetadata, TxnState};
use super::{coordinator_partition, loaded_epoch_if_leading, OffsetsLog};
use crate::node::{Cx, NodeId};
use crate::protocol::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, CoordinatorType, EndTxnRequest,
    EndTxnResponse, ErrorCode, FindCoordinatorRequest, FindCoordinatorResponse,
    InitProducerIdResponse, Message, WriteTxnMarkersRequest,
};
use crate::record::{TopicId, TopicPartition};
use crate::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use marker_channel::{MarkerJob, MarkerRequest};
use producer_id::IdRequest;
use state_manager::PendingAppend;

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
    /// Timer indexes of the ids with a marker retry scheduled: at most one per id. Kafka
    /// re-enqueues each failed partition once (`TransactionMarkerRequestCompletionHandler`
    /// calls `addTxnMarkersToBrokerQueue` with the partitions to retry, and leaderless ones
    /// wait in `markersQueueForUnknownBroker` for the next drain), so a job's retries never
    /// multiply; one timer per answer or timeout of each of a job's requests would (each
    /// firing sends to every leader, and each of those requests schedules its own retry).
    marker_retry_scheduled: BTreeSet<u32>,
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
            marker_retry_scheduled: BTreeSet::new(),
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
        // Only a producer InitProducerId gave an id opens a transaction.
        assert!(
            producer_id >= 0,
            "a transaction of producer id {producer_id} looked for"
        );
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
        let c = self.next_correlation;
        // Answers are matched to requests by correlation id alone (`awaits`).
        assert!(
            !self.id_requests.contains_key(&c) && !self.marker_requests.contains_key(&c),
            "transaction coordinator: correlation id {c} already in flight"
        );
        c
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
                self.marker_retry_scheduled.remove(&index);
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
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
