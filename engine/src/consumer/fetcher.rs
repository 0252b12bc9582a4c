//! The fetcher: metadata, positions and fetch requests.
//!
//! Positions of newly assigned partitions come from the group's committed offsets
//! (OffsetFetch), or first from the group's database when it stores offsets (see
//! [`super::database`]), or else from `auto.offset.reset`
//! through ListOffsets (recorded as `PositionReset`). One fetch per leader is in flight at a
//! time, covering the partitions it leads that have no buffered records (as Java's Fetcher).
//! A fetch answered NotLeaderOrFollower / FencedLeaderEpoch refreshes metadata; one answered
//! OffsetOutOfRange resets the position. Consumers only ever see records below the high
//! watermark: the broker enforces it.

use super::{Consumer, Need, PartState, Req};
use crate::app::Delivered;
use crate::history::{HistoryEvent, ResetCause};
use crate::node::{Cx, NodeId};
use crate::protocol::{
    ErrorCode, FetchPartition, FetchPartitionResponse, FetchRequest, FetchResponse, IsolationLevel,
    ListOffsetsRequest, ListOffsetsResponse, Message, MetadataRequest, MetadataResponse,
    OffsetFetchRequest, OffsetFetchResponse, OffsetSpec, FINAL_EPOCH, INVALID_SESSION_ID,
};
use crate::record::{ControlMarker, TopicId, TopicPartition};
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

/// How long a broker that failed a request is avoided for cluster-wide questions.
const AVOID_FAILED_BROKER: Duration = Duration::from_secs(30);

/// What the consumer knows of the cluster.
#[derive(Debug, Default)]
pub struct Metadata {
    pub brokers: Vec<NodeId>,
    pub leaders: BTreeMap<TopicPartition, (NodeId, u32)>,
    pub counts: BTreeMap<TopicId, u32>,
    pub wanted: bool,
    pub not_before: Instant,
    cursor: usize,
    /// When the last response arrived (the periodic refresh counts from it).
    pub refreshed_at: Instant,
}

impl Metadata {
    /// Forget leaders on `node` (it failed us) and ask for fresh metadata.
    pub fn invalidate_leader(&mut self, node: NodeId) {
        let before = self.leaders.len();
        self.leaders.retain(|_, (l, _)| *l != node);
        if self.leaders.len() != before {
            self.wanted = true;
        }
    }
}

impl Consumer {
    /// The broker to ask cluster-wide questions (metadata, FindCoordinator): like Java's
    /// least-loaded-node choice, a connected broker first, then one that has not failed us
    /// recently, in rotation.
    pub(super) fn pick_broker(&mut self, now: Instant) -> NodeId {
        let list = if self.meta.brokers.is_empty() {
            &self.spec.bootstrap
        } else {
            &self.meta.brokers
        };
        let n = list.len();
        let start = self.meta.cursor;
        self.meta.cursor = self.meta.cursor.wrapping_add(1);
        let rotation = (0..n).map(|k| list[(start + k) % n]);
        let recently_failed = |b: &NodeId| {
            self.failed_at
                .get(b)
                .is_some_and(|t| now.saturating_since(*t) < AVOID_FAILED_BROKER)
        };
        let connected = rotation.clone().find(|b| self.connected.contains(b));
        let healthy = rotation.clone().find(|b| !recently_failed(b));
        connected.or(healthy).unwrap_or(list[start % n])
    }

    fn has_inflight(&self, pred: impl Fn(&Req) -> bool) -> bool {
        self.inflight.values().any(|f| pred(&f.req))
    }

    pub(super) fn drive_metadata(&mut self, cx: &mut Cx) {
        if !self.meta.wanted || self.meta.not_before > cx.now() {
            return;
        }
        if self.has_inflight(|r| matches!(r, Req::Metadata)) {
            return;
        }
        let mut topics = self.spec.topics.clone();
        topics.extend(self.spec.dlq_topic);
        let to = self.pick_broker(cx.now());
        let msg = Message::MetadataRequest(MetadataRequest {
            correlation_id: self.take_corr(),
            topics,
        });
        // `request.timeout.ms`, as every request (Java `NetworkClient`): a bootstrap broker
        // that cannot be reached is given up after the connection setup timeout instead
        // (`network_client.rs`), a dead one refuses at once.
        let timeout = self.config.request_timeout;
        self.send(cx, to, timeout, Req::Metadata, msg);
    }

