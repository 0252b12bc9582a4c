//! Transaction markers (Kafka's `TransactionMarkerChannelManager` and
//! `TransactionMarkerRequestCompletionHandler`): once PrepareCommit / PrepareAbort is in the
//! log, WriteTxnMarkers goes to the leader of every partition of the transaction, grouped by
//! leader; partitions whose leader moved or did not answer are asked again after the backoff;
//! a fenced producer or coordinator epoch cancels the job; CompleteCommit / CompleteAbort is
//! written once every partition has its marker. Apart from the request handlers because it is
//! the coordinator's only outbound traffic, with its own retries and timeouts.

use super::MAX_IN_FLIGHT;
use super::{Then, TransactionCoordinator};
use crate::broker::timer::TxnTimer;
use crate::coordinator::txn_metadata::{TxnMetadata, TxnState};
use crate::coordinator::OffsetsLog;
use crate::node::{Cx, NodeId};
use crate::protocol::{ErrorCode, Message, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use crate::record::{ControlMarker, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Markers owed for one prepared transaction.
#[derive(Debug)]
pub(super) struct MarkerJob {
    pub(super) producer_id: i64,
    pub(super) epoch: i16,
    pub(super) marker: ControlMarker,
    pub(super) coordinator_epoch: u32,
    /// Partitions without their marker yet.
    pub(super) remaining: BTreeSet<TopicPartition>,
    /// Of those, the ones a WriteTxnMarkers is out for.
    pub(super) in_flight: BTreeSet<TopicPartition>,
}

/// One WriteTxnMarkers in flight: the id whose markers it carries and the partitions asked.
#[derive(Debug)]
pub(super) struct MarkerRequest {
    pub(super) id: Arc<str>,
    pub(super) partitions: Vec<TopicPartition>,
}

impl TransactionCoordinator {
    /// The prepared transaction of `id` is in the log: send its markers.
    pub(super) fn start_markers(
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
    pub(super) fn send_markers(&mut self, cx: &mut Cx, id: &Arc<str>, log: &mut dyn OffsetsLog) {
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

    /// Retry `id`'s markers after the backoff, unless a retry is already due: the due one
    /// sends every owed partition not in flight, so a second would only double the traffic
    /// (and, as each of its requests schedules a retry of its own, keep doubling it).
    pub(super) fn schedule_retry(&mut self, cx: &mut Cx, id: &str) {
        if let Some(e) = self.ids.get(id) {
            if self.marker_retry_scheduled.insert(e.index) {
                let at = cx.now() + self.config.retry_backoff;
                cx.set_timer(at, TxnTimer::MarkerRetry(e.index));
            }
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
    pub(super) fn complete(&mut self, cx: &mut Cx, id: &Arc<str>, log: &mut dyn OffsetsLog) {
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

    pub(super) fn drop_marker_request(&mut self, cx: &mut Cx, correlation_id: u64) {
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
}