    pub(super) fn on_metadata(&mut self, now: Instant, resp: MetadataResponse) {
        self.meta.refreshed_at = now;
        if !resp.brokers.is_empty() {
            self.meta.brokers = resp.brokers.clone();
        }
        for (topic, count) in &resp.topics {
            self.meta.counts.insert(*topic, *count);
        }
        let mut complete = self
            .spec
            .topics
            .iter()
            .all(|t| self.meta.counts.contains_key(t));
        for pm in &resp.partitions {
            let st = &pm.state;
            match st.leader {
                Some(leader) if pm.error == ErrorCode::None => {
                    self.meta
                        .leaders
                        .insert(st.partition, (leader, st.leader_epoch));
                }
                _ => {
                    self.meta.leaders.remove(&st.partition);
                    complete = false;
                }
            }
        }
        self.meta.wanted = !complete;
        self.meta.not_before = Instant::ZERO;
        self.check_partition_counts();
    }

    /// The periodic refresh (`metadata.max.age.ms` and each client's equivalent, see
    /// [`super::partition_watch`]): due once the last answer is that old. A kafka-go Reader
    /// that does not watch partitions has no periodic refresh.
    pub(super) fn refresh_metadata_if_old(&mut self, now: Instant) {
        if self.watcher == super::partition_watch::Watcher::Nobody {
            return;
        }
        if now.saturating_since(self.meta.refreshed_at) >= self.config.metadata_max_age {
            self.meta.wanted = true;
        }
    }

    /// A subscribed topic's partition count differs from the one the member's assignment
    /// was made with: ask for a rebalance (once; the next assignment takes a new snapshot).
    fn check_partition_counts(&mut self) {
        let Some(snapshot) = &self.group.partition_snapshot else {
            return;
        };
        if self.group.is_stable() && super::partition_watch::changed(snapshot, &self.meta.counts) {
            self.group.partition_snapshot = None;
            self.group.rejoin = true;
        }
    }

    // ------------------------------------------------------------ positions

    pub(super) fn drive_positions(&mut self, cx: &mut Cx) {
        self.send_offset_fetch(cx);
        self.send_list_offsets(cx);
    }

    fn send_offset_fetch(&mut self, cx: &mut Cx) {
        let Some(coordinator) = self.group.coordinator else {
            return;
        };
        if cx.now() < self.offset_fetch_not_before {
            return; // backing off after UNSTABLE_OFFSET_COMMIT
        }
        let tps: Vec<TopicPartition> = self
            .parts
            .iter()
            .filter(|(_, p)| p.need == Need::Committed && !p.busy)
            .map(|(tp, _)| *tp)
            .collect();
        if tps.is_empty() {
            return;
        }
        for tp in &tps {
            self.parts.get_mut(tp).expect("listed").busy = true;
        }
        let msg = Message::OffsetFetchRequest(OffsetFetchRequest {
            correlation_id: self.take_corr(),
            group: self.spec.group.clone(),
            partitions: tps.clone(),
            require_stable: self.config.requires_stable_offsets(),
        });
        let timeout = self.config.request_timeout;
        self.send(cx, coordinator, timeout, Req::OffsetFetch(tps), msg);
    }

    pub(super) fn on_offset_fetch(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        tps: Vec<TopicPartition>,
        resp: OffsetFetchResponse,
    ) {
        for tp in &tps {
            if let Some(p) = self.parts.get_mut(tp) {
                p.busy = false;
            }
        }
        if resp.error != ErrorCode::None {
            if matches!(
                resp.error,
                ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable
            ) {
                self.coordinator_dead(from);
            }
            if resp.error == ErrorCode::UnstableOffsetCommit {
                // KIP-447: a transaction's offsets are pending; ask again after
                // `retry.backoff.ms` (`ConsumerCoordinator.fetchCommittedOffsets` retries a
                // retriable failure after the backoff).
                self.offset_fetch_not_before = cx.now() + self.config.retry_backoff;
                self.stable_offset_retries += 1;
            }
            return;
        }
        for (tp, committed) in resp.offsets {
            let Some(p) = self.parts.get_mut(&tp) else {
                continue;
            };
            if p.need != Need::Committed {
                continue;
            }
            p.committed = committed;
            let rewind = std::mem::take(&mut p.rewind);
            match committed {
                Some(offset) if rewind => {
                    // The application seeks back to the committed offset.
                    p.position = Some(offset);
                    p.need = Need::Nothing;
                    cx.record(HistoryEvent::PositionReset {
                        group: self.spec.group_index,
                        member: self.spec.member_index,
                        partition: tp,
                        offset,
                        cause: ResetCause::Seek,
                    });
                }
                Some(offset) => {
                    p.position = Some(offset);
                    p.need = Need::Nothing;
                    cx.record(HistoryEvent::Resumed {
                        group: self.spec.group_index,
                        member: self.spec.member_index,
                        generation: self.group.generation,
                        partition: tp,
                        offset,
                    });
                }
                None => p.need = Need::Reset(ResetCause::NoCommittedOffset),
            }
        }
    }

    /// Set a position explicitly (a seek, or the answer of a reset), recorded as a
    /// `PositionReset` with its cause.
    pub(super) fn seek(&mut self, cx: &mut Cx, tp: TopicPartition, offset: u64, cause: ResetCause) {
        let Some(p) = self.parts.get_mut(&tp) else {
            return;
        };
        p.position = Some(offset);
        p.need = Need::Nothing;
        p.buffered.clear();
        cx.record(HistoryEvent::PositionReset {
            group: self.spec.group_index,
            member: self.spec.member_index,
            partition: tp,
            offset,
            cause,
        });
    }

    fn send_list_offsets(&mut self, cx: &mut Cx) {
        let spec = match self.config.auto_offset_reset {
            super::OffsetReset::Earliest => OffsetSpec::Earliest,
            super::OffsetReset::Latest => OffsetSpec::Latest,
            super::OffsetReset::None => {
                for p in self
                    .parts
                    .values_mut()
                    .filter(|p| matches!(p.need, Need::Reset(_)))
                {
                    p.need = Need::Stuck;
                }
                return;
            }
        };
        let mut by_leader: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        for (tp, p) in &self.parts {
            if !matches!(p.need, Need::Reset(_)) || p.busy {
                continue;
            }
            match self.meta.leaders.get(tp) {
                Some(&(leader, _)) => by_leader.entry(leader).or_default().push(*tp),
                None => self.meta.wanted = true,
            }
        }
        for (leader, tps) in by_leader {
            for tp in &tps {
                self.parts.get_mut(tp).expect("listed").busy = true;
            }
            let msg = Message::ListOffsetsRequest(ListOffsetsRequest {
                correlation_id: self.take_corr(),
                isolation_level: self.config.isolation_level,
                partitions: tps.iter().map(|tp| (*tp, spec)).collect(),
            });
            let timeout = self.config.request_timeout;
            self.send(cx, leader, timeout, Req::ListOffsets(tps), msg);
        }
    }

    pub(super) fn on_list_offsets(
        &mut self,
        cx: &mut Cx,
        tps: Vec<TopicPartition>,
        resp: ListOffsetsResponse,
    ) {
        for tp in &tps {
            if let Some(p) = self.parts.get_mut(tp) {
                p.busy = false;
            }
        }
        for (tp, error, offset) in resp.partitions {
            let cause = match self.parts.get(&tp).map(|p| p.need) {
                Some(Need::Reset(cause)) => cause,
                // No longer awaiting a reset (revoked, or positioned meanwhile): a stale
                // answer, skipped as Java's `SubscriptionState.maybeSeekUnvalidated` does.
                _ => continue,
            };
            if error == ErrorCode::None {
                self.seek(cx, tp, offset, cause);
            } else if error.needs_metadata_refresh() {
                self.meta.leaders.remove(&tp);
                self.meta.wanted = true;
            }
        }
    }

    // ------------------------------------------------------------ fetch

    /// Partitions ready for a fetch, grouped by leader.
    fn fetchable(&mut self) -> BTreeMap<NodeId, Vec<FetchPartition>> {
        let mut out: BTreeMap<NodeId, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, p) in &self.parts {
            let ready = p.need == Need::Nothing && !p.busy && p.buffered.is_empty();
            let Some(position) = p.position.filter(|_| ready) else {
                continue;
            };
            let Some(&(leader, epoch)) = self.meta.leaders.get(tp) else {
                self.meta.wanted = true;
                continue;
            };
            out.entry(leader).or_default().push(FetchPartition {
                partition: *tp,
                fetch_offset: position,
                current_leader_epoch: Some(epoch),
                last_fetched_epoch: p.leader_epoch,
                log_start_offset: 0,
                partition_max_bytes: self.config.max_partition_fetch_bytes,
            });
        }
        out
    }

    pub(super) fn drive_fetch(&mut self, cx: &mut Cx) {
        if cx.now() < self.spec.fetch_paused_until {
            return; // paused by the application (a bench's backlog phase)
        }
        for (leader, partitions) in self.fetchable() {
            if self.fetching.contains_key(&leader) {
                continue;
            }
            if self
                .fetch_not_before
                .get(&leader)
                .is_some_and(|t| *t > cx.now())
            {
                continue;
            }
            let tps: Vec<(TopicPartition, u64)> = partitions
                .iter()
                .map(|f| (f.partition, f.fetch_offset))
                .collect();
            for (tp, _) in &tps {
                self.parts.get_mut(tp).expect("fetchable").busy = true;
            }
            let msg = Message::FetchRequest(FetchRequest {
                correlation_id: self.take_corr(),
                replica_id: None,
                replica_epoch: 0,
                max_wait: self.config.fetch_max_wait,
                min_bytes: self.config.fetch_min_bytes,
                max_bytes: self.config.fetch_max_bytes,
                isolation_level: self.config.isolation_level,
                // Sessionless (`FetchMetadata.LEGACY`): kafsim's consumers fetch every
                // partition every time. sarama and kafka-go have no fetch sessions; the Java
                // consumer's `FetchSessionHandler` is not modelled.
                session_id: INVALID_SESSION_ID,
                session_epoch: FINAL_EPOCH,
                partitions,
                forgotten: Vec::new(),
            });
            let timeout = self.config.request_timeout + self.config.fetch_max_wait;
            let corr = self.send(cx, leader, timeout, Req::Fetch(tps), msg);
            self.fetching.insert(leader, corr);
        }
    }

    pub(super) fn on_fetch(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        tps: Vec<(TopicPartition, u64)>,
        resp: FetchResponse,
    ) {
        self.fetching.remove(&from);
        for (tp, _) in &tps {
            if let Some(p) = self.parts.get_mut(tp) {
                p.busy = false;
            }
        }
        let mut got = 0usize;
        let errored = resp.partitions.iter().any(|p| p.error != ErrorCode::None);
        for pr in resp.partitions {
            let asked = tps
                .iter()
                .find(|(tp, _)| *tp == pr.partition)
                .map(|(_, o)| *o);
            if let Some(offset) = asked {
                got += self.on_fetch_partition(pr, offset);
            }
        }
        // The broker long-polls (`DelayedFetch`): an empty answer without an error means
        // max.wait ran out, and every client fetches again at once (Java `AbstractFetch`
        // sends the next fetch on the next poll; sarama's and kafka-go's fetch loops and
        // librdkafka's fetcher loop straight back). After an error (or with max.wait = 0,
        // where the broker answers at once) a client backs off for retry.backoff.ms rather
        // than spin.
        if got == 0 && (errored || self.config.fetch_max_wait.is_zero()) {
            self.fetch_not_before
                .insert(from, cx.now() + self.config.retry_backoff);
        }
    }

    /// Buffer the records of one partition's answer; returns how many.
    fn on_fetch_partition(&mut self, pr: FetchPartitionResponse, fetch_offset: u64) -> usize {
        let tp = pr.partition;
        let isolation = self.config.isolation_level;
        let Some(p) = self.parts.get_mut(&tp) else {
            return 0; // revoked meanwhile
        };
        if p.position != Some(fetch_offset) || p.need != Need::Nothing {
            return 0; // seeked meanwhile
        }
        match pr.error {
            ErrorCode::None => buffer_records(p, &pr, fetch_offset, isolation),
            ErrorCode::OffsetOutOfRange => {
                p.need = Need::Reset(ResetCause::OutOfRange);
                0
            }
            e if e.needs_metadata_refresh() => {
                self.meta.leaders.remove(&tp);
                self.meta.wanted = true;
                0
            }
            _ => 0,
        }
    }
}

/// Append the records at and after `fetch_offset` to the partition's buffer, skipping control
/// batches and, under read_committed, batches of aborted transactions.
///
/// The abort filter is the Java consumer's `CompletedFetch` (sarama's `parseRecords` and
/// librdkafka's msgset reader do the same): the response's aborted transactions are taken in
/// first-offset order; before each batch of a producer, every aborted transaction starting at
/// or below the batch's last offset marks its producer as aborted
/// (`consumeAbortedTransactionsUpTo`); a transactional batch of a marked producer is skipped
/// (`isBatchAborted`) until that producer's abort marker clears the mark
/// (`containsAbortMarker`). So a producer's committed transaction after an aborted one is read.
fn buffer_records(
    p: &mut PartState,
    pr: &FetchPartitionResponse,
    fetch_offset: u64,
    isolation: IsolationLevel,
) -> usize {
    let mut added = 0;
    let mut next = fetch_offset;
    let mut pending_aborts = pr.aborted_transactions.clone();
    pending_aborts.sort_by_key(|&(pid, first)| (first, pid));
    let mut pending_aborts = pending_aborts.into_iter().peekable();
    let mut aborted_producers: Vec<i64> = Vec::new();
    for batch in &pr.batches {
        if batch.next_offset() <= next {
            continue;
        }
        let mut aborted = false;
        if isolation == IsolationLevel::ReadCommitted && batch.producer_id >= 0 {
            while let Some((pid, _)) =
                pending_aborts.next_if(|&(_, first)| first <= batch.last_offset())
            {
                if !aborted_producers.contains(&pid) {
                    aborted_producers.push(pid);
                }
            }
            if batch.control == Some(ControlMarker::Abort) {
                aborted_producers.retain(|&pid| pid != batch.producer_id);
            } else {
                aborted = batch.is_transactional && aborted_producers.contains(&batch.producer_id);
            }
        }
        if batch.control.is_some() || aborted {
            next = batch.next_offset();
            continue;
        }
        for (i, r) in batch.records.iter().enumerate() {
            let offset = batch.base_offset + i as u64;
            if offset < next {
                continue;
            }
            p.buffered.push_back(Delivered {
                partition: pr.partition,
                offset,
                value: r.value,
                key: r.key,
                size: r.size,
                leader_epoch: batch.partition_leader_epoch,
            });
            added += 1;
            next = offset + 1;
        }
    }
    p.leader_epoch = Some(pr.leader_epoch);
    // Skipped control / aborted batches still advance the position.
    if added == 0 && next > fetch_offset {
        p.position = Some(next);
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordBatch, TopicId};

    const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

    fn data(pid: i64, base: u64, values: &[u64]) -> RecordBatch {
        let mut b = crate::log::tests::batch(values);
        b.base_offset = base;
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.base_sequence = 0;
        b.is_transactional = pid >= 0;
        b
    }

    fn marker(pid: i64, at: u64, m: ControlMarker) -> RecordBatch {
        let mut b = RecordBatch::control_marker(pid, 0, m);
        b.base_offset = at;
        b
    }

    /// Producer 1 aborts {0,1} (marker 2), then commits {3} (marker 4); producer 2's open
    /// transaction interleaves at 1.5 -> offset 5 is producer 2's committed value.
    fn response() -> FetchPartitionResponse {
        FetchPartitionResponse {
            partition: TP,
            error: ErrorCode::None,
            high_watermark: 7,
            last_stable_offset: 7,
            log_start_offset: 0,
            leader_epoch: 0,
            diverging_epoch: None,
            aborted_transactions: vec![(1, 0)],
            batches: vec![
                data(1, 0, &[10, 11]),
                marker(1, 2, ControlMarker::Abort),
                data(1, 3, &[13]),
                marker(1, 4, ControlMarker::Commit),
                data(2, 5, &[15]),
                marker(2, 6, ControlMarker::Commit),
            ],
        }
    }

    fn read(isolation: IsolationLevel) -> (Vec<u64>, Option<u64>) {
        let mut p = PartState {
            position: Some(0),
            need: Need::Nothing,
            ..PartState::default()
        };
        buffer_records(&mut p, &response(), 0, isolation);
        (p.buffered.iter().map(|d| d.value.0).collect(), p.position)
    }

    #[test]
    fn read_committed_skips_the_aborted_transaction_but_not_the_same_producers_next_one() {
        assert_eq!(read(IsolationLevel::ReadCommitted).0, vec![13, 15]);
    }

    #[test]
    fn read_uncommitted_sees_aborted_values_and_never_markers() {
        assert_eq!(
            read(IsolationLevel::ReadUncommitted).0,
            vec![10, 11, 13, 15]
        );
    }

    #[test]
    fn a_fetch_of_only_aborted_data_and_markers_still_moves_the_position() {
        let mut p = PartState {
            position: Some(0),
            need: Need::Nothing,
            ..PartState::default()
        };
        let mut r = response();
        r.batches.truncate(2);
        assert_eq!(
            buffer_records(&mut p, &r, 0, IsolationLevel::ReadCommitted),
            0
        );
        assert_eq!(p.position, Some(3));
    }
}
